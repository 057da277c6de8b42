//! AdamW (Loshchilov & Hutter, 2019) exactly as `torch.optim.AdamW(foreach=False)` computes it
//! in float32, with two parameter groups: weight decay on weight matrices and embeddings, none on
//! biases and LayerNorm weights. Global-norm gradient clipping as `clip_grad_norm_`.

use candle_core::{CpuStorage, DType, Storage, Tensor, Var};
use model::ops::pool::{par_chunks_mut, par_map, SharedMut};
use std::mem::MaybeUninit;

#[derive(Clone, Debug)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-6,
            weight_decay: 0.01,
        }
    }
}

/// Whether a parameter is decayed: biases and LayerNorm weights are not (the convention of BERT
/// and of transformers' Trainer, which sentence-transformers trains with). A LayerNorm is known
/// by its module's name, as the architectures spell it: `LayerNorm`, `layer_norm`, `attn_norm`,
/// `final_norm`, NomicBERT's `norm1`, `norm2` and `emb_ln`.
pub fn decays(name: &str) -> bool {
    if name.ends_with(".bias") {
        return false;
    }
    let module = name.rsplit_once('.').map_or(name, |(m, _)| m);
    let last = module
        .rsplit('.')
        .next()
        .unwrap_or(module)
        .to_ascii_lowercase();
    !(last.contains("norm") || last == "ln" || last.ends_with("_ln"))
}

