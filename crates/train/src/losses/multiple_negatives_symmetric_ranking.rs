//! MultipleNegativesSymmetricRankingLoss: MultipleNegativesRankingLoss in both directions,
//! (CE(S) + CE(Sᵀ)) / 2 — anchors choose their positive among all candidates, and each positive
//! chooses its anchor among the batch's anchors. The 2021 sentence-transformers models were trained
//! with it on pairs.

use super::multiple_negatives_ranking::anchors_to_candidates;
use super::{ranking, Embedded, Loss, Similarity};
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
        e.check()?;
        let columns = self.similarity.prepare(e.columns)?;
        let forward = anchors_to_candidates(&columns, e, self.scale)?;
        let anchor_texts: Vec<&String> = e.texts[0].iter().collect();
        let backward = ranking(
            &columns[1],
            &e.anchors,
            &columns[0],
            &e.texts[0],
            &anchor_texts,
            self.scale,
        )?;
        Ok(((forward + backward)? / 2.0)?)
    }
}
