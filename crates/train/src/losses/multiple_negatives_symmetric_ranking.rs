//! MultipleNegativesSymmetricRankingLoss: MultipleNegativesRankingLoss in both directions,
//! (CE(S) + CE(Sᵀ)) / 2 — anchors choose their positive among all candidates, and each positive
//! chooses its anchor among the batch's anchors. The 2021 sentence-transformers models were trained
//! with it on pairs.

use super::{embed_columns, grads_of, symmetric_ranking_loss, Loss, LossOutput, TrainBatch};
use anyhow::Result;
use candle_core::Var;
use model::{Dropout, SentenceModel};

pub struct MultipleNegativesSymmetricRankingLoss {
    pub scale: f64,
}

impl Loss for MultipleNegativesSymmetricRankingLoss {
    fn name(&self) -> &'static str {
        "MultipleNegativesSymmetricRankingLoss"
    }

    fn compute(
        &self,
        model: &SentenceModel,
        vars: &[(String, Var)],
        batch: &TrainBatch,
        dropout: &mut Dropout,
    ) -> Result<LossOutput> {
        let embs = embed_columns(model, batch, dropout)?;
        let texts: Vec<&[String]> = batch.columns.iter().map(|c| c.texts.as_slice()).collect();
        let loss = symmetric_ranking_loss(&embs, &texts, self.scale)?;
        Ok(LossOutput {
            loss: loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?,
            grads: grads_of(&loss, vars)?,
        })
    }
}
