"""The GPU check's work (run through scripts/device/gpu-check, which sets the library path).

Sections, each recorded in $OUT/gpu-check.json even when another fails:
  kernels    pairtrain bench kernels --device cuda: every CUDA kernel against its composed
             reference on the GPU (forward, every gradient, f32 and bf16) and AdamW against the
             CPU's bits; then the small case under compute-sanitizer memcheck and racecheck
  models     seeded random MiniLM-L6 (BERT 6x384) and MPNet-base (12x768) in the
             sentence-transformers layout, saved by PyTorch
  embed      pairtrain encode --device cuda vs SentenceTransformer.encode on the same GPU:
             f32 max |diff| (bar 1e-4), bf16 min cosine to ST's f32 (bar 0.999)
  parity     the four parity recipes on cuda f32 vs ../shared/reference/train-parity (rtol 1e-4)
  train      pairtrain bench train --dtype bf16 at B=256 and B=1024, L=128, vs the same step in
             PyTorch at its best in eager mode (SDPA attention, AdamW(fused=True), bf16
             autocast, clip): seconds per step, peak GPU memory of each (nvidia-smi, sampled),
             and pairtrain's GPU-to-host copies per step (one is the goal)
  encode     sentences/s, pairtrain bench encode vs SentenceTransformer.encode, f32 and bf16
"""
import json, os, subprocess, sys, time, traceback

import numpy as np
import torch

OUT = os.environ.get("OUT", "runs/gpu-check")
DEV = ".device"
BIN = os.path.join(DEV, "pairtrain")
SHARED = os.path.join(DEV, "shared")
os.makedirs(OUT, exist_ok=True)
results = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
try:
    import sentence_transformers, transformers

    results["sentence_transformers"] = sentence_transformers.__version__
    results["transformers"] = transformers.__version__
except Exception as e:  # the sections that need them report it
    results["import_error"] = f"{type(e).__name__}: {e}"


def save():
    with open(os.path.join(OUT, "gpu-check.json"), "w") as f:
        json.dump(results, f, indent=2)


def run(args, timeout=300):
    t = time.perf_counter()
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"pairtrain {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p.stdout, time.perf_counter() - t


def model_paths():
    m = results.get("models")
    if not isinstance(m, dict) or "error" in m:
        raise RuntimeError("the models section failed")
    return {k: v for k, v in m.items() if not k.startswith("_")}


def section(name):
    def wrap(f):
        t = time.perf_counter()
        try:
            results[name] = f()
        except Exception as e:
            results[name] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}
        results.setdefault("seconds", {})[name] = round(time.perf_counter() - t, 1)
        print(f"== {name}: {json.dumps(results[name])[:1500]}", flush=True)
        save()
        return f
    return wrap


@section("kernels")
def kernels():
    stdout, secs = run(["bench", "kernels", "--device", "cuda", "--json"], timeout=300)
    out = json.loads(stdout.strip().splitlines()[-1])
    out["seconds"] = round(secs, 1)
    san = {}
    for tool in ["memcheck", "racecheck"]:
        cmd = ["compute-sanitizer", "--tool", tool, "--error-exitcode", "3", BIN, "bench", "kernels",
               "--device", "cuda", "--small"]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
            summary = [l for l in (p.stdout + p.stderr).splitlines() if "ERROR SUMMARY" in l or "RACECHECK SUMMARY" in l]
            san[tool] = {"exit": p.returncode, "summary": summary[-3:], "ok": p.returncode == 0}
        except FileNotFoundError:
            san[tool] = {"error": "compute-sanitizer is not on this machine"}
        except subprocess.TimeoutExpired:
            san[tool] = {"error": "timed out after 240 s"}
        save()
    out["sanitizer"] = san
    return out


SHAPES = {
    "minilm-l6": dict(kind="bert", hidden=384, layers=6, heads=12, inter=1536),
    "mpnet-base": dict(kind="mpnet", hidden=768, layers=12, heads=12, inter=3072),
}


