//! `mpirun -np 2 pairtrain train` (built with `--features mpi`): two ranks, one thread each,
//! reproduce the single-process PyTorch trajectories (same global batch, same maths), GradCache
//! over two ranks equals the uncached loss in one process, and a run that loses a rank to SIGKILL
//! stops as a whole and resumes exactly.
#![cfg(feature = "mpi")]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use test_support::{repo_root, shared_dir};

fn mpirun(np: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(np.to_string())
        .args([env!("CARGO_BIN_EXE_pairtrain"), "--threads", "1"]);
    c
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "failed: {err}");
    err
}

/// `recipes/parity/<run>.toml` with absolute paths, its output in `dir`, and `extra` lines added
/// to its [train] section.
fn parity_recipe(run: &str, dir: &Path, extra: &str) -> PathBuf {
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

fn jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-30)
}

fn train(np: usize, cfg: &Path, trace: &Path, extra: &[&str]) -> String {
    let mut c = mpirun(np);
    c.args(["train", "--quiet", "--config"])
        .arg(cfg)
        .arg("--trace")
        .arg(trace)
        .args(extra);
    ok(&c.output().unwrap())
}

/// The per-step loss and gradient norm of a `--trace` equal a reference's steps (rtol 1e-5).
fn trace_matches(run: &str, trace: &Path, want: &[Value]) {
    let got = jsonl(trace);
    assert_eq!(got.len(), want.len(), "{run}");
    let (mut worst_loss, mut worst_gn) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
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
        "{run} on 2 ranks: max relative difference loss {worst_loss:.2e}, grad norm {worst_gn:.2e}"
    );
    assert!(worst_loss <= 1e-5 && worst_gn <= 1e-5, "{run}");
}

#[test]
fn two_ranks_reproduce_the_pytorch_parity_runs() {
    for run in [
        "mnrl_pairs",
        "mnrl_symmetric",
        "mnrl_hardneg",
        "gradcache_equivalence",
    ] {
        let d = tempfile::tempdir().unwrap();
        let cfg = parity_recipe(run, d.path(), "");
        let trace = d.path().join("trace.jsonl");
        let err = train(2, &cfg, &trace, &[]);
        assert!(
            err.contains("rank 0 of 2") && err.contains("rank 1 of 2"),
            "{err}"
        );
        let want: Value = serde_json::from_slice(
            &std::fs::read(shared_dir().join(format!("reference/train-parity/{run}.json")))
                .unwrap(),
        )
        .unwrap();
        let want = want["steps"].as_array().unwrap();
        trace_matches(run, &trace, want);
        // Rank 0 alone writes the log, and each record says how many ranks trained.
        let log: Vec<Value> = jsonl(&d.path().join("out/train_log.jsonl"));
        assert_eq!(log.len(), want.len());
        assert!(log.iter().all(|r| r["world_size"] == 2), "{log:?}");
        assert!(d.path().join("out/model/model.safetensors").is_file());
    }
}