pub struct AdamW {
    pub cfg: AdamWConfig,
    pub vars: Vec<(String, Var)>,
    /// First and second moments, per variable: f32 tensors of its shape on its device.
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken (Adam's t); the first step uses t = 1.
    pub t: u64,
    /// On a GPU: the update of every parameter in one launch (set up at the first step).
    #[cfg(feature = "cuda")]
    device: Option<model::ops::adamw::DeviceAdamW>,
}

/// The global gradient norm of a step: on the host, or still on the GPU (read with the loss).
pub enum GradNorm {
    Host(f64),
    /// A 1-element f64 tensor.
    Device(Tensor),
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamWConfig) -> candle_core::Result<Self> {
        let zeros = |v: &Var| Tensor::zeros(v.shape(), DType::F32, v.device());
        let m = vars
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<Result<_, _>>()?;
        let v2 = vars
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            cfg,
            vars,
            m,
            v: v2,
            t: 0,
            #[cfg(feature = "cuda")]
            device: None,
        })
    }

    /// Clips the gradients to the global norm `max_norm` (0: off) and takes one step; returns
    /// the norm before clipping. With the parameters on a GPU (f32), both run there in three
    /// launches and the norm stays on the device.
    pub fn clip_and_step(
        &mut self,
        grads: &mut [Option<Tensor>],
        lr: f64,
        max_norm: f64,
    ) -> candle_core::Result<GradNorm> {
        #[cfg(feature = "cuda")]
        if let Some(norm) = self.step_on_device(grads, lr, max_norm)? {
            return Ok(GradNorm::Device(norm));
        }
        let norm = clip_grad_norm(grads, max_norm)?;
        self.step(grads, lr)?;
        Ok(GradNorm::Host(norm))
    }

    /// The GPU form of `clip_and_step`, when every parameter and gradient is an f32 CUDA tensor.
    #[cfg(feature = "cuda")]
    fn step_on_device(
        &mut self,
        grads: &[Option<Tensor>],
        lr: f64,
        max_norm: f64,
    ) -> candle_core::Result<Option<Tensor>> {
        use model::ops::adamw::{Constants, DeviceAdamW, Param};
        let Some((_, first)) = self.vars.first() else {
            return Ok(None);
        };
        let candle_core::Device::Cuda(dev) = first.device().clone() else {
            return Ok(None);
        };
        let f32_on_gpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cuda();
        if !self.vars.iter().all(|(_, v)| f32_on_gpu(v.as_tensor()))
            || !grads.iter().flatten().all(f32_on_gpu)
        {
            return Ok(None);
        }
        if self.device.is_none() {
            let sizes: Vec<usize> = self.vars.iter().map(|(_, v)| v.elem_count()).collect();
            self.device = Some(DeviceAdamW::new(&dev, &sizes)?);
        }
        self.t += 1;
        let k = self.constants(lr, true);
        let k = Constants {
            keep_decay: k.keep,
            b1w: k.b1w,
            b2: k.b2,
            omb2: k.omb2,
            bc2_sqrt: k.bc2_sqrt,
            eps: k.eps,
            neg_step: k.neg_step,
        };
        let grads: Vec<Option<Tensor>> = grads
            .iter()
            .map(|g| g.as_ref().map(Tensor::contiguous).transpose())
            .collect::<candle_core::Result<_>>()?;
        let params: Vec<Param> = self
            .vars
            .iter()
            .enumerate()
            .map(|(i, (name, var))| Param {
                p: var.as_tensor(),
                g: grads[i].as_ref(),
                m: &self.m[i],
                v: &self.v[i],
                decay: decays(name),
            })
            .collect();
        let device = self.device.as_mut().expect("set up above");
        Ok(Some(device.step(&params, max_norm, k)?))
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to `vars[i]` (None: zero gradient,
    /// the update still applies decay and momentum, as PyTorch's dense update does). Runs on the
    /// parameters' device in f32, each operation rounding as PyTorch's single-tensor loop does.
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> candle_core::Result<()> {
        self.step_with(grads, lr, true)
    }

    /// `step`, with `fused = false` forcing the tensor-op version everywhere (the tests compare).
    fn step_with(
        &mut self,
        grads: &[Option<Tensor>],
        lr: f64,
        fused: bool,
    ) -> candle_core::Result<()> {
        self.t += 1;
        let c = &self.cfg;
        let k = self.constants(lr, true);
        let bc2_sqrt = k.bc2_sqrt;
        let (b1w, b2, omb2, eps) = (k.b1w as f64, k.b2 as f64, k.omb2 as f64, k.eps as f64);
        let step_size = -(k.neg_step as f64);
        // A true division by √bc2 (not a multiply by its inverse), as PyTorch rounds; one scalar
        // per step on the parameters' device.
        let Some((_, first)) = self.vars.first() else {
            return Ok(());
        };
        let bc2_t = Tensor::new(bc2_sqrt, first.device())?;
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let wd = if decays(name) { c.weight_decay } else { 0.0 };
            if fused {
                let k = self.constants(lr, wd != 0.0);
                let tensors = (var.as_tensor(), grads[i].as_ref(), &self.m[i], &self.v[i]);
                if let Some((p, m, v)) = update_cpu_f32(tensors, &k) {
                    let dev = var.device();
                    var.set(&Tensor::from_vec(p, var.shape(), dev)?)?;
                    self.m[i] = Tensor::from_vec(m, var.shape(), dev)?;
                    self.v[i] = Tensor::from_vec(v, var.shape(), dev)?;
                    continue;
                }
            }
            let p = var.as_tensor().detach().to_dtype(DType::F32)?;
            let g = match &grads[i] {
                Some(g) => g.detach().to_dtype(DType::F32)?,
                None => p.zeros_like()?,
            };
            let keep = (1.0 - lr * wd) as f32 as f64;
            let p = p.affine(keep, 0.0)?;
            // torch.lerp for weight < 0.5: m + w·(g − m)
            let m = ((&g - &self.m[i])?.affine(b1w, 0.0)? + &self.m[i])?;
            // addcmul_(g, g, value = 1 − β2): v·β2 + ((1 − β2)·g)·g
            let v = (self.v[i].affine(b2, 0.0)? + (g.affine(omb2, 0.0)? * &g)?)?;
            let denom = v.sqrt()?.broadcast_div(&bc2_t)?.affine(1.0, eps)?;
            let p = (p + (m.affine(-step_size, 0.0)? / &denom)?)?;
            var.set(&p.to_dtype(var.dtype())?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments by name (`m.{param}`, `v.{param}`) for a checkpoint's optimizer.safetensors.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.vars.len());
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.push((format!("m.{name}"), self.m[i].clone()));
            out.push((format!("v.{name}"), self.v[i].clone()));
        }
        out
    }

    /// Restores the moments from what `state` saved (any device; moved to the parameters') and
    /// the step count `t`. Every parameter's moments must be there with its shape.
    pub fn load_state(
        &mut self,
        state: &std::collections::HashMap<String, Tensor>,
        t: u64,
    ) -> Result<(), String> {
        let mut m = Vec::with_capacity(self.vars.len());
        let mut v = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            for (dst, key) in [(&mut m, format!("m.{name}")), (&mut v, format!("v.{name}"))] {
                let t = state.get(&key).ok_or_else(|| format!("no tensor {key}"))?;
                if t.dims() != var.dims() {
                    return Err(format!(
                        "{key} has shape {:?}, the parameter {:?}",
                        t.dims(),
                        var.dims()
                    ));
                }
                let t = t
                    .to_dtype(DType::F32)
                    .and_then(|t| t.to_device(var.device()))
                    .map_err(|e| format!("{key}: {e}"))?;
                dst.push(t);
            }
        }
        self.m = m;
        self.v = v;
        self.t = t;
        Ok(())
    }
}

