//! The contrastive losses, one file each, named as sentence-transformers names them.
//!
//! All of them score anchors against candidates with `scale · cos(a, c)` and apply cross-entropy
//! with the row's own positive as the target. **Duplicates inside a batch:** a candidate whose text
//! equals the text of row i's own positive (other than that positive itself, e.g. the same answer
//! in two rows) is removed from row i's softmax instead of counting as a negative; in the reverse
//! direction of the symmetric loss, the same holds for anchors equal to row i's anchor.

mod cached_multiple_negatives_ranking;
mod multiple_negatives_ranking;
mod multiple_negatives_symmetric_ranking;

pub use cached_multiple_negatives_ranking::CachedMultipleNegativesRankingLoss;
pub use multiple_negatives_ranking::MultipleNegativesRankingLoss;
pub use multiple_negatives_symmetric_ranking::MultipleNegativesSymmetricRankingLoss;

use anyhow::Result;
use candle_core::{Tensor, Var, D};
use model::{Dropout, SentenceModel};

/// One column of a batch (anchors, positives, or one hard-negative column), tokenized and padded
/// on its own to its longest row.
pub struct Column {
    pub ids: Tensor,
    pub mask: Tensor,
    pub texts: Vec<String>,
}

/// A training batch: column 0 anchors, column 1 positives, columns 2.. hard negatives.
pub struct TrainBatch {
    pub columns: Vec<Column>,
}

impl TrainBatch {
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.texts.len())
    }
}

pub struct LossOutput {
    pub loss: f64,
    /// Gradient of the loss for each trainable variable, in the order of `vars`.
    pub grads: Vec<Option<Tensor>>,
}

pub trait Loss: Send {
    fn name(&self) -> &'static str;
    /// The loss of `batch` and its gradients with respect to `vars` (the model's trainable
    /// parameters). Dropout masks come from `dropout`.
    fn compute(
        &self,
        model: &SentenceModel,
        vars: &[(String, Var)],
        batch: &TrainBatch,
        dropout: &mut Dropout,
    ) -> Result<LossOutput>;
}

