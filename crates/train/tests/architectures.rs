//! `train` works with every architecture: a few steps on tiny random models saved in Hugging
//! Face layout, then the saved model loads back; packed (unpadded) batches train as padded ones
//! do.

use model::ModelConfig;
use std::sync::atomic::AtomicBool;
use test_support::{save_tiny_model, shared_dir};
use train::{Recipe, Trainer};

/// The tiny model of `arch` saved under `dir` (dropout off where `no_dropout`: packed and padded
/// batches draw their hidden-state dropout masks over different layouts).
fn save_tiny(dir: &std::path::Path, arch: &str, prefix: &str, no_dropout: bool) {
    let mut cfg = ModelConfig::bert(16, 2, 2, 32);
    cfg.model_type = arch.into();
    cfg.max_position_embeddings = 40;
    if arch != "bert" && arch != "distilbert" {
        cfg.pad_token_id = 1;
        cfg.type_vocab_size = 1;
    }
    if no_dropout {
        cfg.hidden_dropout_prob = 0.0;
    }
    save_tiny_model(dir, &cfg, prefix, 9);
}

const ARCHITECTURES: [(&str, &str); 5] = [
    ("bert", "bert."),
    ("roberta", "roberta."),
    ("xlm-roberta", "roberta."),
    ("distilbert", "distilbert."),
    ("mpnet", "mpnet."),
];

/// Trains `base` `steps` steps of MNRL on the parity pairs (texts of 5–20 tokens, so every
/// batch of 8 is padded), packed or padded.
fn train(base: &std::path::Path, out: &std::path::Path, steps: usize, padded: bool) -> Trainer {
    let text = format!(
        "[model]\nbase = \"{}\"\nnormalize = true\nmax_seq_length = 24\npadded = {padded}\n\
         [loss]\nkind = \"mnrl-symmetric\"\n\
         [train]\nbatch_size = 8\nsteps = {steps}\nlr = 1e-3\noutput = \"{}\"\n\
         [[data]]\npath = \"{}\"\n",
        base.display(),
        out.display(),
        shared_dir()
            .join("reference/train-parity/pairs.jsonl")
            .display()
    );
    let recipe_path = out.with_extension("toml");
    std::fs::write(&recipe_path, text).unwrap();
    let mut tr = Trainer::new(Recipe::load(&recipe_path).unwrap(), None).unwrap();
    assert!(tr.run(&AtomicBool::new(false), |_| {}).unwrap());
    tr
}

/// 10 steps packed and 10 padded, for every architecture, ModernBERT and NomicBERT: losses and gradient
/// norms within rtol 1e-5, and the trained parameters' norms. Attention dropout stays on: its
/// mask is laid out over the padded shape in both.
#[test]
fn packed_and_padded_batches_train_alike() {
    let d = tempfile::tempdir().unwrap();
    let mut bases: Vec<(String, std::path::PathBuf)> = ARCHITECTURES
        .iter()
        .map(|&(arch, prefix)| {
            let dir = d.path().join(arch);
            save_tiny(&dir, arch, prefix, true);
            (arch.to_string(), dir)
        })
        .collect();
    for arch in ["modernbert", "nomic_bert"] {
        let data = test_support::repo_root().join("crates/model/tests/data");
        bases.push((arch.into(), data.join(arch).join("model")));
    }
    for (arch, base) in bases {
        let padded = train(&base, &d.path().join(format!("{arch}-padded")), 10, true);
        let packed = train(&base, &d.path().join(format!("{arch}-packed")), 10, false);
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-30);
        let (mut wl, mut wg) = (0f64, 0f64);
        for (p, u) in padded.history.iter().zip(&packed.history) {
            wl = wl.max(rel(u.loss, p.loss));
            wg = wg.max(rel(u.grad_norm, p.grad_norm));
            assert!(rel(u.loss, p.loss) <= 1e-5, "{arch} step {}: loss", p.step);
            assert!(
                rel(u.grad_norm, p.grad_norm) <= 1e-5,
                "{arch} step {}",
                p.step
            );
        }
        assert_eq!(packed.history.len(), 10);
        // Final parameter norms, as the PyTorch parity tests compare them. Not the attention key
        // biases: their gradient is zero in exact arithmetic (a key bias shifts every score of
        // a row alike), AdamW turns its rounding noise into steps of the learning rate's size,
        // and from a zero init that noise is all their norm is made of.
        let mut wp = 0f64;
        let packed_params = packed.model.encoder.params();
        for ((name, a), (_, b)) in padded
            .model
            .encoder
            .params()
            .iter()
            .zip(packed_params.iter())
        {
            let (na, nb) = (
                test_support::sum_sq(a).sqrt(),
                test_support::sum_sq(b).sqrt(),
            );
            let key_bias = ["key.bias", "k_lin.bias", ".k.bias"]
                .iter()
                .any(|k| name.ends_with(k));
            if key_bias {
                continue;
            }
            wp = wp.max(rel(nb, na));
            assert!(
                (na - nb).abs() <= 1e-5 * na.max(1e-3),
                "{arch}: norm of {name}: {nb} packed, {na} padded"
            );
        }
        eprintln!("{arch}: loss {wl:.1e}, grad norm {wg:.1e}, final norms {wp:.1e}");
    }
}

