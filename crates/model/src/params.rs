//! Named parameter tensors, addressed by their Hugging Face names, and the switch that makes them
//! trainable.

use crate::error::{Error, Result};
use crate::ops::Bf16Weight;
use crate::rng::Rng;
use crate::transformer::{Dense, Norm};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A parameter resolved by name when the model loads: forwards index by it instead of looking
/// names up, so a wrong name fails at load, not in the middle of a forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamId(usize);

/// The parameters of one encoder, in a fixed order (the order they are declared in).
#[derive(Clone, Debug, Default)]
pub struct Params {
    names: Vec<String>,
    tensors: Vec<Tensor>,
    trainable: Vec<bool>,
    index: HashMap<String, usize>,
    vars: Vec<Option<Var>>,
    /// The weights of the linear layers, which `pack_linears_bf16` packs.
    linear_weights: Vec<ParamId>,
    /// bf16 copies of linear weights for CPU inference, by parameter index.
    packed: Vec<Option<Arc<Bf16Weight>>>,
}

impl Params {
    pub fn insert(&mut self, name: &str, t: Tensor, trainable: bool) -> ParamId {
        let id = ParamId(self.names.len());
        self.index.insert(name.to_string(), id.0);
        self.names.push(name.to_string());
        self.tensors.push(t);
        self.trainable.push(trainable);
        self.vars.push(None);
        self.packed.push(None);
        id
    }

    /// Packs every linear layer's weight in bf16 for CPU inference (`ops::linear_bf16`).
    pub fn pack_linears_bf16(&mut self) -> Result<()> {
        for &id in &self.linear_weights {
            self.packed[id.0] = Some(Arc::new(Bf16Weight::pack(&self.tensors[id.0])?));
        }
        Ok(())
    }

    /// The bf16 packing of the weight `id`, if `pack_linears_bf16` made one.
    pub fn packed_bf16(&self, id: ParamId) -> Option<&Bf16Weight> {
        self.packed[id.0].as_deref()
    }

    /// Whether the linear layers run from bf16 packings (activations then stay in f32).
    pub fn has_packed_bf16(&self) -> bool {
        self.packed.iter().any(Option::is_some)
    }

    /// The tensor of a handle this set handed out.
    pub fn at(&self, id: ParamId) -> &Tensor {
        &self.tensors[id.0]
    }

    /// The tensor called `name`, if declared.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names
            .iter()
            .map(|s| s.as_str())
            .zip(self.tensors.iter())
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Turns every trainable tensor into a `Var` (gradients flow to it; an optimizer updates it in
    /// place) and returns them with their names, in declaration order. Calling it again returns
    /// the same variables.
    pub fn make_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        // Packed copies would go stale as the optimizer updates the weights.
        self.packed.iter_mut().for_each(|p| *p = None);
        let mut out = Vec::new();
        for i in 0..self.names.len() {
            if !self.trainable[i] {
                continue;
            }
            let var = match &self.vars[i] {
                Some(v) => v.clone(),
                None => {
                    let v = Var::from_tensor(&self.tensors[i])?;
                    self.tensors[i] = v.as_tensor().clone();
                    self.vars[i] = Some(v.clone());
                    v
                }
            };
            out.push((self.names[i].clone(), var));
        }
        Ok(out)
    }

    /// A copy that shares storage but records no gradients: inference on a model being trained.
    pub fn detached(&self) -> Params {
        Params {
            names: self.names.clone(),
            tensors: self.tensors.iter().map(|t| t.detach()).collect(),
            trainable: self.trainable.clone(),
            index: self.index.clone(),
            vars: vec![None; self.names.len()],
            linear_weights: self.linear_weights.clone(),
            packed: self.packed.clone(),
        }
    }

    /// The tensors in a map, for writing a safetensors file.
    pub fn to_map(&self) -> HashMap<String, Tensor> {
        self.iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect()
    }
}

/// Declares parameters and fills them either from a loaded weight file (checking name and shape)
/// or from a seeded random init (transformers' BERT init: N(0, 0.02) weights, zero biases,
/// LayerNorm at 1/0).
pub struct ParamSource<'a> {
    kind: SourceKind<'a>,
    dtype: DType,
    device: Device,
    pub params: Params,
}

enum SourceKind<'a> {
    File {
        path: &'a Path,
        tensors: HashMap<String, Tensor>,
        prefixes: &'a [&'a str],
    },
    Random {
        rng: Rng,
        std: f64,
    },
}

/// How a declared parameter starts when it is initialised at random.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    Normal,
    Zeros,
    Ones,
}

