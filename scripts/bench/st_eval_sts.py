"""Time sentence-transformers' EmbeddingSimilarityEvaluator on an STS TSV (header sentence1,
sentence2, score), for comparison with `pairtrain eval --task sts`. From a throwaway venv:
  python scripts/bench/st_eval_sts.py MODEL_DIR ../shared/data/stsb/sts-dev.tsv
"""
import sys, time, json

from sentence_transformers import SentenceTransformer
from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator

model_dir, path = sys.argv[1], sys.argv[2]
rows = [l.rstrip("\n").split("\t") for l in open(path, encoding="utf-8")][1:]
s1, s2, sc = [r[0] for r in rows], [r[1] for r in rows], [float(r[2]) / 5 for r in rows]
t0 = time.perf_counter()
m = SentenceTransformer(model_dir, device="cpu")
t1 = time.perf_counter()
ev = EmbeddingSimilarityEvaluator(s1, s2, sc, similarity_fn_names=["cosine", "dot", "euclidean", "manhattan"])
res = ev(m)
t2 = time.perf_counter()
print(f"sentence-transformers: load {t1 - t0:.2f} s, evaluate {t2 - t1:.2f} s, "
      f"spearman_cosine {res[[k for k in res if k.endswith('spearman_cosine')][0]]:.5f}")
