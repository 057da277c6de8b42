"""The Hugging Face cache, both ways, with Python's huggingface_hub (crates/pairtrain/tests/
hub_python.rs runs this against the stand-in hub it starts on 127.0.0.1):

  fill  --cache DIR: download a model and a dataset's files the way the Python tools do
        (snapshot_download; hf_hub_download of a module file the repository lacks, which
        records it as absent), for pairtrain to read offline.
  check --cache DIR: with HF_HUB_OFFLINE=1, find in a cache pairtrain filled every file and the
        absent-file marker, through huggingface_hub alone; print one JSON line of what it found
        (sha256 of each file), and, where sentence-transformers is installed, the embeddings it
        gives for two texts from the cached model.

Run from a venv with huggingface_hub (sentence-transformers optional):
  python scripts/reference/hf_cache_interop.py fill|check --endpoint URL --cache DIR \
      --model ORG/NAME --dataset ORG/NAME
"""
import argparse, hashlib, json, os, sys

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["fill", "check"])
ap.add_argument("--endpoint", required=True)
ap.add_argument("--cache", required=True)
ap.add_argument("--model", required=True)
ap.add_argument("--dataset", required=True)
a = ap.parse_args()

os.environ["HF_ENDPOINT"] = a.endpoint
os.environ["HF_HUB_CACHE"] = a.cache
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_XET"] = "1"
if a.mode == "check":
    os.environ["HF_HUB_OFFLINE"] = "1"

import huggingface_hub as hh
from huggingface_hub.file_download import _CACHED_NO_EXIST


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


if a.mode == "fill":
    model_dir = hh.snapshot_download(a.model, cache_dir=a.cache)
    try:
        hh.hf_hub_download(a.model, "2_Normalize/config.json", cache_dir=a.cache)
        sys.exit("2_Normalize/config.json should not exist in the test model")
    except hh.errors.EntryNotFoundError:
        pass
    data_dir = hh.snapshot_download(a.dataset, repo_type="dataset", cache_dir=a.cache)
    print(json.dumps({"model": model_dir, "dataset": data_dir}))
    sys.exit(0)

found = {}
model_dir = hh.snapshot_download(a.model, cache_dir=a.cache, local_files_only=True)
for root, _, files in os.walk(model_dir):
    for f in files:
        p = os.path.join(root, f)
        found["model/" + os.path.relpath(p, model_dir)] = sha(p)
absent = hh.try_to_load_from_cache(a.model, "2_Normalize/config.json", cache_dir=a.cache)
found["absent_marker"] = absent is _CACHED_NO_EXIST
data_dir = hh.snapshot_download(a.dataset, repo_type="dataset", cache_dir=a.cache,
                                local_files_only=True)
for root, _, files in os.walk(data_dir):
    for f in files:
        p = os.path.join(root, f)
        found["dataset/" + os.path.relpath(p, data_dir)] = sha(p)
try:
    from sentence_transformers import SentenceTransformer
except ImportError:
    found["embeddings"] = None
else:
    m = SentenceTransformer(a.model, cache_folder=a.cache, device="cpu")
    found["embeddings"] = m.encode(["How do I keep coffee fresh?", "a"]).tolist()
print(json.dumps(found))
