//! Checkpoints that survive damage: each carries a manifest of its files' sizes and SHA-256,
//! resuming verifies it and passes over a damaged newest checkpoint to the one before (saying
//! so), and `save_total_limit` keeps only the newest N.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use test_support::shared_dir;
use train::{checkpoint, Recipe, Trainer};

fn run(dir: &Path, steps: usize, extra: &str) -> Trainer {
    let parity = shared_dir().join("reference/train-parity");
    let p = dir.join("r.toml");
    std::fs::write(
        &p,
        format!(
            "[model]\nbase = \"{}\"\n[train]\nbatch_size = 8\nsteps = {steps}\nsave_every = 2\n\
             {extra}\noutput = \"{}\"\n[[data]]\npath = \"{}\"\n",
            parity.join("model").display(),
            dir.join("out").display(),
            parity.join("pairs.jsonl").display()
        ),
    )
    .unwrap();
    let mut tr = Trainer::new(Recipe::load(&p).unwrap(), None).unwrap();
    assert!(tr.run(&AtomicBool::new(false), |_| {}).unwrap());
    tr
}

fn names(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn save_total_limit_keeps_the_newest() {
    let d = tempfile::tempdir().unwrap();
    run(d.path(), 9, "save_total_limit = 2");
    let root = d.path().join("out/checkpoints");
    assert_eq!(names(&root), ["step-00000006", "step-00000008"]);
    let e = Recipe::load(&{
        let p = d.path().join("bad.toml");
        let text = std::fs::read_to_string(d.path().join("r.toml"))
            .unwrap()
            .replace("save_total_limit = 2", "save_total_limit = 0");
        std::fs::write(&p, text).unwrap();
        p
    })
    .unwrap_err();
    assert!(
        format!("{e}").contains("save_total_limit must be at least 1"),
        "{e}"
    );
}

#[test]
fn a_damaged_checkpoint_is_passed_over_or_refused() {
    let d = tempfile::tempdir().unwrap();
    run(d.path(), 5, "");
    let out = d.path().join("out");
    let root = out.join("checkpoints");
    assert_eq!(names(&root), ["step-00000002", "step-00000004"]);
    let newest = root.join("step-00000004");
    assert!(newest.join("manifest.json").is_file());
    assert_eq!(checkpoint::resolve(&out).unwrap(), newest);

    // One byte changed in place (same size): the SHA-256 says so.
    let weights = newest.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&weights, &bytes).unwrap();
    let e = checkpoint::verify(&newest).unwrap_err();
    assert!(format!("{e:#}").contains("SHA-256 differs"), "{e:#}");
    // Resuming the run takes the checkpoint before; naming the damaged one is an error.
    assert_eq!(
        checkpoint::resolve(&out).unwrap(),
        root.join("step-00000002")
    );
    let e = checkpoint::resolve(&newest).unwrap_err();
    assert!(format!("{e:#}").contains("damaged checkpoint"), "{e:#}");

    // The older one cut short too: nothing to resume from, both named.
    let opt = root.join("step-00000002/optimizer.safetensors");
    let len = std::fs::metadata(&opt).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&opt)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let e = format!("{:#}", checkpoint::resolve(&out).unwrap_err());
    assert!(
        e.contains("every checkpoint is damaged") && e.contains("step-00000004"),
        "{e}"
    );
    assert!(format!(
        "{:#}",
        checkpoint::verify(&root.join("step-00000002")).unwrap_err()
    )
    .contains(&format!("{} bytes, the manifest says {len}", len / 2)));
}
