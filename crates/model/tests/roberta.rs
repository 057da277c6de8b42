//! RoBERTa and XLM-RoBERTa: no real weights can be fetched here, so tiny random models are saved
//! in Hugging Face layout and checked against hand-derived expectations and the official
//! parameter names.

use candle_core::{DType, Device};
use model::transformer::positions_from_ids;
use model::{build_encoder, LoadOptions, ModelConfig, ParamSource, SentenceModel};
use std::path::Path;
use test_support::{max_abs_diff, save_tiny_model};

fn tiny_config(model_type: &str) -> ModelConfig {
    let mut cfg = ModelConfig::bert(8, 2, 2, 16);
    cfg.model_type = model_type.into();
    cfg.pad_token_id = 1;
    cfg.type_vocab_size = 1;
    cfg.max_position_embeddings = 20;
    cfg.layer_norm_eps = 1e-5;
    cfg
}

fn save_tiny(dir: &Path, model_type: &str) {
    // Checkpoints of RobertaForMaskedLM put every key under `roberta.`.
    save_tiny_model(dir, &tiny_config(model_type), "roberta.", 3);
}

#[test]
fn position_ids_start_after_the_padding_index() {
    let ids = candle_core::Tensor::new(&[[0u32, 5, 6, 2, 1, 1], [0, 7, 2, 1, 1, 1]], &Device::Cpu)
        .unwrap();
    let pos = positions_from_ids(&ids, 1)
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    assert_eq!(pos, vec![2, 3, 4, 5, 1, 1, 2, 3, 4, 1, 1, 1]);
}

/// transformers' `RobertaModel` (modeling_roberta.py: RobertaEmbeddings, RobertaEncoder of
/// RobertaLayer = RobertaAttention(RobertaSelfAttention, RobertaSelfOutput), RobertaIntermediate,
/// RobertaOutput; RobertaPooler) names its parameters exactly as `BertModel` does; XLM-R reuses
/// the RoBERTa classes.
#[test]
fn parameter_names_are_the_official_ones() {
    let mut want = vec![
        "embeddings.word_embeddings.weight".to_string(),
        "embeddings.position_embeddings.weight".into(),
        "embeddings.token_type_embeddings.weight".into(),
        "embeddings.LayerNorm.weight".into(),
        "embeddings.LayerNorm.bias".into(),
    ];
    for l in 0..2 {
        for m in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "attention.output.LayerNorm",
            "intermediate.dense",
            "output.dense",
            "output.LayerNorm",
        ] {
            for p in ["weight", "bias"] {
                want.push(format!("encoder.layer.{l}.{m}.{p}"));
            }
        }
    }
    want.push("pooler.dense.weight".into());
    want.push("pooler.dense.bias".into());
    want.sort();
    for t in ["roberta", "xlm-roberta"] {
        let enc = build_encoder(
            &tiny_config(t),
            ParamSource::random(1, 0.02, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let mut got: Vec<String> = enc.params().iter().map(|(n, _)| n.to_string()).collect();
        got.sort();
        assert_eq!(got, want, "{t}");
    }
}

#[test]
fn saved_tiny_models_load_and_padding_never_changes_an_embedding() {
    let d = tempfile::tempdir().unwrap();
    for t in ["roberta", "xlm-roberta"] {
        let dir = d.path().join(t);
        save_tiny(&dir, t);
        let m = SentenceModel::load(&dir, &LoadOptions::default()).unwrap();
        // A plain folder: mean pooling, no normalisation, 20 positions minus pad + 1.
        assert_eq!(m.max_seq_length, 18);
        assert!(!m.normalize);
        assert_eq!(m.pad_id(), 1);
        let short = "a short text";
        let long = "a much longer text that needs padding for the short one in the same batch";
        let alone = m.encode(&[short], 1, |_| {}).unwrap();
        let batched = m.encode(&[short, long], 2, |_| {}).unwrap();
        let d = max_abs_diff(&alone[0], &batched[0]);
        assert!(d < 1e-6, "{t}: padding moved the embedding by {d}");
        // A longer input than 18 tokens is truncated, never indexes past the position table.
        let very_long = "word ".repeat(100);
        assert_eq!(
            m.encode(&[very_long.as_str()], 1, |_| {}).unwrap()[0].len(),
            8
        );
    }
}
