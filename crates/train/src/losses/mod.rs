//! The losses, one file each, named as sentence-transformers names them. A loss is
//! only maths over embeddings: the training step (`crate::step`) embeds the batch, gathers it
//! across ranks and backpropagates; GradCache (`crate::gradcache`) is a way of computing the
//! embeddings that wraps any of them.
//!
//! MSELoss (distillation) regresses every column onto the teacher's embeddings of the sources.
//! The contrastive ones score anchors against candidates with `scale · sim(a, c)` — cosine
//! (sentence-transformers' default, whether or not the model normalises) or the dot product (the
//! multi-qa *-dot models: CLS pooling, no normalisation, scale 1) — and apply cross-entropy with
//! the row's own positive as the target. **Duplicates inside a batch:** a candidate whose text equals the text of row i's own
//! positive (other than that positive itself, e.g. the same answer in two rows) is removed from
//! row i's softmax instead of counting as a negative; in the reverse direction of the symmetric
//! loss, the same holds for anchors equal to row i's anchor.

pub mod citations;
mod cosent;
mod cosine_similarity;
mod gist_embed;
mod margin_mse;
mod matryoshka;
mod mse;
mod multiple_negatives_ranking;
mod multiple_negatives_symmetric_ranking;
mod triplet;

pub use cosent::CoSENTLoss;
pub use cosine_similarity::CosineSimilarityLoss;
pub use gist_embed::{GISTEmbedLoss, MarginStrategy};
pub use margin_mse::MarginMSELoss;
pub use matryoshka::MatryoshkaLoss;
pub use mse::MSELoss;
pub use multiple_negatives_ranking::MultipleNegativesRankingLoss;
pub use multiple_negatives_symmetric_ranking::MultipleNegativesSymmetricRankingLoss;
pub use triplet::{TripletDistance, TripletLoss};

use anyhow::{ensure, Result};
use candle_core::{Tensor, D};
use std::ops::Range;

/// How a contrastive loss scores an anchor against a candidate (`[loss] similarity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Similarity {
    /// `cos_sim`: both sides L2-normalised first.
    #[default]
    Cos,
    /// `dot_score`: the raw inner product.
    Dot,
}

impl Similarity {
    /// What sentence-transformers calls it in config_sentence_transformers.json.
    pub fn fn_name(self) -> &'static str {
        match self {
            Similarity::Cos => "cosine",
            Similarity::Dot => "dot",
        }
    }

    /// The function sentence-transformers' losses take for it (model cards).
    pub fn util_name(self) -> &'static str {
        match self {
            Similarity::Cos => "cos_sim",
            Similarity::Dot => "dot_score",
        }
    }

    /// The embedded columns as this similarity scores them: each row L2-normalised for cosine,
    /// as they are for the dot product. Done once per loss, however many directions it scores.
    fn prepare(self, columns: &[Tensor]) -> Result<Vec<Tensor>> {
        columns
            .iter()
            .map(|c| {
                Ok(match self {
                    Similarity::Cos => model::pooling::l2_normalize(c)?,
                    Similarity::Dot => c.clone(),
                })
            })
            .collect()
    }
}

impl std::str::FromStr for Similarity {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cos" | "cosine" => Ok(Similarity::Cos),
            "dot" => Ok(Similarity::Dot),
            _ => Err(format!("similarity \"{s}\" is not one of cos, dot")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Similarity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The embedded batch a loss sees: column 0 anchors, column 1 positives, columns 2.. hard
/// negatives, each [G, D] over the whole (global) batch of G rows, with their texts for the
/// duplicate masking; `anchors` are the rows whose loss to compute (all of them in the training
/// step; a rank's own rows for a loss that only scores its anchors against the global
/// candidates — their targets are then offset by `anchors.start`).
pub struct Embedded<'a> {
    pub columns: &'a [Tensor],
    pub texts: &'a [Vec<String>],
    pub anchors: Range<usize>,
    /// Distillation: the teacher's embedding of each row's source, [G, D].
    pub targets: Option<&'a Tensor>,
    /// GISTEmbed: the frozen guide model's embeddings of every column, [G, D'] each.
    pub guide: Option<&'a [Tensor]>,
    /// Scored rows (CoSENT, AnglE, CosineSimilarity, MarginMSE): each row's scores, G of them.
    pub scores: Option<&'a [Vec<f32>]>,
}

impl<'a> Embedded<'a> {
    /// Every row of the batch as an anchor.
    pub fn all(columns: &'a [Tensor], texts: &'a [Vec<String>]) -> Self {
        let rows = texts.first().map_or(0, |t| t.len());
        Self {
            columns,
            texts,
            anchors: 0..rows,
            targets: None,
            guide: None,
            scores: None,
        }
    }

