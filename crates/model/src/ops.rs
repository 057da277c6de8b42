//! Fused element-wise ops with their own backward pass.
//!
//! candle's stock `layer_norm` and `softmax_last_dim` have no backward, and composing them from
//! primitive ops allocates a tensor per step. These ops run one pass over each row on the CPU
//! (rows split across threads), carry an exact backward, and fall back to composed candle ops on
//! other devices so the same model code runs everywhere.

use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result,
    Shape, Tensor, D,
};
use num_traits::Float;
use rayon::prelude::*;

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
// 1 / sqrt(2 pi)
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Rows smaller than this many total elements are processed on one thread: spawning costs more.
const PAR_MIN_ELEMS: usize = 1 << 14;

/// The float types the CPU kernels run in: f32 for real work, f64 for exact gradient checks.
trait Elem: Float + Send + Sync + 'static {
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    fn wrap(v: Vec<Self>) -> CpuStorage;
    /// x·Φ(x)
    fn gelu(self) -> Self;
    /// Φ(x) + x·φ(x), the derivative of `gelu`.
    fn gelu_grad(self) -> Self;
    /// e^x; in f32 an inlinable polynomial so that loops over it vectorise.
    fn exp_fast(self) -> Self;
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
    fn gelu(self) -> f32 {
        0.5 * self * (1.0 + erf_f32(self * std::f32::consts::FRAC_1_SQRT_2))
    }
    fn gelu_grad(self) -> f32 {
        let cdf = 0.5 * (1.0 + erf_f32(self * std::f32::consts::FRAC_1_SQRT_2));
        cdf + self * FRAC_1_SQRT_2PI as f32 * exp_f32(-0.5 * self * self)
    }
    fn exp_fast(self) -> f32 {
        exp_f32(self)
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
    fn gelu(self) -> f64 {
        0.5 * self * (1.0 + candle_core::cpu::erf::erf_f64(self * FRAC_1_SQRT_2))
    }
    fn gelu_grad(self) -> f64 {
        let cdf = 0.5 * (1.0 + candle_core::cpu::erf::erf_f64(self * FRAC_1_SQRT_2));
        cdf + self * FRAC_1_SQRT_2PI * (-0.5 * self * self).exp()
    }
    fn exp_fast(self) -> f64 {
        self.exp()
    }
}

/// e^x in f32 within ~2 ulp (Cephes' expf: range reduction by ln 2, degree-6 polynomial, 2^n
/// built in the exponent bits). Branch-free: inputs below -87.3 give 0, above 88.7 give +inf.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.336_55, 88.722_83);
    // Round to nearest by the 1.5·2²³ trick: `round()` is a libm call that stops vectorisation.
    const MAGIC: f32 = 12_582_912.0;
    let n = (xc * LOG2E + MAGIC) - MAGIC;
    let r = xc - n * C1 - n * C2;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let pow2n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    let v = y * pow2n;
    if x < -87.336_55 {
        0.0
    } else if x > 88.722_83 {
        f32::INFINITY
    } else {
        v
    }
}

/// erf in f32 by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), the formula PyTorch's
/// vectorised CPU `erf` uses; branch-free so the loop vectorises.
#[inline(always)]
fn erf_f32(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    let r = 1.0 - poly * exp_f32(-a * a);
    r.copysign(x)
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
    ($s:expr, $kernel:ident $(::<$c:ident>)? ( $($arg:expr),* )) => {
        match $s.dtype() {
            DType::F32 => $kernel::<f32 $(, $c)?>($($arg),*),
            DType::F64 => $kernel::<f64 $(, $c)?>($($arg),*),
            dt => Err(candle_core::Error::UnsupportedDTypeForOp(dt, "pairtrain fused op")),
        }
    };
}

