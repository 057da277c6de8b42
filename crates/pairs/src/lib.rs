//! Pair files and the data pipeline: readers for `.jsonl`/`.jsonl.gz`/`.jsonl.zst` pair files,
//! dataset streams with shuffle buffers, the weighted multi-dataset sampler, in-batch duplicate
//! keys, tokenization workers and resumable positions. It has no ML dependency (tokenizers
//! only), so it builds and tests without candle.
//!
//! Data flow: [`reader::PairReader`] (one file) → [`dataset::DatasetStream`] (shards, passes,
//! shuffle buffer) → [`sampler::Sampler`] (datasets per batch, dedup) → [`loader::Loader`]
//! (threads: tokenization ahead of the trainer).

pub mod dataset;
pub mod dedup;
pub mod generate;
pub mod loader;
pub mod par;
pub mod parquet_rows;
pub mod prompts;
pub mod reader;
pub mod rng;
pub mod row;
pub mod sampler;
pub mod shape;
pub mod stats;
pub mod tokenize;

pub use dataset::{DatasetSpec, StreamState};
pub use loader::{Loader, LoaderConfig, LoaderError};
pub use prompts::ColumnPrompts;
pub use reader::{BadRowPolicy, SkipCounts};
pub use row::{parse_row, read_jsonl_rows, Row, RowError, RowFormat};
pub use sampler::{Sampler, SamplerConfig, SamplerState};
pub use shape::{RowShape, Scores};
pub use tokenize::{BatchTokenizer, TokenBatch, TokenColumn, TokenizeError};