    fn check(&self) -> Result<()> {
        ensure!(
            self.columns.len() >= 2 && self.columns.len() == self.texts.len(),
            "a contrastive loss needs anchors and positives: got {} embedded columns for {} text \
             columns",
            self.columns.len(),
            self.texts.len()
        );
        Ok(())
    }
}

pub trait Loss: Send + Sync {
    /// The name sentence-transformers gives it (model cards).
    fn name(&self) -> &'static str;
    /// The mean loss over the anchors `e.anchors`.
    fn forward(&self, e: &Embedded) -> Result<Tensor>;
}

/// A finite stand-in for −∞: large enough that exp() of it is exactly 0 next to any real score.
const MASKED: f32 = -1e30;

/// How the scored-pair losses compare the two texts of a row (sentence-transformers'
/// `pairwise_*` functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairwiseSimilarity {
    /// `pairwise_cos_sim`.
    Cos,
    /// `pairwise_dot_score`.
    Dot,
    /// `pairwise_angle_sim` (AnglE): |cos(x, y) + sin(x, y)| of the L2-normalised vectors, with
    /// dimensions i and i + D/2 paired for the sine term.
    Angle,
}

impl From<Similarity> for PairwiseSimilarity {
    fn from(s: Similarity) -> Self {
        match s {
            Similarity::Cos => PairwiseSimilarity::Cos,
            Similarity::Dot => PairwiseSimilarity::Dot,
        }
    }
}

/// sim(x_i, y_i) for every row: [N].
fn pairwise(sim: PairwiseSimilarity, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    use model::pooling::l2_normalize;
    Ok(match sim {
        PairwiseSimilarity::Dot => (x * y)?.sum(D::Minus1)?,
        PairwiseSimilarity::Cos => (l2_normalize(x)? * l2_normalize(y)?)?.sum(D::Minus1)?,
        PairwiseSimilarity::Angle => {
            let (mut x, mut y) = (l2_normalize(x)?, l2_normalize(y)?);
            let d = x.dim(D::Minus1)?;
            if d % 2 == 1 {
                // An odd dimension pairs with a zero (sentence-transformers pads the same way).
                x = x.pad_with_zeros(D::Minus1, 0, 1)?;
                y = y.pad_with_zeros(D::Minus1, 0, 1)?;
            }
            let h = x.dim(D::Minus1)? / 2;
            let cos = (&x * &y)?.sum(D::Minus1)?;
            let (x1, x2) = (x.narrow(D::Minus1, 0, h)?, x.narrow(D::Minus1, h, h)?);
            let (y1, y2) = (y.narrow(D::Minus1, 0, h)?, y.narrow(D::Minus1, h, h)?);
            let sin = ((x2 * y1)? - (x1 * y2)?)?.sum(D::Minus1)?;
            (cos + sin)?.abs()?
        }
    })
}

/// The one score of each anchor row (scored pairs), checked.
fn single_scores(e: &Embedded, loss: &str) -> Result<Vec<f32>> {
    ensure!(
        e.columns.len() >= 2,
        "{loss} needs pairs: the batch has {} columns",
        e.columns.len()
    );
    let Some(scores) = e.scores else {
        anyhow::bail!("{loss} needs a score in every row");
    };
    scores[e.anchors.clone()]
        .iter()
        .enumerate()
        .map(|(i, s)| match s.as_slice() {
            [x] => Ok(*x),
            _ => anyhow::bail!(
                "{loss}: row {} of the batch has {} scores, not 1",
                e.anchors.start + i,
                s.len()
            ),
        })
        .collect()
}

