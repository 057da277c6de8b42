//! Evaluation as sentence-transformers does it: metrics as pure functions (Pearson, Spearman,
//! nDCG, MRR, MAP, recall) and evaluators (STS, retrieval) that run an encoder over a data set,
//! named as sentence-transformers names them, with its metric keys.

pub mod embedding_similarity;
pub mod information_retrieval;
pub mod metrics;
pub mod suite;

pub use suite::{run_task, Suite, TaskKind, TaskSpec};
