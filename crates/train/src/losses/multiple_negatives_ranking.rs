//! MultipleNegativesRankingLoss (Henderson et al., 2017, "Efficient Natural Language Response
//! Suggestion for Smart Reply"): in-batch negatives. Each anchor is scored against every positive
//! of the batch, then every hard-negative column; cross-entropy targets its own positive.

use super::{ranking, Embedded, Loss, Similarity};
use anyhow::Result;
use candle_core::Tensor;

pub struct MultipleNegativesRankingLoss {
    /// Multiplies the cosine similarities (sentence-transformers' default: 20).
    pub scale: f64,
    pub similarity: Similarity,
}

impl Loss for MultipleNegativesRankingLoss {
    fn name(&self) -> &'static str {
        "MultipleNegativesRankingLoss"
    }

    fn forward(&self, e: &Embedded) -> Result<Tensor> {
        e.check()?;
        let columns = self.similarity.prepare(e.columns)?;
        anchors_to_candidates(&columns, e, self.scale)
    }
}

/// The loss over `columns`, the embedded columns of `e` already prepared for the similarity:
/// anchors against every positive and hard negative.
pub(super) fn anchors_to_candidates(
    columns: &[Tensor],
    e: &Embedded,
    scale: f64,
) -> Result<Tensor> {
    let candidates = Tensor::cat(&columns[1..], 0)?;
    let candidate_texts: Vec<&String> = e.texts[1..].iter().flatten().collect();
    ranking(
        &columns[0],
        &e.anchors,
        &candidates,
        &e.texts[1],
        &candidate_texts,
        scale,
    )
}
