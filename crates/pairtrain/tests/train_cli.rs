//! `pairtrain train` end to end: a run killed with SIGKILL and resumed from its last checkpoint
//! continues with exactly the losses of an uninterrupted run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use test_support::shared_dir;

const STEPS: usize = 400;

fn recipe(dir: &Path, name: &str) -> std::path::PathBuf {
    let parity = shared_dir().join("reference/train-parity");
    let text = format!(
        r#"
[model]
base = "{model}"
[loss]
kind = "mnrl"
[train]
batch_size = 16
steps = {STEPS}
lr = 1e-3
warmup_steps = 10
save_every = 7
seed = 5
output = "{out}"
[[data]]
path = "{data}"
"#,
        model = parity.join("model").display(),
        data = parity.join("pairs.jsonl").display(),
        out = dir.join(name).display(),
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn losses(trace: &Path) -> Vec<(usize, f64)> {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap() as usize,
                v["loss"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn train(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pairtrain"))
        .args(["--threads", "2", "train", "--quiet"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn sigkill_then_resume_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let full = recipe(d, "full");
    let full_trace = d.join("full.jsonl");
    let o = train(&[
        "--config",
        full.to_str().unwrap(),
        "--trace",
        full_trace.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = losses(&full_trace);
    assert_eq!(want.len(), STEPS);
    assert!(d.join("full/model/model.safetensors").is_file());

    // Same recipe, killed mid-run.
    let cut = recipe(d, "cut");
    let cut_trace = d.join("cut.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pairtrain"))
        .args(["--threads", "2", "train", "--quiet", "--config"])
        .arg(&cut)
        .arg("--trace")
        .arg(&cut_trace)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let n = std::fs::read_to_string(&cut_trace).map_or(0, |s| s.lines().count());
        if n >= 40 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "training made no progress"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = losses(&cut_trace);
    assert!(
        before.len() < STEPS,
        "the run finished before it could be killed"
    );

    let resumed_trace = d.join("resumed.jsonl");
    let o = train(&[
        "--config",
        cut.to_str().unwrap(),
        "--resume",
        d.join("cut").to_str().unwrap(),
        "--trace",
        resumed_trace.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = losses(&resumed_trace);
    let k = after[0].0 - 1;
    assert!(
        k >= 7 && k.is_multiple_of(7) && k <= before.len(),
        "resumed after step {k}"
    );
    assert_eq!(after.len(), STEPS - k);
    // Steps the killed run already did, and every step after the checkpoint, match exactly.
    assert_eq!(&before[..], &want[..before.len()]);
    assert_eq!(&after[..], &want[k..]);
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = recipe(d, "int");
    let trace = d.join("int.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_pairtrain"))
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--trace")
        .arg(&trace)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::fs::read_to_string(&trace).map_or(0, |s| s.lines().count()) < 10 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "training made no progress"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("checkpoint saved"), "{err}");
    let done = losses(&trace).len();
    assert!(done < STEPS);
    let ckpt = d.join(format!("int/checkpoints/step-{done:08}"));
    assert!(
        ckpt.join("trainer_state.json").is_file(),
        "no checkpoint at step {done}"
    );
    assert!(
        !d.join("int/model").exists(),
        "no final model for an interrupted run"
    );

    let resumed = d.join("resumed.jsonl");
    let o = train(&[
        "--config",
        cfg.to_str().unwrap(),
        "--resume",
        ckpt.to_str().unwrap(),
        "--trace",
        resumed.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(losses(&resumed).first().map(|x| x.0), Some(done + 1));
    assert!(d.join("int/model/model.safetensors").is_file());
}