/// The step's constants as the tensor version rounds them to f32 (also what the CUDA kernel of
/// the update takes, so that both move a parameter by the same bits).
#[derive(Clone, Copy, Debug)]
pub struct StepConstants {
    /// 1 − lr·weight_decay for a decayed parameter, 1 for the others.
    pub keep: f32,
    pub b1w: f32,
    pub b2: f32,
    pub omb2: f32,
    pub bc2_sqrt: f32,
    pub eps: f32,
    pub neg_step: f32,
}

impl AdamW {
    /// The constants of the current step (`t` as counted after it) with learning rate `lr`, for
    /// a parameter that is `decayed` or not.
    pub fn constants(&self, lr: f64, decayed: bool) -> StepConstants {
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        let wd = if decayed { c.weight_decay } else { 0.0 };
        StepConstants {
            keep: (1.0 - lr * wd) as f32,
            b1w: (1.0 - c.beta1) as f32,
            b2: c.beta2 as f32,
            omb2: (1.0 - c.beta2) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            eps: c.eps as f32,
            neg_step: -((lr / bc1) as f32),
        }
    }
}

/// The contiguous f32 values of a CPU tensor, or None.
fn cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let (a, b) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Some(f(&v[a..b])),
        _ => None,
    }
}

/// The AdamW update of one f32 parameter on the CPU in one parallel pass (the tensor version takes
/// a dozen, each a trip through memory): new (parameter, m, v), or None when a tensor is not a
/// contiguous f32 CPU tensor. Every operation is the tensor version's, in its order and f32
/// rounding (an affine map is `x·a + b` with b = 0 kept, as candle computes it), so the two give
/// the same bits.
fn update_cpu_f32(
    (p, g, m, v): (&Tensor, Option<&Tensor>, &Tensor, &Tensor),
    k: &StepConstants,
) -> Option<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    cpu_f32(p, |p| {
        cpu_f32(m, |m| {
            cpu_f32(v, |v| match g {
                Some(g) => cpu_f32(g, |g| update(p, Some(g), m, v, k)),
                None => Some(update(p, None, m, v, k)),
            })
        })
    })
    .flatten()
    .flatten()
    .flatten()
}

fn update(
    p: &[f32],
    g: Option<&[f32]>,
    m: &[f32],
    v: &[f32],
    k: &StepConstants,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    const CHUNK: usize = 1 << 14;
    let n = p.len();
    // Not zeroed first: every element is written below (a zeroing pass would cost as much as
    // the update itself).
    let (mut np, mut nm, mut nv) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (nm_ptr, nv_ptr) = (
        SharedMut(nm.spare_capacity_mut().as_mut_ptr()),
        SharedMut(nv.spare_capacity_mut().as_mut_ptr()),
    );
    par_chunks_mut(&mut np.spare_capacity_mut()[..n], CHUNK, |c, np| {
        let at = c * CHUNK;
        let end = at + np.len();
        // SAFETY: chunk c of the new moments, as of the new parameters: disjoint per task,
        // inside the capacity of n.
        let (nm, nv) = unsafe {
            (
                std::slice::from_raw_parts_mut(nm_ptr.get().add(at), end - at),
                std::slice::from_raw_parts_mut(nv_ptr.get().add(at), end - at),
            )
        };
        model::ops::vectorized(&mut Update {
            p: &p[at..end],
            g: g.map(|g| &g[at..end]),
            m: &m[at..end],
            v: &v[at..end],
            new_p: np,
            new_m: nm,
            new_v: nv,
            k,
        });
    });
    // SAFETY: the chunks above cover 0..n of each and wrote every element.
    unsafe {
        np.set_len(n);
        nm.set_len(n);
        nv.set_len(n);
    }
    (np, nm, nv)
}

/// One chunk of the update, compiled in the CPU's widest vectors.
struct Update<'a> {
    p: &'a [f32],
    g: Option<&'a [f32]>,
    m: &'a [f32],
    v: &'a [f32],
    new_p: &'a mut [MaybeUninit<f32>],
    new_m: &'a mut [MaybeUninit<f32>],
    new_v: &'a mut [MaybeUninit<f32>],
    k: &'a StepConstants,
}

