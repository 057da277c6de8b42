//! Dropout (Srivastava et al., 2014) with counter-based masks: element i of the mask of `seed`
//! is `hash_uniform(seed, i) >= p`, so a mask is built in parallel and can be drawn again from
//! its seed alone (the fused attention kernel's backward, GradCache's second pass).
//!
//! On a GPU the same hash runs on the device (ops/cuda/dropout.cu), so a step with dropout draws
//! the same masks on either device, and no mask crosses the PCIe bus.
//!
//! The fused CPU op (`Dropout`) multiplies by the mask as it draws it and draws it again in the
//! backward, so no mask tensor is made; `reference::dropout` is the composed `x · mask_tensor`.

use super::kernel::{cpu_op1, vectorized, Elem, Vectorized, PAR_MIN_ELEMS};
use super::pool::par_chunks_mut;
use crate::rng::hash_uniform;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use std::mem::MaybeUninit;

/// The scaled keep-mask (0 or 1/(1-p)) of `seed` for a tensor of `shape`, in row-major order,
/// as f32.
pub fn mask_tensor(seed: u64, p: f64, shape: &Shape, device: &Device) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(dev) = device {
        return on_gpu::mask(&Mask::new(seed, p), dev, shape);
    }
    let keep = (1.0 / (1.0 - p)) as f32;
    if device.is_cuda() {
        device.set_seed(seed)?;
        let u = Tensor::rand(0f32, 1f32, shape, device)?;
        return u
            .ge(p as f32)?
            .to_dtype(DType::F32)?
            .affine(keep as f64, 0.0);
    }
    let n = shape.elem_count();
    let mut mask = Vec::<f32>::with_capacity(n);
    masked(
        &Mask::new(seed, p),
        None,
        &mut mask.spare_capacity_mut()[..n],
    );
    // SAFETY: `masked` wrote all n elements.
    unsafe { mask.set_len(n) };
    Tensor::from_vec(mask, shape, device)
}

/// The mask of one seed: element i is `keep` where `hash_uniform(seed, i) >= p`, else 0. The
/// one place that rule is written: the fused attention kernel draws its masks through it too.
#[derive(Clone, Copy)]
pub(super) struct Mask {
    seed: u64,
    p: f32,
    /// 1/(1-p), rounded to f32 in every dtype.
    pub(super) keep: f32,
}

impl Mask {
    pub(super) fn new(seed: u64, p: f64) -> Self {
        Self {
            seed,
            p: p as f32,
            keep: (1.0 / (1.0 - p)) as f32,
        }
    }

    /// Whether element `i` is kept.
    #[inline(always)]
    pub(super) fn kept(&self, i: u64) -> bool {
        hash_uniform(self.seed, i) >= self.p
    }
}

/// `out[i] = x[i] · mask[i]` (the mask itself when `x` is None), in parallel chunks; every
/// element of `out` is written.
fn masked<T: Elem>(mask: &Mask, x: Option<&[T]>, out: &mut [MaybeUninit<T>]) {
    let (keep, zero) = (T::from(mask.keep).unwrap_or(T::nan()), T::zero());
    par_chunks_mut(out, PAR_MIN_ELEMS, |c, out| {
        let base = c * PAR_MIN_ELEMS;
        let x = x.map(|x| &x[base..base + out.len()]);
        vectorized(&mut MaskChunk {
            mask: *mask,
            base: base as u64,
            keep,
            zero,
            x,
            out,
        });
    });
}

/// One chunk of `masked`, starting at element `base`.
struct MaskChunk<'a, T> {
    mask: Mask,
    base: u64,
    keep: T,
    zero: T,
    x: Option<&'a [T]>,
    out: &'a mut [MaybeUninit<T>],
}

