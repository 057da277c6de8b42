use std::path::{Path, PathBuf};

/// Everything that can go wrong loading, running or saving a model. Each variant that comes from
/// a file names it, so a user knows which file to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Causes are not `source` fields: the message includes them, and a source would print twice.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}: invalid JSON: {cause}", path.display())]
    Json {
        path: PathBuf,
        cause: serde_json::Error,
    },
    /// The file parsed but says something we cannot use.
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
    #[error("{}: {msg}", path.display())]
    Weights { path: PathBuf, msg: String },
    #[error("{}: cannot load tokenizer: {msg}", path.display())]
    Tokenizer { path: PathBuf, msg: String },
    #[error("tokenization failed: {0}")]
    Tokenize(String),
    /// A setting given to pairtrain (a flag, a recipe key) that this model cannot take.
    #[error("{0}")]
    Setting(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(path: &Path, msg: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
    pub fn io(path: &Path, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

/// Configuration files (config.json, modules.json, …) are kilobytes; one larger than this is
/// refused before it is read (a model folder may come from anyone on the hub).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads and parses a JSON configuration file, naming the file in any error. Bounded: at most
/// `MAX_CONFIG_BYTES`, and serde_json's nesting limit (128) turns a deeply nested file into an
/// error, not a stack overflow.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::invalid(
            path,
            format!("larger than {MAX_CONFIG_BYTES} bytes: not a configuration file"),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|cause| Error::Json {
        path: path.to_path_buf(),
        cause,
    })
}
