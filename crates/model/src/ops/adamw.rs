//! AdamW over every parameter on the GPU in one launch (ops/cuda/adamw.cu), with the global
//! gradient norm and the clipping factor computed there too, so that a training step needs no copy
//! to the host until its loss and norm are read. The CPU form is train/src/optim.rs's vectorised
//! pass, whose roundings the kernel repeats.

use super::cuda::{alloc, func, launched, zeros, Module};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, DevicePtr, DeviceRepr, LaunchConfig, PinnedHostSlice, PushKernelArg, ValidAsZeroBits,
};
use candle_core::{CudaDevice, DType, Result, Storage, Tensor};

/// adamw.cu `AdamwTensor`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Desc {
    p: u64,
    g: u64,
    m: u64,
    v: u64,
    n: u64,
    decay: i32,
}

// SAFETY: plain old data, laid out as the kernel's struct; all zeros is a valid value.
unsafe impl DeviceRepr for Desc {}
unsafe impl ValidAsZeroBits for Desc {}

/// adamw.cu `ADAMW_CHUNK`.
const CHUNK: usize = 4096;
const THREADS: u32 = 256;

/// The constants of one step, as train/src/optim.rs rounds them (`StepConstants`).
#[derive(Clone, Copy, Debug)]
pub struct Constants {
    /// 1 − lr·weight_decay, for the decayed parameters.
    pub keep_decay: f32,
    pub b1w: f32,
    pub b2: f32,
    pub omb2: f32,
    pub bc2_sqrt: f32,
    pub eps: f32,
    pub neg_step: f32,
}

/// One parameter as the update sees it: f32 CUDA tensors, all contiguous and of one length.
pub struct Param<'a> {
    pub p: &'a Tensor,
    pub g: Option<&'a Tensor>,
    pub m: &'a Tensor,
    pub v: &'a Tensor,
    pub decay: bool,
}

/// The chunk table of a fixed list of parameters (uploaded once) and the step's scratch.
pub struct DeviceAdamW {
    dev: CudaDevice,
    sizes: Vec<usize>,
    chunk_tensor: CudaSlice<i32>,
    chunk_start: CudaSlice<u64>,
    chunks: usize,
    partial: CudaSlice<f64>,
    norm: CudaSlice<f64>,
    coef: CudaSlice<f32>,
    /// The descriptors go up through pinned host memory, two buffers in turn: a copy from
    /// pageable memory would make the host wait for the GPU, and filling one buffer waits only for
    /// the copy of two steps ago.
    pinned: [PinnedHostSlice<Desc>; 2],
    turn: usize,
    descs: CudaSlice<Desc>,
}

fn device_ptr(t: &Tensor, dev: &CudaDevice, what: &str) -> Result<u64> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(s) = &*storage else {
        candle_core::bail!("AdamW on the GPU: {what} is not on the GPU");
    };
    if s.dtype() != DType::F32 {
        candle_core::bail!("AdamW on the GPU: {what} is {:?}, not f32", s.dtype());
    }
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or(candle_core::Error::RequiresContiguous { op: "adamw" })?;
    let slice = s.as_cuda_slice::<f32>()?.slice(a..b);
    let stream = dev.cuda_stream();
    let (ptr, _sync) = slice.device_ptr(&stream);
    Ok(ptr)
}

impl DeviceAdamW {
    /// For parameters of these element counts, on `dev`.
    pub fn new(dev: &CudaDevice, sizes: &[usize]) -> Result<Self> {
        let (mut ct, mut cs) = (Vec::new(), Vec::new());
        for (i, &n) in sizes.iter().enumerate() {
            for start in (0..n).step_by(CHUNK) {
                ct.push(i as i32);
                cs.push(start as u64);
            }
        }
        let stream = dev.cuda_stream();
        let upload = |e| candle_core::Error::Msg(format!("AdamW on the GPU: upload: {e:?}"));
        let chunks = ct.len();
        let pinned = || {
            // SAFETY: every element is written (`step`) before a copy reads it.
            unsafe { stream.context().alloc_pinned::<Desc>(sizes.len().max(1)) }.map_err(upload)
        };
        Ok(Self {
            pinned: [pinned()?, pinned()?],
            turn: 0,
            descs: alloc::<Desc>(dev, sizes.len())?,
            dev: dev.clone(),
            sizes: sizes.to_vec(),
            chunk_tensor: stream.clone_htod(&ct).map_err(upload)?,
            chunk_start: stream.clone_htod(&cs).map_err(upload)?,
            chunks,
            partial: alloc::<f64>(dev, chunks)?,
            norm: zeros::<f64>(dev, 1)?,
            coef: zeros::<f32>(dev, 1)?,
        })
    }

