"""References for the rotary encoders' tests (crates/model/tests/modern_encoders.rs), from
Hugging Face transformers' own implementations with seeded random weights: ModernBertModel
(eager attention) or, with --arch nomic_bert, NomicBertModel.

The configs keep each architecture's structure at a small width (64, 4 layers, 4 heads) and a
512-token vocabulary, so that the folder (written by save_pretrained, as people download it) is
small enough to keep in the repository. ModernBERT: pre-LayerNorm without biases, GeGLU, a global
layer every third with rotary theta 160000, the others local with a 128-token window and theta
10000, 8192 positions. NomicBERT: BERT's post-LayerNorm layer with rotary positions (theta 1000),
SwiGLU, no projection biases, 2048 positions. Inputs are token ids of mixed lengths (12, 300 and
2048 real tokens, padded to 2048), so ModernBERT's local window is exercised. Writes, into OUT
(default crates/model/tests/data/ARCH):
  model/   the model folder as sentence-transformers saves one: config.json and
           model.safetensors (save_pretrained), a lower-case character-level WordPiece
           tokenizer.json of 117 entries (what fits the small vocabulary), mean pooling
           (modules.json, 1_Pooling, sentence_bert_config.json)
  reference.safetensors   ids, mask, every 8th position of the token embeddings, the mean-pooled
                          and the CLS embeddings

Run from a venv with torch and transformers >= 5.24 (NomicBertModel):
  python scripts/reference/rotary_encoders_parity.py [OUT] [--arch modernbert|nomic_bert]
"""
import json, os, sys
import torch
from safetensors.torch import save_file

import argparse
ap = argparse.ArgumentParser()
ap.add_argument("out", nargs="?")
ap.add_argument("--arch", choices=["modernbert", "nomic_bert"], default="modernbert")
a = ap.parse_args()
arch = a.arch
out = a.out or f"crates/model/tests/data/{arch}"
torch.manual_seed(0)
if arch == "modernbert":
    from transformers import ModernBertConfig, ModernBertModel
    cfg = ModernBertConfig(
        vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
        num_attention_heads=4, max_position_embeddings=8192, global_attn_every_n_layers=3,
        local_attention=128, global_rope_theta=160000.0, local_rope_theta=10000.0,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2,
        initializer_range=0.2,
    )
    cfg._attn_implementation = "eager"
    model = ModernBertModel(cfg).eval()
else:
    from transformers import NomicBertConfig, NomicBertModel
    cfg = NomicBertConfig(
        vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
        num_attention_heads=4, max_position_embeddings=2048, pad_token_id=0,
        rope_parameters={"rope_theta": 1000.0, "rope_type": "default"},
    )
    cfg._attn_implementation = "eager"
    model = NomicBertModel(cfg).eval()
max_len = cfg.max_position_embeddings
# Larger than the default init, so that every layer changes the result measurably. NomicBERT's
# post-LN layers at 0.2 train unstably at the trajectory's lr 1e-3 (a gradient-norm spike of 14
# at step 6, where float32 rounding alone moves it by 1e-4): 0.1 keeps its 10 steps well
# conditioned.
std = 0.2 if arch == "modernbert" else 0.1
with torch.no_grad():
    for name, p in model.named_parameters():
        if "norm" in name or "emb_ln" in name:
            p.uniform_(0.5, 1.5)
        else:
            p.normal_(0.0, std)
folder = os.path.join(out, "model")
model.save_pretrained(folder, safe_serialization=True)

# The tokenizer: special tokens, then characters, then word-piece continuations of them.
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-:;()/&%$#@*+=_[]")
vocab = {t: i for i, t in enumerate(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
                                     + chars + ["##" + c for c in chars])}
tk = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=200))
tk.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
tk.post_processor = processors.TemplateProcessing(
    single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
    special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
tk.save(os.path.join(folder, "tokenizer.json"))
json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "cls_token": "[CLS]", "sep_token": "[SEP]",
           "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]",
           "model_max_length": max_len}, open(os.path.join(folder, "tokenizer_config.json"), "w"))
json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
           {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}],
          open(os.path.join(folder, "modules.json"), "w"))
json.dump({"max_seq_length": max_len, "do_lower_case": False},
          open(os.path.join(folder, "sentence_bert_config.json"), "w"))
os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
json.dump({"word_embedding_dimension": 64, "pooling_mode_cls_token": False,
           "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
           "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True},
          open(os.path.join(folder, "1_Pooling/config.json"), "w"))

lengths = [12, 300, 2048]
L = max(lengths)
g = torch.Generator().manual_seed(1)
ids = torch.zeros(len(lengths), L, dtype=torch.long)
mask = torch.zeros(len(lengths), L, dtype=torch.long)
for i, n in enumerate(lengths):
    ids[i, :n] = torch.randint(3, cfg.vocab_size, (n,), generator=g)
    ids[i, 0] = 1
    ids[i, n - 1] = 2
    mask[i, :n] = 1
with torch.no_grad():
    tok = model(input_ids=ids, attention_mask=mask).last_hidden_state
m = mask.unsqueeze(-1).float()
mean = (tok * m).sum(1) / m.sum(1)
save_file(
    {
        "ids": ids.to(torch.int64).contiguous(),
        "mask": mask.to(torch.int64).contiguous(),
        "tokens_every_8th": tok[:, ::8, :].contiguous(),
        "mean": mean.contiguous(),
        "cls": tok[:, 0, :].contiguous(),
    },
    os.path.join(out, "reference.safetensors"),
)
print("wrote", out, "max |token embedding|", tok.abs().max().item())
