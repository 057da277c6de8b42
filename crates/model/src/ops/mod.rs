//! The differentiable ops the encoders are built from, and the one place that decides where
//! each runs.
//!
//! candle's stock `layer_norm` and `softmax_last_dim` have no backward, and composing ops
//! allocates a tensor per step. So each op has a fused CPU kernel with an exact backward (one
//! file each: `linear`, `layer_norm`, `softmax`, `gelu`, `attention`, `dropout`, `rotary`,
//! `geglu`, `swiglu`) and a composed
//! version in `reference` that runs on any device and is the oracle of the tests. The functions
//! below take the kernel for CPU tensors in f32/f64 and the reference for everything else
//! (CUDA, bf16). For bf16 inference on the CPU, `linear_bf16` multiplies bf16 packings of the
//! weights (on AMX tiles, `amx`, where the CPU has them).

#[cfg(feature = "cuda")]
pub mod adamw;
mod amx;
mod attention;
mod avx512_bf16;
#[cfg(feature = "cuda")]
mod cuda;
pub mod dropout;
mod geglu;
mod gelu;
mod gemm;
pub mod isa;
mod kernel;
mod layer_norm;
mod linear;
mod linear_bf16;
pub mod pool;
pub mod reference;
mod rotary;
mod softmax;
mod swiglu;

pub use kernel::{exp_f32, vectorized, Vectorized};
pub use linear_bf16::Bf16Weight;
pub use rotary::RotaryTables;

/// Which kernels the gemm crate runs for f32 multiplies here: "avx512f", "fma" (AVX2) or
/// "scalar".
pub fn f32_gemm_kernels() -> &'static str {
    match kernel::vector_level() {
        kernel::VectorLevel::Avx512 => "avx512f",
        kernel::VectorLevel::Avx2 => "fma",
        kernel::VectorLevel::Baseline => "scalar",
    }
}

/// Which multiply `--dtype bf16` linear layers take on this CPU: "amx", "avx512_bf16", or "f32"
/// (no bf16 dot products here, so the layers stay in f32).
pub fn bf16_kernel() -> &'static str {
    if amx::available() {
        "amx"
    } else if avx512_bf16::available() {
        "avx512_bf16"
    } else {
        "f32"
    }
}

use candle_core::{DType, Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

static REFERENCE_ONLY: AtomicBool = AtomicBool::new(false);

/// Sends every op through `reference`, on the CPU too, for the whole process: the composed path
/// (what CUDA runs) can then be checked against the PyTorch trajectories without a GPU.
pub fn set_reference_only(on: bool) {
    REFERENCE_ONLY.store(on, Ordering::SeqCst);
}

/// Whether the fused CPU kernel takes tensors shaped like `x` (and any weights of `x`'s dtype).
fn fused(x: &Tensor, weights: &[&Tensor]) -> bool {
    !REFERENCE_ONLY.load(Ordering::Relaxed)
        && x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && weights.iter().all(|w| w.dtype() == x.dtype())
}

/// Whether the CUDA kernel (ops/cuda) takes tensors shaped like `x`: f32 or bf16 on a GPU, in a
/// build with the `cuda` feature.
fn on_gpu(x: &Tensor, weights: &[&Tensor]) -> bool {
    cfg!(feature = "cuda")
        && !REFERENCE_ONLY.load(Ordering::Relaxed)
        && x.device().is_cuda()
        && matches!(x.dtype(), DType::F32 | DType::BF16)
        && weights.iter().all(|w| w.dtype() == x.dtype())
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if fused(x, &[]) {
        softmax::apply(x)
    } else {
        reference::softmax_last_dim(x)
    }
}

/// Dropout (scaled, inverted): each element zeroed with probability `p` by the counter-based mask
/// of `seed` (`dropout::mask_tensor`), the rest scaled by 1/(1-p); differentiable in `x`.
pub fn dropout(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    if p > 0.0 && (fused(x, &[]) || on_gpu(x, &[])) {
        dropout::apply(x, p, seed)
    } else {
        reference::dropout(x, p, seed)
    }
}

/// Exact GELU, `x·Φ(x)`, as BERT's `hidden_act = "gelu"`.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if fused(x, &[]) || on_gpu(x, &[]) {
        gelu::apply(x)
    } else {
        reference::gelu_erf(x)
    }
}

