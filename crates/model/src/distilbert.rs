//! DistilBERT (Sanh et al., 2019, "DistilBERT, a distilled version of BERT"): BERT's post-norm
//! encoder with half the layers, no token types and no pooler, under transformers'
//! `DistilBertModel` parameter names (`transformer.layer.N.attention.q_lin`, `sa_layer_norm`,
//! `ffn.lin1`, …) and config names (`dim`, `n_layers`, `n_heads`, `hidden_dim`, read through
//! aliases in `ModelConfig`).

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::params::{ParamId, ParamSource, Params};
use crate::transformer::{take_layers, Embeddings, LayerNames, Transformer};
use candle_core::Tensor;

/// DistilBERT's embeddings: word + absolute position.
#[derive(Clone)]
pub struct DistilBertEmbeddings {
    word: ParamId,
    position: ParamId,
}

pub type DistilBert = Transformer<DistilBertEmbeddings>;

/// Key prefixes of DistilBERT checkpoints (`DistilBertForMaskedLM` and friends).
pub const PREFIXES: &[&str] = &["distilbert."];

const LAYER: LayerNames = LayerNames {
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attention_out: "attention.out_lin",
    attention_norm: "sa_layer_norm",
    ffn_in: "ffn.lin1",
    ffn_out: "ffn.lin2",
    output_norm: "output_layer_norm",
    norms_last: true,
};

pub fn build(cfg: &ModelConfig, mut src: ParamSource) -> Result<DistilBert> {
    if cfg.sinusoidal_pos_embds {
        return Err(Error::Unsupported(
            "DistilBERT with sinusoidal_pos_embds".into(),
        ));
    }
    let (word, position) = src.take_embeddings(cfg)?;
    let embedding_norm = src.take_norm("embeddings.LayerNorm", cfg.hidden_size)?;
    let layers = take_layers(&mut src, cfg, "transformer.layer", &LAYER)?;
    Ok(Transformer {
        cfg: cfg.clone(),
        params: src.params,
        embeddings: DistilBertEmbeddings { word, position },
        embedding_norm,
        layers,
    })
}

impl Embeddings for DistilBertEmbeddings {
    fn embed(&self, p: &Params, cfg: &ModelConfig, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let word = p
            .at(self.word)
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, cfg.hidden_size))?;
        Ok(word.broadcast_add(&p.at(self.position).narrow(0, 0, l)?)?)
    }
}
