//! Where a recipe's files come from: local paths and globs, or `hf://` references to files of
//! hub repositories (`hf://datasets/ORG/NAME[@REVISION]/PATH_OR_GLOB`), fetched into the cache
//! the Python tools share, or read from it alone with `HF_HUB_OFFLINE=1`.

use anyhow::{anyhow, bail, Result};
use hub::{HfRef, Hub, Lookup, RemoteFile};
use std::path::PathBuf;

/// What an `hf://` reference names at the commit its revision points to now.
pub struct Plan {
    pub reference: HfRef,
    pub commit: String,
    /// The files it selects, with what the listing says of them.
    pub files: Vec<RemoteFile>,
    /// A reference to a folder (`…/cranfield/` or a path that is a folder in the repository):
    /// the files are everything under it.
    pub folder: bool,
}

impl Plan {
    /// Lists the repository (or, offline, the cached snapshot) and selects the reference's files.
    pub fn new(hub: &Hub, reference: &HfRef) -> Result<Self> {
        let snap = hub.snapshot(&reference.repo)?;
        let names: Vec<&str> = snap.files.iter().map(|f| f.name.as_str()).collect();
        let mut selected = reference.select(names.iter().copied());
        let mut folder = false;
        if selected.is_empty() && !reference.is_glob() {
            let prefix = format!("{}/", reference.path.trim_end_matches('/'));
            selected = names
                .iter()
                .filter(|n| n.starts_with(&prefix))
                .map(|n| n.to_string())
                .collect();
            folder = !selected.is_empty();
        }
        if selected.is_empty() {
            bail!(
                "{reference}: no file of {} at commit {} matches{}",
                reference.repo.describe(None),
                snap.commit,
                if hub.cfg.offline {
                    " in the cache (HF_HUB_OFFLINE is set; fetch it once with the network on: \
                     pairtrain data fetch)"
                } else {
                    ""
                }
            );
        }
        let files = selected
            .into_iter()
            .map(|n| {
                snap.files
                    .iter()
                    .find(|f| f.name == n)
                    .cloned()
                    .expect("selected from the listing")
            })
            .collect();
        Ok(Self {
            reference: reference.clone(),
            commit: snap.commit,
            files,
            folder,
        })
    }

    /// Whether `file` is in the cache already.
    pub fn cached(&self, hub: &Hub, file: &RemoteFile) -> Result<bool> {
        let rc = hub.cache.repo(&self.reference.repo);
        Ok(matches!(
            rc.lookup(&self.commit, &file.name)?,
            Lookup::Present(_)
        ))
    }

    /// Every file, fetched (or found in the cache); `progress` is told of bytes written.
    pub fn fetch_all(&self, hub: &Hub, progress: &(dyn Fn(u64) + Sync)) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for f in &self.files {
            let p = hub
                .fetch(
                    &self.reference.repo,
                    &self.commit,
                    &f.name,
                    Some(f),
                    progress,
                )?
                .ok_or_else(|| {
                    anyhow!(
                        "{}: the hub lists {} but does not serve it",
                        self.reference,
                        f.name
                    )
                })?;
            out.push(p);
        }
        Ok(out)
    }

    /// The local path the reference stands for: its snapshot folder for a folder reference.
    pub fn local_root(&self, hub: &Hub) -> Result<PathBuf> {
        let dir = hub
            .cache
            .repo(&self.reference.repo)
            .snapshot_dir(&self.commit)?;
        Ok(dir.join(self.reference.path.trim_end_matches('/')))
    }
}

fn parse(path: &str) -> Option<Result<HfRef>> {
    HfRef::parse(path).map(|r| r.map_err(|e| anyhow!(e)))
}

/// The files a `[[data]]` path names: a local file or glob, or an `hf://` reference (fetched
/// now if the cache lacks them).
pub fn data_files(path: &str) -> Result<Vec<PathBuf>> {
    match parse(path) {
        None => Ok(pairs::reader::expand(path)?),
        Some(r) => {
            let hub = Hub::from_env();
            let plan = Plan::new(&hub, &r?)?;
            plan.fetch_all(&hub, &|_| {})
        }
    }
}

/// The local file or folder a path names (an `[[eval]]` path): itself, or an `hf://` reference's
/// place in the cache, fetched now if the cache lacks it.
pub fn local_path(path: &str) -> Result<PathBuf> {
    match parse(path) {
        None => Ok(PathBuf::from(path)),
        Some(r) => {
            let r = r?;
            let hub = Hub::from_env();
            let plan = Plan::new(&hub, &r)?;
            let files = plan.fetch_all(&hub, &|_| {})?;
            if plan.folder {
                plan.local_root(&hub)
            } else if files.len() == 1 {
                Ok(files.into_iter().next().expect("one file"))
            } else {
                bail!("{r}: an evaluation path names one file or one folder, not a glob")
            }
        }
    }
}
