//! ModernBERT against Hugging Face transformers' own `ModernBertModel` (eager attention):
//! seeded random weights of ModernBERT's structure saved by `save_pretrained`, ids of mixed
//! lengths (12, 300 and 2048 real tokens padded to 2048, so the 128-token local window matters),
//! token embeddings within 1e-5 of their scale, the mean-pooled and CLS embeddings within 1e-5
//! (scripts/reference/modernbert_parity.py writes tests/data/modernbert).

use candle_core::{DType, Device, Tensor};
use model::{build_encoder, prefixes, ModelConfig, ParamSource};
use std::path::PathBuf;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/modernbert")
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    test_support::max_abs_diff(&flat(a), &flat(b))
}

#[test]
fn modernbert_matches_transformers_on_mixed_lengths() {
    let dir = data().join("model");
    let cfg = ModelConfig::load(&dir.join("config.json")).unwrap();
    let weights = dir.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let enc = build_encoder(
        &cfg,
        ParamSource::from_file(&weights, tensors, prefixes(&cfg), DType::F32),
    )
    .unwrap();
    let r =
        candle_core::safetensors::load(data().join("reference.safetensors"), &Device::Cpu).unwrap();
    let ids = r["ids"].to_dtype(DType::U32).unwrap();
    let mask = r["mask"].to_dtype(DType::F32).unwrap();
    let tok = enc.forward(&ids, &mask, None).unwrap();
    let (b, l, h) = tok.dims3().unwrap();
    assert_eq!((b, l, h), (3, 2048, 64));

    // Every 8th position, padding excluded (transformers leaves padded rows to whatever the
    // masked attention gives; only real tokens are compared).
    let every8 = tok
        .index_select(
            &Tensor::arange_step(0u32, l as u32, 8, &Device::Cpu).unwrap(),
            1,
        )
        .unwrap();
    let m8 = mask
        .index_select(
            &Tensor::arange_step(0u32, l as u32, 8, &Device::Cpu).unwrap(),
            1,
        )
        .unwrap()
        .unsqueeze(2)
        .unwrap();
    let diff = max_abs(
        &every8.broadcast_mul(&m8).unwrap(),
        &r["tokens_every_8th"].broadcast_mul(&m8).unwrap(),
    );
    // Token embeddings reach ±5.7 (final LayerNorm gains up to 1.5): float32 rounding over
    // four layers and 2048-token softmaxes is judged relative to that scale.
    let scale = r["tokens_every_8th"]
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let m = mask.unsqueeze(2).unwrap();
    let mean = (tok.broadcast_mul(&m).unwrap().sum(1).unwrap())
        .broadcast_div(&m.sum(1).unwrap())
        .unwrap();
    let dmean = max_abs(&mean, &r["mean"]);
    let dcls = max_abs(&tok.narrow(1, 0, 1).unwrap().squeeze(1).unwrap(), &r["cls"]);
    eprintln!(
        "ModernBERT vs transformers: tokens {diff:.2e} (largest value {scale:.2}), mean \
         {dmean:.2e}, CLS {dcls:.2e}"
    );
    assert!(diff / scale < 1e-5, "{diff} of {scale}");
    assert!(dmean < 1e-5 && dcls < 1e-5);
}

/// The published checkpoints' form of config.json (global_attn_every_n_layers and the two
/// rotary bases by name) gives the same layers as transformers 5's `layer_types`.
#[test]
fn both_config_forms_give_the_same_shape() {
    let dir = data().join("model");
    let new = ModelConfig::load(&dir.join("config.json")).unwrap();
    let mut raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let o = raw.as_object_mut().unwrap();
    o.remove("layer_types");
    o.remove("rope_parameters");
    o.insert("global_rope_theta".into(), 160000.0.into());
    o.insert("local_rope_theta".into(), 10000.0.into());
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("config.json"), raw.to_string()).unwrap();
    let old = ModelConfig::load(&d.path().join("config.json")).unwrap();
    let (a, b) = (
        model::modernbert::ModernBertShape::of(&new).unwrap(),
        model::modernbert::ModernBertShape::of(&old).unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(a.global, vec![true, false, false, true]);
    assert_eq!(a.half_window, 64);
}