@section("models")
def build_models():
    from sentence_transformers import SentenceTransformer
    from transformers import AutoConfig, AutoModel

    try:  # sentence-transformers >= 5.4 (`models` is a deprecated alias there)
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:
        from sentence_transformers import models

    made = {}
    for name, s in SHAPES.items():
        tok = os.path.join(DEV, "tokenizers", "minilm" if s["kind"] == "bert" else "mpnet")
        cfg = AutoConfig.from_pretrained(tok)
        cfg.hidden_size, cfg.num_hidden_layers = s["hidden"], s["layers"]
        cfg.num_attention_heads, cfg.intermediate_size = s["heads"], s["inter"]
        torch.manual_seed(1234)
        m = AutoModel.from_config(cfg)
        hf = os.path.join(OUT, "hf-" + name)
        m.save_pretrained(hf)  # model.safetensors by default in 4.x and 5.x
        for f in os.listdir(tok):
            if f != "config.json":
                with open(os.path.join(tok, f), "rb") as a, open(os.path.join(hf, f), "wb") as b:
                    b.write(a.read())
        tr = models.Transformer(hf, max_seq_length=128)
        st = SentenceTransformer(
            modules=[tr, models.Pooling(s["hidden"], pooling_mode="mean"), models.Normalize()])
        path = os.path.join(OUT, "st-" + name)
        st.save(path, create_model_card=False)
        # sentence-transformers >= 5.4 keeps max_seq_length only as the tokenizer's
        # model_max_length; write it where pairtrain looks first (and ST still reads it back).
        sb = os.path.join(path, "sentence_bert_config.json")
        sbc = json.load(open(sb)) if os.path.isfile(sb) else {}
        sbc.setdefault("max_seq_length", 128)
        with open(sb, "w") as f:
            json.dump(sbc, f, indent=2)
        with open(os.path.join(path, "modules.json")) as f:
            types = [e["type"] for e in json.load(f)]
        made[name] = path
        made.setdefault("_layout", {})[name] = {"modules": types, "files": sorted(os.listdir(path))}
    return made


def golden_texts():
    with open(os.path.join(SHARED, "golden", "all-MiniLM-L6-v2.jsonl")) as f:
        return [json.loads(l)["text"] for l in f if l.strip()]


@section("embed")
def embed():
    from sentence_transformers import SentenceTransformer

    texts = golden_texts()
    path_txt = os.path.join(OUT, "golden.jsonl")
    with open(path_txt, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    out = {}
    for name, path in model_paths().items():
        st = SentenceTransformer(path, device="cuda")
        want = st.encode(texts, batch_size=32, convert_to_numpy=True)
        r = {"st_max_seq_length": st.max_seq_length, "st_dtype": str(want.dtype)}
        for dtype in ["f32", "bf16"]:
            npy = os.path.join(OUT, f"emb-{name}-{dtype}.npy")
            run(["encode", "--model", path, "--input", path_txt, "--output", npy, "--device", "cuda",
                 "--dtype", dtype, "--max-seq-length", str(st.max_seq_length or 128), "--quiet"])
            got = np.load(npy)
            cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
            r[dtype] = {"max_abs_diff": float(np.abs(got - want).max()), "min_cosine": float(cos.min())}
        r["f32_ok"] = r["f32"]["max_abs_diff"] <= 1e-4
        r["bf16_ok"] = r["bf16"]["min_cosine"] >= 0.999
        out[name] = r
    return out


def parity_run(run_name, ref_dir):
    with open(os.path.join("recipes", "parity", run_name + ".toml")) as f:
        recipe = f.read().replace("../shared/", SHARED + "/")
    run_out = os.path.join(OUT, "parity-" + run_name)
    recipe = recipe.replace(f'output = "runs/parity/{run_name}"', f'output = "{run_out}"')
    cfg = os.path.join(OUT, run_name + ".toml")
    with open(cfg, "w") as f:
        f.write(recipe)
    trace = os.path.join(OUT, run_name + ".trace.jsonl")
    _, secs = run(["train", "--config", cfg, "--device", "cuda", "--trace", trace, "--quiet"])
    with open(trace) as f:
        got = [json.loads(l) for l in f]
    with open(os.path.join(ref_dir, run_name + ".json")) as f:
        want = json.load(f)["steps"]
    rel = lambda a, b: abs(a - b) / max(abs(b), 1e-30)
    inf = float("inf")
    worst_loss = max((rel(g["loss"], w["loss"]) for g, w in zip(got, want)), default=inf)
    worst_gn = max((rel(g["grad_norm"], w["grad_norm_before_clip"]) for g, w in zip(got, want)),
                   default=inf)
    return {"steps": len(got), "want_steps": len(want), "max_rel_loss": worst_loss,
            "max_rel_grad_norm": worst_gn, "seconds": round(secs, 2),
            "ok": len(got) == len(want) and worst_loss <= 1e-4 and worst_gn <= 1e-4}


@section("parity")
def parity():
    ref_dir = os.path.join(SHARED, "reference", "train-parity")
    out = {}
    for run_name in ["mnrl_pairs", "mnrl_hardneg", "mnrl_symmetric", "gradcache_equivalence"]:
        try:
            out[run_name] = parity_run(run_name, ref_dir)
        except Exception as e:  # one failing run must not hide the others
            out[run_name] = {"error": f"{type(e).__name__}: {e}"[-3000:]}
    return out


class GpuMemory:
    """Peak memory.used of GPU 0 while a block runs, from nvidia-smi sampled every 50 ms."""

    def __enter__(self):
        self.p = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                   "-lms", "50"], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        self.p.terminate()
        out, _ = self.p.communicate(timeout=10)
        vals = [int(v) for v in out.split() if v.strip().isdigit()]
        self.peak_mib = max(vals) if vals else None


