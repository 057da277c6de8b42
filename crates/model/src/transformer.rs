//! The post-LayerNorm transformer layer (Vaswani et al., 2017) that BERT, RoBERTa, MPNet and
//! DistilBERT share, over parameter handles resolved when the model loads. The architectures keep
//! their own parameter names and embeddings; this file is the one place the layer's maths lives.

use crate::config::ModelConfig;
use crate::dropout::Dropout;
use crate::error::Result;
use crate::ops::{
    attention, gelu_erf, gelu_linear_bf16, layer_norm, linear, linear_bf16, AttentionSpec,
};
use crate::packing::Packing;
use crate::params::{ParamId, ParamSource, Params};
use crate::Encoder;
use candle_core::{DType, Tensor};

/// What an architecture adds to the shared encoder: its input embeddings and, optionally, a
/// bias on the attention scores.
pub trait Embeddings: Clone + Send + Sync + 'static {
    /// The sum of the input embeddings [B, L, H] for ids [B, L] (before the embedding
    /// LayerNorm).
    fn embed(&self, p: &Params, cfg: &ModelConfig, ids: &Tensor) -> Result<Tensor>;

    /// A bias [heads, L, L] added to every layer's attention scores (MPNet's relative
    /// positions); none by default.
    fn attention_bias(&self, _p: &Params, _cfg: &ModelConfig, _l: usize) -> Result<Option<Tensor>> {
        Ok(None)
    }
}

/// A post-LayerNorm transformer encoder: an architecture's embeddings, the embedding
/// LayerNorm, then the shared layers.
#[derive(Clone)]
pub struct Transformer<E> {
    pub cfg: ModelConfig,
    pub params: Params,
    pub embeddings: E,
    pub embedding_norm: Norm,
    pub layers: Vec<PostLnLayer>,
}

impl<E: Embeddings> Encoder for Transformer<E> {
    crate::encoder_accessors!();

    fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let (cfg, p) = (&self.cfg, &self.params);
        let packing = crate::packing::for_batch(cfg, mask)?;
        let x = self.embeddings.embed(p, cfg, ids)?;
        let x = self.embedding_norm.forward(p, &x, cfg.layer_norm_eps)?;
        let mut x = drop(x, cfg.hidden_dropout_prob, &mut dropout)?;
        if let Some(pk) = &packing {
            x = pk.pack(&x)?;
        }
        let bias = self.embeddings.attention_bias(p, cfg, ids.dims2()?.1)?;
        // Activations in the compute dtype (bf16 under mixed precision, weights staying f32),
        // except where the linear layers were packed for bf16 on the CPU: they round their own
        // inputs and everything else runs in f32.
        if let Some(dt) = cfg.compute_dtype.filter(|_| !p.has_packed_bf16()) {
            x = x.to_dtype(dt)?;
        }
        let keys = Keys {
            mask,
            bias: bias.as_ref(),
            packing: packing.as_ref(),
        };
        for layer in &self.layers {
            x = layer.forward(p, cfg, &x, &keys, &mut dropout)?;
        }
        match &packing {
            Some(pk) => Ok(pk.unpack(&x)?),
            None => Ok(x),
        }
    }
}

/// A linear layer's weight [out, in] and bias [out].
#[derive(Clone, Copy, Debug)]
pub struct Dense {
    pub weight: ParamId,
    pub bias: ParamId,
}

impl Dense {
    pub fn forward(&self, p: &Params, x: &Tensor) -> Result<Tensor> {
        match p.packed_bf16(self.weight) {
            Some(w) if x.dtype() == DType::F32 => Ok(linear_bf16(x, w, p.at(self.bias))?),
            _ => Ok(linear(x, p.at(self.weight), p.at(self.bias))?),
        }
    }
}

/// A LayerNorm's weight and bias.
#[derive(Clone, Copy, Debug)]
pub struct Norm {
    pub weight: ParamId,
    pub bias: ParamId,
}

