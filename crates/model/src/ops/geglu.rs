//! GeGLU (Shazeer, 2020, "GLU Variants Improve Transformer"), as ModernBERT's feed-forward
//! computes it: the input's last dimension holds [a, b] and the result is GELU(a) · b, exact (erf)
//! GELU; and its backward, both halves of the gradient in one pass.

use super::kernel::{build_par, cpu_op1, cpu_op2, Elem, PAR_MIN_ELEMS};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

pub(super) struct GeGlu;

/// The output shape: the last dimension halved.
fn halved(l: &Layout, what: &str) -> Result<(usize, Shape)> {
    let mut dims = l.dims().to_vec();
    let n = dims.last().copied().unwrap_or(0);
    if n == 0 || !n.is_multiple_of(2) {
        candle_core::bail!("{what}: the last dimension ({n}) must be even");
    }
    *dims.last_mut().unwrap() = n / 2;
    Ok((n / 2, Shape::from(dims)))
}

fn geglu_fwd<T: Elem>(_op: &GeGlu, x: &[T], l: &Layout) -> Result<(CpuStorage, Shape)> {
    let (i, shape) = halved(l, "geglu")?;
    let rows_per_task = (PAR_MIN_ELEMS / (2 * i)).max(1);
    let y = build_par(x.len() / 2, rows_per_task * i, |at, out| {
        let xs = &x[2 * at..];
        for (yr, xr) in out.chunks_mut(i).zip(xs.chunks(2 * i)) {
            let (a, b) = xr.split_at(i);
            for ((y, &a), &b) in yr.iter_mut().zip(a).zip(b) {
                *y = a.gelu() * b;
            }
        }
    });
    Ok((T::wrap(y), shape))
}

impl CustomOp1 for GeGlu {
    cpu_op1!("pt-geglu", GeGlu, geglu_fwd);

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &GeGluBwd)?;
        Ok(Some(dx))
    }
}

/// (x [.., 2I], g [.., I]) → dx [.., 2I]: g·b·GELU'(a) for a, g·GELU(a) for b.
struct GeGluBwd;

impl CustomOp2 for GeGluBwd {
    cpu_op2!("pt-geglu-bwd", GeGluBwd, geglu_bwd);
}

fn geglu_bwd<T: Elem>(
    _op: &GeGluBwd,
    (x, l1): (&[T], &Layout),
    (g, l2): (&[T], &Layout),
) -> Result<(CpuStorage, Shape)> {
    let (i, shape) = halved(l1, "geglu_bwd")?;
    if &shape != l2.shape() {
        candle_core::bail!("geglu_bwd: input {:?}, gradient {:?}", l1.dims(), l2.dims());
    }
    let rows_per_task = (PAR_MIN_ELEMS / (2 * i)).max(1);
    let dx = build_par(x.len(), rows_per_task * 2 * i, |at, out| {
        let (xs, gs) = (&x[at..], &g[at / 2..]);
        for ((dr, xr), gr) in out
            .chunks_mut(2 * i)
            .zip(xs.chunks(2 * i))
            .zip(gs.chunks(i))
        {
            let (a, b) = xr.split_at(i);
            let (da, db) = dr.split_at_mut(i);
            for j in 0..i {
                da[j] = gr[j] * b[j] * a[j].gelu_grad();
                db[j] = gr[j] * a[j].gelu();
            }
        }
    });
    Ok((T::wrap(dx), l1.shape().clone()))
}

/// The kernel on CPU tensors.
pub(super) fn apply(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeGlu)
}