impl model::ops::Vectorized for Update<'_> {
    #[inline(always)]
    fn run(&mut self) {
        let (p, g, m, v, k) = (self.p, self.g, self.m, self.v, self.k);
        let (np, nm, nv) = (&mut *self.new_p, &mut *self.new_m, &mut *self.new_v);
        for i in 0..p.len() {
            let gi = g.map_or(0.0, |g| g[i]);
            let pi = p[i] * k.keep + 0.0;
            let mi = ((gi - m[i]) * k.b1w + 0.0) + m[i];
            let vi = (v[i] * k.b2 + 0.0) + ((gi * k.omb2 + 0.0) * gi);
            let denom = (vi.sqrt() / k.bc2_sqrt) * 1.0 + k.eps;
            np[i].write(pi + ((mi * k.neg_step + 0.0) / denom));
            nm[i].write(mi);
            nv[i].write(vi);
        }
    }
}

/// Σ x² in f64 (each square exact) over chunks in parallel, the chunks' sums added in order so
/// that the result does not depend on how the threads split the work.
fn sum_of_squares(x: &[f32]) -> f64 {
    const CHUNK: usize = 1 << 16;
    let partials: Vec<f64> = par_map(x.len().div_ceil(CHUNK), |i| {
        let c = &x[i * CHUNK..x.len().min((i + 1) * CHUNK)];
        let mut k = SumOfSquares { x: c, sum: 0.0 };
        model::ops::vectorized(&mut k);
        k.sum
    });
    partials.iter().sum()
}

/// One chunk of `sum_of_squares`, in 32 f64 lanes (independent sums, so the loop vectorises).
struct SumOfSquares<'a> {
    x: &'a [f32],
    sum: f64,
}

impl model::ops::Vectorized for SumOfSquares<'_> {
    #[inline(always)]
    fn run(&mut self) {
        let mut lanes = [0f64; 32];
        let mut rows = self.x.chunks_exact(32);
        for row in &mut rows {
            for (l, &v) in lanes.iter_mut().zip(row) {
                *l += v as f64 * v as f64;
            }
        }
        let tail: f64 = rows.remainder().iter().map(|&v| v as f64 * v as f64).sum();
        self.sum = lanes.iter().sum::<f64>() + tail;
    }
}