impl<'a> ParamSource<'a> {
    /// `prefixes` are alternative key prefixes the file may use (e.g. `bert.`).
    pub fn from_file(
        path: &'a Path,
        tensors: HashMap<String, Tensor>,
        prefixes: &'a [&'a str],
        dtype: DType,
    ) -> Self {
        let device = tensors
            .values()
            .next()
            .map(|t| t.device().clone())
            .unwrap_or(Device::Cpu);
        Self {
            kind: SourceKind::File {
                path,
                tensors,
                prefixes,
            },
            dtype,
            device,
            params: Params::default(),
        }
    }

    pub fn random(seed: u64, std: f64, dtype: DType, device: &Device) -> Self {
        Self {
            kind: SourceKind::Random {
                rng: Rng::new(seed),
                std,
            },
            dtype,
            device: device.clone(),
            params: Params::default(),
        }
    }

    /// Declares a required parameter of the given shape.
    pub fn take(&mut self, name: &str, shape: &[usize], init: Init) -> Result<ParamId> {
        Ok(self
            .declare(name, shape, init, true, true)?
            .expect("a required parameter is always declared"))
    }

    /// A linear layer: `name.weight` [out, inp] (normal init) and `name.bias` [out] (zeros).
    pub fn take_linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Dense> {
        let weight = self.take(&format!("{name}.weight"), &[out, inp], Init::Normal)?;
        self.params.linear_weights.push(weight);
        Ok(Dense {
            weight,
            bias: self.take(&format!("{name}.bias"), &[out], Init::Zeros)?,
        })
    }

    /// A LayerNorm: `name.weight` (ones) and `name.bias` (zeros), both [dim].
    pub fn take_norm(&mut self, name: &str, dim: usize) -> Result<Norm> {
        Ok(Norm {
            weight: self.take(&format!("{name}.weight"), &[dim], Init::Ones)?,
            bias: self.take(&format!("{name}.bias"), &[dim], Init::Zeros)?,
        })
    }

    /// The word embeddings (the padding row zeroed when random, as transformers does) and the
    /// absolute position table, which every architecture here starts with: (word, position).
    pub fn take_embeddings(&mut self, cfg: &crate::ModelConfig) -> Result<(ParamId, ParamId)> {
        let h = cfg.hidden_size;
        let word = "embeddings.word_embeddings.weight";
        let w = self.take(word, &[cfg.vocab_size, h], Init::Normal)?;
        self.zero_row_if_random(word, cfg.pad_token_id as usize)?;
        let p = self.take(
            "embeddings.position_embeddings.weight",
            &[cfg.max_position_embeddings, h],
            Init::Normal,
        )?;
        Ok((w, p))
    }

    /// Declares a parameter kept for saving but never trained (e.g. BERT's pooler), which may be
    /// absent from a file.
    pub fn take_frozen_optional(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
    ) -> Result<Option<ParamId>> {
        self.declare(name, shape, init, false, false)
    }

    fn declare(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
        required: bool,
        trainable: bool,
    ) -> Result<Option<ParamId>> {
        let t = match &mut self.kind {
            SourceKind::File {
                path,
                tensors,
                prefixes,
            } => {
                let found = std::iter::once(String::new())
                    .chain(prefixes.iter().map(|p| p.to_string()))
                    .find_map(|p| tensors.remove(&format!("{p}{name}")));
                let Some(t) = found else {
                    if required {
                        return Err(Error::Weights {
                            path: path.to_path_buf(),
                            msg: format!("missing tensor {name}"),
                        });
                    }
                    return Ok(None);
                };
                if t.dims() != shape {
                    return Err(Error::Weights {
                        path: path.to_path_buf(),
                        msg: format!("tensor {name} has shape {:?}, expected {shape:?}", t.dims()),
                    });
                }
                t.to_dtype(self.dtype)?
            }
            SourceKind::Random { rng, std } => {
                let n: usize = shape.iter().product();
                let v: Vec<f32> = match init {
                    Init::Normal => (0..n).map(|_| (rng.normal() * *std) as f32).collect(),
                    Init::Zeros => vec![0.0; n],
                    Init::Ones => vec![1.0; n],
                };
                Tensor::from_vec(v, shape, &self.device)?.to_dtype(self.dtype)?
            }
        };
        Ok(Some(self.params.insert(name, t, trainable)))
    }

    /// Zeroes one row of a random-initialised embedding (transformers zeroes the padding row).
    pub fn zero_row_if_random(&mut self, name: &str, row: usize) -> Result<()> {
        if let SourceKind::Random { .. } = self.kind {
            let i = self.params.index[name];
            let t = &self.params.tensors[i];
            let (rows, _) = t.dims2()?;
            if row < rows {
                let mut mask = vec![1f32; rows];
                mask[row] = 0.0;
                let mask = Tensor::from_vec(mask, (rows, 1), &self.device)?.to_dtype(self.dtype)?;
                self.params.tensors[i] = t.broadcast_mul(&mask)?;
            }
        }
        Ok(())
    }
}
