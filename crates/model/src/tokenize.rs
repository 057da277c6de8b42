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
        let bad = |msg: String| Error::Tokenizer {
            path: path.to_path_buf(),
            msg,
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if let Some(cfg) = tokenizer_config(path) {
            as_transformers_builds(&cfg, &mut json);
        }
        let mut inner: Tokenizer = serde_json::from_value(json).map_err(|e| bad(e.to_string()))?;
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

/// The tokenizer_config.json beside `tokenizer_json`, if there is a readable one.
fn tokenizer_config(tokenizer_json: &Path) -> Option<serde_json::Value> {
    let cfg = tokenizer_json.with_file_name("tokenizer_config.json");
    serde_json::from_str(&std::fs::read_to_string(cfg).ok()?).ok()
}

/// transformers 5 no longer uses every part of tokenizer.json: for some tokenizer classes it
/// rebuilds the pipeline in code and keeps only the vocabulary, so sentence-transformers
/// tokenizes differently from the file. The same rebuild here keeps the ids equal to theirs.
///
/// XLMRobertaTokenizer (XLM-R, multilingual-e5, paraphrase-multilingual-*): the normalizer is the
/// sentencepiece `Precompiled` map alone, and words are split on whitespace before `Metaspace`,
/// so runs of spaces and trailing whitespace give no lone `▁` token (the file's pipeline gives
/// one for trailing whitespace).
fn as_transformers_builds(cfg: &serde_json::Value, json: &mut serde_json::Value) {
    let class = cfg["tokenizer_class"].as_str().unwrap_or_default();
    if !matches!(class, "XLMRobertaTokenizer" | "XLMRobertaTokenizerFast") {
        return;
    }
    let add_prefix_space = cfg["add_prefix_space"].as_bool().unwrap_or(true);
    let normalizer = &json["normalizer"];
    let precompiled = if normalizer["type"] == "Precompiled" {
        Some(normalizer.clone())
    } else {
        normalizer["normalizers"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["type"] == "Precompiled").cloned())
    };
    json["normalizer"] = precompiled.unwrap_or(serde_json::Value::Null);
    json["pre_tokenizer"] = serde_json::json!({
        "type": "Sequence",
        "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": "\u{2581}",
             "prepend_scheme": if add_prefix_space { "always" } else { "never" },
             "split": true}
        ]
    });
}
