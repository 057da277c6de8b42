//! One dataset as an endless, resumable stream of rows: its shards in an order reshuffled every
//! pass, read through a bounded shuffle buffer.
//!
//! The buffer is a block shuffle: `shuffle_buffer` consecutive rows (fewer at the end of a pass)
//! are read, permuted with a seed derived from (seed, dataset, block number), and handed out in
//! that order. Its position
//! is therefore a handful of integers (pass, shard, line where the block began, block number,
//! rows taken), and resuming re-reads that one block instead of storing its rows.

use crate::reader::{BadRowPolicy, PairReader, SkipCounts};
use crate::rng::{mix, shuffle, Rng};
use crate::row::{Row, RowError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A dataset as the recipe names it.
#[derive(Clone, Debug)]
pub struct DatasetSpec {
    pub name: String,
    pub files: Vec<PathBuf>,
    pub weight: f64,
    /// Rows in the shuffle buffer (memory: this many rows per dataset).
    pub shuffle_buffer: usize,
    /// The columns of Parquet files to read, in order (default: a known layout).
    pub columns: Option<Vec<String>>,
    /// The rows the loss takes; others are bad rows.
    pub shape: Option<crate::shape::RowShape>,
}

/// Where a stream stands; see the module comment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    pub pass: u64,
    /// Index into this pass's shard order.
    pub shard: usize,
    /// Lines of that shard read before the current block began.
    pub line: u64,
    pub block: u64,
    /// Rows of the current block already handed out.
    pub taken: usize,
}

pub struct DatasetStream {
    pub spec: DatasetSpec,
    seed: u64,
    shuffle: bool,
    policy: BadRowPolicy,
    order: Vec<usize>,
    pass: u64,
    shard: usize,
    reader: Option<PairReader>,
    /// Rows the open shard has given (an empty shard is one that gives none).
    reader_rows: u64,
    buffer: Vec<Row>,
    taken: usize,
    /// Position of the current block (what `state` reports).
    start: StreamState,
    next_block: u64,
    pub skips: SkipCounts,
}

impl DatasetStream {
    /// `index` tells datasets' seeds apart.
    pub fn new(
        spec: DatasetSpec,
        index: usize,
        seed: u64,
        shuffle: bool,
        policy: BadRowPolicy,
    ) -> Self {
        let mut s = Self {
            seed: mix(&[seed, index as u64]),
            order: (0..spec.files.len()).collect(),
            spec,
            shuffle,
            policy,
            pass: 0,
            shard: 0,
            reader: None,
            reader_rows: 0,
            buffer: Vec::new(),
            taken: 0,
            start: StreamState::default(),
            next_block: 0,
            skips: SkipCounts::default(),
        };
        s.set_order();
        s
    }

    fn set_order(&mut self) {
        self.order = (0..self.spec.files.len()).collect();
        if self.shuffle {
            shuffle(
                &mut self.order,
                &mut Rng::new(mix(&[self.seed, 1, self.pass])),
            );
        }
    }

    pub fn state(&self) -> StreamState {
        StreamState {
            taken: self.taken,
            ..self.start.clone()
        }
    }

    /// Passes completed so far (the reading position, which runs ahead of the rows handed out
    /// by up to one buffer).
    pub fn passes(&self) -> u64 {
        self.pass
    }

    /// Puts the stream where `state` says, re-reading the block it was in.
    pub fn restore(&mut self, state: &StreamState) -> Result<(), RowError> {
        if state.shard >= self.spec.files.len() {
            return Err(RowError::Other(format!(
                "dataset {}: saved shard {} but it has {} files; did its files change?",
                self.spec.name,
                state.shard,
                self.spec.files.len()
            )));
        }
        self.pass = state.pass;
        self.set_order();
        self.shard = state.shard;
        let mut r = PairReader::open_with(
            &self.spec.files[self.order[self.shard]],
            self.spec.columns.as_deref(),
        )?
        .with_shape(self.spec.shape.clone());
        r.skip_lines(state.line)?;
        self.reader = Some(r);
        self.reader_rows = state.line;
        self.next_block = state.block;
        self.fill()?;
        if state.taken > self.buffer.len() {
            return Err(RowError::Other(format!(
                "dataset {}: saved position is past its block; did its files change?",
                self.spec.name
            )));
        }
        self.taken = state.taken;
        Ok(())
    }

    /// The next row, reading (and shuffling) another block when this one is used up.
    pub fn next_row(&mut self) -> Result<Row, RowError> {
        if self.taken == self.buffer.len() {
            self.fill()?;
        }
        self.taken += 1;
        Ok(std::mem::take(&mut self.buffer[self.taken - 1]))
    }

    fn fill(&mut self) -> Result<(), RowError> {
        self.start = StreamState {
            pass: self.pass,
            shard: self.shard,
            line: self.reader.as_ref().map_or(0, |r| r.line()),
            block: self.next_block,
            taken: 0,
        };
        self.buffer.clear();
        self.taken = 0;
        let want = self.spec.shuffle_buffer.max(1);
        // Shards in a row that gave nothing: a whole pass of them means the dataset is empty.
        let mut empty_run = 0;
        while self.buffer.len() < want {
            if self.reader.is_none() {
                let path = &self.spec.files[self.order[self.shard]];
                self.reader = Some(
                    PairReader::open_with(path, self.spec.columns.as_deref())?
                        .with_shape(self.spec.shape.clone()),
                );
                self.reader_rows = 0;
            }
            let r = self.reader.as_mut().expect("opened above");
            // Bad rows are counted in the first pass only: the report is about the data.
            let mut later_pass = SkipCounts::default();
            let skips = if self.pass == 0 {
                &mut self.skips
            } else {
                &mut later_pass
            };
            while self.buffer.len() < want {
                match r.next_row(self.policy, skips)? {
                    Some(row) => {
                        self.buffer.push(row);
                        self.reader_rows += 1;
                    }
                    None => break,
                }
            }
            if self.buffer.len() == want {
                break;
            }
            // The shard ended.
            empty_run = if self.reader_rows == 0 {
                empty_run + 1
            } else {
                0
            };
            if empty_run >= self.spec.files.len() {
                return Err(RowError::Other(format!(
                    "dataset {} has no usable rows in {}",
                    self.spec.name,
                    describe_files(&self.spec.files)
                )));
            }
            self.reader = None;
            self.shard += 1;
            if self.shard == self.order.len() {
                self.shard = 0;
                self.pass += 1;
                self.set_order();
                // A block never spans two passes: each pass is a permutation of the data.
                if !self.buffer.is_empty() {
                    break;
                }
            }
        }
        if self.shuffle {
            let mut rng = Rng::new(mix(&[self.seed, 2, self.next_block]));
            shuffle(&mut self.buffer, &mut rng);
        }
        self.next_block += 1;
        Ok(())
    }
}

pub fn describe_files(files: &[PathBuf]) -> String {
    match files {
        [one] => one.display().to_string(),
        [first, ..] => format!("{} files ({} …)", files.len(), first.display()),
        [] => "no files".into(),
    }
}
