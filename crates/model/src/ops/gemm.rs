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
    // The gemm crate takes element strides: (column, row) of each matrix.
    let strides = |o: Operand<T>| if o.trans { (o.ld, 1) } else { (1, o.ld) };
    let (a_cs, a_rs) = strides(a);
    let (b_cs, b_rs) = strides(b);
    let threads = candle_core::utils::get_num_threads();
    let par = if parallel && threads > 1 && m * n * k >= 1 << 16 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
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
}
