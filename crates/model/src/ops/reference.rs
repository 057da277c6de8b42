//! Every fused op composed from candle ops that have a backward pass on every device.
//!
//! This is what runs where no fused kernel exists (CUDA, bf16), and the oracle the fused kernels
//! are tested against. Mixed precision follows PyTorch autocast: in bf16/f16, matrix multiplies
//! run in the input's dtype while LayerNorm statistics and softmax run in f32 and are cast back.

use candle_core::{DType, Result, Tensor, D};

/// The dtype reductions run in: f32 for half types, the input's own otherwise.
fn wide(dtype: DType) -> DType {
    match dtype {
        DType::BF16 | DType::F16 => DType::F32,
        d => d,
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let xw = x.to_dtype(wide(x.dtype()))?;
    // The shift by the row max does not change the result, so it needs no gradient.
    let max = xw.max_keepdim(D::Minus1)?.detach();
    let e = xw.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?
        .to_dtype(x.dtype())
}

/// Exact GELU, `x·Φ(x)` with Φ(x) = (1 + erf(x/√2))/2, composed from `erf` (whose backward is
/// exact) rather than candle's `gelu_erf`, whose backward rounds 1/√(2π) to six digits.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    let cdf = ((x * std::f64::consts::FRAC_1_SQRT_2)?.erf()? + 1.0)? * 0.5;
    x * cdf?
}

/// LayerNorm over the last dimension with affine weight and bias (biased variance, as PyTorch).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let dt = wide(x.dtype());
    let xw = x.to_dtype(dt)?;
    let mean = xw.mean_keepdim(D::Minus1)?;
    let xc = xw.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xhat = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xhat.broadcast_mul(&w.to_dtype(dt)?)?
        .broadcast_add(&b.to_dtype(dt)?)?
        .to_dtype(x.dtype())
}

/// `softmax(scale · scores + bias)`, bias 0 for keys with mask 1 and the most negative f32 for
/// keys with mask 0. `scores`: [B, …, Lk]; `mask`: [B, Lk].
pub fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let dt = wide(scores.dtype());
    let (b, lk) = mask.dims2()?;
    let mut shape = vec![b];
    shape.extend(std::iter::repeat_n(1, scores.rank() - 2));
    shape.push(lk);
    let m = mask.to_dtype(dt)?;
    let bias = ((m.ones_like()? - m)? * f32::MIN as f64)?.reshape(shape)?;
    softmax_last_dim(&(scores.to_dtype(dt)? * scale)?.broadcast_add(&bias)?)?
        .to_dtype(scores.dtype())
}

/// `x·Wᵀ + b` over the last dimension of `x`, W in PyTorch's [out, in] layout; W and b are cast
/// to x's dtype (f32 master weights under bf16 compute).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let k = dims[dims.len() - 1];
    let w = w.to_dtype(x.dtype())?;
    let y = x
        .reshape((x.elem_count() / k, k))?
        .matmul(&w.t()?)?
        .broadcast_add(&b.to_dtype(x.dtype())?)?;
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = w.dim(0)?;
    y.reshape(out)
}

/// Dropout as `x · mask` with the mask tensor of `seed` (`dropout::mask_tensor`).
pub fn dropout(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let mask = super::dropout::mask_tensor(seed, p, x.shape(), x.device())?;
    x * mask.to_dtype(x.dtype())?
}

/// Multi-head attention as the fused kernel computes it (`super::attention`); the gradient
/// also flows to a tracked bias.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spec: &super::AttentionSpec,
) -> Result<Tensor> {
    let (b, l, h) = q.dims3()?;
    if let Some(w) = spec.window {
        let win = window_bias(spec.heads, l, w, q)?;
        let bias = match spec.bias {
            Some(bias) => (bias + win)?,
            None => win,
        };
        let spec = super::AttentionSpec {
            window: None,
            bias: Some(&bias),
            ..*spec
        };
        return attention(q, k, v, &spec);
    }
    let heads = spec.heads;
    let dh = h / heads;
    let split = |t: &Tensor| t.reshape((b, l, heads, dh))?.transpose(1, 2)?.contiguous();
    let scores = split(q)?.matmul(&split(k)?.t()?)?;
    let mut p = match spec.bias {
        None => masked_softmax(&scores, spec.mask, spec.scale)?,
        Some(bias) => {
            let bias = bias.to_dtype(q.dtype())?.unsqueeze(0)?;
            let s = (scores * spec.scale)?.broadcast_add(&bias)?;
            masked_softmax(&s, spec.mask, 1.0)?
        }
    };
    if let Some((dp, seed)) = spec.dropout {
        p = dropout(&p, dp, seed)?;
    }
    p.matmul(&split(v)?)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, l, h))
}

/// The bias [heads, L, L] of a local window of `half` keys either side: 0 within it, half the
/// most negative float outside, in `like`'s dtype. transformers' ModernBERT adds the most
/// negative float itself; half of it gives the same probabilities (e^-huge is 0 either way) and
/// stays finite in bf16, where f32::MIN rounds to −inf and a row with no key in its window would
/// turn to NaN.
pub fn window_bias(heads: usize, l: usize, half: usize, like: &Tensor) -> Result<Tensor> {
    let mut one = vec![0f32; l * l];
    for q in 0..l {
        for k in 0..l {
            if q.abs_diff(k) > half {
                one[q * l + k] = f32::MIN / 2.0;
            }
        }
    }
    let one = Tensor::from_vec(one, (1, l, l), like.device())?;
    one.broadcast_as((heads, l, l))?
        .contiguous()?
        .to_dtype(like.dtype())
}

/// Rotary position embeddings on `x` [B, L, heads·d]: x·cos + rot(x)·sin with rot(x) = (−x₂, x₁)
/// for the halves of each head, the tables of the first L positions.
pub fn rotary(x: &Tensor, t: &super::RotaryTables, heads: usize) -> Result<Tensor> {
    let (b, l, h) = x.dims3()?;
    let d = h / heads;
    let x4 = x.reshape((b, l, heads, d))?;
    let x1 = x4.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x4.narrow(D::Minus1, d / 2, d / 2)?;
    let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    let table = |v: &[f32]| -> Result<Tensor> {
        Tensor::from_slice(&v[..l * d], (1, l, 1, d), x.device())?.to_dtype(x.dtype())
    };
    let (cos, sin) = (table(&t.cos)?, table(&t.sin)?);
    (x4.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?)?.reshape((b, l, h))
}

/// SwiGLU: SiLU(gate) · up.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.silu()? * up
}

/// GeGLU: the last dimension holds [a, b]; GELU(a) · b.
pub fn geglu(x: &Tensor) -> Result<Tensor> {
    let n = x.dim(D::Minus1)? / 2;
    gelu_erf(&x.narrow(D::Minus1, 0, n)?)? * x.narrow(D::Minus1, n, n)?
}