/// LayerNorm over the last dimension with affine weight and bias, differentiable in all three.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    if fused(x, &[w, b]) || on_gpu(x, &[w, b]) {
        layer_norm::apply(x, w, b, eps)
    } else {
        reference::layer_norm(x, w, b, eps)
    }
}

/// `softmax(scale · scores + bias)` over the last dimension, where `bias` is 0 for keys with
/// mask 1 and the most negative float for keys with mask 0. `scores`: [B, …, Lk]; `mask`:
/// [B, Lk]. Differentiable in `scores`.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    if fused(scores, &[]) {
        softmax::apply_masked(scores, mask, scale)
    } else {
        reference::masked_softmax(scores, mask, scale)
    }
}

/// `x·Wᵀ + b` over the last dimension of `x` (any rank), with W in PyTorch's [out, in] layout.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    if fused(x, &[w, b]) {
        linear::apply(x, w, b)
    } else {
        reference::linear(x, w, b)
    }
}

/// `x·Wᵀ + b` with the weight packed in bf16 (`Bf16Weight`) and x in f32 or bf16 (the output of
/// `gelu_linear_bf16`) on the CPU: bf16 products, f32 accumulation and output. Inference only
/// (no backward).
pub fn linear_bf16(x: &Tensor, w: &Bf16Weight, b: &Tensor) -> Result<Tensor> {
    linear_bf16::apply(x, w, b)
}

/// `gelu(x·Wᵀ + b)` with the weight packed in bf16, for input to another `linear_bf16` only: the
/// result may be bf16 (GELU and rounding fused into the multiply where AMX runs it).
pub fn gelu_linear_bf16(x: &Tensor, w: &Bf16Weight, b: &Tensor) -> Result<Tensor> {
    linear_bf16::apply_gelu(x, w, b)
}

/// What multi-head attention needs beside q, k and v.
#[derive(Clone, Copy, Debug)]
pub struct AttentionSpec<'a> {
    /// [B, L]: 1 for real tokens, 0 for padding (the same for queries and keys).
    pub mask: &'a Tensor,
    pub heads: usize,
    /// Multiplies q·kᵀ (1/√head_dim).
    pub scale: f64,
    /// [heads, L, L] added to the scaled scores of every batch element (MPNet's relative
    /// positions).
    pub bias: Option<&'a Tensor>,
    /// (p, seed): dropout on the attention probabilities, with the mask `dropout::mask_tensor`
    /// draws for the full [B, heads, L, L] shape.
    pub dropout: Option<(f64, u64)>,
    /// q, k and v are packed ([1, T, H], `crate::packing`) by this packing of `mask`: each
    /// sequence attends within itself; bias and dropout keep their padded layout.
    pub packing: Option<&'a crate::packing::Packing>,
    /// Local attention: query i attends to keys j with |i − j| ≤ this only (ModernBERT's sliding
    /// window, half its `local_attention`). The CPU kernel skips the other keys; elsewhere it
    /// becomes a [heads, L, L] bias.
    pub window: Option<usize>,
}