/// Runs `f` compiled for AVX2+FMA when the CPU has them (the kernels' loops are written to
/// vectorise; the default x86-64 target only allows SSE2).
#[inline(always)]
fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features were just detected on this CPU.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Applies `f(input_row, output_row)` to every row of length `n`, in parallel when worthwhile.
fn map_rows<T: Elem>(src: &[T], n: usize, f: impl Fn(&[T], &mut [T]) + Sync) -> Vec<T> {
    let mut dst = vec![T::zero(); src.len()];
    if n == 0 {
        return dst;
    }
    let rows = |d: &mut [T], s: &[T]| {
        simd(|| {
            for (dr, sr) in d.chunks_mut(n).zip(s.chunks(n)) {
                f(sr, dr)
            }
        })
    };
    if src.len() >= PAR_MIN_ELEMS {
        let rows_per_task = (PAR_MIN_ELEMS / 4 / n).max(1) * n;
        dst.par_chunks_mut(rows_per_task)
            .zip(src.par_chunks(rows_per_task))
            .for_each(|(d, s)| rows(d, s));
    } else {
        rows(&mut dst, src);
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
                    let e = (xi - max).exp_fast();
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

struct GeluErf;
struct GeluErfGrad;

/// GELU (`GRAD = false`) or its derivative (`GRAD = true`) element-wise; a const parameter
/// rather than a function pointer so the call inlines and the loop vectorises.
fn map_gelu<const GRAD: bool>(s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
    fn run<T: Elem, const GRAD: bool>(s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous::<T>(s, l, "gelu")?;
        let n = l.dims().last().copied().unwrap_or(1);
        let dst = map_rows(src, n, |x, y| {
            for (yi, &xi) in y.iter_mut().zip(x) {
                *yi = if GRAD { xi.gelu_grad() } else { xi.gelu() };
            }
        });
        Ok((T::wrap(dst), l.shape().clone()))
    }
    dispatch!(s, run::<GRAD>(s, l))
}

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "pt-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        map_gelu::<false>(s, l)
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
        map_gelu::<true>(s, l)
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
                let mean = lanes_sum(x, |v| v) / nf;
                let var = lanes_sum(x, |v| (v - mean) * (v - mean)) / nf;
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

/// LayerNorm's backward: with x̂ = (x − μ)·r, r = 1/√(σ² + ε) and ĝ = g·w,
/// dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), dw = Σ_rows g·x̂, db = Σ_rows g.
struct LayerNormBwd {
    eps: f64,
}

impl CustomOp3 for LayerNormBwd {
    fn name(&self) -> &'static str {
        "pt-layer-norm-bwd"
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
            let x = contiguous::<T>(s1, l1, "layer_norm_bwd")?;
            let w = contiguous::<T>(s2, l2, "layer_norm_bwd")?;
            let g = contiguous::<T>(s3, l3, "layer_norm_bwd")?;
            let n = l1.dims().last().copied().unwrap_or(1);
            let rows = x.len() / n.max(1);
            let eps = T::from(eps).unwrap_or(T::epsilon());
            let nf = T::from(n).unwrap_or(T::one());
            let mut out = vec![T::zero(); (rows + 2) * n];
            let (dx, acc) = out.split_at_mut(rows * n);
            let chunk_rows = (PAR_MIN_ELEMS / n.max(1)).max(1);
            // Each task writes its rows of dx and returns its partial dw, db.
            let partials: Vec<Vec<T>> = dx
                .par_chunks_mut(chunk_rows * n)
                .enumerate()
                .map(|(c, dxc)| {
                    let mut part = vec![T::zero(); 2 * n];
                    simd(|| {
                        let (dw, db) = part.split_at_mut(n);
                        let mut xhat = vec![T::zero(); n];
                        for (r, dxr) in dxc.chunks_mut(n).enumerate() {
                            let row = c * chunk_rows + r;
                            let xr = &x[row * n..(row + 1) * n];
                            let gr = &g[row * n..(row + 1) * n];
                            let mean = lanes_sum(xr, |v| v) / nf;
                            let var = lanes_sum(xr, |v| (v - mean) * (v - mean)) / nf;
                            let rstd = T::one() / (var + eps).sqrt();
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
                    });
                    part
                })
                .collect();
            for part in partials {
                for (a, p) in acc.iter_mut().zip(part) {
                    *a = *a + p;
                }
            }
            Ok((T::wrap(out), Shape::from((rows + 2, n))))
        }
        dispatch!(s1, run(self.eps, (s1, l1), (s2, l2), (s3, l3)))
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

/// Independent accumulators: a float reduction in one accumulator is a serial chain the compiler
/// may not reorder, so it cannot vectorise; LANES of them can.
const LANES: usize = 16;

#[inline(always)]
fn lanes_max<T: Elem>(y: &[T]) -> T {
    let mut acc = [T::neg_infinity(); LANES];
    let mut chunks = y.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    let m = chunks
        .remainder()
        .iter()
        .copied()
        .fold(T::neg_infinity(), T::max);
    acc.iter().copied().fold(m, T::max)
}

/// Replaces each `v` by `f(v)` and returns the sum of the new values.
#[inline(always)]
fn lanes_map_sum<T: Elem>(y: &mut [T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); LANES];
    let mut chunks = y.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            c[i] = f(c[i]);
            acc[i] = acc[i] + c[i];
        }
    }
    let mut s = T::zero();
    for v in chunks.into_remainder() {
        *v = f(*v);
        s = s + *v;
    }
    acc.iter().fold(s, |a, &b| a + b)
}

