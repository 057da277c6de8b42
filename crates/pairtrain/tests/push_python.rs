//! `pairtrain push` sends what Python's huggingface_hub sends: both publish the same folder to the
//! stand-in hub (test_support::hub_server), and their write requests are compared one by one
//! (endpoints, preupload and LFS batch bodies, the commit's operations); both repositories end
//! with the same files. Where Python's `datasets` is installed beside huggingface_hub, a dataset
//! pairtrain pushed is loaded with `datasets.load_dataset` from the stand-in, with the right row
//! counts per configuration and split.
//!
//! Needs a Python with huggingface_hub: `PAIRTRAIN_HF_PYTHON` (CI sets it up; see .ci/run).
//! Without it the test says so and does nothing.

use serde_json::Value;
use std::process::Command;
use test_support::hub_server::{HubServer, WriteRequest as Write};
use test_support::{push_fixture_model, repo_root};

const TOKEN: &str = "hf_pairtrainWriteToken0123456789";

fn python() -> Option<String> {
    std::env::var("PAIRTRAIN_HF_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
}

fn script(py: &str, server: &HubServer, args: &[&str]) -> Value {
    let out = Command::new(py)
        .arg(repo_root().join("scripts/reference/hf_push.py"))
        .args(args)
        .args(["--endpoint", &server.endpoint, "--token", TOKEN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {:?}\n{}\n{}",
        server.requests().iter().rev().take(12).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn push(server: &HubServer, args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_pairtrain"))
        .arg("push")
        .args(args)
        .arg("--quiet")
        .env("HF_ENDPOINT", &server.endpoint)
        .env("HF_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A write request with the repository's name and the commit message taken out, its JSON body
/// in a canonical order: what must be equal between the two clients.
fn canonical(w: &Write, repo: &str) -> (String, String, Value) {
    let path = w.path.replace(repo, "REPO");
    let body = if w.content_type.contains("ndjson") {
        let mut ops: Vec<Value> = w
            .body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .filter(|v: &Value| v["key"] != "header")
            .collect();
        ops.sort_by_key(|v| v["value"]["path"].as_str().unwrap_or_default().to_string());
        Value::Array(ops)
    } else if w.path.starts_with("/lfs-upload/") {
        Value::from(w.body.len())
    } else {
        let mut v: Value = serde_json::from_slice(&w.body).unwrap_or_default();
        for list in ["files", "objects"] {
            if let Some(a) = v.get_mut(list).and_then(|l| l.as_array_mut()) {
                a.sort_by_key(|e| e.to_string());
            }
        }
        if let Some(name) = v["name"].as_str() {
            v["name"] = name
                .replace(repo.rsplit('/').next().unwrap(), "NAME")
                .into();
        }
        v
    };
    (format!("{} {path}", w.method), w.content_type.clone(), body)
}

#[test]
fn pairtrain_sends_what_huggingface_hub_sends() {
    let Some(py) = python() else {
        eprintln!(
            "PAIRTRAIN_HF_PYTHON is not set: the comparison with huggingface_hub did not run"
        );
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let model = push_fixture_model(d.path());
    let server = HubServer::start();
    server.require_tokens(&[TOKEN]);
    push(&server, &[model.to_str().unwrap(), "org/tiny-pt"]);
    let ours = server.writes();
    script(
        &py,
        &server,
        &[
            "upload",
            "--folder",
            model.to_str().unwrap(),
            "--repo",
            "org/tiny-py",
        ],
    );
    let mut theirs = server.writes()[ours.len()..].to_vec();
    // huggingface_hub checks the card twice (upload_folder, then create_commit); once is enough.
    theirs.dedup_by(|x, y| x.path == "/api/validate-yaml" && x.path == y.path && x.body == y.body);
    // The same content: Python's uploads found the storage holding it already.
    let a: Vec<_> = ours
        .iter()
        .filter(|w| !w.path.starts_with("/lfs-"))
        .map(|w| canonical(w, "org/tiny-pt"))
        .collect();
    let b: Vec<_> = theirs
        .iter()
        .filter(|w| !w.path.starts_with("/lfs-"))
        .map(|w| canonical(w, "org/tiny-py"))
        .collect();
    let steps = |v: &[(String, String, Value)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(steps(&a), steps(&b));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "{}", x.0);
    }
    assert_eq!(
        server.files("models", "org/tiny-pt"),
        server.files("models", "org/tiny-py")
    );

    // Where sentence-transformers is installed too, it loads the pushed model from the hub and
    // embeds as pairtrain does.
    let has_st = Command::new(&py)
        .args(["-c", "import sentence_transformers"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_st {
        let theirs = script(&py, &server, &["embed", "--repo", "org/tiny-pt"]);
        let texts = d.path().join("t.txt");
        std::fs::write(
            &texts,
            "How do I keep coffee fresh?\nGrind just before brewing.\n",
        )
        .unwrap();
        let out = d.path().join("e.jsonl");
        let o = Command::new(env!("CARGO_BIN_EXE_pairtrain"))
            .args(["encode", "--quiet", "--model"])
            .arg(&model)
            .arg("--input")
            .arg(&texts)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success());
        let ours: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut worst = 0f64;
        for (a, b) in ours.iter().zip(theirs.as_array().unwrap()) {
            let a = a.get("embedding").unwrap_or(a).as_array().unwrap();
            for (x, y) in a.iter().zip(b.as_array().unwrap()) {
                worst = worst.max((x.as_f64().unwrap() - y.as_f64().unwrap()).abs());
            }
        }
        eprintln!("sentence-transformers on the pushed model vs pairtrain: max |diff| {worst:.2e}");
        assert!(worst < 1e-5, "{worst}");
    } else {
        eprintln!("{py} has no sentence-transformers: the pushed model was not loaded there");
    }

    // The storage side, on a fresh server, Python first: both send each object once.
    let server = HubServer::start();
    script(
        &py,
        &server,
        &[
            "upload",
            "--folder",
            model.to_str().unwrap(),
            "--repo",
            "org/tiny-py",
        ],
    );
    let theirs: Vec<_> = server
        .writes()
        .iter()
        .filter(|w| w.path.starts_with("/lfs-"))
        .map(|w| canonical(w, "org/tiny-py"))
        .collect();
    let server2 = HubServer::start();
    push(&server2, &[model.to_str().unwrap(), "org/tiny-py"]);
    let ours: Vec<_> = server2
        .writes()
        .iter()
        .filter(|w| w.path.starts_with("/lfs-"))
        .map(|w| canonical(w, "org/tiny-py"))
        .collect();
    // huggingface_hub uploads in parallel threads: compared as sets of requests.
    let sorted = |mut v: Vec<(String, String, Value)>| {
        v.sort_by_key(|x| format!("{x:?}"));
        v
    };
    assert_eq!(ours.len(), 4, "{:?}", steps(&ours));
    assert_eq!(sorted(ours), sorted(theirs));
}

#[test]
fn a_pushed_dataset_loads_with_datasets() {
    let Some(py) = python() else {
        eprintln!("PAIRTRAIN_HF_PYTHON is not set: the datasets test did not run");
        return;
    };
    let has_datasets = Command::new(&py)
        .args(["-c", "import datasets"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_datasets {
        eprintln!("{py} has no `datasets`: the load_dataset test did not run");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let data = test_support::push_fixture_dataset(env!("CARGO_BIN_EXE_pairtrain"), d.path());
    let server = HubServer::start();
    push(&server, &["--dataset", data.to_str().unwrap(), "org/pairs"]);
    let got = script(
        &py,
        &server,
        &["load", "--repo", "org/pairs", "--config", "title_answer"],
    );
    assert_eq!(got["train"]["rows"], 203, "{got}");
    assert_eq!(
        got["train"]["columns"],
        serde_json::json!(["anchor", "positive"])
    );
    let got = script(
        &py,
        &server,
        &["load", "--repo", "org/pairs", "--config", "default"],
    );
    assert_eq!(got["train"]["rows"], 2, "{got}");
    assert_eq!(got["test"]["rows"], 1, "{got}");
}
