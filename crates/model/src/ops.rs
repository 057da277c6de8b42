//! Fused element-wise ops with their own backward pass.
//!
//! candle's stock `layer_norm` and `softmax_last_dim` have no backward, and composing them from
//! primitive ops allocates a tensor per step. These ops run one pass over each row on the CPU
//! (rows split across threads), carry an exact backward, and fall back to composed candle ops on
//! other devices so the same model code runs everywhere.

use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape,
    Tensor, D,
};
use num_traits::Float;
use rayon::prelude::*;

/// Rows smaller than this many total elements are processed on one thread: spawning costs more.
const PAR_MIN_ELEMS: usize = 1 << 14;

/// The float types the CPU kernels run in: f32 for real work, f64 for exact gradient checks.
trait Elem: Float + Send + Sync + 'static {
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    fn wrap(v: Vec<Self>) -> CpuStorage;
}

impl Elem for f32 {
    fn slice(s: &CpuStorage) -> Option<&[f32]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<f32>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl Elem for f64 {
    fn slice(s: &CpuStorage) -> Option<&[f64]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<f64>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

fn contiguous<'a, T: Elem>(s: &'a CpuStorage, l: &Layout, op: &'static str) -> Result<&'a [T]> {
    let data = T::slice(s).ok_or(candle_core::Error::UnsupportedDTypeForOp(s.dtype(), op))?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => Err(candle_core::Error::RequiresContiguous { op }),
    }
}

fn uses_cpu_kernel(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Runs a row kernel in the storage's dtype.
macro_rules! dispatch {
    ($s:expr, $kernel:ident ( $($arg:expr),* )) => {
        match $s.dtype() {
            DType::F32 => $kernel::<f32>($($arg),*),
            DType::F64 => $kernel::<f64>($($arg),*),
            dt => Err(candle_core::Error::UnsupportedDTypeForOp(dt, "pairtrain fused op")),
        }
    };
}

/// Applies `f(input_row, output_row)` to every row of length `n`, in parallel when worthwhile.
fn map_rows<T: Elem>(src: &[T], n: usize, f: impl Fn(&[T], &mut [T]) + Sync) -> Vec<T> {
    let mut dst = vec![T::zero(); src.len()];
    if n == 0 {
        return dst;
    }
    if src.len() >= PAR_MIN_ELEMS {
        let rows_per_task = (PAR_MIN_ELEMS / 4 / n).max(1) * n;
        dst.par_chunks_mut(rows_per_task)
            .zip(src.par_chunks(rows_per_task))
            .for_each(|(d, s)| {
                for (dr, sr) in d.chunks_mut(n).zip(s.chunks(n)) {
                    f(sr, dr)
                }
            });
    } else {
        for (dr, sr) in dst.chunks_mut(n).zip(src.chunks(n)) {
            f(sr, dr)
        }
    }
    dst
}

// ---------------------------------------------------------------------------------------------
// Softmax over the last dimension.

struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "pt-softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Elem>(s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
            let src = contiguous::<T>(s, l, "softmax")?;
            let n = l.dims().last().copied().unwrap_or(1);
            let dst = map_rows(src, n, |x, y| {
                let max = x.iter().copied().fold(T::neg_infinity(), T::max);
                let mut sum = T::zero();
                for (yi, &xi) in y.iter_mut().zip(x) {
                    let e = (xi - max).exp();
                    *yi = e;
                    sum = sum + e;
                }
                let inv = T::one() / sum;
                for yi in y.iter_mut() {
                    *yi = *yi * inv;
                }
            });
            Ok((T::wrap(dst), l.shape().clone()))
        }
        dispatch!(s, run(s, l))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // dx = y * (g - sum(g * y))
        let dot = (grad * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some((res * grad.broadcast_sub(&dot)?)?))
    }
}

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if uses_cpu_kernel(x) {
        x.contiguous()?.apply_op1(SoftmaxLastDim)
    } else {
        // The shift by the row max does not change the result, so it needs no gradient.
        let max = x.max_keepdim(D::Minus1)?.detach();
        let e = x.broadcast_sub(&max)?.exp()?;
        e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
    }
}

