"""ONNX Runtime's encode throughput for the same comparison as st_encode.py: the model exported
to ONNX (cached beside this venv's other files under ~/.cache/pairtrain/onnx), mean pooling and
normalisation as the model's modules do, fp32 with all graph optimizations and 2 threads, and the
same after int8 dynamic quantization. Run it from the throwaway venv (onnxruntime, onnx, torch,
transformers):  python scripts/bench/ort_encode.py MODEL_DIR TEXTS.txt [--batch-size 32]
"""
import argparse, json, os, time

import numpy as np
import onnxruntime as ort
import torch
from transformers import AutoModel, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("texts")
ap.add_argument("--batch-size", type=int, default=32)
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()

cache = os.path.expanduser("~/.cache/pairtrain/onnx/" + os.path.basename(os.path.normpath(a.model)))
os.makedirs(cache, exist_ok=True)
fp32, int8 = f"{cache}/model.onnx", f"{cache}/model-int8.onnx"
tok = AutoTokenizer.from_pretrained(a.model)
class Tokens(torch.nn.Module):
    """The transformer's token embeddings from (ids, mask), keyword-called as transformers wants."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, ids, mask):
        return self.m(input_ids=ids, attention_mask=mask).last_hidden_state


if not os.path.exists(fp32):
    m = Tokens(AutoModel.from_pretrained(a.model).eval())
    enc = tok(["a b c", "d"], padding=True, return_tensors="pt")
    torch.onnx.export(m, (enc["input_ids"], enc["attention_mask"]), fp32, dynamo=False,
                      input_names=["input_ids", "attention_mask"], output_names=["tokens"],
                      dynamic_axes={"input_ids": {0: "b", 1: "l"}, "attention_mask": {0: "b", 1: "l"},
                                    "tokens": {0: "b", 1: "l"}}, opset_version=17)
if not os.path.exists(int8):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)

texts = open(a.texts, encoding="utf-8").read().split("\n")[:-1]
max_len = 256
cfg = os.path.join(a.model, "sentence_bert_config.json")
if os.path.exists(cfg):
    max_len = json.load(open(cfg)).get("max_seq_length", max_len)


def encode(sess):
    # Longest first, as sentence-transformers sorts, so each batch pads little.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = [None] * len(texts)
    for s in range(0, len(order), a.batch_size):
        idx = order[s:s + a.batch_size]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_len, return_tensors="np")
        t = sess.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                            "attention_mask": enc["attention_mask"].astype(np.int64)})[0]
        m = enc["attention_mask"][..., None].astype(np.float32)
        e = (t * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        for i, v in zip(idx, e):
            out[i] = v
    return np.stack(out)


res = {}
for name, path in [("onnxruntime fp32", fp32), ("onnxruntime int8", int8)]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    encode(sess)
    best = float("inf")
    for _ in range(a.repeat):
        t = time.perf_counter()
        encode(sess)
        best = min(best, time.perf_counter() - t)
    sps = len(texts) / best
    res[name] = sps
    print(f"{name}: {len(texts)} texts, batch {a.batch_size}, {a.threads} threads: {best:.3f} s, {sps:.1f} sentences/s")
print(json.dumps(res))
