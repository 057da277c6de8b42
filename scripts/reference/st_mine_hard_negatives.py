# sentence-transformers' mine_hard_negatives on a pair file ([anchor, positive] JSON lines), its
# rows written as JSON lists: how crates/pairtrain/tests/data/st-mine-hard-negatives/ was made
# (sentence-transformers 6.2.0, torch 2.15, CPU, 2026-11-30), in a throwaway venv:
#   python st_mine_hard_negatives.py MODEL_DIR pairs.jsonl out.jsonl '{"relative_margin": 0.05}'
# The pairs: STS-B train rows with a score of at least 4, in file order (the test builds the same).
import json
import sys

from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives

model_dir, inp, out = sys.argv[1:4]
kw = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
rows = [json.loads(line) for line in open(inp)]
ds = Dataset.from_dict({"anchor": [r[0] for r in rows], "positive": [r[1] for r in rows]})
model = SentenceTransformer(model_dir, device="cpu")
res = mine_hard_negatives(ds, model, batch_size=32, verbose=False, **kw)
with open(out, "w") as f:
    for r in res:
        f.write(json.dumps(list(r.values()), ensure_ascii=False) + "\n")
