//! MultipleNegativesRankingLoss (Henderson et al., 2017, "Efficient Natural Language Response
//! Suggestion for Smart Reply"): in-batch negatives. Each anchor is scored against every positive
//! of the batch, then every hard-negative column; cross-entropy targets its own positive.

use super::{embed_columns, grads_of, ranking_loss, Loss, LossOutput, TrainBatch};
use anyhow::Result;
use candle_core::Var;
use model::{Dropout, SentenceModel};

pub struct MultipleNegativesRankingLoss {
    /// Multiplies the cosine similarities (sentence-transformers' default: 20).
    pub scale: f64,
}

impl Loss for MultipleNegativesRankingLoss {
    fn name(&self) -> &'static str {
        "MultipleNegativesRankingLoss"
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
        let loss = ranking_loss(&embs, &texts, self.scale)?;
        Ok(LossOutput {
            loss: loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?,
            grads: grads_of(&loss, vars)?,
        })
    }
}
