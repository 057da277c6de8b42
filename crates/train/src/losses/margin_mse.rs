//! MarginMSELoss (Hofstätter et al., 2020, "Improving Efficient Neural Ranking Models with
//! Cross-Architecture Knowledge Distillation"; sentence-transformers `MarginMSELoss`): rows
//! (query, positive, negative₁…ₙ) with a teacher's margins score(q, p) − score(q, negᵢ), or its
//! scores (positive first, then each negative) from which the margins are taken; the student's
//! margins sim(q, p) − sim(q, negᵢ) regress onto them (mean squared error). The similarity is the
//! dot product unless the recipe says otherwise, as in sentence-transformers.

use super::{pairwise, Embedded, Loss, PairwiseSimilarity};
use anyhow::{bail, ensure, Result};
use candle_core::Tensor;

pub struct MarginMSELoss {
    pub similarity: PairwiseSimilarity,
}

impl Loss for MarginMSELoss {
    fn name(&self) -> &'static str {
        "MarginMSELoss"
    }

    fn forward(&self, e: &Embedded) -> Result<Tensor> {
        let negatives = e.columns.len().saturating_sub(2);
        ensure!(
            negatives >= 1,
            "MarginMSELoss needs (query, positive, negative) rows: the batch has {} columns",
            e.columns.len()
        );
        let Some(scores) = e.scores else {
            bail!("MarginMSELoss needs the teacher's margins or scores in every row");
        };
        let r = &e.anchors;
        let mut gold = Vec::with_capacity(r.len() * negatives);
        for (i, s) in scores[r.clone()].iter().enumerate() {
            if s.len() == negatives {
                gold.extend_from_slice(s);
            } else if s.len() == negatives + 1 {
                gold.extend(s[1..].iter().map(|n| s[0] - n));
            } else {
                bail!(
                    "MarginMSELoss: row {} of the batch has {} scores for {negatives} negatives \
                     (give {negatives} margins or {} scores)",
                    r.start + i,
                    s.len(),
                    negatives + 1
                );
            }
        }
        let rows = |c: &Tensor| c.narrow(0, r.start, r.len());
        let q = rows(&e.columns[0])?;
        let pos = pairwise(self.similarity, &q, &rows(&e.columns[1])?)?;
        let margins = e.columns[2..]
            .iter()
            .map(|n| Ok((&pos - pairwise(self.similarity, &q, &rows(n)?)?)?))
            .collect::<Result<Vec<_>>>()?;
        let margins = Tensor::stack(&margins, 1)?;
        let gold = Tensor::from_vec(gold, (r.len(), negatives), q.device())?.to_dtype(q.dtype())?;
        Ok((margins - gold)?.sqr()?.mean_all()?)
    }
}
