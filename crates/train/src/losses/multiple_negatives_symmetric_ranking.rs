//! MultipleNegativesSymmetricRankingLoss: MultipleNegativesRankingLoss in both directions,
//! (CE(S) + CE(Sᵀ)) / 2 — anchors choose their positive among all candidates, and each positive
//! chooses its anchor among the batch's anchors. The 2021 sentence-transformers models were trained
//! with it on pairs.

use super::{symmetric_ranking_loss, uncached, Loss, LossOutput, TrainBatch};
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
        uncached(model, vars, batch, dropout, |e, t| {
            symmetric_ranking_loss(e, t, self.scale)
        })
    }
}
