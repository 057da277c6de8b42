//! What the fused CPU kernels share: the float types they run in, vectorisable maths
//! (exp, erf, lane-parallel reductions), row-parallel maps and the AVX-512 / AVX2 dispatch.

use candle_core::{backend::BackendStorage, CpuStorage, Layout, Result};
use num_traits::Float;
use std::mem::MaybeUninit;

pub(super) const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
// 1 / sqrt(2 pi)
pub(super) const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Rows smaller than this many total elements are processed on one thread: spawning costs more.
pub(super) const PAR_MIN_ELEMS: usize = 1 << 14;

/// The float types the CPU kernels run in: f32 for real work, f64 for exact gradient checks.
pub(super) trait Elem: Float + Send + Sync + 'static {
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
    #[inline(always)]
    fn gelu(self) -> f32 {
        0.5 * self * (1.0 + erf_f32(self * std::f32::consts::FRAC_1_SQRT_2))
    }
    #[inline(always)]
    fn gelu_grad(self) -> f32 {
        let cdf = 0.5 * (1.0 + erf_f32(self * std::f32::consts::FRAC_1_SQRT_2));
        cdf + self * FRAC_1_SQRT_2PI as f32 * exp_f32(-0.5 * self * self)
    }
    #[inline(always)]
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
    #[inline(always)]
    fn gelu(self) -> f64 {
        0.5 * self * (1.0 + candle_core::cpu::erf::erf_f64(self * FRAC_1_SQRT_2))
    }
    #[inline(always)]
    fn gelu_grad(self) -> f64 {
        let cdf = 0.5 * (1.0 + candle_core::cpu::erf::erf_f64(self * FRAC_1_SQRT_2));
        cdf + self * FRAC_1_SQRT_2PI * (-0.5 * self * self).exp()
    }
    #[inline(always)]
    fn exp_fast(self) -> f64 {
        self.exp()
    }
}

/// e^x in f32 within ~2 ulp (Cephes' expf: range reduction by ln 2, degree-6 polynomial, 2^n
/// built in the exponent bits). Branch-free: inputs below -87.3 give 0, above 88.7 give +inf.
/// The kernels only take it of x ≤ 0; from 88.38 on (where n reaches 128) it overflows to +inf
/// early, before e^x exceeds f32::MAX at 88.72.
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
    // 2^n from the bits of n + 127 (an integer in 0..=255 here) read off a float whose exponent
    // puts units in the last mantissa bits. Not `n as i32`: that saturating cast does not
    // vectorise (one scalar conversion per lane made GELU's backward 3x slower). Same bits for
    // every input (checked over every 7th f32 bit pattern).
    let pow2n = f32::from_bits(((n + 127.0 + 8_388_608.0).to_bits() & 0xff) << 23);
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
pub(super) fn erf_f32(x: f32) -> f32 {
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

pub(super) fn contiguous<'a, T: Elem>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &'static str,
) -> Result<&'a [T]> {
    let data = T::slice(s).ok_or(candle_core::Error::UnsupportedDTypeForOp(s.dtype(), op))?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => Err(candle_core::Error::RequiresContiguous { op }),
    }
}

/// Runs a row kernel in the storage's dtype.
macro_rules! dispatch {
    ($s:expr, $kernel:ident $(::<$c:ident>)? ( $($arg:expr),* )) => {
        match candle_core::backend::BackendStorage::dtype($s) {
            candle_core::DType::F32 => $kernel::<f32 $(, $c)?>($($arg),*),
            candle_core::DType::F64 => $kernel::<f64 $(, $c)?>($($arg),*),
            dt => Err(candle_core::Error::UnsupportedDTypeForOp(dt, "pairtrain fused op")),
        }
    };
}
pub(super) use dispatch;

/// The `name` and `cpu_fwd` of a three-input op whose inputs all have the kernel's float type:
/// each input as a contiguous slice with its layout, `$kernel::<T>(self, a, b, c)` in the
/// storage's dtype.
macro_rules! cpu_op3 {
    ($name:literal, $op:ty, $kernel:ident) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn cpu_fwd(
            &self,
            s1: &candle_core::CpuStorage,
            l1: &candle_core::Layout,
            s2: &candle_core::CpuStorage,
            l2: &candle_core::Layout,
            s3: &candle_core::CpuStorage,
            l3: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            fn run<T: $crate::ops::kernel::Elem>(
                op: &$op,
                (s1, l1): (&candle_core::CpuStorage, &candle_core::Layout),
                (s2, l2): (&candle_core::CpuStorage, &candle_core::Layout),
                (s3, l3): (&candle_core::CpuStorage, &candle_core::Layout),
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                use $crate::ops::kernel::contiguous;
                let name = stringify!($kernel);
                $kernel::<T>(
                    op,
                    (contiguous(s1, l1, name)?, l1),
                    (contiguous(s2, l2, name)?, l2),
                    (contiguous(s3, l3, name)?, l3),
                )
            }
            $crate::ops::kernel::dispatch!(s1, run(self, (s1, l1), (s2, l2), (s3, l3)))
        }
    };
}
pub(super) use cpu_op3;

