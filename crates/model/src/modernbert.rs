//! ModernBERT (Warner et al., 2024, "Smarter, Better, Faster, Longer: A Modern Bidirectional
//! Encoder for Fast, Memory Efficient, and Long Context Finetuning and Inference"): a
//! pre-LayerNorm encoder without biases, rotary positions (Su et al., 2021), a GeGLU
//! feed-forward (Shazeer, 2020), and attention that is global every `global_attn_every_n_layers`
//! layers and local (a window of `local_attention` tokens) in the others, each kind with its own
//! rotary base; a final LayerNorm. Parameter names are transformers' `ModernBertModel`'s
//! (`layers.N.attn.Wqkv`, `mlp.Wi`, …); config.json in either of transformers' forms
//! (`layer_types` + `rope_parameters`, or `global_attn_every_n_layers` + `global_rope_theta` /
//! `local_rope_theta`, as the published checkpoints have it).

use crate::config::ModelConfig;
use crate::dropout::Dropout;
use crate::error::{Error, Result};
use crate::ops::{attention, geglu, layer_norm, linear, AttentionSpec};
use crate::params::{Init, ParamId, ParamSource, Params};
use crate::rotary::Rotary;
use crate::transformer::{attention_dropout, drop};
use crate::Encoder;
use candle_core::{DType, Tensor};
use serde_json::Value;

/// Key prefixes of ModernBERT checkpoints (`ModernBertForMaskedLM` and friends).
pub const PREFIXES: &[&str] = &["model."];

/// What ModernBERT's config.json adds to the fields every encoder has.
#[derive(Clone, Debug, PartialEq)]
pub struct ModernBertShape {
    /// Per layer: global (full) attention, else local.
    pub global: Vec<bool>,
    /// Tokens a local layer sees on each side (half of `local_attention`).
    pub half_window: usize,
    pub theta_global: f64,
    pub theta_local: f64,
    pub norm_eps: f64,
    pub norm_bias: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub embedding_dropout: f64,
    pub attention_dropout: f64,
    pub mlp_dropout: f64,
}

impl ModernBertShape {
    pub fn of(cfg: &ModelConfig) -> std::result::Result<Self, String> {
        let x = &cfg.extra;
        let f = |k: &str, d: f64| x.get(k).and_then(Value::as_f64).unwrap_or(d);
        let b = |k: &str| x.get(k).and_then(Value::as_bool).unwrap_or(false);
        let layers = cfg.num_hidden_layers;
        let global = match x.get("layer_types").and_then(Value::as_array) {
            Some(types) => {
                if types.len() != layers {
                    return Err(format!(
                        "layer_types has {} entries for {layers} layers",
                        types.len()
                    ));
                }
                types
                    .iter()
                    .map(|t| match t.as_str() {
                        Some("full_attention") => Ok(true),
                        Some("sliding_attention") => Ok(false),
                        other => Err(format!("layer type {other:?} is not supported")),
                    })
                    .collect::<std::result::Result<_, _>>()?
            }
            None => {
                let every = x
                    .get("global_attn_every_n_layers")
                    .and_then(Value::as_u64)
                    .unwrap_or(3)
                    .max(1) as usize;
                (0..layers).map(|i| i % every == 0).collect()
            }
        };
        let theta = |kind: &str, old: &str, d: f64| {
            x.get("rope_parameters")
                .and_then(|r| r.get(kind))
                .and_then(|r| r.get("rope_theta"))
                .and_then(Value::as_f64)
                .unwrap_or_else(|| f(old, d))
        };
        for kind in ["full_attention", "sliding_attention"] {
            let t = x
                .get("rope_parameters")
                .and_then(|r| r.get(kind))
                .and_then(|r| r.get("rope_type"))
                .and_then(Value::as_str)
                .unwrap_or("default");
            if t != "default" {
                return Err(format!(
                    "rope_type {t:?} is not supported (only \"default\")"
                ));
            }
        }
        let act = x
            .get("hidden_activation")
            .and_then(Value::as_str)
            .unwrap_or("gelu");
        if act != "gelu" {
            return Err(format!(
                "hidden_activation {act:?} is not supported (only the exact erf \"gelu\")"
            ));
        }
        let local = x
            .get("local_attention")
            .and_then(Value::as_u64)
            .unwrap_or(128) as usize;
        Ok(Self {
            global,
            half_window: local / 2,
            theta_global: theta("full_attention", "global_rope_theta", 160_000.0),
            theta_local: theta("sliding_attention", "local_rope_theta", 10_000.0),
            norm_eps: f("norm_eps", 1e-5),
            norm_bias: b("norm_bias"),
            attention_bias: b("attention_bias"),
            mlp_bias: b("mlp_bias"),
            embedding_dropout: f("embedding_dropout", 0.0),
            attention_dropout: f("attention_dropout", 0.0),
            mlp_dropout: f("mlp_dropout", 0.0),
        })
    }
}

