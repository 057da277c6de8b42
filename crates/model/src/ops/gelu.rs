//! Exact (erf) GELU, as BERT's `hidden_act = "gelu"`, and its backward, as fused CPU kernels.

use super::kernel::{
    build_par, cpu_op1, cpu_op2, map_rows, vectorized, Elem, RowOp, Vectorized, PAR_MIN_ELEMS,
};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

// ---------------------------------------------------------------------------------------------
// Exact (erf) GELU, as BERT's `hidden_act = "gelu"`.

pub(super) struct GeluErf;

/// GELU of a row (a type rather than a closure so the call inlines and the loop vectorises).
struct GeluRow;

impl<T: Elem> RowOp<T> for GeluRow {
    #[inline(always)]
    fn row(&self, x: &[T], y: &mut [T]) {
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = xi.gelu();
        }
    }
}

fn gelu_fwd<T: Elem>(_op: &GeluErf, x: &[T], l: &Layout) -> Result<(CpuStorage, Shape)> {
    let n = l.dims().last().copied().unwrap_or(1);
    let dst = map_rows(x, n, &GeluRow);
    Ok((T::wrap(dst), l.shape().clone()))
}

impl CustomOp1 for GeluErf {
    cpu_op1!("pt-gelu-erf", GeluErf, gelu_fwd);

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        Ok((on_gpu::fwd(s, l)?, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &GeluErfBwd)?;
        Ok(Some(dx))
    }
}

// ---------------------------------------------------------------------------------------------
// GELU's backward, `grad · GELU'(x)`, in one pass (not the derivative, then a multiply).

struct GeluErfBwd;

impl CustomOp2 for GeluErfBwd {
    cpu_op2!("pt-gelu-erf-bwd", GeluErfBwd, gelu_bwd);

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!("gelu_bwd: x {:?}, gradient {:?}", l1.dims(), l2.dims());
        }
        Ok((on_gpu::bwd((s1, l1), (s2, l2))?, l1.shape().clone()))
    }
}

/// The forward kernel of `GeluErfBwd`: x and the incoming gradient, of one shape.
fn gelu_bwd<T: Elem>(
    _op: &GeluErfBwd,
    (x, l1): (&[T], &Layout),
    (g, l2): (&[T], &Layout),
) -> Result<(CpuStorage, Shape)> {
    if l1.shape() != l2.shape() {
        return Err(candle_core::Error::ShapeMismatchBinaryOp {
            lhs: l1.shape().clone(),
            rhs: l2.shape().clone(),
            op: "gelu_bwd",
        }
        .bt());
    }
    let d = build_par(x.len(), PAR_MIN_ELEMS, |at, d| {
        let (x, g) = (&x[at..at + d.len()], &g[at..at + d.len()]);
        vectorized(&mut TimesGeluGrad { d, x, g })
    });
    Ok((T::wrap(d), l1.shape().clone()))
}

/// `d = g · GELU'(x)` over a chunk.
struct TimesGeluGrad<'a, T> {
    d: &'a mut [T],
    x: &'a [T],
    g: &'a [T],
}

impl<T: Elem> Vectorized for TimesGeluGrad<'_, T> {
    #[inline(always)]
    fn run(&mut self) {
        for ((d, &x), &g) in self.d.iter_mut().zip(self.x).zip(self.g) {
            *d = g * x.gelu_grad();
        }
    }
}

/// The kernel on CPU tensors.
pub(super) fn apply(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluErf)
}

/// The CUDA form (ops/cuda/gelu.cu).
#[cfg(feature = "cuda")]
mod on_gpu {
    use super::super::cuda::{
        alloc, by_dtype, elementwise, func, launched, suffix, view, Elem, Module,
    };
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
    use candle_core::{CudaStorage, Layout, Result};

    pub(super) fn fwd(s: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
        fn run<T: Elem>(s: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
            let dev = s.device();
            let n = l.shape().elem_count();
            let x = view::<T>(s, l, "gelu")?;
            let mut y = alloc::<T>(dev, n)?;
            let f = func(
                dev,
                Module::Gelu,
                &format!("gelu_fwd_{}", suffix(s.dtype(), "gelu")?),
            )?;
            let mut b = f.builder();
            let n64 = n as u64;
            b.arg(&mut y).arg(&x).arg(&n64);
            // SAFETY: the kernel's parameters are (T* y, const T* x, u64 n), y and x of n elements.
            launched(unsafe { b.launch(elementwise(n)) }, "gelu")?;
            Ok(CudaStorage::wrap_cuda_slice(y, dev.clone()))
        }
        by_dtype!(s.dtype(), "gelu", run(s, l))
    }

    pub(super) fn bwd(
        (s1, l1): (&CudaStorage, &Layout),
        (s2, l2): (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        fn run<T: Elem>(
            (s1, l1): (&CudaStorage, &Layout),
            (s2, l2): (&CudaStorage, &Layout),
        ) -> Result<CudaStorage> {
            let dev = s1.device();
            let n = l1.shape().elem_count();
            let (x, g) = (
                view::<T>(s1, l1, "gelu_bwd")?,
                view::<T>(s2, l2, "gelu_bwd")?,
            );
            let mut dx = alloc::<T>(dev, n)?;
            let f = func(
                dev,
                Module::Gelu,
                &format!("gelu_bwd_{}", suffix(s1.dtype(), "gelu")?),
            )?;
            let mut b = f.builder();
            let n64 = n as u64;
            b.arg(&mut dx).arg(&x).arg(&g).arg(&n64);
            // SAFETY: (T* dx, const T* x, const T* g, u64 n), all of n elements.
            launched(unsafe { b.launch(elementwise(n)) }, "gelu_bwd")?;
            Ok(CudaStorage::wrap_cuda_slice(dx, dev.clone()))
        }
        by_dtype!(s1.dtype(), "gelu_bwd", run((s1, l1), (s2, l2)))
    }
}
