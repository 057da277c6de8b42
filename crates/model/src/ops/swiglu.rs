//! SwiGLU (Shazeer, 2020, "GLU Variants Improve Transformer"), as NomicBERT's feed-forward
//! computes it: SiLU(gate) · up for the outputs of its two projections (`fc12` and `fc11`), with
//! SiLU(x) = x·σ(x); and its backward, both gradients in one pass.

use super::kernel::{build_par, cpu_op2, cpu_op3, Elem, PAR_MIN_ELEMS};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

pub(super) struct SwiGlu;

/// σ(x) = 1 / (1 + e^(−x)).
#[inline(always)]
fn sigmoid<T: Elem>(x: T) -> T {
    T::one() / (T::one() + (-x).exp_fast())
}

fn same_shape(what: &str, a: &Layout, b: &Layout) -> Result<()> {
    if a.dims() != b.dims() {
        candle_core::bail!("{what}: gate {:?}, up {:?}", a.dims(), b.dims());
    }
    Ok(())
}

fn swiglu_fwd<T: Elem>(
    _op: &SwiGlu,
    (g, l1): (&[T], &Layout),
    (u, l2): (&[T], &Layout),
) -> Result<(CpuStorage, Shape)> {
    same_shape("swiglu", l1, l2)?;
    let y = build_par(g.len(), PAR_MIN_ELEMS, |at, out| {
        for ((y, &g), &u) in out.iter_mut().zip(&g[at..]).zip(&u[at..]) {
            *y = g * sigmoid(g) * u;
        }
    });
    Ok((T::wrap(y), l1.shape().clone()))
}

impl CustomOp2 for SwiGlu {
    cpu_op2!("pt-swiglu", SwiGlu, swiglu_fwd);

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = gate.contiguous()?.apply_op3_no_bwd(
            &up.contiguous()?,
            &grad.contiguous()?,
            &SwiGluBwd,
        )?;
        Ok((Some(d.get(0)?), Some(d.get(1)?)))
    }
}

/// (gate, up, g) → [2, ..] = (g·up·SiLU'(gate), g·SiLU(gate)), with
/// SiLU'(x) = σ(x)·(1 + x·(1 − σ(x))).
struct SwiGluBwd;

impl CustomOp3 for SwiGluBwd {
    cpu_op3!("pt-swiglu-bwd", SwiGluBwd, swiglu_bwd);
}

fn swiglu_bwd<T: Elem>(
    _op: &SwiGluBwd,
    (x, l1): (&[T], &Layout),
    (u, l2): (&[T], &Layout),
    (g, l3): (&[T], &Layout),
) -> Result<(CpuStorage, Shape)> {
    same_shape("swiglu_bwd", l1, l2)?;
    same_shape("swiglu_bwd", l1, l3)?;
    let n = x.len();
    let d = build_par(2 * n, PAR_MIN_ELEMS, |at, out| {
        for (k, o) in out.iter_mut().enumerate() {
            let i = (at + k) % n;
            let s = sigmoid(x[i]);
            *o = if at + k < n {
                g[i] * u[i] * s * (T::one() + x[i] * (T::one() - s))
            } else {
                g[i] * x[i] * s
            };
        }
    });
    let mut dims = vec![2];
    dims.extend_from_slice(l1.dims());
    Ok((T::wrap(d), Shape::from(dims)))
}

/// The kernel on CPU tensors.
pub(super) fn apply(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}
