//! The linear layer x·Wᵀ + b in one multiply (the bias is the accumulator's starting value),
//! and the column sums that give its bias gradient.

use super::gemm::{gemm, MatMul, Operand};
use super::kernel::{build_par, cpu_op1, cpu_op3, vectorized, Elem, Vectorized, PAR_MIN_ELEMS};
use super::pool::par_map;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};

// ---------------------------------------------------------------------------------------------
// Linear layer: x·Wᵀ + b in one multiply (the bias is the accumulator's starting value).

pub(super) struct Linear;

impl CustomOp3 for Linear {
    cpu_op3!("pt-linear", Linear, linear_fwd);

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, k) = w.dims2()?;
        let m = x.elem_count() / k;
        let g2 = g.contiguous()?.reshape((m, n))?;
        let x2 = x.contiguous()?.reshape((m, k))?;
        let w = w.contiguous()?;
        let mm = |trans_a, trans_b| MatMul { trans_a, trans_b };
        let dx = g2
            .apply_op2_no_bwd(&w, &mm(false, false))?
            .reshape(x.shape())?;
        let dw = g2.apply_op2_no_bwd(&x2, &mm(true, false))?;
        let db = g2.apply_op1_no_bwd(&SumRows)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The forward kernel of `Linear`.
fn linear_fwd<T: Elem>(
    _op: &Linear,
    (x, l1): (&[T], &Layout),
    (w, l2): (&[T], &Layout),
    (b, l3): (&[T], &Layout),
) -> Result<(CpuStorage, Shape)> {
    let (n, k) = l2.shape().dims2()?;
    let m = x.len() / k.max(1);
    if x.len() != m * k || b.len() != n {
        return Err(candle_core::Error::Msg(format!(
            "linear: input {:?}, weight {:?}, bias {:?}",
            l1.dims(),
            l2.dims(),
            l3.dims()
        )));
    }
    // The bias rows, written by the threads (a serial fill was 1% of a training step).
    let rows_per_task = (PAR_MIN_ELEMS / n.max(1)).max(1) * n.max(1);
    let mut dst = build_par(m * n, rows_per_task, |_, d| {
        for row in d.chunks_mut(n.max(1)) {
            row.copy_from_slice(b);
        }
    });
    // SAFETY: x is m×k and W n×k (read as its transpose), both row-major; dst holds m×n.
    unsafe {
        gemm(
            (m, n, k),
            Operand::rows(x.as_ptr(), k),
            Operand::transposed(w.as_ptr(), k),
            (dst.as_mut_ptr(), n),
            true,
            true,
        );
    }
    let mut out = l1.dims().to_vec();
    let last = out.len() - 1;
    out[last] = n;
    Ok((T::wrap(dst), Shape::from(out)))
}

/// Column sums of a 2-D tensor (rows split across threads). candle's `sum(0)` walks a strided
/// layout one element at a time; this is the bias gradient of every linear layer.
pub(super) struct SumRows;

impl CustomOp1 for SumRows {
    cpu_op1!("pt-sum-rows", SumRows, sum_rows_fwd);
}

/// The forward kernel of `SumRows`.
fn sum_rows_fwd<T: Elem>(_op: &SumRows, x: &[T], l: &Layout) -> Result<(CpuStorage, Shape)> {
    let (_, n) = l.shape().dims2()?;
    let chunk = (PAR_MIN_ELEMS / n.max(1)).max(1) * n;
    let chunk = chunk.max(1);
    let partials: Vec<Vec<T>> = par_map(x.len().div_ceil(chunk), |i| {
        let c = &x[i * chunk..x.len().min((i + 1) * chunk)];
        let mut acc = vec![T::zero(); n];
        vectorized(&mut ColumnSums {
            x: c,
            acc: &mut acc,
        });
        acc
    });
    let mut out = vec![T::zero(); n];
    for p in partials {
        for (a, v) in out.iter_mut().zip(p) {
            *a = *a + v;
        }
    }
    Ok((T::wrap(out), Shape::from(n)))
}

/// Adds the rows of `x` (rows of `acc.len()`) to `acc`.
struct ColumnSums<'a, T> {
    x: &'a [T],
    acc: &'a mut [T],
}

impl<T: Elem> Vectorized for ColumnSums<'_, T> {
    #[inline(always)]
    fn run(&mut self) {
        for row in self.x.chunks(self.acc.len()) {
            for (a, &v) in self.acc.iter_mut().zip(row) {
                *a = *a + v;
            }
        }
    }
}

/// The kernel on CPU tensors.
pub(super) fn apply(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear)
}