    /// Clips the gradients to `max_norm` (0: no clipping) and updates every parameter in place;
    /// returns the global gradient norm before clipping as a 1-element f64 tensor on the device
    /// (read it with the loss, once).
    pub fn step(&mut self, params: &[Param], max_norm: f64, k: Constants) -> Result<Tensor> {
        if params.len() != self.sizes.len() {
            candle_core::bail!(
                "AdamW on the GPU: {} parameters, built for {}",
                params.len(),
                self.sizes.len()
            );
        }
        let dev = self.dev.clone();
        let mut descs = Vec::with_capacity(params.len());
        for (p, &n) in params.iter().zip(&self.sizes) {
            for t in [Some(p.p), p.g, Some(p.m), Some(p.v)].into_iter().flatten() {
                if t.elem_count() != n {
                    candle_core::bail!(
                        "AdamW on the GPU: a tensor of {} elements where {n} were set up",
                        t.elem_count()
                    );
                }
            }
            descs.push(Desc {
                p: device_ptr(p.p, &dev, "a parameter")?,
                g: p.g
                    .map(|g| device_ptr(g, &dev, "a gradient"))
                    .transpose()?
                    .unwrap_or(0),
                m: device_ptr(p.m, &dev, "a first moment")?,
                v: device_ptr(p.v, &dev, "a second moment")?,
                n: n as u64,
                decay: p.decay as i32,
            });
        }
        let stream = dev.cuda_stream();
        let fail = |e| candle_core::Error::Msg(format!("AdamW on the GPU: upload: {e:?}"));
        let host = &mut self.pinned[self.turn];
        self.turn = 1 - self.turn;
        host.as_mut_slice().map_err(fail)?[..descs.len()].copy_from_slice(&descs);
        stream.memcpy_htod(&*host, &mut self.descs).map_err(fail)?;
        let descs = &self.descs;
        let chunks = self.chunks as i32;
        let grid = |blocks: usize, smem: u32| LaunchConfig {
            grid_dim: (blocks.clamp(1, 65_535) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: smem,
        };
        let f = func(&dev, Module::Adamw, "grad_sq_sums")?;
        let mut b = f.builder();
        b.arg(&mut self.partial)
            .arg(descs)
            .arg(&self.chunk_tensor)
            .arg(&self.chunk_start)
            .arg(&chunks);
        // SAFETY: grad_sq_sums(double* partial[chunks], descs, chunk table, int chunks); a double
        // of scratch per warp.
        launched(
            unsafe { b.launch(grid(self.chunks, THREADS / 32 * 8)) },
            "adamw",
        )?;
        let f = func(&dev, Module::Adamw, "grad_norm_finish")?;
        let mut b = f.builder();
        b.arg(&mut self.norm)
            .arg(&mut self.coef)
            .arg(&self.partial)
            .arg(&chunks)
            .arg(&max_norm);
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (32, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: grad_norm_finish(double* norm, float* coef, const double* partial, int, double).
        launched(unsafe { b.launch(one) }, "adamw")?;
        let f = func(&dev, Module::Adamw, "adamw_step")?;
        let mut b = f.builder();
        b.arg(descs)
            .arg(&self.chunk_tensor)
            .arg(&self.chunk_start)
            .arg(&chunks)
            .arg(&self.coef);
        b.arg(&k.keep_decay)
            .arg(&k.b1w)
            .arg(&k.b2)
            .arg(&k.omb2)
            .arg(&k.bc2_sqrt)
            .arg(&k.eps)
            .arg(&k.neg_step);
        // SAFETY: adamw_step's parameters in order; every pointer in descs is a live f32 buffer
        // of its n elements (checked above), written by this launch only.
        launched(unsafe { b.launch(grid(self.chunks, 0)) }, "adamw")?;
        let norm = stream
            .clone_dtod(&self.norm)
            .map_err(|e| candle_core::Error::Msg(format!("AdamW on the GPU: {e:?}")))?;
        let storage = candle_core::CudaStorage::wrap_cuda_slice(norm, dev.clone());
        Ok(Tensor::from_storage(
            Storage::Cuda(storage),
            1,
            candle_core::op::BackpropOp::none(),
            false,
        ))
    }
}
