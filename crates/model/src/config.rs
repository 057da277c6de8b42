//! `config.json` of a Hugging Face model folder: which architecture, and its shape.

use crate::error::{read_json, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The architectures this crate implements, by their `model_type` in config.json.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &[
    "bert",
    "mpnet",
    "roberta",
    "xlm-roberta",
    "camembert",
    "distilbert",
    "modernbert",
    "nomic_bert",
];

/// The fields of a BERT-family `config.json` the encoders need. Unknown fields are ignored;
/// missing ones take transformers' `BertConfig` defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelConfig {
    pub model_type: String,
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    #[serde(default = "d_hidden", alias = "dim", alias = "n_embd")]
    pub hidden_size: usize,
    #[serde(default = "d_layers", alias = "n_layers", alias = "n_layer")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_heads", alias = "n_heads", alias = "n_head")]
    pub num_attention_heads: usize,
    #[serde(default = "d_inter", alias = "hidden_dim", alias = "n_inner")]
    pub intermediate_size: usize,
    #[serde(default = "d_act", alias = "activation", alias = "activation_function")]
    pub hidden_act: String,
    #[serde(default = "d_dropout", alias = "dropout", alias = "resid_pdrop")]
    pub hidden_dropout_prob: f64,
    #[serde(
        default = "d_dropout",
        alias = "attention_dropout",
        alias = "attn_pdrop"
    )]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "d_maxpos", alias = "n_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "d_types")]
    pub type_vocab_size: usize,
    #[serde(default = "d_eps", alias = "layer_norm_epsilon")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(default = "d_postype")]
    pub position_embedding_type: String,
    /// DistilBERT: fixed sinusoidal position embeddings instead of learned ones.
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
    /// MPNet: buckets of the relative position bias.
    #[serde(default = "d_buckets")]
    pub relative_attention_num_buckets: usize,
    /// The dtype activations run in when it differs from the weights' (bf16 compute over f32
    /// master weights); set by the loader, never read from or written to config.json.
    #[serde(skip)]
    pub compute_dtype: Option<candle_core::DType>,
    /// Run batches padded to their longest sequence instead of packed (`crate::packing`); set
    /// by the loader, never read from or written to config.json.
    #[serde(skip)]
    pub padded: bool,
    /// Every other field of config.json, for the architectures that read more (ModernBERT's
    /// layer types, rotary bases, biases).
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn d_vocab() -> usize {
    30522
}
fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_inter() -> usize {
    3072
}
fn d_act() -> String {
    "gelu".into()
}
fn d_dropout() -> f64 {
    0.1
}
fn d_maxpos() -> usize {
    512
}
fn d_types() -> usize {
    2
}
fn d_eps() -> f64 {
    1e-12
}
fn d_buckets() -> usize {
    32
}
fn d_postype() -> String {
    "absolute".into()
}

impl ModelConfig {
    /// A BERT config of the given shape, other fields at their defaults.
    pub fn bert(hidden: usize, layers: usize, heads: usize, intermediate: usize) -> Self {
        Self {
            model_type: "bert".into(),
            vocab_size: d_vocab(),
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: intermediate,
            hidden_act: d_act(),
            hidden_dropout_prob: d_dropout(),
            attention_probs_dropout_prob: d_dropout(),
            max_position_embeddings: d_maxpos(),
            type_vocab_size: d_types(),
            layer_norm_eps: d_eps(),
            pad_token_id: 0,
            position_embedding_type: d_postype(),
            relative_attention_num_buckets: d_buckets(),
            sinusoidal_pos_embds: false,
            compute_dtype: None,
            padded: false,
            extra: Default::default(),
        }
    }

    /// Reads and checks `config.json`; the error names the file and the offending field.
    pub fn load(path: &Path) -> Result<Self> {
        let raw: serde_json::Value = read_json(path)?;
        let model_type = raw
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::invalid(path, "no \"model_type\" field"))?;
        if !SUPPORTED_MODEL_TYPES.contains(&model_type) {
            return Err(Error::invalid(
                path,
                format!(
                    "unknown model_type \"{model_type}\" (supported: {})",
                    SUPPORTED_MODEL_TYPES.join(", ")
                ),
            ));
        }
        let cfg: ModelConfig = serde_json::from_value(raw).map_err(|cause| Error::Json {
            path: path.to_path_buf(),
            cause,
        })?;
        cfg.validate().map_err(|m| Error::invalid(path, m))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.model_type == "modernbert" {
            crate::modernbert::ModernBertShape::of(self)?;
        }
        if self.model_type == "nomic_bert" {
            crate::nomic_bert::NomicShape::of(self)?;
            if !matches!(self.hidden_act.as_str(), "silu" | "swish" | "swiglu") {
                return Err(format!(
                    "hidden_act \"{}\" is not supported for nomic_bert (only \"silu\": SwiGLU)",
                    self.hidden_act
                ));
            }
        } else if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_python") {
            return Err(format!(
                "hidden_act \"{}\" is not supported (only the exact erf \"gelu\")",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type \"{}\" is not supported (only \"absolute\")",
                self.position_embedding_type
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} {p} is outside [0, 1)"));
            }
        }
        Ok(())
    }

    /// The longest input the position table allows: position ids counted from the padding index
    /// (RoBERTa, XLM-R, MPNet) leave `pad + 1` rows unused.
    pub fn max_tokens(&self) -> usize {
        let offset =
            if self.model_type == "mpnet" || crate::bert::roberta_positions(&self.model_type) {
                self.pad_token_id as usize + 1
            } else {
                0
            };
        self.max_position_embeddings.saturating_sub(offset)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
