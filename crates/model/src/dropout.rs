//! Dropout driven by our own seeded generator, so that a mask can be drawn again exactly
//! (GradCache re-embeds a mini-batch and must see the same mask) and a resumed run continues the
//! same random stream.
//!
//! Each application takes one 64-bit seed from the generator; element i of its mask is
//! `hash_uniform(seed, i) >= p`, so masks are built in parallel and can be regenerated from the
//! seed alone (the fused attention kernel does so in its backward pass).

use crate::rng::{hash_uniform, Rng};
use candle_core::{Result, Tensor};
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub struct Dropout {
    pub rng: Rng,
}

impl Dropout {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
        }
    }

    /// The seed of the next mask.
    pub fn next_seed(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Zeroes each element with probability `p` and scales the rest by 1/(1-p).
    pub fn apply(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let mask = mask_tensor(self.next_seed(), p, x.shape(), x.device())?;
        x * mask.to_dtype(x.dtype())?
    }
}

/// The scaled keep-mask (0 or 1/(1-p)) of `seed` for a tensor of `shape`, in row-major order.
pub fn mask_tensor(
    seed: u64,
    p: f64,
    shape: &candle_core::Shape,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let n = shape.elem_count();
    let keep = (1.0 / (1.0 - p)) as f32;
    let pf = p as f32;
    let mut mask = vec![0f32; n];
    mask.par_chunks_mut(1 << 14)
        .enumerate()
        .for_each(|(c, chunk)| {
            let base = (c << 14) as u64;
            for (i, m) in chunk.iter_mut().enumerate() {
                *m = if hash_uniform(seed, base + i as u64) >= pf {
                    keep
                } else {
                    0.0
                };
            }
        });
    Tensor::from_vec(mask, shape, device)
}
