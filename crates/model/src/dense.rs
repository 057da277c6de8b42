//! sentence-transformers' `Dense` module: a linear layer (and an activation) on the sentence
//! embedding, after pooling and before normalisation. Distillation uses it to project a student
//! into a teacher's dimension. On disk it is a module folder: `config.json` (`in_features`,
//! `out_features`, `bias`, `activation_function`) and `model.safetensors` (`linear.weight`
//! [out, in], `linear.bias`).

use crate::error::{read_json, Error, Result};
use crate::params::Params;
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Tanh,
}

impl Activation {
    /// The torch class name sentence-transformers writes in `activation_function`.
    pub fn torch_name(self) -> &'static str {
        match self {
            Activation::Identity => "torch.nn.modules.linear.Identity",
            Activation::Tanh => "torch.nn.modules.activation.Tanh",
        }
    }

    fn from_torch_name(name: &str) -> Option<Self> {
        match name.rsplit('.').next()? {
            "Identity" => Some(Activation::Identity),
            "Tanh" => Some(Activation::Tanh),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct DenseConfig {
    in_features: usize,
    out_features: usize,
    #[serde(default = "yes")]
    bias: bool,
    /// sentence-transformers' default when the key is absent is Tanh.
    activation_function: Option<String>,
    #[serde(default)]
    use_residual: bool,
    /// sentence-transformers 6 can point a Dense at token embeddings; only the sentence
    /// embedding (the classic place, after pooling) is supported.
    module_input_name: Option<String>,
}

fn yes() -> bool {
    true
}

const WEIGHT: &str = "linear.weight";
const BIAS: &str = "linear.bias";

#[derive(Clone, Debug)]
pub struct Dense {
    /// `linear.weight` [out, in] and `linear.bias` [out] (if any), trainable like the encoder's.
    pub params: Params,
    pub in_features: usize,
    pub out_features: usize,
    pub activation: Activation,
}

impl Dense {
    /// Loads the module folder `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg: DenseConfig = read_json(&cfg_path)?;
        let activation = match &cfg.activation_function {
            None => Activation::Tanh,
            Some(name) => Activation::from_torch_name(name).ok_or_else(|| {
                Error::invalid(
                    &cfg_path,
                    format!("activation_function {name} is not supported (Identity, Tanh are)"),
                )
            })?,
        };
        if cfg.use_residual {
            return Err(Error::invalid(&cfg_path, "use_residual is not supported"));
        }
        if let Some(input) = cfg.module_input_name.as_deref() {
            if input != "sentence_embedding" {
                return Err(Error::invalid(
                    &cfg_path,
                    format!(
                        "module_input_name \"{input}\": only a Dense on the sentence embedding \
                         (after pooling) is supported"
                    ),
                ));
            }
        }
        let weights_path = dir.join("model.safetensors");
        let mut tensors = crate::sentence_model::load_safetensors(&weights_path, device)?;
        let mut params = Params::default();
        let mut take = |name: &str, shape: &[usize]| -> Result<()> {
            let t = tensors
                .remove(name)
                .ok_or_else(|| Error::invalid(&weights_path, format!("no tensor {name}")))?;
            if t.dims() != shape {
                return Err(Error::invalid(
                    &weights_path,
                    format!(
                        "{name} has shape {:?}, config.json says {shape:?}",
                        t.dims()
                    ),
                ));
            }
            params.insert(name, t.to_dtype(DType::F32)?, true);
            Ok(())
        };
        take(WEIGHT, &[cfg.out_features, cfg.in_features])?;
        if cfg.bias {
            take(BIAS, &[cfg.out_features])?;
        }
        Ok(Self {
            params,
            in_features: cfg.in_features,
            out_features: cfg.out_features,
            activation,
        })
    }

    /// A new projection `in_features → out_features` with a bias and no activation, initialised
    /// as torch's `nn.Linear` is (weights and bias uniform in ±1/√in), from `seed`.
    pub fn projection(
        in_features: usize,
        out_features: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let bound = 1.0 / (in_features as f32).sqrt();
        let uniform = |n: usize, stream: u64| -> Vec<f32> {
            (0..n as u64)
                .map(|i| (crate::rng::hash_uniform(seed ^ stream, i) * 2.0 - 1.0) * bound)
                .collect()
        };
        let mut params = Params::default();
        let w = uniform(in_features * out_features, 0x5EED_0001);
        params.insert(
            WEIGHT,
            Tensor::from_vec(w, (out_features, in_features), device)?,
            true,
        );
        let b = uniform(out_features, 0x5EED_0002);
        params.insert(BIAS, Tensor::from_vec(b, out_features, device)?, true);
        Ok(Self {
            params,
            in_features,
            out_features,
            activation: Activation::Identity,
        })
    }

    /// [B, in] → [B, out].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.params.get(WEIGHT).expect("declared at construction");
        let mut y = x.matmul(&w.t()?)?;
        if let Some(b) = self.params.get(BIAS) {
            y = y.broadcast_add(b)?;
        }
        Ok(match self.activation {
            Activation::Identity => y,
            Activation::Tanh => y.tanh()?,
        })
    }

    pub fn detached(&self) -> Self {
        Self {
            params: self.params.detached(),
            ..self.clone()
        }
    }

    /// Writes the module folder `dir` (created).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let cfg = serde_json::json!({
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.params.get(BIAS).is_some(),
            "activation_function": self.activation.torch_name(),
        });
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&cfg).unwrap_or_default(),
        )
        .map_err(|e| Error::io(&path, e))?;
        crate::save::write_params(&self.params, &dir.join("model.safetensors"), "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_and_forward() {
        let d = tempfile::tempdir().unwrap();
        let dense = Dense::projection(4, 3, 7, &Device::Cpu).unwrap();
        let w = dense.params.get(WEIGHT).unwrap().to_vec2::<f32>().unwrap();
        assert!(w.iter().flatten().all(|v| v.abs() <= 0.5));
        dense.save(d.path()).unwrap();
        let back = Dense::load(d.path(), &Device::Cpu).unwrap();
        assert_eq!(back.activation, Activation::Identity);
        let x = Tensor::new(&[[1f32, 2.0, 3.0, 4.0]], &Device::Cpu).unwrap();
        let a = dense.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        let b = back.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(a, b);
        // By hand: W x + b.
        let bias = dense.params.get(BIAS).unwrap().to_vec1::<f32>().unwrap();
        for (o, row) in w.iter().enumerate() {
            let want: f32 = row
                .iter()
                .zip([1f32, 2.0, 3.0, 4.0])
                .map(|(w, x)| w * x)
                .sum::<f32>()
                + bias[o];
            assert!((a[0][o] - want).abs() < 1e-6);
        }
    }

    #[test]
    fn a_missing_tensor_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            r#"{"in_features": 4, "out_features": 3, "bias": true}"#,
        )
        .unwrap();
        let p = Params::default();
        crate::save::write_params(&p, &d.path().join("model.safetensors"), "").unwrap();
        let e = Dense::load(d.path(), &Device::Cpu).unwrap_err().to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("linear.weight"),
            "{e}"
        );
    }
}
