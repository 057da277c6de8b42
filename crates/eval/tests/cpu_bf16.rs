//! `--dtype bf16` on the CPU (bf16 linear layers, f32 everywhere else) is offered only with its
//! quality measured: on the golden texts every embedding has cosine >= 0.999 to
//! sentence-transformers' f32 one, and STS-B dev Spearman stays within 0.002 of the f32 number
//! sentence-transformers reports (shared/reference/eval).

use candle_core::DType;
use eval::{run_task, TaskKind, TaskSpec};
use model::{LoadOptions, SentenceModel};
use std::path::Path;
use test_support::{golden, max_abs_diff, minilm_dir, mpnet_dir, shared_dir};

fn load_bf16(dir: &Path) -> SentenceModel {
    SentenceModel::load(
        dir,
        &LoadOptions {
            compute_dtype: Some(DType::BF16),
            ..LoadOptions::default()
        },
    )
    .unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p * q) as f64).sum::<f64>();
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

fn check(name: &str, dir: &Path) {
    let model = load_bf16(dir);
    assert!(
        model.encoder.params().has_packed_bf16(),
        "{name}: the linear layers were not packed in bf16"
    );
    let rows = golden(&format!("{name}.jsonl"));
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let emb = model.encode(&texts, 32, |_| {}).unwrap();
    let (mut worst_cos, mut largest_diff) = (1f64, 0f32);
    for (r, e) in rows.iter().zip(&emb) {
        let c = cosine(e, &r.embedding);
        assert!(
            c >= 0.999,
            "{name}: cosine {c} to the f32 embedding of {:?}",
            r.text
        );
        worst_cos = worst_cos.min(c);
        largest_diff = largest_diff.max(max_abs_diff(e, &r.embedding));
    }
    // Which multiply ran decides what to expect: with bf16 dot products (AMX or AVX512-BF16;
    // PAIRTRAIN_ISA picks a lower one) rounding to bf16 must actually have happened, as an f32
    // run is within 1e-5 of the golden embeddings; without them the layers run in f32.
    let kernel = model::ops::bf16_kernel();
    if kernel == "f32" {
        assert!(
            largest_diff <= 1e-5,
            "{name}: bf16 without bf16 dot products runs in f32, yet differs by {largest_diff:e}"
        );
    } else {
        assert!(
            largest_diff > 1e-4,
            "{name}: bf16 embeddings ({kernel}) equal the f32 ones ({largest_diff:e}); is bf16 \
             in use?"
        );
    }

    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared_dir().join(format!("reference/eval/{name}.json"))).unwrap(),
    )
    .unwrap();
    let want = reference["results"]["stsb-dev"]["spearman_cosine"]
        .as_f64()
        .unwrap();
    let sts = run_task(
        &model,
        &TaskSpec::new(TaskKind::Sts, &shared_dir().join("data/stsb/sts-dev.tsv")),
    )
    .unwrap();
    let got = sts["spearman_cosine"];
    eprintln!(
        "{name} bf16 ({kernel}): golden cosine >= {worst_cos:.5} (max abs diff \
         {largest_diff:.2e}); STS-B dev Spearman {got:.5} vs f32 {want:.5}"
    );
    assert!(
        (got - want).abs() <= 0.002,
        "{name}: STS-B dev Spearman {got} in bf16 vs {want} in f32"
    );
}

#[test]
fn minilm_in_bf16_keeps_its_quality() {
    check("all-MiniLM-L6-v2", &minilm_dir());
}

#[test]
fn mpnet_in_bf16_keeps_its_quality() {
    check("all-mpnet-base-v2", &mpnet_dir());
}
