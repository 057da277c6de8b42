//! Step-for-step parity with the PyTorch reference runs in shared/reference/train-parity, with
//! the tolerances its README recommends for an independent float32 implementation.

mod common;

use common::{check_run, trained};
use std::sync::atomic::AtomicBool;
use test_support::{repo_root, shared_dir};
use train::{Recipe, Trainer};

/// The final weights against `<run>.final.safetensors`: normwise relative over all weights
/// ≤ 1e-5 and elementwise ≤ 1e-4 (the README's bar).
fn check_final_weights(run: &str, tr: &Trainer) {
    let p = shared_dir().join(format!("reference/train-parity/{run}.final.safetensors"));
    let want = candle_core::safetensors::load(&p, &candle_core::Device::Cpu).unwrap();
    let sq = test_support::sum_sq;
    let (mut diff_sq, mut want_sq) = (0f64, 0f64);
    for (name, t) in tr.model.encoder.params().iter() {
        let w = &want[name];
        let d = (t - w).unwrap();
        diff_sq += sq(&d);
        want_sq += sq(w);
        let max = d
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(max <= 1e-4, "{run}: {name} differs by up to {max:e}");
    }
    let rel = (diff_sq / want_sq).sqrt();
    eprintln!("{run}: final weights normwise relative difference {rel:.2e}");
    assert!(
        rel <= 1e-5,
        "{run}: final weights differ normwise by {rel:e}"
    );
}

#[test]
fn mnrl_pairs_matches_pytorch() {
    let (tr, _out) = trained("mnrl_pairs");
    check_run("mnrl_pairs", &tr);
    check_final_weights("mnrl_pairs", &tr);
}

#[test]
fn mnrl_symmetric_matches_pytorch() {
    check_run("mnrl_symmetric", &trained("mnrl_symmetric").0);
}

#[test]
fn mnrl_hardneg_matches_pytorch() {
    let (tr, _out) = trained("mnrl_hardneg");
    check_run("mnrl_hardneg", &tr);
    check_final_weights("mnrl_hardneg", &tr);
}

#[test]
fn gradcache_equivalence_matches_pytorch() {
    check_run("gradcache_equivalence", &trained("gradcache_equivalence").0);
}

/// The saved folder loads back (sentence-transformers layout) and embeds exactly as the model in
/// memory did.
#[test]
fn saved_model_loads_with_identical_embeddings() {
    let (tr, out) = trained("mnrl_symmetric");
    let dir = tr.save_final().unwrap();
    assert_eq!(dir, out.path().join("model"));
    for f in [
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "README.md",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert!(out.path().join("training.svg").is_file());
    assert_eq!(
        std::fs::read_to_string(out.path().join("train_log.jsonl"))
            .unwrap()
            .lines()
            .count(),
        12
    );
    let loaded = model::SentenceModel::load(&dir, &Default::default()).unwrap();
    assert_eq!(loaded.max_seq_length, 32);
    assert!(loaded.normalize);
    let texts = [
        "How do I descale a kettle?",
        "Vinegar and water, then rinse twice.",
    ];
    let detached = tr.model.detached();
    let a = detached.encode(&texts, 8, |_| {}).unwrap();
    let b = loaded.encode(&texts, 8, |_| {}).unwrap();
    assert_eq!(a, b);
}

/// `[[eval]]` entries run every `eval_every` steps and at the end; their results reach the
/// training log and the model card.
#[test]
fn evaluations_during_training_reach_log_and_card() {
    let root = repo_root();
    let mut recipe = Recipe::load(&root.join("recipes/parity/mnrl_pairs.toml")).unwrap();
    recipe.rebase(&root);
    let out = tempfile::tempdir().unwrap();
    recipe.train.output = out.path().display().to_string();
    recipe.train.eval_every = 5;
    let sts = out.path().join("tiny-sts.tsv");
    std::fs::write(
        &sts,
        "sentence1\tsentence2\tscore\nA cat sits.\tA cat is sitting.\t4.8\n\
         A cat sits.\tThe stock market fell.\t0.2\nHow to brew tea?\tTea brewing steps.\t4.0\n\
         How to brew tea?\tA man plays guitar.\t0.5\n",
    )
    .unwrap();
    recipe.eval = vec![eval::TaskSpec::new(eval::TaskKind::Sts, &sts)];
    let mut tr = Trainer::new(recipe, None).unwrap();
    assert!(tr.run(&AtomicBool::new(false), |_| {}).unwrap());
    let steps: Vec<usize> = tr.evals.iter().map(|e| e.step).collect();
    assert_eq!(steps, vec![5, 10, 12]);
    let log = std::fs::read_to_string(out.path().join("train_log.jsonl")).unwrap();
    let evals: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("eval").is_some())
        .collect();
    assert_eq!(evals.len(), 3);
    assert!(evals[2]["eval"]["tiny-sts"]["spearman_cosine"].is_number());
    let dir = tr.save_final().unwrap();
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(card.contains("Evaluation after step 12"), "{card}");
    assert!(card.contains("| tiny-sts | spearman_cosine |"), "{card}");
}

/// The model card names the loss as sentence-transformers does, GradCache included.
#[test]
fn model_card_names_the_cached_symmetric_loss() {
    let (tr, _out) = common::trained_with("gradcache_equivalence", |r| {
        r.loss.kind = train::recipe::LossKind::CachedMnrlSymmetric;
        r.train.steps = 2;
        r.train.warmup_steps = 1;
    });
    let dir = tr.save_final().unwrap();
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        card.contains("Loss: CachedMultipleNegativesSymmetricRankingLoss (scale 20, similarity cos_sim, mini-batch 4)"),
        "{card}"
    );
}