/// Multi-head scaled dot-product attention as BERT computes it. `q`, `k`, `v`: [B, L, H] with
/// head `i` in columns `i·H/heads ..` ([1, T, H] with a packing). Returns the context in q's
/// shape. Differentiable in q, k, v and a tracked bias.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, spec: &AttentionSpec) -> Result<Tensor> {
    let spec = AttentionSpec {
        dropout: spec.dropout.filter(|(p, _)| *p > 0.0),
        ..*spec
    };
    // The kernel treats the bias as a constant: a bias being trained takes the composed path,
    // which carries its gradient.
    let constant_bias = spec.bias.is_none_or(|b| !b.track_op());
    // A window as wide as the batch changes nothing.
    let l = spec.packing.map_or(q.dim(1)?, |pk| pk.max_len());
    let spec = AttentionSpec {
        window: spec.window.filter(|&w| w + 1 < l),
        ..spec
    };
    if let Some(w) = spec
        .window
        .filter(|_| !(fused(q, &[k, v]) && constant_bias))
    {
        // No windowed kernel here: the window as a bias, built once for all the layers that
        // share it.
        let win = window_bias(spec.heads, l, w, q)?;
        let bias = match spec.bias {
            Some(b) => (b + &win)?,
            None => win,
        };
        let spec = AttentionSpec {
            window: None,
            bias: Some(&bias),
            ..spec
        };
        return attention(q, k, v, &spec);
    }
    if let Some(pk) = spec
        .packing
        .filter(|_| !(fused(q, &[k, v]) && constant_bias))
    {
        // No packed kernel here (a GPU, bf16, a trained bias): the padded op on the batch
        // unpacked, which is also the packed kernel's reference.
        let padded = AttentionSpec {
            packing: None,
            ..spec
        };
        let ctx = attention(&pk.unpack(q)?, &pk.unpack(k)?, &pk.unpack(v)?, &padded)?;
        return pk.pack(&ctx);
    }
    if fused(q, &[k, v]) && constant_bias {
        attention::apply(q, k, v, &spec)
    } else if on_gpu(q, &[k, v]) && constant_bias && gpu_head_size(q, spec.heads) {
        #[cfg(feature = "cuda")]
        return attention::on_gpu::apply(q, k, v, &spec);
        #[cfg(not(feature = "cuda"))]
        unreachable!("on_gpu is false without the cuda feature")
    } else {
        reference::attention(q, k, v, &spec)
    }
}

/// `reference::window_bias` for q's dtype and device, kept for the next call: every local layer
/// of a forward asks for the same one.
fn window_bias(heads: usize, l: usize, w: usize, q: &Tensor) -> Result<Tensor> {
    type Key = (usize, usize, usize, DType, candle_core::DeviceLocation);
    static LAST: std::sync::Mutex<Option<(Key, Tensor)>> = std::sync::Mutex::new(None);
    let key = (heads, l, w, q.dtype(), q.device().location());
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, t)) = last.as_ref().filter(|(k, _)| *k == key) {
        return Ok(t.clone());
    }
    let t = reference::window_bias(heads, l, w, q)?;
    *last = Some((key, t.clone()));
    Ok(t)
}

/// Whether the CUDA attention kernels take the head size of `q` [B, L, H] split in `heads`.
fn gpu_head_size(q: &Tensor, heads: usize) -> bool {
    let h = q.dims().last().copied().unwrap_or(0);
    #[cfg(feature = "cuda")]
    return heads > 0 && h % heads == 0 && attention::on_gpu::supports(h / heads);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (h, heads);
        false
    }
}

/// Rotary position embeddings on `x` [B, L, heads·d] (q or k), from the tables of `t`.
pub fn rotary(x: &Tensor, t: &RotaryTables, heads: usize) -> Result<Tensor> {
    if fused(x, &[]) {
        rotary::apply(x, t)
    } else {
        reference::rotary(x, t, heads)
    }
}

/// SwiGLU: SiLU(gate) · up, elementwise.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if fused(gate, &[up]) {
        swiglu::apply(gate, up)
    } else {
        reference::swiglu(gate, up)
    }
}

/// GeGLU: GELU(a) · b for the halves [a, b] of the last dimension.
pub fn geglu(x: &Tensor) -> Result<Tensor> {
    if fused(x, &[]) {
        geglu::apply(x)
    } else {
        reference::geglu(x)
    }
}
