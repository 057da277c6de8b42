//! Locating the references tests compare against: the read-only `shared/` folder beside the
//! repository, and real model weights fetched by `scripts/fetch-test-models`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (two levels above a crate's manifest).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// `shared/` beside the repository (`PAIRTRAIN_SHARED` overrides).
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("PAIRTRAIN_SHARED") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join("../shared"),
    }
}

/// A test model folder: `$env_var` if set, else what `scripts/fetch-test-models <which>` prints
/// (it downloads once into the git-ignored cache, then only checks the hash).
pub fn test_model(which: &str, env_var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let script = repo_root().join("scripts/fetch-test-models");
    let out = Command::new("bash")
        .arg(&script)
        .arg(which)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {which} failed (set {env_var} to a model folder instead):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}

/// all-MiniLM-L6-v2 (`PAIRTRAIN_MINILM` overrides).
pub fn minilm_dir() -> PathBuf {
    test_model("minilm", "PAIRTRAIN_MINILM")
}

/// One row of a golden file in `shared/golden`.
#[derive(serde::Deserialize)]
pub struct GoldenRow {
    pub text: String,
    pub input_ids: Vec<u32>,
    pub embedding: Vec<f32>,
}

pub fn golden(file: &str) -> Vec<GoldenRow> {
    let path = shared_dir().join("golden").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).expect("golden row"))
        .collect()
}

/// Largest absolute difference between two equally long vectors.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}
