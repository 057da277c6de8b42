//! A sentence-embedding model as sentence-transformers sees it: a transformer, a pooling step and
//! optional normalisation, loaded from a sentence-transformers folder or a plain Hugging Face
//! folder, with fast batched inference.

use crate::config::ModelConfig;
use crate::error::{read_json, Error, Result};
use crate::params::ParamSource;
use crate::pooling::{l2_normalize, pad_batch, Pooling};
use crate::tokenize::TextTokenizer;
use crate::{build_encoder, Encoder};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Choices a caller can override when loading.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Overrides the folder's max_seq_length.
    pub max_seq_length: Option<usize>,
    /// Overrides whether embeddings are L2-normalised (default: what modules.json says).
    pub normalize: Option<bool>,
    /// Overrides the pooling mode.
    pub pooling: Option<Pooling>,
    /// The dtype the weights are stored in (default f32).
    pub dtype: Option<DType>,
    /// The dtype activations run in, when it differs from the weights' (bf16 over f32 master
    /// weights for mixed-precision training).
    pub compute_dtype: Option<DType>,
    /// Run batches padded to their longest text instead of packed (`crate::packing`; packing is
    /// the default on the CPU).
    pub padded: bool,
}

pub struct SentenceModel {
    pub encoder: Box<dyn Encoder>,
    pub tokenizer: TextTokenizer,
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: usize,
    /// A Dense module after pooling (a projection), before normalisation.
    pub dense: Option<crate::dense::Dense>,
    /// Text put before every input (the folder's default prompt, e.g. e5's `query: `), as
    /// sentence-transformers' `encode` does with `default_prompt_name`.
    pub prompt: Option<String>,
    /// The named prompts of config_sentence_transformers.json (`prompts`), for `--prompt-name`.
    pub prompts: std::collections::BTreeMap<String, String>,
    /// Which of `prompts` is the default (`default_prompt_name`).
    pub default_prompt_name: Option<String>,
    /// Whether pooling takes in the prompt's tokens (the Pooling module's `include_prompt`).
    pub include_prompt: bool,
    /// The dimensions `encode` keeps (sentence-transformers' `truncate_dim`: the first N of a
    /// Matryoshka-trained embedding, cut after normalisation and not renormalised); `None` keeps
    /// all. Training always sees the full embedding.
    pub truncate_dim: Option<usize>,
    /// How sentence-transformers compares this model's embeddings (`similarity_fn_name`:
    /// "cosine", "dot", …); a model trained with dot-product scores is saved with "dot".
    pub similarity_fn_name: String,
    /// The folder the model was loaded from.
    pub dir: PathBuf,
    /// The folder holding config.json, the weights and the tokenizer (the Transformer module's).
    pub transformer_dir: PathBuf,
    pub device: Device,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

/// Where the parts of a model live, read from modules.json (or defaults for a plain HF folder).
struct Layout {
    transformer_dir: PathBuf,
    pooling: Option<Pooling>,
    include_prompt: bool,
    dense: Option<PathBuf>,
    normalize: bool,
}

fn read_layout(dir: &Path) -> Result<Layout> {
    let modules_path = dir.join("modules.json");
    if !modules_path.is_file() {
        // A plain Hugging Face folder: mean pooling, no normalisation (as sentence-transformers
        // does when it finds no modules.json).
        return Ok(Layout {
            transformer_dir: dir.to_path_buf(),
            pooling: None,
            include_prompt: true,
            dense: None,
            normalize: false,
        });
    }
    let modules: Vec<ModuleEntry> = read_json(&modules_path)?;
    let mut layout = Layout {
        transformer_dir: dir.to_path_buf(),
        pooling: None,
        include_prompt: true,
        dense: None,
        normalize: false,
    };
    let mut saw_transformer = false;
    for m in &modules {
        // A module path is a folder inside the model folder ("" is the folder itself): never
        // one that leads out of it.
        if !m.path.is_empty() {
            if let Some(why) = hub::names::unsafe_path_reason(&m.path) {
                return Err(Error::invalid(
                    &modules_path,
                    format!("module path {:?} refused: {why}", m.path),
                ));
            }
        }
        let last = m.kind.rsplit('.').next().unwrap_or(&m.kind);
        match last {
            "Transformer" => {
                saw_transformer = true;
                layout.transformer_dir = dir.join(&m.path);
            }
            "Pooling" => {
                let config = dir.join(&m.path).join("config.json");
                layout.pooling = Some(Pooling::load(&config)?);
                layout.include_prompt = Pooling::load_include_prompt(&config)?;
            }
            "Dense" if layout.dense.is_none() && !layout.normalize => {
                layout.dense = Some(dir.join(&m.path))
            }
            "Dense" => {
                return Err(Error::invalid(
                    &modules_path,
                    "only one Dense module, before Normalize, is supported",
                ))
            }
            "Normalize" => layout.normalize = true,
            other => {
                return Err(Error::invalid(
                    &modules_path,
                    format!("module type \"{other}\" ({}) is not supported", m.kind),
                ))
            }
        }
    }
    if !saw_transformer {
        return Err(Error::invalid(&modules_path, "no Transformer module"));
    }
    Ok(layout)
}

/// The model folder `dir` names: itself when it exists, else, when it reads as a hub id
/// (`org/name`), the folder of the Hugging Face cache it resolves to (see `crate::hub`).
pub fn resolve_folder(dir: &Path) -> Result<PathBuf> {
    if !dir.exists() {
        if let Some(spec) = dir.to_str().filter(|s| crate::hub::is_hub_id(s)) {
            return crate::hub::resolve_env(spec);
        }
    }
    Ok(dir.to_path_buf())
}

/// The named prompts of config_sentence_transformers.json and the default's name. Names and
/// prompts must be strings.
pub fn read_prompts(dir: &Path) -> Result<(BTreeMap<String, String>, Option<String>)> {
    let path = dir.join("config_sentence_transformers.json");
    if !path.is_file() {
        return Ok((BTreeMap::new(), None));
    }
    let v: serde_json::Value = read_json(&path)?;
    let mut prompts = BTreeMap::new();
    match &v["prompts"] {
        serde_json::Value::Null => {}
        serde_json::Value::Object(o) => {
            for (name, p) in o {
                let Some(p) = p.as_str() else {
                    return Err(Error::invalid(
                        &path,
                        format!("prompts: \"{name}\" is {p}, not a string"),
                    ));
                };
                prompts.insert(name.clone(), p.to_string());
            }
        }
        other => {
            return Err(Error::invalid(
                &path,
                format!("prompts is {other}, not an object of name: prompt"),
            ))
        }
    }
    let default = v["default_prompt_name"].as_str().map(str::to_string);
    Ok((prompts, default))
}

/// The default prompt of config_sentence_transformers.json: `prompts[default_prompt_name]`.
pub fn read_default_prompt(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("config_sentence_transformers.json");
    if !path.is_file() {
        return Ok(None);
    }
    let v: serde_json::Value = read_json(&path)?;
    let Some(name) = v["default_prompt_name"].as_str() else {
        return Ok(None);
    };
    match v["prompts"][name].as_str() {
        Some(p) => Ok(Some(p.to_string())),
        None => Err(Error::invalid(
            &path,
            format!("default_prompt_name \"{name}\" is not in prompts"),
        )),
    }
}

/// `truncate_dim` of config_sentence_transformers.json (sentence-transformers 3+ saves the
/// dimension a model was loaded with there); `None` when absent or null.
pub fn read_truncate_dim(dir: &Path) -> Result<Option<usize>> {
    let path = dir.join("config_sentence_transformers.json");
    if !path.is_file() {
        return Ok(None);
    }
    let v: serde_json::Value = read_json(&path)?;
    match &v["truncate_dim"] {
        serde_json::Value::Null => Ok(None),
        t => match t.as_u64() {
            Some(d) if d <= u32::MAX as u64 => Ok(Some(d as usize)),
            _ => Err(Error::invalid(
                &path,
                format!("truncate_dim is {t}, not a whole number of dimensions"),
            )),
        },
    }
}

/// `similarity_fn_name` of config_sentence_transformers.json; "cosine" when the folder does not
/// say (sentence-transformers' default).
pub fn read_similarity_fn_name(dir: &Path) -> Result<String> {
    let path = dir.join("config_sentence_transformers.json");
    if !path.is_file() {
        return Ok("cosine".into());
    }
    let v: serde_json::Value = read_json(&path)?;
    Ok(v["similarity_fn_name"]
        .as_str()
        .unwrap_or("cosine")
        .to_string())
}

/// sentence_bert_config.json, then tokenizer_config.json's `model_max_length`, then the
/// position-embedding table: the order sentence-transformers falls back in.
fn read_max_seq_length(dir: &Path, cfg: &ModelConfig) -> Result<usize> {
    let sbert = dir.join("sentence_bert_config.json");
    if sbert.is_file() {
        let v: serde_json::Value = read_json(&sbert)?;
        if let Some(n) = v.get("max_seq_length").and_then(|x| x.as_u64()) {
            return Ok(n as usize);
        }
    }
    let tc = dir.join("tokenizer_config.json");
    if tc.is_file() {
        let v: serde_json::Value = read_json(&tc)?;
        // transformers writes a huge sentinel (1e30) when the length is unknown.
        if let Some(n) = v.get("model_max_length").and_then(|x| x.as_f64()) {
            if n >= 1.0 && n <= cfg.max_tokens() as f64 {
                return Ok(n as usize);
            }
        }
    }
    Ok(cfg.max_tokens())
}

/// Reads a safetensors file onto `device`, naming the file in any error (missing, truncated,
/// corrupt header).
pub fn load_safetensors(
    path: &Path,
    device: &Device,
) -> Result<std::collections::HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(Error::Weights {
            path: path.to_path_buf(),
            msg: "not found (only model.safetensors weights are supported)".into(),
        });
    }
    let weights_err = |msg: String| Error::Weights {
        path: path.to_path_buf(),
        msg,
    };
    let file = std::fs::File::open(path).map_err(|e| weights_err(format!("cannot open: {e}")))?;
    // Mapped, not read: the file's pages come from the page cache, where reading it whole into
    // a buffer first made the kernel zero as many fresh pages again (a tenth of encoding 2,000
    // short texts on a VM). The header is checked against the file's length before any tensor
    // is read.
    // SAFETY: the mapping is read-only and dropped before returning; a file truncated by
    // another process meanwhile is the one case this cannot guard against (as with any mmap).
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| weights_err(format!("cannot map: {e}")))?;
    candle_core::safetensors::load_buffer(&map, device)
        .map_err(|e| weights_err(format!("cannot read safetensors: {e}")))
}

