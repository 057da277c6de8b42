//! MSELoss (Reimers & Gurevych, 2020, "Making Monolingual Sentence Embeddings Multilingual using
//! Knowledge Distillation"): every text of a row — the source and its translations — is pulled
//! towards the teacher's embedding of the source. As sentence-transformers 6 computes it: the
//! mean squared error over rows and dimensions for each column, averaged over the columns.

use super::{Embedded, Loss};
use anyhow::{ensure, Context, Result};
use candle_core::Tensor;

pub struct MSELoss;

impl Loss for MSELoss {
    fn name(&self) -> &'static str {
        "MSELoss"
    }

    fn forward(&self, e: &Embedded) -> Result<Tensor> {
        let targets = e
            .targets
            .context("MSELoss needs the teacher's embeddings of the batch ([teacher] model)")?;
        let rows = &e.anchors;
        let t = targets.narrow(0, rows.start, rows.len())?;
        let mut per_column = Vec::with_capacity(e.columns.len());
        for c in e.columns {
            let s = c.narrow(0, rows.start, rows.len())?;
            ensure!(
                s.dims() == t.dims(),
                "student embeddings {:?} and teacher embeddings {:?} differ in shape (a Dense \
                 projection maps a student to the teacher's dimension)",
                s.dims(),
                t.dims()
            );
            per_column.push((s - &t)?.sqr()?.mean_all()?);
        }
        Ok(Tensor::stack(&per_column, 0)?.mean_all()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn by_hand() {
        let dev = Device::Cpu;
        let t = Tensor::new(&[[1f32, 0.0], [0.0, 1.0]], &dev).unwrap();
        let src = Tensor::new(&[[1f32, 0.0], [0.0, 0.0]], &dev).unwrap();
        let trg = Tensor::new(&[[0f32, 0.0], [0.0, 3.0]], &dev).unwrap();
        let cols = [src, trg];
        let texts = vec![vec!["a".into(), "b".into()], vec!["x".into(), "y".into()]];
        let mut e = Embedded::all(&cols, &texts);
        e.targets = Some(&t);
        // Column 0: (0 + 0 + 0 + 1) / 4; column 1: (1 + 0 + 0 + 4) / 4; mean of the two.
        let v = MSELoss.forward(&e).unwrap().to_scalar::<f32>().unwrap();
        assert!((v - (0.25 + 1.25) / 2.0).abs() < 1e-7, "{v}");
        // Row 1 alone: column 0 (0 + 1) / 2, column 1 (0 + 4) / 2.
        e.anchors = 1..2;
        let v = MSELoss.forward(&e).unwrap().to_scalar::<f32>().unwrap();
        assert!((v - (0.5 + 2.0) / 2.0).abs() < 1e-7, "{v}");
        e.targets = None;
        assert!(MSELoss.forward(&e).is_err());
    }
}
