//! `mpirun -np 2 pairtrain train` (built with `--features mpi`): two ranks, one thread each,
//! reproduce the single-process PyTorch trajectories (same global batch, same maths), GradCache
//! over two ranks equals the uncached loss in one process, and a run that loses a rank to SIGKILL
//! stops as a whole and resumes exactly.
#![cfg(feature = "mpi")]

mod ranks;

use ranks::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use test_support::{repo_root, shared_dir};

fn mpirun(np: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(np.to_string())
        .args([env!("CARGO_BIN_EXE_pairtrain"), "--threads", "1"]);
    c
}

/// The trace of `cfg` trained to its end on two ranks (`steps` steps), for the interrupted runs
/// to be compared with.
fn uninterrupted(cfg: &Path, steps: usize) -> Vec<Value> {
    let trace = cfg.with_file_name("uninterrupted.jsonl");
    train(2, cfg, &trace, &[]);
    let want = jsonl(&trace);
    assert_eq!(want.len(), steps);
    want
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
        let want = reference_steps(run);
        assert_eq!(jsonl(&trace).len(), want.len(), "{run}");
        trace_matches(&format!("{run} on 2 ranks"), &trace, &want);
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
        assert_eq!(jsonl(&trace).len(), want.len(), "{run}");
        trace_matches(&format!("{run} on 2 ranks"), &trace, want);
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

#[test]
fn sigkill_of_one_rank_stops_the_job_and_resume_continues_exactly() {
    const STEPS: usize = 120;
    let d = tempfile::tempdir().unwrap();
    let make = |name: &str| long_recipe(&d.path().join(name), STEPS, "save_every = 5");
    let want = uninterrupted(&make("full"), STEPS);

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
    wait_for_checkpoint(
        &mut job,
        &d.path().join("cut/out/checkpoints/step-00000020"),
    );
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
    let first = resumed_exactly(&jsonl(&resumed), &want);
    assert!(first > 20, "resumed at step {first}");
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
/// naming the collective, the step and the rank that has not arrived (rank 1 stopped: rank 0
/// names it from its board; rank 0 stopped: rank 1 says rank 0 does not answer), and the whole
/// job ends with a non-zero status by itself; the checkpoints written before stay complete.
#[test]
fn a_stopped_rank_ends_the_job_within_the_timeout() {
    // Long enough that the stop comes well before the end.
    const STEPS: usize = 400;
    let mut full_run: Option<Vec<Value>> = None;
    for stop in [1u32, 0] {
        let d = tempfile::tempdir().unwrap();
        let extra = "save_every = 5\ncollective_timeout_s = 3";
        let cfg = long_recipe(d.path(), STEPS, extra);
        let mut job = mpirun(2)
            .args(["train", "--quiet", "--config"])
            .arg(&cfg)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_checkpoint(&mut job, &d.path().join("out/checkpoints/step-00000010"));
        let ranks = ranks_of(&cfg);
        assert_eq!(ranks.len(), 2, "{ranks:?}");
        let victim = *ranks.iter().find(|&&p| rank_of(p) == Some(stop)).unwrap();
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
        let host = train::process_group::host_name();
        let (noticer, names) = if stop == 1 {
            (
                "rank 0:",
                format!("not arrived: rank 1 (host {host}, pid {victim}): silent for "),
            )
        } else {
            ("rank 1:", "rank 0 did not answer within 2 s".to_string())
        };
        assert!(
            err.contains(noticer)
                && err.contains("has waited")
                && err.contains("(deadline 3 s)")
                && err.contains(&names),
            "rank {stop} stopped, expected {names:?}:\n{err}"
        );
        eprintln!(
            "rank {stop} stopped: the job ended {:.1} s after the SIGSTOP: {}",
            took.as_secs_f64(),
            err.lines().find(|l| l.contains("has waited")).unwrap_or("")
        );
        assert!(took < Duration::from_secs(60), "{took:?}");
        // Every checkpoint that was renamed into place is complete.
        checkpoints_verify(&d.path().join("out/checkpoints"));
        // Resumed, the run repeats the uninterrupted run's losses exactly.
        let want = full_run.get_or_insert_with(|| {
            uninterrupted(&long_recipe(&d.path().join("full"), STEPS, extra), STEPS)
        });
        let resumed = d.path().join("resumed.jsonl");
        let out = d.path().join("out");
        train(2, &cfg, &resumed, &["--resume", out.to_str().unwrap()]);
        assert!(resumed_exactly(&jsonl(&resumed), want) > 10);
    }
}

/// The rank of a process started by mpirun, from its environment.
fn rank_of(pid: u32) -> Option<u32> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0).find_map(|v| {
        std::str::from_utf8(v)
            .ok()?
            .strip_prefix("OMPI_COMM_WORLD_RANK=")?
            .parse()
            .ok()
    })
}

/// The unfinished checkpoints (`*.partial`) under `root`.
fn partials(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default()
}

/// Rank 0 SIGKILLed while it writes a checkpoint (a `.partial` folder on disk): the job stops,
/// the unfinished checkpoint is never taken for a complete one, `--resume` continues from the
/// last complete checkpoint exactly as the uninterrupted run went, and the leftover is removed.
#[test]
fn sigkill_during_a_checkpoint_write_resumes_from_the_last_complete_one() {
    const STEPS: usize = 60;
    let d = tempfile::tempdir().unwrap();
    let make = |name: &str| long_recipe(&d.path().join(name), STEPS, "save_every = 1");
    let want = uninterrupted(&make("full"), STEPS);

    // The kill must land between the creation of the `.partial` folder and its rename; when the
    // rename wins the race, the attempt is run again.
    for attempt in 1..=10 {
        let name = format!("cut{attempt}");
        let cfg = make(&name);
        let root = d.path().join(&name).join("out/checkpoints");
        let mut job = mpirun(2)
            .args(["train", "--quiet", "--config"])
            .arg(&cfg)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Past the first few steps, so that complete checkpoints exist before the kill.
        wait_for_checkpoint(&mut job, &root.join("step-00000005"));
        let writer = ranks_of(&cfg)
            .into_iter()
            .find(|&p| rank_of(p) == Some(0))
            .expect("rank 0's pid");
        let mut killed = None;
        while job.try_wait().unwrap().is_none() {
            if let Some(p) = partials(&root).pop() {
                Command::new("kill")
                    .args(["-9", &writer.to_string()])
                    .status()
                    .unwrap();
                killed = Some(p);
                break;
            }
        }
        let status = job.wait().unwrap();
        let Some(partial) = killed else {
            panic!("the run ended before a checkpoint write was caught");
        };
        if !root.join(&partial).exists() {
            eprintln!("attempt {attempt}: the rename of {partial} came first; again");
            continue;
        }
        assert!(!status.success(), "the job went on without rank 0");
        assert!(ranks_of(&cfg).is_empty(), "a rank outlived the job");
        let cut_step: usize = partial["step-".len()..partial.len() - ".partial".len()]
            .parse()
            .unwrap();
        eprintln!("attempt {attempt}: rank 0 killed while writing {partial}");

        let resumed = d.path().join(format!("{name}.jsonl"));
        let out = d.path().join(&name).join("out");
        train(2, &cfg, &resumed, &["--resume", out.to_str().unwrap()]);
        let first = resumed_exactly(&jsonl(&resumed), &want);
        // Every step was saved, so the last complete checkpoint is the step before.
        assert_eq!(
            first, cut_step,
            "resumed at step {first}, {partial} was cut"
        );
        assert!(partials(&root).is_empty(), "{:?}", partials(&root));
        return;
    }
    panic!("in 10 runs no kill landed during a checkpoint write");
}
