//! DistilBERT: a tiny random model saved in Hugging Face layout, with DistilBERT's own config
//! names, against hand-derived expectations and the official parameter names.

use candle_core::{DType, Device};
use model::{build_encoder, LoadOptions, ModelConfig, ParamSource, SentenceModel};
use test_support::{max_abs_diff, minilm_dir};

/// config.json as transformers' `DistilBertConfig` writes it (its own field names).
const CONFIG: &str = r#"{
  "model_type": "distilbert", "architectures": ["DistilBertModel"], "vocab_size": 30522,
  "dim": 8, "n_layers": 2, "n_heads": 2, "hidden_dim": 16, "activation": "gelu",
  "dropout": 0.1, "attention_dropout": 0.1, "max_position_embeddings": 24,
  "sinusoidal_pos_embds": false, "pad_token_id": 0, "initializer_range": 0.02
}"#;

#[test]
fn config_names_map_onto_the_encoder_shape() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("config.json");
    std::fs::write(&p, CONFIG).unwrap();
    let cfg = ModelConfig::load(&p).unwrap();
    assert_eq!(
        (
            cfg.hidden_size,
            cfg.num_hidden_layers,
            cfg.num_attention_heads,
            cfg.intermediate_size
        ),
        (8, 2, 2, 16)
    );
    assert_eq!(cfg.attention_probs_dropout_prob, 0.1);
    assert_eq!(cfg.max_tokens(), 24);
}

/// transformers' `DistilBertModel` (modeling_distilbert.py): Embeddings (word_embeddings,
/// position_embeddings, LayerNorm), Transformer of TransformerBlock = attention
/// (MultiHeadSelfAttention: q_lin, k_lin, v_lin, out_lin), sa_layer_norm, ffn (FFN: lin1, lin2),
/// output_layer_norm. No token types, no pooler.
#[test]
fn parameter_names_are_the_official_ones() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("config.json");
    std::fs::write(&p, CONFIG).unwrap();
    let cfg = ModelConfig::load(&p).unwrap();
    let enc = build_encoder(&cfg, ParamSource::random(1, 0.02, DType::F32, &Device::Cpu)).unwrap();
    let mut got: Vec<String> = enc.params().iter().map(|(n, _)| n.to_string()).collect();
    got.sort();
    let mut want = vec![
        "embeddings.word_embeddings.weight".to_string(),
        "embeddings.position_embeddings.weight".into(),
        "embeddings.LayerNorm.weight".into(),
        "embeddings.LayerNorm.bias".into(),
    ];
    for l in 0..2 {
        for m in [
            "attention.q_lin",
            "attention.k_lin",
            "attention.v_lin",
            "attention.out_lin",
            "sa_layer_norm",
            "ffn.lin1",
            "ffn.lin2",
            "output_layer_norm",
        ] {
            for w in ["weight", "bias"] {
                want.push(format!("transformer.layer.{l}.{m}.{w}"));
            }
        }
    }
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn saved_tiny_model_loads_and_padding_never_changes_an_embedding() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let cfg = ModelConfig::load(&dir.join("config.json")).unwrap();
    let enc = build_encoder(&cfg, ParamSource::random(5, 0.3, DType::F32, &Device::Cpu)).unwrap();
    // Checkpoints of DistilBertForMaskedLM put every key under `distilbert.`.
    model::save::write_params(enc.params(), &dir.join("model.safetensors"), "distilbert.").unwrap();
    std::fs::copy(
        minilm_dir().join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    let m = SentenceModel::load(dir, &LoadOptions::default()).unwrap();
    assert_eq!(m.max_seq_length, 24);
    let short = "a short text";
    let long = "a much longer text that needs padding for the short one in the batch";
    let alone = m.encode(&[short], 1, |_| {}).unwrap();
    let batched = m.encode(&[short, long], 2, |_| {}).unwrap();
    let diff = max_abs_diff(&alone[0], &batched[0]);
    assert!(diff < 1e-6, "padding moved the embedding by {diff}");
    // The loaded weights are the saved ones.
    let a = enc.params().get("transformer.layer.1.ffn.lin2.weight");
    let b = m
        .encoder
        .params()
        .get("transformer.layer.1.ffn.lin2.weight");
    assert_eq!(
        a.unwrap().to_vec2::<f32>().unwrap(),
        b.unwrap().to_vec2::<f32>().unwrap()
    );
}
