//! What the tests of several ranks share (mpi_cli.rs on one host, multihost.rs across network
//! namespaces): the parity recipes with absolute paths, traces, and the ranks' pids.
// Each test file uses its own subset.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use test_support::{repo_root, shared_dir};

pub fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "failed: {err}");
    err
}

/// `recipes/parity/<run>.toml` with absolute paths, its output in `dir`, and `extra` lines added
/// to its [train] section.
pub fn parity_recipe(run: &str, dir: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join(format!("recipes/parity/{run}.toml")))
        .unwrap()
        .replace("../shared/", &format!("{}/", shared_dir().display()))
        .replace(
            &format!("output = \"runs/parity/{run}\""),
            &format!("output = \"{}\"\n{extra}", dir.join("out").display()),
        );
    let p = dir.join(format!("{run}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// The steps of PyTorch's single-process run `run` (../shared/reference/train-parity).
pub fn reference_steps(run: &str) -> Vec<Value> {
    let want: Value = serde_json::from_slice(
        &std::fs::read(shared_dir().join(format!("reference/train-parity/{run}.json"))).unwrap(),
    )
    .unwrap();
    want["steps"].as_array().unwrap().clone()
}

pub fn jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-30)
}

/// The per-step loss and gradient norm of a `--trace` equal a reference's steps of the same
/// numbers (rtol 1e-5); `label` says which run in the message.
pub fn trace_matches(label: &str, trace: &Path, want: &[Value]) {
    let got = jsonl(trace);
    assert!(!got.is_empty(), "{label}: empty trace");
    let (mut worst_loss, mut worst_gn) = (0f64, 0f64);
    for g in &got {
        let s = g["step"].as_u64().unwrap() as usize;
        // References list their steps from 1, some without naming them.
        let w = want
            .iter()
            .find(|w| w["step"].as_u64() == Some(s as u64))
            .or_else(|| want.get(s - 1).filter(|w| w.get("step").is_none()))
            .unwrap_or_else(|| panic!("{label}: no reference for step {s}"));
        worst_loss = worst_loss.max(rel(
            g["loss"].as_f64().unwrap(),
            w["loss"].as_f64().unwrap(),
        ));
        worst_gn = worst_gn.max(rel(
            g["grad_norm"].as_f64().unwrap(),
            w["grad_norm_before_clip"].as_f64().unwrap(),
        ));
    }
    eprintln!(
        "{label}: {} steps, max relative difference loss {worst_loss:.2e}, grad norm {worst_gn:.2e}",
        got.len()
    );
    assert!(worst_loss <= 1e-5 && worst_gn <= 1e-5, "{label}");
}

/// The pids of the ranks (pairtrain processes whose command line names `cfg`).
pub fn ranks_of(cfg: &Path) -> Vec<u32> {
    let needle = cfg.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with("pairtrain")) && args.contains(&needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Every checkpoint renamed into place under `root` verifies against its manifest.
pub fn checkpoints_verify(root: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if !p.to_string_lossy().ends_with(".partial") {
            train::checkpoint::verify(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            n += 1;
        }
    }
    n
}

/// `recipes/parity/mnrl_pairs.toml` in `dir` (created) trained for `steps` steps, with `extra`
/// lines in its [train] section: the long runs the fault tests interrupt.
pub fn long_recipe(dir: &Path, steps: usize, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = parity_recipe("mnrl_pairs", dir, extra);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("steps = 12\n", &format!("steps = {steps}\n"));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// The steps of a resumed run's trace repeat the uninterrupted run's (`want`, from step 1) bit
/// for bit, through `want`'s last step; returns the first resumed step.
pub fn resumed_exactly(got: &[Value], want: &[Value]) -> usize {
    let first = got[0]["step"].as_u64().unwrap() as usize;
    assert_eq!(
        first - 1 + got.len(),
        want.len(),
        "the resumed run did not finish"
    );
    for g in got {
        let s = g["step"].as_u64().unwrap() as usize;
        assert_eq!(g["loss"], want[s - 1]["loss"], "step {s}");
        assert_eq!(g["grad_norm"], want[s - 1]["grad_norm"], "step {s}");
    }
    first
}

/// Waits (at most 300 s) until `dir`, a checkpoint the running `job` writes, exists; fails if the
/// job ends first.
pub fn wait_for_checkpoint(job: &mut std::process::Child, dir: &Path) {
    let t0 = std::time::Instant::now();
    while !dir.is_dir() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(300),
            "no checkpoint {}",
            dir.display()
        );
        assert!(
            job.try_wait().unwrap().is_none(),
            "the job ended before {} was written",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
