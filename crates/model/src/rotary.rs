//! Rotary position embeddings (Su et al., 2021, "RoFormer: Enhanced Transformer with Rotary
//! Position Embedding"), in the rotate-half form of GPT-NeoX and transformers: the two halves of
//! each head are rotated by angles `position · θ^(−2j/d)`. The tables are computed in f32 as
//! transformers computes them (the angles of late positions would otherwise drift by more than
//! the tests allow); `ops::rotary` applies them (a fused CPU kernel, or composed ops).

use crate::error::Result;
use crate::ops::RotaryTables;
use candle_core::Tensor;
use std::sync::Arc;

/// The cos and sin tables of one head size and base, one row per token.
pub struct Rotary {
    tables: RotaryTables,
}

impl Rotary {
    /// The tables of positions 0..len, for every row of a padded batch.
    pub fn new(head_dim: usize, theta: f64, len: usize) -> Self {
        Self::at(head_dim, theta, &(0..len).collect::<Vec<_>>())
    }

    /// One row per packed token, at its position within its sequence (`Packing::positions`).
    pub fn at(head_dim: usize, theta: f64, positions: &[usize]) -> Self {
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|j| 1.0f32 / (theta as f32).powf((2 * j) as f32 / head_dim as f32))
            .collect();
        let len = positions.len();
        let (mut cos, mut sin) = (vec![0f32; len * head_dim], vec![0f32; len * head_dim]);
        for (row, &pos) in positions.iter().enumerate() {
            for j in 0..head_dim {
                let a = pos as f32 * inv[j % half];
                cos[row * head_dim + j] = a.cos();
                sin[row * head_dim + j] = a.sin();
            }
        }
        Self {
            tables: RotaryTables {
                head_dim,
                positions: len,
                cos: Arc::new(cos),
                sin: Arc::new(sin),
            },
        }
    }

    /// `x` [B, L, heads·head_dim] (or [1, T, …] packed, with the tables of `at`) with every
    /// head rotated by its position.
    pub fn apply(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        Ok(crate::ops::rotary(x, &self.tables, heads)?)
    }
}
