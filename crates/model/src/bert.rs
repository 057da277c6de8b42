//! BERT (Devlin et al., 2019), which also covers MiniLM and the all-MiniLM-* models: the same
//! graph as transformers' `BertModel` with eager attention, weights addressed by its names.
//!
//! RoBERTa (Liu et al., 2019) and XLM-RoBERTa (Conneau et al., 2020) are this graph with the
//! same parameter names (under a `roberta.` prefix in their checkpoints) and one difference:
//! position ids start after the padding index and are computed from the ids
//! (`RobertaEmbeddings.create_position_ids_from_input_ids`); their single token type is row 0.
//!
//! Every op here has a backward pass, so the same code serves inference and training.

use crate::config::ModelConfig;
use crate::dropout::Dropout;
use crate::error::Result;
use crate::layers::{attention_dropout, dense, drop, norm, positions_from_ids};
use crate::ops::{attention, gelu_erf};
use crate::params::{Init, ParamSource, Params};
use crate::Encoder;
use candle_core::Tensor;

pub struct Bert {
    cfg: ModelConfig,
    params: Params,
}

/// Alternative key prefixes found in BERT checkpoints (`BertForPreTraining` and friends).
pub const PREFIXES: &[&str] = &["bert."];
/// … and in RoBERTa / XLM-RoBERTa checkpoints (`RobertaForMaskedLM` and friends).
pub const ROBERTA_PREFIXES: &[&str] = &["roberta."];

/// The model types that share BERT's graph but number positions RoBERTa's way.
pub fn roberta_positions(model_type: &str) -> bool {
    matches!(model_type, "roberta" | "xlm-roberta" | "camembert")
}

impl Bert {
    /// Declares every parameter, in transformers' order, and fills them from `src`.
    pub fn build(cfg: &ModelConfig, mut src: ParamSource) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        src.take_embeddings(cfg)?;
        src.take(
            "embeddings.token_type_embeddings.weight",
            &[cfg.type_vocab_size, h],
            Init::Normal,
        )?;
        src.take_norm("embeddings.LayerNorm", h)?;
        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            for (name, out, inp) in [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", i, h),
                ("output.dense", h, i),
            ] {
                src.take_linear(&format!("{p}.{name}"), out, inp)?;
                if name == "attention.output.dense" || name == "output.dense" {
                    let ln = name.trim_end_matches("dense");
                    src.take_norm(&format!("{p}.{ln}LayerNorm"), h)?;
                }
            }
        }
        src.take_frozen_optional("pooler.dense.weight", &[h, h], Init::Normal)?;
        src.take_frozen_optional("pooler.dense.bias", &[h], Init::Zeros)?;
        Ok(Self {
            cfg: cfg.clone(),
            params: src.params,
        })
    }

    fn p(&self, name: &str) -> &Tensor {
        self.params.get(name)
    }

    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        dense(&self.params, x, name)
    }

    fn ln(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        norm(&self.params, x, name, self.cfg.layer_norm_eps)
    }

    fn drop(&self, x: Tensor, p: f64, dropout: &mut Option<&mut Dropout>) -> Result<Tensor> {
        drop(x, p, dropout)
    }
}

impl Encoder for Bert {
    crate::encoder_state!(Bert);

    fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, l) = ids.dims2()?;
        let (h, nh, dh) = (cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim());

        // Embeddings: word + absolute position + token type 0 (sentence embeddings use one segment).
        let word = self
            .p("embeddings.word_embeddings.weight")
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, h))?;
        let table = self.p("embeddings.position_embeddings.weight");
        let typ = self
            .p("embeddings.token_type_embeddings.weight")
            .narrow(0, 0, 1)?;
        let x = if roberta_positions(&cfg.model_type) {
            let pos = table
                .index_select(&positions_from_ids(ids, cfg.pad_token_id)?, 0)?
                .reshape((b, l, h))?;
            (word + pos)?.broadcast_add(&typ)?
        } else {
            word.broadcast_add(&table.narrow(0, 0, l)?.broadcast_add(&typ)?)?
        };
        let x = self.ln(&x, "embeddings.LayerNorm")?;
        let mut x = self.drop(x, cfg.hidden_dropout_prob, &mut dropout)?;

        let scale = 1.0 / (dh as f64).sqrt();

        for layer in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{layer}");
            let q = self.linear(&x, &format!("{p}.attention.self.query"))?;
            let k = self.linear(&x, &format!("{p}.attention.self.key"))?;
            let v = self.linear(&x, &format!("{p}.attention.self.value"))?;
            let attn_drop = attention_dropout(cfg.attention_probs_dropout_prob, &mut dropout);
            let ctx = attention(&q, &k, &v, mask, nh, scale, attn_drop)?;
            let a = self.linear(&ctx, &format!("{p}.attention.output.dense"))?;
            let a = self.drop(a, cfg.hidden_dropout_prob, &mut dropout)?;
            let x1 = self.ln(&(a + &x)?, &format!("{p}.attention.output.LayerNorm"))?;
            let i = gelu_erf(&self.linear(&x1, &format!("{p}.intermediate.dense"))?)?;
            let o = self.linear(&i, &format!("{p}.output.dense"))?;
            let o = self.drop(o, cfg.hidden_dropout_prob, &mut dropout)?;
            x = self.ln(&(o + &x1)?, &format!("{p}.output.LayerNorm"))?;
        }
        Ok(x)
    }
}
