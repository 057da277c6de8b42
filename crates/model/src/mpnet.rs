//! MPNet (Song et al., 2020, "MPNet: Masked and Permuted Pre-training for Language
//! Understanding"), the encoder of all-mpnet-base-v2: the graph of transformers' `MPNetModel`,
//! weights addressed by its names.
//!
//! Differences from BERT: RoBERTa-style position ids (`padding_idx + 1 + index` for real tokens,
//! `padding_idx` for padding, computed from the ids), no token types, and a relative position
//! bias (T5-style buckets, bidirectional) computed once from the sequence length and added to the
//! attention scores of every layer.

use crate::config::ModelConfig;
use crate::error::Result;
use crate::params::{Init, ParamId, ParamSource, Params};
use crate::transformer::{positions_from_ids, take_layers, Embeddings, LayerNames, Transformer};
use candle_core::Tensor;

/// MPNet's embeddings (word + RoBERTa-style positions) and its relative position bias.
#[derive(Clone)]
pub struct MPNetEmbeddings {
    word: ParamId,
    position: ParamId,
    relative_bias: ParamId,
}

pub type MPNet = Transformer<MPNetEmbeddings>;

/// Key prefixes of MPNet checkpoints (`MPNetForMaskedLM` and friends).
pub const PREFIXES: &[&str] = &["mpnet."];

/// Largest relative distance the buckets tell apart (transformers' default).
const MAX_DISTANCE: usize = 128;

const LAYER: LayerNames = LayerNames {
    query: "attention.attn.q",
    key: "attention.attn.k",
    value: "attention.attn.v",
    attention_out: "attention.attn.o",
    attention_norm: "attention.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    output_norm: "output.LayerNorm",
    norms_last: true,
};

/// transformers' `MPNetEncoder.relative_position_bucket`, in the same float32 arithmetic: half
/// the buckets for keys after the query, half before; exact up to `buckets/4`, logarithmic beyond.
pub fn relative_position_bucket(relative: i64, num_buckets: usize) -> u32 {
    let half = (num_buckets / 2) as i64;
    let n = -relative;
    let mut ret = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    let bucket = if n < max_exact {
        n
    } else {
        let log_ratio = (n as f32 / max_exact as f32).ln()
            / ((MAX_DISTANCE as f64 / max_exact as f64).ln() as f32);
        let large = max_exact + (log_ratio * (half - max_exact) as f32) as i64;
        large.min(half - 1)
    };
    ret += bucket;
    ret as u32
}

pub fn build(cfg: &ModelConfig, mut src: ParamSource) -> Result<MPNet> {
    let h = cfg.hidden_size;
    let (word, position) = src.take_embeddings(cfg)?;
    src.zero_row_if_random(
        "embeddings.position_embeddings.weight",
        cfg.pad_token_id as usize,
    )?;
    let embedding_norm = src.take_norm("embeddings.LayerNorm", h)?;
    let layers = take_layers(&mut src, cfg, "encoder.layer", &LAYER)?;
    let relative_bias = src.take(
        "encoder.relative_attention_bias.weight",
        &[cfg.relative_attention_num_buckets, cfg.num_attention_heads],
        Init::Normal,
    )?;
    src.take_frozen_optional("pooler.dense.weight", &[h, h], Init::Normal)?;
    src.take_frozen_optional("pooler.dense.bias", &[h], Init::Zeros)?;
    Ok(Transformer {
        cfg: cfg.clone(),
        params: src.params,
        embeddings: MPNetEmbeddings {
            word,
            position,
            relative_bias,
        },
        embedding_norm,
        layers,
    })
}

impl Embeddings for MPNetEmbeddings {
    fn embed(&self, p: &Params, cfg: &ModelConfig, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        // Position ids from the ids themselves, as transformers does: pad tokens get pad_id.
        let pos = positions_from_ids(ids, cfg.pad_token_id)?;
        let word = p.at(self.word).index_select(&ids.flatten_all()?, 0)?;
        let posv = p.at(self.position).index_select(&pos, 0)?;
        Ok((word + posv)?.reshape((b, l, cfg.hidden_size))?)
    }

    /// [heads, L, L]: the learned bias of each (query, key) distance bucket.
    fn attention_bias(&self, p: &Params, cfg: &ModelConfig, l: usize) -> Result<Option<Tensor>> {
        let table = p.at(self.relative_bias);
        let buckets: Vec<u32> = (0..l)
            .flat_map(|q| {
                (0..l).map(move |k| {
                    relative_position_bucket(
                        k as i64 - q as i64,
                        cfg.relative_attention_num_buckets,
                    )
                })
            })
            .collect();
        let idx = Tensor::from_vec(buckets, l * l, table.device())?;
        let nh = cfg.num_attention_heads;
        Ok(Some(
            table
                .index_select(&idx, 0)?
                .reshape((l, l, nh))?
                .permute((2, 0, 1))?
                .contiguous()?,
        ))
    }
}
