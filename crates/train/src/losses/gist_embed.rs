//! GISTEmbedLoss (Solatorio, 2024, "GISTEmbed: Guided In-sample Selection of Training Negatives
//! for Text Embedding Fine-tuning"; sentence-transformers `GISTEmbedLoss`, and with GradCache its
//! `CachedGISTEmbedLoss`): in-batch contrastive learning where a frozen guide model decides which
//! candidates are negatives. A candidate the guide scores above the row's positive (less a
//! margin) is taken out of that row's softmax, so in-batch false negatives do not push apart what
//! belongs together. Scores are cosine similarities over a temperature; candidates are the
//! positives, and (by default) the other anchors and the other positives, then any hard negatives.

use super::{cross_entropy, Embedded, Loss};
use anyhow::{ensure, Result};
use candle_core::{DType, Tensor, D};

/// How the guide's threshold is set from its score s of the row's own positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MarginStrategy {
    /// Candidates scored above s − margin are dropped.
    #[default]
    Absolute,
    /// Candidates scored above s − |s|·margin are dropped.
    Relative,
}

impl std::str::FromStr for MarginStrategy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "absolute" => Ok(Self::Absolute),
            "relative" => Ok(Self::Relative),
            _ => Err(format!(
                "[loss] margin_strategy \"{s}\" is not one of absolute, relative"
            )),
        }
    }
}

impl<'de> serde::Deserialize<'de> for MarginStrategy {
    fn deserialize<De: serde::Deserializer<'de>>(d: De) -> std::result::Result<Self, De::Error> {
        <String as serde::Deserialize>::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

pub struct GISTEmbedLoss {
    /// Divides the cosine similarities (sentence-transformers' default: 0.01).
    pub temperature: f64,
    pub margin_strategy: MarginStrategy,
    pub margin: f64,
    /// Also contrast each anchor with the other anchors.
    pub contrast_anchors: bool,
    /// Also contrast each positive with the other positives.
    pub contrast_positives: bool,
}

/// Rows `r` of x @ yᵀ, both L2-normalised already: [r, N].
fn sim(x: &Tensor, rows: &std::ops::Range<usize>, y: &Tensor) -> Result<Tensor> {
    Ok(x.narrow(0, rows.start, rows.len())?.matmul(&y.t()?)?)
}

impl GISTEmbedLoss {
    /// `scores` with −∞ wherever the guide's score of the same pair exceeds the row's threshold
    /// (except the row's own positive, column `offset + i`, when `keep_own`).
    fn mask(
        &self,
        guide: &Tensor,
        scores: &Tensor,
        threshold: &Tensor,
        keep_own: Option<usize>,
    ) -> Result<Tensor> {
        let mut drop = guide.broadcast_gt(threshold)?.to_dtype(DType::F32)?;
        if let Some(offset) = keep_own {
            let (a, n) = drop.dims2()?;
            let mut own = vec![1f32; a * n];
            for i in 0..a {
                own[i * n + offset + i] = 0.0;
            }
            drop = (drop * Tensor::from_vec(own, (a, n), scores.device())?)?;
        }
        let ninf = Tensor::full(f32::NEG_INFINITY, scores.shape(), scores.device())?
            .to_dtype(scores.dtype())?;
        Ok(drop.to_dtype(DType::U8)?.where_cond(&ninf, scores)?)
    }
}

impl Loss for GISTEmbedLoss {
    fn name(&self) -> &'static str {
        "GISTEmbedLoss"
    }

    fn forward(&self, e: &Embedded) -> Result<Tensor> {
        e.check()?;
        let guide = e.guide.ok_or_else(|| {
            anyhow::anyhow!("GISTEmbedLoss needs the guide's embeddings ([loss] guide)")
        })?;
        ensure!(
            guide.len() == e.columns.len(),
            "GISTEmbedLoss: {} guide columns for {} embedded ones",
            guide.len(),
            e.columns.len()
        );
        let norm = |c: &Tensor| -> Result<Tensor> {
            Ok(model::pooling::l2_normalize(&c.to_dtype(DType::F32)?)?)
        };
        let cols = e.columns.iter().map(norm).collect::<Result<Vec<_>>>()?;
        let g = guide.iter().map(norm).collect::<Result<Vec<_>>>()?;
        let rows = &e.anchors;
        let offset = rows.start;
        let (a, p, ga, gp) = (&cols[0], &cols[1], &g[0], &g[1]);
        let ap = sim(a, rows, p)?;
        let gap = sim(ga, rows, gp)?;
        // The guide's score of each row's own positive, and the threshold above which a
        // candidate is dropped.
        let own: Vec<u32> = (0..rows.len() as u32).map(|i| offset as u32 + i).collect();
        let idx = Tensor::from_vec(own, (rows.len(), 1), gap.device())?;
        let gs = gap.gather(&idx, D::Minus1)?;
        let threshold = match self.margin_strategy {
            MarginStrategy::Absolute => (gs - self.margin)?,
            MarginStrategy::Relative => (&gs - (gs.abs()? * self.margin)?)?,
        };
        let mut scores = vec![self.mask(&gap, &ap, &threshold, Some(offset))?];
        if self.contrast_anchors {
            scores.push(self.mask(&sim(ga, rows, ga)?, &sim(a, rows, a)?, &threshold, None)?);
        }
        if self.contrast_positives {
            scores.push(self.mask(&sim(gp, rows, gp)?, &sim(p, rows, p)?, &threshold, None)?);
        }
        for (n, gn) in cols[2..].iter().zip(&g[2..]) {
            scores.push(self.mask(&sim(ga, rows, gn)?, &sim(a, rows, n)?, &threshold, None)?);
        }
        let scores = (Tensor::cat(&scores, 1)? / self.temperature)?;
        cross_entropy(&scores, None, offset)
    }
}