/// `clip_grad_norm_(max_norm)`: returns the global L2 norm of all gradients before clipping and
/// scales them by `min(1, max_norm / (norm + 1e-6))`. `max_norm <= 0` disables clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> candle_core::Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter().flatten() {
        let n = match cpu_f32(g, sum_of_squares) {
            Some(n) => n,
            None => g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?,
        };
        sq += n;
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 {
        let coef = (max_norm / (norm + 1e-6)).min(1.0);
        // g · 1 is g: no pass over the gradients when they are within the norm.
        if coef == 1.0 {
            return Ok(norm);
        }
        for g in grads.iter_mut().flatten() {
            *g = (&*g * coef)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn decay_groups_follow_the_convention() {
        assert!(decays("encoder.layer.0.attention.self.query.weight"));
        assert!(decays("embeddings.word_embeddings.weight"));
        assert!(!decays("encoder.layer.0.attention.self.query.bias"));
        assert!(!decays("encoder.layer.0.output.LayerNorm.weight"));
        // ModernBERT's LayerNorms, as transformers' Trainer leaves them undecayed.
        assert!(!decays("layers.3.attn_norm.weight"));
        assert!(!decays("final_norm.weight"));
        assert!(decays("layers.3.attn.Wqkv.weight"));
        // NomicBERT's.
        assert!(!decays("emb_ln.weight"));
        assert!(!decays("encoder.layers.0.norm1.weight"));
        assert!(!decays("encoder.layers.0.norm2.weight"));
        assert!(decays("encoder.layers.0.mlp.fc11.weight"));
        assert!(decays("encoder.layers.0.attn.out_proj.weight"));
    }

    /// Two steps worked by hand from the update rule (lr 0 first, as a warmup schedule starts).
    #[test]
    fn adamw_update_by_hand() -> candle_core::Result<()> {
        let w = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0], &Device::Cpu)?)?;
        let mut opt = AdamW::new(vec![("x.weight".into(), w.clone())], AdamWConfig::default())?;
        let g = Tensor::new(&[0.5f32, -1.0], &Device::Cpu)?;
        opt.step(&[Some(g.clone())], 0.0)?;
        assert_eq!(w.as_tensor().to_vec1::<f32>()?, vec![1.0, -2.0]);
        opt.step(&[Some(g)], 0.1)?;
        // t = 2: m = 0.19·g, v = 0.001999·g², m̂ = m/0.19 = g, v̂ = v/0.001999 = g²,
        // p = p·(1 − 0.1·0.01) − 0.1·g/(|g| + 1e-6).
        let got = w.as_tensor().to_vec1::<f32>()?;
        let want = [
            1.0 * 0.999 - 0.1 * 0.5 / (0.5 + 1e-6),
            -2.0 * 0.999 + 0.1 * 1.0 / (1.0 + 1e-6),
        ];
        for (a, b) in got.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
        Ok(())
    }

    /// The one-pass CPU update and the tensor-op update give the same bits, step after step:
    /// decayed and undecayed parameters, a missing gradient, large and tiny values, and a size
    /// that spans several parallel chunks.
    #[test]
    fn fused_update_is_bit_identical_to_the_tensor_ops() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let make = || -> candle_core::Result<Vec<(String, Var)>> {
            Ok(vec![
                ("a.weight".into(), Var::randn(0f32, 1.0, (70_001,), &dev)?),
                ("a.bias".into(), Var::randn(0f32, 1e-3, (5, 7), &dev)?),
                (
                    "b.LayerNorm.weight".into(),
                    Var::randn(1f32, 0.1, (33,), &dev)?,
                ),
            ])
        };
        let vars = make()?;
        let twins: Vec<(String, Var)> = vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), Var::from_tensor(&v.as_tensor().copy()?)?)))
            .collect::<candle_core::Result<_>>()?;
        let mut fused = AdamW::new(vars.clone(), AdamWConfig::default())?;
        let mut plain = AdamW::new(twins.clone(), AdamWConfig::default())?;
        for step in 0..4 {
            let grads: Vec<Option<Tensor>> = vars
                .iter()
                .enumerate()
                .map(|(i, (_, v))| {
                    if i == 2 && step % 2 == 1 {
                        return Ok(None);
                    }
                    let scale = [1e-2, 1e-7, 3.0][i];
                    Ok(Some(Tensor::randn(0f32, scale, v.shape(), &dev)?))
                })
                .collect::<candle_core::Result<_>>()?;
            let lr = [0.0, 2e-5, 1e-3, 0.5][step];
            // Else the comparison would be of the tensor version with itself.
            for (t, g) in vars.iter().zip(&grads) {
                assert!(cpu_f32(t.1.as_tensor(), |_| ()).is_some());
                assert!(g.as_ref().is_none_or(|g| cpu_f32(g, |_| ()).is_some()));
            }
            fused.step_with(&grads, lr, true)?;
            plain.step_with(&grads, lr, false)?;
            for ((name, a), (_, b)) in vars.iter().zip(&twins) {
                let bits = |t: &Tensor| -> candle_core::Result<Vec<u32>> {
                    Ok(t.flatten_all()?
                        .to_vec1::<f32>()?
                        .iter()
                        .map(|x| x.to_bits())
                        .collect())
                };
                assert_eq!(
                    bits(a.as_tensor())?,
                    bits(b.as_tensor())?,
                    "{name} at step {step}"
                );
            }
            for ((kx, tx), (ky, ty)) in fused.state().into_iter().zip(plain.state()) {
                assert_eq!(kx, ky);
                let (tx, ty) = (tx.flatten_all()?, ty.flatten_all()?);
                assert_eq!(
                    tx.to_vec1::<f32>()?,
                    ty.to_vec1::<f32>()?,
                    "{kx} at step {step}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn clipping_scales_to_max_norm() -> candle_core::Result<()> {
        let mut g = vec![
            Some(Tensor::new(&[3.0f32], &Device::Cpu)?),
            None,
            Some(Tensor::new(&[4.0f32], &Device::Cpu)?),
        ];
        let n = clip_grad_norm(&mut g, 1.0)?;
        assert!((n - 5.0).abs() < 1e-12);
        let a = g[0].as_ref().unwrap().to_vec1::<f32>()?[0];
        assert!((a as f64 - 3.0 / (5.0 + 1e-6)).abs() < 1e-7);
        Ok(())
    }

    /// The fused sum of squares (CPU f32) against the tensor path it replaces (f64 squares summed
    /// by candle), on a gradient of several chunks with a ragged end; a gradient within the norm
    /// is left as it is.
    #[test]
    fn fused_norm_matches_the_tensor_path() -> candle_core::Result<()> {
        let g = Tensor::randn(0f32, 1e-3, 300_007, &Device::Cpu)?;
        let want = g
            .to_dtype(DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?;
        let got = cpu_f32(&g, sum_of_squares).expect("a CPU f32 tensor");
        assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
        let mut grads = vec![Some(g.clone())];
        let norm = clip_grad_norm(&mut grads, 1e3)?;
        assert!((norm - want.sqrt()).abs() <= 1e-12 * norm);
        let same = grads[0]
            .as_ref()
            .unwrap()
            .eq(&g)?
            .min_all()?
            .to_scalar::<u8>()?;
        assert_eq!(same, 1);
        Ok(())
    }
}
