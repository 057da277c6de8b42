#!/usr/bin/env python3
"""1-of-100 response-retrieval accuracy and MRR (Henderson et al., 2019) with
sentence-transformers, for crates/eval/tests/response_retrieval.rs.

    python3 scripts/reference/response_retrieval.py MODEL_DIR PAIRS.tsv[.gz] ...

Each file's (first column, second column) rows are cut into groups of 100 consecutive rows
(the rest left out); each first text ranks its group's second texts by cosine of
SentenceTransformer.encode embeddings; ties go to the lower index.
"""
import gzip, sys
import numpy as np
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(sys.argv[1], device="cpu")
for path in sys.argv[2:]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        rows = [l.rstrip("\n").split("\t")[:2] for l in f if l.strip()]
    n = len(rows) // 100 * 100
    c = model.encode([r[0] for r in rows[:n]], batch_size=32, normalize_embeddings=True)
    r = model.encode([r[1] for r in rows[:n]], batch_size=32, normalize_embeddings=True)
    hits, rr = 0, 0.0
    for g in range(0, n, 100):
        s = c[g:g + 100] @ r[g:g + 100].T
        for i in range(100):
            own = s[i, i]
            above = int((s[i] > own).sum() + (s[i, :i] == own).sum())
            hits += above == 0
            rr += 1.0 / (above + 1)
    print(f"{path}\tpairs {n}\t1_of_100_accuracy {hits / n!r}\tmrr {rr / n!r}")
