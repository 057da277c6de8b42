//! Several hosts on one machine: network namespaces joined by a bridge (scripts/multihost/hosts),
//! each with its own address and host name, and Open MPI launched across them over TCP with
//! scripts/multihost/rsh-agent in place of ssh. What differs between one host and several runs
//! here: host names, local ranks, the TCP transport between hosts, a host that drops off the
//! network, and a run resumed on another layout of hosts.
//!
//! Namespaces need root (or CAP_NET_ADMIN and CAP_SYS_ADMIN); where they cannot be made, each
//! test says so and why, and returns.
#![cfg(feature = "mpi")]

mod ranks;

use ranks::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use test_support::repo_root;

fn script(name: &str) -> PathBuf {
    repo_root().join("scripts/multihost").join(name)
}

/// A set of namespace hosts, removed (with whatever still runs in them) when dropped.
struct Hosts {
    prefix: String,
    n: usize,
}

impl Hosts {
    fn up(n: usize) -> Option<Hosts> {
        let probe = Command::new(script("hosts")).arg("probe").output().unwrap();
        if !probe.status.success() {
            eprintln!(
                "SKIPPED: network namespaces cannot be made here ({}); the multi-host tests \
                 need root or CAP_NET_ADMIN + CAP_SYS_ADMIN",
                String::from_utf8_lossy(&probe.stdout).trim()
            );
            return None;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "pt{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let h = Hosts { prefix, n };
        let up = Command::new(script("hosts"))
            .args(["up", &h.prefix, &n.to_string()])
            .output()
            .unwrap();
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        Some(h)
    }

    fn name(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    /// `mpirun` started on host 1 with `per_host` ranks on each host, one thread each. The
    /// keepalive settings let mpirun notice a host that dropped off the network within seconds
    /// (as docs/DISTRIBUTED.md recommends with minutes).
    fn mpirun(&self, per_host: usize) -> Command {
        let hosts: Vec<String> = (1..=self.n)
            .map(|i| format!("10.231.0.{i}:{per_host}"))
            .collect();
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.name(1),
            "unshare",
            "--uts",
            "sh",
            "-c",
        ])
        .arg("hostname \"$0\" && exec \"$@\"")
        .arg(self.name(1))
        .args(["mpirun", "--allow-run-as-root", "--host", &hosts.join(",")])
        .args(["-np", &(per_host * self.n).to_string()])
        .args(["--mca", "plm_rsh_agent"])
        .arg(script("rsh-agent"))
        .args(["--mca", "oob_tcp_if_include", "10.231.0.0/24"])
        .args(["--mca", "btl_tcp_if_include", "10.231.0.0/24"])
        // TCP between every pair of ranks, those on one host included.
        .args(["--mca", "btl", "tcp,self"])
        .args(["--mca", "oob_tcp_keepalive_time", "2"])
        .args(["--mca", "oob_tcp_keepalive_intvl", "1"])
        .args(["--mca", "oob_tcp_keepalive_probes", "2"])
        .args([env!("CARGO_BIN_EXE_pairtrain"), "--threads", "1"])
        .env("PAIRTRAIN_NETNS_PREFIX", &self.prefix);
        c
    }

    fn train(&self, per_host: usize, cfg: &Path, trace: &Path, extra: &[&str]) -> String {
        let o = self
            .mpirun(per_host)
            .args(["train", "--quiet", "--config"])
            .arg(cfg)
            .arg("--trace")
            .arg(trace)
            .args(extra)
            .output()
            .unwrap();
        ok(&o)
    }