/// The whole batch in one graph: embed every column, apply `loss_fn` to the embeddings and the
/// columns' texts, backpropagate.
fn uncached(
    model: &SentenceModel,
    vars: &[(String, Var)],
    batch: &TrainBatch,
    dropout: &mut Dropout,
    loss_fn: impl Fn(&[Tensor], &[&[String]]) -> Result<Tensor>,
) -> Result<LossOutput> {
    let embs = batch
        .columns
        .iter()
        .map(|c| Ok(model.embed_padded(model.encoder.as_ref(), &c.ids, &c.mask, Some(dropout))?))
        .collect::<Result<Vec<_>>>()?;
    let texts: Vec<&[String]> = batch.columns.iter().map(|c| c.texts.as_slice()).collect();
    let loss = loss_fn(&embs, &texts)?;
    Ok(LossOutput {
        loss: scalar(&loss)?,
        grads: grads_of(&loss, vars)?,
    })
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

/// Runs backward from `loss` and collects the gradients of `vars`, detached: a gradient that
/// candle computed from tracked tensors still references the forward graph, and holding it
/// would keep every activation alive (GradCache accumulates over many mini-batches).
fn grads_of(loss: &Tensor, vars: &[(String, Var)]) -> Result<Vec<Option<Tensor>>> {
    let store = loss.backward()?;
    Ok(vars
        .iter()
        .map(|(_, v)| store.get(v.as_tensor()).map(|g| g.detach()))
        .collect())
}

/// A finite stand-in for −∞: large enough that exp() of it is exactly 0 next to any real score.
const MASKED: f32 = -1e30;

/// Additive mask [B, C] that removes candidate j from row i when `candidates[j] == targets[i]`
/// and j is not row i's own target (column i). None when nothing is masked.
fn duplicate_bias(
    targets: &[String],
    candidates: &[&String],
    device: &candle_core::Device,
) -> Result<Option<Tensor>> {
    let b = targets.len();
    let c = candidates.len();
    let mut any = false;
    let mut bias = vec![0f32; b * c];
    // Index candidates by text so this stays O(B + C) per batch, not O(B·C) comparisons.
    let mut by_text: std::collections::HashMap<&str, Vec<usize>> = Default::default();
    for (j, t) in candidates.iter().enumerate() {
        by_text.entry(t.as_str()).or_default().push(j);
    }
    for (i, t) in targets.iter().enumerate() {
        if let Some(js) = by_text.get(t.as_str()) {
            for &j in js {
                if j != i {
                    bias[i * c + j] = MASKED;
                    any = true;
                }
            }
        }
    }
    Ok(if any {
        Some(Tensor::from_vec(bias, (b, c), device)?)
    } else {
        None
    })
}

/// Mean over rows of cross-entropy of `scores` [B, C] with target column i for row i.
fn cross_entropy_diagonal(scores: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let s = match bias {
        Some(b) => scores.broadcast_add(&b.to_dtype(scores.dtype())?)?,
        None => scores.clone(),
    };
    let b = s.dim(0)?;
    let max = s.max_keepdim(D::Minus1)?.detach();
    let lse = (s
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + &max)?;
    let idx = Tensor::arange(0u32, b as u32, s.device())?.reshape((b, 1))?;
    let target = s.gather(&idx, 1)?;
    Ok((lse - target)?.mean_all()?)
}

/// One-way MNRL from embeddings: anchors `embs[0]` against the candidates `embs[1..]` stacked
/// (positives first, then each hard-negative column), targets on the diagonal.
pub fn ranking_loss(embs: &[Tensor], texts: &[&[String]], scale: f64) -> Result<Tensor> {
    let cands = Tensor::cat(&embs[1..], 0)?;
    let scores = (embs[0].matmul(&cands.t()?)? * scale)?;
    let cand_texts: Vec<&String> = texts[1..].iter().flat_map(|c| c.iter()).collect();
    let bias = duplicate_bias(texts[1], &cand_texts, embs[0].device())?;
    cross_entropy_diagonal(&scores, bias.as_ref())
}

/// Symmetric MNRL from embeddings: the one-way loss, plus the positives scored against the
/// anchors (CE of the transposed anchor/positive block), averaged.
pub fn symmetric_ranking_loss(embs: &[Tensor], texts: &[&[String]], scale: f64) -> Result<Tensor> {
    let forward = ranking_loss(embs, texts, scale)?;
    let scores = (embs[1].matmul(&embs[0].t()?)? * scale)?;
    let anchors: Vec<&String> = texts[0].iter().collect();
    let bias = duplicate_bias(texts[0], &anchors, embs[0].device())?;
    let backward = cross_entropy_diagonal(&scores, bias.as_ref())?;
    Ok(((forward + backward)? / 2.0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn unit_rows(v: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = v.iter().flatten().copied().collect();
        let t = Tensor::from_vec(flat, (v.len(), 2), &Device::Cpu).unwrap();
        model::pooling::l2_normalize(&t).unwrap()
    }

    #[test]
    fn ranking_loss_by_hand() {
        // Two rows, orthogonal unit vectors: S = 20·I, loss = ln(1 + e^-20) per row.
        let a = unit_rows(&[[1.0, 0.0], [0.0, 1.0]]);
        let texts: Vec<Vec<String>> = vec![
            vec!["q1".into(), "q2".into()],
            vec!["p1".into(), "p2".into()],
        ];
        let t: Vec<&[String]> = texts.iter().map(|v| v.as_slice()).collect();
        let l = ranking_loss(&[a.clone(), a.clone()], &t, 20.0).unwrap();
        let want = (1.0f64 + (-20.0f64).exp()).ln();
        assert!((l.to_scalar::<f32>().unwrap() as f64 - want).abs() < 1e-7);
    }

    #[test]
    fn duplicate_positive_is_masked_not_a_negative() {
        // Row 1's positive repeats row 0's. Unmasked, row 0 would see its own answer as a
        // negative with the same score as the target: loss ln 2. Masked, both rows see only
        // themselves: loss 0.
        let a = unit_rows(&[[1.0, 0.0], [1.0, 0.0]]);
        let texts: Vec<Vec<String>> = vec![
            vec!["how to brew?".into(), "brewing how?".into()],
            vec!["same answer".into(), "same answer".into()],
        ];
        let t: Vec<&[String]> = texts.iter().map(|v| v.as_slice()).collect();
        let l = ranking_loss(&[a.clone(), a.clone()], &t, 20.0).unwrap();
        assert!(l.to_scalar::<f32>().unwrap().abs() < 1e-6);
        let distinct: Vec<Vec<String>> = vec![
            texts[0].clone(),
            vec!["answer one".into(), "answer two".into()],
        ];
        let t: Vec<&[String]> = distinct.iter().map(|v| v.as_slice()).collect();
        let l = ranking_loss(&[a.clone(), a], &t, 20.0).unwrap();
        assert!((l.to_scalar::<f32>().unwrap() - std::f32::consts::LN_2).abs() < 1e-6);
    }
}
