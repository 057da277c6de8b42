//! ModernBERT and NomicBERT against Hugging Face transformers' own `ModernBertModel` and
//! `NomicBertModel` (eager attention): seeded random weights of each structure saved by
//! `save_pretrained`, ids of mixed lengths (12, 300 and 2048 real tokens padded to 2048, so
//! ModernBERT's 128-token local window matters), token embeddings within 1e-5 of their scale,
//! the mean-pooled and CLS embeddings within 1e-5 (scripts/reference/rotary_encoders_parity.py
//! writes tests/data/modernbert and tests/data/nomic_bert).

use candle_core::{DType, Device, Tensor};
use model::{build_encoder, prefixes, ModelConfig, ParamSource};
use std::path::PathBuf;

fn data(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(arch)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    test_support::max_abs_diff(&flat(a), &flat(b))
}

#[test]
fn modernbert_matches_transformers_on_mixed_lengths() {
    matches_transformers("modernbert");
}

#[test]
fn nomic_bert_matches_transformers_on_mixed_lengths() {
    matches_transformers("nomic_bert");
}

fn matches_transformers(arch: &str) {
    let dir = data(arch).join("model");
    let cfg = ModelConfig::load(&dir.join("config.json")).unwrap();
    let weights = dir.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let enc = build_encoder(
        &cfg,
        ParamSource::from_file(&weights, tensors, prefixes(&cfg), DType::F32),
    )
    .unwrap();
    let r = candle_core::safetensors::load(data(arch).join("reference.safetensors"), &Device::Cpu)
        .unwrap();
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
    // Token embeddings reach ±5.7 (LayerNorm gains up to 1.5): float32 rounding over four
    // layers and 2048-token softmaxes is judged relative to that scale.
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
        "{arch} vs transformers: tokens {diff:.2e} (largest value {scale:.2}), mean \
         {dmean:.2e}, CLS {dcls:.2e}"
    );
    assert!(diff / scale < 1e-5, "{arch}: {diff} of {scale}");
    assert!(
        dmean < 1e-5 && dcls < 1e-5,
        "{arch}: mean {dmean}, CLS {dcls}"
    );
}

/// The published checkpoints' form of config.json (global_attn_every_n_layers and the two
/// rotary bases by name) gives the same layers as transformers 5's `layer_types`.
#[test]
fn both_config_forms_give_the_same_shape() {
    let dir = data("modernbert").join("model");
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

/// The config.json of the published NomicBERT checkpoints (GPT-2's names, the rotary base and
/// bias flags of their own config class) describes the same encoder as transformers 5's form;
/// what pairtrain cannot run is refused by name.
#[test]
fn nomic_bert_config_in_the_checkpoints_own_form() {
    let dir = data("nomic_bert").join("model");
    let new = ModelConfig::load(&dir.join("config.json")).unwrap();
    let own = serde_json::json!({
        "model_type": "nomic_bert", "architectures": ["NomicBertModel"], "vocab_size": 512,
        "n_embd": 64, "n_head": 4, "n_layer": 4, "n_inner": 96, "n_positions": 2048,
        "activation_function": "swiglu", "layer_norm_epsilon": 1e-12, "resid_pdrop": 0.0,
        "attn_pdrop": 0.0, "embd_pdrop": 0.0, "type_vocab_size": 2, "prenorm": false,
        "rotary_emb_base": 1000, "rotary_emb_fraction": 1.0, "rotary_emb_interleaved": false,
        "rotary_scaling_factor": null, "qkv_proj_bias": false, "mlp_fc1_bias": false,
        "mlp_fc2_bias": false, "parallel_block": false, "causal": false
    });
    let d = tempfile::tempdir().unwrap();
    let load = |v: &serde_json::Value| {
        let p = d.path().join("config.json");
        std::fs::write(&p, v.to_string()).unwrap();
        ModelConfig::load(&p)
    };
    let old = load(&own).unwrap();
    let fields = |c: &ModelConfig| {
        (
            c.hidden_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.intermediate_size,
            c.max_position_embeddings,
            c.layer_norm_eps,
            c.hidden_dropout_prob,
        )
    };
    assert_eq!(fields(&old), fields(&new));
    let shape = model::nomic_bert::NomicShape::of;
    assert_eq!(shape(&old).unwrap(), shape(&new).unwrap());
    // The same weights under either config give the same encoder.
    let weights = dir.join("model.safetensors");
    let enc = |cfg: &ModelConfig| {
        let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
        let src = ParamSource::from_file(&weights, tensors, prefixes(cfg), DType::F32);
        build_encoder(cfg, src).unwrap()
    };
    let ids = Tensor::new(&[[1u32, 40, 41, 42, 2]], &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, 5), DType::F32, &Device::Cpu).unwrap();
    let (a, b) = (
        enc(&old).forward(&ids, &mask, None).unwrap(),
        enc(&new).forward(&ids, &mask, None).unwrap(),
    );
    assert_eq!(max_abs(&a, &b), 0.0);
    for (key, value, named) in [
        ("prenorm", serde_json::json!(true), "prenorm"),
        (
            "rotary_emb_fraction",
            serde_json::json!(0.5),
            "rotary_emb_fraction",
        ),
        (
            "rotary_emb_interleaved",
            serde_json::json!(true),
            "rotary_emb_interleaved",
        ),
        (
            "activation_function",
            serde_json::json!("gelu_new"),
            "hidden_act",
        ),
    ] {
        let mut bad = own.clone();
        bad[key] = value;
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains(named) && e.contains("config.json"), "{key}: {e}");
    }
}
