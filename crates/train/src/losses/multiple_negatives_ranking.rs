//! MultipleNegativesRankingLoss (Henderson et al., 2017, "Efficient Natural Language Response
//! Suggestion for Smart Reply"): in-batch negatives. Each anchor is scored against every positive
//! of the batch, then every hard-negative column; cross-entropy targets its own positive.

use super::{ranking_loss, uncached, Loss, LossOutput, TrainBatch};
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
        uncached(model, vars, batch, dropout, |e, t| {
            ranking_loss(e, t, self.scale)
        })
    }
}
