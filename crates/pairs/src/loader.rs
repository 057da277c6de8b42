//! The pipeline that keeps the trainer fed: a sampler thread draws raw batches, N worker threads
//! tokenize them, and the trainer takes finished batches, in order, from a bounded queue.
//!
//! Memory is bounded by the shuffle buffers plus `workers + prefetch` batches in flight,
//! whatever the size of the data. Each batch travels with the sampler state *after* it, so the
//! state the loader reports is the position after the last batch the trainer took, not after
//! what is still queued: saving it and restarting gives the identical next batches.

use crate::reader::SkipCounts;
use crate::row::RowError;
use crate::sampler::{Sampler, SamplerState};
use crate::tokenize::{BatchTokenizer, TokenBatch, TokenizeError};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

#[derive(Clone, Debug)]
pub struct LoaderConfig {
    /// Tokenization threads.
    pub workers: usize,
    /// Finished batches waiting for the trainer.
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            prefetch: 4,
        }
    }
}

type Work = (
    u64,
    Result<(crate::sampler::RawBatch, SamplerState), LoaderError>,
);
type Done = (u64, Result<(TokenBatch, SamplerState), LoaderError>);

pub struct Loader {
    rx: Option<Receiver<Done>>,
    pending: BTreeMap<u64, Result<(TokenBatch, SamplerState), LoaderError>>,
    next: u64,
    state: SamplerState,
    producer: Option<JoinHandle<Sampler>>,
    workers: Vec<JoinHandle<()>>,
    tokenizer: BatchTokenizer,
    cfg: LoaderConfig,
    describe: String,
    names: Vec<String>,
    failed: Option<LoaderError>,
}

impl Loader {
    pub fn start(sampler: Sampler, tokenizer: BatchTokenizer, cfg: LoaderConfig) -> Self {
        let describe = sampler
            .streams
            .iter()
            .map(|s| {
                format!(
                    "{} ({}, weight {})",
                    s.spec.name,
                    crate::dataset::describe_files(&s.spec.files),
                    s.spec.weight
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let names = sampler
            .streams
            .iter()
            .map(|s| s.spec.name.clone())
            .collect();
        let mut l = Self {
            names,
            rx: None,
            pending: BTreeMap::new(),
            next: 0,
            state: sampler.state(),
            producer: None,
            workers: Vec::new(),
            tokenizer,
            cfg,
            describe,
            failed: None,
        };
        l.spawn(sampler);
        l
    }

    fn spawn(&mut self, mut sampler: Sampler) {
        let workers = self.cfg.workers.max(1);
        let (work_tx, work_rx) = bounded::<Work>(workers);
        let (done_tx, done_rx) = bounded::<Done>(self.cfg.prefetch.max(1));
        self.producer = Some(std::thread::spawn(move || {
            for seq in 0u64.. {
                let item = sampler
                    .next_batch()
                    .map(|b| (b, sampler.state()))
                    .map_err(|e| LoaderError::Data(Arc::new(e)));
                let failed = item.is_err();
                if work_tx.send((seq, item)).is_err() || failed {
                    break;
                }
            }
            sampler
        }));
        for _ in 0..workers {
            let rx = work_rx.clone();
            let tx: Sender<Done> = done_tx.clone();
            let tok = self.tokenizer.clone();
            self.workers.push(std::thread::spawn(move || {
                for (seq, item) in rx.iter() {
                    let out = item.and_then(|(raw, state)| {
                        tok.tokenize(raw.rows, raw.dataset, raw.duplicates_skipped)
                            .map(|b| (b, state))
                            .map_err(LoaderError::from)
                    });
                    if tx.send((seq, out)).is_err() {
                        break;
                    }
                }
            }));
        }
        self.rx = Some(done_rx);
        self.next = 0;
        self.pending.clear();
    }

    /// Stops the threads and returns the sampler (positioned somewhere ahead of `state`).
    fn stop(&mut self) -> Option<Sampler> {
        self.rx = None;
        self.pending.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        self.producer.take().and_then(|p| p.join().ok())
    }

    /// The next batch, in order.
    pub fn next_batch(&mut self) -> Result<TokenBatch, LoaderError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            if let Some(item) = self.pending.remove(&self.next) {
                self.next += 1;
                return match item {
                    Ok((batch, state)) => {
                        self.state = state;
                        Ok(batch)
                    }
                    Err(e) => {
                        self.failed = Some(e.clone());
                        Err(e)
                    }
                };
            }
            let rx = self.rx.as_ref().ok_or(LoaderError::Stopped)?;
            match rx.recv() {
                Ok((seq, item)) => {
                    self.pending.insert(seq, item);
                }
                Err(_) => return Err(LoaderError::ThreadsDied),
            }
        }
    }

    /// The position after the last batch returned.
    pub fn state(&self) -> &SamplerState {
        &self.state
    }

    /// Rows skipped as bad up to the last batch returned.
    pub fn skipped(&self) -> &SkipCounts {
        &self.state.skipped
    }

    /// Continues from `state` (saved by `state()`), discarding what was prefetched.
    pub fn restore(&mut self, state: &SamplerState) -> Result<(), LoaderError> {
        let mut sampler = self.stop().ok_or(LoaderError::ThreadsDied)?;
        sampler
            .restore(state)
            .map_err(|e| LoaderError::Data(Arc::new(e)))?;
        self.state = sampler.state();
        self.failed = None;
        self.spawn(sampler);
        Ok(())
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Dataset names, indexed as `TokenBatch::dataset`.
    pub fn dataset_names(&self) -> &[String] {
        &self.names
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why the loader could not hand out a batch. Clone, because a failure is kept and returned
/// again to every later call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoaderError {
    /// A bad row, an unreadable file, or a saved position that does not fit the data.
    #[error(transparent)]
    Data(Arc<RowError>),
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    #[error("the data loader is stopped")]
    Stopped,
    #[error("the data loader's threads stopped unexpectedly")]
    ThreadsDied,
}
