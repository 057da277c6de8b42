//! Tokenization with Hugging Face `tokenizers`, with the truncation and padding stored in
//! tokenizer.json replaced by the model's own `max_seq_length` (sentence-transformers does the
//! same; the files often say 128 while the model uses 256 or 384).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationParams};

#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    max_len: usize,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and truncates at `max_len` tokens (special tokens included).
    pub fn load(path: &Path, max_len: usize) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::invalid(
                path,
                "not found (a model folder needs tokenizer.json)",
            ));
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        inner.with_padding(None);
        let mut t = Self {
            inner,
            path: path.to_path_buf(),
            max_len,
        };
        t.set_max_len(max_len)?;
        Ok(t)
    }

    /// A tokenizer with an empty vocabulary, for models fed token ids directly (benchmarks).
    pub fn placeholder(max_len: usize) -> Self {
        Self {
            inner: Tokenizer::new(tokenizers::models::wordlevel::WordLevel::default()),
            path: PathBuf::from("<none>"),
            max_len,
        }
    }

    pub fn set_max_len(&mut self, max_len: usize) -> Result<()> {
        self.inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                msg: e.to_string(),
            })?;
        self.max_len = max_len;
        Ok(())
    }

    /// The Hugging Face tokenizer, with the model's truncation.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Token ids of each text, special tokens added, truncated, unpadded. Uses all cores.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let enc = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenize(e.to_string()))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    pub fn token_to_id(&self, tok: &str) -> Option<u32> {
        self.inner.token_to_id(tok)
    }
}