def torch_step_time(s, batch, seq, dropout, steps=5):
    from transformers import AutoConfig, AutoModel

    tok = os.path.join(DEV, "tokenizers", "minilm" if s["kind"] == "bert" else "mpnet")
    cfg = AutoConfig.from_pretrained(tok)
    cfg.hidden_size, cfg.num_hidden_layers = s["hidden"], s["layers"]
    cfg.num_attention_heads, cfg.intermediate_size = s["heads"], s["inter"]
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
    torch.manual_seed(0)
    try:  # PyTorch at its best in eager mode: SDPA (flash) attention where the model has it
        model = AutoModel.from_config(cfg, attn_implementation="sdpa")
    except Exception:
        model = AutoModel.from_config(cfg)
    model = model.cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, eps=1e-6, weight_decay=0.01, fused=True)
    ids = [torch.randint(1000, 30000, (batch, seq), device="cuda") for _ in range(2)]
    mask = torch.ones(batch, seq, dtype=torch.long, device="cuda")

    def embed(x):
        h = model(input_ids=x, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(e.float(), dim=-1)

    torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(steps + 2):
        torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            a, p = embed(ids[0]), embed(ids[1])
        scores = a @ p.T * 20.0
        loss = torch.nn.functional.cross_entropy(scores, torch.arange(batch, device="cuda"))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        if i > 1:
            times.append(time.perf_counter() - t)
    attn = getattr(model.config, "_attn_implementation", "?")
    peak = torch.cuda.max_memory_reserved() / 2**20
    del model, opt
    torch.cuda.empty_cache()
    return sorted(times)[len(times) // 2], attn, peak


@section("train")
def train_bench():
    out = {}
    for name, s in SHAPES.items():
        for batch in [256, 1024]:
            for dropout in [0.0, 0.1]:
                if dropout > 0 and (name != "minilm-l6" or batch != 256):
                    continue
                key = f"{name}-b{batch}-dropout{dropout}"
                r = {"note": "pairtrain's bench runs BERT's graph for both shapes"}
                try:
                    py, attn, py_peak = torch_step_time(s, batch, 128, dropout)
                    r.update(torch_s_per_step=py, torch_attention=attn, torch_peak_reserved_mib=py_peak)
                except Exception as e:
                    r["torch_error"] = f"{type(e).__name__}: {e}"[-500:]
                args = ["bench", "train", "--device", "cuda", "--dtype", "bf16", "--batch", str(batch),
                        "--seq", "128", "--steps", "5", "--layers", str(s["layers"]), "--hidden",
                        str(s["hidden"]), "--heads", str(s["heads"]), "--intermediate", str(s["inter"]),
                        "--dropout", str(dropout), "--json"]
                try:
                    with GpuMemory() as mem:
                        stdout, _ = run(args, timeout=600)
                    j = json.loads(stdout.strip().splitlines()[-1])
                    r.update(pairtrain_s_per_step=j["s_per_step"], pairtrain_peak_used_mib=mem.peak_mib,
                             dtoh_copies_per_step=j.get("dtoh_copies_per_step"))
                    if "torch_s_per_step" in r:
                        r["speedup_vs_torch"] = r["torch_s_per_step"] / j["s_per_step"]
                except Exception as e:
                    r["pairtrain_error"] = f"{type(e).__name__}: {e}"[-1500:]
                out[key] = r
                save()
    return out


@section("encode")
def encode_bench():
    from sentence_transformers import SentenceTransformer

    texts_path = os.path.join(OUT, "bench-texts.txt")
    run(["bench", "encode", "--model", model_paths()["minilm-l6"], "--n", "4000", "--dump-texts", texts_path])
    with open(texts_path) as f:
        texts = [l.rstrip("\n") for l in f]
    out = {}
    for name, path in model_paths().items():
        for dtype in ["f32", "bf16"]:
            st = SentenceTransformer(path, device="cuda")
            if dtype == "bf16":
                st = st.to(torch.bfloat16)
            st.encode(texts[:256], batch_size=128)
            best = 1e9
            for _ in range(3):
                torch.cuda.synchronize()
                t = time.perf_counter()
                st.encode(texts, batch_size=128)
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t)
            stdout, _ = run(["bench", "encode", "--model", path, "--n", str(len(texts)), "--batch-size", "128",
                             "--repeat", "3", "--device", "cuda", "--dtype", dtype, "--json"])
            ours = json.loads(stdout.strip().splitlines()[-1])["sentences_per_s"]
            st_sps = len(texts) / best
            out[f"{name}-{dtype}"] = {"pairtrain_sentences_per_s": ours, "st_sentences_per_s": st_sps,
                                      "ratio": ours / st_sps}
            del st
            torch.cuda.empty_cache()
    return out


save()
print(json.dumps({k: v for k, v in results.items() if k != "models"}, indent=1)[:6000])
