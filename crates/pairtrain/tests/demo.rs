//! `scripts/demo`, the first command of the README, runs the main job end to end as a newcomer
//! runs it: mines the three dump samples, evaluates, fine-tunes, evaluates again, saves a
//! sentence-transformers folder, embeds and searches, and reports the metric before and after.

use test_support::{minilm_dir, repo_root};

#[test]
fn the_demo_mines_trains_evaluates_and_reports() {
    minilm_dir(); // fetched before the script asks for it
    let d = tempfile::tempdir().unwrap();
    let work = d.path().join("work");
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/demo"))
        .arg(&work)
        .env("PAIRTRAIN", env!("CARGO_BIN_EXE_pairtrain"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The report: rows per source, the steps, the metrics before and after, the model.
    for want in [
        "Stack Exchange: 762 (title, body), 647 (title, answer)",
        "Reddit: 4 (context, response)",
        "Wikipedia: 97 (title, intro)",
        "40 steps of MultipleNegativesRankingLoss",
        "STS-B dev Spearman   before 0.8672",
        "Cranfield nDCG@10    before 0.3953",
        "1. ",
    ] {
        assert!(stdout.contains(want), "{want:?} not in:\n{stdout}");
    }
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("after.json")).unwrap()).unwrap();
    let sts = after["sts-dev"]["spearman_cosine"].as_f64().unwrap();
    // Still a sentence-embedding model (a broken save or load would fall far below).
    assert!(sts > 0.8, "{sts}");
    for f in [
        "model.safetensors",
        "modules.json",
        "tokenizer.json",
        "README.md",
    ] {
        assert!(work.join("model/model").join(f).is_file(), "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(work.join("embeddings.jsonl"))
            .unwrap()
            .lines()
            .count(),
        9
    );
    // The coffee question finds the coffee texts first.
    let search = std::fs::read_to_string(work.join("search.txt")).unwrap();
    assert!(
        search.lines().next().unwrap().contains("coffee"),
        "{search}"
    );
}
