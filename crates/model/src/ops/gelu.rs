//! Exact (erf) GELU, as BERT's `hidden_act = "gelu"`, and its backward, as fused CPU kernels.

use super::kernel::{
    build_par, cpu_op1, cpu_op2, map_rows, vectorized, Elem, RowOp, Vectorized, PAR_MIN_ELEMS,
};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

// ---------------------------------------------------------------------------------------------
// Exact (erf) GELU, as BERT's `hidden_act = "gelu"`.

pub(super) struct GeluErf;

/// GELU of a row (a type rather than a closure so the call inlines and the loop vectorises).
struct GeluRow;

impl<T: Elem> RowOp<T> for GeluRow {
    #[inline(always)]
    fn row(&self, x: &[T], y: &mut [T]) {
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = xi.gelu();
        }
    }
}

fn gelu_fwd<T: Elem>(_op: &GeluErf, x: &[T], l: &Layout) -> Result<(CpuStorage, Shape)> {
    let n = l.dims().last().copied().unwrap_or(1);
    let dst = map_rows(x, n, &GeluRow);
    Ok((T::wrap(dst), l.shape().clone()))
}

impl CustomOp1 for GeluErf {
    cpu_op1!("pt-gelu-erf", GeluErf, gelu_fwd);

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &GeluErfBwd)?;
        Ok(Some(dx))
    }
}

// ---------------------------------------------------------------------------------------------
// GELU's backward, `grad · GELU'(x)`, in one pass (not the derivative, then a multiply).

struct GeluErfBwd;

impl CustomOp2 for GeluErfBwd {
    cpu_op2!("pt-gelu-erf-bwd", GeluErfBwd, gelu_bwd);
}

/// The forward kernel of `GeluErfBwd`: x and the incoming gradient, of one shape.
fn gelu_bwd<T: Elem>(
    _op: &GeluErfBwd,
    (x, l1): (&[T], &Layout),
    (g, l2): (&[T], &Layout),
) -> Result<(CpuStorage, Shape)> {
    if l1.shape() != l2.shape() {
        return Err(candle_core::Error::ShapeMismatchBinaryOp {
            lhs: l1.shape().clone(),
            rhs: l2.shape().clone(),
            op: "gelu_bwd",
        }
        .bt());
    }
    let d = build_par(x.len(), PAR_MIN_ELEMS, |at, d| {
        let (x, g) = (&x[at..at + d.len()], &g[at..at + d.len()]);
        vectorized(&mut TimesGeluGrad { d, x, g })
    });
    Ok((T::wrap(d), l1.shape().clone()))
}

/// `d = g · GELU'(x)` over a chunk.
struct TimesGeluGrad<'a, T> {
    d: &'a mut [T],
    x: &'a [T],
    g: &'a [T],
}

impl<T: Elem> Vectorized for TimesGeluGrad<'_, T> {
    #[inline(always)]
    fn run(&mut self) {
        for ((d, &x), &g) in self.d.iter_mut().zip(self.x).zip(self.g) {
            *d = g * x.gelu_grad();
        }
    }
}

/// The kernel on CPU tensors.
pub(super) fn apply(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluErf)
}