/// Sum of `f(v)` over `x`.
#[inline(always)]
fn lanes_sum<T: Elem>(x: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = acc[i] + f(c[i]);
        }
    }
    let s = chunks.remainder().iter().fold(T::zero(), |a, &v| a + f(v));
    acc.iter().fold(s, |a, &b| a + b)
}

/// `y = softmax(scale · x)` over keys with mask ≠ 0; masked keys get exactly 0, as adding the
/// most negative float does. A row with no real key is uniform, as in PyTorch.
#[inline(always)]
fn softmax_row<T: Elem>(x: &[T], y: &mut [T], mask: &[f32], scale: T, bias: Option<&[f32]>) {
    for j in 0..x.len() {
        y[j] = if mask[j] != 0.0 {
            match bias {
                Some(b) => x[j] * scale + T::from(b[j]).unwrap_or(T::zero()),
                None => x[j] * scale,
            }
        } else {
            T::neg_infinity()
        };
    }
    let max = lanes_max(y);
    if max == T::neg_infinity() {
        let u = T::one() / T::from(y.len()).unwrap_or(T::one());
        y.iter_mut().for_each(|v| *v = u);
        return;
    }
    let sum = lanes_map_sum(y, |v| (v - max).exp_fast());
    let inv = T::one() / sum;
    y.iter_mut().for_each(|v| *v = *v * inv);
}

// ---------------------------------------------------------------------------------------------
// Attention probabilities: softmax(scale · scores + mask bias) in one pass.

struct MaskedSoftmax {
    scale: f64,
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
            let kernel = |b: usize, xs: &[T], ys: &mut [T]| {
                let m = &mask[b * lk..(b + 1) * lk];
                for (xr, yr) in xs.chunks(lk).zip(ys.chunks_mut(lk)) {
                    softmax_row(xr, yr, m, scale, None);
                }
            };
            dst.par_chunks_mut(rows_per_batch)
                .zip(x.par_chunks(rows_per_batch))
                .enumerate()
                .for_each(|(b, (ys, xs))| simd(|| kernel(b, xs, ys)));
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

/// `softmax(scale · scores + bias)` over the last dimension, where `bias` is 0 for keys with
/// mask 1 and the most negative float for keys with mask 0. `scores`: [B, …, Lk]; `mask`: [B, Lk]
/// (f32). Differentiable in `scores`.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    if uses_cpu_kernel(scores) {
        let mask = mask.to_dtype(DType::F32)?.contiguous()?;
        scores
            .contiguous()?
            .apply_op2(&mask, MaskedSoftmax { scale })
    } else {
        let (b, lk) = mask.dims2()?;
        let mut shape = vec![b];
        shape.extend(std::iter::repeat_n(1, scores.rank() - 2));
        shape.push(lk);
        let m = mask.to_dtype(scores.dtype())?;
        let bias = ((m.ones_like()? - m)? * f32::MIN as f64)?.reshape(shape)?;
        softmax_last_dim(&(scores * scale)?.broadcast_add(&bias)?)
    }
}

