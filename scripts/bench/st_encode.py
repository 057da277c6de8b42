"""sentence-transformers' encode throughput on the texts `pairtrain bench encode --dump-texts`
writes, for a side-by-side comparison. Run it from a throwaway venv (the project never needs
Python):  python scripts/bench/st_encode.py MODEL_DIR TEXTS.txt [--batch-size 32] [--repeat 3]
[--dtype bf16]. With --dtype bf16 the model is cast to bfloat16 (PyTorch's own bf16 CPU path,
oneDNN), the fair peer of `pairtrain --dtype bf16`.
"""
import argparse, json, time

import torch
from sentence_transformers import SentenceTransformer

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("texts")
ap.add_argument("--batch-size", type=int, default=32)
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
a = ap.parse_args()

texts = open(a.texts, encoding="utf-8").read().split("\n")[:-1]
m = SentenceTransformer(a.model, device="cpu")
if a.dtype == "bf16":
    m = m.to(torch.bfloat16)
m.encode(texts[: a.batch_size], batch_size=a.batch_size)
best = float("inf")
for _ in range(a.repeat):
    t = time.perf_counter()
    m.encode(texts, batch_size=a.batch_size)
    best = min(best, time.perf_counter() - t)
sps = len(texts) / best
print(f"sentence-transformers {a.dtype}: {len(texts)} texts, batch {a.batch_size}, "
      f"{torch.get_num_threads()} threads: {best:.3f} s, {sps:.1f} sentences/s")
print(json.dumps({"sentences_per_s": sps}))
