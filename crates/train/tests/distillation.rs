//! Knowledge distillation (`[loss] kind = "mse"`, `[teacher]`) against the PyTorch reference in
//! tests/data/distil-parity (scripts/reference/torch_distill_parity.py): a student with a Dense
//! projection (the tiny parity BERT, 32 dims, + Dense 32 → 384) learns all-MiniLM-L6-v2's
//! embeddings of Multi30k English sources, for itself and for the German translations.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use test_support::{minilm_dir, repo_root, shared_dir};
use train::{Recipe, Trainer};

fn data_dir() -> PathBuf {
    repo_root().join("crates/train/tests/data/distil-parity")
}

/// The reference's student (the tiny parity model + Dense 32 → 384).
fn student(dir: &Path) -> PathBuf {
    test_support::distil_parity_student(dir)
}

fn recipe(dir: &Path, student: &Path) -> Recipe {
    let text = format!(
        r#"
[model]
base = "{student}"
[teacher]
model = "{teacher}"
[loss]
kind = "mse"
[train]
batch_size = 16
steps = 8
lr = 1e-3
warmup_steps = 2
weight_decay = 0.01
max_grad_norm = 1.0
adam_eps = 1e-6
seed = 0
shuffle = false
dedup = false
output = "{out}"
[[data]]
path = "{data}"
"#,
        student = student.display(),
        teacher = minilm_dir().display(),
        out = dir.join("out").display(),
        data = shared_dir()
            .join("data/parallel/multi30k-train.en-de.tsv.gz")
            .display(),
    );
    let p = dir.join("distil.toml");
    std::fs::write(&p, text).unwrap();
    Recipe::load(&p).unwrap()
}

fn close(got: f64, want: f64, rtol: f64) -> bool {
    (got - want).abs() <= rtol * want.abs()
}

fn reference() -> Value {
    serde_json::from_slice(&std::fs::read(data_dir().join("reference.json")).unwrap()).unwrap()
}

/// Per-step loss, lr and gradient norm against the reference.
fn check_steps(tr: &Trainer, want: &Value) {
    let steps = want["steps"].as_array().unwrap();
    assert_eq!(tr.history.len(), steps.len());
    for (got, w) in tr.history.iter().zip(steps) {
        let f = |k: &str| w[k].as_f64().unwrap();
        assert!(close(got.lr, f("lr"), 1e-12), "step {}: lr", got.step);
        assert!(
            close(got.loss, f("loss"), 1e-5),
            "step {}: loss {} vs {}",
            got.step,
            got.loss,
            f("loss")
        );
        assert!(
            close(got.grad_norm, f("grad_norm_before_clip"), 1e-4),
            "step {}: grad norm {} vs {}",
            got.step,
            got.grad_norm,
            f("grad_norm_before_clip")
        );
    }
}

#[test]
fn distillation_with_a_dense_projection_matches_pytorch() {
    let d = tempfile::tempdir().unwrap();
    let mut tr = Trainer::new(recipe(d.path(), &student(d.path())), None).unwrap();
    assert_eq!(tr.loss_name(), "MSELoss");
    assert!(tr.run(&AtomicBool::new(false), |_| {}).unwrap());
    let want = reference();
    check_steps(&tr, &want);
    // Final parameters, the encoder's and the projection's, by their norms.
    let dense = tr.model.dense.as_ref().unwrap();
    for (name, w) in want["final"]["param_l2_norms"].as_object().unwrap() {
        let t = if let Some(enc) = name.strip_prefix("0.model.") {
            tr.model.encoder.params().get(enc).unwrap().clone()
        } else {
            let n = name.strip_prefix("2.").unwrap();
            dense.params.get(n).unwrap().clone()
        };
        let got = test_support::sum_sq(&t).sqrt();
        let w = w.as_f64().unwrap();
        // Attention key biases get gradients at rounding level only (softmax ignores a constant
        // per query): their norms (~1e-12) are compared absolutely.
        assert!(
            close(got, w, 1e-5) || (got - w).abs() < 1e-9,
            "{name}: norm {got} vs {w}"
        );
    }
    // The trained student's embeddings, then the same from the saved model folder.
    let probes: Vec<&str> = want["final"]["probe_texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let check = |emb: Vec<Vec<f32>>, what: &str| {
        for (got, w) in emb
            .iter()
            .zip(want["final"]["probe_embeddings"].as_array().unwrap())
        {
            assert_eq!(got.len(), 384);
            for (g, w) in got.iter().zip(w.as_array().unwrap()) {
                let w = w.as_f64().unwrap() as f32;
                assert!((g - w).abs() < 1e-5, "{what}: {g} vs {w}");
            }
        }
    };
    check(
        tr.model.detached().encode(&probes, 8, |_| {}).unwrap(),
        "trained",
    );
    let saved = tr.save_final().unwrap();
    let modules = std::fs::read_to_string(saved.join("modules.json")).unwrap();
    assert!(
        modules.contains("2_Dense") && modules.contains("3_Normalize"),
        "{modules}"
    );
    let back = model::SentenceModel::load(&saved, &Default::default()).unwrap();
    assert_eq!(back.dim(), 384);
    check(back.encode(&probes, 8, |_| {}).unwrap(), "saved");
    let card = std::fs::read_to_string(saved.join("README.md")).unwrap();
    assert!(card.contains("MSELoss") && card.contains("all-MiniLM-L6-v2"));
    assert!(
        !card.contains(&d.path().display().to_string()),
        "the card names a local path"
    );
}