// ---------------------------------------------------------------------------------------------
// Exact (erf) GELU, as BERT's `hidden_act = "gelu"`.

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
// 1 / sqrt(2 pi)
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

fn erf(x: f64) -> f64 {
    candle_core::cpu::erf::erf_f64(x)
}


struct GeluErf;
struct GeluErfGrad;

/// Applies a scalar function, evaluated in f64 so f32 results are correctly rounded.
fn map_elementwise(
    s: &CpuStorage,
    l: &Layout,
    f: impl Fn(f64) -> f64 + Sync,
) -> Result<(CpuStorage, Shape)> {
    fn run<T: Elem>(
        s: &CpuStorage,
        l: &Layout,
        f: &(impl Fn(f64) -> f64 + Sync),
    ) -> Result<(CpuStorage, Shape)> {
        let src = contiguous::<T>(s, l, "gelu")?;
        let n = l.dims().last().copied().unwrap_or(1);
        let dst = map_rows(src, n, |x, y| {
            for (yi, &xi) in y.iter_mut().zip(x) {
                *yi = T::from(f(xi.to_f64().unwrap_or(f64::NAN))).unwrap_or(T::nan());
            }
        });
        Ok((T::wrap(dst), l.shape().clone()))
    }
    dispatch!(s, run(s, l, &f))
}

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "pt-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        map_elementwise(s, l, |v| 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let d = arg.contiguous()?.apply_op1_no_bwd(&GeluErfGrad)?;
        Ok(Some((grad * d)?))
    }
}

impl CustomOp1 for GeluErfGrad {
    fn name(&self) -> &'static str {
        "pt-gelu-erf-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        // d/dx x·Φ(x) = Φ(x) + x·φ(x)
        map_elementwise(s, l, |v| {
            let cdf = 0.5 * (1.0 + erf(v * FRAC_1_SQRT_2));
            let pdf = FRAC_1_SQRT_2PI * (-0.5 * v * v).exp();
            cdf + v * pdf
        })
    }
}

/// Exact GELU, `x·Φ(x)`, differentiable with an exact derivative.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if uses_cpu_kernel(x) {
        x.contiguous()?.apply_op1(GeluErf)
    } else {
        x.gelu_erf()
    }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm over the last dimension.

