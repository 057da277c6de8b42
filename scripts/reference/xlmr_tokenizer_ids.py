#!/usr/bin/env python3
"""Token ids of multilingual-e5-small's XLM-R tokenizer as transformers builds it (AutoTokenizer,
special tokens added, no truncation), for crates/model/tests/xlmr_tokenizer.rs.

    python3 scripts/reference/xlmr_tokenizer_ids.py E5_DIR SHARED_DIR OUT.jsonl

Texts: the 64 golden texts of shared/golden, whitespace cases (trailing, runs, tabs, ideographic
space), and the first 20 sentences of each Multi30k/STSb-MT parallel file (both sides). Needs
transformers 5.x (which rebuilds the XLM-R pipeline in code instead of reading tokenizer.json's).
"""
import gzip, json, os, sys
import transformers
from transformers import AutoTokenizer

e5, shared, out = sys.argv[1:4]
tok = AutoTokenizer.from_pretrained(e5)
texts = [json.loads(l)["text"] for l in open(os.path.join(shared, "golden/all-MiniLM-L6-v2.jsonl"))]
texts += ["Hello world ", "a  b", " lead", "tab\there", "x\u3000y", "Zwei Männer.  ", "", "   ",
          "line\nbreak", "query: Zwei Männer stehen am Herd", "ｆｕｌｌｗｉｄｔｈ", "ﬁ ligature", "①②"]
pdir = os.path.join(shared, "data/parallel")
for name in sorted(os.listdir(pdir)):
    if name.endswith(".tsv.gz"):
        with gzip.open(os.path.join(pdir, name), "rt", encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i == 20:
                    break
                texts += line.rstrip("\n").split("\t")
seen, rows = set(), []
for t in texts:
    if t not in seen:
        seen.add(t)
        rows.append({"text": t, "input_ids": tok(t)["input_ids"]})
with open(out, "w", encoding="utf-8") as f:
    f.write(json.dumps({"transformers": transformers.__version__}) + "\n")
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(f"{len(rows)} texts -> {out}")
