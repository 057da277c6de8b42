//! MatryoshkaLoss (Kusupati et al., 2022, "Matryoshka Representation Learning"; sentence-transformers
//! `MatryoshkaLoss`): the wrapped loss on the embeddings truncated to each of several sizes and
//! L2-normalised again, weighted and summed, so that the first d dimensions of an embedding are an
//! embedding on their own. Wraps any loss here, the cached ones included (GradCache computes the
//! embeddings; this is maths over them). Distillation targets are truncated with the embeddings.

use super::{Embedded, Loss};
use anyhow::{ensure, Result};
use candle_core::{Tensor, D};

pub struct MatryoshkaLoss {
    pub inner: Box<dyn Loss>,
    /// (dimension, weight), largest dimension first (the order sentence-transformers sums in).
    pub dims: Vec<(usize, f64)>,
}

impl MatryoshkaLoss {
    /// `dims` with `weights` (default: 1 each), sorted from the largest dimension down.
    pub fn new(inner: Box<dyn Loss>, dims: &[usize], weights: Option<&[f64]>) -> Result<Self> {
        ensure!(!dims.is_empty(), "[loss] matryoshka_dims is empty");
        let weights = match weights {
            Some(w) => {
                ensure!(
                    w.len() == dims.len(),
                    "[loss] matryoshka_weights has {} values for {} matryoshka_dims",
                    w.len(),
                    dims.len()
                );
                w.to_vec()
            }
            None => vec![1.0; dims.len()],
        };
        ensure!(
            dims.iter().all(|&d| d > 0),
            "[loss] matryoshka_dims must be positive"
        );
        let mut dims: Vec<(usize, f64)> = dims.iter().copied().zip(weights).collect();
        dims.sort_by_key(|d| std::cmp::Reverse(d.0));
        Ok(Self { inner, dims })
    }
}

impl Loss for MatryoshkaLoss {
    fn name(&self) -> &'static str {
        "MatryoshkaLoss"
    }

    fn forward(&self, e: &Embedded) -> Result<Tensor> {
        let full = match e.columns.first() {
            Some(c) => c.dim(D::Minus1)?,
            None => 0,
        };
        let mut total: Option<Tensor> = None;
        for &(dim, weight) in &self.dims {
            ensure!(
                dim <= full,
                "[loss] matryoshka_dims: {dim} is larger than the model's embeddings ({full} \
                 dimensions)"
            );
            let columns = e
                .columns
                .iter()
                .map(|c| {
                    Ok(model::pooling::l2_normalize(&c.narrow(
                        D::Minus1,
                        0,
                        dim,
                    )?)?)
                })
                .collect::<Result<Vec<_>>>()?;
            let targets = e
                .targets
                .map(|t| t.narrow(D::Minus1, 0, dim.min(t.dim(D::Minus1)?)))
                .transpose()?;
            let guide = e.guide;
            let part = Embedded {
                columns: &columns,
                texts: e.texts,
                anchors: e.anchors.clone(),
                targets: targets.as_ref(),
                guide,
                scores: e.scores,
            };
            let l = (self.inner.forward(&part)? * weight)?;
            total = Some(match total {
                None => l,
                Some(t) => (t + l)?,
            });
        }
        total.ok_or_else(|| anyhow::anyhow!("MatryoshkaLoss without dimensions"))
    }
}