impl<T: Elem> Vectorized for MaskChunk<'_, T> {
    #[inline(always)]
    fn run(&mut self) {
        let m = |i: usize| {
            if self.mask.kept(self.base + i as u64) {
                self.keep
            } else {
                self.zero
            }
        };
        match self.x {
            // x · 0 rather than 0: the same numbers as multiplying by the mask tensor.
            Some(x) => {
                for (i, (o, &x)) in self.out.iter_mut().zip(x).enumerate() {
                    o.write(x * m(i));
                }
            }
            None => {
                for (i, o) in self.out.iter_mut().enumerate() {
                    o.write(m(i));
                }
            }
        }
    }
}

/// Dropout as one op: the forward multiplies by the mask of `seed` as it draws it, the backward
/// draws it again for the incoming gradient.
struct Dropout(Mask);

impl CustomOp1 for Dropout {
    cpu_op1!("pt-dropout", Dropout, dropout_fwd);

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        Ok((on_gpu::dropout(&self.0, s, l)?, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Dropout(self.0))?))
    }
}

/// The forward kernel of `Dropout` (and its backward, applied to the gradient).
fn dropout_fwd<T: Elem>(op: &Dropout, x: &[T], l: &Layout) -> Result<(CpuStorage, Shape)> {
    let mut y = Vec::with_capacity(x.len());
    masked(&op.0, Some(x), &mut y.spare_capacity_mut()[..x.len()]);
    // SAFETY: `masked` wrote all x.len() elements.
    unsafe { y.set_len(x.len()) };
    Ok((T::wrap(y), l.shape().clone()))
}

/// The kernel on CPU tensors: zeroes each element of `x` with probability `p` (mask of `seed`)
/// and scales the rest by 1/(1-p); differentiable in `x`.
pub(super) fn apply(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Dropout(Mask::new(seed, p)))
}

/// The CUDA form (ops/cuda/dropout.cu): the same hash, on the device.
#[cfg(feature = "cuda")]
mod on_gpu {
    use super::super::cuda::{
        alloc, by_dtype, elementwise, func, launched, suffix, view, Elem, Module,
    };
    use super::Mask;
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
    use candle_core::{CudaDevice, CudaStorage, Layout, Result, Shape, Storage, Tensor};

    pub(super) fn dropout(m: &Mask, s: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
        fn run<T: Elem>(m: &Mask, s: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
            let dev = s.device();
            let n = l.shape().elem_count();
            let x = view::<T>(s, l, "dropout")?;
            let mut y = alloc::<T>(dev, n)?;
            let f = func(
                dev,
                Module::Dropout,
                &format!("dropout_{}", suffix(s.dtype(), "dropout")?),
            )?;
            let (n64, p, keep, seed) = (n as u64, m.p, m.keep, m.seed);
            let mut b = f.builder();
            b.arg(&mut y)
                .arg(&x)
                .arg(&n64)
                .arg(&p)
                .arg(&keep)
                .arg(&seed);
            // SAFETY: (T* y, const T* x, u64 n, float p, float keep, u64 seed).
            launched(unsafe { b.launch(elementwise(n)) }, "dropout")?;
            Ok(CudaStorage::wrap_cuda_slice(y, dev.clone()))
        }
        by_dtype!(s.dtype(), "dropout", run(m, s, l))
    }

    /// The scaled keep-mask of `m` for `shape`, as f32 on the device.
    pub(super) fn mask(m: &Mask, dev: &CudaDevice, shape: &Shape) -> Result<Tensor> {
        let n = shape.elem_count();
        let mut out = alloc::<f32>(dev, n)?;
        let f = func(dev, Module::Dropout, "dropout_mask")?;
        let (n64, p, keep, seed) = (n as u64, m.p, m.keep, m.seed);
        let mut b = f.builder();
        b.arg(&mut out).arg(&n64).arg(&p).arg(&keep).arg(&seed);
        // SAFETY: (float* m, u64 n, float p, float keep, u64 seed).
        launched(unsafe { b.launch(elementwise(n)) }, "dropout_mask")?;
        let storage = CudaStorage::wrap_cuda_slice(out, dev.clone());
        Ok(Tensor::from_storage(
            Storage::Cuda(storage),
            shape.clone(),
            candle_core::op::BackpropOp::none(),
            false,
        ))
    }
}
