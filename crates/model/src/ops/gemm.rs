//! GEMM, C = op(A)·op(B) (+ C), the multiply under the linear layer's forward and backward.
//!
//! Through the `gemm` crate (what candle uses). In the training step, MKL and OpenBLAS were no
//! faster in its place (docs/PERFORMANCE.md). Unlike candle's `matmul`, the output is not
//! zero-filled first, and transposed operands are read in place.

use super::kernel::{cpu_op2, Elem};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape};

/// A matrix stored row-major with leading dimension `ld`, read as itself or as its transpose.
#[derive(Clone, Copy)]
pub(super) struct Operand<T> {
    pub ptr: *const T,
    pub trans: bool,
    pub ld: usize,
}

impl<T> Operand<T> {
    /// The matrix whose rows start every `ld` elements from `ptr`.
    pub fn rows(ptr: *const T, ld: usize) -> Self {
        Self {
            ptr,
            trans: false,
            ld,
        }
    }

    /// The transpose of the matrix whose rows start every `ld` elements from `ptr`.
    pub fn transposed(ptr: *const T, ld: usize) -> Self {
        Self {
            ptr,
            trans: true,
            ld,
        }
    }
}

/// C (`m`×`n`, row-major, rows every `ldc` elements) = A·B, or C + A·B when `accumulate`. With
/// `parallel`, a large product is split over candle's threads; without, it runs on this thread
/// (the caller is already one task of a parallel loop).
///
/// # Safety
/// `a` covers `m`×`k` elements and `b` `k`×`n` elements as their layouts say; `c` is valid for
/// writes of the `m`×`n` block (and reads when `accumulate`; otherwise it may be uninitialised),
/// and nothing else writes that block meanwhile.
pub(super) unsafe fn gemm<T: Elem>(
    (m, n, k): (usize, usize, usize),
    a: Operand<T>,
    b: Operand<T>,
    (c, ldc): (*mut T, usize),
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                std::ptr::write_bytes(c.add(i * ldc), 0, n);
            }
        }
        return;
    }
    let threads = super::pool::threads();
    if parallel && threads > 1 && m * n * k >= 1 << 16 {
        // Split the longer side of C over the pool's threads, each part one serial call: the
        // gemm crate's own threading goes through rayon, whose workers sleep between ops.
        let (a, b, c) = (Send(a), Send(b), Send(c as *const T));
        let along_n = n >= m;
        let (len, align) = if along_n { (n, 16) } else { (m, 8) };
        let step = len.div_ceil(threads).div_ceil(align) * align;
        super::pool::par_for(len.div_ceil(step), move |p| {
            let (start, end) = (p * step, len.min((p + 1) * step));
            let (mut a, mut b, mut c) = (a.get(), b.get(), c.get() as *mut T);
            // SAFETY: the part's rows or columns lie inside the operands; parts write
            // disjoint blocks of C.
            unsafe {
                if along_n {
                    // Columns start..end of op(B) and of C.
                    b.ptr = b.ptr.add(if b.trans { start * b.ld } else { start });
                    c = c.add(start);
                    serial((m, end - start, k), a, b, (c, ldc), accumulate);
                } else {
                    // Rows start..end of op(A) and of C.
                    a.ptr = a.ptr.add(if a.trans { start } else { start * a.ld });
                    c = c.add(start * ldc);
                    serial((end - start, n, k), a, b, (c, ldc), accumulate);
                }
            }
        });
    } else {
        // SAFETY: the caller's contract.
        unsafe { serial((m, n, k), a, b, (c, ldc), accumulate) };
    }
}

/// Operands moved into the tasks of a parallel multiply.
#[derive(Clone, Copy)]
struct Send<T>(T);
// SAFETY: the pointers are only read (A, B) or written in disjoint blocks (C), as `gemm` says.
unsafe impl<T> std::marker::Send for Send<T> {}
unsafe impl<T> Sync for Send<T> {}

impl<T: Copy> Send<T> {
    /// Through a method, so that closures capture the whole (Sync) wrapper.
    fn get(self) -> T {
        self.0
    }
}

