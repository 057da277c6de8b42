//! Response retrieval (1-of-100 accuracy, Henderson et al. 2019) against sentence-transformers:
//! all-MiniLM-L6-v2 on the Multi30k validation pairs of ../shared/data/parallel, each English
//! caption ranking its group's 100 translations. The expected values are what
//! `scripts/reference/response_retrieval.py` printed with sentence-transformers 6.2.0 (torch 2.15,
//! CPU) on 2026-11-30 (counts over 1,000 pairs: one different rank moves accuracy by 1e-3).

use eval::response_retrieval::{evaluate_response_retrieval, load_pairs};
use test_support::{minilm_dir, shared_dir};

#[test]
fn multi30k_one_of_100_matches_sentence_transformers() {
    let model = model::SentenceModel::load(&minilm_dir(), &Default::default()).unwrap();
    for (lang, accuracy, mrr) in [
        ("de", 0.355, 0.45284889831481984),
        ("fr", 0.504, 0.611507226601013),
    ] {
        let path = shared_dir().join(format!("data/parallel/multi30k-val.en-{lang}.tsv.gz"));
        let data = load_pairs(&path, None).unwrap();
        assert_eq!(data.contexts.len(), 1013);
        let m = evaluate_response_retrieval(&model, &data, 32).unwrap();
        assert_eq!(m["pairs"], 1000.0, "the last 13 rows make no full group");
        assert!(
            (m["1_of_100_accuracy"] - accuracy).abs() < 1e-9,
            "{lang}: {m:?}"
        );
        assert!((m["mrr"] - mrr).abs() < 1e-5, "{lang}: {m:?}");
    }
}

/// The Reddit miner's rows (`context`, `response` and further context columns) are read as
/// (context, response); too few pairs and bad rows are errors naming the file.
#[test]
fn reads_mined_reddit_rows_and_refuses_what_it_cannot_rank() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("test-00000.jsonl");
    let rows: String = (0..120)
        .map(|i| {
            serde_json::json!({"context": format!("c{i}"), "context/0": "earlier",
                               "response": format!("r{i}"), "subreddit": "x"})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&p, &rows).unwrap();
    let data = load_pairs(&p, None).unwrap();
    assert_eq!(
        (data.contexts[7].as_str(), data.responses[7].as_str()),
        ("c7", "r7")
    );
    assert_eq!(data.contexts.len(), 120);
    let e = load_pairs(&p, Some(99)).err().unwrap().to_string();
    assert!(
        e.contains("test-00000.jsonl") && e.contains("at least 100 pairs; found 99"),
        "{e}"
    );
    std::fs::write(&p, format!("{rows}{{\"context\": 3}}\n")).unwrap();
    let e = load_pairs(&p, None).err().unwrap().to_string();
    assert!(e.contains("test-00000.jsonl") && e.contains("121"), "{e}");
}