struct LayerNorm {
    eps: f64,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "pt-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: Elem>(
            eps: f64,
            (s1, l1): (&CpuStorage, &Layout),
            (s2, l2): (&CpuStorage, &Layout),
            (s3, l3): (&CpuStorage, &Layout),
        ) -> Result<(CpuStorage, Shape)> {
            let x = contiguous::<T>(s1, l1, "layer_norm")?;
            let w = contiguous::<T>(s2, l2, "layer_norm")?;
            let b = contiguous::<T>(s3, l3, "layer_norm")?;
            let n = l1.dims().last().copied().unwrap_or(1);
            if w.len() != n || b.len() != n {
                return Err(candle_core::Error::Msg(format!(
                    "layer_norm: weight/bias of {}/{} elements for rows of {n}",
                    w.len(),
                    b.len()
                )));
            }
            let eps = T::from(eps).unwrap_or(T::epsilon());
            let nf = T::from(n).unwrap_or(T::one());
            let dst = map_rows(x, n, |x, y| {
                // Two passes (mean, then centred variance), as PyTorch does, for the same rounding.
                let mean = x.iter().fold(T::zero(), |a, &v| a + v) / nf;
                let var = x.iter().fold(T::zero(), |a, &v| a + (v - mean) * (v - mean)) / nf;
                let rstd = T::one() / (var + eps).sqrt();
                for i in 0..n {
                    y[i] = (x[i] - mean) * rstd * w[i] + b[i];
                }
            });
            Ok((T::wrap(dst), l1.shape().clone()))
        }
        dispatch!(s1, run(self.eps, (s1, l1), (s2, l2), (s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = x.dim(D::Minus1)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let rstd = (var + self.eps)?.sqrt()?.recip()?;
        let xhat = xc.broadcast_mul(&rstd)?;
        let gh = g.broadcast_mul(w)?;
        // dx = rstd · (gh − mean(gh) − x̂ · mean(gh · x̂))
        let m1 = gh.mean_keepdim(D::Minus1)?;
        let m2 = (&gh * &xhat)?.mean_keepdim(D::Minus1)?;
        let dx = gh
            .broadcast_sub(&m1)?
            .sub(&xhat.broadcast_mul(&m2)?)?
            .broadcast_mul(&rstd)?;
        let rows = g.elem_count() / n;
        let dw = (g * &xhat)?.reshape((rows, n))?.sum(0)?;
        let db = g.reshape((rows, n))?.sum(0)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// LayerNorm over the last dimension with affine weight and bias, differentiable in all three.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    if uses_cpu_kernel(x) {
        x.contiguous()?
            .apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNorm { eps })
    } else {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xhat = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
        xhat.broadcast_mul(w)?.broadcast_add(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_gradients, rand_tensor};
    use candle_core::{Device, Var};

    #[test]
    fn softmax_matches_definition_and_rows_sum_to_one() -> Result<()> {
        let x = rand_tensor(&[3, 5, 7], 1, 3.0, DType::F32)?;
        let y = softmax_last_dim(&x)?;
        let e = x.exp()?;
        let want = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
        let diff = (&y - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "softmax differs by {diff}");
        let sums = y.sum(D::Minus1)?.flatten_all()?.to_vec1::<f32>()?;
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-6));
        Ok(())
    }

    #[test]
    fn gelu_matches_erf_definition() -> Result<()> {
        let x = Tensor::new(&[-3.0f32, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0], &Device::Cpu)?;
        let y = gelu_erf(&x)?.to_vec1::<f32>()?;
        // 0.5·x·(1 + erf(x/√2)) from Python's math.erf.
        let want = [
            -0.004_049_694,
            -0.158_655_254,
            -0.154_268_769,
            0.0,
            0.345_731_231,
            0.841_344_746,
            2.995_950_306,
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        Ok(())
    }

    #[test]
    fn layer_norm_normalises_rows() -> Result<()> {
        let x = rand_tensor(&[4, 16], 2, 5.0, DType::F32)?;
        let w = Tensor::ones(16, DType::F32, &Device::Cpu)?;
        let b = Tensor::zeros(16, DType::F32, &Device::Cpu)?;
        let y = layer_norm(&x, &w, &b, 1e-12)?;
        let mean = y.mean(D::Minus1)?.to_vec1::<f32>()?;
        let var = y.sqr()?.mean(D::Minus1)?.to_vec1::<f32>()?;
        assert!(mean.iter().all(|m| m.abs() < 1e-6));
        assert!(var.iter().all(|v| (v - 1.0).abs() < 1e-5));
        Ok(())
    }

    #[test]
    fn fused_ops_gradients_match_finite_differences() -> Result<()> {
        let f64t = |dims: &[usize], seed, scale| rand_tensor(dims, seed, scale, DType::F64);
        let x = Var::from_tensor(&f64t(&[3, 6], 3, 1.5)?)?;
        let w = Var::from_tensor(&(f64t(&[6], 4, 0.5)? + 1.0)?)?;
        let b = Var::from_tensor(&f64t(&[6], 5, 0.5)?)?;
        // A fixed random projection turns the output into a scalar with a rich gradient.
        let proj = f64t(&[3, 6], 6, 1.0)?;
        let vars = [("x", &x), ("w", &w), ("b", &b)].map(|(n, v)| (n.to_string(), v.clone()));
        check_gradients(&vars, |_, n| (0..n).collect(), || {
            let h = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5)?;
            let h = gelu_erf(&(h * 1.7)?)?;
            let h = softmax_last_dim(&h)?;
            (h * &proj)?.sum_all()
        });
        Ok(())
    }
}
