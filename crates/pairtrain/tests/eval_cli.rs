//! `pairtrain eval` (one task, a suite, JSON output with sentence-transformers' keys) and
//! `pairtrain search`.

use test_support::{minilm_dir, shared_dir};

fn pairtrain(args: &[&str]) -> std::process::Output {
    test_support::run_cli(env!("CARGO_BIN_EXE_pairtrain"), args)
}

#[test]
fn eval_suite_writes_json_and_search_ranks_the_obvious_answer_first() {
    let d = tempfile::tempdir().unwrap();
    let model = minilm_dir();
    // A small STS file in the original STS-B layout, via a suite with a relative path.
    std::fs::write(
        d.path().join("mini-sts.csv"),
        "g\td\ty\t0\t5.0\tA man is playing a guitar.\tA man plays the guitar.\n\
         g\td\ty\t1\t0.2\tA man is playing a guitar.\tThe stock market fell.\n\
         g\td\ty\t2\t3.6\tA woman slices an onion.\tA woman is cutting vegetables.\n\
         g\td\ty\t3\t1.0\tA woman slices an onion.\tA dog runs on the beach.\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("suite.toml"),
        "[[task]]\nname = \"mini\"\nkind = \"sts\"\npath = \"mini-sts.csv\"\n",
    )
    .unwrap();
    let out = d.path().join("res.json");
    let o = pairtrain(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--suite",
        d.path().join("suite.toml").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("spearman_cosine"), "{table}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    for k in [
        "pearson_cosine",
        "spearman_cosine",
        "spearman_dot",
        "pearson_manhattan",
        "spearman_max",
    ] {
        assert!(v["mini"][k].is_number(), "{k} missing: {v}");
    }
    // The gold order is the model's order here: Spearman 1.
    assert!(
        (v["mini"]["spearman_cosine"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{v}"
    );

    let corpus = d.path().join("docs.txt");
    std::fs::write(
        &corpus,
        "The stock market fell sharply today.\nStore coffee beans in an airtight container.\n\
         A man is playing a guitar.\n",
    )
    .unwrap();
    let o = pairtrain(&[
        "search",
        "--model",
        model.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--query",
        "how should I keep my coffee fresh?",
        "--top-k",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hits = String::from_utf8_lossy(&o.stdout);
    let first = hits.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("  1.") && first.contains("coffee beans"),
        "{hits}"
    );
    assert_eq!(hits.lines().count(), 2);
}

#[test]
fn eval_bad_input_names_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let sts = d.path().join("bad.tsv");
    std::fs::write(&sts, "sentence1\tsentence2\tscore\na\tb\tzero\n").unwrap();
    let o = pairtrain(&[
        "eval",
        "--model",
        minilm_dir().to_str().unwrap(),
        "--task",
        "sts",
        "--data",
        sts.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad.tsv:2") && err.contains("not a number"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    // The shared Cranfield qrels are fine; a qrels row pointing nowhere is not.
    let ir = d.path().join("ir");
    std::fs::create_dir(&ir).unwrap();
    let cran = shared_dir().join("data/cranfield");
    for f in ["corpus.jsonl", "queries.jsonl"] {
        std::fs::copy(cran.join(f), ir.join(f)).unwrap();
    }
    std::fs::write(
        ir.join("qrels.tsv"),
        "query-id\tcorpus-id\tscore\n1\t184\t3\n1\t99999\t2\n",
    )
    .unwrap();
    let o = pairtrain(&[
        "eval",
        "--model",
        minilm_dir().to_str().unwrap(),
        "--task",
        "retrieval",
        "--data",
        ir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("qrels.tsv:3") && err.contains("99999"),
        "{err}"
    );
}