impl Norm {
    pub fn forward(&self, p: &Params, x: &Tensor, eps: f64) -> Result<Tensor> {
        Ok(layer_norm(x, p.at(self.weight), p.at(self.bias), eps)?)
    }
}

/// An architecture's names for the parts of one layer (relative to the layer's prefix), and the
/// order its checkpoints declare them in (which fixes the stream of a seeded random init).
pub struct LayerNames {
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub attention_out: &'static str,
    pub attention_norm: &'static str,
    pub ffn_in: &'static str,
    pub ffn_out: &'static str,
    pub output_norm: &'static str,
    /// BERT declares each LayerNorm after the dense layer it follows; MPNet and DistilBERT
    /// declare all six dense layers first.
    pub norms_last: bool,
}

/// What every layer's attention takes beside its input: the batch's mask [B, L], a score bias
/// [heads, L, L] (MPNet's relative positions), and the packing when the batch runs packed.
pub struct Keys<'a> {
    pub mask: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    pub packing: Option<&'a Packing>,
}

#[derive(Clone, Copy, Debug)]
pub struct PostLnLayer {
    query: Dense,
    key: Dense,
    value: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    ffn_in: Dense,
    ffn_out: Dense,
    output_norm: Norm,
}

impl PostLnLayer {
    /// Declares the parameters of the layer under `prefix` (e.g. `encoder.layer.3`).
    pub fn take(
        src: &mut ParamSource,
        cfg: &ModelConfig,
        prefix: &str,
        n: &LayerNames,
    ) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let name = |part: &str| format!("{prefix}.{part}");
        let query = src.take_linear(&name(n.query), h, h)?;
        let key = src.take_linear(&name(n.key), h, h)?;
        let value = src.take_linear(&name(n.value), h, h)?;
        let attention_out = src.take_linear(&name(n.attention_out), h, h)?;
        let mut attention_norm = None;
        if !n.norms_last {
            attention_norm = Some(src.take_norm(&name(n.attention_norm), h)?);
        }
        let ffn_in = src.take_linear(&name(n.ffn_in), i, h)?;
        let ffn_out = src.take_linear(&name(n.ffn_out), h, i)?;
        let attention_norm = match attention_norm {
            Some(norm) => norm,
            None => src.take_norm(&name(n.attention_norm), h)?,
        };
        let output_norm = src.take_norm(&name(n.output_norm), h)?;
        Ok(Self {
            query,
            key,
            value,
            attention_out,
            attention_norm,
            ffn_in,
            ffn_out,
            output_norm,
        })
    }

    /// One layer: self-attention (with the keys' optional score bias), residual and LayerNorm,
    /// then the GELU feed-forward, residual and LayerNorm; dropout after the attention
    /// probabilities and after each sub-layer when training. `x` is [B, L, H], or [1, T, H]
    /// packed by `keys.packing`.
    pub fn forward(
        &self,
        p: &Params,
        cfg: &ModelConfig,
        x: &Tensor,
        keys: &Keys,
        dropout: &mut Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let eps = cfg.layer_norm_eps;
        let scale = 1.0 / (cfg.head_dim() as f64).sqrt();
        let q = self.query.forward(p, x)?;
        let k = self.key.forward(p, x)?;
        let v = self.value.forward(p, x)?;
        let attn_drop = attention_dropout(cfg.attention_probs_dropout_prob, dropout);
        let spec = AttentionSpec {
            mask: keys.mask,
            heads: cfg.num_attention_heads,
            scale,
            bias: keys.bias,
            dropout: attn_drop,
            packing: keys.packing,
            window: None,
        };
        let ctx = attention(&q, &k, &v, &spec)?;
        let a = self.attention_out.forward(p, &ctx)?;
        let a = drop(a, cfg.hidden_dropout_prob, dropout)?;
        let x1 = self.attention_norm.forward(p, &(a + x)?, eps)?;
        let f = self.feed_forward(p, &x1)?;
        let f = drop(f, cfg.hidden_dropout_prob, dropout)?;
        self.output_norm.forward(p, &(f + &x1)?, eps)
    }

    /// ffn_out(gelu(ffn_in(x))); with bf16 packings, the GELU is fused into the first multiply.
    fn feed_forward(&self, p: &Params, x: &Tensor) -> Result<Tensor> {
        let packed = (
            p.packed_bf16(self.ffn_in.weight),
            p.packed_bf16(self.ffn_out.weight),
        );
        match packed {
            (Some(w_in), Some(w_out)) if x.dtype() == DType::F32 => {
                let h = gelu_linear_bf16(x, w_in, p.at(self.ffn_in.bias))?;
                Ok(linear_bf16(&h, w_out, p.at(self.ffn_out.bias))?)
            }
            _ => self
                .ffn_out
                .forward(p, &gelu_erf(&self.ffn_in.forward(p, x)?)?),
        }
    }
}

