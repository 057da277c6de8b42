//! Exact (erf) GELU, as BERT's `hidden_act = "gelu"`, and its derivative, as fused CPU kernels.

use super::kernel::{cpu_op1, map_rows, Elem, RowOp};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

// ---------------------------------------------------------------------------------------------
// Exact (erf) GELU, as BERT's `hidden_act = "gelu"`.

pub(super) struct GeluErf;
pub(super) struct GeluErfGrad;

/// GELU (`GRAD = false`) or its derivative (`GRAD = true`) of a row; a const parameter rather
/// than a function pointer so the call inlines and the loop vectorises.
struct GeluRow<const GRAD: bool>;

impl<T: Elem, const GRAD: bool> RowOp<T> for GeluRow<GRAD> {
    #[inline(always)]
    fn row(&self, x: &[T], y: &mut [T]) {
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = if GRAD { xi.gelu_grad() } else { xi.gelu() };
        }
    }
}

fn map_gelu<T: Elem, const GRAD: bool>(src: &[T], l: &Layout) -> Result<(CpuStorage, Shape)> {
    let n = l.dims().last().copied().unwrap_or(1);
    let dst = map_rows(src, n, &GeluRow::<GRAD>);
    Ok((T::wrap(dst), l.shape().clone()))
}

fn gelu_fwd<T: Elem>(_op: &GeluErf, x: &[T], l: &Layout) -> Result<(CpuStorage, Shape)> {
    map_gelu::<T, false>(x, l)
}

fn gelu_grad<T: Elem>(_op: &GeluErfGrad, x: &[T], l: &Layout) -> Result<(CpuStorage, Shape)> {
    map_gelu::<T, true>(x, l)
}

impl CustomOp1 for GeluErf {
    cpu_op1!("pt-gelu-erf", GeluErf, gelu_fwd);

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let d = arg.contiguous()?.apply_op1_no_bwd(&GeluErfGrad)?;
        Ok(Some((grad * d)?))
    }
}

impl CustomOp1 for GeluErfGrad {
    cpu_op1!("pt-gelu-erf-grad", GeluErfGrad, gelu_grad);
}

/// The kernel on CPU tensors.
pub(super) fn apply(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluErf)
}