/// Additive mask [A, C] that removes candidate j from row i when `candidates[j] == targets[i]`
/// and j is not row i's own target (column `offset + i`). None when nothing is masked.
fn duplicate_bias(
    targets: &[String],
    candidates: &[&String],
    offset: usize,
    device: &candle_core::Device,
) -> Result<Option<Tensor>> {
    let (a, c) = (targets.len(), candidates.len());
    let mut any = false;
    let mut bias = vec![0f32; a * c];
    // Index candidates by text so this stays O(A + C) per batch, not O(A·C) comparisons.
    let mut by_text: std::collections::HashMap<&str, Vec<usize>> = Default::default();
    for (j, t) in candidates.iter().enumerate() {
        by_text.entry(t.as_str()).or_default().push(j);
    }
    for (i, t) in targets.iter().enumerate() {
        if let Some(js) = by_text.get(t.as_str()) {
            for &j in js {
                if j != offset + i {
                    bias[i * c + j] = MASKED;
                    any = true;
                }
            }
        }
    }
    Ok(if any {
        Some(Tensor::from_vec(bias, (a, c), device)?)
    } else {
        None
    })
}

/// log Σ exp over the last dimension (kept, size 1), shifted by the row maximum so that no term
/// overflows; the shift is a constant to the gradient.
fn log_sum_exp(s: &Tensor) -> Result<Tensor> {
    let max = s.max_keepdim(D::Minus1)?.detach();
    Ok((s
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + max)?)
}

/// Mean over rows of the cross-entropy of `scores` [A, C] with target column `offset + i` for
/// row i.
fn cross_entropy(scores: &Tensor, bias: Option<&Tensor>, offset: usize) -> Result<Tensor> {
    let s = match bias {
        Some(b) => scores.broadcast_add(&b.to_dtype(scores.dtype())?)?,
        None => scores.clone(),
    };
    let a = s.dim(0)?;
    let lse = log_sum_exp(&s)?;
    let idx = Tensor::arange(offset as u32, (offset + a) as u32, s.device())?.reshape((a, 1))?;
    let target = s.gather(&idx, 1)?;
    Ok((lse - target)?.mean_all()?)
}

