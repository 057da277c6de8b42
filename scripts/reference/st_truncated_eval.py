#!/usr/bin/env python3
"""References for crates/eval/tests/reference.rs (truncated embeddings): what sentence-transformers
6.2's own evaluators report for all-MiniLM-L6-v2 with `truncate_dim` 128 and 64, on STS-B dev
(EmbeddingSimilarityEvaluator, the four similarities) and Cranfield (InformationRetrievalEvaluator),
read as shared/reference/eval/README.md describes (STS scores / 5; document = title + " " + text,
stripped; qrels with score > 0).

    python3 scripts/reference/st_truncated_eval.py SHARED MINILM_DIR OUT.json
"""
import csv, json, os, sys

import sentence_transformers
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.evaluation import (
    EmbeddingSimilarityEvaluator, InformationRetrievalEvaluator)

shared, minilm, out = sys.argv[1:4]
data = os.path.join(shared, "data")
with open(os.path.join(data, "stsb/sts-dev.tsv")) as f:
    rows = [l.rstrip("\n").split("\t") for l in f.read().splitlines()[1:]]
s1, s2, gold = [r[0] for r in rows], [r[1] for r in rows], [float(r[2]) / 5 for r in rows]
cran = os.path.join(data, "cranfield")
corpus = {}
with open(os.path.join(cran, "corpus.jsonl")) as f:
    for l in f:
        d = json.loads(l)
        corpus[str(d["_id"])] = (d.get("title", "") + " " + d["text"]).strip()
queries = {}
with open(os.path.join(cran, "queries.jsonl")) as f:
    for l in f:
        d = json.loads(l)
        queries[str(d["_id"])] = d["text"]
relevant = {}
with open(os.path.join(cran, "qrels.tsv")) as f:
    r = csv.reader(f, delimiter="\t")
    next(r)
    for q, doc, score in r:
        if float(score) > 0:
            relevant.setdefault(q, set()).add(doc)
queries = {q: t for q, t in queries.items() if q in relevant}

model = SentenceTransformer(minilm, device="cpu")
results = {}
for dim in (128, 64):
    sts = EmbeddingSimilarityEvaluator(
        s1, s2, gold, similarity_fn_names=["cosine", "dot", "euclidean", "manhattan"],
        name="x", truncate_dim=dim)
    results[f"stsb-dev-{dim}"] = {k[len("x_"):]: v for k, v in sts(model).items()}
    ir = InformationRetrievalEvaluator(queries, corpus, relevant, name="x", truncate_dim=dim)
    results[f"cranfield-{dim}"] = {k[len("x_"):]: v for k, v in ir(model).items()}
with open(out, "w") as f:
    json.dump({"model": "all-MiniLM-L6-v2",
               "sentence_transformers": sentence_transformers.__version__,
               "results": results}, f, indent=1)
for k, v in results.items():
    print(k, {m: round(x, 5) for m, x in v.items() if m in ("spearman_cosine", "cosine_ndcg@10")})
