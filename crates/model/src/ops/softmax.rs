//! Softmax over the last dimension, and the attention probabilities softmax(scale · x + mask
//! bias), as fused CPU kernels with their backward.

use super::kernel::{
    contiguous, cpu_op1, dispatch, map_rows, softmax_row, vectorized, Elem, RowOp, Vectorized,
};
use super::pool::par_chunks_mut;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, D};

// ---------------------------------------------------------------------------------------------
// Softmax over the last dimension.

pub(super) struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    cpu_op1!("pt-softmax-last-dim", SoftmaxLastDim, softmax_fwd);

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // dx = y * (g - sum(g * y))
        let dot = (grad * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some((res * grad.broadcast_sub(&dot)?)?))
    }
}

/// The forward kernel of `SoftmaxLastDim`.
fn softmax_fwd<T: Elem>(
    _op: &SoftmaxLastDim,
    src: &[T],
    l: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let n = l.dims().last().copied().unwrap_or(1);
    let dst = map_rows(src, n, &SoftmaxRow);
    Ok((T::wrap(dst), l.shape().clone()))
}

struct SoftmaxRow;

impl<T: Elem> RowOp<T> for SoftmaxRow {
    #[inline(always)]
    fn row(&self, x: &[T], y: &mut [T]) {
        let max = x.iter().copied().fold(T::neg_infinity(), T::max);
        let mut sum = T::zero();
        for (yi, &xi) in y.iter_mut().zip(x) {
            let e = (xi - max).exp_fast();
            *yi = e;
            sum = sum + e;
        }
        let inv = T::one() / sum;
        for yi in y.iter_mut() {
            *yi = *yi * inv;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Attention probabilities: softmax(scale · scores + mask bias) in one pass.

pub(super) struct MaskedSoftmax {
    pub(super) scale: f64,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "pt-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: Elem>(
            scale: f64,
            (s1, l1): (&CpuStorage, &Layout),
            (s2, l2): (&CpuStorage, &Layout),
        ) -> Result<(CpuStorage, Shape)> {
            let x = contiguous::<T>(s1, l1, "masked_softmax")?;
            let mask = contiguous::<f32>(s2, l2, "masked_softmax")?;
            let dims = l1.dims();
            let lk = dims[dims.len() - 1];
            // Rows of one batch element share its mask row.
            let rows_per_batch = dims[1..dims.len() - 1].iter().product::<usize>() * lk;
            let scale = T::from(scale).unwrap_or(T::one());
            let mut dst = vec![T::zero(); x.len()];
            par_chunks_mut(&mut dst, rows_per_batch, |b, ys| {
                let xs = &x[b * rows_per_batch..][..ys.len()];
                vectorized(&mut MaskedRows {
                    x: xs,
                    y: ys,
                    mask: &mask[b * lk..(b + 1) * lk],
                    scale,
                })
            });
            Ok((T::wrap(dst), l1.shape().clone()))
        }
        dispatch!(s1, run(self.scale, (s1, l1), (s2, l2)))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dot = (grad * res)?.sum_keepdim(D::Minus1)?;
        let dx = ((res * grad.broadcast_sub(&dot)?)? * self.scale)?;
        Ok((Some(dx), None))
    }
}

/// The softmax kernel on CPU tensors.
pub(super) fn apply(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(SoftmaxLastDim)
}

/// The masked-softmax kernel on CPU tensors.
pub(super) fn apply_masked(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.contiguous()?;
    scores
        .contiguous()?
        .apply_op2(&mask, MaskedSoftmax { scale })
}

/// The masked softmax of one batch element's rows, which share its key mask.
struct MaskedRows<'a, T> {
    x: &'a [T],
    y: &'a mut [T],
    mask: &'a [f32],
    scale: T,
}

impl<T: Elem> Vectorized for MaskedRows<'_, T> {
    #[inline(always)]
    fn run(&mut self) {
        let lk = self.mask.len();
        for (xr, yr) in self.x.chunks(lk).zip(self.y.chunks_mut(lk)) {
            softmax_row(xr, yr, self.mask, self.scale, None);
        }
    }
}
