//! The hub from the command line, against a stand-in hub on 127.0.0.1 (test_support::hub_server):
//! a recipe whose model, data and evaluation set are hub references is checked, fetched and
//! trained, then trained again offline with the server gone; interrupted, corrupted and
//! disk-full downloads; and hostile repositories (issue 33), each a clear error with nothing
//! written outside the cache, nothing half-written in it, and no panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use test_support::hub_server::{Hostile, HubServer, RepoSpec, LFS_FROM};
use test_support::shared_dir;

fn tiny_model() -> RepoSpec {
    let mut spec = RepoSpec::from_dir(&shared_dir().join("reference/train-parity/model"), "tiny");
    // As on the hub for all-MiniLM-L6-v2: modules.json names 2_Normalize, which has no files.
    spec.files.remove("2_Normalize/config.json");
    spec
}

/// `pairtrain ARGS` with the hub environment of `home` (HF_HOME) and `endpoint`.
fn run(home: &Path, endpoint: &str, offline: bool, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pairtrain"));
    c.args(["--threads", "2"])
        .args(args)
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    if offline {
        c.env("HF_HUB_OFFLINE", "1");
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Blobs, partial downloads and snapshot entries under the cache.
fn cache_content(home: &Path) -> Vec<PathBuf> {
    test_support::all_files(&home.join("hub"))
        .into_iter()
        .filter(|p| {
            p.components().any(|c| {
                let c = c.as_os_str();
                c == "blobs" || c == "snapshots"
            })
        })
        .collect()
}

fn recipe(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            r#"
[model]
base = "org/tiny"
[loss]
kind = "mnrl"
[train]
batch_size = 8
steps = 3
lr = 1e-4
eval_every = 3
output = "{out}"
[[eval]]
name = "sts"
kind = "sts"
path = "hf://datasets/org/pairs/eval/sts-dev.tsv"
[[data]]
name = "pairs"
path = "hf://datasets/org/pairs/data/*.jsonl"
"#,
            out = dir.join(name).display()
        ),
    )
    .unwrap();
    p
}

fn pairs_dataset(big_file: Option<Vec<u8>>) -> RepoSpec {
    let parity = std::fs::read(shared_dir().join("reference/train-parity/pairs.jsonl")).unwrap();
    let text = String::from_utf8(parity).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    let sts = std::fs::read_to_string(shared_dir().join("data/stsb/sts-dev.tsv")).unwrap();
    let sts: String = sts.lines().take(101).map(|l| format!("{l}\n")).collect();
    let mut files = BTreeMap::new();
    files.insert(
        "data/train-0.jsonl".into(),
        (a.join("\n") + "\n").into_bytes(),
    );
    files.insert(
        "data/train-1.jsonl".into(),
        (b.join("\n") + "\n").into_bytes(),
    );
    files.insert("eval/sts-dev.tsv".into(), sts.into_bytes());
    files.insert("README.md".into(), b"# pairs\n".to_vec());
    if let Some(big) = big_file {
        files.insert("data/train-2.jsonl".into(), big);
    }
    RepoSpec::new(files, "pairs")
}