/// One-way ranking loss: anchors `rows` of `query` against `candidates` [C, D] (both as the
/// similarity scores them), row i's target at candidate `rows.start + i`; duplicates of the
/// target's text among `candidate_texts` masked.
fn ranking(
    query: &Tensor,
    rows: &Range<usize>,
    candidates: &Tensor,
    target_texts: &[String],
    candidate_texts: &[&String],
    scale: f64,
) -> Result<Tensor> {
    let q = query.narrow(0, rows.start, rows.len())?;
    let scores = (q.matmul(&candidates.t()?)? * scale)?;
    let targets = &target_texts[rows.clone()];
    let bias = duplicate_bias(targets, candidate_texts, rows.start, q.device())?;
    cross_entropy(&scores, bias.as_ref(), rows.start)
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

    fn texts(v: &[&[&str]]) -> Vec<Vec<String>> {
        v.iter()
            .map(|c| c.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    fn mnrl(cols: &[Tensor], t: &[Vec<String>]) -> f32 {
        MultipleNegativesRankingLoss {
            scale: 20.0,
            similarity: Similarity::Cos,
        }
        .forward(&Embedded::all(cols, t))
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
    }

    #[test]
    fn ranking_loss_by_hand() {
        // Two rows, orthogonal unit vectors: S = 20·I, loss = ln(1 + e^-20) per row.
        let a = unit_rows(&[[1.0, 0.0], [0.0, 1.0]]);
        let t = texts(&[&["q1", "q2"], &["p1", "p2"]]);
        let want = (1.0f64 + (-20.0f64).exp()).ln();
        assert!((mnrl(&[a.clone(), a], &t) as f64 - want).abs() < 1e-7);
    }

    fn raw(v: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = v.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (v.len(), 2), &Device::Cpu).unwrap()
    }

    /// Cosine scores ignore the embeddings' lengths (as sentence-transformers' cos_sim, even for
    /// a model without a Normalize module); dot scores use them.
    #[test]
    fn cos_normalises_and_dot_does_not() {
        let t = texts(&[&["q1", "q2"], &["p1", "p2"]]);
        let (a, p) = (
            raw(&[[3.0, 0.0], [0.0, 0.5]]),
            raw(&[[2.0, 0.0], [0.0, 4.0]]),
        );
        let loss = |similarity, scale, cols: &[Tensor]| {
            MultipleNegativesRankingLoss { scale, similarity }
                .forward(&Embedded::all(cols, &t))
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        // cos: S = 20·I as for unit vectors.
        let want = (1.0f64 + (-20.0f64).exp()).ln();
        let cos = loss(Similarity::Cos, 20.0, &[a.clone(), p.clone()]);
        assert!((cos - want).abs() < 1e-7, "{cos}");
        // dot, scale 1: S = diag(6, 2), off-diagonal 0; row loss ln(1 + e^-s_ii).
        let want = ((1.0f64 + (-6.0f64).exp()).ln() + (1.0f64 + (-2.0f64).exp()).ln()) / 2.0;
        let dot = loss(Similarity::Dot, 1.0, &[a, p]);
        assert!((dot - want).abs() < 1e-6, "{dot} vs {want}");
    }

    #[test]
    fn duplicate_positive_is_masked_not_a_negative() {
        // Row 1's positive repeats row 0's. Unmasked, row 0 would see its own answer as a
        // negative with the same score as the target: loss ln 2. Masked, both rows see only
        // themselves: loss 0.
        let a = unit_rows(&[[1.0, 0.0], [1.0, 0.0]]);
        let t = texts(&[
            &["how to brew?", "brewing how?"],
            &["same answer", "same answer"],
        ]);
        assert!(mnrl(&[a.clone(), a.clone()], &t).abs() < 1e-6);
        let t = texts(&[
            &["how to brew?", "brewing how?"],
            &["answer one", "answer two"],
        ]);
        assert!((mnrl(&[a.clone(), a], &t) - std::f32::consts::LN_2).abs() < 1e-6);
    }

    /// The loss of a subset of anchors (a rank's rows) scored against every candidate is the
    /// same as those rows' share of the whole batch's loss: targets offset by the first row.
    #[test]
    fn anchor_rows_with_offset_sum_to_the_whole_batch() {
        let a = unit_rows(&[[1.0, 0.2], [0.3, 1.0], [0.7, 0.7], [1.0, -0.5]]);
        let p = unit_rows(&[[0.9, 0.1], [0.2, 1.0], [0.6, 0.8], [0.8, -0.6]]);
        let t = texts(&[&["a", "b", "c", "d"], &["w", "x", "y", "z"]]);
        let cols = [a, p];
        for loss in [
            &MultipleNegativesRankingLoss {
                scale: 20.0,
                similarity: Similarity::Cos,
            } as &dyn Loss,
            &MultipleNegativesSymmetricRankingLoss {
                scale: 20.0,
                similarity: Similarity::Cos,
            },
        ] {
            let whole = loss.forward(&Embedded::all(&cols, &t)).unwrap();
            let part = |r: Range<usize>| {
                let e = Embedded {
                    columns: &cols,
                    texts: &t,
                    anchors: r,
                    targets: None,
                    guide: None,
                    scores: None,
                };
                loss.forward(&e).unwrap().to_scalar::<f32>().unwrap()
            };
            let halves = (part(0..2) + part(2..4)) / 2.0;
            let whole = whole.to_scalar::<f32>().unwrap();
            assert!(
                (whole - halves).abs() < 1e-6,
                "{}: {whole} vs {halves}",
                loss.name()
            );
        }
    }
}
