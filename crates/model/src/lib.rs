//! Transformer encoders for sentence embeddings, on candle.
//!
//! This crate holds the architectures (one file each, weights addressed by their Hugging Face
//! names), pooling and normalisation, fused ops with their own backward pass, tokenization, and
//! loading/saving of sentence-transformers model folders. Every op used in a forward pass has a
//! backward pass, so the encoders here are what the trainer trains.

pub mod bert;
pub mod config;
pub mod dense;
pub mod device;
pub mod distilbert;
pub mod dropout;
pub mod error;
pub mod hub;
pub mod identity;
pub mod modernbert;
pub mod mpnet;
pub mod nomic_bert;
pub mod npy;
pub mod ops;
pub mod packing;
pub mod params;
pub mod pooling;
pub mod rng;
pub mod rotary;
pub mod save;
pub mod sentence_model;
pub mod tokenize;
pub mod transformer;

pub use config::ModelConfig;
pub use dropout::Dropout;
pub use error::{Error, Result};
pub use params::{ParamId, ParamSource, Params};
pub use pooling::Pooling;
pub use sentence_model::{
    load_tokenizer, read_default_prompt, read_prompts, resolve_folder, LoadOptions, SentenceModel,
};
pub use tokenize::TextTokenizer;

use candle_core::Tensor;

/// What every architecture provides.
pub trait Encoder: Send + Sync {
    fn config(&self) -> &ModelConfig;
    fn config_mut(&mut self) -> &mut ModelConfig;
    fn params(&self) -> &Params;
    fn params_mut(&mut self) -> &mut Params;
    /// The same encoder over the same storage, recording no gradients.
    fn detached(&self) -> Box<dyn Encoder>;
    /// Token embeddings [B, L, H] for ids [B, L] (u32) and mask [B, L] (1 = real token). With
    /// `dropout`, the config's dropout rates apply (training); without, none does.
    fn forward(&self, ids: &Tensor, mask: &Tensor, dropout: Option<&mut Dropout>)
        -> Result<Tensor>;
}

/// The accessors of `Encoder` for a `Clone` struct with `cfg: ModelConfig` and `params: Params`
/// fields, which every architecture is.
#[macro_export]
#[doc(hidden)]
macro_rules! encoder_accessors {
    () => {
        fn config(&self) -> &$crate::ModelConfig {
            &self.cfg
        }

        fn config_mut(&mut self) -> &mut $crate::ModelConfig {
            &mut self.cfg
        }

        fn params(&self) -> &$crate::Params {
            &self.params
        }

        fn params_mut(&mut self) -> &mut $crate::Params {
            &mut self.params
        }

        fn detached(&self) -> Box<dyn $crate::Encoder> {
            let mut copy = self.clone();
            copy.params = self.params.detached();
            Box::new(copy)
        }
    };
}

/// Builds the encoder `cfg.model_type` names, with parameters from `src`.
pub fn build_encoder(cfg: &ModelConfig, src: ParamSource) -> Result<Box<dyn Encoder>> {
    match cfg.model_type.as_str() {
        "bert" | "roberta" | "xlm-roberta" | "camembert" => Ok(Box::new(bert::build(cfg, src)?)),
        "mpnet" => Ok(Box::new(mpnet::build(cfg, src)?)),
        "distilbert" => Ok(Box::new(distilbert::build(cfg, src)?)),
        "modernbert" => Ok(Box::new(modernbert::build(cfg, src)?)),
        "nomic_bert" => Ok(Box::new(nomic_bert::build(cfg, src)?)),
        other => Err(Error::Unsupported(format!("model_type \"{other}\""))),
    }
}

/// Key prefixes the architecture's checkpoints may carry.
pub fn prefixes(cfg: &ModelConfig) -> &'static [&'static str] {
    match cfg.model_type.as_str() {
        "bert" => bert::PREFIXES,
        t if bert::roberta_positions(t) => bert::ROBERTA_PREFIXES,
        "mpnet" => mpnet::PREFIXES,
        "distilbert" => distilbert::PREFIXES,
        "modernbert" => modernbert::PREFIXES,
        "nomic_bert" => nomic_bert::PREFIXES,
        _ => &[],
    }
}
