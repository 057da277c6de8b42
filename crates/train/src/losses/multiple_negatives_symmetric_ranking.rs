//! MultipleNegativesSymmetricRankingLoss: MultipleNegativesRankingLoss in both directions,
//! (CE(S) + CE(Sᵀ)) / 2 — anchors choose their positive among all candidates, and each positive
//! chooses its anchor among the batch's anchors. The 2021 sentence-transformers models were trained
//! with it on pairs.

use super::{ranking, Embedded, Loss, MultipleNegativesRankingLoss, Similarity};
use anyhow::Result;
use candle_core::Tensor;

pub struct MultipleNegativesSymmetricRankingLoss {
    pub scale: f64,
    pub similarity: Similarity,
}

impl Loss for MultipleNegativesSymmetricRankingLoss {
    fn name(&self) -> &'static str {
        "MultipleNegativesSymmetricRankingLoss"
    }

    fn forward(&self, e: &Embedded) -> Result<Tensor> {
        let forward = MultipleNegativesRankingLoss {
            scale: self.scale,
            similarity: self.similarity,
        }
        .forward(e)?;
        let anchor_texts: Vec<&String> = e.texts[0].iter().collect();
        let backward = ranking(
            &e.columns[1],
            &e.anchors,
            &e.columns[0],
            &e.texts[0],
            &anchor_texts,
            self.scale,
            self.similarity,
        )?;
        Ok(((forward + backward)? / 2.0)?)
    }
}
