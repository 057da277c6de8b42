//! Evaluation as sentence-transformers does it: metrics as pure functions (Pearson, Spearman,
//! nDCG, MRR, MAP, recall) and evaluators (STS, retrieval, translation, MSE, response retrieval) that run an encoder over a data set,
//! named as sentence-transformers names them, with its metric keys.

pub mod embedding_similarity;
pub mod information_retrieval;
pub mod metrics;
pub mod mse;
pub mod response_retrieval;
pub mod suite;
pub mod translation;

pub use suite::{run_task, Suite, TaskKind, TaskSpec};
