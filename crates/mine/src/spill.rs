//! Grouping records by key with bounded memory: records are spilled to disk in P partitions by
//! a hash of their key, then each partition (1/P of the data) is read back and grouped in
//! memory. Each worker writes its own partition files, so no locks are needed.

use crate::io::{io_err, MineError, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct SpillWriter {
    files: Vec<(PathBuf, BufWriter<std::fs::File>)>,
}

fn part_path(dir: &Path, worker: usize, part: usize) -> PathBuf {
    dir.join(format!("w{worker:03}-p{part:04}.jsonl"))
}

/// The partition of a key.
pub fn partition_of(key: &str, parts: usize) -> usize {
    (pairs::dedup::hash_bytes(key.as_bytes()) % parts as u64) as usize
}

impl SpillWriter {
    pub fn new(dir: &Path, worker: usize, parts: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut files = Vec::with_capacity(parts);
        for p in 0..parts {
            let path = part_path(dir, worker, p);
            let f = std::fs::File::create(&path).map_err(io_err(&path))?;
            files.push((path, BufWriter::with_capacity(64 << 10, f)));
        }
        Ok(Self { files })
    }

    pub fn put<T: Serialize>(&mut self, key: &str, rec: &T) -> Result<()> {
        let p = partition_of(key, self.files.len());
        let (path, w) = &mut self.files[p];
        serde_json::to_writer(&mut *w, rec).map_err(|e| MineError::Other(e.to_string()))?;
        w.write_all(b"\n").map_err(io_err(path))
    }

    pub fn finish(self) -> Result<()> {
        for (path, mut w) in self.files {
            w.flush().map_err(io_err(&path))?;
        }
        Ok(())
    }
}

/// Every record of partition `part`, from all workers' files, in worker order.
pub fn read_partition<T: DeserializeOwned>(
    dir: &Path,
    workers: usize,
    part: usize,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for w in 0..workers {
        let path = part_path(dir, w, part);
        if !path.exists() {
            continue;
        }
        let f = std::fs::File::open(&path).map_err(io_err(&path))?;
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(io_err(&path))?;
            out.push(serde_json::from_str(&line).map_err(|e| MineError::Bad {
                path: path.clone(),
                at: format!("line {}", i + 1),
                msg: format!("spill file is corrupt: {e}"),
            })?);
        }
    }
    Ok(out)
}
