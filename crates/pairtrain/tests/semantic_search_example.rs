//! The end-to-end example of the three-models issue, as a user runs it:
//! `scripts/examples/semantic-search-small` mines the Stack Exchange samples and a Reddit
//! thread, mixes them with a Parquet file, fine-tunes all-MiniLM-L6-v2 with the semantic-search
//! recipe scaled down, evaluates on Cranfield before and after, and writes the model card.

use std::path::Path;
use test_support::{minilm_dir, repo_root};

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn semantic_search_example_mines_trains_evaluates_and_writes_the_card() {
    minilm_dir(); // fetched before the script asks for it
    let d = tempfile::tempdir().unwrap();
    let work = d.path().join("work");
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/examples/semantic-search-small"))
        .arg(&work)
        .env("PAIRTRAIN", env!("CARGO_BIN_EXE_pairtrain"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every dataset of the mix was mined (or read) and drawn into batches.
    let log = lines(&work.join("model/train_log.jsonl"));
    let steps: Vec<_> = log.iter().filter(|l| l.get("loss").is_some()).collect();
    assert_eq!(steps.len(), 20);
    let mut drawn = std::collections::BTreeSet::new();
    for s in &steps {
        assert!(s["loss"].as_f64().unwrap().is_finite());
        for (name, rows) in s["data"].as_object().unwrap() {
            assert_eq!(rows.as_u64(), Some(4), "two datasets of 4 rows per batch");
            drawn.insert(name.clone());
        }
    }
    assert_eq!(
        drawn.into_iter().collect::<Vec<_>>(),
        [
            "qa-parquet",
            "reddit",
            "stackexchange_title_answer",
            "stackexchange_title_body"
        ]
    );

    // Cranfield before (the base model) and after (the last step), as the evaluator reports it.
    let before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("before.json")).unwrap()).unwrap();
    let before = before["cranfield"]["cosine_ndcg@10"].as_f64().unwrap();
    let after = log.last().unwrap()["eval"]["cranfield"]["cosine_ndcg@10"]
        .as_f64()
        .unwrap();
    assert!(
        before > 0.3 && after > 0.3 && before != after,
        "{before} {after}"
    );

    // The card: base model by hub id, the data table, loss, results; no path of this machine.
    let model_dir = work.join("model/model");
    let card = std::fs::read_to_string(model_dir.join("README.md")).unwrap();
    for needle in [
        "base_model: sentence-transformers/all-MiniLM-L6-v2",
        "| reddit | `train-*.jsonl.gz` |",
        "| qa-parquet | `qa.parquet` |",
        "| stackexchange_title_body | `title_body-*.jsonl.gz` |",
        "MultipleNegativesRankingLoss (scale 20, similarity cos_sim)",
        &format!("| cranfield | cosine_ndcg@10 | {after:.5} |"),
    ] {
        assert!(card.contains(needle), "card lacks {needle:?}:\n{card}");
    }
    for local in [d.path(), &repo_root()] {
        let local = local.display().to_string();
        assert!(!card.contains(&local), "card names {local}:\n{card}");
    }
    let st: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model_dir.join("config_sentence_transformers.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(st["similarity_fn_name"], "cosine");
    // The trained model loads and embeds as any other.
    let m = model::SentenceModel::load(&model_dir, &Default::default()).unwrap();
    let e = m
        .encode(&["how do I keep coffee fresh?"], 1, |_| {})
        .unwrap();
    let norm: f32 = e[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
}
