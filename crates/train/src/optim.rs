//! AdamW (Loshchilov & Hutter, 2019) exactly as `torch.optim.AdamW(foreach=False)` computes it
//! in float32, with two parameter groups: weight decay on weight matrices and embeddings, none on
//! biases and LayerNorm weights. Global-norm gradient clipping as `clip_grad_norm_`.

use candle_core::{DType, Tensor, Var};

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
/// and sentence-transformers' `fit`).
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
}

pub struct AdamW {
    pub cfg: AdamWConfig,
    pub vars: Vec<(String, Var)>,
    /// First and second moments, per variable: f32 tensors of its shape on its device.
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken (Adam's t); the first step uses t = 1.
    pub t: u64,
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
        })
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to `vars[i]` (None: zero gradient,
    /// the update still applies decay and momentum, as PyTorch's dense update does). Runs on the
    /// parameters' device in f32, each operation rounding as PyTorch's single-tensor loop does.
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> candle_core::Result<()> {
        self.t += 1;
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        let step_size = (lr / bc1) as f32 as f64;
        let bc2_sqrt = bc2.sqrt() as f32;
        let b1w = (1.0 - c.beta1) as f32 as f64;
        let b2 = c.beta2 as f32 as f64;
        let omb2 = (1.0 - c.beta2) as f32 as f64;
        let eps = c.eps as f32 as f64;
        // A true division by √bc2 (not a multiply by its inverse), as PyTorch rounds; one scalar
        // per step on the parameters' device.
        let Some((_, first)) = self.vars.first() else {
            return Ok(());
        };
        let bc2_t = Tensor::new(bc2_sqrt, first.device())?;
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let p = var.as_tensor().detach().to_dtype(DType::F32)?;
            let g = match &grads[i] {
                Some(g) => g.detach().to_dtype(DType::F32)?,
                None => p.zeros_like()?,
            };
            let wd = if decays(name) { c.weight_decay } else { 0.0 };
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

/// `clip_grad_norm_(max_norm)`: returns the global L2 norm of all gradients before clipping and
/// scales them by `min(1, max_norm / (norm + 1e-6))`. `max_norm <= 0` disables clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> candle_core::Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter().flatten() {
        let n = g
            .to_dtype(DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?;
        sq += n;
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 {
        let coef = (max_norm / (norm + 1e-6)).min(1.0);
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
}
