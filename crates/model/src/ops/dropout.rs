//! Dropout (Srivastava et al., 2014) with counter-based masks: element i of the mask of `seed`
//! is `hash_uniform(seed, i) >= p`, so a mask is built in parallel and can be drawn again from
//! its seed alone (the fused attention kernel's backward, GradCache's second pass).
//!
//! On the CPU the mask is made on the host by that hash; on a GPU it is drawn on the device by
//! cuRAND seeded with `seed`, so it is as replayable there (but differs from the CPU's): a mask
//! the size of a batch's attention probabilities must not cross the PCIe bus at every layer.

use crate::rng::hash_uniform;
use candle_core::{DType, Device, Result, Shape, Tensor};
use rayon::prelude::*;

/// The scaled keep-mask (0 or 1/(1-p)) of `seed` for a tensor of `shape`, in row-major order,
/// as f32.
pub fn mask_tensor(seed: u64, p: f64, shape: &Shape, device: &Device) -> Result<Tensor> {
    let keep = (1.0 / (1.0 - p)) as f32;
    if device.is_cuda() {
        device.set_seed(seed)?;
        let u = Tensor::rand(0f32, 1f32, shape, device)?;
        return u
            .ge(p as f32)?
            .to_dtype(DType::F32)?
            .affine(keep as f64, 0.0);
    }
    let n = shape.elem_count();
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

/// Zeroes each element of `x` with probability `p` (mask of `seed`) and scales the rest by
/// 1/(1-p); differentiable in `x`.
pub fn apply(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let mask = mask_tensor(seed, p, x.shape(), x.device())?;
    x * mask.to_dtype(x.dtype())?
}
