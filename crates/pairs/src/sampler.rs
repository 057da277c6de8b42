//! The weighted multi-dataset sampler: which datasets each batch comes from, and the rows that
//! fill it, with no text twice in a batch.
//!
//! Dataset choice follows a schedule rather than independent draws: each block of the schedule
//! holds every dataset in proportion to its weight (largest-remainder apportionment of 10,000
//! slots), shuffled with a seed derived from the block number. Shares therefore match the
//! weights to 1e-4 over every block instead of drifting with sampling noise, and the order is
//! still random (the 2021 script did the same with a shuffled list of dataset indices).

use crate::dataset::{DatasetSpec, DatasetStream, StreamState};
use crate::dedup::BatchDedup;
use crate::reader::{BadRowPolicy, SkipCounts};
use crate::rng::{mix, shuffle, Rng};
use crate::row::{Row, RowError};
use serde::{Deserialize, Serialize};

const SLOTS: f64 = 10_000.0;

#[derive(Clone, Debug)]
pub struct SamplerConfig {
    pub batch_size: usize,
    /// Each batch is split between this many different datasets.
    pub datasets_per_batch: usize,
    pub seed: u64,
    /// Shuffle shard order and rows (false: file order, for reproducing reference runs).
    pub shuffle: bool,
    pub policy: BadRowPolicy,
    /// Skip rows whose texts are already in the batch (the 2021 rule).
    pub dedup: bool,
}

/// Everything needed to continue exactly where a run stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplerState {
    /// Dataset names, to refuse a state saved for other data.
    pub datasets: Vec<String>,
    pub streams: Vec<StreamState>,
    pub block: u64,
    pub slot: usize,
    /// Rows skipped as bad so far (carried across resumes for the final report).
    pub skipped: SkipCounts,
    pub duplicates_skipped: u64,
}

/// One batch of raw rows.
#[derive(Clone, Debug)]
pub struct RawBatch {
    pub rows: Vec<Row>,
    /// The dataset of each row.
    pub dataset: Vec<usize>,
    /// Rows passed over because a text was already in the batch.
    pub duplicates_skipped: u64,
}

pub struct Sampler {
    pub streams: Vec<DatasetStream>,
    cfg: SamplerConfig,
    slots: Vec<usize>,
    block: u64,
    slot: usize,
    dedup: BatchDedup,
    duplicates_skipped: u64,
    skipped_before: SkipCounts,
}

/// Sampling probabilities from weights, or from row counts at a temperature: p ∝ rows^(1/T).
pub fn probabilities(weights: &[f64], rows: Option<(&[u64], f64)>) -> Vec<f64> {
    let raw: Vec<f64> = match rows {
        Some((rows, t)) => rows.iter().map(|&r| (r as f64).powf(1.0 / t)).collect(),
        None => weights.to_vec(),
    };
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|w| w / sum).collect()
}

/// Slots per dataset out of 10,000 (largest remainder; every dataset with a weight gets one).
fn apportion(p: &[f64]) -> Vec<usize> {
    let exact: Vec<f64> = p.iter().map(|x| x * SLOTS).collect();
    let mut n: Vec<usize> = exact
        .iter()
        .zip(p)
        .map(|(e, &x)| {
            if x > 0.0 {
                (e.floor() as usize).max(1)
            } else {
                0
            }
        })
        .collect();
    let total: usize = n.iter().sum();
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().take((SLOTS as usize).saturating_sub(total)) {
        if p[i] > 0.0 {
            n[i] += 1;
        }
    }
    n
}

