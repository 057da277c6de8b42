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