/// `gemm` on this thread.
///
/// # Safety
/// As `gemm`.
unsafe fn serial<T: Elem>(
    (m, n, k): (usize, usize, usize),
    a: Operand<T>,
    b: Operand<T>,
    (c, ldc): (*mut T, usize),
    accumulate: bool,
) {
    // The gemm crate takes element strides: (column, row) of each matrix.
    let strides = |o: Operand<T>| if o.trans { (o.ld, 1) } else { (1, o.ld) };
    let (a_cs, a_rs) = strides(a);
    let (b_cs, b_rs) = strides(b);
    let par = gemm::Parallelism::None;
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        let level = super::kernel::vector_level();
        if level != super::kernel::VectorLevel::Avx512 {
            // SAFETY: T is f32; the caller's contract covers the operands.
            unsafe {
                capped::gemm_f32(
                    level,
                    (m, n, k),
                    (c as *mut f32, ldc as isize, accumulate),
                    (a.ptr as *const f32, a_cs as isize, a_rs as isize),
                    (b.ptr as *const f32, b_cs as isize, b_rs as isize),
                    par,
                )
            };
            return;
        }
    }
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        ldc as isize,
        accumulate,
        a.ptr,
        a_cs as isize,
        a_rs as isize,
        b.ptr,
        b_cs as isize,
        b_rs as isize,
        T::one(),
        T::one(),
        false,
        false,
        false,
        par,
    );
}

/// The gemm crate's f32 kernels below AVX-512, for `PAIRTRAIN_ISA=avx2|baseline`: the crate
/// picks its kernels from the CPU alone, so a machine with AVX-512 would never run the others.
/// This calls its generic driver with the FMA (AVX2) or scalar micro-kernels, as its own
/// dispatch does on CPUs without AVX-512.
mod capped {
    use super::super::kernel::VectorLevel;
    use gemm_common::gemm::gemm_basic_generic;
    use gemm_common::simd::MixedSimd;
    use gemm_common::Parallelism;

    /// C = A·B (+ C when `accumulate`), strides in elements as `gemm::gemm` takes them.
    ///
    /// # Safety
    /// As `super::gemm`; `level` is not above what the CPU has.
    pub(super) unsafe fn gemm_f32(
        level: VectorLevel,
        (m, n, k): (usize, usize, usize),
        (c, ldc, accumulate): (*mut f32, isize, bool),
        (a, a_cs, a_rs): (*const f32, isize, isize),
        (b, b_cs, b_rs): (*const f32, isize, isize),
        par: Parallelism,
    ) {
        macro_rules! run {
            ($simd:ty, $uk:path, $lanes:expr) => {{
                use $uk as uk;
                let simd = <$simd as MixedSimd<f32, f32, f32, f32>>::try_new()
                    .expect("the CPU has the instructions PAIRTRAIN_ISA allows");
                // SAFETY: the caller's contract.
                unsafe {
                    gemm_basic_generic::<
                        _,
                        f32,
                        { $lanes },
                        { uk::MR_DIV_N * $lanes },
                        { uk::NR },
                        { uk::MR_DIV_N },
                        { uk::H_M },
                        { uk::H_N },
                    >(
                        simd,
                        m,
                        n,
                        k,
                        c,
                        1,
                        ldc,
                        accumulate,
                        a,
                        a_cs,
                        a_rs,
                        b,
                        b_cs,
                        b_rs,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        |x, y, z| x * y + z,
                        &uk::UKR,
                        &uk::H_UKR,
                        false,
                        par,
                    )
                }
            }};
        }
        match level {
            #[cfg(target_arch = "x86_64")]
            VectorLevel::Avx2 => run!(gemm_common::simd::V3, gemm_f32::microkernel::fma::f32, 8),
            _ => run!(
                gemm_common::simd::Scalar,
                gemm_f32::microkernel::scalar::f32,
                1
            ),
        }
    }
}

/// op(A)·op(B) of two contiguous 2-D tensors, as a candle op without a backward (it is the
/// backward of the linear layer).
pub(super) struct MatMul {
    pub trans_a: bool,
    pub trans_b: bool,
}

impl CustomOp2 for MatMul {
    cpu_op2!("pt-matmul", MatMul, matmul_fwd);
}

