//! The cache is huggingface_hub's, both ways: Python's huggingface_hub fills a cache from the
//! stand-in hub and pairtrain reads it offline; pairtrain fills one and huggingface_hub finds every
//! file (and the marker of a file the repository lacks) offline. Where sentence-transformers is
//! installed beside it, the model pairtrain downloaded also loads there and gives pairtrain's
//! embeddings.
//!
//! Needs a Python with huggingface_hub: `PAIRTRAIN_HF_PYTHON` (CI sets it up; see .ci/run). Without
//! it the test says so and does nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use test_support::hub_server::{HubServer, RepoSpec};
use test_support::{repo_root, shared_dir};

fn python() -> Option<String> {
    let p = std::env::var("PAIRTRAIN_HF_PYTHON").ok()?;
    Some(p).filter(|p| !p.is_empty())
}

fn interop(py: &str, mode: &str, endpoint: &str, cache: &Path) -> serde_json::Value {
    let out = Command::new(py)
        .arg(repo_root().join("scripts/reference/hf_cache_interop.py"))
        .args([mode, "--endpoint", endpoint, "--cache"])
        .arg(cache)
        .args(["--model", "org/tiny", "--dataset", "org/pairs"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{mode}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn pairtrain(cache: &Path, endpoint: &str, offline: bool, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pairtrain"));
    c.args(["--threads", "2"])
        .args(args)
        .env("HF_HUB_CACHE", cache)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    if offline {
        c.env("HF_HUB_OFFLINE", "1");
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sha256(p: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(p).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn caches_written_by_either_tool_are_read_offline_by_the_other() {
    let Some(py) = python() else {
        eprintln!(
            "PAIRTRAIN_HF_PYTHON is not set: the huggingface_hub interoperability test did not run"
        );
        return;
    };
    let tiny = shared_dir().join("reference/train-parity/model");
    let server = HubServer::start();
    let mut model = RepoSpec::from_dir(&tiny, "tiny");
    model.files.remove("2_Normalize/config.json");
    server.add_model("org/tiny", model);
    let mut data = BTreeMap::new();
    data.insert(
        "data/train.jsonl".to_string(),
        std::fs::read(shared_dir().join("reference/train-parity/pairs.jsonl")).unwrap(),
    );
    server.add_dataset("org/pairs", RepoSpec::new(data, "pairs"));
    let d = tempfile::tempdir().unwrap();
    let texts = d.path().join("texts.txt");
    std::fs::write(&texts, "How do I keep coffee fresh?\na\n").unwrap();
    let recipe = d.path().join("r.toml");
    std::fs::write(
        &recipe,
        format!(
            "[model]\nbase = \"org/tiny\"\n[train]\nbatch_size = 8\nsteps = 2\noutput = \"{}\"\n\
             [[data]]\npath = \"hf://datasets/org/pairs/data/*.jsonl\"\n",
            d.path().join("run").display()
        ),
    )
    .unwrap();
    let dead = "http://127.0.0.1:9";

    // Python fills, pairtrain reads offline.
    let py_cache = d.path().join("py-cache");
    interop(&py, "fill", &server.endpoint, &py_cache);
    let emb = d.path().join("a.jsonl");
    let args = [
        "encode",
        "--model",
        "org/tiny",
        "--input",
        texts.to_str().unwrap(),
        "--output",
        emb.to_str().unwrap(),
        "--quiet",
    ];
    pairtrain(&py_cache, dead, true, &args);
    let check = pairtrain(
        &py_cache,
        dead,
        true,
        &["data", "check-recipe", recipe.to_str().unwrap()],
    );
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        out.contains("ok       data data0") && out.contains("datasets--org--pairs/snapshots/"),
        "{out}"
    );
    pairtrain(
        &py_cache,
        dead,
        true,
        &["train", "--quiet", "--config", recipe.to_str().unwrap()],
    );

    // pairtrain fills, huggingface_hub finds everything offline.
    let pt_cache = d.path().join("pt-cache");
    pairtrain(
        &pt_cache,
        &server.endpoint,
        false,
        &["data", "fetch", recipe.to_str().unwrap(), "--quiet"],
    );
    let found = interop(&py, "check", dead, &pt_cache);
    assert_eq!(found["absent_marker"], true, "{found}");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "1_Pooling/config.json",
    ] {
        assert_eq!(
            found[format!("model/{f}")].as_str(),
            Some(sha256(&tiny.join(f)).as_str()),
            "{f}: {found}"
        );
    }
    assert_eq!(
        found["dataset/data/train.jsonl"].as_str(),
        Some(sha256(&shared_dir().join("reference/train-parity/pairs.jsonl")).as_str())
    );
    // sentence-transformers on the cache pairtrain wrote: pairtrain's embeddings.
    if let Some(st) = found["embeddings"].as_array() {
        let emb2 = d.path().join("b.jsonl");
        let mut args = args;
        args[6] = emb2.to_str().unwrap();
        pairtrain(&pt_cache, dead, true, &args);
        let ours: Vec<Vec<f64>> = std::fs::read_to_string(&emb2)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                serde_json::from_value(v["embedding"].clone()).unwrap()
            })
            .collect();
        for (a, b) in ours.iter().zip(st) {
            for (x, y) in a.iter().zip(b.as_array().unwrap()) {
                assert!((x - y.as_f64().unwrap()).abs() < 1e-5, "{x} vs {y}");
            }
        }
    } else {
        eprintln!("sentence-transformers is not installed beside huggingface_hub: not compared");
    }
}
