//! The distillation teacher's embeddings of a data file's sources, computed once and kept next
//! to the file (or in `[teacher] cache_dir`), so that later epochs and runs do not run the teacher
//! again.
//!
//! Per data file, two files named after it and a hash of the teacher (weights, tokenizer, prompt,
//! length limit, pooling) and of the data file (name, size, modification time):
//! - `<file>.teacher-<hash>.npy`: float32 [unique sources, dim], memory-mapped;
//! - `<file>.teacher-<hash>.keys`: (hash of the source text, row) pairs sorted by hash, u64
//!   little-endian, searched in place.
//!
//! Rows are found by their source text, so shuffling, resuming and sharding need no
//! bookkeeping, and a source repeated in a file is embedded once. Both files are written under
//! `.partial` names and renamed when complete, keys last: a cache is used only when whole.

use anyhow::{bail, Context, Result};
use model::SentenceModel;
use pairs::reader::{BadRowPolicy, PairReader, SkipCounts};
use std::collections::HashSet;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Sources embedded at a time on the way to the cache.
const CHUNK: usize = 4096;

pub struct TeacherCache {
    emb: memmap2::Mmap,
    keys: memmap2::Mmap,
    rows: usize,
    dim: usize,
    path: PathBuf,
}

/// The cache files of data file `file` for `teacher`, in `dir`.
pub fn cache_paths(teacher: &SentenceModel, file: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    // Not the device: every rank of a multi-GPU run maps the cache rank 0 wrote.
    let mut parts = model::identity::portable_identity(teacher);
    parts.extend(model::identity::file_identity(file));
    let bytes: Vec<u8> = parts.iter().flat_map(|p| p.to_le_bytes()).collect();
    let key = pairs::dedup::hash_bytes(&bytes);
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let base = dir.join(format!("{name}.teacher-{key:016x}"));
    (base.with_extension("npy"), base.with_extension("keys"))
}

fn text_key(text: &str) -> u64 {
    pairs::dedup::hash_bytes(text.as_bytes())
}

impl TeacherCache {
    /// Opens the cache of `file` in `dir`, embedding the file's sources (column 0 of each usable
    /// row; bad rows follow `policy` as in training) with `teacher` first if it is not there.
    /// `progress` hears how many sources each embedded chunk held.
    pub fn open_or_build(
        teacher: &SentenceModel,
        file: &Path,
        dir: &Path,
        policy: BadRowPolicy,
        batch_size: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Self> {
        let (npy, keys) = cache_paths(teacher, file, dir);
        if !keys.is_file() {
            build(teacher, file, &npy, &keys, policy, batch_size, progress)?;
        }
        Self::open(&npy, &keys, teacher.full_dim())
    }

    /// Opens a complete cache (both files).
    pub fn open(npy: &Path, keys: &Path, dim: usize) -> Result<Self> {
        let map = |p: &Path| -> Result<memmap2::Mmap> {
            let f =
                std::fs::File::open(p).with_context(|| format!("{}: cannot open", p.display()))?;
            // Safety: the cache files are only ever written under other names and renamed into
            // place, so a mapped file does not change under us.
            unsafe { memmap2::Mmap::map(&f) }
                .with_context(|| format!("{}: cannot map", p.display()))
        };
        let emb = map(npy)?;
        let keys_map = map(keys)?;
        let Some((rows, d)) = model::npy::parse_header(&emb) else {
            bail!("{}: not a float32 .npy file; delete it", npy.display());
        };
        if d != dim
            || emb.len() != model::npy::HEADER_LEN + rows * dim * 4
            || keys_map.len() != rows * 16
        {
            bail!(
                "{} and {}: sizes do not match (a damaged cache?); delete them",
                npy.display(),
                keys.display()
            );
        }
        Ok(Self {
            emb,
            keys: keys_map,
            rows,
            dim,
            path: npy.to_path_buf(),
        })
    }

    /// Unique sources held.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn key_at(&self, i: usize) -> (u64, u64) {
        let b = &self.keys[i * 16..i * 16 + 16];
        let word = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
        (word(&b[..8]), word(&b[8..]))
    }

    /// The teacher's embedding of `source`, if the file had it.
    pub fn get(&self, source: &str) -> Option<Vec<f32>> {
        let k = text_key(source);
        let (mut lo, mut hi) = (0, self.rows);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.key_at(mid).0 < k {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == self.rows || self.key_at(lo).0 != k {
            return None;
        }
        let row = self.key_at(lo).1 as usize;
        let start = model::npy::HEADER_LEN + row * self.dim * 4;
        let bytes = &self.emb[start..start + self.dim * 4];
        Some(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    }
}

fn partial(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

fn build(
    teacher: &SentenceModel,
    file: &Path,
    npy: &Path,
    keys: &Path,
    policy: BadRowPolicy,
    batch_size: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    let dir = npy.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "{}: cannot create the teacher cache folder (set [teacher] cache_dir)",
            dir.display()
        )
    })?;
    let (npy_tmp, keys_tmp) = (partial(npy), partial(keys));
    let result = (|| -> Result<()> {
        let dim = teacher.full_dim();
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&npy_tmp).with_context(|| {
                format!(
                    "{}: cannot write the teacher cache (set [teacher] cache_dir to a writable \
                     folder)",
                    npy_tmp.display()
                )
            })?);
        out.write_all(&model::npy::header(0, dim))?;
        let mut reader = PairReader::open(file)?;
        let mut skips = SkipCounts::default();
        let mut seen = HashSet::new();
        let mut index: Vec<(u64, u64)> = Vec::new();
        let mut pending: Vec<String> = Vec::with_capacity(CHUNK);
        let mut flush = |pending: &mut Vec<String>, out: &mut dyn Write| -> Result<()> {
            let refs: Vec<&str> = pending.iter().map(String::as_str).collect();
            for row in teacher.encode(&refs, batch_size, |_| {})? {
                for x in row {
                    out.write_all(&x.to_le_bytes())?;
                }
            }
            progress(pending.len());
            pending.clear();
            Ok(())
        };
        while let Some(row) = reader.next_row(policy, &mut skips)? {
            let source = row.into_iter().next().unwrap_or_default();
            let k = text_key(&source);
            if seen.insert(k) {
                index.push((k, index.len() as u64));
                pending.push(source);
                if pending.len() == CHUNK {
                    flush(&mut pending, &mut out)?;
                }
            }
        }
        if !pending.is_empty() {
            flush(&mut pending, &mut out)?;
        }
        let mut f = out.into_inner().map_err(|e| e.into_error())?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&model::npy::header(index.len(), dim))?;
        f.sync_all()?;
        index.sort_unstable();
        let mut k = std::io::BufWriter::new(std::fs::File::create(&keys_tmp)?);
        for (h, r) in &index {
            k.write_all(&h.to_le_bytes())?;
            k.write_all(&r.to_le_bytes())?;
        }
        k.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&npy_tmp, npy)?;
        std::fs::rename(&keys_tmp, keys)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&npy_tmp);
        let _ = std::fs::remove_file(&keys_tmp);
    }
    result.with_context(|| format!("building the teacher cache of {}", file.display()))
}
