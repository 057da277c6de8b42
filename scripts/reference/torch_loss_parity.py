#!/usr/bin/env python3
"""PyTorch references for crates/train/tests/loss_parity.rs: the losses of issue 28 as
sentence-transformers 6.2 computes them (its own loss classes, called in a plain loop in the manner
of shared/reference/train-parity: no Trainer, dropout 0, deterministic, one thread).

Model: the tiny BERT of shared/reference/train-parity/model (32 dims, mean pooling, Normalize).
Data: shared/reference/train-parity pairs.jsonl (anchor, positive) or data.jsonl (anchor,
positive, negative); for the scored losses shared/data/stsb/sts-train.tsv, its first 64 rows scaled
to 0-1 (written to OUT_DIR/stsb-0to1.jsonl) and the triplets with teacher scores (written to
OUT_DIR/margins.jsonl); 10 steps of 16 rows in file order, wrapping. Each column is tokenised and padded on its
own (truncation 32). Per step: loss (the class named below, on the columns' features); backward;
clip at 1.0 (total + 1e-6); AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-6, weight decay 0.01 except
biases and LayerNorm, foreach=False); linear schedule with 2 warmup steps. pooler.dense.* is not
trained. The guide of the GISTEmbed runs is all-MiniLM-L6-v2 (the same vocabulary as the tiny
model, a longer max_seq_length: sentence-transformers gives it the student's token ids).

    python3 scripts/reference/torch_loss_parity.py SHARED_DIR MINILM_DIR OUT_DIR [RUN...]
    STUDENT=minilm python3 scripts/reference/torch_loss_parity.py SHARED_DIR MINILM_DIR \
        OUT_DIR/minilm triplet cosent margin_mse

The second trains all-MiniLM-L6-v2 itself (dropout off, lr 5e-5, Matryoshka sizes 384/192/96).

    STUDENT=crates/model/tests/data/modernbert/model python3 scripts/reference/torch_loss_parity.py \
        SHARED_DIR MINILM_DIR crates/train/tests/data/loss-parity/modernbert mnrl
    STUDENT=crates/model/tests/data/nomic_bert/model python3 scripts/reference/torch_loss_parity.py \
        SHARED_DIR MINILM_DIR crates/train/tests/data/loss-parity/nomic_bert mnrl

train the tiny ModernBERT and NomicBERT (scripts/reference/rotary_encoders_parity.py) with MNRL.

Writes OUT_DIR/<run>.json: settings, per-step loss / lr / grad norm before clipping, final
parameter L2 norms.
"""
import json, math, os, sys

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer import losses

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
shared, minilm, out = sys.argv[1:4]
STEPS, BATCH, LR, WARMUP, WD, CLIP = 10, 16, 1e-3, 2, 0.01, 1.0
PARITY = os.path.join(shared, "reference/train-parity")
# The model trained: the tiny parity model, (STUDENT=minilm) all-MiniLM-L6-v2 itself, or
# (STUDENT=a folder) that model, e.g. the tiny ModernBERT of crates/model/tests/data/modernbert.
STUDENT = minilm if os.environ.get("STUDENT") == "minilm" else os.path.join(PARITY, "model")
if os.environ.get("STUDENT", "minilm") != "minilm":
    STUDENT = os.environ["STUDENT"]
