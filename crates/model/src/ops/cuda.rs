//! The CUDA forms of the fused ops: the kernels of `ops/cuda/*.cu` (PTX built by build.rs for
//! compute capability 8.0 and 9.0), loaded once per device through candle's module cache and
//! launched on candle's stream. Each op file keeps its CUDA form beside its CPU one; this module
//! holds what they share.

use candle_core::cuda_backend::cudarc::driver::{
    sys::CUdevice_attribute, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, DeviceRepr,
    LaunchArgs, LaunchConfig, ValidAsZeroBits,
};
use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
use candle_core::cuda_backend::CudaDType;
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The PTX of one .cu file, for compute capability 8.x and 9.x.
#[derive(Clone, Copy)]
pub(super) enum Module {
    Attention,
    Dropout,
    Gelu,
    LayerNorm,
    Adamw,
}

macro_rules! ptx {
    ($name:literal) => {
        (
            include_str!(concat!(env!("OUT_DIR"), "/", $name, ".sm80.ptx")),
            include_str!(concat!(env!("OUT_DIR"), "/", $name, ".sm90.ptx")),
        )
    };
}

impl Module {
    fn source(self) -> (&'static str, (&'static str, &'static str)) {
        match self {
            Module::Attention => ("attention", ptx!("attention")),
            Module::Dropout => ("dropout", ptx!("dropout")),
            Module::Gelu => ("gelu", ptx!("gelu")),
            Module::LayerNorm => ("layer_norm", ptx!("layer_norm")),
            Module::Adamw => ("adamw", ptx!("adamw")),
        }
    }
}

/// Whether `dev` is compute capability 9.x or later (the sm_90 PTX), else 8.x.
fn hopper(dev: &CudaDevice) -> bool {
    dev.cuda_stream()
        .context()
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        .map(|major| major >= 9)
        .unwrap_or(false)
}

/// A loaded kernel and the stream it launches on (candle's, so that it orders with candle's ops).
pub(super) struct Kernel {
    func: CudaFunction,
    stream: Arc<CudaStream>,
}

impl Kernel {
    pub(super) fn builder(&self) -> LaunchArgs<'_> {
        self.stream.launch_builder(&self.func)
    }
}

/// Kernel `name` of `module` on `dev`; each module is loaded once per device.
pub(super) fn func(dev: &CudaDevice, module: Module, name: &str) -> Result<Kernel> {
    static MODULES: OnceLock<Mutex<HashMap<String, Arc<CudaModule>>>> = OnceLock::new();
    let (file, (sm80, sm90)) = module.source();
    let h = hopper(dev);
    let key = format!("{:?}/{file}/{}", dev.id(), if h { "sm90" } else { "sm80" });
    let stream = dev.cuda_stream();
    let fail =
        |e| candle_core::Error::Msg(format!("loading CUDA kernel {name} ({file}.cu): {e:?}"));
    let module = {
        let mut cache = MODULES
            .get_or_init(Default::default)
            .lock()
            .expect("module cache");
        match cache.get(&key) {
            Some(m) => m.clone(),
            None => {
                let ptx = Ptx::from_src(if h { sm90 } else { sm80 });
                let m = stream.context().load_module(ptx).map_err(fail)?;
                cache.insert(key, m.clone());
                m
            }
        }
    };
    Ok(Kernel {
        func: module.load_function(name).map_err(fail)?,
        stream,
    })
}

/// The kernel-name suffix of a dtype the kernels take (f32 or bf16).
pub(super) fn suffix(dt: DType, op: &'static str) -> Result<&'static str> {
    match dt {
        DType::F32 => Ok("f32"),
        DType::BF16 => Ok("bf16"),
        dt => Err(candle_core::Error::UnsupportedDTypeForOp(dt, op)),
    }
}

/// A 1-D launch for an elementwise grid-stride kernel over `n` elements.
pub(super) fn elementwise(n: usize) -> LaunchConfig {
    let threads = 256u32;
    let blocks = n.div_ceil(threads as usize).clamp(1, 65_535) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The contiguous elements `l` describes in `s`.
pub(super) fn view<'a, T: CudaDType>(
    s: &'a CudaStorage,
    l: &Layout,
    op: &'static str,
) -> Result<CudaView<'a, T>> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or(candle_core::Error::RequiresContiguous { op })?;
    Ok(s.as_cuda_slice::<T>()?.slice(a..b))
}

/// The contiguous device elements of a tensor the op holds beside its inputs (a mask, a bias),
/// checked to have `dtype` and be on `dev`'s device. Runs `f` while its storage is borrowed.
pub(super) fn with_tensor<T: CudaDType, R>(
    t: &candle_core::Tensor,
    op: &'static str,
    f: impl FnOnce(CudaView<'_, T>) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cuda(s) => f(view::<T>(s, layout, op)?),
        _ => Err(candle_core::Error::Msg(format!(
            "{op}: a tensor it needs is not on the GPU"
        ))),
    }
}

/// `n` uninitialised elements on `dev` (every kernel here writes all of its output).
pub(super) fn alloc<T: DeviceRepr>(dev: &CudaDevice, n: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the caller launches a kernel that writes every element before anything reads it.
    unsafe { dev.alloc::<T>(n.max(1)) }
}

/// `n` zeroed elements on `dev`.
pub(super) fn zeros<T: DeviceRepr + ValidAsZeroBits>(
    dev: &CudaDevice,
    n: usize,
) -> Result<CudaSlice<T>> {
    dev.alloc_zeros::<T>(n.max(1))
}

/// Maps a launch error into candle's error type.
pub(super) fn launched<T>(
    r: std::result::Result<T, candle_core::cuda_backend::cudarc::driver::DriverError>,
    op: &'static str,
) -> Result<T> {
    r.map_err(|e| candle_core::Error::Msg(format!("{op}: CUDA launch failed: {e:?}")))
}

/// Runs `$run::<T>(args)` with T the Rust type of a storage's dtype (f32 or bf16).
macro_rules! by_dtype {
    ($dt:expr, $op:literal, $run:ident ( $($arg:expr),* )) => {
        match $dt {
            candle_core::DType::F32 => $run::<f32>($($arg),*),
            candle_core::DType::BF16 => $run::<half::bf16>($($arg),*),
            dt => Err(candle_core::Error::UnsupportedDTypeForOp(dt, $op)),
        }
    };
}
pub(super) use by_dtype;

/// What the kernels' element types need: a candle CUDA dtype that crosses to the device.
pub(super) trait Elem: CudaDType + DeviceRepr {}
impl<T: CudaDType + DeviceRepr> Elem for T {}
