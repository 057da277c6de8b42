//! CosineSimilarityLoss (Reimers & Gurevych, 2019, "Sentence-BERT"; sentence-transformers
//! `CosineSimilarityLoss`): for scored pairs (text1, text2, score), the mean squared error between
//! cos(u, v) and the score, which should therefore lie in [-1, 1] (STS-B's 0–5 scaled to 0–1).

use super::{pairwise, Embedded, Loss, PairwiseSimilarity};
use anyhow::Result;
use candle_core::Tensor;

pub struct CosineSimilarityLoss;

impl Loss for CosineSimilarityLoss {
    fn name(&self) -> &'static str {
        "CosineSimilarityLoss"
    }

    fn forward(&self, e: &Embedded) -> Result<Tensor> {
        let labels = super::single_scores(e, self.name())?;
        let r = &e.anchors;
        let rows = |c: &Tensor| c.narrow(0, r.start, r.len());
        let cos = pairwise(
            PairwiseSimilarity::Cos,
            &rows(&e.columns[0])?,
            &rows(&e.columns[1])?,
        )?;
        let labels = Tensor::from_vec(labels, r.len(), cos.device())?.to_dtype(cos.dtype())?;
        Ok((cos - labels)?.sqr()?.mean_all()?)
    }
}
