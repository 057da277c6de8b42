#!/usr/bin/env python3
"""The PyTorch reference for crates/train/tests/distillation.rs: knowledge distillation with
sentence-transformers' MSELoss, written out as a plain loop in the manner of
shared/reference/train-parity (no Trainer class, dropout 0, deterministic, one thread).

Student: the tiny BERT of shared/reference/train-parity/model (32 dims) + a Dense module
32 -> 384 (Identity, torch.manual_seed(1) nn.Linear init) + Normalize. Teacher: all-MiniLM-L6-v2
(384 dims, frozen, eval). Data: the first 128 rows of multi30k-train.en-de.tsv.gz in file order,
8 steps of 16 rows. Per step: teacher embeddings of the English sources; student embeddings of
the sources and of the translations (each column tokenised and padded on its own, truncation 32);
loss = mean over the two columns of F.mse_loss (MSELoss); backward; clip at 1.0 (total + 1e-6);
AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-6, weight decay 0.01 except biases and LayerNorm,
foreach=False); linear schedule, 2 warmup steps. pooler.dense.* is not trained.

    python3 scripts/reference/torch_distill_parity.py SHARED_DIR MINILM_DIR OUT_DIR

Writes OUT_DIR/dense/ (the initial Dense module: config.json, model.safetensors) and
OUT_DIR/reference.json (settings, per-step loss / lr / grad norm, final parameter L2 norms,
probe embeddings).
"""
import gzip, json, os, sys

import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
shared, minilm, out = sys.argv[1:4]
STEPS, BATCH, LR, WARMUP, WD, CLIP = 8, 16, 1e-3, 2, 0.01, 1.0

tiny = os.path.join(shared, "reference/train-parity/model")
transformer = Transformer(tiny, max_seq_length=32)
pooling = Pooling(32, "mean")
torch.manual_seed(1)
dense = Dense(32, 384, activation_function=torch.nn.Identity())
os.makedirs(os.path.join(out, "dense"), exist_ok=True)
dense.save(os.path.join(out, "dense"))
student = SentenceTransformer(modules=[transformer, pooling, dense, Normalize()], device="cpu")
teacher = SentenceTransformer(minilm, device="cpu")
teacher.eval()

with gzip.open(os.path.join(shared, "data/parallel/multi30k-train.en-de.tsv.gz"), "rt",
               encoding="utf-8") as f:
    rows = [next(f).rstrip("\n").split("\t") for _ in range(STEPS * BATCH)]


def embed(model, texts):
    feats = model.tokenize(texts)
    return model(feats)["sentence_embedding"]


named = [(n, p) for n, p in student.named_parameters() if "pooler.dense" not in n]
for n, p in student.named_parameters():
    p.requires_grad_("pooler.dense" not in n)
no_decay = lambda n: n.endswith(".bias") or "LayerNorm" in n
opt = torch.optim.AdamW([
    {"params": [p for n, p in named if not no_decay(n)], "weight_decay": WD},
    {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0},
], lr=LR, betas=(0.9, 0.999), eps=1e-6, foreach=False)
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda k: k / WARMUP if k < WARMUP else max(0.0, (STEPS - k) / (STEPS - WARMUP)))

student.train()
steps = []
for s in range(STEPS):
    batch = rows[s * BATCH:(s + 1) * BATCH]
    src, trg = [r[0] for r in batch], [r[1] for r in batch]
    opt.zero_grad(set_to_none=True)
    with torch.no_grad():
        target = embed(teacher, src)
    loss = torch.stack([F.mse_loss(embed(student, src), target),
                        F.mse_loss(embed(student, trg), target)]).mean()
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
    print(steps[-1], flush=True)

probes = ["A man is playing a guitar.", "Ein Mann spielt Gitarre.",
          "Two dogs run through the snow.", "Zwei Hunde laufen durch den Schnee."]
student.eval()
with torch.no_grad():
    probe = embed(student, probes)
norms = {n: float(p.detach().double().norm()) for n, p in student.named_parameters()
         if "pooler.dense" not in n}
ref = {
    "settings": {"steps": STEPS, "batch_size": BATCH, "lr": LR, "warmup_steps": WARMUP,
                 "weight_decay": WD, "max_grad_norm": CLIP, "adam_eps": 1e-6,
                 "torch": torch.__version__},
    "steps": steps,
    "final": {"param_l2_norms": norms, "probe_texts": probes, "probe_embeddings": probe.tolist()},
}
with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump(ref, f, indent=1)
print("wrote", out)
