//! LayerNorm over the last dimension (Ba et al., 2016): one pass per row forward, one backward
//! that returns dx, dw and db together.

use super::kernel::SharedMut;
use super::kernel::{
    cpu_op3, lanes_sum, map_rows, vectorized, Elem, RowOp, Vectorized, PAR_MIN_ELEMS,
};
use super::pool::par_map;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};

// ---------------------------------------------------------------------------------------------
// LayerNorm over the last dimension.

pub(super) struct LayerNorm {
    pub(super) eps: f64,
}

impl CustomOp3 for LayerNorm {
    cpu_op3!("pt-layer-norm", LayerNorm, layer_norm_fwd);

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = x.dim(D::Minus1)?;
        let rows = x.elem_count() / n;
        // One pass per row; the kernel returns [dx rows…, dw, db] stacked.
        let packed = x.contiguous()?.apply_op3_no_bwd(
            &w.contiguous()?,
            &g.contiguous()?,
            &LayerNormBwd { eps: self.eps },
        )?;
        let dx = packed.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = packed.narrow(0, rows, 1)?.reshape(n)?;
        let db = packed.narrow(0, rows + 1, 1)?.reshape(n)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The forward kernel of `LayerNorm`.
fn layer_norm_fwd<T: Elem>(
    op: &LayerNorm,
    (x, l1): (&[T], &Layout),
    (w, _): (&[T], &Layout),
    (b, _): (&[T], &Layout),
) -> Result<(CpuStorage, Shape)> {
    let n = l1.dims().last().copied().unwrap_or(1);
    if w.len() != n || b.len() != n {
        return Err(candle_core::Error::Msg(format!(
            "layer_norm: weight/bias of {}/{} elements for rows of {n}",
            w.len(),
            b.len()
        )));
    }
    let eps = T::from(op.eps).unwrap_or(T::epsilon());
    let nf = T::from(n).unwrap_or(T::one());
    let dst = map_rows(x, n, &LayerNormRow { w, b, eps, nf });
    Ok((T::wrap(dst), l1.shape().clone()))
}

struct LayerNormRow<'a, T> {
    w: &'a [T],
    b: &'a [T],
    eps: T,
    nf: T,
}

impl<T: Elem> RowOp<T> for LayerNormRow<'_, T> {
    #[inline(always)]
    fn row(&self, x: &[T], y: &mut [T]) {
        let (w, b, nf) = (self.w, self.b, self.nf);
        // Two passes (mean, then centred variance), as PyTorch does, for the same rounding.
        let mean = lanes_sum(x, |v| v) / nf;
        let var = lanes_sum(x, |v| (v - mean) * (v - mean)) / nf;
        let rstd = T::one() / (var + self.eps).sqrt();
        for i in 0..y.len() {
            y[i] = (x[i] - mean) * rstd * w[i] + b[i];
        }
    }
}

/// LayerNorm's backward: with x̂ = (x − μ)·r, r = 1/√(σ² + ε) and ĝ = g·w,
/// dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), dw = Σ_rows g·x̂, db = Σ_rows g.
pub(super) struct LayerNormBwd {
    pub(super) eps: f64,
}

impl CustomOp3 for LayerNormBwd {
    cpu_op3!("pt-layer-norm-bwd", LayerNormBwd, layer_norm_bwd);
}

/// The forward kernel of `LayerNormBwd`.
fn layer_norm_bwd<T: Elem>(
    op: &LayerNormBwd,
    (x, l1): (&[T], &Layout),
    (w, _): (&[T], &Layout),
    (g, _): (&[T], &Layout),
) -> Result<(CpuStorage, Shape)> {
    let n = l1.dims().last().copied().unwrap_or(1);
    let rows = x.len() / n.max(1);
    let eps = T::from(op.eps).unwrap_or(T::epsilon());
    let nf = T::from(n).unwrap_or(T::one());
    let mut out = vec![T::zero(); (rows + 2) * n];
    let (dx, acc) = out.split_at_mut(rows * n);
    let chunk_rows = (PAR_MIN_ELEMS / n.max(1)).max(1);
    // Each task writes its rows of dx and returns its partial dw, db.
    let chunk = (chunk_rows * n).max(1);
    let dx_ptr = SharedMut(dx.as_mut_ptr());
    let dx_len = dx.len();
    let partials: Vec<Vec<T>> = par_map(dx_len.div_ceil(chunk), |c| {
        let first = c * chunk;
        // SAFETY: chunk c is rows first .. first + chunk of dx, written by this task only.
        let dxc = unsafe {
            std::slice::from_raw_parts_mut(dx_ptr.get().add(first), chunk.min(dx_len - first))
        };
        let mut part = vec![T::zero(); 2 * n];
        vectorized(&mut LayerNormBwdRows {
            x: &x[first..first + dxc.len()],
            g: &g[first..first + dxc.len()],
            w,
            dx: dxc,
            part: &mut part,
            eps,
            nf,
        });
        part
    });
    for part in partials {
        for (a, p) in acc.iter_mut().zip(part) {
            *a = *a + p;
        }
    }
    Ok((T::wrap(out), Shape::from((rows + 2, n))))
}

/// LayerNorm's backward over a run of rows: their dx, and their sums for dw and db in `part`
/// (dw then db).
struct LayerNormBwdRows<'a, T> {
    x: &'a [T],
    g: &'a [T],
    w: &'a [T],
    dx: &'a mut [T],
    part: &'a mut [T],
    eps: T,
    nf: T,
}

impl<T: Elem> Vectorized for LayerNormBwdRows<'_, T> {
    #[inline(always)]
    fn run(&mut self) {
        let (w, nf, n) = (self.w, self.nf, self.w.len());
        let (dw, db) = self.part.split_at_mut(n);
        let mut xhat = vec![T::zero(); n];
        for ((dxr, xr), gr) in self
            .dx
            .chunks_mut(n)
            .zip(self.x.chunks(n))
            .zip(self.g.chunks(n))
        {
            let mean = lanes_sum(xr, |v| v) / nf;
            let var = lanes_sum(xr, |v| (v - mean) * (v - mean)) / nf;
            let rstd = T::one() / (var + self.eps).sqrt();
            let (mut m1, mut m2) = (T::zero(), T::zero());
            for i in 0..n {
                xhat[i] = (xr[i] - mean) * rstd;
                let gh = gr[i] * w[i];
                m1 = m1 + gh;
                m2 = m2 + gh * xhat[i];
                dw[i] = dw[i] + gr[i] * xhat[i];
                db[i] = db[i] + gr[i];
            }
            let (m1, m2) = (m1 / nf, m2 / nf);
            for i in 0..n {
                dxr[i] = rstd * (gr[i] * w[i] - m1 - xhat[i] * m2);
            }
        }
    }
}

/// The kernel on CPU tensors.
pub(super) fn apply(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNorm { eps })
}
