//! The composed ops (what CUDA and bf16 run) give ModernBERT and NomicBERT the embeddings the
//! fused CPU kernels give, on texts past ModernBERT's 128-token window: there the window is a
//! bias table built once per forward (`ops::attention`'s fallback) instead of the kernel's key
//! range. One test in its own binary, since the switch is process-wide.

use model::SentenceModel;
use test_support::{max_abs_diff, repo_root};

#[test]
fn composed_ops_embed_the_rotary_encoders_as_the_fused_kernels() {
    // The character-level tokenizer of the parity folders: one token per letter.
    let long = "abcdefghij ".repeat(40);
    let texts = ["a short text", long.as_str(), &long[..200]];
    for arch in ["modernbert", "nomic_bert"] {
        let dir = repo_root()
            .join("crates/model/tests/data")
            .join(arch)
            .join("model");
        let m = SentenceModel::load(&dir, &Default::default()).unwrap();
        let fused = m.encode(&texts, 8, |_| {}).unwrap();
        model::ops::set_reference_only(true);
        let composed = m.encode(&texts, 8, |_| {}).unwrap();
        model::ops::set_reference_only(false);
        let worst = fused
            .iter()
            .zip(&composed)
            .map(|(a, b)| max_abs_diff(a, b))
            .fold(0f32, f32::max);
        eprintln!("{arch}: composed vs fused {worst:.1e}");
        assert!(worst < 1e-5, "{arch}: {worst}");
    }
}