/// `cpu_op3!` for a two-input op: `$kernel::<T>(self, a, b)`, each a contiguous slice of the
/// kernel's float type with its layout.
macro_rules! cpu_op2 {
    ($name:literal, $op:ty, $kernel:ident) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn cpu_fwd(
            &self,
            s1: &candle_core::CpuStorage,
            l1: &candle_core::Layout,
            s2: &candle_core::CpuStorage,
            l2: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            fn run<T: $crate::ops::kernel::Elem>(
                op: &$op,
                (s1, l1): (&candle_core::CpuStorage, &candle_core::Layout),
                (s2, l2): (&candle_core::CpuStorage, &candle_core::Layout),
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                use $crate::ops::kernel::contiguous;
                let name = stringify!($kernel);
                $kernel::<T>(
                    op,
                    (contiguous(s1, l1, name)?, l1),
                    (contiguous(s2, l2, name)?, l2),
                )
            }
            $crate::ops::kernel::dispatch!(s1, run(self, (s1, l1), (s2, l2)))
        }
    };
}
pub(super) use cpu_op2;

/// The `name` and `cpu_fwd` of a one-input op: `$kernel::<T>(self, input, layout)` in the
/// storage's dtype.
macro_rules! cpu_op1 {
    ($name:literal, $op:ty, $kernel:ident) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn cpu_fwd(
            &self,
            s: &candle_core::CpuStorage,
            l: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            fn run<T: $crate::ops::kernel::Elem>(
                op: &$op,
                s: &candle_core::CpuStorage,
                l: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                let x = $crate::ops::kernel::contiguous(s, l, stringify!($kernel))?;
                $kernel::<T>(op, x, l)
            }
            $crate::ops::kernel::dispatch!(s, run(self, s, l))
        }
    };
}
pub(super) use cpu_op1;

/// A kernel over one row: `row(input, output)`. Implementations mark `row` `#[inline(always)]`:
/// it is then compiled inside `map_rows`'s AVX-512 / AVX2 loops. (A closure's body is compiled on
/// its own for the baseline target — SSE2, four lanes — whatever target the caller has.)
pub(super) trait RowOp<T>: Sync {
    fn row(&self, x: &[T], y: &mut [T]);
}

/// Applies `k.row(input_row, output_row)` to every row of length `n`, in parallel when
/// worthwhile.
pub(super) fn map_rows<T: Elem, K: RowOp<T>>(src: &[T], n: usize, k: &K) -> Vec<T> {
    if n == 0 {
        return vec![T::zero(); src.len()];
    }
    let rows_per_task = (PAR_MIN_ELEMS / 4 / n).max(1) * n;
    build_par(src.len(), rows_per_task, |at, d| {
        rows(d, &src[at..at + d.len()], n, k)
    })
}

/// A vector of `len` elements made in chunks of `chunk` elements, in parallel when it is large:
/// each chunk is zeroed and then given to `f(start, chunk)` by the same thread, so that no
/// thread zeroes the whole output alone before the work starts.
pub(super) fn build_par<T: Elem>(
    len: usize,
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    let mut out = Vec::with_capacity(len);
    let init = |c: usize, d: &mut [MaybeUninit<T>]| {
        for x in d.iter_mut() {
            x.write(T::zero());
        }
        // SAFETY: every element of d was just written.
        f(c * chunk, unsafe {
            &mut *(d as *mut [MaybeUninit<T>] as *mut [T])
        });
    };
    let spare = &mut out.spare_capacity_mut()[..len];
    if len >= PAR_MIN_ELEMS {
        super::pool::par_chunks_mut(spare, chunk.max(1), init);
    } else {
        spare
            .chunks_mut(chunk.max(1))
            .enumerate()
            .for_each(|(c, d)| init(c, d));
    }
    // SAFETY: the chunks cover 0..len and each was written in full.
    unsafe { out.set_len(len) };
    out
}

/// `k.row` over the rows of `s` into `d`, in the widest vector instructions the CPU has.
#[inline(always)]
fn rows<T: Elem, K: RowOp<T>>(d: &mut [T], s: &[T], n: usize, k: &K) {
    vectorized(&mut EachRow { d, s, n, k })
}

