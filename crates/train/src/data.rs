//! A simple in-memory reader of JSONL pair files for the trainer, behind the `BatchSource`
//! interface the streaming pipeline (crate `pairs`) plugs into.

use anyhow::{bail, Result};
use model::rng::Rng;
use pairs::Row;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where a data source stands, saved in checkpoints so a resumed run sees the same batches.
pub type SourceState = serde_json::Value;

pub trait BatchSource {
    /// The next `n` rows.
    fn next_batch(&mut self, n: usize) -> Result<Vec<Row>>;
    fn state(&self) -> SourceState;
    fn restore(&mut self, state: &SourceState) -> Result<()>;
    /// A short description for logs and the model card.
    fn describe(&self) -> String;
}

/// Every row of the given files, in file order, cycled; with `shuffle`, each pass is a fresh
/// permutation drawn from `seed` and the pass number.
pub struct InMemoryPairs {
    rows: Vec<Row>,
    files: Vec<String>,
    shuffle: bool,
    seed: u64,
    order: Vec<usize>,
    pos: Position,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
struct Position {
    epoch: u64,
    index: usize,
}

impl InMemoryPairs {
    pub fn load(paths: &[&Path], shuffle: bool, seed: u64) -> Result<Self> {
        let mut rows = Vec::new();
        for p in paths {
            rows.extend(pairs::read_jsonl_rows(p)?);
        }
        if rows.len() < 2 {
            bail!(
                "the training data has {} rows; at least 2 are needed",
                rows.len()
            );
        }
        let mut s = Self {
            order: (0..rows.len()).collect(),
            rows,
            files: paths.iter().map(|p| p.display().to_string()).collect(),
            shuffle,
            seed,
            pos: Position { epoch: 0, index: 0 },
        };
        s.reorder();
        Ok(s)
    }

    fn reorder(&mut self) {
        self.order = (0..self.rows.len()).collect();
        if self.shuffle {
            let mut rng = Rng::new(self.seed ^ self.pos.epoch.wrapping_mul(0x9E37_79B9));
            for i in (1..self.order.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                self.order.swap(i, j);
            }
        }
    }
}

impl BatchSource for InMemoryPairs {
    fn next_batch(&mut self, n: usize) -> Result<Vec<Row>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.pos.index == self.order.len() {
                self.pos = Position {
                    epoch: self.pos.epoch + 1,
                    index: 0,
                };
                self.reorder();
            }
            out.push(self.rows[self.order[self.pos.index]].clone());
            self.pos.index += 1;
        }
        Ok(out)
    }

    fn state(&self) -> SourceState {
        serde_json::to_value(self.pos).unwrap_or_default()
    }

    fn restore(&mut self, state: &SourceState) -> Result<()> {
        let pos: Position = serde_json::from_value(state.clone())?;
        if pos.index > self.rows.len() {
            bail!(
                "checkpoint data position {} is past the {} rows",
                pos.index,
                self.rows.len()
            );
        }
        self.pos = pos;
        self.reorder();
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} rows from {}", self.rows.len(), self.files.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_order_cycles_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        let body: String = (0..5).map(|i| format!("[\"a{i}\", \"p{i}\"]\n")).collect();
        std::fs::write(&p, body).unwrap();
        let mut d = InMemoryPairs::load(&[&p], false, 1).unwrap();
        let b: Vec<String> = d
            .next_batch(3)
            .unwrap()
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        assert_eq!(b, ["a0", "a1", "a2"]);
        let state = d.state();
        let b: Vec<String> = d
            .next_batch(3)
            .unwrap()
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        assert_eq!(b, ["a3", "a4", "a0"]);
        let mut d2 = InMemoryPairs::load(&[&p], false, 1).unwrap();
        d2.restore(&state).unwrap();
        let b2: Vec<String> = d2
            .next_batch(3)
            .unwrap()
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        assert_eq!(b, b2);
    }

    #[test]
    fn shuffled_passes_resume_identically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        let body: String = (0..7).map(|i| format!("[\"a{i}\", \"p{i}\"]\n")).collect();
        std::fs::write(&p, body).unwrap();
        let mut d = InMemoryPairs::load(&[&p], true, 9).unwrap();
        d.next_batch(5).unwrap();
        let state = d.state();
        let rest = d.next_batch(12).unwrap();
        let mut d2 = InMemoryPairs::load(&[&p], true, 9).unwrap();
        d2.restore(&state).unwrap();
        assert_eq!(rest, d2.next_batch(12).unwrap());
    }
}