/// The forward kernel of `MatMul`.
fn matmul_fwd<T: Elem>(
    op: &MatMul,
    (a, l1): (&[T], &Layout),
    (b, l2): (&[T], &Layout),
) -> Result<(CpuStorage, Shape)> {
    let (ar, ac) = l1.shape().dims2()?;
    let (br, bc) = l2.shape().dims2()?;
    let (m, k) = if op.trans_a { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if op.trans_b { (bc, br) } else { (br, bc) };
    if k != k2 {
        return Err(candle_core::Error::Msg(format!(
            "matmul: {:?}{} · {:?}{}",
            l1.dims(),
            if op.trans_a { "ᵀ" } else { "" },
            l2.dims(),
            if op.trans_b { "ᵀ" } else { "" },
        )));
    }
    let mut c = Vec::<T>::with_capacity(m * n);
    // SAFETY: a and b hold ar×ac and br×bc elements, row-major; c has room for m×n and is
    // written in full before its length is set.
    unsafe {
        let operand = |ptr, trans, ld| Operand { ptr, trans, ld };
        gemm(
            (m, n, k),
            operand(a.as_ptr(), op.trans_a, ac),
            operand(b.as_ptr(), op.trans_b, bc),
            (c.as_mut_ptr(), n),
            false,
            true,
        );
        c.set_len(m * n);
    }
    Ok((T::wrap(c), Shape::from((m, n))))
}

#[cfg(test)]
mod tests {
    use super::MatMul;
    use candle_core::{DType, Device, Result, Tensor};

    /// Every combination of transposes, in f32 and f64, against candle's matmul of the
    /// transposed copies; shapes that are not multiples of any kernel's tile.
    #[test]
    fn matmul_matches_candle_for_every_transpose() -> Result<()> {
        let (m, k, n) = (37, 19, 23);
        for dtype in [DType::F32, DType::F64] {
            let a = Tensor::randn(0f32, 1., (m, k), &Device::Cpu)?.to_dtype(dtype)?;
            let b = Tensor::randn(0f32, 1., (k, n), &Device::Cpu)?.to_dtype(dtype)?;
            let want = a.matmul(&b)?;
            for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
                let stored = |t: &Tensor, trans: bool| -> Result<Tensor> {
                    if trans {
                        t.t()?.contiguous()
                    } else {
                        Ok(t.clone())
                    }
                };
                let got = stored(&a, trans_a)?
                    .apply_op2_no_bwd(&stored(&b, trans_b)?, &MatMul { trans_a, trans_b })?;
                assert_eq!(got.dims(), &[m, n]);
                let diff = (got - &want)?.abs()?.max_all()?.to_dtype(DType::F64)?;
                let diff = diff.to_scalar::<f64>()?;
                assert!(diff < 1e-4, "{dtype:?} {trans_a} {trans_b}: {diff}");
            }
        }
        let empty = Tensor::zeros((3, 0), DType::F32, &Device::Cpu)?;
        let zero = empty.apply_op2_no_bwd(
            &Tensor::zeros((0, 2), DType::F32, &Device::Cpu)?,
            &MatMul {
                trans_a: false,
                trans_b: false,
            },
        )?;
        assert_eq!(zero.to_vec2::<f32>()?, vec![vec![0.0; 2]; 3]);
        Ok(())
    }

    /// The lower f32 paths `PAIRTRAIN_ISA` selects (the gemm crate's FMA and scalar kernels
    /// through its generic driver) against a plain triple loop, for every transpose, with and
    /// without accumulation, serial and parallel.
    #[test]
    fn capped_f32_paths_multiply() {
        use super::super::kernel::VectorLevel;
        let (m, k, n) = (67, 45, 81);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let c0: Vec<f32> = (0..m * n).map(|i| (i % 3) as f32).collect();
        let mut levels = vec![VectorLevel::Baseline];
        if cfg!(target_arch = "x86_64")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            levels.push(VectorLevel::Avx2);
        }
        for level in levels {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                // Stored transposed where asked: element (i, j) of op(X) read accordingly.
                let store = |x: &[f32], r: usize, c: usize, t: bool| -> Vec<f32> {
                    if !t {
                        return x.to_vec();
                    }
                    let mut y = vec![0.0; r * c];
                    for i in 0..r {
                        for j in 0..c {
                            y[j * r + i] = x[i * c + j];
                        }
                    }
                    y
                };
                let (sa, sb) = (store(&a, m, k, ta), store(&b, k, n, tb));
                let strides = |t: bool, rows_ld: usize| {
                    if t {
                        (rows_ld as isize, 1)
                    } else {
                        (1, rows_ld as isize)
                    }
                };
                let (a_cs, a_rs) = strides(ta, if ta { m } else { k });
                let (b_cs, b_rs) = strides(tb, if tb { k } else { n });
                for accumulate in [false, true] {
                    for par in [gemm::Parallelism::None, gemm::Parallelism::Rayon(2)] {
                        let mut c = c0.clone();
                        // SAFETY: the buffers hold the shapes the strides describe.
                        unsafe {
                            super::capped::gemm_f32(
                                level,
                                (m, n, k),
                                (c.as_mut_ptr(), n as isize, accumulate),
                                (sa.as_ptr(), a_cs, a_rs),
                                (sb.as_ptr(), b_cs, b_rs),
                                par,
                            )
                        };
                        for i in 0..m {
                            for j in 0..n {
                                let dot: f32 = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
                                let want = dot + if accumulate { c0[i * n + j] } else { 0.0 };
                                let got = c[i * n + j];
                                assert!(
                                    (got - want).abs() < 1e-4,
                                    "{ta} {tb} acc={accumulate}: ({i}, {j}) {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
