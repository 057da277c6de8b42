//! Models by their Hugging Face hub id (`org/name`): downloaded through the `hf-hub` crate into
//! the cache the Python tools share (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`), or
//! found there without any request when `HF_HUB_OFFLINE=1`. A folder that exists is always
//! used as it is, so a local path never reaches the network.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where models come from: the endpoint, the cache, a token, and whether the network may be used.
#[derive(Clone, Debug)]
pub struct HubConfig {
    pub endpoint: String,
    /// The `hub` folder of the cache (`models--org--name/…` below it).
    pub cache_dir: PathBuf,
    pub token: Option<String>,
    pub offline: bool,
    pub revision: String,
}

impl HubConfig {
    /// The configuration the Python tools read: `HF_ENDPOINT`, `HF_HUB_CACHE` or `HF_HOME`,
    /// `HF_TOKEN` (else `$HF_HOME/token`), `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let base = var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"));
            base.join("huggingface")
        });
        let token = var("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(home.join("token"))
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        Self {
            endpoint: var("HF_ENDPOINT")
                .unwrap_or_else(|| "https://huggingface.co".into())
                .trim_end_matches('/')
                .to_string(),
            cache_dir: var("HF_HUB_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join("hub")),
            token,
            offline: var("HF_HUB_OFFLINE")
                .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "ON" | "on" | "yes")),
            revision: "main".into(),
        }
    }
}

/// Whether `spec` reads as a hub id (`org/name`) rather than a path.
pub fn is_hub_id(spec: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match spec.split_once('/') {
        Some((org, name)) => ok(org) && ok(name),
        None => false,
    }
}

/// The files a sentence-transformers or Hugging Face model folder can have that pairtrain reads.
const TOP_FILES: &[&str] = &[
    "modules.json",
    "config.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "model.safetensors",
    "README.md",
];

/// The model folder for `spec`: the path itself when it exists, else the hub id resolved
/// through `cfg` (downloading what the cache lacks unless offline).
pub fn resolve(spec: &str, cfg: &HubConfig) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.exists() || !is_hub_id(spec) {
        return Ok(p.to_path_buf());
    }
    if cfg.offline {
        offline(spec, cfg)
    } else {
        download(spec, cfg)
    }
}

/// `resolve` with the environment's configuration.
pub fn resolve_env(spec: &str) -> Result<PathBuf> {
    resolve(spec, &HubConfig::from_env())
}

fn hub_error(spec: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid(
        Path::new(spec),
        format!("no such folder; as a Hugging Face hub id: {msg}"),
    )
}

/// The module folders of modules.json (`1_Pooling`, `2_Dense`, …), with the files each holds.
fn module_files(modules_json: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(modules_json) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in v.as_array().into_iter().flatten() {
        let path = m["path"].as_str().unwrap_or("");
        if path.is_empty() {
            continue;
        }
        for f in ["config.json", "model.safetensors"] {
            out.push(format!("{path}/{f}"));
        }
    }
    out
}

fn download(spec: &str, cfg: &HubConfig) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Repo, RepoType};
    let api = ApiBuilder::new()
        .with_endpoint(cfg.endpoint.clone())
        .with_cache_dir(cfg.cache_dir.clone())
        .with_token(cfg.token.clone())
        .build()
        .map_err(|e| hub_error(spec, format!("cannot set up the hub client: {e}")))?;
    let repo = api.repo(Repo::with_revision(
        spec.to_string(),
        RepoType::Model,
        cfg.revision.clone(),
    ));
    // The revision API lists the files, so only those that exist are asked for.
    let info = repo.info().map_err(|e| {
        hub_error(
            spec,
            format!(
                "cannot reach {} for this model ({e}); set HF_HUB_OFFLINE=1 to use the cache only",
                cfg.endpoint
            ),
        )
    })?;
    let listed: std::collections::HashSet<String> =
        info.siblings.iter().map(|s| s.rfilename.clone()).collect();
    let mut dir = None;
    let mut wanted: Vec<String> = TOP_FILES.iter().map(|s| s.to_string()).collect();
    let mut i = 0;
    while i < wanted.len() {
        let f = wanted[i].clone();
        i += 1;
        if !listed.contains(&f) {
            continue;
        }
        let path = repo
            .get(&f)
            .map_err(|e| hub_error(spec, format!("{f}: download failed: {e}")))?;
        if f == "modules.json" {
            wanted.extend(module_files(&path));
        }
        if dir.is_none() {
            dir = path.parent().map(Path::to_path_buf);
        }
    }
    for required in ["config.json", "tokenizer.json", "model.safetensors"] {
        if !listed.contains(required) {
            return Err(hub_error(
                spec,
                format!("the hub lists no {required} for this model (pairtrain needs it)"),
            ));
        }
    }
    dir.ok_or_else(|| hub_error(spec, "no files"))
}

fn offline(spec: &str, cfg: &HubConfig) -> Result<PathBuf> {
    let cache = hf_hub::Cache::new(cfg.cache_dir.clone());
    let repo = cache.repo(hf_hub::Repo::with_revision(
        spec.to_string(),
        hf_hub::RepoType::Model,
        cfg.revision.clone(),
    ));
    let mut dir = None;
    for required in ["config.json", "tokenizer.json", "model.safetensors"] {
        match repo.get(required) {
            Some(p) => dir = p.parent().map(Path::to_path_buf),
            None => {
                return Err(hub_error(
                    spec,
                    format!(
                        "HF_HUB_OFFLINE is set and {required} is not in the cache {} (revision \
                         {}); download the model once with the network on",
                        cfg.cache_dir.display(),
                        cfg.revision
                    ),
                ))
            }
        }
    }
    let dir = dir.expect("set above");
    if let Some(m) = repo.get("modules.json") {
        for f in module_files(&m) {
            if f.ends_with("config.json") && repo.get(&f).is_none() {
                return Err(hub_error(
                    spec,
                    format!("HF_HUB_OFFLINE is set and {f} is not in the cache"),
                ));
            }
        }
    }
    Ok(dir)
}
