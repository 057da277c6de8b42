//! Training: the losses over embeddings (one file each, named as sentence-transformers names
//! them), the explicit training step with its gather and all-reduce hooks, GradCache, AdamW with
//! warmup/decay and clipping, the training loop, checkpoints and exact resume.

pub mod agreement;
pub mod arrivals;
pub mod card;
pub mod checkpoint;
pub mod data;
pub mod gradcache;
pub mod guide;
pub mod losses;
#[cfg(feature = "mpi")]
pub mod mpi_group;
#[cfg(feature = "nccl")]
pub mod nccl_group;
pub mod optim;
pub mod plot;
pub mod process_group;
pub mod push;
pub mod recipe;
pub mod schedule;
pub mod sources;
pub mod step;
pub mod teacher_cache;
pub mod trainer;
pub mod watchdog;

pub use recipe::Recipe;
pub use trainer::{StepRecord, Trainer};