/// The tokenizer of a model folder as the model uses it (truncating at its max_seq_length, or
/// `max_seq_length` when given) and its padding id, without loading the weights.
pub fn load_tokenizer(dir: &Path, max_seq_length: Option<usize>) -> Result<(TextTokenizer, u32)> {
    let dir = &resolve_folder(dir)?;
    if !dir.is_dir() {
        return Err(Error::invalid(dir, "model folder not found"));
    }
    let tdir = read_layout(dir)?.transformer_dir;
    let cfg = ModelConfig::load(&tdir.join("config.json"))?;
    let max = match max_seq_length {
        Some(n) => n,
        None => read_max_seq_length(&tdir, &cfg)?,
    };
    let tok = TextTokenizer::load(&tdir.join("tokenizer.json"), max)?;
    Ok((tok, cfg.pad_token_id))
}

impl SentenceModel {
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::load_on(dir, opts, &Device::Cpu)
    }

    pub fn load_on(dir: &Path, opts: &LoadOptions, device: &Device) -> Result<Self> {
        let dir = &resolve_folder(dir)?;
        if !dir.is_dir() {
            return Err(Error::invalid(dir, "model folder not found"));
        }
        let layout = read_layout(dir)?;
        let tdir = &layout.transformer_dir;
        let cfg = ModelConfig::load(&tdir.join("config.json"))?;
        let max_seq_length = match opts.max_seq_length {
            Some(n) => n,
            None => read_max_seq_length(tdir, &cfg)?,
        };
        let usable = cfg.max_tokens();
        if max_seq_length == 0 || max_seq_length > usable {
            return Err(Error::invalid(
                &tdir.join("config.json"),
                format!(
                    "max_seq_length {max_seq_length} must be between 1 and {usable} (the positions \
                     max_position_embeddings {} allows)",
                    cfg.max_position_embeddings
                ),
            ));
        }
        let weights_path = tdir.join("model.safetensors");
        let tensors = load_safetensors(&weights_path, device)?;
        let dtype = opts.dtype.unwrap_or(DType::F32);
        let src = ParamSource::from_file(&weights_path, tensors, crate::prefixes(&cfg), dtype);
        let mut encoder = build_encoder(&cfg, src)?;
        encoder.config_mut().compute_dtype = opts.compute_dtype.filter(|&d| d != dtype);
        encoder.config_mut().padded = opts.padded;
        // bf16 on the CPU: the linear layers (nearly all the arithmetic) multiply bf16 packings
        // of their weights; training drops them (`Params::make_trainable`) and runs the
        // composed bf16 ops instead.
        if device.is_cpu() && dtype == DType::F32 && opts.compute_dtype == Some(DType::BF16) {
            encoder.params_mut().pack_linears_bf16()?;
        }
        let tokenizer = TextTokenizer::load(&tdir.join("tokenizer.json"), max_seq_length)?;
        let dense = match &layout.dense {
            Some(d) => {
                let dense = crate::dense::Dense::load(d, device)?;
                if dense.in_features != cfg.hidden_size {
                    return Err(Error::invalid(
                        &d.join("config.json"),
                        format!(
                            "in_features {} is not the transformer's hidden size {}",
                            dense.in_features, cfg.hidden_size
                        ),
                    ));
                }
                Some(dense)
            }
            None => None,
        };
        let mut model = Self {
            encoder,
            tokenizer,
            pooling: opts.pooling.or(layout.pooling).unwrap_or(Pooling::Mean),
            normalize: opts.normalize.unwrap_or(layout.normalize),
            max_seq_length,
            dense,
            prompt: read_default_prompt(dir)?,
            prompts: BTreeMap::new(),
            default_prompt_name: None,
            include_prompt: layout.include_prompt,
            similarity_fn_name: read_similarity_fn_name(dir)?,
            truncate_dim: None,
            dir: dir.to_path_buf(),
            transformer_dir: tdir.clone(),
            device: device.clone(),
        };
        (model.prompts, model.default_prompt_name) = read_prompts(dir)?;
        if let Some(d) = read_truncate_dim(dir)? {
            model.set_truncate_dim(Some(d), "").map_err(|_| {
                Error::invalid(
                    &dir.join("config_sentence_transformers.json"),
                    format!(
                        "truncate_dim {d} is not between 1 and the model's {} dimensions",
                        model.full_dim()
                    ),
                )
            })?;
        }
        Ok(model)
    }

    /// The same model over the same weights, recording no gradients (inference during training).
    pub fn detached(&self) -> SentenceModel {
        SentenceModel {
            encoder: self.encoder.detached(),
            tokenizer: self.tokenizer.clone(),
            pooling: self.pooling,
            normalize: self.normalize,
            max_seq_length: self.max_seq_length,
            dense: self.dense.as_ref().map(|d| d.detached()),
            prompt: self.prompt.clone(),
            prompts: self.prompts.clone(),
            default_prompt_name: self.default_prompt_name.clone(),
            include_prompt: self.include_prompt,
            similarity_fn_name: self.similarity_fn_name.clone(),
            truncate_dim: self.truncate_dim,
            dir: self.dir.clone(),
            transformer_dir: self.transformer_dir.clone(),
            device: self.device.clone(),
        }
    }

    /// The dimension of what `encode` returns: `truncate_dim` when set, else `full_dim`.
    pub fn dim(&self) -> usize {
        self.truncate_dim.unwrap_or_else(|| self.full_dim())
    }

    /// The sentence embedding's dimension before any truncation (the Dense module's output, if
    /// there is one): what training sees.
    pub fn full_dim(&self) -> usize {
        match &self.dense {
            Some(d) => d.out_features,
            None => self.encoder.config().hidden_size,
        }
    }

    /// Keeps the first `dim` dimensions of every embedding `encode` returns (`None`: all). An
    /// error when the model has fewer; `what` names where the number came from.
    pub fn set_truncate_dim(&mut self, dim: Option<usize>, what: &str) -> Result<()> {
        if let Some(d) = dim {
            if d == 0 || d > self.full_dim() {
                return Err(Error::Setting(format!(
                    "{what}: {d} is not between 1 and the model's {} dimensions",
                    self.full_dim()
                )));
            }
        }
        self.truncate_dim = dim;
        Ok(())
    }

    /// Makes the named prompt (of `prompts`) the one put before every input; an error lists the
    /// names there are. `what` names where the name came from (`--prompt-name`).
    pub fn use_prompt_name(&mut self, name: &str, what: &str) -> Result<()> {
        match self.prompts.get(name) {
            Some(p) => {
                self.prompt = Some(p.clone()).filter(|p| !p.is_empty());
                Ok(())
            }
            None => Err(Error::Setting(format!(
                "{what} \"{name}\": the model has no such prompt ({})",
                if self.prompts.is_empty() {
                    "it has none".to_string()
                } else {
                    format!(
                        "its prompts: {}",
                        self.prompts.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                }
            ))),
        }
    }

    /// The text the model embeds for `text` (its prompt first).
    pub fn prompted<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.prompt {
            Some(p) => format!("{p}{text}").into(),
            None => text.into(),
        }
    }

    pub fn pad_id(&self) -> u32 {
        self.encoder.config().pad_token_id
    }

    /// Sentence embeddings [B, D] of already tokenized rows, padded to the longest row. Records
    /// a gradient graph only if the encoder's parameters are trainable.
    pub fn embed_ids(&self, rows: &[&[u32]]) -> Result<Tensor> {
        let (ids, mask) = pad_batch(rows, self.pad_id(), 1, &self.device)?;
        self.embed_padded(self.encoder.as_ref(), &ids, &mask, None)
    }

    /// The length of `prompt` in tokens as sentence-transformers counts it for pooling
    /// (`prompt_length`: the leading special token included, a trailing one not).
    pub fn prompt_length(&self, prompt: &str) -> Result<u32> {
        pairs::tokenize::prompt_length(self.tokenizer.inner(), prompt)
            .map_err(|e| Error::Tokenize(e.to_string()))
    }

    /// Sentence embeddings [B, D] of padded ids [B, L] and mask [B, L] through `encoder` (this
    /// model's, or a detached copy of it), with dropout when `dropout` is given.
    pub fn embed_padded(
        &self,
        encoder: &dyn Encoder,
        ids: &Tensor,
        mask: &Tensor,
        dropout: Option<&mut crate::Dropout>,
    ) -> Result<Tensor> {
        self.embed_pooled(encoder, ids, mask, None, dropout)
    }

    /// As `embed_padded`; with `prompt_lengths`, pooling leaves out each row's prompt tokens
    /// (`include_prompt = false`).
    pub fn embed_pooled(
        &self,
        encoder: &dyn Encoder,
        ids: &Tensor,
        mask: &Tensor,
        prompt_lengths: Option<&[u32]>,
        dropout: Option<&mut crate::Dropout>,
    ) -> Result<Tensor> {
        // Pooling, normalisation and everything after (losses, scores) run in f32.
        let tokens = encoder.forward(ids, mask, dropout)?.to_dtype(DType::F32)?;
        let mut pooled = match prompt_lengths {
            Some(p) => self.pooling.apply_without_prompt(&tokens, mask, p)?,
            None => self.pooling.apply(&tokens, mask)?,
        };
        if let Some(d) = &self.dense {
            pooled = d.forward(&pooled)?;
        }
        if self.normalize {
            l2_normalize(&pooled)
        } else {
            Ok(pooled)
        }
    }

    /// Embeds `texts` in batches of `batch_size`, longest first so each batch pads little, and
    /// returns one row per text in input order. `progress` is told how many texts each finished
    /// batch held.
    pub fn encode(
        &self,
        texts: &[&str],
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let ids = match &self.prompt {
            Some(_) => {
                let prompted: Vec<_> = texts.iter().map(|t| self.prompted(t)).collect();
                let refs: Vec<&str> = prompted.iter().map(|t| t.as_ref()).collect();
                self.tokenizer.encode_batch(&refs)?
            }
            None => self.tokenizer.encode_batch(texts)?,
        };
        let excluded = match &self.prompt {
            Some(p) if !self.include_prompt => Some(self.prompt_length(p)?),
            _ => None,
        };
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = vec![Vec::new(); ids.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let (ids, mask) = pad_batch(&rows, self.pad_id(), 1, &self.device)?;
            let lengths = excluded.map(|n| vec![n; rows.len()]);
            let emb =
                self.embed_pooled(self.encoder.as_ref(), &ids, &mask, lengths.as_deref(), None)?;
            let emb = emb.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            for (&i, mut e) in chunk.iter().zip(emb) {
                e.truncate(self.dim());
                out[i] = e;
            }
            progress(chunk.len());
        }
        Ok(out)
    }
}
