//! The guide of GISTEmbed (`[loss] guide`): a frozen model whose embeddings of each batch decide
//! which in-batch candidates count as negatives (losses/gist_embed.rs). As in
//! sentence-transformers, a guide with the student's vocabulary and at least its max_seq_length
//! embeds the student's own token ids; any other guide tokenizes the texts itself (where
//! sentence-transformers decodes the student's tokens back to text first, pairtrain gives the
//! guide the texts as they are in the data).

use crate::step::TrainBatch;
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use model::{LoadOptions, SentenceModel};
use std::path::Path;

pub struct Guide {
    model: SentenceModel,
    /// The guide reads the student's token ids as they are.
    same_tokens: bool,
}

impl Guide {
    /// Loads the guide named by `spec` (folder or hub id) beside `student`, frozen.
    pub fn load(
        spec: &str,
        student: &SentenceModel,
        opts: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        let model = SentenceModel::load_on(Path::new(spec), opts, device)
            .with_context(|| format!("loading the guide model {spec}"))?;
        let same_tokens = model.tokenizer.inner().get_vocab(true)
            == student.tokenizer.inner().get_vocab(true)
            && model.max_seq_length >= student.max_seq_length
            && model.pad_id() == student.pad_id();
        Ok(Self { model, same_tokens })
    }

    /// The guide's embeddings of this rank's rows, per column (no gradient).
    pub fn embed(&self, batch: &TrainBatch) -> Result<Vec<Tensor>> {
        let m = &self.model;
        batch
            .columns
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                let e = if self.same_tokens {
                    m.embed_padded(m.encoder.as_ref(), &c.ids, &c.mask, None)?
                } else {
                    let rows = c.ids.dims()[0];
                    let texts: Vec<String> = batch.texts[ci][batch.offset..batch.offset + rows]
                        .iter()
                        .map(|t| m.prompted(t).into_owned())
                        .collect();
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    let ids = m.tokenizer.encode_batch(&refs)?;
                    let ids: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
                    m.embed_ids(&ids)?
                };
                Ok(e.detach())
            })
            .collect()
    }
}
