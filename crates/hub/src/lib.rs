//! The Hugging Face hub: models and datasets by repository id, downloaded into the cache the
//! Python tools share, or read from it alone with `HF_HUB_OFFLINE=1`.
//!
//! Everything a repository says is untrusted: its file names, the module paths of its
//! modules.json, its commit hashes and ETags become paths only through `names`, and its answers
//! are bounded in size and checked against the hashes the hub names files by (`client`). The cache
//! is huggingface_hub's layout (`cache`), both ways: a file either tool downloaded is found by the
//! other, and files a repository lacks are recorded as absent, as huggingface_hub records them.

pub mod cache;
pub mod client;
pub mod error;
pub mod names;
pub mod repo;
pub mod upload;

pub use cache::{Cache, Lookup};
pub use client::{Hub, HubConfig, RemoteFile, Snapshot};
pub use error::{Error, Result};
pub use repo::{HfRef, Repo, RepoKind};
pub use upload::{LocalFile, PushOptions, PushProgress, PushReport};
