//! CoSENTLoss (Su, 2022, "CoSENT: a more efficient sentence vector scheme than Sentence-BERT";
//! Huang et al., 2024, TASLP; sentence-transformers `CoSENTLoss`) and, with the AnglE similarity
//! (Li & Li, 2024, "AoE: Angle-optimized Embeddings for Semantic Textual Similarity";
//! sentence-transformers `AnglELoss`), AnglE: for scored pairs (text1, text2, score),
//!
//!   loss = log(1 + Σ_{(i, j): score_i < score_j} exp(scale · (s_i − s_j)))
//!
//! where s_k is the pairwise similarity of pair k: every pair the labels rank lower must score
//! lower. Only the order of the scores matters, so any scale of labels works.

use super::{pairwise, Embedded, Loss, PairwiseSimilarity, MASKED};
use anyhow::Result;
use candle_core::Tensor;

pub struct CoSENTLoss {
    pub scale: f64,
    pub similarity: PairwiseSimilarity,
}

impl Loss for CoSENTLoss {
    fn name(&self) -> &'static str {
        match self.similarity {
            PairwiseSimilarity::Angle => "AnglELoss",
            _ => "CoSENTLoss",
        }
    }

    fn forward(&self, e: &Embedded) -> Result<Tensor> {
        let labels = super::single_scores(e, self.name())?;
        let r = &e.anchors;
        let rows = |c: &Tensor| c.narrow(0, r.start, r.len());
        let s = (pairwise(
            self.similarity,
            &rows(&e.columns[0])?,
            &rows(&e.columns[1])?,
        )? * self.scale)?;
        let n = r.len();
        // diff[i][j] = s_i − s_j, kept where label_i < label_j.
        let diff = s.unsqueeze(1)?.broadcast_sub(&s.unsqueeze(0)?)?;
        let mut bias = vec![MASKED; n * n];
        for i in 0..n {
            for j in 0..n {
                if labels[i] < labels[j] {
                    bias[i * n + j] = 0.0;
                }
            }
        }
        let bias = Tensor::from_vec(bias, (n, n), s.device())?.to_dtype(s.dtype())?;
        let kept = (diff + bias)?.flatten_all()?;
        // The 1 inside the log is exp(0): a zero beside the kept differences.
        let all = Tensor::cat(&[&Tensor::zeros(1, kept.dtype(), kept.device())?, &kept], 0)?;
        Ok(super::log_sum_exp(&all)?.squeeze(0)?)
    }
}
