//! Pair files and the data pipeline: readers for `.jsonl`/`.jsonl.gz`/`.jsonl.zst` pair files,
//! dataset specs, the weighted multi-dataset sampler with shuffle buffers, in-batch duplicate
//! keys, tokenization workers and resumable positions. It has no ML dependency, so it builds and
//! tests without candle.

pub mod row;

pub use row::{parse_row, read_jsonl_rows, Row, RowError};
