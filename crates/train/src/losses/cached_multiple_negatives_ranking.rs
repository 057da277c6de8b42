//! CachedMultipleNegativesRankingLoss: MultipleNegativesRankingLoss with GradCache (Gao et al.,
//! 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup"). The batch's
//! negatives are those of the full batch, while activation memory is that of one mini-batch:
//!
//! 1. embed every mini-batch of every column without a gradient graph;
//! 2. compute the loss on the full score matrix and its gradient with respect to the embeddings;
//! 3. embed each mini-batch again with a graph and backpropagate its slice of that gradient.
//!
//! Each mini-batch's second pass replays the dropout stream of its first, so both passes draw the
//! same masks and the result equals the uncached gradient.

use super::{grads_of, ranking_loss, scalar, symmetric_ranking_loss, Loss, LossOutput, TrainBatch};
use anyhow::Result;
use candle_core::{Tensor, Var};
use model::{Dropout, SentenceModel};

pub struct CachedMultipleNegativesRankingLoss {
    pub scale: f64,
    pub mini_batch_size: usize,
    /// Use the symmetric loss on the cached embeddings.
    pub symmetric: bool,
}

impl Loss for CachedMultipleNegativesRankingLoss {
    fn name(&self) -> &'static str {
        "CachedMultipleNegativesRankingLoss"
    }

    fn compute(
        &self,
        model: &SentenceModel,
        vars: &[(String, Var)],
        batch: &TrainBatch,
        dropout: &mut Dropout,
    ) -> Result<LossOutput> {
        let rows = batch.rows();
        let mb = self.mini_batch_size.max(1);
        let frozen = model.encoder.detached();
        // (column, start, len, dropout state before the first pass)
        let mut slices = Vec::new();
        let mut embs = Vec::with_capacity(batch.columns.len());
        for (c, col) in batch.columns.iter().enumerate() {
            let mut parts = Vec::new();
            for start in (0..rows).step_by(mb) {
                let len = mb.min(rows - start);
                slices.push((c, start, len, dropout.clone()));
                let ids = col.ids.narrow(0, start, len)?;
                let mask = col.mask.narrow(0, start, len)?;
                parts.push(model.embed_padded(frozen.as_ref(), &ids, &mask, Some(dropout))?);
            }
            embs.push(Var::from_tensor(&Tensor::cat(&parts, 0)?)?);
        }
        let after_first_pass = dropout.clone();

        let leaves: Vec<Tensor> = embs.iter().map(|v| v.as_tensor().clone()).collect();
        let texts: Vec<&[String]> = batch.columns.iter().map(|c| c.texts.as_slice()).collect();
        let loss = if self.symmetric {
            symmetric_ranking_loss(&leaves, &texts, self.scale)?
        } else {
            ranking_loss(&leaves, &texts, self.scale)?
        };
        let emb_grads = loss.backward()?;
        let loss_value = scalar(&loss)?;
        drop(loss);

        let mut total: Vec<Option<Tensor>> = vec![None; vars.len()];
        for (c, start, len, replay) in slices {
            let col = &batch.columns[c];
            let Some(g) = emb_grads.get(embs[c].as_tensor()) else {
                continue;
            };
            let g = g.narrow(0, start, len)?.detach();
            let mut d = replay;
            let ids = col.ids.narrow(0, start, len)?;
            let mask = col.mask.narrow(0, start, len)?;
            let e = model.embed_padded(model.encoder.as_ref(), &ids, &mask, Some(&mut d))?;
            let surrogate = (e * g)?.sum_all()?;
            for (acc, g) in total.iter_mut().zip(grads_of(&surrogate, vars)?) {
                *acc = match (acc.take(), g) {
                    (Some(a), Some(g)) => Some((a + g)?),
                    (a, g) => a.or(g),
                };
            }
        }
        *dropout = after_first_pass;
        Ok(LossOutput {
            loss: loss_value,
            grads: total,
        })
    }
}
