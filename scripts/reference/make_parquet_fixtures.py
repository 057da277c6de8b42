#!/usr/bin/env python3
"""Parquet fixtures for crates/pairs/tests/parquet.rs, written by pyarrow as the Hugging Face
datasets pages publish pair data, each beside the JSONL of the same rows:

- triplets.parquet: anchor / positive / negative string columns, 3 row groups (50, 50, 20 rows),
  snappy, with non-ASCII text; triplets.jsonl the same rows as {"anchor","positive","negative"}.
- qa.parquet: query / answer / id columns (id an int64, to be ignored), zstd, one row group.
- negatives-list.parquet: anchor, positive and negative as a list of strings, gzip.

    python3 scripts/reference/make_parquet_fixtures.py crates/pairs/tests/data
"""
import json, os, sys
import pyarrow as pa
import pyarrow.parquet as pq

out = sys.argv[1]
words = ["coffee", "grinder", "Kaffee", "mühle", "café", "brew", "espresso", "烘焙", "tamper", "crema"]
rows = []
for i in range(120):
    a = f"how do I {words[i % 10]} {words[(i * 3) % 10]} number {i}?"
    p = f"answer {i}: use a {words[(i * 7) % 10]} — “{words[(i + 1) % 10]}”"
    n = f"unrelated text {i} about {words[(i * 5) % 10]}"
    rows.append((a, p, n))
t = pa.table({"anchor": [r[0] for r in rows], "positive": [r[1] for r in rows],
              "negative": [r[2] for r in rows]})
pq.write_table(t, os.path.join(out, "triplets.parquet"), row_group_size=50, compression="snappy")
with open(os.path.join(out, "triplets.jsonl"), "w", encoding="utf-8") as f:
    for a, p, n in rows:
        f.write(json.dumps({"anchor": a, "positive": p, "negative": n}, ensure_ascii=False) + "\n")

qa = pa.table({"id": pa.array(range(30), pa.int64()),
               "query": [r[0] for r in rows[:30]], "answer": [r[1] for r in rows[:30]]})
pq.write_table(qa, os.path.join(out, "qa.parquet"), compression="zstd")

lst = pa.table({"anchor": [r[0] for r in rows[:10]], "positive": [r[1] for r in rows[:10]],
                "negative": pa.array([[r[2], rows[(i + 1) % 10][2]] for i, r in enumerate(rows[:10])],
                                     pa.list_(pa.string()))})
pq.write_table(lst, os.path.join(out, "negatives-list.parquet"), compression="gzip")
print("wrote", out)
