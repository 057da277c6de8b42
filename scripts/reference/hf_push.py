"""What Python's tools do with the stand-in hub's upload API (crates/pairtrain/tests/
push_python.rs runs this against the server it starts on 127.0.0.1):

  upload --folder DIR --repo ORG/NAME [--dataset]: publish a folder as huggingface_hub does
         (create_repo with exist_ok, then upload_folder), for the test to compare the requests
         with what `pairtrain push` sent.
  load   --repo ORG/NAME --config NAME: datasets.load_dataset of a dataset pairtrain pushed;
         prints one JSON line: rows per split and the column names.
  embed  --repo ORG/NAME: SentenceTransformer(ORG/NAME) of a model pairtrain pushed, from the
         stand-in; prints one JSON line: the embeddings of two texts.

Run from a venv with huggingface_hub (and datasets for `load`):
  python scripts/reference/hf_push.py upload|load --endpoint URL --token T ...
"""
import argparse, json, os, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["upload", "load", "embed"])
ap.add_argument("--endpoint", required=True)
ap.add_argument("--token", required=True)
ap.add_argument("--repo", required=True)
ap.add_argument("--folder")
ap.add_argument("--dataset", action="store_true")
ap.add_argument("--config")
a = ap.parse_args()

os.environ["HF_ENDPOINT"] = a.endpoint
os.environ["HF_TOKEN"] = a.token
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp()

if a.mode == "upload":
    from huggingface_hub import HfApi

    api = HfApi(endpoint=a.endpoint, token=a.token)
    kind = "dataset" if a.dataset else "model"
    api.create_repo(a.repo, repo_type=kind, exist_ok=True)
    api.upload_folder(folder_path=a.folder, repo_id=a.repo, repo_type=kind,
                      commit_message="Upload with huggingface_hub")
    print(json.dumps({"ok": True}))
elif a.mode == "embed":
    from sentence_transformers import SentenceTransformer

    m = SentenceTransformer(a.repo, cache_folder=tempfile.mkdtemp())
    texts = ["How do I keep coffee fresh?", "Grind just before brewing."]
    print(json.dumps(m.encode(texts).tolist()))
else:
    import datasets

    ds = datasets.load_dataset(a.repo, a.config, cache_dir=tempfile.mkdtemp())
    print(json.dumps({s: {"rows": d.num_rows, "columns": d.column_names} for s, d in ds.items()}))
