//! What can go wrong talking to the hub or reading its cache. Every message names the repository
//! and, where there is one, the revision and the file, so that a user knows what failed.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name that came from the network, a recipe or the command line and cannot be a path in
    /// the cache (absolute, `..`, a backslash, a NUL, a drive prefix, …).
    #[error("{repo}@{revision}: refusing the name {name:?}: {why}")]
    UnsafeName {
        repo: String,
        revision: String,
        name: String,
        why: &'static str,
    },
    /// The request could not be made or answered (connection, timeout, TLS).
    #[error("{what}: cannot reach {endpoint}: {cause}{hint}")]
    Network {
        what: String,
        endpoint: String,
        cause: String,
        hint: &'static str,
    },
    /// The hub answered, but not with what was asked for.
    #[error("{what}: {msg}")]
    Hub { what: String, msg: String },
    /// Offline (`HF_HUB_OFFLINE=1`) and the cache lacks what is needed.
    #[error("{what}: HF_HUB_OFFLINE is set and {msg}")]
    NotCached { what: String, msg: String },
    /// Reading or writing the cache.
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: &std::path::Path, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            cause,
        }
    }
}