D = {minilm: 384, os.path.join(PARITY, "model"): 32}.get(STUDENT, 64)
DIMS = [D, D // 2, D // 4]
if STUDENT == minilm:
    # A trained model takes the usual fine-tuning rate (the tiny model's 1e-3 would make each step
    # a jump that amplifies float32 rounding).
    LR = 5e-5


def rows(name, keys):
    with open(os.path.join(PARITY, name)) as f:
        data = [json.loads(l) for l in f if l.strip()]
    return [[r[k] for k in keys] for r in data]


PAIRS = rows("pairs.jsonl", ["anchor", "positive"])
TRIPLETS = rows("data.jsonl", ["anchor", "positive", "negative"])


def stsb():
    """(sentence1, sentence2), score 0-5: shared/data/stsb/sts-train.tsv as written, header and
    all (pairtrain reads the TSV itself)."""
    with open(os.path.join(shared, "data/stsb/sts-train.tsv")) as f:
        lines = f.read().splitlines()[1:]
    fields = [l.split("\t") for l in lines]
    return [(r[:2], float(r[2])) for r in fields]


STSB = stsb()
# CosineSimilarityLoss regresses cos onto the score, so the usual 0-1 scale: the first 64 rows
# with score / 5, written beside the references as JSONL objects (pairtrain reads "score").
STSB01 = [(t, s / 5.0) for t, s in STSB[:64]]
# MarginMSELoss: the triplets with made-up teacher scores (positive, negative) per row, written as
# list rows [query, positive, negative, score_pos, score_neg]; sentence-transformers takes the
# margin score_pos - score_neg.
MARGINS = [(t, [round(6.0 + 3.0 * math.sin(i), 4), round(2.0 * math.cos(1.7 * i), 4)])
           for i, t in enumerate(TRIPLETS)]

RUNS = {
    # name: (data, loss constructor, what the recipe says)
    "mnrl": (PAIRS, lambda m, g: losses.MultipleNegativesRankingLoss(m, scale=20.0)),
    "matryoshka_mnrl": (PAIRS, lambda m, g: losses.MatryoshkaLoss(
        m, losses.MultipleNegativesRankingLoss(m, scale=20.0), DIMS)),
    "matryoshka_cached_mnrl": (PAIRS, lambda m, g: losses.MatryoshkaLoss(
        m, losses.CachedMultipleNegativesRankingLoss(m, scale=20.0, mini_batch_size=4),
        DIMS, matryoshka_weights=[1.0, 0.5, 0.25])),
    "triplet": (TRIPLETS, lambda m, g: losses.TripletLoss(m)),
    "triplet_cosine": (TRIPLETS, lambda m, g: losses.TripletLoss(
        m, distance_metric=losses.TripletDistanceMetric.COSINE, triplet_margin=0.5)),
    "gist_absolute": (PAIRS, lambda m, g: losses.GISTEmbedLoss(m, g)),
    "gist_relative_hardneg": (TRIPLETS, lambda m, g: losses.GISTEmbedLoss(
        m, g, margin_strategy="relative", margin=0.1)),
    "cached_gist": (PAIRS, lambda m, g: losses.CachedGISTEmbedLoss(m, g, mini_batch_size=4)),
    "cosent": (STSB, lambda m, g: losses.CoSENTLoss(m)),
    "angle": (STSB, lambda m, g: losses.AnglELoss(m)),
    "cosine_similarity": (STSB01, lambda m, g: losses.CosineSimilarityLoss(m)),
    "margin_mse": (MARGINS, lambda m, g: losses.MarginMSELoss(m)),
    # Prompts per column, as the trainer's `prompts` puts them before each column's texts, with
    # the Pooling module's include_prompt = False (prompt tokens left out of mean pooling).
    "prompts_mnrl": (PAIRS, lambda m, g: losses.MultipleNegativesRankingLoss(m, scale=20.0)),
    "prompts_cached_mnrl": (PAIRS, lambda m, g: losses.CachedMultipleNegativesRankingLoss(
        m, scale=20.0, mini_batch_size=4)),
}
PROMPTS = {"prompts_mnrl": ["query: ", "passage: "], "prompts_cached_mnrl": ["query: ", "passage: "]}


def write_data():
    with open(os.path.join(out, "stsb-0to1.jsonl"), "w") as f:
        for (a, b), score in STSB01:
            f.write(json.dumps({"sentence1": a, "sentence2": b, "score": score}) + "\n")
    with open(os.path.join(out, "margins.jsonl"), "w") as f:
        for texts, scores in MARGINS:
            f.write(json.dumps(list(texts) + scores) + "\n")


def run(name):
    data, make = RUNS[name]
    model = SentenceTransformer(STUDENT, device="cpu")
    # Without dropout, so that the trajectory is deterministic (the tiny model has none; the test
    # trains a copy of all-MiniLM-L6-v2 whose config.json says 0).
    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    model.max_seq_length = 32
    guide = SentenceTransformer(minilm, device="cpu")
    guide.eval()
    prompts = PROMPTS.get(name)
    if prompts:
        model[1].include_prompt = False
    loss_fn = make(model, guide)
    named = [(n, p) for n, p in model.named_parameters() if "pooler.dense" not in n]
    for n, p in model.named_parameters():
        p.requires_grad_("pooler.dense" not in n)
    # As transformers' Trainer: biases and every LayerNorm's weight (ModernBERT's are named
    # norm, attn_norm, mlp_norm, final_norm) are not decayed.
    no_decay = lambda n: n.endswith(".bias") or "LayerNorm" in n or n.endswith("norm.weight")
    opt = torch.optim.AdamW([
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": WD},
        {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0},
    ], lr=LR, betas=(0.9, 0.999), eps=1e-6, foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: k / WARMUP if k < WARMUP else max(0.0, (STEPS - k) / (STEPS - WARMUP)))
    model.train()
    steps = []
    for s in range(STEPS):
        start = (s * BATCH) % len(data)
        batch = data[start:start + BATCH]
        labels = None
        if isinstance(batch[0], tuple) and not isinstance(batch[0][0], str):
            labels = torch.tensor([lab for _, lab in batch], dtype=torch.float32)
            batch = [t for t, _ in batch]
        cols = list(zip(*batch))
        opt.zero_grad(set_to_none=True)
        features = [model.preprocess(list(c), prompt=prompts[i] if prompts else None)
                    for i, c in enumerate(cols)]
        loss = loss_fn(features, labels)
        loss.backward()
        total = torch.norm(torch.stack([p.grad.norm(2) for _, p in named if p.grad is not None]), 2)
        coef = torch.clamp(CLIP / (total + 1e-6), max=1.0)
        for _, p in named:
            if p.grad is not None:
                p.grad.mul_(coef)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        steps.append({"loss": float(loss), "lr": lr, "grad_norm_before_clip": float(total)})
    # Named as the encoder's own checkpoint names them (as shared/reference/train-parity does),
    # without the SentenceTransformer module prefix ("0.model." or "0.auto_model.").
    norms = {n.split(".", 2)[2]: float(p.detach().double().norm()) for n, p in named}
    return {
        "settings": {"loss": type(loss_fn).__name__, "steps": STEPS, "batch_size": BATCH, "lr": LR,
                     "warmup_steps": WARMUP, "weight_decay": WD, "max_grad_norm": CLIP,
                     "adam_eps": 1e-6, "torch": torch.__version__,
                     "sentence_transformers": __import__("sentence_transformers").__version__},
        "steps": steps,
        "final": {"param_l2_norms": norms},
    }


os.makedirs(out, exist_ok=True)
write_data()
for name in sys.argv[4:] or RUNS:
    ref = run(name)
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(ref, f, indent=1)
    print(name, [round(s["loss"], 5) for s in ref["steps"]], flush=True)