/// `name.bias` [dim] (zeros when random) if the config gives the layer one.
pub(crate) fn take_bias(
    src: &mut ParamSource,
    name: &str,
    dim: usize,
    bias: bool,
) -> Result<Option<ParamId>> {
    bias.then(|| src.take(&format!("{name}.bias"), &[dim], Init::Zeros))
        .transpose()
}

/// The bias, or zeros of `w`'s first dimension for a layer without one: the fused ops take a
/// bias always.
fn bias_or_zeros(p: &Params, bias: Option<ParamId>, w: &Tensor) -> Result<Tensor> {
    Ok(match bias {
        Some(b) => p.at(b).clone(),
        None => Tensor::zeros(w.dim(0)?, w.dtype(), w.device())?,
    })
}

/// A linear layer whose bias is optional.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lin {
    weight: ParamId,
    bias: Option<ParamId>,
}

impl Lin {
    pub(crate) fn take(
        src: &mut ParamSource,
        name: &str,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> Result<Self> {
        Ok(Self {
            weight: src.take(&format!("{name}.weight"), &[out, inp], Init::Normal)?,
            bias: take_bias(src, name, out, bias)?,
        })
    }

    pub(crate) fn forward(&self, p: &Params, x: &Tensor) -> Result<Tensor> {
        let w = p.at(self.weight);
        Ok(linear(x, w, &bias_or_zeros(p, self.bias, w)?)?)
    }
}

/// A LayerNorm whose bias is optional.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ln {
    weight: ParamId,
    bias: Option<ParamId>,
}

impl Ln {
    pub(crate) fn take(src: &mut ParamSource, name: &str, dim: usize, bias: bool) -> Result<Self> {
        Ok(Self {
            weight: src.take(&format!("{name}.weight"), &[dim], Init::Ones)?,
            bias: take_bias(src, name, dim, bias)?,
        })
    }

    pub(crate) fn forward(&self, p: &Params, x: &Tensor, eps: f64) -> Result<Tensor> {
        let w = p.at(self.weight);
        Ok(layer_norm(x, w, &bias_or_zeros(p, self.bias, w)?, eps)?)
    }
}

#[derive(Clone, Copy, Debug)]
struct Layer {
    /// None in the first layer: the embeddings' norm precedes it.
    attn_norm: Option<Ln>,
    wqkv: Lin,
    wo: Lin,
    mlp_norm: Ln,
    wi: Lin,
    mlp_wo: Lin,
}

#[derive(Clone)]
pub struct ModernBert {
    cfg: ModelConfig,
    shape: ModernBertShape,
    params: Params,
    tokens: ParamId,
    embedding_norm: Ln,
    layers: Vec<Layer>,
    final_norm: Ln,
}