#[test]
fn every_architecture_trains_and_saves() {
    let d = tempfile::tempdir().unwrap();
    for (arch, prefix) in ARCHITECTURES {
        let dir = d.path().join(arch);
        save_tiny(&dir, arch, prefix, false);
        let tr = train(&dir, &d.path().join(format!("{arch}-run")), 4, false);
        assert_eq!(tr.history.len(), 4);
        assert!(
            tr.history
                .iter()
                .all(|s| s.loss.is_finite() && s.grad_norm > 0.0),
            "{arch}"
        );
        let saved = tr.save_final().unwrap();
        let m = model::SentenceModel::load(&saved, &Default::default()).unwrap();
        assert_eq!(m.encoder.config().model_type, arch);
        let a = m.encode(&["tea"], 1, |_| {}).unwrap();
        let b = tr.model.detached().encode(&["tea"], 1, |_| {}).unwrap();
        assert_eq!(a, b, "{arch}: saved model differs");
    }
}

/// ModernBERT and NomicBERT trained 5 steps load in sentence-transformers and embed as pairtrain
/// does, where a Python with sentence-transformers is named by `PAIRTRAIN_ST_PYTHON` (a
/// throwaway venv; CI has none, and says so).
#[test]
fn trained_rotary_encoders_load_in_sentence_transformers() {
    let Some(py) = std::env::var("PAIRTRAIN_ST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
    else {
        eprintln!("SKIPPED: PAIRTRAIN_ST_PYTHON names no Python with sentence-transformers");
        return;
    };
    let texts = [
        "rotary positions turn each head by its place",
        "a short one",
        &"long inputs pass the local window of one hundred and twenty eight tokens ".repeat(30),
    ];
    let d = tempfile::tempdir().unwrap();
    for arch in ["modernbert", "nomic_bert"] {
        let data = test_support::repo_root().join("crates/model/tests/data");
        let tr = train(
            &data.join(arch).join("model"),
            &d.path().join(arch),
            5,
            false,
        );
        let saved = tr.save_final().unwrap();
        let ours = model::SentenceModel::load(&saved, &Default::default())
            .unwrap()
            .encode(&texts, 8, |_| {})
            .unwrap();
        let out = std::process::Command::new(&py)
            .args([
                "-c",
                "import sys, json\n\
                 from sentence_transformers import SentenceTransformer\n\
                 m = SentenceTransformer(sys.argv[1], device='cpu')\n\
                 print(json.dumps(m.encode(sys.argv[2:]).tolist()))",
            ])
            .arg(&saved)
            .args(texts)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{arch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let theirs: Vec<Vec<f32>> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| test_support::max_abs_diff(a, b))
            .fold(0f32, f32::max);
        eprintln!("{arch}: trained 5 steps, sentence-transformers vs pairtrain {worst:.1e}");
        assert!(worst < 1e-5, "{arch}: {worst}");
    }
}