#[test]
fn a_recipe_from_the_hub_fetches_trains_and_trains_again_offline() {
    let server = HubServer::start();
    server.add_model("org/tiny", tiny_model());
    server.add_dataset("org/pairs", pairs_dataset(None));
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("hf");
    let r = recipe(d.path(), "online");
    let r = r.to_str().unwrap();

    let check = run(&home, &server.endpoint, false, &["data", "check-recipe", r]);
    assert!(check.status.success(), "{}", text(&check));
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(out.contains("will download  model org/tiny"), "{out}");
    assert!(
        out.contains("will download  data pairs data/train-0.jsonl"),
        "{out}"
    );
    assert!(
        out.contains("will download  eval sts eval/sts-dev.tsv"),
        "{out}"
    );

    let fetch = run(
        &home,
        &server.endpoint,
        false,
        &["data", "fetch", r, "--quiet"],
    );
    assert!(fetch.status.success(), "{}", text(&fetch));
    let err = String::from_utf8_lossy(&fetch.stderr);
    assert!(
        err.contains("0 files already cached") && err.contains("3 downloaded"),
        "{err}"
    );
    let again = run(
        &home,
        &server.endpoint,
        false,
        &["data", "fetch", r, "--quiet"],
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("3 files already cached") && err.contains("0 downloaded"),
        "{err}"
    );
    assert!(err.contains("model org/tiny: cached"), "{err}");

    let check = run(&home, &server.endpoint, false, &["data", "check-recipe", r]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{}", text(&check));
    assert!(out.contains("cached   model org/tiny"), "{out}");
    assert!(
        out.contains("ok       data pairs") && out.contains("32 rows read"),
        "{out}"
    );

    let train = run(
        &home,
        &server.endpoint,
        false,
        &["train", "--quiet", "--config", r],
    );
    assert!(train.status.success(), "{}", text(&train));

    // The server gone, offline: the same recipe trains from the cache alone.
    drop(server);
    let r2 = recipe(d.path(), "offline");
    let r2 = r2.to_str().unwrap();
    let dead = "http://127.0.0.1:9";
    let check = run(&home, dead, true, &["data", "check-recipe", r2]);
    assert!(check.status.success(), "{}", text(&check));
    let train = run(&home, dead, true, &["train", "--quiet", "--config", r2]);
    assert!(train.status.success(), "{}", text(&train));
    assert!(d.path().join("offline/model/model.safetensors").is_file());
    // Online with no server: the error says so and how to stay offline.
    let fail = run(&home, dead, false, &["data", "fetch", r2, "--quiet"]);
    assert_eq!(fail.status.code(), Some(1), "{}", text(&fail));
    let err = String::from_utf8_lossy(&fail.stderr);
    assert!(
        err.contains("cannot reach") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
}

#[test]
fn interrupted_corrupted_and_disk_full_downloads() {
    let big: Vec<u8> = std::iter::repeat_n(
        b"{\"anchor\": \"a question about coffee\", \"positive\": \"an answer about beans\"}\n"
            .to_vec(),
        LFS_FROM / 40,
    )
    .flatten()
    .collect();
    let server = HubServer::start();
    server.add_model("org/tiny", tiny_model());
    let mut spec = pairs_dataset(Some(big.clone()));
    spec.hostile.insert(
        "data/train-2.jsonl".into(),
        Hostile::DropAfter(LFS_FROM / 2),
    );
    server.add_dataset("org/pairs", spec);
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("hf");
    let r = recipe(d.path(), "run");
    let r = r.to_str().unwrap();

    // The connection drops halfway through the big file: an error, the part kept.
    let first = run(
        &home,
        &server.endpoint,
        false,
        &["data", "fetch", r, "--quiet"],
    );
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    assert!(String::from_utf8_lossy(&first.stderr).contains("data/train-2.jsonl"));
    // Run again: it resumes from where it stopped.
    let second = run(
        &home,
        &server.endpoint,
        false,
        &["data", "fetch", r, "--quiet"],
    );
    assert!(second.status.success(), "{}", text(&second));
    let resumed = format!("bytes={}-", LFS_FROM / 2);
    assert!(
        server.requests().iter().any(|l| l.contains(&resumed)),
        "{:?}",
        server.requests()
    );
    let snapshot = test_support::all_files(&home.join("hub/datasets--org--pairs/snapshots"));
    let big_path = snapshot
        .iter()
        .find(|p| p.ends_with("data/train-2.jsonl"))
        .unwrap();
    assert_eq!(std::fs::read(big_path).unwrap(), big);

    // A damaged blob: --verify finds it and fetches it again.
    let blob = std::fs::canonicalize(big_path).unwrap();
    let mut damaged = big.clone();
    damaged[10] ^= 1;
    std::fs::write(&blob, &damaged).unwrap();
    let verify = run(
        &home,
        &server.endpoint,
        false,
        &["data", "fetch", r, "--quiet", "--verify"],
    );
    assert!(verify.status.success(), "{}", text(&verify));
    let err = String::from_utf8_lossy(&verify.stderr);
    assert!(
        err.contains("sha256 of the cached blob") && err.contains("fetching it again"),
        "{err}"
    );
    assert_eq!(std::fs::read(big_path).unwrap(), big);

    // A disk that fills up (a file-size limit of 256 KiB): a clear error, nothing half-written.
    let home2 = d.path().join("hf2");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -f 256; exec \"$0\" --threads 2 data fetch {r} --quiet"
        ))
        .arg(env!("CARGO_BIN_EXE_pairtrain"))
        .env("HF_HOME", &home2)
        .env("HF_ENDPOINT", &server.endpoint)
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("File too large") && err.contains(".incomplete"),
        "{err}"
    );
    let left: Vec<_> = test_support::all_files(&home2.join("hub/datasets--org--pairs/blobs"))
        .into_iter()
        .filter(|p| {
            std::fs::metadata(p)
                .map(|m| m.len() >= 256 * 1024)
                .unwrap_or(false)
        })
        .collect();
    assert!(left.is_empty(), "half-written: {left:?}");
}

/// A model repository that is all-MiniLM-like except for `change`.
fn hostile_model(change: impl FnOnce(&mut RepoSpec)) -> RepoSpec {
    let mut spec = tiny_model();
    change(&mut spec);
    spec
}