// ---------------------------------------------------------------------------------------------
// Linear layer: x·Wᵀ + b in one multiply (the bias is the accumulator's starting value).

struct Linear;

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "pt-linear"
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
            (s1, l1): (&CpuStorage, &Layout),
            (s2, l2): (&CpuStorage, &Layout),
            (s3, l3): (&CpuStorage, &Layout),
        ) -> Result<(CpuStorage, Shape)> {
            let x = contiguous::<T>(s1, l1, "linear")?;
            let w = contiguous::<T>(s2, l2, "linear")?;
            let b = contiguous::<T>(s3, l3, "linear")?;
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
            let mut dst = Vec::with_capacity(m * n);
            for _ in 0..m {
                dst.extend_from_slice(b);
            }
            let threads = candle_core::utils::get_num_threads();
            let par = if threads > 1 && m * n * k >= 1 << 16 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            };
            // SAFETY: the pointers cover m×k, n×k and m×n elements with the strides given
            // (x row-major, W row-major read as its transpose, dst row-major).
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    true,
                    x.as_ptr(),
                    1,
                    k as isize,
                    w.as_ptr(),
                    k as isize,
                    1,
                    T::one(),
                    T::one(),
                    false,
                    false,
                    false,
                    par,
                );
            }
            let mut out = l1.dims().to_vec();
            let last = out.len() - 1;
            out[last] = n;
            Ok((T::wrap(dst), Shape::from(out)))
        }
        dispatch!(s1, run((s1, l1), (s2, l2), (s3, l3)))
    }

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
        let g2 = g.reshape((m, n))?;
        let x2 = x.reshape((m, k))?;
        let dx = g2.matmul(w)?.reshape(x.shape())?;
        let dw = g2.t()?.matmul(&x2)?;
        let db = sum_rows(&g2)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Column sums of a 2-D tensor (rows split across threads). candle's `sum(0)` walks a strided
/// layout one element at a time; this is the bias gradient of every linear layer.
struct SumRows;

impl CustomOp1 for SumRows {
    fn name(&self) -> &'static str {
        "pt-sum-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Elem>(s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
            let x = contiguous::<T>(s, l, "sum_rows")?;
            let (_, n) = l.shape().dims2()?;
            let chunk = (PAR_MIN_ELEMS / n.max(1)).max(1) * n;
            let partials: Vec<Vec<T>> = x
                .par_chunks(chunk.max(1))
                .map(|c| {
                    let mut acc = vec![T::zero(); n];
                    simd(|| {
                        for row in c.chunks(n) {
                            for (a, &v) in acc.iter_mut().zip(row) {
                                *a = *a + v;
                            }
                        }
                    });
                    acc
                })
                .collect();
            let mut out = vec![T::zero(); n];
            for p in partials {
                for (a, v) in out.iter_mut().zip(p) {
                    *a = *a + v;
                }
            }
            Ok((T::wrap(out), Shape::from(n)))
        }
        dispatch!(s, run(s, l))
    }
}

fn sum_rows(x: &Tensor) -> Result<Tensor> {
    if uses_cpu_kernel(x) {
        x.contiguous()?.apply_op1_no_bwd(&SumRows)
    } else {
        x.sum(0)
    }
}

