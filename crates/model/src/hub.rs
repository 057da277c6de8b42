//! Models by their Hugging Face hub id (`org/name`, or `org/name@revision`): the files a
//! sentence-transformers or Hugging Face model folder needs, downloaded through the `hub` crate
//! into the cache the Python tools share, or found there without any request when
//! `HF_HUB_OFFLINE=1`. A folder that exists is always used as it is, so a local path never reaches
//! the network.

use crate::error::{Error, Result};
pub use hub::HubConfig;
use hub::{Hub, Lookup, Repo, RepoKind};
use std::path::{Path, PathBuf};

/// Whether `spec` reads as a hub id (`org/name`, perhaps `@revision`) rather than a path.
pub fn is_hub_id(spec: &str) -> bool {
    let id = spec.split_once('@').map_or(spec, |(id, _)| id);
    id.contains('/') && hub::names::bad_repo_id(id).is_none()
}

/// The files a model folder can have that pairtrain reads, beside those of its modules.
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

/// What a model cannot do without.
const REQUIRED: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];

/// The model folder for `spec`: the path itself when it exists, else the hub id resolved
/// through `cfg` (downloading what the cache lacks unless offline).
pub fn resolve(spec: &str, cfg: &HubConfig) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.exists() || !is_hub_id(spec) {
        return Ok(p.to_path_buf());
    }
    let (id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let repo = Repo::new(RepoKind::Model, id, revision).map_err(|e| hub_error(spec, e))?;
    fetch_model(&Hub::new(cfg.clone()), &repo).map_err(|e| hub_error(spec, e))
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

/// The module folders modules.json names (`1_Pooling`, `2_Dense`, …), each refused unless it is
/// a plain relative path.
fn module_dirs(repo: &Repo, modules_json: &Path) -> hub::Result<Vec<String>> {
    let v: serde_json::Value =
        crate::error::read_json(modules_json).map_err(|e| hub::Error::Hub {
            what: repo.describe(Some("modules.json")),
            msg: e.to_string(),
        })?;
    let mut out = Vec::new();
    for m in v.as_array().into_iter().flatten() {
        let path = m["path"].as_str().unwrap_or("");
        if path.is_empty() {
            continue;
        }
        if let Some(why) = hub::names::unsafe_path_reason(path) {
            return Err(hub::Error::UnsafeName {
                repo: repo.id.clone(),
                revision: repo.revision.clone(),
                name: path.to_string(),
                why,
            });
        }
        out.push(path.to_string());
    }
    Ok(out)
}

/// Fetches (or, offline, finds) what the model needs; returns its snapshot folder.
pub fn fetch_model(hub: &Hub, repo: &Repo) -> hub::Result<PathBuf> {
    let snap = hub.snapshot(repo)?;
    let rc = hub.cache.repo(repo);
    let dir = rc.snapshot_dir(&snap.commit)?;
    let listed = |f: &str| snap.files.iter().find(|x| x.name == f);
    let no_progress = |_: u64| {};
    // Online the listing says what exists: absent files are recorded as absent without a
    // request. Offline only the cache can answer.
    let get = |f: &str| -> hub::Result<Option<PathBuf>> {
        if hub.cfg.offline {
            return match rc.lookup(&snap.commit, f)? {
                Lookup::Present(p) => Ok(Some(p)),
                Lookup::Absent => Ok(None),
                Lookup::Unknown if REQUIRED.contains(&f) => Err(hub::Error::NotCached {
                    what: repo.describe(Some(f)),
                    msg: format!(
                        "{f} is not in the cache {} (commit {}); download the model once with \
                         the network on",
                        hub.cfg.cache_dir.display(),
                        snap.commit
                    ),
                }),
                Lookup::Unknown => Ok(None),
            };
        }
        match listed(f) {
            Some(entry) => hub.fetch(repo, &snap.commit, f, Some(entry), &no_progress),
            None => {
                rc.mark_absent(&snap.commit, f)?;
                Ok(None)
            }
        }
    };
    for f in REQUIRED {
        if get(f)?.is_none() {
            return Err(hub::Error::Hub {
                what: repo.describe(None),
                msg: format!("the repository has no {f} (pairtrain needs it)"),
            });
        }
    }
    for f in TOP_FILES.iter().filter(|f| !REQUIRED.contains(f)) {
        let Some(path) = get(f)? else { continue };
        if *f != "modules.json" {
            continue;
        }
        for m in module_dirs(repo, &path)? {
            // A module's files, as sentence-transformers asks for them; a module without
            // files (Normalize) is recorded as absent, so that offline loads know.
            for name in ["config.json", "model.safetensors"] {
                let f = format!("{m}/{name}");
                if get(&f)?.is_none() && hub.cfg.offline && name == "config.json" {
                    if let Lookup::Unknown = rc.lookup(&snap.commit, &f)? {
                        return Err(hub::Error::NotCached {
                            what: repo.describe(Some(&f)),
                            msg: format!("{f} is not in the cache"),
                        });
                    }
                }
            }
        }
    }
    Ok(dir)
}
