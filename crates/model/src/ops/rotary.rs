//! Rotary position embeddings (Su et al., 2021) applied to q or k [B, L, heads·d] in one pass,
//! rotate-half form (each head's halves x₁, x₂ become x₁·cos₁ − x₂·sin₁, x₂·cos₂ + x₁·sin₂), and
//! its backward, the transposed map (for tables whose halves are equal, as RoPE's are, the
//! rotation by the opposite angles).

use super::kernel::{build_par, cpu_op1, Elem, PAR_MIN_ELEMS};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use std::sync::Arc;

/// The cos and sin tables [positions, d] (f32, as the model computes them) and the direction.
#[derive(Clone)]
pub struct RotaryTables {
    pub head_dim: usize,
    pub positions: usize,
    pub cos: Arc<Vec<f32>>,
    pub sin: Arc<Vec<f32>>,
}

pub(super) struct RotaryOp {
    t: RotaryTables,
    /// The backward: the transposed map.
    transposed: bool,
}

fn rotary_fwd<T: Elem>(op: &RotaryOp, x: &[T], l: &Layout) -> Result<(CpuStorage, Shape)> {
    let dims = l.dims();
    if dims.len() != 3 {
        candle_core::bail!("rotary: expected [B, L, heads·d], got {dims:?}");
    }
    let (len, h) = (dims[1], dims[2]);
    let d = op.t.head_dim;
    if d == 0 || !d.is_multiple_of(2) || !h.is_multiple_of(d) || len > op.t.positions {
        candle_core::bail!(
            "rotary: width {h}, head size {d}, length {len} (tables for {})",
            op.t.positions
        );
    }
    let half = d / 2;
    let cos: Vec<T> = op.t.cos[..len * d]
        .iter()
        .map(|&c| T::from(c).unwrap())
        .collect();
    let sin: Vec<T> = op.t.sin[..len * d]
        .iter()
        .map(|&s| T::from(s).unwrap())
        .collect();
    let transposed = op.transposed;
    let rows_per_task = (PAR_MIN_ELEMS / h).max(1);
    let y = build_par(x.len(), rows_per_task * h, |at, out| {
        let first = at / h;
        for (r, (yr, xr)) in out.chunks_mut(h).zip(x[at..].chunks(h)).enumerate() {
            let pos = (first + r) % len;
            let (c, s) = (&cos[pos * d..(pos + 1) * d], &sin[pos * d..(pos + 1) * d]);
            for (yh, xh) in yr.chunks_mut(d).zip(xr.chunks(d)) {
                for j in 0..half {
                    let k = j + half;
                    if transposed {
                        yh[j] = xh[j] * c[j] + xh[k] * s[k];
                        yh[k] = xh[k] * c[k] - xh[j] * s[j];
                    } else {
                        yh[j] = xh[j] * c[j] - xh[k] * s[j];
                        yh[k] = xh[k] * c[k] + xh[j] * s[k];
                    }
                }
            }
        }
    });
    Ok((T::wrap(y), l.shape().clone()))
}

impl CustomOp1 for RotaryOp {
    cpu_op1!("pt-rotary", RotaryOp, rotary_fwd);

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = RotaryOp {
            t: self.t.clone(),
            transposed: !self.transposed,
        };
        Ok(Some(grad.contiguous()?.apply_op1(back)?))
    }
}

/// The kernel on CPU tensors.
pub(super) fn apply(x: &Tensor, t: &RotaryTables) -> Result<Tensor> {
    x.contiguous()?.apply_op1(RotaryOp {
        t: t.clone(),
        transposed: false,
    })
}
