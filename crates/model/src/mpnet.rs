//! MPNet (Song et al., 2020, "MPNet: Masked and Permuted Pre-training for Language
//! Understanding"), the encoder of all-mpnet-base-v2: the graph of transformers' `MPNetModel`,
//! weights addressed by its names.
//!
//! Differences from BERT: RoBERTa-style position ids (`padding_idx + 1 + index` for real tokens,
//! `padding_idx` for padding, computed from the ids), no token types, and a relative position
//! bias (T5-style buckets, bidirectional) computed once from the sequence length and added to the
//! attention scores of every layer.

use crate::config::ModelConfig;
use crate::dropout::Dropout;
use crate::error::Result;
use crate::layers::{dense, drop, norm, positions_from_ids};
use crate::ops::{attention_with_constant_bias, gelu_erf, masked_softmax};
use crate::params::{Init, ParamSource, Params};
use crate::Encoder;
use candle_core::Tensor;

pub struct MPNet {
    cfg: ModelConfig,
    params: Params,
}

/// Key prefixes of MPNet checkpoints (`MPNetForMaskedLM` and friends).
pub const PREFIXES: &[&str] = &["mpnet."];

/// Largest relative distance the buckets tell apart (transformers' default).
const MAX_DISTANCE: usize = 128;

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

impl MPNet {
    pub fn build(cfg: &ModelConfig, mut src: ParamSource) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        src.take_embeddings(cfg)?;
        src.zero_row_if_random(
            "embeddings.position_embeddings.weight",
            cfg.pad_token_id as usize,
        )?;
        src.take_norm("embeddings.LayerNorm", h)?;
        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            for (name, out, inp) in [
                ("attention.attn.q", h, h),
                ("attention.attn.k", h, h),
                ("attention.attn.v", h, h),
                ("attention.attn.o", h, h),
                ("intermediate.dense", i, h),
                ("output.dense", h, i),
            ] {
                src.take_linear(&format!("{p}.{name}"), out, inp)?;
            }
            for ln in ["attention.LayerNorm", "output.LayerNorm"] {
                src.take_norm(&format!("{p}.{ln}"), h)?;
            }
        }
        src.take(
            "encoder.relative_attention_bias.weight",
            &[cfg.relative_attention_num_buckets, cfg.num_attention_heads],
            Init::Normal,
        )?;
        src.take_frozen_optional("pooler.dense.weight", &[h, h], Init::Normal)?;
        src.take_frozen_optional("pooler.dense.bias", &[h], Init::Zeros)?;
        Ok(Self {
            cfg: cfg.clone(),
            params: src.params,
        })
    }

    /// [1, heads, L, L]: the learned bias of each (query, key) distance bucket.
    fn position_bias(&self, l: usize) -> Result<Tensor> {
        let table = self.params.get("encoder.relative_attention_bias.weight");
        let buckets: Vec<u32> = (0..l)
            .flat_map(|q| {
                (0..l).map(move |k| {
                    relative_position_bucket(
                        k as i64 - q as i64,
                        self.cfg.relative_attention_num_buckets,
                    )
                })
            })
            .collect();
        let idx = Tensor::from_vec(buckets, l * l, table.device())?;
        let nh = self.cfg.num_attention_heads;
        Ok(table
            .index_select(&idx, 0)?
            .reshape((l, l, nh))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()?)
    }
}

impl Encoder for MPNet {
    crate::encoder_state!(MPNet);

    fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let p = &self.params;
        let eps = cfg.layer_norm_eps;
        let (b, l) = ids.dims2()?;
        let (h, nh, dh) = (cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim());

        // Position ids from the ids themselves, as transformers does: pad tokens get pad_id.
        let pos = positions_from_ids(ids, cfg.pad_token_id)?;
        let word = p
            .get("embeddings.word_embeddings.weight")
            .index_select(&ids.flatten_all()?, 0)?;
        let posv = p
            .get("embeddings.position_embeddings.weight")
            .index_select(&pos, 0)?;
        let x = (word + posv)?.reshape((b, l, h))?;
        let x = norm(p, &x, "embeddings.LayerNorm", eps)?;
        let mut x = drop(x, cfg.hidden_dropout_prob, &mut dropout)?;

        let bias = self.position_bias(l)?;
        let scale = 1.0 / (dh as f64).sqrt();
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, l, nh, dh))?.transpose(1, 2)?.contiguous()?)
        };
        for layer in 0..cfg.num_hidden_layers {
            let pre = format!("encoder.layer.{layer}");
            let q = dense(p, &x, &format!("{pre}.attention.attn.q"))?;
            let k = dense(p, &x, &format!("{pre}.attention.attn.k"))?;
            let v = dense(p, &x, &format!("{pre}.attention.attn.v"))?;
            let fused = !bias.track_op() && dropout.is_none() && x.device().is_cpu();
            let ctx = if fused {
                // Inference: the per-head kernel, with the position bias as a constant.
                attention_with_constant_bias(&q, &k, &v, mask, nh, scale, &bias.squeeze(0)?)?
            } else {
                // scores = q·kᵀ/√d + position bias, then the padding mask inside the softmax;
                // composed so that the bias table gets its gradient.
                let scores = (split(q)?.matmul(&split(k)?.t()?)? * scale)?.broadcast_add(&bias)?;
                let probs = masked_softmax(&scores, mask, 1.0)?;
                let probs = drop(probs, cfg.attention_probs_dropout_prob, &mut dropout)?;
                probs
                    .matmul(&split(v)?)?
                    .transpose(1, 2)?
                    .contiguous()?
                    .reshape((b, l, h))?
            };
            let a = dense(p, &ctx, &format!("{pre}.attention.attn.o"))?;
            let a = drop(a, cfg.hidden_dropout_prob, &mut dropout)?;
            let x1 = norm(p, &(a + &x)?, &format!("{pre}.attention.LayerNorm"), eps)?;
            let i = gelu_erf(&dense(p, &x1, &format!("{pre}.intermediate.dense"))?)?;
            let o = dense(p, &i, &format!("{pre}.output.dense"))?;
            let o = drop(o, cfg.hidden_dropout_prob, &mut dropout)?;
            x = norm(p, &(o + &x1)?, &format!("{pre}.output.LayerNorm"), eps)?;
        }
        Ok(x)
    }
}
