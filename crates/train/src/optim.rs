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
    /// First and second moments, per variable, in its element order.
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    /// Steps taken (Adam's t); the first step uses t = 1.
    pub t: u64,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamWConfig) -> Self {
        let m = vars
            .iter()
            .map(|(_, v)| vec![0f32; v.elem_count()])
            .collect();
        let v2 = vars
            .iter()
            .map(|(_, v)| vec![0f32; v.elem_count()])
            .collect();
        Self {
            cfg,
            vars,
            m,
            v: v2,
            t: 0,
        }
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to `vars[i]` (None: zero gradient,
    /// the update still applies decay and momentum, as PyTorch's dense update does).
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> candle_core::Result<()> {
        self.t += 1;
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        let step_size = (lr / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let (b1w, b2, omb2, eps) = (
            (1.0 - c.beta1) as f32,
            c.beta2 as f32,
            (1.0 - c.beta2) as f32,
            c.eps as f32,
        );
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let shape = var.shape().clone();
            let mut p = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let g = match &grads[i] {
                Some(g) => g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
                None => vec![0f32; p.len()],
            };
            let wd = if decays(name) { c.weight_decay } else { 0.0 };
            let keep = (1.0 - lr * wd) as f32;
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            for j in 0..p.len() {
                p[j] *= keep;
                // torch.lerp for weight < 0.5: m + w·(g − m)
                m[j] += b1w * (g[j] - m[j]);
                v[j] = v[j] * b2 + omb2 * g[j] * g[j];
                let denom = v[j].sqrt() / bc2_sqrt + eps;
                p[j] += -step_size * m[j] / denom;
            }
            var.set(&Tensor::from_vec(p, shape, var.device())?)?;
        }
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
        let mut opt = AdamW::new(vec![("x.weight".into(), w.clone())], AdamWConfig::default());
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
