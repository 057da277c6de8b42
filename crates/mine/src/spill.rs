//! Grouping records by key with bounded memory: records are spilled to disk in P partitions by
//! a hash of their key, then each partition (1/P of the data) is read back and grouped in
//! memory. Workers share the partition files (a lock per partition), so the number of open
//! files is P however many inputs are read at once.

use crate::io::{io_err, MineError, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Spill bytes per partition to aim for (the memory one partition needs, roughly, when grouped).
const TARGET_PART_BYTES: u64 = 32 << 20;
/// Under the usual limit of 1,024 open files.
const MAX_PARTS: usize = 768;

/// Partitions for inputs of `input_bytes`: at least `min`, more for big inputs so that each
/// partition stays small (a month of Reddit, StackOverflow), at most 768.
pub fn partitions_for(input_bytes: u64, min: usize) -> usize {
    let want = input_bytes.div_ceil(TARGET_PART_BYTES) as usize;
    want.clamp(min.max(1), MAX_PARTS.max(min))
}

/// A miner's scratch folder (the spill), removed when the run ends, whether it succeeded or
/// failed: a failed run must not leave dozens of partition files behind.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Takes `path` as scratch, clearing what an earlier (killed) run may have left there.
    pub fn new(path: PathBuf) -> Result<Self> {
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
        }
        Ok(Self(path))
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct SpillWriter {
    files: Vec<Mutex<(PathBuf, BufWriter<std::fs::File>)>>,
}

fn part_path(dir: &Path, part: usize) -> PathBuf {
    dir.join(format!("p{part:04}.jsonl"))
}

/// The partition of a key.
pub fn partition_of(key: &str, parts: usize) -> usize {
    (pairs::dedup::hash_bytes(key.as_bytes()) % parts as u64) as usize
}

impl SpillWriter {
    pub fn new(dir: &Path, parts: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut files = Vec::with_capacity(parts);
        for p in 0..parts {
            let path = part_path(dir, p);
            let f = std::fs::File::create(&path).map_err(io_err(&path))?;
            files.push(Mutex::new((path, BufWriter::with_capacity(64 << 10, f))));
        }
        Ok(Self { files })
    }

    pub fn parts(&self) -> usize {
        self.files.len()
    }

    pub fn put<T: Serialize>(&self, key: &str, rec: &T) -> Result<()> {
        let mut line = serde_json::to_vec(rec).map_err(|e| MineError::Other(e.to_string()))?;
        line.push(b'\n');
        let p = partition_of(key, self.files.len());
        let mut g = self.files[p].lock().unwrap_or_else(|e| e.into_inner());
        let (path, w) = &mut *g;
        w.write_all(&line).map_err(io_err(path))
    }

    pub fn finish(self) -> Result<()> {
        for m in self.files {
            let (path, mut w) = m.into_inner().unwrap_or_else(|e| e.into_inner());
            w.flush().map_err(io_err(&path))?;
        }
        Ok(())
    }
}

/// Every record of partition `part`.
pub fn read_partition<T: DeserializeOwned>(dir: &Path, part: usize) -> Result<Vec<T>> {
    let path = part_path(dir, part);
    let f = std::fs::File::open(&path).map_err(io_err(&path))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io_err(&path))?;
        out.push(serde_json::from_str(&line).map_err(|e| MineError::Bad {
            path: path.clone(),
            at: format!("line {}", i + 1),
            msg: format!("spill file is corrupt: {e}"),
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_is_removed_on_failure_too() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(".spill");
        let run = |fail: bool| -> Result<()> {
            let work = ScratchDir::new(path.clone())?;
            let s = SpillWriter::new(&work, 3)?;
            s.put("k", &1u32)?;
            s.finish()?;
            assert!(path.join("p0000.jsonl").is_file());
            if fail {
                return Err(MineError::Other("bad record".into()));
            }
            Ok(())
        };
        assert!(run(true).is_err());
        assert!(!path.exists(), "a failed run left its spill");
        run(false).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn partitions_grow_with_input_and_records_group_back() {
        assert_eq!(partitions_for(0, 64), 64);
        assert_eq!(partitions_for(20 << 30, 64), 640);
        assert_eq!(partitions_for(1 << 40, 64), 768);
        let d = tempfile::tempdir().unwrap();
        let s = SpillWriter::new(d.path(), 5).unwrap();
        for i in 0..100u32 {
            s.put(&format!("k{}", i % 7), &(i % 7, i)).unwrap();
        }
        s.finish().unwrap();
        let mut all = 0;
        for p in 0..5 {
            let recs: Vec<(u32, u32)> = read_partition(d.path(), p).unwrap();
            // A key's records all land in one partition.
            for (k, _) in &recs {
                assert_eq!(partition_of(&format!("k{k}"), 5), p);
            }
            all += recs.len();
        }
        assert_eq!(all, 100);
    }
}
