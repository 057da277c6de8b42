#!/usr/bin/env python3
"""The sentence-transformers side of scripts/examples/matryoshka-prompts.

1. The same run as recipes/examples/matryoshka-prompts.toml in sentence-transformers 6.2's own
   trainer: MatryoshkaLoss(MultipleNegativesRankingLoss) at [384, 128, 64], prompts
   {anchor: "query: ", positive: "passage: "}, Pooling include_prompt=False, batch 32 without
   duplicate texts in a batch, lr 5e-5 linear with 4 warmup steps, one epoch. Its STS-B dev
   Spearman (cosine) at each dimension, prompt "query: ", goes to OUT/st.json.
2. pairtrain's saved model (OUT/run/model) loaded here unchanged: its prompts, include_prompt and
   dimensions as saved; encode(prompt_name="query", truncate_dim=128) of OUT/texts.txt against
   `pairtrain encode`'s OUT/pairtrain-128.npy.

    python3 st_matryoshka_prompts.py OUT STS_DEV_TSV
"""
import json, os, sys

import numpy as np
from scipy.stats import spearmanr
from datasets import Dataset
from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                   SentenceTransformerTrainingArguments)
from sentence_transformers.sentence_transformer import losses
from sentence_transformers.base.sampler import BatchSamplers

out, sts = sys.argv[1:3]
DIMS = [384, 128, 64]


def sts_dev():
    with open(sts) as f:
        rows = [l.rstrip("\n").split("\t") for l in f.read().splitlines()[1:]]
    return [r[0] for r in rows], [r[1] for r in rows], [float(r[2]) for r in rows]


def evaluate(model, prompt_name):
    a, b, gold = sts_dev()
    res = {}
    for d in DIMS:
        ea = model.encode(a, prompt_name=prompt_name, truncate_dim=d, normalize_embeddings=True)
        eb = model.encode(b, prompt_name=prompt_name, truncate_dim=d, normalize_embeddings=True)
        cos = (ea * eb).sum(1)
        res[f"sts-dev-{d}"] = {"spearman_cosine": float(spearmanr(cos, gold).statistic)}
    return res


# 1. The same run in sentence-transformers.
with open(os.path.join(out, "stsb-positives.tsv")) as f:
    pairs = [l.rstrip("\n").split("\t") for l in f if l.strip()]
train = Dataset.from_dict({"anchor": [p[0] for p in pairs], "positive": [p[1] for p in pairs]})
model = SentenceTransformer(".cache/all-MiniLM-L6-v2", device="cpu")
model[1].include_prompt = False
model.prompts = {"query": "query: ", "passage": "passage: "}
loss = losses.MatryoshkaLoss(model, losses.MultipleNegativesRankingLoss(model), DIMS)
args = SentenceTransformerTrainingArguments(
    output_dir=os.path.join(out, "st-run"), num_train_epochs=1, per_device_train_batch_size=32,
    learning_rate=5e-5, warmup_steps=4, seed=42, batch_sampler=BatchSamplers.NO_DUPLICATES,
    prompts={"anchor": "query: ", "positive": "passage: "}, save_strategy="no",
    report_to="none", use_cpu=True, logging_steps=10)
SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=loss).train()
res = evaluate(model, "query")
with open(os.path.join(out, "st.json"), "w") as f:
    json.dump(res, f, indent=1)

# 2. pairtrain's model, loaded unchanged.
saved = SentenceTransformer(os.path.join(out, "run/model"), device="cpu")
assert saved.prompts.get("query") == "query: ", saved.prompts
assert saved[1].include_prompt is False
with open(os.path.join(out, "texts.txt")) as f:
    texts = f.read().splitlines()
st = saved.encode(texts, prompt_name="query", truncate_dim=128)
pt = np.load(os.path.join(out, "pairtrain-128.npy"))
diff = float(np.abs(st - pt).max())
print(f"pairtrain's model in sentence-transformers: prompts {saved.prompts}, include_prompt "
      f"{saved[1].include_prompt}; {len(texts)} texts, prompt_name='query', truncate_dim=128: "
      f"shape {st.shape} vs {pt.shape}, max |difference| {diff:.2e}")
assert st.shape == pt.shape and diff < 1e-5, diff