/// Declares `cfg.num_hidden_layers` layers under `{stack}.{i}`.
pub fn take_layers(
    src: &mut ParamSource,
    cfg: &ModelConfig,
    stack: &str,
    names: &LayerNames,
) -> Result<Vec<PostLnLayer>> {
    (0..cfg.num_hidden_layers)
        .map(|l| PostLnLayer::take(src, cfg, &format!("{stack}.{l}"), names))
        .collect()
}

/// Dropout with probability `p` when training (a generator is given), identity otherwise.
pub fn drop(x: Tensor, p: f64, dropout: &mut Option<&mut Dropout>) -> Result<Tensor> {
    match dropout {
        Some(d) if p > 0.0 => Ok(d.apply(&x, p)?),
        _ => Ok(x),
    }
}

/// Dropout on attention probabilities: `(p, mask seed)` when training with `p > 0`, drawing the
/// seed from the generator; None otherwise.
pub(crate) fn attention_dropout(p: f64, dropout: &mut Option<&mut Dropout>) -> Option<(f64, u64)> {
    match dropout {
        Some(d) if p > 0.0 => Some((p, d.next_seed())),
        _ => None,
    }
}

/// `positions_from_ids` in tensor ops, so that on a GPU the ids do not cross to the host every
/// forward: a running count of the real tokens (exact in f32 far beyond any sequence length),
/// padding at `pad`.
fn positions_on_device(ids: &Tensor, pad: u32) -> Result<Tensor> {
    let real = ids.ne(pad)?.to_dtype(candle_core::DType::F32)?;
    let pos = ((real.cumsum(1)? * &real)? + pad as f64)?;
    Ok(pos.to_dtype(candle_core::DType::U32)?.flatten_all()?)
}

/// RoBERTa-style position ids [B·L] (u32), computed from the ids as transformers does: real
/// tokens get `pad + 1, pad + 2, …`, padding tokens get `pad`.
pub fn positions_from_ids(ids: &Tensor, pad: u32) -> Result<Tensor> {
    if !ids.device().is_cpu() {
        return positions_on_device(ids, pad);
    }
    let rows = ids.to_vec2::<u32>()?;
    let mut pos = Vec::with_capacity(rows.len() * rows.first().map_or(0, |r| r.len()));
    for row in &rows {
        let mut count = 0u32;
        for &t in row {
            if t != pad {
                count += 1;
                pos.push(pad + count);
            } else {
                pos.push(pad);
            }
        }
    }
    let n = pos.len();
    Ok(Tensor::from_vec(pos, n, ids.device())?)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    /// The device form of the position ids equals the host one, padding anywhere.
    #[test]
    fn positions_on_the_device_equal_the_hosts() {
        let ids = Tensor::new(&[[0u32, 5, 6, 1, 1], [7, 1, 8, 9, 1]], &Device::Cpu).unwrap();
        let host = super::positions_from_ids(&ids, 1)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        assert_eq!(host, vec![2, 3, 4, 1, 1, 2, 1, 3, 4, 1]);
        let dev = super::positions_on_device(&ids, 1)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        assert_eq!(dev, host);
    }
}
