//! The cache on disk, laid out as huggingface_hub lays it out so that either tool reads what the
//! other downloaded:
//!
//! ```text
//! <cache>/models--org--name/            (datasets--org--name/ for datasets)
//!     refs/<revision>                   the commit a branch or tag pointed to, as text
//!     blobs/<etag>                      each file's content once, named by its hash
//!     blobs/<etag>.incomplete           a download under way (resumed from its length)
//!     snapshots/<commit>/<path>         relative symlinks into blobs/
//!     .no_exist/<commit>/<path>         empty: the file does not exist at that commit
//! <cache>/.locks/models--org--name/<etag>.lock
//! ```
//!
//! Every path is built from names checked by `names` (file paths, revisions, commits, blob
//! names), so nothing from a repository can point outside its folder.

use crate::error::{Error, Result};
use crate::names;
use crate::repo::Repo;
use std::path::{Path, PathBuf};

/// The `hub` folder of the cache (`$HF_HUB_CACHE`, or `$HF_HOME/hub`).
#[derive(Clone, Debug)]
pub struct Cache {
    pub root: PathBuf,
}

/// What the cache knows about one file at one commit.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Downloaded: its path in the snapshot.
    Present(PathBuf),
    /// Recorded as not existing at that commit (huggingface_hub's `.no_exist` marker).
    Absent,
    /// Never asked for.
    Unknown,
}

/// One repository's folder in the cache.
#[derive(Clone, Debug)]
pub struct RepoCache {
    pub dir: PathBuf,
    lock_dir: PathBuf,
    repo: Repo,
}

impl Cache {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn repo(&self, repo: &Repo) -> RepoCache {
        let folder = repo.cache_folder_name();
        RepoCache {
            dir: self.root.join(&folder),
            lock_dir: self.root.join(".locks").join(folder),
            repo: repo.clone(),
        }
    }
}

impl RepoCache {
    /// `name` as a path under `base`, refused unless it is a plain relative path.
    fn under(&self, base: &Path, name: &str) -> Result<PathBuf> {
        match names::unsafe_path_reason(name) {
            None => Ok(base.join(name)),
            Some(why) => Err(self.repo.unsafe_name(name, why)),
        }
    }

    fn checked_commit(&self, commit: &str) -> Result<()> {
        if names::is_commit(commit) {
            Ok(())
        } else {
            Err(self.repo.unsafe_name(commit, "not a 40-digit commit hash"))
        }
    }

    /// The commit `revision` points to in the cache: itself when it is a commit with a snapshot
    /// folder, else what `refs/<revision>` says.
    pub fn commit_of(&self, revision: &str) -> Result<Option<String>> {
        if names::is_commit(revision) && self.dir.join("snapshots").join(revision).is_dir() {
            return Ok(Some(revision.to_string()));
        }
        let r = self.under(&self.dir.join("refs"), revision)?;
        match std::fs::read_to_string(&r) {
            Ok(s) => {
                let c = s.trim().to_string();
                self.checked_commit(&c)?;
                Ok(Some(c))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&r, e)),
        }
    }

    /// Records that `revision` points to `commit` (nothing to do when it is the commit).
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        self.checked_commit(commit)?;
        if revision == commit {
            return Ok(());
        }
        let r = self.under(&self.dir.join("refs"), revision)?;
        write_atomically(&r, commit.as_bytes())
    }

    pub fn snapshot_dir(&self, commit: &str) -> Result<PathBuf> {
        self.checked_commit(commit)?;
        Ok(self.dir.join("snapshots").join(commit))
    }

    /// Where `file` is at `commit`, if the cache knows.
    pub fn lookup(&self, commit: &str, file: &str) -> Result<Lookup> {
        let p = self.under(&self.snapshot_dir(commit)?, file)?;
        if p.is_file() {
            return Ok(Lookup::Present(p));
        }
        let marker = self.under(&self.dir.join(".no_exist").join(commit), file)?;
        Ok(if marker.is_file() {
            Lookup::Absent
        } else {
            Lookup::Unknown
        })
    }

    /// Records that `file` does not exist at `commit`, as huggingface_hub does.
    pub fn mark_absent(&self, commit: &str, file: &str) -> Result<()> {
        self.checked_commit(commit)?;
        let marker = self.under(&self.dir.join(".no_exist").join(commit), file)?;
        if let Some(d) = marker.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        std::fs::write(&marker, b"").map_err(|e| Error::io(&marker, e))
    }

    fn checked_blob(&self, etag: &str) -> Result<()> {
        if names::is_blob_name(etag) {
            Ok(())
        } else {
            Err(self
                .repo
                .unsafe_name(etag, "not a hex sha1 or sha256 (an ETag the hub sends)"))
        }
    }

    pub fn blob_path(&self, etag: &str) -> Result<PathBuf> {
        self.checked_blob(etag)?;
        Ok(self.dir.join("blobs").join(etag))
    }

    pub fn incomplete_path(&self, etag: &str) -> Result<PathBuf> {
        self.checked_blob(etag)?;
        Ok(self.dir.join("blobs").join(format!("{etag}.incomplete")))
    }

    /// Holds the lock huggingface_hub takes for a blob (`.locks/<repo>/<etag>.lock`), so that two
    /// processes (ranks of one job, or pairtrain and Python) never write one blob at once.
    pub fn lock_blob(&self, etag: &str) -> Result<BlobLock> {
        self.checked_blob(etag)?;
        std::fs::create_dir_all(&self.lock_dir).map_err(|e| Error::io(&self.lock_dir, e))?;
        let p = self.lock_dir.join(format!("{etag}.lock"));
        BlobLock::acquire(&p)
    }

    /// Points `snapshots/<commit>/<file>` at `blobs/<etag>` (a relative symlink, as
    /// huggingface_hub makes them; a copy where the filesystem has no symlinks). Returns the path.
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf> {
        let blob = self.blob_path(etag)?;
        let pointer = self.under(&self.snapshot_dir(commit)?, file)?;
        let parent = pointer.parent().expect("a snapshot path has a parent");
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        // From snapshots/<commit>/<a>/<b>/file up to the repository folder: one `..` per level.
        let depth = file.split('/').count() + 1;
        let target = PathBuf::from("../".repeat(depth)).join("blobs").join(etag);
        let tmp = pointer.with_file_name(format!(
            ".{}.{}.tmp",
            pointer.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        #[cfg(unix)]
        let made = std::os::unix::fs::symlink(&target, &tmp);
        #[cfg(not(unix))]
        let made = std::fs::copy(&blob, &tmp).map(|_| ());
        made.map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &pointer).map_err(|e| Error::io(&pointer, e))?;
        if !pointer.is_file() {
            return Err(Error::Hub {
                what: self.repo.describe(Some(file)),
                msg: format!("{} does not lead to {}", pointer.display(), blob.display()),
            });
        }
        Ok(pointer)
    }

    /// The files of a snapshot as `/`-separated paths, sorted (what an offline glob matches).
    pub fn snapshot_files(&self, commit: &str) -> Result<Vec<String>> {
        let root = self.snapshot_dir(commit)?;
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&d, e)),
            };
            for e in entries {
                let e = e.map_err(|e| Error::io(&d, e))?;
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.is_file() {
                    let rel = p.strip_prefix(&root).expect("under the root");
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// An exclusive advisory lock on a file (`flock`), released when dropped.
pub struct BlobLock {
    _file: std::fs::File,
}

impl BlobLock {
    fn acquire(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(Error::io(path, std::io::Error::last_os_error()));
            }
        }
        Ok(Self { _file: file })
    }
}

/// Writes `bytes` to `path` under a temporary name and renames it into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}
