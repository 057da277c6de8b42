//! The dropout generator: our own seeded stream, so that a mask can be drawn again exactly
//! (GradCache re-embeds a mini-batch and must see the same mask) and a resumed run continues the
//! same random stream. Each application takes one 64-bit seed from it; the masks themselves are
//! `ops::dropout`'s.

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

    /// The seed of the next mask.
    pub fn next_seed(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Zeroes each element with probability `p` and scales the rest by 1/(1-p).
    pub fn apply(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        crate::ops::dropout(x, p, self.next_seed())
    }
}
