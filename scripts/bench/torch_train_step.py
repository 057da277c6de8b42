"""PyTorch's time for the step `pairtrain bench train` measures: a randomly initialised BERT of
the same shape (dropout 0.1, training mode), two columns of random token ids (no padding, or the
mixed lengths of `--min-seq`, padded), mean
pooling, L2 normalisation, MultipleNegativesRankingLoss (scale 20), backward, clip_grad_norm_(1.0),
AdamW. Run it from a throwaway venv:
  python scripts/bench/torch_train_step.py [--layers 6 --hidden 384 --heads 12 --intermediate 1536]
                                           [--batch 32] [--seq 64] [--steps 5] [--warmup 2]
                                           [--min-seq N] [--arch bert|modernbert]
                                           [--dropout 0.1]
With --arch modernbert: transformers' ModernBertModel (ModernBERT-base's rotary bases and
128-token window, global attention every third layer, sdpa attention, as sentence-transformers
loads it).
"""
import argparse, json, resource, statistics, time

import torch
from transformers import BertConfig, BertModel, ModernBertConfig, ModernBertModel

ap = argparse.ArgumentParser()
for name, default in [("layers", 6), ("hidden", 384), ("heads", 12), ("intermediate", 1536),
                      ("batch", 32), ("seq", 64), ("steps", 5), ("warmup", 2), ("min_seq", 0)]:
    ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
ap.add_argument("--arch", default="bert")
ap.add_argument("--dropout", type=float, default=0.1)
a = ap.parse_args()

torch.manual_seed(0)
if a.arch == "modernbert":
    cfg = ModernBertConfig(hidden_size=a.hidden, num_hidden_layers=a.layers,
                           num_attention_heads=a.heads, intermediate_size=a.intermediate,
                           max_position_embeddings=max(8192, a.seq), attention_dropout=a.dropout,
                           mlp_dropout=a.dropout, embedding_dropout=a.dropout)
    cfg._attn_implementation = "sdpa"
    model = ModernBertModel(cfg)
else:
    cfg = BertConfig(hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=a.heads,
                     intermediate_size=a.intermediate, max_position_embeddings=max(512, a.seq),
                     hidden_dropout_prob=a.dropout, attention_probs_dropout_prob=a.dropout)
    cfg._attn_implementation = "eager"
    model = BertModel(cfg, add_pooling_layer=False)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=2e-5, eps=1e-6, weight_decay=0.01)
ids = [torch.randint(1000, 30000, (a.batch, a.seq)) for _ in range(2)]
masks = [torch.ones(a.batch, a.seq, dtype=torch.long) for _ in range(2)]
if a.min_seq:
    # The lengths `pairtrain bench train --min-seq` gives (padded, as sentence-transformers pads).
    for c in range(2):
        for i in range(a.batch):
            n = a.min_seq + (i * 7919 + c * 13) % (a.seq - a.min_seq + 1)
            ids[c][i, n:] = 0
            masks[c][i, n:] = 0


def embed(x, mask):
    h = model(input_ids=x, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).float()
    e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(e, dim=-1)


times = []
for i in range(a.warmup + a.steps):
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    s = 20.0 * embed(ids[0], masks[0]) @ embed(ids[1], masks[1]).T
    loss = torch.nn.functional.cross_entropy(s, torch.arange(a.batch))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if i >= a.warmup:
        times.append(time.perf_counter() - t)
med = statistics.median(times)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
lens = f"{a.min_seq}-{a.seq}" if a.min_seq else f"{a.seq}"
print(f"pytorch train step: {a.arch} {a.layers} layers x {a.hidden} hidden, batch {a.batch}, seq {lens}, "
      f"{torch.get_num_threads()} threads: median {med:.4f} s/step, peak RSS {rss:.0f} MiB")
print(json.dumps({"s_per_step": med, "peak_rss_mib": rss}))