/// `x·Wᵀ + b` over the last dimension of `x` (any rank), with W in PyTorch's [out, in] layout.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    if uses_cpu_kernel(x) {
        x.contiguous()?
            .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear)
    } else {
        let dims = x.dims().to_vec();
        let k = dims[dims.len() - 1];
        let y = x
            .reshape((x.elem_count() / k, k))?
            .matmul(&w.t()?)?
            .broadcast_add(b)?;
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = w.dim(0)?;
        y.reshape(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Multi-head attention: softmax(scale · Q·Kᵀ + mask bias)·V per head, without materialising the
// [B, heads, L, L] score tensor or transposing Q, K and V.

struct Attention {
    heads: usize,
    scale: f64,
    /// Added to the scaled scores: [heads, L, L], the same for every batch element (MPNet's
    /// relative position bias). Treated as a constant: no gradient flows to it.
    bias: Option<Vec<f32>>,
    /// Dropout on the attention probabilities: (p, mask seed). The mask of element
    /// [b, head, i, j] is `crate::dropout::mask_tensor`'s for the full [B, heads, L, L] shape.
    dropout: Option<(f64, u64)>,
    /// [B, L] attention mask (1 = real token), the same for queries and keys.
    mask: Vec<f32>,
}

/// A raw pointer shared by tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
// SAFETY: every task writes its own (batch, head) block; no two tasks alias.
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// Through a method, so closures capture the whole (Send) wrapper, not the raw pointer.
    fn get(self) -> *mut T {
        self.0
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "pt-attention"
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
            op: &Attention,
            (s1, l1): (&CpuStorage, &Layout),
            (s2, l2): (&CpuStorage, &Layout),
            (s3, l3): (&CpuStorage, &Layout),
        ) -> Result<(CpuStorage, Shape)> {
            let q = contiguous::<T>(s1, l1, "attention")?;
            let k = contiguous::<T>(s2, l2, "attention")?;
            let v = contiguous::<T>(s3, l3, "attention")?;
            let (b, l, h) = l1.shape().dims3()?;
            if l2.dims() != l1.dims() || l3.dims() != l1.dims() || op.mask.len() != b * l {
                return Err(candle_core::Error::Msg(format!(
                    "attention: q {:?}, k {:?}, v {:?}, mask of {} values",
                    l1.dims(),
                    l2.dims(),
                    l3.dims(),
                    op.mask.len()
                )));
            }
            let (nh, scale) = (op.heads, T::from(op.scale).unwrap_or(T::one()));
            let dh = h / nh;
            let mut out = vec![T::zero(); b * l * h];
            let out_ptr = SharedMut(out.as_mut_ptr());
            (0..b * nh).into_par_iter().for_each(|task| {
                let (bi, hi) = (task / nh, task % nh);
                let mask = &op.mask[bi * l..(bi + 1) * l];
                // With right padding (the usual case) only the first `kl` keys are real: the
                // padded ones would get probability 0, so they are skipped outright.
                let real = mask.iter().filter(|&&m| m != 0.0).count();
                let prefix = real > 0 && mask[..real].iter().all(|&m| m != 0.0);
                let kl = if prefix { real } else { l };
                let mut p = vec![T::zero(); l * kl];
                let base = bi * l * h + hi * dh;
                // SAFETY: all blocks lie inside q/k/v/out ([b, l, h] row-major); this task is
                // the only writer of out's (bi, hi) block.
                unsafe {
                    gemm::gemm(
                        l,
                        kl,
                        dh,
                        p.as_mut_ptr(),
                        1,
                        kl as isize,
                        false,
                        q.as_ptr().add(base),
                        1,
                        h as isize,
                        k.as_ptr().add(base),
                        h as isize,
                        1,
                        T::zero(),
                        T::one(),
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                simd(|| {
                    let mut row = vec![T::zero(); kl];
                    for (i, r) in p.chunks_mut(kl).enumerate() {
                        row.copy_from_slice(r);
                        let brow = op.bias.as_ref().map(|bias| {
                            let start = (hi * l + i) * l;
                            &bias[start..start + kl]
                        });
                        softmax_row(&row, r, &mask[..kl], scale, brow);
                        if let Some((dp, seed)) = op.dropout {
                            let keep = T::from(1.0 / (1.0 - dp)).unwrap_or(T::one());
                            let base = ((task * l + i) * l) as u64;
                            for (j, v) in r.iter_mut().enumerate() {
                                let u = crate::rng::hash_uniform(seed, base + j as u64);
                                *v = if u >= dp as f32 { *v * keep } else { T::zero() };
                            }
                        }
                    }
                });
                unsafe {
                    gemm::gemm(
                        l,
                        dh,
                        kl,
                        out_ptr.get().add(base),
                        1,
                        h as isize,
                        false,
                        p.as_ptr(),
                        1,
                        kl as isize,
                        v.as_ptr().add(base),
                        1,
                        h as isize,
                        T::zero(),
                        T::one(),
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            });
            Ok((T::wrap(out), l1.shape().clone()))
        }
        dispatch!(s1, run(self, (s1, l1), (s2, l2), (s3, l3)))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, l, h) = q.dims3()?;
        let (nh, dh) = (self.heads, h / self.heads);
        let heads = |t: &Tensor| {
            t.detach()
                .reshape((b, l, nh, dh))?
                .transpose(1, 2)?
                .contiguous()
        };
        let back = |t: Tensor| t.transpose(1, 2)?.contiguous()?.reshape((b, l, h));
        let (qh, kh, vh, go) = (heads(q)?, heads(k)?, heads(v)?, heads(grad)?);
        let mask = Tensor::from_vec(self.mask.clone(), (b, l), q.device())?;
        let p = match &self.bias {
            None => masked_softmax(&qh.matmul(&kh.t()?)?, &mask, self.scale)?,
            Some(bias) => {
                let bias = Tensor::from_vec(bias.clone(), (1, nh, l, l), q.device())?;
                let s = (qh.matmul(&kh.t()?)? * self.scale)?
                    .broadcast_add(&bias.to_dtype(q.dtype())?)?;
                masked_softmax(&s, &mask, 1.0)?
            }
        };
        // With dropout, the output used P·M (M the scaled keep-mask); dP = (dO·Vᵀ)·M.
        let drop = match self.dropout {
            Some((dp, seed)) => Some(
                crate::dropout::mask_tensor(seed, dp, p.shape(), p.device())?
                    .to_dtype(p.dtype())?,
            ),
            None => None,
        };
        let pd = match &drop {
            Some(m) => (&p * m)?,
            None => p.clone(),
        };
        let dv = pd.t()?.matmul(&go)?;
        let dp = go.matmul(&vh.t()?)?;
        let dp = match &drop {
            Some(m) => (dp * m)?,
            None => dp,
        };
        let dot = (&dp * &p)?.sum_keepdim(D::Minus1)?;
        let ds = ((p * dp.broadcast_sub(&dot)?)? * self.scale)?;
        let dq = ds.matmul(&kh)?;
        let dk = ds.t()?.matmul(&qh)?;
        Ok((Some(back(dq)?), Some(back(dk)?), Some(back(dv)?)))
    }
}

/// `attention` with a constant additive score bias [heads, L, L] shared by the batch (no
/// gradient reaches the bias; use composed ops where it must be trained). CPU only.
pub fn attention_with_constant_bias(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    heads: usize,
    scale: f64,
    bias: &Tensor,
) -> Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let bias = bias.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let op = Attention {
        heads,
        scale,
        mask,
        bias: Some(bias),
        dropout: None,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// Multi-head scaled dot-product attention as BERT computes it. `q`, `k`, `v`: [B, L, H] with
/// head `i` in columns `i·H/heads ..`; `mask`: [B, L]; `dropout`: (p, seed) for dropout on the
/// attention probabilities. Returns the context [B, L, H]. Differentiable in q, k and v.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    heads: usize,
    scale: f64,
    dropout: Option<(f64, u64)>,
) -> Result<Tensor> {
    let dropout = dropout.filter(|(p, _)| *p > 0.0);
    if uses_cpu_kernel(q) {
        let mask = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let op = Attention {
            heads,
            scale,
            mask,
            bias: None,
            dropout,
        };
        q.contiguous()?
            .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
    } else {
        let (b, l, h) = q.dims3()?;
        let dh = h / heads;
        let split = |t: &Tensor| t.reshape((b, l, heads, dh))?.transpose(1, 2)?.contiguous();
        let mut p = masked_softmax(&split(q)?.matmul(&split(k)?.t()?)?, mask, scale)?;
        if let Some((dp, seed)) = dropout {
            let m = crate::dropout::mask_tensor(seed, dp, p.shape(), p.device())?;
            p = (p * m.to_dtype(q.dtype())?)?;
        }
        p.matmul(&split(v)?)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, l, h))
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
        let want: [f64; 7] = [
            -0.004_049_694,
            -0.158_655_254,
            -0.154_268_769,
            0.0,
            0.345_731_231,
            0.841_344_746,
            2.995_950_306,
        ];
        for (&a, b) in y.iter().zip(want) {
            assert!((a as f64 - b).abs() < 1e-6, "{a} vs {b}");
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
        check_gradients(
            &vars,
            |_, n| (0..n).collect(),
            || {
                let h = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5)?;
                let h = gelu_erf(&(h * 1.7)?)?;
                let h = softmax_last_dim(&h)?;
                (h * &proj)?.sum_all()
            },
        );
        Ok(())
    }

    #[test]
    fn masked_softmax_equals_adding_the_most_negative_float() -> Result<()> {
        let x = rand_tensor(&[2, 3, 4, 5], 7, 2.0, DType::F32)?;
        let mask = Tensor::new(
            &[[1f32, 1., 1., 0., 0.], [1., 1., 1., 1., 1.]],
            &Device::Cpu,
        )?;
        let got = masked_softmax(&x, &mask, 0.35)?;
        let bias = ((1.0 - &mask)? * f32::MIN as f64)?.reshape((2, 1, 1, 5))?;
        let want = softmax_last_dim(&(&x * 0.35)?.broadcast_add(&bias)?)?;
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-7, "{diff}");
        Ok(())
    }

    #[test]
    fn linear_matches_matmul() -> Result<()> {
        let x = rand_tensor(&[2, 3, 5], 8, 1.0, DType::F32)?;
        let w = rand_tensor(&[4, 5], 9, 1.0, DType::F32)?;
        let b = rand_tensor(&[4], 10, 1.0, DType::F32)?;
        let got = linear(&x, &w, &b)?;
        let want = x.broadcast_matmul(&w.t()?)?.broadcast_add(&b)?;
        assert_eq!(got.dims(), &[2, 3, 4]);
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    #[test]
    fn attention_ops_gradients_match_finite_differences() -> Result<()> {
        let f64t = |dims: &[usize], seed, scale| rand_tensor(dims, seed, scale, DType::F64);
        let x = Var::from_tensor(&f64t(&[2, 3, 4], 11, 1.0)?)?;
        let w = Var::from_tensor(&f64t(&[4, 4], 12, 1.0)?)?;
        let b = Var::from_tensor(&f64t(&[4], 13, 1.0)?)?;
        let mask = Tensor::new(&[[1f32, 1., 0., 0.], [1., 1., 1., 1.]], &Device::Cpu)?;
        let proj = f64t(&[2, 3, 4], 14, 1.0)?;
        let vars = [("x", &x), ("w", &w), ("b", &b)].map(|(n, v)| (n.to_string(), v.clone()));
        check_gradients(
            &vars,
            |_, n| (0..n).collect(),
            || {
                let h = linear(x.as_tensor(), w.as_tensor(), b.as_tensor())?;
                let p = masked_softmax(&h.unsqueeze(1)?, &mask, 0.7)?.squeeze(1)?;
                (p * &proj)?.sum_all()
            },
        );
        Ok(())
    }

    #[test]
    fn attention_matches_composed_ops() -> Result<()> {
        let (b, l, h, nh) = (2, 5, 8, 2);
        let q = rand_tensor(&[b, l, h], 15, 1.0, DType::F32)?;
        let k = rand_tensor(&[b, l, h], 16, 1.0, DType::F32)?;
        let v = rand_tensor(&[b, l, h], 17, 1.0, DType::F32)?;
        // Right padding, and a mask with a hole (the general path).
        for mask in [
            [[1f32, 1., 1., 0., 0.], [1., 1., 1., 1., 1.]],
            [[1f32, 0., 1., 1., 0.], [1., 1., 1., 1., 0.]],
        ] {
            let mask = Tensor::new(&mask, &Device::Cpu)?;
            let got = attention(&q, &k, &v, &mask, nh, 0.5, None)?;
            let split = |t: &Tensor| t.reshape((b, l, nh, h / nh))?.transpose(1, 2)?.contiguous();
            let bias = ((1.0 - &mask)? * f32::MIN as f64)?.reshape((b, 1, 1, l))?;
            let s = (split(&q)?.matmul(&split(&k)?.t()?)? * 0.5)?.broadcast_add(&bias)?;
            let want = softmax_last_dim(&s)?
                .matmul(&split(&v)?)?
                .transpose(1, 2)?
                .reshape((b, l, h))?;
            let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-6, "{diff}");
        }
        Ok(())
    }

    #[test]
    fn attention_gradients_match_finite_differences() -> Result<()> {
        let f64t = |dims: &[usize], seed| rand_tensor(dims, seed, 1.0, DType::F64);
        let q = Var::from_tensor(&f64t(&[2, 4, 6], 18)?)?;
        let k = Var::from_tensor(&f64t(&[2, 4, 6], 19)?)?;
        let v = Var::from_tensor(&f64t(&[2, 4, 6], 20)?)?;
        let mask = Tensor::new(&[[1f32, 1., 1., 0.], [1., 1., 1., 1.]], &Device::Cpu)?;
        let proj = f64t(&[2, 4, 6], 21)?;
        let vars = [("q", &q), ("k", &k), ("v", &v)].map(|(n, t)| (n.to_string(), t.clone()));
        check_gradients(
            &vars,
            |_, n| (0..n).collect(),
            || {
                let o = attention(
                    q.as_tensor(),
                    k.as_tensor(),
                    v.as_tensor(),
                    &mask,
                    3,
                    0.6,
                    Some((0.3, 99)),
                )?;
                (o * &proj)?.sum_all()
            },
        );
        Ok(())
    }

    #[test]
    fn attention_with_bias_matches_composed_ops() -> Result<()> {
        let (b, l, h, nh) = (2, 5, 8, 2);
        let q = rand_tensor(&[b, l, h], 22, 1.0, DType::F32)?;
        let k = rand_tensor(&[b, l, h], 23, 1.0, DType::F32)?;
        let v = rand_tensor(&[b, l, h], 24, 1.0, DType::F32)?;
        let bias = rand_tensor(&[nh, l, l], 25, 1.0, DType::F32)?;
        let mask = Tensor::new(
            &[[1f32, 1., 1., 0., 0.], [1., 1., 1., 1., 1.]],
            &Device::Cpu,
        )?;
        let got = attention_with_constant_bias(&q, &k, &v, &mask, nh, 0.5, &bias)?;
        let split = |t: &Tensor| t.reshape((b, l, nh, h / nh))?.transpose(1, 2)?.contiguous();
        let s = (split(&q)?.matmul(&split(&k)?.t()?)? * 0.5)?.broadcast_add(&bias.unsqueeze(0)?)?;
        let want = masked_softmax(&s, &mask, 1.0)?
            .matmul(&split(&v)?)?
            .transpose(1, 2)?
            .reshape((b, l, h))?;
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "{diff}");
        Ok(())
    }
}