    /// The processes still inside host `i`'s namespace.
    fn pids(&self, i: usize) -> Vec<String> {
        let o = Command::new("ip")
            .args(["netns", "pids", &self.name(i)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        Command::new(script("hosts"))
            .args(["down", &self.prefix])
            .status()
            .ok();
    }
}

/// Waits for `job` to end by itself; past `limit` it is killed and the test fails.
fn wait_for(job: &mut Child, limit: Duration, what: &str) -> (std::process::ExitStatus, String) {
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            job.kill().ok();
            panic!("{what}: the job still runs after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut job.stderr.take().unwrap(), &mut err).unwrap();
    (status, err)
}

#[test]
fn two_hosts_reproduce_the_pytorch_parity_runs() {
    let Some(hosts) = Hosts::up(2) else { return };
    for per_host in [1, 2] {
        for run in ["mnrl_pairs", "mnrl_hardneg", "gradcache_equivalence"] {
            let d = tempfile::tempdir().unwrap();
            let cfg = parity_recipe(run, d.path(), "");
            let trace = d.path().join("trace.jsonl");
            let err = hosts.train(per_host, &cfg, &trace, &[]);
            let world = 2 * per_host;
            // Ranks are placed host by host, and each host numbers its own from 0.
            for r in 0..world {
                let line = format!(
                    "rank {r} of {world} on {} (local rank {})",
                    hosts.name(r / per_host + 1),
                    r % per_host
                );
                assert!(err.contains(&line), "{line}\n{err}");
            }
            let want = reference_steps(run);
            assert_eq!(jsonl(&trace).len(), want.len(), "{run}");
            trace_matches(&format!("{run} on 2 hosts x {per_host}"), &trace, &want);
            let log = jsonl(&d.path().join("out/train_log.jsonl"));
            assert!(log.iter().all(|r| r["world_size"] == world), "{log:?}");
        }
    }
}

/// A run checkpointed on 2 hosts x 2 ranks resumes on 2 hosts x 1 rank with the same global
/// batch, and continues PyTorch's single-process trajectory.
#[test]
fn a_run_of_four_ranks_resumes_on_two() {
    let Some(hosts) = Hosts::up(2) else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = parity_recipe("mnrl_pairs", d.path(), "save_every = 5");
    let first = d.path().join("first.jsonl");
    hosts.train(2, &cfg, &first, &[]);
    let want = reference_steps("mnrl_pairs");
    trace_matches("mnrl_pairs on 2 hosts x 2", &first, &want);
    // Back to the checkpoint of step 5, as if the run had stopped there.
    let ckpts = d.path().join("out/checkpoints");
    for e in std::fs::read_dir(&ckpts).unwrap() {
        let p = e.unwrap().path();
        if !p.ends_with("step-00000005") {
            std::fs::remove_dir_all(&p).unwrap();
        }
    }
    let resumed = d.path().join("resumed.jsonl");
    let out = d.path().join("out");
    let err = hosts.train(1, &cfg, &resumed, &["--resume", out.to_str().unwrap()]);
    assert!(err.contains("continuing on 2"), "{err}");
    let got = jsonl(&resumed);
    assert_eq!(got[0]["step"], 6, "{got:?}");
    assert_eq!(got.len(), 7);
    trace_matches(
        "mnrl_pairs resumed at step 6 on 2 hosts x 1",
        &resumed,
        &want,
    );
}

/// The cable of host 2 pulled mid-run: the job ends by itself, well within the collective
/// timeout, nothing stays behind on either host, and every checkpoint on disk is complete.
#[test]
fn a_host_cut_off_the_network_ends_the_job() {
    let Some(hosts) = Hosts::up(2) else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = long_recipe(
        d.path(),
        100_000,
        "save_every = 5\ncollective_timeout_s = 10",
    );
    let mut job = hosts
        .mpirun(1)
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&mut job, &d.path().join("out/checkpoints/step-00000010"));
    let cut = Command::new(script("hosts"))
        .args(["cut", &hosts.prefix, "2"])
        .status()
        .unwrap();
    assert!(cut.success());
    let cut_at = Instant::now();
    let (status, err) = wait_for(&mut job, Duration::from_secs(120), "host 2 cut off");
    let took = cut_at.elapsed();
    assert!(!status.success(), "{err}");
    eprintln!(
        "host 2 cut off: the job ended {:.1} s after the cut ({status}): {}",
        took.as_secs_f64(),
        err.lines()
            .find(|l| l.contains("lost communication") || l.contains("has waited"))
            .unwrap_or("")
    );
    assert!(took < Duration::from_secs(10), "{took:?}\n{err}");
    // Both hosts' processes end by themselves (host 2 cannot be told: its daemon notices).
    let t1 = Instant::now();
    while !(hosts.pids(1).is_empty() && hosts.pids(2).is_empty()) {
        assert!(
            t1.elapsed() < Duration::from_secs(30),
            "left behind: host 1 {:?}, host 2 {:?}",
            hosts.pids(1),
            hosts.pids(2)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(checkpoints_verify(&d.path().join("out/checkpoints")) >= 2);
}
