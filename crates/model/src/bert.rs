//! BERT (Devlin et al., 2019), which also covers MiniLM and the all-MiniLM-* models: the same
//! graph as transformers' `BertModel` with eager attention, weights addressed by its names.
//!
//! RoBERTa (Liu et al., 2019) and XLM-RoBERTa (Conneau et al., 2020) are this graph with the
//! same parameter names (under a `roberta.` prefix in their checkpoints) and one difference:
//! position ids start after the padding index and are computed from the ids
//! (`RobertaEmbeddings.create_position_ids_from_input_ids`); their single token type is row 0.

use crate::config::ModelConfig;
use crate::error::Result;
use crate::params::{Init, ParamId, ParamSource, Params};
use crate::transformer::{positions_from_ids, take_layers, Embeddings, LayerNames, Transformer};
use candle_core::Tensor;

/// BERT's embeddings: word + absolute position + token type 0.
#[derive(Clone)]
pub struct BertEmbeddings {
    word: ParamId,
    position: ParamId,
    token_type: ParamId,
}

pub type Bert = Transformer<BertEmbeddings>;

/// Alternative key prefixes found in BERT checkpoints (`BertForPreTraining` and friends).
pub const PREFIXES: &[&str] = &["bert."];
/// … and in RoBERTa / XLM-RoBERTa checkpoints (`RobertaForMaskedLM` and friends).
pub const ROBERTA_PREFIXES: &[&str] = &["roberta."];

const LAYER: LayerNames = LayerNames {
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attention_out: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    output_norm: "output.LayerNorm",
    norms_last: false,
};

/// The model types that share BERT's graph but number positions RoBERTa's way.
pub fn roberta_positions(model_type: &str) -> bool {
    matches!(model_type, "roberta" | "xlm-roberta" | "camembert")
}

/// Declares every parameter, in transformers' order, and fills them from `src`.
pub fn build(cfg: &ModelConfig, mut src: ParamSource) -> Result<Bert> {
    let h = cfg.hidden_size;
    let (word, position) = src.take_embeddings(cfg)?;
    let token_type = src.take(
        "embeddings.token_type_embeddings.weight",
        &[cfg.type_vocab_size, h],
        Init::Normal,
    )?;
    let embedding_norm = src.take_norm("embeddings.LayerNorm", h)?;
    let layers = take_layers(&mut src, cfg, "encoder.layer", &LAYER)?;
    src.take_frozen_optional("pooler.dense.weight", &[h, h], Init::Normal)?;
    src.take_frozen_optional("pooler.dense.bias", &[h], Init::Zeros)?;
    Ok(Transformer {
        cfg: cfg.clone(),
        params: src.params,
        embeddings: BertEmbeddings {
            word,
            position,
            token_type,
        },
        embedding_norm,
        layers,
    })
}

impl Embeddings for BertEmbeddings {
    fn embed(&self, p: &Params, cfg: &ModelConfig, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let h = cfg.hidden_size;
        let word = p
            .at(self.word)
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, h))?;
        let table = p.at(self.position);
        // Sentence embeddings use one segment: token type 0.
        let typ = p.at(self.token_type).narrow(0, 0, 1)?;
        Ok(if roberta_positions(&cfg.model_type) {
            let pos = table
                .index_select(&positions_from_ids(ids, cfg.pad_token_id)?, 0)?
                .reshape((b, l, h))?;
            (word + pos)?.broadcast_add(&typ)?
        } else {
            word.broadcast_add(&table.narrow(0, 0, l)?.broadcast_add(&typ)?)?
        })
    }
}