#[test]
fn hostile_repositories_are_clear_errors() {
    let server = HubServer::start();
    let traversal = "../../../../../../../../tmp/pairtrain-trav-test/escaped";
    let modules = |path: &str| {
        serde_json::json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": path, "type": "sentence_transformers.models.Pooling"}
        ])
        .to_string()
        .into_bytes()
    };
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let mut lying_header = 1_000_000u64.to_le_bytes().to_vec();
    lying_header
        .extend_from_slice(b"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}");
    let mut bad_offsets = Vec::new();
    let header = b"{\"w\":{\"dtype\":\"F32\",\"shape\":[1000000],\"data_offsets\":[0,4000000]}}";
    bad_offsets.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bad_offsets.extend_from_slice(header);
    bad_offsets.extend_from_slice(&[0u8; 16]);

    let cases: Vec<(&str, RepoSpec, &str)> = vec![
        (
            "evil/traversal",
            hostile_model(|s| {
                s.files.insert("modules.json".into(), modules(traversal));
                s.extra_listing = vec![format!("{traversal}/config.json")];
            }),
            "refusing the name",
        ),
        (
            "evil/module-path",
            hostile_model(|s| {
                s.files.insert("modules.json".into(), modules(traversal));
            }),
            "refusing the name",
        ),
        (
            "evil/huge-config",
            hostile_model(|s| {
                let mut big = b"{\"pad\": \"".to_vec();
                big.extend(std::iter::repeat_n(b'x', 17 << 20));
                big.extend_from_slice(b"\"}");
                s.files.insert("config.json".into(), big);
            }),
            "not a configuration file",
        ),
        (
            "evil/nested-modules",
            hostile_model(|s| {
                s.files.insert("modules.json".into(), nested.clone());
            }),
            "recursion limit",
        ),
        (
            "evil/not-a-tokenizer",
            hostile_model(|s| {
                s.files
                    .insert("tokenizer.json".into(), b"{\"hello\": [1, 2, 3]}".to_vec());
            }),
            "tokenizer",
        ),
        (
            "evil/lying-header",
            hostile_model(|s| {
                s.files
                    .insert("model.safetensors".into(), lying_header.clone());
            }),
            "model.safetensors",
        ),
        (
            "evil/bad-offsets",
            hostile_model(|s| {
                s.files
                    .insert("model.safetensors".into(), bad_offsets.clone());
            }),
            "model.safetensors",
        ),
        (
            "evil/larger-than-listed",
            hostile_model(|s| {
                s.hostile
                    .insert("model.safetensors".into(), Hostile::AnnounceSize(1000));
            }),
            "more than the 1000 bytes",
        ),
        (
            "evil/endless",
            hostile_model(|s| {
                // Unique content: the storage host finds LFS files by their hash.
                let mut w = s.files["model.safetensors"].clone();
                w.resize(w.len().max(LFS_FROM + 1), 0);
                w.extend_from_slice(b"endless");
                s.files.insert("model.safetensors".into(), w);
                s.hostile
                    .insert("model.safetensors".into(), Hostile::EndlessBody);
            }),
            "more than the",
        ),
        (
            "evil/loop",
            hostile_model(|s| {
                s.hostile
                    .insert("config.json".into(), Hostile::RedirectLoop);
            }),
            "redirect loop",
        ),
        (
            "evil/elsewhere",
            hostile_model(|s| {
                s.hostile
                    .insert("tokenizer.json".into(), Hostile::RedirectElsewhere);
            }),
            "another host",
        ),
    ];
    let d = tempfile::tempdir().unwrap();
    let texts = d.path().join("texts.txt");
    std::fs::write(&texts, "one text\nanother\n").unwrap();
    let _ = std::fs::remove_dir_all("/tmp/pairtrain-trav-test");
    for (id, spec, want) in cases {
        server.add_model(id, spec);
        let home = d.path().join(id.replace('/', "_"));
        let before = test_support::all_files(d.path());
        let out = run(
            &home,
            &server.endpoint,
            false,
            &[
                "encode",
                "--model",
                id,
                "--input",
                texts.to_str().unwrap(),
                "--output",
                d.path().join("out.npy").to_str().unwrap(),
                "--quiet",
            ],
        );
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{id}: {all}");
        assert!(!all.contains("panicked"), "{id}: {all}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("error:") && err.contains(want),
            "{id}: wanted {want:?} in {err}"
        );
        assert!(
            !Path::new("/tmp/pairtrain-trav-test").exists(),
            "{id} wrote outside"
        );
        // Nothing new outside this repository's cache, and no output file.
        let after: Vec<_> = test_support::all_files(d.path())
            .into_iter()
            .filter(|p| !before.contains(p) && !p.starts_with(&home))
            .collect();
        assert!(after.is_empty(), "{id}: {after:?}");
        // Nothing half-written in the cache.
        let partial: Vec<_> = cache_content(&home)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".incomplete"))
            .collect();
        assert!(partial.is_empty(), "{id}: {partial:?}");
    }

    // Datasets: a listing with a traversal name is refused by fetch, before any write.
    let mut spec = pairs_dataset(None);
    spec.extra_listing = vec!["../../../../../../../../tmp/pairtrain-trav-test/x.jsonl".into()];
    server.add_dataset("org/pairs", spec);
    server.add_model("org/tiny", tiny_model());
    let home = d.path().join("datasets");
    let r = recipe(d.path(), "evil-data");
    let out = run(
        &home,
        &server.endpoint,
        false,
        &["data", "fetch", r.to_str().unwrap(), "--quiet"],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("refusing the name") && !all.contains("panicked"),
        "{all}"
    );
    assert!(!Path::new("/tmp/pairtrain-trav-test").exists());
    let out = run(
        &home,
        &server.endpoint,
        false,
        &["train", "--quiet", "--config", r.to_str().unwrap()],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("refusing the name") && !all.contains("panicked"),
        "{all}"
    );
}
