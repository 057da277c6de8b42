//! Training: the losses (one file each, named as sentence-transformers names them), AdamW with
//! warmup/decay and clipping, the training loop, checkpoints and exact resume.

pub mod card;
pub mod checkpoint;
pub mod data;
pub mod losses;
pub mod optim;
pub mod plot;
pub mod recipe;
pub mod schedule;
pub mod trainer;

pub use recipe::Recipe;
pub use trainer::{StepRecord, Trainer};
