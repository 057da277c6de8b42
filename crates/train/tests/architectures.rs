//! `train` works with every architecture: a few steps on tiny random models saved in Hugging
//! Face layout, then the saved model loads back.

use model::ModelConfig;
use std::sync::atomic::AtomicBool;
use test_support::{save_tiny_model, shared_dir};
use train::{Recipe, Trainer};

#[test]
fn every_architecture_trains_and_saves() {
    let d = tempfile::tempdir().unwrap();
    for (arch, prefix) in [
        ("bert", "bert."),
        ("roberta", "roberta."),
        ("xlm-roberta", "roberta."),
        ("distilbert", "distilbert."),
        ("mpnet", "mpnet."),
    ] {
        let mut cfg = ModelConfig::bert(16, 2, 2, 32);
        cfg.model_type = arch.into();
        cfg.max_position_embeddings = 40;
        if arch != "bert" && arch != "distilbert" {
            cfg.pad_token_id = 1;
            cfg.type_vocab_size = 1;
        }
        let dir = d.path().join(arch);
        save_tiny_model(&dir, &cfg, prefix, 9);
        let out = d.path().join(format!("{arch}-run"));
        let text = format!(
            "[model]\nbase = \"{}\"\nnormalize = true\nmax_seq_length = 24\n\
             [loss]\nkind = \"mnrl-symmetric\"\n\
             [train]\nbatch_size = 8\nsteps = 4\nlr = 1e-3\noutput = \"{}\"\n\
             [[data]]\npath = \"{}\"\n",
            dir.display(),
            out.display(),
            shared_dir()
                .join("reference/train-parity/pairs.jsonl")
                .display()
        );
        let recipe_path = d.path().join(format!("{arch}.toml"));
        std::fs::write(&recipe_path, text).unwrap();
        let mut tr = Trainer::new(Recipe::load(&recipe_path).unwrap(), None).unwrap();
        assert!(tr.run(&AtomicBool::new(false), |_| {}).unwrap());
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
