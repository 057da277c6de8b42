//! NomicBERT (Nussbaum et al., 2024, "Nomic Embed: Training a Reproducible Long Context Text
//! Embedder"; nomic-embed-text): BERT's post-LayerNorm layer with rotary positions (Su et al.,
//! 2021) in place of position embeddings, a SwiGLU feed-forward (Shazeer, 2020), and no biases
//! in the attention and feed-forward projections. Parameter names are the published checkpoints'
//! (`emb_ln`, `encoder.layers.N.attn.Wqkv`, `mlp.fc11` (up), `mlp.fc12` (gate), `mlp.fc2`,
//! `norm1`, `norm2`), which transformers' `NomicBertModel` also saves; config.json in
//! transformers 5's form (`hidden_size`, `rope_parameters`) or the checkpoints' own (GPT-2's
//! `n_embd`, `n_layer`, …, `rotary_emb_base`, the bias flags).

use crate::config::ModelConfig;
use crate::dropout::Dropout;
use crate::error::{Error, Result};
use crate::modernbert::{Lin, Ln};
use crate::ops::{attention, swiglu, AttentionSpec};
use crate::params::{Init, ParamId, ParamSource, Params};
use crate::rotary::Rotary;
use crate::transformer::{attention_dropout, drop};
use crate::Encoder;
use candle_core::{DType, Tensor};
use serde_json::Value;

/// Key prefixes of NomicBERT checkpoints (`NomicBertForMaskedLM` and friends).
pub const PREFIXES: &[&str] = &["nomic_bert."];

/// What NomicBERT's config.json adds to the fields every encoder has.
#[derive(Clone, Debug, PartialEq)]
pub struct NomicShape {
    pub theta: f64,
    /// Biases on the fused q/k/v projection and the attention output.
    pub qkv_bias: bool,
    pub fc1_bias: bool,
    pub fc2_bias: bool,
}

