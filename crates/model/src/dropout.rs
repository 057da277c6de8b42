//! Dropout driven by our own seeded generator, so that a mask can be drawn again exactly
//! (GradCache re-embeds a mini-batch and must see the same mask) and a resumed run continues the
//! same random stream.

use crate::rng::Rng;
use candle_core::{Result, Tensor};

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

    /// Zeroes each element with probability `p` and scales the rest by 1/(1-p).
    pub fn apply(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 / (1.0 - p);
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if self.rng.uniform() < p {
                    0.0
                } else {
                    keep as f32
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }
}
