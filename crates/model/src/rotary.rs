//! Rotary position embeddings (Su et al., 2021, "RoFormer: Enhanced Transformer with Rotary
//! Position Embedding"), in the rotate-half form of GPT-NeoX and transformers: the two halves of
//! each head are rotated by angles `position · θ^(−2j/d)`. Composed of tensor ops, so it has a
//! backward on every device. The tables are computed in f32 as transformers computes them (the
//! angles of late positions would otherwise drift by more than the tests allow).

use crate::error::Result;
use candle_core::{Device, Tensor, D};

/// The cos and sin tables [L, head_dim] of positions 0..L.
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    pub fn new(head_dim: usize, theta: f64, len: usize, device: &Device) -> Result<Self> {
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|j| 1.0f32 / (theta as f32).powf((2 * j) as f32 / head_dim as f32))
            .collect();
        let (mut cos, mut sin) = (vec![0f32; len * head_dim], vec![0f32; len * head_dim]);
        for pos in 0..len {
            for j in 0..head_dim {
                let a = pos as f32 * inv[j % half];
                cos[pos * head_dim + j] = a.cos();
                sin[pos * head_dim + j] = a.sin();
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (len, head_dim), device)?,
            sin: Tensor::from_vec(sin, (len, head_dim), device)?,
        })
    }

    /// `x` [B, L, heads·head_dim] with every head rotated by its position: x·cos + rot(x)·sin,
    /// rot(x) = (−x₂, x₁) for the halves x₁, x₂ of a head.
    pub fn apply(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, l, h) = x.dims3()?;
        let d = h / heads;
        let x4 = x.reshape((b, l, heads, d))?;
        let x1 = x4.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x4.narrow(D::Minus1, d / 2, d / 2)?;
        let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        let dt = x.dtype();
        let cos = self
            .cos
            .narrow(0, 0, l)?
            .reshape((1, l, 1, d))?
            .to_dtype(dt)?;
        let sin = self
            .sin
            .narrow(0, 0, l)?
            .reshape((1, l, 1, d))?
            .to_dtype(dt)?;
        let y = (x4.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?)?;
        Ok(y.reshape((b, l, h))?)
    }
}
