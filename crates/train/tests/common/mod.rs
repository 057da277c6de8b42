//! What the parity tests share: training a parity recipe and checking its trajectory against the
//! PyTorch reference in ../shared/reference/train-parity.

use serde_json::Value;
use std::sync::atomic::AtomicBool;
use test_support::{repo_root, shared_dir};
use train::{Recipe, Trainer};

pub fn reference(run: &str) -> Value {
    let p = shared_dir()
        .join("reference/train-parity")
        .join(format!("{run}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

pub fn close(got: f64, want: f64, rtol: f64, atol: f64) -> bool {
    (got - want).abs() <= atol + rtol * want.abs()
}

/// Trains `recipes/parity/<run>.toml` after `tweak` (device, dtype…) into a temporary folder.
pub fn trained_with(run: &str, tweak: impl FnOnce(&mut Recipe)) -> (Trainer, tempfile::TempDir) {
    let root = repo_root();
    let mut recipe = Recipe::load(&root.join(format!("recipes/parity/{run}.toml"))).unwrap();
    recipe.rebase(&root);
    let out = tempfile::tempdir().unwrap();
    recipe.train.output = out.path().display().to_string();
    tweak(&mut recipe);
    let mut tr = Trainer::new(recipe, None).unwrap();
    let finished = tr.run(&AtomicBool::new(false), |_| {}).unwrap();
    assert!(finished);
    (tr, out)
}

pub fn trained(run: &str) -> (Trainer, tempfile::TempDir) {
    trained_with(run, |_| {})
}

/// Per-step loss, lr and gradient norm, final parameter norms and probe embeddings of a trained
/// run against the reference, at rtol 1e-5.
pub fn check_run(run: &str, tr: &Trainer) {
    let want = reference(run);
    let steps = want["steps"].as_array().unwrap();
    assert_eq!(tr.history.len(), steps.len());
    let (mut worst_loss, mut worst_gn) = (0f64, 0f64);
    for (got, w) in tr.history.iter().zip(steps) {
        let (loss, lr, gn) = (
            w["loss"].as_f64().unwrap(),
            w["lr"].as_f64().unwrap(),
            w["grad_norm_before_clip"].as_f64().unwrap(),
        );
        assert!(
            close(got.lr, lr, 1e-12, 0.0),
            "{run} step {}: lr {} vs {lr}",
            got.step,
            got.lr
        );
        assert!(
            close(got.loss, loss, 1e-5, 0.0),
            "{run} step {}: loss {} vs {loss}",
            got.step,
            got.loss
        );
        worst_loss = worst_loss.max((got.loss - loss).abs() / loss.abs());
        worst_gn = worst_gn.max((got.grad_norm - gn).abs() / gn.abs());
        assert!(
            close(got.grad_norm, gn, 1e-5, 0.0),
            "{run} step {}: grad norm {} vs {gn}",
            got.step,
            got.grad_norm
        );
    }
    eprintln!("{run}: max relative difference: loss {worst_loss:.2e}, grad norm {worst_gn:.2e}");
    // Final parameter norms, in f64 from the f32 tensors.
    let norms = want["final"]["param_l2_norms"].as_object().unwrap();
    let params = tr.model.encoder.params();
    for (name, w) in norms {
        let t = params.iter().find(|(n, _)| n == name).unwrap().1;
        let got = test_support::sum_sq(t).sqrt();
        let w = w.as_f64().unwrap();
        assert!(
            close(got, w, 1e-5, 1e-6),
            "{run}: norm of {name} {got} vs {w}"
        );
    }
    // Probe embeddings (first 8 dims) of the trained model.
    let probes: Vec<String> = serde_json::from_value(want["final"]["probe_texts"].clone()).unwrap();
    let probe_refs: Vec<&str> = probes.iter().map(|s| s.as_str()).collect();
    let detached = tr.model.detached();
    let emb = detached.encode(&probe_refs, 32, |_| {}).unwrap();
    let want_emb: Vec<Vec<f64>> =
        serde_json::from_value(want["final"]["probe_embeddings_first8"].clone()).unwrap();
    for (e, w) in emb.iter().zip(&want_emb) {
        for (a, b) in e.iter().zip(w) {
            assert!(
                (*a as f64 - b).abs() <= 1e-5,
                "{run}: probe embedding {a} vs {b}"
            );
        }
    }
}