impl NomicShape {
    pub fn of(cfg: &ModelConfig) -> std::result::Result<Self, String> {
        let x = &cfg.extra;
        // The checkpoints' own config (GPT-2 names) defaults its bias flags to true.
        let own = x.contains_key("rotary_emb_base") || x.contains_key("prenorm");
        let flag = |k: &str| x.get(k).and_then(Value::as_bool).unwrap_or(own);
        if x.get("prenorm").and_then(Value::as_bool) == Some(true) {
            return Err("nomic_bert with prenorm = true is not supported (post-LN only)".into());
        }
        let fraction = x.get("rotary_emb_fraction").and_then(Value::as_f64);
        if own && fraction != Some(1.0) {
            return Err(format!(
                "nomic_bert rotary_emb_fraction {fraction:?} is not supported (only 1.0)"
            ));
        }
        for k in [
            "rotary_emb_interleaved",
            "parallel_block",
            "use_rms_norm",
            "causal",
        ] {
            if x.get(k).and_then(Value::as_bool) == Some(true) {
                return Err(format!("nomic_bert with {k} = true is not supported"));
            }
        }
        if let Some(d) = x.get("head_dim").and_then(Value::as_u64) {
            if d as usize * cfg.num_attention_heads != cfg.hidden_size {
                return Err(format!(
                    "nomic_bert head_dim {d} × {} heads is not hidden_size {} (not supported)",
                    cfg.num_attention_heads, cfg.hidden_size
                ));
            }
        }
        if x.get("rotary_scaling_factor").is_some_and(|v| !v.is_null()) {
            return Err("nomic_bert rotary_scaling_factor is not supported".into());
        }
        let theta = x
            .get("rope_parameters")
            .and_then(|r| r.get("rope_theta"))
            .or_else(|| x.get("rope_theta"))
            .or_else(|| x.get("rotary_emb_base"))
            .and_then(Value::as_f64)
            .unwrap_or(1000.0);
        Ok(Self {
            theta,
            qkv_bias: flag("qkv_proj_bias"),
            fc1_bias: flag("mlp_fc1_bias"),
            fc2_bias: flag("mlp_fc2_bias"),
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct Layer {
    qkv: Lin,
    o: Lin,
    attention_norm: Ln,
    up: Lin,
    gate: Lin,
    down: Lin,
    mlp_norm: Ln,
}

#[derive(Clone)]
pub struct NomicBert {
    cfg: ModelConfig,
    params: Params,
    tokens: ParamId,
    token_types: ParamId,
    embedding_norm: Ln,
    layers: Vec<Layer>,
    theta: f64,
}

pub fn build(cfg: &ModelConfig, mut src: ParamSource) -> Result<NomicBert> {
    let shape = NomicShape::of(cfg).map_err(Error::Unsupported)?;
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let tokens = src.take(
        "embeddings.word_embeddings.weight",
        &[cfg.vocab_size, h],
        Init::Normal,
    )?;
    let token_types = src.take(
        "embeddings.token_type_embeddings.weight",
        &[cfg.type_vocab_size.max(1), h],
        Init::Normal,
    )?;
    let embedding_norm = Ln::take(&mut src, "emb_ln", h, true)?;
    let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
    for l in 0..cfg.num_hidden_layers {
        let n = |part: &str| format!("encoder.layers.{l}.{part}");
        layers.push(Layer {
            qkv: Lin::take(&mut src, &n("attn.Wqkv"), 3 * h, h, shape.qkv_bias)?,
            o: Lin::take(&mut src, &n("attn.out_proj"), h, h, shape.qkv_bias)?,
            attention_norm: Ln::take(&mut src, &n("norm1"), h, true)?,
            up: Lin::take(&mut src, &n("mlp.fc11"), i, h, shape.fc1_bias)?,
            gate: Lin::take(&mut src, &n("mlp.fc12"), i, h, shape.fc1_bias)?,
            down: Lin::take(&mut src, &n("mlp.fc2"), h, i, shape.fc2_bias)?,
            mlp_norm: Ln::take(&mut src, &n("norm2"), h, true)?,
        });
    }
    Ok(NomicBert {
        cfg: cfg.clone(),
        params: src.params,
        tokens,
        token_types,
        embedding_norm,
        layers,
        theta: shape.theta,
    })
}

impl Encoder for NomicBert {
    crate::encoder_accessors!();

    fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let (cfg, p) = (&self.cfg, &self.params);
        let (b, l) = ids.dims2()?;
        let (h, heads) = (cfg.hidden_size, cfg.num_attention_heads);
        let eps = cfg.layer_norm_eps;
        let words = p
            .at(self.tokens)
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, h))?;
        // Token type 0 everywhere, as sentence-transformers passes none.
        let x = words.broadcast_add(&p.at(self.token_types).get(0)?)?;
        let x = self.embedding_norm.forward(p, &x, eps)?;
        let mut x = drop(x, cfg.hidden_dropout_prob, &mut dropout)?;
        if let Some(dt) = cfg.compute_dtype {
            x = x.to_dtype(dt)?;
        }
        let (mut x, packing, positions) = crate::packing::enter(cfg, mask, x)?;
        let rot = Rotary::at(cfg.head_dim(), self.theta, &positions);
        let scale = 1.0 / (cfg.head_dim() as f64).sqrt();
        for layer in &self.layers {
            let qkv = layer.qkv.forward(p, &x)?;
            let q = rot.apply(&qkv.narrow(2, 0, h)?, heads)?;
            let k = rot.apply(&qkv.narrow(2, h, h)?, heads)?;
            let v = qkv.narrow(2, 2 * h, h)?.contiguous()?;
            let spec = AttentionSpec {
                mask,
                heads,
                scale,
                bias: None,
                dropout: attention_dropout(cfg.attention_probs_dropout_prob, &mut dropout),
                packing: packing.as_ref(),
                window: None,
            };
            let a = layer.o.forward(p, &attention(&q, &k, &v, &spec)?)?;
            let a = drop(a, cfg.hidden_dropout_prob, &mut dropout)?;
            x = layer.attention_norm.forward(p, &(x + a)?, eps)?;
            // SwiGLU: fc2(silu(fc12(x)) · fc11(x)).
            let glu = swiglu(&layer.gate.forward(p, &x)?, &layer.up.forward(p, &x)?)?;
            let m = layer.down.forward(p, &glu)?;
            let m = drop(m, cfg.hidden_dropout_prob, &mut dropout)?;
            x = layer.mlp_norm.forward(p, &(x + m)?, eps)?;
        }
        if let Some(pk) = &packing {
            x = pk.unpack(&x)?;
        }
        Ok(if x.dtype() == DType::F32 {
            x
        } else {
            x.to_dtype(DType::F32)?
        })
    }
}