pub fn build(cfg: &ModelConfig, mut src: ParamSource) -> Result<ModernBert> {
    let shape = ModernBertShape::of(cfg).map_err(Error::Unsupported)?;
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let tokens = src.take(
        "embeddings.tok_embeddings.weight",
        &[cfg.vocab_size, h],
        Init::Normal,
    )?;
    let embedding_norm = Ln::take(&mut src, "embeddings.norm", h, shape.norm_bias)?;
    let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
    for l in 0..cfg.num_hidden_layers {
        let n = |part: &str| format!("layers.{l}.{part}");
        layers.push(Layer {
            attn_norm: match l {
                0 => None,
                _ => Some(Ln::take(&mut src, &n("attn_norm"), h, shape.norm_bias)?),
            },
            wqkv: Lin::take(&mut src, &n("attn.Wqkv"), 3 * h, h, shape.attention_bias)?,
            wo: Lin::take(&mut src, &n("attn.Wo"), h, h, shape.attention_bias)?,
            mlp_norm: Ln::take(&mut src, &n("mlp_norm"), h, shape.norm_bias)?,
            wi: Lin::take(&mut src, &n("mlp.Wi"), 2 * i, h, shape.mlp_bias)?,
            mlp_wo: Lin::take(&mut src, &n("mlp.Wo"), h, i, shape.mlp_bias)?,
        });
    }
    let final_norm = Ln::take(&mut src, "final_norm", h, shape.norm_bias)?;
    Ok(ModernBert {
        cfg: cfg.clone(),
        shape,
        params: src.params,
        tokens,
        embedding_norm,
        layers,
        final_norm,
    })
}

impl Encoder for ModernBert {
    crate::encoder_accessors!();

    fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let (cfg, s, p) = (&self.cfg, &self.shape, &self.params);
        let (b, l) = ids.dims2()?;
        let (h, heads) = (cfg.hidden_size, cfg.num_attention_heads);
        let eps = s.norm_eps;
        let x = p
            .at(self.tokens)
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, h))?;
        let x = self.embedding_norm.forward(p, &x, eps)?;
        let mut x = drop(x, s.embedding_dropout, &mut dropout)?;
        if let Some(dt) = cfg.compute_dtype {
            x = x.to_dtype(dt)?;
        }
        let hd = cfg.head_dim();
        let (mut x, packing, positions) = crate::packing::enter(cfg, mask, x)?;
        let global = Rotary::at(hd, s.theta_global, &positions);
        let local = Rotary::at(hd, s.theta_local, &positions);
        let scale = 1.0 / (hd as f64).sqrt();
        for (layer, &is_global) in self.layers.iter().zip(&s.global) {
            let y = match &layer.attn_norm {
                Some(n) => n.forward(p, &x, eps)?,
                None => x.clone(),
            };
            let qkv = layer.wqkv.forward(p, &y)?;
            let rot = if is_global { &global } else { &local };
            let q = rot.apply(&qkv.narrow(2, 0, h)?, heads)?;
            let k = rot.apply(&qkv.narrow(2, h, h)?, heads)?;
            let v = qkv.narrow(2, 2 * h, h)?.contiguous()?;
            let spec = AttentionSpec {
                mask,
                heads,
                scale,
                bias: None,
                window: (!is_global).then_some(s.half_window),
                dropout: attention_dropout(s.attention_dropout, &mut dropout),
                packing: packing.as_ref(),
            };
            let ctx = attention(&q, &k, &v, &spec)?;
            let a = drop(
                layer.wo.forward(p, &ctx)?,
                s.attention_dropout,
                &mut dropout,
            )?;
            x = (x + a)?;
            let y = layer.mlp_norm.forward(p, &x, eps)?;
            let glu = geglu(&layer.wi.forward(p, &y)?)?;
            let glu = drop(glu, s.mlp_dropout, &mut dropout)?;
            x = (x + layer.mlp_wo.forward(p, &glu)?)?;
        }
        let mut out = self.final_norm.forward(p, &x, eps)?;
        if let Some(pk) = &packing {
            out = pk.unpack(&out)?;
        }
        Ok(if out.dtype() == DType::F32 {
            out
        } else {
            out.to_dtype(DType::F32)?
        })
    }
}
