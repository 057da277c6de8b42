#!/usr/bin/env python3
"""sentence-transformers' side of the distillation comparison (README "Distil to many languages"):
the same student, teacher, data, steps and hyperparameters as
recipes/examples/distil-multilingual.toml, trained with SentenceTransformerTrainer + MSELoss, then
the same development evaluations (MSEEvaluator, TranslationEvaluator, EmbeddingSimilarityEvaluator)
before and after. A throwaway run for the record, not part of the tests.

    python3 scripts/reference/st_distill.py E5_DIR MINILM_DIR SHARED_DIR XSTS_TSV OUT_DIR [STEPS]

Writes OUT_DIR/st-before.json, OUT_DIR/st-after.json and OUT_DIR/st-train-log.json.
"""
import csv, gzip, json, os, sys, time

import torch
from datasets import Dataset, DatasetDict
from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                   SentenceTransformerTrainingArguments, losses)
from sentence_transformers.evaluation import (EmbeddingSimilarityEvaluator, MSEEvaluator,
                                              TranslationEvaluator)
from sentence_transformers.training_args import MultiDatasetBatchSamplers

e5, minilm, shared, xsts, out = sys.argv[1:6]
steps = int(sys.argv[6]) if len(sys.argv) > 6 else 200
os.makedirs(out, exist_ok=True)
torch.manual_seed(42)
PROMPT = "query: "

teacher = SentenceTransformer(minilm, device="cpu")
student = SentenceTransformer(e5, device="cpu")
student.max_seq_length = 128
# The prompt applies to every input at evaluation time too, as the pairtrain model saves it.
student.prompts = {"query": PROMPT}
student.default_prompt_name = "query"

pdir = os.path.join(shared, "data/parallel")


def read_pairs(name):
    with gzip.open(os.path.join(pdir, name), "rt", encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


train = {lang: read_pairs(f"multi30k-train.en-{lang}.tsv.gz") for lang in ("de", "fr", "cs")}
english = sorted({en for rows in train.values() for en, _ in rows})
t0 = time.time()
emb = teacher.encode(english, batch_size=64, convert_to_numpy=True)
label_of = dict(zip(english, emb))
print(f"teacher labels for {len(english)} English sentences in {time.time() - t0:.0f} s", flush=True)
datasets = DatasetDict({
    f"multi30k-en-{lang}": Dataset.from_dict({
        "english": [en for en, _ in rows],
        "non_english": [tr for _, tr in rows],
        "label": [label_of[en].tolist() for en, _ in rows],
    })
    for lang, rows in train.items()
})

evaluators = []
for lang in ("de", "fr", "cs"):
    val = read_pairs(f"multi30k-val.en-{lang}.tsv.gz")
    src, trg = [a for a, _ in val], [b for _, b in val]
    evaluators.append(MSEEvaluator(src, trg, teacher_model=teacher, name=f"mse-en-{lang}"))
    evaluators.append(TranslationEvaluator(src, trg, name=f"translation-en-{lang}"))
with open(xsts, encoding="utf-8") as f:
    rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
evaluators.append(EmbeddingSimilarityEvaluator(
    [r["sentence1"] for r in rows], [r["sentence2"] for r in rows],
    [float(r["score"]) / 5.0 for r in rows], name="sts-en-de"))


def evaluate(tag):
    res = {}
    for ev in evaluators:
        t = time.time()
        res[ev.name] = {k: float(v) for k, v in ev(student).items()}
        print(f"{tag} {ev.name}: {res[ev.name]} ({time.time() - t:.0f} s)", flush=True)
    with open(os.path.join(out, f"st-{tag}.json"), "w") as f:
        json.dump(res, f, indent=1)


if not os.path.exists(os.path.join(out, "st-before.json")):
    evaluate("before")
args = SentenceTransformerTrainingArguments(
    output_dir=os.path.join(out, "st-run"), max_steps=steps, per_device_train_batch_size=32,
    learning_rate=5e-5, warmup_steps=20, weight_decay=0.01, adam_epsilon=1e-6,
    lr_scheduler_type="linear", max_grad_norm=1.0, seed=42, prompts=PROMPT,
    multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
    logging_steps=10, report_to="none", save_strategy="no", use_cpu=True,
    dataloader_drop_last=True)
trainer = SentenceTransformerTrainer(model=student, args=args, train_dataset=datasets,
                                     loss=losses.MSELoss(student))
t0 = time.time()
trainer.train()
print(f"trained {steps} steps in {time.time() - t0:.0f} s", flush=True)
with open(os.path.join(out, "st-train-log.json"), "w") as f:
    json.dump(trainer.state.log_history, f, indent=1)
evaluate("after")
