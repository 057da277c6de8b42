//! Building blocks shared by the architectures: parameters are addressed by Hugging Face name
//! prefixes (`{name}.weight`, `{name}.bias`).

use crate::dropout::Dropout;
use crate::error::Result;
use crate::ops::{layer_norm, linear};
use crate::params::Params;
use candle_core::Tensor;

/// `x·Wᵀ + b` with `{name}.weight` / `{name}.bias`.
pub fn dense(p: &Params, x: &Tensor, name: &str) -> Result<Tensor> {
    Ok(linear(
        x,
        p.get(&format!("{name}.weight")),
        p.get(&format!("{name}.bias")),
    )?)
}

/// LayerNorm with `{name}.weight` / `{name}.bias`.
pub fn norm(p: &Params, x: &Tensor, name: &str, eps: f64) -> Result<Tensor> {
    Ok(layer_norm(
        x,
        p.get(&format!("{name}.weight")),
        p.get(&format!("{name}.bias")),
        eps,
    )?)
}

/// Dropout with probability `p` when training (a generator is given), identity otherwise.
pub fn drop(x: Tensor, p: f64, dropout: &mut Option<&mut Dropout>) -> Result<Tensor> {
    match dropout {
        Some(d) if p > 0.0 => Ok(d.apply(&x, p)?),
        _ => Ok(x),
    }
}

/// Dropout on attention probabilities for the fused attention kernel: `(p, mask seed)` when
/// training with `p > 0`, drawing the seed from the generator; None otherwise.
pub fn attention_dropout(p: f64, dropout: &mut Option<&mut Dropout>) -> Option<(f64, u64)> {
    match dropout {
        Some(d) if p > 0.0 => Some((p, d.next_seed())),
        _ => None,
    }
}

/// RoBERTa-style position ids [B·L] (u32), computed from the ids as transformers does: real
/// tokens get `pad + 1, pad + 2, …`, padding tokens get `pad`.
pub fn positions_from_ids(ids: &Tensor, pad: u32) -> Result<Tensor> {
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
