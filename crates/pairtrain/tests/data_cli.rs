//! `pairtrain data …` and training from compressed, sharded, mixed datasets: validate and stats
//! report real rows, bad rows are errors or counted skips, and a resumed run over two datasets
//! (gzip + a glob of zstd shards, two datasets per batch) continues with the exact losses.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use test_support::shared_dir;

fn pairtrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pairtrain"))
        .args(["--threads", "2"])
        .args(args)
        .output()
        .unwrap()
}

/// The parity pairs split into `a.jsonl.gz` (32 rows) and `b-0/1.jsonl.zst` (16 rows each);
/// `b-1` ends with a one-text row (its line 17).
fn make_data(d: &Path) {
    let rows: Vec<String> =
        std::fs::read_to_string(shared_dir().join("reference/train-parity/pairs.jsonl"))
            .unwrap()
            .lines()
            .map(|l| format!("{l}\n"))
            .collect();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(d.join("a.jsonl.gz")).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(rows[..32].concat().as_bytes()).unwrap();
    gz.finish().unwrap();
    for (i, part) in rows[32..].chunks(16).enumerate() {
        let mut body = part.concat();
        if i == 1 {
            body += "[\"only one text\"]\n";
        }
        std::fs::write(
            d.join(format!("b-{i}.jsonl.zst")),
            zstd::encode_all(body.as_bytes(), 3).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn validate_and_stats_report_rows_and_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_data(d);
    let glob = d.join("*.jsonl.*").display().to_string();
    let o = pairtrain(&["data", "validate", &glob]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    let want = format!(
        "{}:17: a row needs at least 2 texts, this one has 1",
        d.join("b-1.jsonl.zst").display()
    );
    assert_eq!(out.trim(), want);
    assert!(String::from_utf8_lossy(&o.stderr).contains("64 good rows, 1 bad rows"));

    // stats: the default policy stops at the bad row, naming it; skip counts it.
    let o = pairtrain(&["data", "stats", &glob]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("b-1.jsonl.zst:17:"));
    let o = pairtrain(&["data", "stats", &glob, "--on-bad-row", "skip", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"], 64);
    assert_eq!(v["texts"], 128);
    assert_eq!(v["skipped"]["by_reason"]["fewer than 2 texts"], 1);
    assert_eq!(v["files"][0][1], 32);
}

fn recipe(d: &Path, name: &str, policy: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[model]
base = "{model}"
[train]
batch_size = 8
steps = 24
lr = 1e-3
save_every = 10
seed = 3
datasets_per_batch = 2
shuffle_buffer = 5
on_bad_row = "{policy}"
tokenize_workers = 3
output = "{out}"
[[data]]
name = "a"
path = "{a}"
weight = 2
[[data]]
name = "b"
path = "{b}"
"#,
        model = shared_dir().join("reference/train-parity/model").display(),
        a = d.join("a.jsonl.gz").display(),
        b = d.join("b-*.jsonl.zst").display(),
        out = d.join(name).display(),
    );
    let p = d.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn losses(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn training_on_mixed_compressed_data_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_data(d);

    let strict = recipe(d, "strict", "error");
    let o = pairtrain(&["train", "--quiet", "--config", strict.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("b-1.jsonl.zst:17: a row needs at least 2 texts"),
        "{err}"
    );

    let full = recipe(d, "full", "skip");
    let trace = d.join("full.jsonl");
    let o = pairtrain(&[
        "train",
        "--quiet",
        "--config",
        full.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("1 rows skipped (fewer than 2 texts: 1)"),
        "{err}"
    );
    let want = losses(&trace);
    assert_eq!(want.len(), 24);
    // The log says where each batch came from: two datasets, 4 rows each.
    let log = std::fs::read_to_string(d.join("full/train_log.jsonl")).unwrap();
    for l in log.lines().filter(|l| l.contains("\"loss\"")) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["data"]["a"], 4, "{l}");
        assert_eq!(v["data"]["b"], 4, "{l}");
    }

    // A second run resumes from the first one's step-10 checkpoint.
    let again = recipe(d, "again", "skip");
    let ckpt = d.join("full/checkpoints/step-00000010");
    let trace2 = d.join("again.jsonl");
    let o = pairtrain(&[
        "train",
        "--quiet",
        "--config",
        again.to_str().unwrap(),
        "--resume",
        ckpt.to_str().unwrap(),
        "--trace",
        trace2.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(losses(&trace2), want[10..]);
}

/// `data check-recipe` names what is there, what is missing and what is malformed (a bad JSONL
/// line, a truncated Parquet file), and exits 1.
#[test]
fn check_recipe_lists_present_missing_and_malformed_files() {
    let d = tempfile::tempdir().unwrap();
    make_data(d.path());
    let parquet = test_support::repo_root().join("crates/pairs/tests/data/triplets.parquet");
    let bytes = std::fs::read(&parquet).unwrap();
    std::fs::write(d.path().join("cut.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let r = d.path().join("r.toml");
    std::fs::write(
        &r,
        format!(
            "[model]\nbase = \"{m}\"\n[train]\nbatch_size = 8\n\
             [[data]]\nname = \"good\"\npath = \"{d}/a.jsonl.gz\"\n\
             [[data]]\nname = \"pq\"\npath = \"{p}\"\ncolumns = [\"positive\", \"anchor\"]\n\
             [[data]]\nname = \"shards\"\npath = \"{d}/b-*.jsonl.zst\"\n\
             [[data]]\nname = \"gone\"\npath = \"{d}/gooaq.jsonl.gz\"\n\
             [[data]]\nname = \"cut\"\npath = \"{d}/cut.parquet\"\n",
            m = shared_dir().join("reference/train-parity/model").display(),
            d = d.path().display(),
            p = parquet.display(),
        ),
    )
    .unwrap();
    let o = pairtrain(&["data", "check-recipe", r.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let line = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}:\n{out}"))
            .to_string()
    };
    assert!(line("a.jsonl.gz").starts_with("ok") && line("a.jsonl.gz").contains("32 rows"));
    assert!(line("triplets.parquet").contains("120 rows"));
    assert!(line("b-1.jsonl.zst").starts_with("BAD") && line("b-1.jsonl.zst").contains(":17:"));
    assert!(line("gooaq").starts_with("MISSING"));
    assert!(line("cut.parquet").starts_with("BAD"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("4 ok, 1 missing, 2 malformed"), "{err}");
}

/// `data check-recipe` reads rows as the recipe's loss takes them: unscored pairs for CoSENT are
/// malformed at their first line, STS-B's scored TSV is fine.
#[test]
fn check_recipe_checks_rows_against_the_loss() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path().join("r.toml");
    std::fs::write(
        &r,
        format!(
            "[model]\nbase = \"{m}\"\n[loss]\nkind = \"cosent\"\n[train]\nbatch_size = 8\n\
             [[data]]\nname = \"pairs\"\npath = \"{p}\"\n\
             [[data]]\nname = \"stsb\"\npath = \"{s}\"\n",
            m = shared_dir().join("reference/train-parity/model").display(),
            p = shared_dir()
                .join("reference/train-parity/pairs.jsonl")
                .display(),
            s = shared_dir().join("data/stsb/sts-train.tsv").display(),
        ),
    )
    .unwrap();
    let o = pairtrain(&["data", "check-recipe", r.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("BAD      data pairs")
            && out.contains("pairs.jsonl:1: CoSENTLoss takes 1 score per row"),
        "{out}"
    );
    assert!(out.contains("ok       data stsb"), "{out}");
}

/// A commit hash as the hub names snapshots (40 hex digits; anything else is refused as a path).
const COMMIT: &str = "0123abcd0123abcd0123abcd0123abcd0123abcd";

/// A shipped recipe on a machine without its data: every file is named as missing (this machine
/// has none of the 2021 files), and with `HF_HUB_OFFLINE=1` a base model absent from the cache is
/// missing too, while a cached one is found there without a request.
#[test]
fn check_recipe_on_a_shipped_recipe_names_everything_missing() {
    let recipe = test_support::repo_root().join("recipes/semantic-search/minilm-l6-dot.toml");
    let d = tempfile::tempdir().unwrap();
    let run = |hf_home: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_pairtrain"))
            .args(["data", "check-recipe", recipe.to_str().unwrap()])
            .current_dir(d.path())
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HOME", hf_home)
            .output()
            .unwrap()
    };
    let o = run(&d.path().join("empty-hf"));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1));
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("MISSING  model nreimers/MiniLM-L6-H384-uncased")
            && first.contains("HF_HUB_OFFLINE"),
        "{first}"
    );
    assert!(out.contains(
        "MISSING  data msmarco-query_passage_negative.jsonl.gz: \
         data/2021/msmarco-query_passage_negative.jsonl.gz"
    ));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("0 ok, 189 missing, 0 malformed"), "{err}");

    // The same id in a cache laid out as the Python tools lay it out.
    let snap = d
        .path()
        .join("hf/hub/models--nreimers--MiniLM-L6-H384-uncased/snapshots")
        .join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    let refs = d
        .path()
        .join("hf/hub/models--nreimers--MiniLM-L6-H384-uncased/refs");
    std::fs::create_dir_all(&refs).unwrap();
    std::fs::write(refs.join("main"), COMMIT).unwrap();
    let src = test_support::minilm_dir();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "vocab.txt",
    ] {
        std::fs::copy(src.join(f), snap.join(f)).unwrap();
    }
    let o = run(&d.path().join("hf"));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with("cached   model nreimers/MiniLM-L6-H384-uncased"),
        "{out}"
    );
}