/// MatryoshkaLoss and GISTEmbedLoss (the guide's embeddings gathered like the model's) on two
/// ranks reproduce sentence-transformers' single-process runs
/// (crates/train/tests/data/loss-parity, as crates/train/tests/loss_parity.rs trains them).
#[test]
fn two_ranks_reproduce_matryoshka_and_gist() {
    let parity = shared_dir().join("reference/train-parity");
    let guide = test_support::minilm_dir();
    for (run, loss) in [
        (
            "matryoshka_mnrl",
            "kind = \"mnrl\"\nmatryoshka_dims = [32, 16, 8]".to_string(),
        ),
        (
            "gist_absolute",
            format!("kind = \"gist\"\nguide = \"{}\"", guide.display()),
        ),
        (
            "cached_gist",
            format!(
                "kind = \"cached-gist\"\nmini_batch_size = 4\nguide = \"{}\"",
                guide.display()
            ),
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("r.toml");
        std::fs::write(
            &cfg,
            format!(
                "[model]\nbase = \"{}\"\n[loss]\n{loss}\n[train]\nbatch_size = 16\nsteps = 10\n\
                 lr = 1e-3\nwarmup_steps = 2\nweight_decay = 0.01\nmax_grad_norm = 1.0\n\
                 adam_eps = 1e-6\nseed = 0\nshuffle = false\noutput = \"{}\"\n[[data]]\n\
                 path = \"{}\"\n",
                parity.join("model").display(),
                d.path().join("out").display(),
                parity.join("pairs.jsonl").display()
            ),
        )
        .unwrap();
        let trace = d.path().join("trace.jsonl");
        let err = train(2, &cfg, &trace, &[]);
        assert!(err.contains("rank 1 of 2"), "{err}");
        let want: Value = serde_json::from_slice(
            &std::fs::read(
                repo_root().join(format!("crates/train/tests/data/loss-parity/{run}.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let want = want["steps"].as_array().unwrap();
        trace_matches(run, &trace, want);
    }
}

#[test]
fn cached_over_two_ranks_equals_uncached_in_one_process() {
    let d = tempfile::tempdir().unwrap();
    let cached = parity_recipe("gradcache_equivalence", d.path(), "");
    let plain_dir = d.path().join("plain");
    std::fs::create_dir_all(&plain_dir).unwrap();
    let plain = parity_recipe("mnrl_pairs", &plain_dir, "");
    let (a, b) = (d.path().join("a.jsonl"), d.path().join("b.jsonl"));
    train(2, &cached, &a, &[]);
    let o = Command::new(env!("CARGO_BIN_EXE_pairtrain"))
        .args(["--threads", "1", "train", "--quiet", "--config"])
        .arg(&plain)
        .arg("--trace")
        .arg(&b)
        .output()
        .unwrap();
    assert!(ok(&o).contains("rank 0 of 1"));
    let (a, b) = (jsonl(&a), jsonl(&b));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for k in ["loss", "grad_norm"] {
            let (x, y) = (x[k].as_f64().unwrap(), y[k].as_f64().unwrap());
            assert!(rel(x, y) <= 1e-5, "step {}: {k} {x} vs {y}", a.len());
        }
    }
}

/// The pids of the ranks (pairtrain processes whose command line names `cfg`).
fn ranks_of(cfg: &Path) -> Vec<u32> {
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

#[test]
fn sigkill_of_one_rank_stops_the_job_and_resume_continues_exactly() {
    const STEPS: usize = 120;
    let d = tempfile::tempdir().unwrap();
    let extra = format!("save_every = 5\nsteps = {STEPS}");
    let make = |name: &str| {
        let dir = d.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let text = std::fs::read_to_string(parity_recipe("mnrl_pairs", &dir, &extra))
            .unwrap()
            .replace("steps = 12\n", "");
        let p = dir.join("r.toml");
        std::fs::write(&p, text).unwrap();
        p
    };
    let full = make("full");
    let full_trace = d.path().join("full.jsonl");
    train(2, &full, &full_trace, &[]);
    let want = jsonl(&full_trace);
    assert_eq!(want.len(), STEPS);

    let cut = make("cut");
    let cut_trace = d.path().join("cut.jsonl");
    let mut job = mpirun(2)
        .args(["train", "--quiet", "--config"])
        .arg(&cut)
        .arg("--trace")
        .arg(&cut_trace)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ckpt = d.path().join("cut/out/checkpoints/step-00000020");
    let t0 = Instant::now();
    while !ckpt.is_dir() {
        assert!(t0.elapsed() < Duration::from_secs(300), "no checkpoint");
        assert!(
            job.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ranks = ranks_of(&cut);
    assert_eq!(ranks.len(), 2, "{ranks:?}");
    let victim = ranks[1];
    Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    let status = job.wait().unwrap();
    assert!(!status.success(), "the job went on without a rank");
    assert!(ranks_of(&cut).is_empty(), "a rank outlived the job");

    // The same checkpoint continued by one process: same batches, same maths, only the order of
    // the gradient sums differs; over the next steps (later, near a loss of 1e-3, rounding
    // differences grow as in any two float32 runs).
    let one = make("one");
    let copy = Command::new("cp")
        .arg("-r")
        .arg(d.path().join("cut/out"))
        .arg(d.path().join("one/out"))
        .status()
        .unwrap();
    assert!(copy.success());
    let one_trace = d.path().join("one.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_pairtrain"))
        .args(["--threads", "1", "train", "--quiet", "--config"])
        .arg(&one)
        .arg("--trace")
        .arg(&one_trace)
        .arg("--resume")
        .arg(d.path().join("one/out"))
        .output()
        .unwrap();
    let err = ok(&o);
    assert!(err.contains("rank(s), continuing on 1"), "{err}");
    for g in jsonl(&one_trace).iter().take(5) {
        let s = g["step"].as_u64().unwrap() as usize;
        for k in ["loss", "grad_norm"] {
            let (a, b) = (g[k].as_f64().unwrap(), want[s - 1][k].as_f64().unwrap());
            assert!(rel(a, b) <= 1e-5, "step {s} on one rank: {k} {a} vs {b}");
        }
    }

    let resumed = d.path().join("resumed.jsonl");
    let out = d.path().join("cut/out");
    train(2, &cut, &resumed, &["--resume", out.to_str().unwrap()]);
    let got = jsonl(&resumed);
    let first = got[0]["step"].as_u64().unwrap() as usize;
    assert!(first > 20, "resumed at step {first}");
    assert_eq!(first - 1 + got.len(), STEPS);
    for g in &got {
        let s = g["step"].as_u64().unwrap() as usize;
        let w = &want[s - 1];
        assert_eq!(g["loss"], w["loss"], "step {s}");
        assert_eq!(g["grad_norm"], w["grad_norm"], "step {s}");
    }
}

/// Distillation over two ranks (each tokenizes and embeds half the sources with the teacher, or
/// both map the teacher cache rank 0 builds) reproduces the single-process PyTorch run of
/// crates/train/tests/data/distil-parity: tiny student + Dense 32 → 384, all-MiniLM-L6-v2 teacher.
#[test]
fn two_ranks_distil_as_the_pytorch_reference() {
    let d = tempfile::tempdir().unwrap();
    let student = test_support::distil_parity_student(d.path());
    let rows =
        pairs::read_jsonl_rows(&shared_dir().join("data/parallel/multi30k-train.en-de.tsv.gz"))
            .unwrap();
    let data = d.path().join("first128.tsv");
    let text: String = rows[..128].iter().map(|r| r.join("\t") + "\n").collect();
    std::fs::write(&data, text).unwrap();
    let want: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("crates/train/tests/data/distil-parity/reference.json"))
            .unwrap(),
    )
    .unwrap();
    let want = want["steps"].as_array().unwrap();
    for cache in [false, true] {
        let out = d.path().join(format!("out-{cache}"));
        let cfg = d.path().join(format!("distil-{cache}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[model]\nbase = \"{s}\"\n[teacher]\nmodel = \"{t}\"\ncache = {cache}\n\
                 cache_dir = \"{c}\"\n[loss]\nkind = \"mse\"\n[train]\nbatch_size = 16\n\
                 steps = 8\nlr = 1e-3\nwarmup_steps = 2\nweight_decay = 0.01\n\
                 max_grad_norm = 1.0\nadam_eps = 1e-6\nseed = 0\nshuffle = false\n\
                 dedup = false\noutput = \"{o}\"\n[[data]]\npath = \"{p}\"\n",
                s = student.display(),
                t = test_support::minilm_dir().display(),
                c = d.path().join("cache").display(),
                o = out.display(),
                p = data.display(),
            ),
        )
        .unwrap();
        let trace = d.path().join(format!("trace-{cache}.jsonl"));
        train(2, &cfg, &trace, &[]);
        let got = jsonl(&trace);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let loss = rel(g["loss"].as_f64().unwrap(), w["loss"].as_f64().unwrap());
            let gn = rel(
                g["grad_norm"].as_f64().unwrap(),
                w["grad_norm_before_clip"].as_f64().unwrap(),
            );
            assert!(loss <= 1e-5 && gn <= 1e-4, "cache {cache}: {g} vs {w}");
        }
        let log = jsonl(&out.join("train_log.jsonl"));
        assert!(log.iter().all(|r| r["world_size"] == 2));
    }
}

/// Ranks that do not run the same recipe on the same data stop at start, every rank with a
/// non-zero status, the difference named: two ranks in two working folders (mpirun's MPMD form),
/// the same recipe text over a `data.jsonl` one line shorter on rank 1; then a recipe whose lr
/// differs.
#[test]
fn ranks_that_disagree_are_refused_at_start() {
    let d = tempfile::tempdir().unwrap();
    let pairs =
        std::fs::read_to_string(shared_dir().join("reference/train-parity/pairs.jsonl")).unwrap();
    let lines: Vec<&str> = pairs.lines().collect();
    let recipe = |lr: &str| {
        format!(
            "[model]\nbase = \"{}\"\n[train]\nbatch_size = 8\nsteps = 2\nlr = {lr}\n\
             output = \"out\"\n[[data]]\npath = \"data.jsonl\"\n",
            shared_dir().join("reference/train-parity/model").display()
        )
    };
    let setup = |sub: &str, rows: usize, lr: &str| {
        let dir = d.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data.jsonl"), lines[..rows].join("\n") + "\n").unwrap();
        std::fs::write(dir.join("r.toml"), recipe(lr)).unwrap();
        dir
    };
    let launch = |a: &Path, b: &Path| {
        let bin = env!("CARGO_BIN_EXE_pairtrain");
        let mut c = Command::new("mpirun");
        c.args(["--allow-run-as-root", "--oversubscribe"]);
        for (i, dir) in [a, b].into_iter().enumerate() {
            if i > 0 {
                c.arg(":");
            }
            c.args(["-np", "1", "-wdir"]).arg(dir).args([
                bin,
                "--threads",
                "1",
                "train",
                "--quiet",
                "--config",
                "r.toml",
            ]);
        }
        let t0 = Instant::now();
        let o = c.output().unwrap();
        (o, t0.elapsed())
    };
    let (a, b) = (setup("a", 64, "1e-4"), setup("b", 63, "1e-4"));
    let (o, took) = launch(&a, &b);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("do not agree with rank 0: rank 1's data files differ")
            && err.contains("rank 1 on host")
            && err.contains("data.jsonl (")
            && !err.contains("rank 1's recipe"),
        "{err}"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert!(!a.join("out/model").exists() && !b.join("out/model").exists());

    let c = setup("c", 64, "2e-5");
    let (o, _) = launch(&a, &c);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("rank 1's recipe differ") && err.contains("lr: 2e-5"),
        "{err}"
    );
}

/// One rank stopped (SIGSTOP) mid-run: the other gives up after `collective_timeout_s` (here 3 s)
/// naming the collective and the step, and the whole job ends with a non-zero status by itself;
/// the checkpoints written before stay complete.
#[test]
fn a_stopped_rank_ends_the_job_within_the_timeout() {
    let d = tempfile::tempdir().unwrap();
    let cfg = parity_recipe(
        "mnrl_pairs",
        d.path(),
        "save_every = 5\ncollective_timeout_s = 3",
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("steps = 12\n", "steps = 100000\n");
    std::fs::write(&cfg, text).unwrap();
    let mut job = mpirun(2)
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ckpt = d.path().join("out/checkpoints/step-00000010");
    let t0 = Instant::now();
    while !ckpt.is_dir() {
        assert!(t0.elapsed() < Duration::from_secs(300), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ranks = ranks_of(&cfg);
    assert_eq!(ranks.len(), 2, "{ranks:?}");
    let victim = ranks[1];
    Command::new("kill")
        .args(["-STOP", &victim.to_string()])
        .status()
        .unwrap();
    let stopped = Instant::now();
    // The job must end by itself; past 120 s the test gives up and cleans up.
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        if stopped.elapsed() > Duration::from_secs(120) {
            for p in ranks_of(&cfg) {
                Command::new("kill")
                    .args(["-9", &p.to_string()])
                    .status()
                    .ok();
            }
            job.kill().ok();
            panic!("the job still hangs 120 s after a rank stopped");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = stopped.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut job.stderr.take().unwrap(), &mut err).unwrap();
    for p in ranks_of(&cfg) {
        Command::new("kill")
            .args(["-9", &p.to_string()])
            .status()
            .ok();
    }
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("rank 0:") && err.contains("has waited") && err.contains("(deadline 3 s)"),
        "{err}"
    );
    eprintln!(
        "a stopped rank: the job ended {:.1} s after the SIGSTOP",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    // Every checkpoint that was renamed into place is complete.
    let root = d.path().join("out/checkpoints");
    for e in std::fs::read_dir(&root).unwrap() {
        let p = e.unwrap().path();
        if !p.to_string_lossy().ends_with(".partial") {
            train::checkpoint::verify(&p).unwrap();
        }
    }
}
