//! DistilBERT (Sanh et al., 2019, "DistilBERT, a distilled version of BERT"): BERT's post-norm
//! encoder with half the layers, no token types and no pooler, under transformers'
//! `DistilBertModel` parameter names (`transformer.layer.N.attention.q_lin`, `sa_layer_norm`,
//! `ffn.lin1`, …) and config names (`dim`, `n_layers`, `n_heads`, `hidden_dim`, read through
//! aliases in `ModelConfig`).

use crate::config::ModelConfig;
use crate::dropout::Dropout;
use crate::error::{Error, Result};
use crate::layers::{attention_dropout, dense, drop, norm};
use crate::ops::{attention, gelu_erf};
use crate::params::{ParamSource, Params};
use crate::Encoder;
use candle_core::Tensor;

pub struct DistilBert {
    cfg: ModelConfig,
    params: Params,
}

/// Key prefixes of DistilBERT checkpoints (`DistilBertForMaskedLM` and friends).
pub const PREFIXES: &[&str] = &["distilbert."];

impl DistilBert {
    pub fn build(cfg: &ModelConfig, mut src: ParamSource) -> Result<Self> {
        if cfg.sinusoidal_pos_embds {
            return Err(Error::Unsupported(
                "DistilBERT with sinusoidal_pos_embds".into(),
            ));
        }
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        src.take_embeddings(cfg)?;
        src.take_norm("embeddings.LayerNorm", h)?;
        for l in 0..cfg.num_hidden_layers {
            let p = format!("transformer.layer.{l}");
            for (name, out, inp) in [
                ("attention.q_lin", h, h),
                ("attention.k_lin", h, h),
                ("attention.v_lin", h, h),
                ("attention.out_lin", h, h),
                ("ffn.lin1", i, h),
                ("ffn.lin2", h, i),
            ] {
                src.take_linear(&format!("{p}.{name}"), out, inp)?;
            }
            for ln in ["sa_layer_norm", "output_layer_norm"] {
                src.take_norm(&format!("{p}.{ln}"), h)?;
            }
        }
        Ok(Self {
            cfg: cfg.clone(),
            params: src.params,
        })
    }
}

impl Encoder for DistilBert {
    crate::encoder_state!(DistilBert);

    fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let p = &self.params;
        let eps = cfg.layer_norm_eps;
        let (b, l) = ids.dims2()?;
        let (h, nh, dh) = (cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim());
        let word = p
            .get("embeddings.word_embeddings.weight")
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, h))?;
        let pos = p
            .get("embeddings.position_embeddings.weight")
            .narrow(0, 0, l)?;
        let x = norm(p, &word.broadcast_add(&pos)?, "embeddings.LayerNorm", eps)?;
        let mut x = drop(x, cfg.hidden_dropout_prob, &mut dropout)?;
        let scale = 1.0 / (dh as f64).sqrt();
        for layer in 0..cfg.num_hidden_layers {
            let pre = format!("transformer.layer.{layer}");
            let q = dense(p, &x, &format!("{pre}.attention.q_lin"))?;
            let k = dense(p, &x, &format!("{pre}.attention.k_lin"))?;
            let v = dense(p, &x, &format!("{pre}.attention.v_lin"))?;
            let attn_drop = attention_dropout(cfg.attention_probs_dropout_prob, &mut dropout);
            let ctx = attention(&q, &k, &v, mask, nh, scale, attn_drop)?;
            let a = dense(p, &ctx, &format!("{pre}.attention.out_lin"))?;
            let a = drop(a, cfg.hidden_dropout_prob, &mut dropout)?;
            let x1 = norm(p, &(a + &x)?, &format!("{pre}.sa_layer_norm"), eps)?;
            let f = gelu_erf(&dense(p, &x1, &format!("{pre}.ffn.lin1"))?)?;
            let f = dense(p, &f, &format!("{pre}.ffn.lin2"))?;
            let f = drop(f, cfg.hidden_dropout_prob, &mut dropout)?;
            x = norm(p, &(f + &x1)?, &format!("{pre}.output_layer_norm"), eps)?;
        }
        Ok(x)
    }
}