/// With `[teacher] cache`, the teacher's embeddings come from the cache built before the first
/// step (the same trajectory), and a second run maps the cache instead of building it again.
#[test]
fn distillation_from_the_teacher_cache_matches_pytorch() {
    let d = tempfile::tempdir().unwrap();
    let s = student(d.path());
    let cache_dir = d.path().join("cache");
    let mut r = recipe(d.path(), &s);
    // The rows the reference trains on (the first 128), so that building the cache is quick.
    let full = shared_dir().join("data/parallel/multi30k-train.en-de.tsv.gz");
    let data = d.path().join("first128.en-de.tsv");
    let rows = pairs::read_jsonl_rows(&full).unwrap();
    let text: String = rows[..128].iter().map(|r| r.join("\t") + "\n").collect();
    std::fs::write(&data, text).unwrap();
    r.data[0].path = data.display().to_string();
    let t = r.teacher.as_mut().unwrap();
    t.cache = true;
    t.cache_dir = Some(cache_dir.display().to_string());
    let mut tr = Trainer::new(r.clone(), None).unwrap();
    assert!(tr.run(&AtomicBool::new(false), |_| {}).unwrap());
    check_steps(&tr, &reference());
    let files: Vec<_> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    let npy = files
        .iter()
        .find(|f| f.extension().unwrap() == "npy")
        .unwrap();
    let written = std::fs::metadata(npy).unwrap().modified().unwrap();

    // What the cache holds is the teacher's embedding of each source.
    let teacher = tr.teacher.as_ref().unwrap();
    let (npy_path, keys) = train::teacher_cache::cache_paths(teacher, &data, &cache_dir);
    let cache = train::teacher_cache::TeacherCache::open(&npy_path, &keys, 384).unwrap();
    let unique: std::collections::HashSet<&String> = rows[..128].iter().map(|r| &r[0]).collect();
    assert_eq!(cache.len(), unique.len());
    let sources = ["Two young, White males are outside near many bushes."];
    let want = teacher.encode(&sources, 1, |_| {}).unwrap();
    let got = cache.get(sources[0]).expect("the first source is cached");
    for (g, w) in got.iter().zip(&want[0]) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
    assert!(cache.get("a sentence that is not in the file").is_none());

    let mut again = Trainer::new(r, None).unwrap();
    assert!(again.run(&AtomicBool::new(false), |_| {}).unwrap());
    check_steps(&again, &reference());
    assert_eq!(
        std::fs::metadata(npy).unwrap().modified().unwrap(),
        written,
        "the cache was built again"
    );
}

/// A student narrower or wider than its teacher gets a new projection to the teacher's
/// dimension; without a teacher, `mse` is refused, and a teacher without `mse` too.
#[test]
fn projection_is_added_and_recipes_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let s = student(d.path());
    // The plain tiny model: 32 dims against the teacher's 384.
    std::fs::remove_dir_all(s.join("2_Dense")).unwrap();
    std::fs::copy(
        shared_dir().join("reference/train-parity/model/modules.json"),
        s.join("modules.json"),
    )
    .unwrap();
    std::fs::create_dir_all(s.join("2_Normalize")).unwrap();
    let mut r = recipe(d.path(), &s);
    r.train.steps = 1;
    r.train.warmup_steps = 0;
    let mut tr = Trainer::new(r.clone(), None).unwrap();
    let dense = tr.model.dense.as_ref().expect("a projection");
    assert_eq!((dense.in_features, dense.out_features), (32, 384));
    assert!(tr.run(&AtomicBool::new(false), |_| {}).unwrap());
    assert!(tr.history[0].loss.is_finite());

    let mut no_teacher = r.clone();
    no_teacher.teacher = None;
    let e = no_teacher.check().unwrap_err().to_string();
    assert!(e.contains("[teacher]"), "{e}");
    let mut no_mse = r;
    no_mse.loss.kind = train::recipe::LossKind::Mnrl;
    let e = no_mse.check().unwrap_err().to_string();
    assert!(e.contains("mse"), "{e}");
}