struct EachRow<'a, T, K> {
    d: &'a mut [T],
    s: &'a [T],
    n: usize,
    k: &'a K,
}

impl<T: Elem, K: RowOp<T>> Vectorized for EachRow<'_, T, K> {
    #[inline(always)]
    fn run(&mut self) {
        for (dr, sr) in self.d.chunks_mut(self.n).zip(self.s.chunks(self.n)) {
            self.k.row(sr, dr)
        }
    }
}

/// A kernel whose whole body runs in the widest vector instructions the CPU has: `run` is marked
/// `#[inline(always)]` by implementations and compiled inside `vectorized`'s AVX-512 / AVX2
/// functions (see `RowOp` for why a closure is not).
pub trait Vectorized {
    fn run(&mut self);
}

pub fn vectorized<K: Vectorized>(k: &mut K) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
        unsafe fn avx512<K: Vectorized>(k: &mut K) {
            k.run()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<K: Vectorized>(k: &mut K) {
            k.run()
        }
        match vector_level() {
            // SAFETY: the features were detected on this CPU.
            VectorLevel::Avx512 => return unsafe { avx512(k) },
            VectorLevel::Avx2 => return unsafe { avx2(k) },
            VectorLevel::Baseline => {}
        }
    }
    k.run()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum VectorLevel {
    Avx512,
    Avx2,
    Baseline,
}

/// The widest vector instructions the kernels are compiled for that this CPU has and
/// `PAIRTRAIN_ISA` allows.
pub(super) fn vector_level() -> VectorLevel {
    use super::isa::{active, Isa};
    match active() {
        Isa::Amx | Isa::Avx512Bf16 | Isa::Avx512 => VectorLevel::Avx512,
        Isa::Avx2 => VectorLevel::Avx2,
        Isa::Baseline => VectorLevel::Baseline,
    }
}

/// Independent accumulators: a float reduction in one accumulator is a serial chain the compiler
/// may not reorder, so it cannot vectorise; LANES of them can.
pub(super) const LANES: usize = 16;

#[inline(always)]
pub(super) fn lanes_max<T: Elem>(y: &[T]) -> T {
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
pub(super) fn lanes_map_sum<T: Elem>(y: &mut [T], f: impl Fn(T) -> T) -> T {
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
pub(super) fn lanes_sum<T: Elem>(x: &[T], f: impl Fn(T) -> T) -> T {
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

/// Σ a·b in independent lanes, as `lanes_sum`.
#[inline(always)]
pub(super) fn lanes_dot<T: Elem>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            acc[i] = acc[i] + x[i] * y[i];
        }
    }
    let s = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(T::zero(), |s, (&x, &y)| s + x * y);
    acc.iter().fold(s, |a, &b| a + b)
}

/// `y = softmax(scale · x)` over keys with mask ≠ 0; masked keys get exactly 0, as adding the
/// most negative float does. A row with no real key is uniform, as in PyTorch.
#[inline(always)]
pub(super) fn softmax_row<T: Elem>(
    x: &[T],
    y: &mut [T],
    mask: &[f32],
    scale: T,
    bias: Option<&[f32]>,
) {
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

/// A raw pointer shared by tasks that write disjoint parts of one buffer.
pub struct SharedMut<T>(pub *mut T);
impl<T> Clone for SharedMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedMut<T> {}
// SAFETY: every task writes its own (batch, head) block; no two tasks alias.
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// Through a method, so closures capture the whole (Send) wrapper, not the raw pointer.
    pub fn get(self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::exp_f32;

    /// Within 2 ulp of e^x (every 997th f32 bit pattern from -87.3 to 88.3), 0 below the range,
    /// +inf above it, NaN stays NaN.
    #[test]
    fn exp_f32_is_within_two_ulp() {
        let mut worst = 0f64;
        let mut bits = (-87.3f32).to_bits();
        while f32::from_bits(bits) < -1e-30 {
            let x = f32::from_bits(bits);
            let want = (x as f64).exp();
            let ulp = (want as f32).next_up() as f64 - want as f32 as f64;
            worst = worst.max((exp_f32(x) as f64 - want).abs() / ulp);
            bits -= 997;
        }
        bits = 0;
        while f32::from_bits(bits) < 88.3 {
            let x = f32::from_bits(bits);
            let want = (x as f64).exp();
            let ulp = (want as f32).next_up() as f64 - want as f32 as f64;
            worst = worst.max((exp_f32(x) as f64 - want).abs() / ulp);
            bits += 997;
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert_eq!(exp_f32(-87.4), 0.0);
        assert_eq!(exp_f32(-1e30), 0.0);
        assert_eq!(exp_f32(88.8), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
