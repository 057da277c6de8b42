//! Helpers shared by the miners' integration tests.
#![allow(dead_code)]

use mine::io::{Common, Compression, RunStats};
use pairs::BadRowPolicy;
use std::io::Read;
use std::path::{Path, PathBuf};

pub fn fixture(p: &str) -> PathBuf {
    test_support::shared_dir().join("fixtures").join(p)
}

pub fn common(out: &Path) -> Common {
    Common {
        out: out.to_path_buf(),
        compression: Compression::Gzip,
        shard_bytes: 1 << 30,
        limit: None,
        policy: BadRowPolicy::Error,
        threads: 2,
        force: false,
        bytes: Default::default(),
    }
}

/// Every row of every shard of `<dir>/<name>-*.jsonl.gz`.
pub fn rows(dir: &Path, name: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let f = p.file_name().unwrap().to_string_lossy();
            f.starts_with(&format!("{name}-")) && f.ends_with(".jsonl.gz")
        })
        .collect();
    shards.sort();
    for s in shards {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(s).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        out.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
    }
    out
}

pub fn filtered(s: &RunStats, k: &str) -> u64 {
    s.filtered.get(k).copied().unwrap_or(0)
}
