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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let y = on_gpu::fwd(self.eps, (s1, l1), (s2, l2), (s3, l3))?;
        Ok((y, l1.shape().clone()))
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        on_gpu::bwd(self.eps, (s1, l1), (s2, l2), (s3, l3))
    }
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

/// The CUDA form (ops/cuda/layer_norm.cu): a block of 256 threads per row; the backward's
/// per-block sums for dw and db are added in block order by `column_sums`.
#[cfg(feature = "cuda")]
mod on_gpu {
    use super::super::cuda::{alloc, by_dtype, func, launched, suffix, view, Elem, Module};
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
    use candle_core::{CudaStorage, Layout, Result, Shape};

    const THREADS: u32 = 256;
    /// layer_norm.cu's LN_MAX_COLS: a row of at most this many × THREADS elements.
    const MAX_COLS: usize = 16;
    /// Blocks of the backward (each loops over rows): enough to fill a GPU, few enough that the
    /// partial sums stay small.
    const BWD_BLOCKS: usize = 264;

    fn rows_and_n(l: &Layout, op: &str) -> Result<(usize, usize)> {
        let n = l.dims().last().copied().unwrap_or(1);
        if n == 0 || n > MAX_COLS * THREADS as usize {
            candle_core::bail!(
                "{op}: rows of {n} elements (1 to {} here)",
                MAX_COLS * THREADS as usize
            );
        }
        Ok((l.shape().elem_count() / n, n))
    }

    fn config(blocks: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (blocks.clamp(1, 65_535) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 32 * 4,
        }
    }

    pub(super) fn fwd(
        eps: f64,
        (s1, l1): (&CudaStorage, &Layout),
        (s2, l2): (&CudaStorage, &Layout),
        (s3, l3): (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        fn run<T: Elem>(
            eps: f64,
            (s1, l1): (&CudaStorage, &Layout),
            (s2, l2): (&CudaStorage, &Layout),
            (s3, l3): (&CudaStorage, &Layout),
        ) -> Result<CudaStorage> {
            let dev = s1.device();
            let (rows, n) = rows_and_n(l1, "layer_norm")?;
            if l2.shape().elem_count() != n || l3.shape().elem_count() != n {
                candle_core::bail!(
                    "layer_norm: weight {:?}, bias {:?} for rows of {n}",
                    l2.dims(),
                    l3.dims()
                );
            }
            let (x, w, b) = (
                view::<T>(s1, l1, "layer_norm")?,
                view::<T>(s2, l2, "layer_norm")?,
                view::<T>(s3, l3, "layer_norm")?,
            );
            let mut y = alloc::<T>(dev, rows * n)?;
            let name = format!("layer_norm_fwd_{}", suffix(s1.dtype(), "layer_norm")?);
            let f = func(dev, Module::LayerNorm, &name)?;
            let (r, ni, e) = (rows as i32, n as i32, eps as f32);
            let mut lb = f.builder();
            lb.arg(&mut y)
                .arg(&x)
                .arg(&w)
                .arg(&b)
                .arg(&r)
                .arg(&ni)
                .arg(&e);
            // SAFETY: (T* y, const T* x, w, b, int rows, int n, float eps); 32 floats of scratch.
            launched(unsafe { lb.launch(config(rows)) }, "layer_norm")?;
            Ok(CudaStorage::wrap_cuda_slice(y, dev.clone()))
        }
        by_dtype!(
            s1.dtype(),
            "layer_norm",
            run(eps, (s1, l1), (s2, l2), (s3, l3))
        )
    }

    /// [dx rows…, dw, db] stacked, as the CPU form returns them.
    pub(super) fn bwd(
        eps: f64,
        (s1, l1): (&CudaStorage, &Layout),
        (s2, l2): (&CudaStorage, &Layout),
        (s3, l3): (&CudaStorage, &Layout),
    ) -> Result<(CudaStorage, Shape)> {
        fn run<T: Elem>(
            eps: f64,
            (s1, l1): (&CudaStorage, &Layout),
            (s2, l2): (&CudaStorage, &Layout),
            (s3, l3): (&CudaStorage, &Layout),
        ) -> Result<(CudaStorage, Shape)> {
            let dev = s1.device();
            let (rows, n) = rows_and_n(l1, "layer_norm_bwd")?;
            let (x, w, g) = (
                view::<T>(s1, l1, "layer_norm_bwd")?,
                view::<T>(s2, l2, "layer_norm_bwd")?,
                view::<T>(s3, l3, "layer_norm_bwd")?,
            );
            let blocks = rows.clamp(1, BWD_BLOCKS);
            let mut out = alloc::<T>(dev, (rows + 2) * n)?;
            let mut part = alloc::<f32>(dev, blocks * 2 * n)?;
            let sfx = suffix(s1.dtype(), "layer_norm_bwd")?;
            let f = func(dev, Module::LayerNorm, &format!("layer_norm_bwd_{sfx}"))?;
            let (r, ni, e) = (rows as i32, n as i32, eps as f32);
            {
                let mut dx = out.slice_mut(0..rows * n);
                let mut lb = f.builder();
                lb.arg(&mut dx)
                    .arg(&mut part)
                    .arg(&x)
                    .arg(&w)
                    .arg(&g)
                    .arg(&r)
                    .arg(&ni)
                    .arg(&e);
                // SAFETY: (T* dx, float* part[blocks·2n], const T* x, w, g, rows, n, eps).
                launched(unsafe { lb.launch(config(blocks)) }, "layer_norm_bwd")?;
            }
            let sums = func(dev, Module::LayerNorm, &format!("column_sums_{sfx}"))?;
            let (parts, stride) = (blocks as i32, 2 * n as i32);
            let cfg = LaunchConfig {
                grid_dim: (n.div_ceil(256) as u32, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            for (k, at) in [(0, rows), (1, rows + 1)] {
                let mut dst = out.slice_mut(at * n..(at + 1) * n);
                let src = part.slice(k * n..);
                let mut lb = sums.builder();
                lb.arg(&mut dst).arg(&src).arg(&parts).arg(&ni).arg(&stride);
                // SAFETY: (T* out[n], const float* part, int parts, int cols, int stride).
                launched(unsafe { lb.launch(cfg) }, "layer_norm_bwd")?;
            }
            Ok((
                CudaStorage::wrap_cuda_slice(out, dev.clone()),
                Shape::from((rows + 2, n)),
            ))
        }
        by_dtype!(
            s1.dtype(),
            "layer_norm_bwd",
            run(eps, (s1, l1), (s2, l2), (s3, l3))
        )
    }
}
