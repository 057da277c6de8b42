//! Every number sentence-transformers' evaluators report for all-MiniLM-L6-v2 on STS-B dev and
//! Cranfield (shared/reference/eval), reproduced within 1e-4.

use eval::{run_task, TaskSpec};
use model::{LoadOptions, SentenceModel};
use std::collections::BTreeMap;
use test_support::{minilm_dir, mpnet_dir, shared_dir};

fn check(task: &str, got: &BTreeMap<String, f64>, want: &serde_json::Value) {
    let want = want.as_object().unwrap();
    assert_eq!(
        got.len(),
        want.len(),
        "{task}: metric keys {:?}",
        got.keys()
    );
    let mut worst = 0f64;
    for (k, w) in want {
        let g = got.get(k).unwrap_or_else(|| panic!("{task}: no {k}"));
        let d = (g - w.as_f64().unwrap()).abs();
        worst = worst.max(d);
        assert!(d <= 1e-4, "{task} {k}: {g} vs {w}");
    }
    eprintln!("{task}: all {} metrics within {worst:.1e}", want.len());
}

fn reproduces(name: &str, dir: &std::path::Path) {
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared_dir().join(format!("reference/eval/{name}.json"))).unwrap(),
    )
    .unwrap();
    let model = SentenceModel::load(dir, &LoadOptions::default()).unwrap();
    let data = shared_dir().join("data");
    let sts = run_task(
        &model,
        &TaskSpec::new(eval::TaskKind::Sts, &data.join("stsb/sts-dev.tsv")),
    )
    .unwrap();
    check("stsb-dev", &sts, &reference["results"]["stsb-dev"]);
    let ir = run_task(
        &model,
        &TaskSpec::new(eval::TaskKind::Retrieval, &data.join("cranfield")),
    )
    .unwrap();
    check("cranfield", &ir, &reference["results"]["cranfield"]);
}

#[test]
fn minilm_reproduces_sentence_transformers_numbers() {
    reproduces("all-MiniLM-L6-v2", &minilm_dir());
}

#[test]
fn mpnet_reproduces_sentence_transformers_numbers() {
    reproduces("all-mpnet-base-v2", &mpnet_dir());
}

/// A small corpus chunk changes nothing: results are exact whatever the memory bound.
#[test]
fn retrieval_is_independent_of_the_corpus_chunk_size() {
    let model = SentenceModel::load(&minilm_dir(), &LoadOptions::default()).unwrap();
    let dir = shared_dir().join("data/cranfield");
    let mut data = eval::information_retrieval::load_beir(&dir).unwrap();
    // A 300-document slice keeps the test quick; ties and chunk borders are what matter.
    data.corpus.truncate(300);
    let kept: std::collections::HashSet<String> =
        data.corpus.iter().map(|(id, _)| id.clone()).collect();
    for rel in data.relevant.values_mut() {
        rel.retain(|d| kept.contains(d));
    }
    data.queries.retain(|(q, _)| !data.relevant[q].is_empty());
    assert!(data.queries.len() > 20);
    let whole = eval::information_retrieval::evaluate_retrieval(&model, &data, 32, 100_000);
    let chunked = eval::information_retrieval::evaluate_retrieval(&model, &data, 32, 97);
    assert_eq!(whole.unwrap(), chunked.unwrap());
}

/// `truncate_dim` 128 and 64: every number sentence-transformers' evaluators report for the first
/// N dimensions (crates/eval/tests/data, written by scripts/reference/st_truncated_eval.py).
#[test]
fn truncated_embeddings_reproduce_sentence_transformers_numbers() {
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            test_support::repo_root()
                .join("crates/eval/tests/data/truncated-all-MiniLM-L6-v2.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let model = SentenceModel::load(&minilm_dir(), &LoadOptions::default()).unwrap();
    let data = shared_dir().join("data");
    for dim in [128, 64] {
        let mut sts = TaskSpec::new(eval::TaskKind::Sts, &data.join("stsb/sts-dev.tsv"));
        sts.truncate_dim = Some(dim);
        let name = format!("stsb-dev-{dim}");
        check(
            &name,
            &run_task(&model, &sts).unwrap(),
            &reference["results"][&name],
        );
        let mut ir = TaskSpec::new(eval::TaskKind::Retrieval, &data.join("cranfield"));
        ir.truncate_dim = Some(dim);
        let name = format!("cranfield-{dim}");
        check(
            &name,
            &run_task(&model, &ir).unwrap(),
            &reference["results"][&name],
        );
    }
    // The model itself is left whole.
    assert_eq!(model.dim(), 384);
}
