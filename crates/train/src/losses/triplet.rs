//! TripletLoss (Schroff et al., 2015, "FaceNet"; sentence-transformers `TripletLoss`): for rows
//! (anchor, positive, negative), max(0, d(a, p) − d(a, n) + margin), averaged. Distances as
//! sentence-transformers' `TripletDistanceMetric`: Euclidean (its default, margin 5), cosine
//! (1 − cos) or Manhattan.

use super::{Embedded, Loss};
use anyhow::{ensure, Result};
use candle_core::{Tensor, D};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TripletDistance {
    #[default]
    Euclidean,
    Cosine,
    Manhattan,
}

impl std::str::FromStr for TripletDistance {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "euclidean" => Ok(Self::Euclidean),
            "cosine" => Ok(Self::Cosine),
            "manhattan" => Ok(Self::Manhattan),
            _ => Err(format!(
                "[loss] triplet_distance \"{s}\" is not one of euclidean, cosine, manhattan"
            )),
        }
    }
}

impl<'de> serde::Deserialize<'de> for TripletDistance {
    fn deserialize<De: serde::Deserializer<'de>>(d: De) -> std::result::Result<Self, De::Error> {
        <String as serde::Deserialize>::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

pub struct TripletLoss {
    pub distance: TripletDistance,
    pub margin: f64,
}

impl TripletLoss {
    /// d(x, y) row by row: [N].
    fn distance(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok(match self.distance {
            TripletDistance::Euclidean => (x - y)?.sqr()?.sum(D::Minus1)?.sqrt()?,
            TripletDistance::Manhattan => (x - y)?.abs()?.sum(D::Minus1)?,
            TripletDistance::Cosine => {
                let (x, y) = (
                    model::pooling::l2_normalize(x)?,
                    model::pooling::l2_normalize(y)?,
                );
                (1.0 - (x * y)?.sum(D::Minus1)?)?
            }
        })
    }
}

impl Loss for TripletLoss {
    fn name(&self) -> &'static str {
        "TripletLoss"
    }

    fn forward(&self, e: &Embedded) -> Result<Tensor> {
        ensure!(
            e.columns.len() >= 3,
            "TripletLoss needs (anchor, positive, negative) rows: the batch has {} columns",
            e.columns.len()
        );
        let rows = |c: &Tensor| c.narrow(0, e.anchors.start, e.anchors.len());
        let (a, p, n) = (
            rows(&e.columns[0])?,
            rows(&e.columns[1])?,
            rows(&e.columns[2])?,
        );
        let d = (self.distance(&a, &p)? - self.distance(&a, &n)?)?;
        Ok((d + self.margin)?.relu()?.mean_all()?)
    }
}