impl Sampler {
    pub fn new(specs: Vec<DatasetSpec>, cfg: SamplerConfig) -> Result<Self, RowError> {
        if specs.is_empty() {
            return Err(RowError::Other("no datasets".into()));
        }
        for s in &specs {
            if !(s.weight.is_finite() && s.weight >= 0.0) {
                return Err(RowError::Other(format!(
                    "dataset {}: weight {} must be a number ≥ 0",
                    s.name, s.weight
                )));
            }
        }
        let live = specs.iter().filter(|s| s.weight > 0.0).count();
        if cfg.datasets_per_batch == 0 || cfg.datasets_per_batch > live {
            return Err(RowError::Other(format!(
                "datasets_per_batch is {} but {live} datasets have a weight above 0",
                cfg.datasets_per_batch
            )));
        }
        if cfg.batch_size < cfg.datasets_per_batch {
            return Err(RowError::Other(format!(
                "batch_size {} is smaller than datasets_per_batch {}",
                cfg.batch_size, cfg.datasets_per_batch
            )));
        }
        let weights: Vec<f64> = specs.iter().map(|s| s.weight).collect();
        let counts = apportion(&probabilities(&weights, None));
        let mut slots = Vec::new();
        for (i, &c) in counts.iter().enumerate() {
            slots.extend(std::iter::repeat_n(i, c));
        }
        let streams = specs
            .into_iter()
            .enumerate()
            .map(|(i, s)| DatasetStream::new(s, i, cfg.seed, cfg.shuffle, cfg.policy))
            .collect();
        let mut s = Self {
            streams,
            slots,
            block: 0,
            slot: 0,
            dedup: BatchDedup::default(),
            duplicates_skipped: 0,
            skipped_before: SkipCounts::default(),
            cfg,
        };
        s.shuffle_block();
        Ok(s)
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    fn shuffle_block(&mut self) {
        self.slots.sort_unstable();
        shuffle(
            &mut self.slots,
            &mut Rng::new(mix(&[self.cfg.seed, 3, self.block])),
        );
    }

    fn next_dataset(&mut self) -> usize {
        if self.slot == self.slots.len() {
            self.block += 1;
            self.slot = 0;
            self.shuffle_block();
        }
        self.slot += 1;
        self.slots[self.slot - 1]
    }

    /// Rows skipped as bad so far, all datasets together.
    pub fn skipped(&self) -> SkipCounts {
        let mut s = self.skipped_before.clone();
        for st in &self.streams {
            s.merge(&st.skips);
        }
        s
    }

    pub fn state(&self) -> SamplerState {
        SamplerState {
            datasets: self.streams.iter().map(|s| s.spec.name.clone()).collect(),
            streams: self.streams.iter().map(|s| s.state()).collect(),
            block: self.block,
            slot: self.slot,
            skipped: self.skipped(),
            duplicates_skipped: self.duplicates_skipped,
        }
    }

    pub fn restore(&mut self, st: &SamplerState) -> Result<(), RowError> {
        let names: Vec<String> = self.streams.iter().map(|s| s.spec.name.clone()).collect();
        if names != st.datasets {
            return Err(RowError::Other(format!(
                "the saved data position is for datasets [{}], but the recipe has [{}]",
                st.datasets.join(", "),
                names.join(", ")
            )));
        }
        if st.slot > self.slots.len() {
            return Err(RowError::Other(
                "the saved data position does not fit the datasets' weights".into(),
            ));
        }
        for (s, ss) in self.streams.iter_mut().zip(&st.streams) {
            s.restore(ss)?;
        }
        // Counts found while re-reading the current blocks were counted before the save.
        for s in &mut self.streams {
            s.skips = SkipCounts::default();
        }
        self.skipped_before = st.skipped.clone();
        self.block = st.block;
        self.slot = st.slot;
        self.duplicates_skipped = st.duplicates_skipped;
        self.shuffle_block();
        Ok(())
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> Result<RawBatch, RowError> {
        let k = self.cfg.datasets_per_batch;
        let mut chosen: Vec<usize> = Vec::with_capacity(k);
        while chosen.len() < k {
            let d = self.next_dataset();
            if !chosen.contains(&d) {
                chosen.push(d);
            }
        }
        let b = self.cfg.batch_size;
        self.dedup.clear(b);
        let mut rows = Vec::with_capacity(b);
        let mut dataset = Vec::with_capacity(b);
        let mut dups = 0u64;
        for (j, &d) in chosen.iter().enumerate() {
            let want = b / k + usize::from(j < b % k);
            let stream = &mut self.streams[d];
            let (mut got, mut rejected) = (0, 0);
            while got < want {
                let row = stream.next_row()?;
                if self.cfg.dedup && !self.dedup.admit(&row) {
                    dups += 1;
                    rejected += 1;
                    // Far more rejections than rows wanted: the dataset cannot fill the part.
                    if rejected > 100_000 + 10 * want {
                        return Err(RowError::Other(format!(
                            "dataset {}: cannot fill {want} rows of a batch without repeating a \
                             text; it has fewer distinct texts than that (lower batch_size, or \
                             set dedup = false)",
                            stream.spec.name
                        )));
                    }
                    continue;
                }
                rows.push(row);
                dataset.push(d);
                got += 1;
            }
        }
        self.duplicates_skipped += dups;
        Ok(RawBatch {
            rows,
            dataset,
            duplicates_skipped: dups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportionment_is_exact_and_keeps_small_datasets() {
        assert_eq!(apportion(&[0.5, 0.25, 0.25]), vec![5000, 2500, 2500]);
        let n = apportion(&probabilities(&[1.0, 1.0, 1.0], None));
        assert_eq!(n.iter().sum::<usize>(), 10_000);
        assert!(n.iter().all(|&x| x == 3333 || x == 3334));
        let n = apportion(&probabilities(&[1e6, 1.0], None));
        assert_eq!(n[1], 1);
    }

    #[test]
    fn temperature_flattens_sizes() {
        let p = probabilities(&[], Some((&[100, 10_000], 2.0)));
        assert!((p[0] - 10.0 / 110.0).abs() < 1e-12);
        let p = probabilities(&[], Some((&[100, 10_000], 1.0)));
        assert!((p[0] - 100.0 / 10_100.0).abs() < 1e-12);
    }
}
