//! What pairtrain's tests share: the read-only `shared/` folder beside the repository, real model
//! weights fetched by `scripts/fetch-test-models`, the golden embeddings, finite-difference
//! gradient checks, tiny random models and the built `pairtrain` binary. A dev-dependency only:
//! nothing here ships in the library crates.

pub mod hub_server;

use candle_core::{DType, Device, Tensor, Var};
use model::rng::Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (two levels above this crate's manifest).
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
    // Once per process: tests run in parallel threads and must not download (or hash 400 MB)
    // side by side.
    static FETCHED: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut fetched = FETCHED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = fetched.iter().find(|(w, _)| w == which) {
        return p.clone();
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
    let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    fetched.push((which.to_string(), dir.clone()));
    dir
}

/// all-MiniLM-L6-v2 (`PAIRTRAIN_MINILM` overrides).
pub fn minilm_dir() -> PathBuf {
    test_model("minilm", "PAIRTRAIN_MINILM")
}

/// all-mpnet-base-v2 (`PAIRTRAIN_MPNET` overrides).
pub fn mpnet_dir() -> PathBuf {
    test_model("mpnet", "PAIRTRAIN_MPNET")
}

/// multilingual-e5-small, built by the shared tool (`PAIRTRAIN_E5` overrides).
pub fn e5_dir() -> PathBuf {
    test_model("e5", "PAIRTRAIN_E5")
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

/// A tensor of N(0, scale²) values from a fixed seed.
pub fn rand_tensor(
    dims: &[usize],
    seed: u64,
    scale: f64,
    dtype: DType,
) -> candle_core::Result<Tensor> {
    let mut rng = Rng::new(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.normal() * scale).collect();
    Tensor::from_vec(v, dims, &Device::Cpu)?.to_dtype(dtype)
}

/// Compares the autograd gradient of the scalar `f()` (an f64 graph) with central differences.
/// `pick(name, numel)` chooses which elements of each variable to probe. An element passes when
/// it is within 1e-7 + 1e-6·max|g| of the numeric value (central differences in f64 with
/// h = 1e-5 are good to ~1e-10 here).
pub fn check_gradients(
    vars: &[(String, Var)],
    pick: impl Fn(&str, usize) -> Vec<usize>,
    f: impl Fn() -> candle_core::Result<Tensor>,
) {
    let analytic = f().and_then(|l| l.backward()).expect("backward");
    let h = 1e-5;
    let flat = |t: &Tensor| {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("f64")
    };
    let eval = || f().and_then(|l| l.to_scalar::<f64>()).expect("loss");
    for (name, var) in vars {
        let g = flat(
            analytic
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no grad")),
        );
        let gmax = g.iter().fold(0f64, |a, v| a.max(v.abs()));
        let orig = flat(var.as_tensor());
        let set = |p: Vec<f64>| {
            let t = Tensor::from_vec(p, var.shape(), &Device::Cpu).expect("tensor");
            var.set(&t).expect("set");
        };
        for i in pick(name, orig.len()) {
            let mut p = orig.clone();
            p[i] += h;
            set(p.clone());
            let up = eval();
            p[i] -= 2.0 * h;
            set(p);
            let down = eval();
            let numeric = (up - down) / (2.0 * h);
            assert!(
                (numeric - g[i]).abs() <= 1e-7 + 1e-6 * gmax,
                "{name}[{i}]: autograd {} vs finite difference {numeric}",
                g[i]
            );
        }
        set(orig);
    }
}

/// Up to `k` indices spread evenly over `0..n`.
pub fn spread(n: usize, k: usize) -> Vec<usize> {
    (0..n).step_by((n / k.max(1)).max(1)).collect()
}

/// Saves a randomly initialised model of `cfg` as a plain Hugging Face folder: config.json,
/// model.safetensors (keys under `prefix`, as the architecture's checkpoints store them) and
/// MiniLM's tokenizer.json (an encoder does not care which vocabulary produced the ids). Returns
/// the encoder that was saved.
pub fn save_tiny_model(
    dir: &Path,
    cfg: &model::ModelConfig,
    prefix: &str,
    seed: u64,
) -> Box<dyn model::Encoder> {
    let src = model::ParamSource::random(seed, 0.3, DType::F32, &Device::Cpu);
    let enc = model::build_encoder(cfg, src).expect("random encoder");
    std::fs::create_dir_all(dir).expect("model folder");
    let json = serde_json::to_string_pretty(cfg).expect("config");
    std::fs::write(dir.join("config.json"), json).expect("config.json");
    model::save::write_params(enc.params(), &dir.join("model.safetensors"), prefix)
        .expect("model.safetensors");
    std::fs::copy(
        minilm_dir().join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .expect("tokenizer.json");
    enc
}

/// Runs a built binary (`env!("CARGO_BIN_EXE_pairtrain")` in the CLI's tests) with `args` and
/// returns its output.
pub fn run_cli(bin: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

/// Σ x², in f64, over every element of `t`.
pub fn sum_sq(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .and_then(|t| t.sqr())
        .and_then(|t| t.sum_all())
        .and_then(|t| t.to_scalar::<f64>())
        .expect("sum of squares")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The student of the distillation reference (crates/train/tests/data/distil-parity), built in
/// `dir/student`: the tiny parity BERT with the reference's initial Dense module (32 → 384)
/// between pooling and normalisation.
pub fn distil_parity_student(dir: &Path) -> PathBuf {
    let s = dir.join("student");
    copy_dir(&shared_dir().join("reference/train-parity/model"), &s);
    copy_dir(
        &repo_root().join("crates/train/tests/data/distil-parity/dense"),
        &s.join("2_Dense"),
    );
    std::fs::remove_dir_all(s.join("2_Normalize")).unwrap();
    std::fs::write(
        s.join("modules.json"),
        r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
 {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
 {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
 {"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"}]"#,
    )
    .unwrap();
    s
}

/// Every file under `dir` (recursively, symlinks not followed), sorted: for "nothing was left
/// behind" checks.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir` by its `/`-separated relative path, with its bytes.
pub fn files_by_path(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    all_files(dir)
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// A model folder to publish in tests: the tiny model of the parity runs, with a card and one
/// more large file, so that a push has two LFS files (one can be finished when the other is
/// interrupted).
pub fn push_fixture_model(dir: &Path) -> PathBuf {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dest = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy_dir(&p, &dest);
            } else {
                std::fs::write(&dest, std::fs::read(&p).unwrap()).unwrap();
            }
        }
    }
    let m = dir.join("model");
    copy_dir(&shared_dir().join("reference/train-parity/model"), &m);
    std::fs::write(
        m.join("README.md"),
        "---\nlibrary_name: sentence-transformers\n---\n# tiny\n",
    )
    .unwrap();
    std::fs::create_dir_all(m.join("extra")).unwrap();
    let blob: Vec<u8> = (0..(2usize << 20)).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(m.join("extra/weights.bin"), blob).unwrap();
    m
}

/// A folder of pair files to publish in tests, made with the CLI `bin`: the pairs mined from
/// the StackExchange fixture (`se/`, rows written as JSON lists), and `chat/` with a train and a
/// test file of objects.
pub fn push_fixture_dataset(bin: &str, dir: &Path) -> PathBuf {
    let data = dir.join("pairs");
    let o = std::process::Command::new(bin)
        .args(["mine", "stackexchange"])
        .arg(shared_dir().join("fixtures/stackexchange/coffee.stackexchange.com-2015"))
        .arg("--out")
        .arg(data.join("se"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::create_dir_all(data.join("chat")).unwrap();
    std::fs::write(
        data.join("chat/train-00000.jsonl"),
        "{\"context\": \"hi there\", \"response\": \"hello\"}\n{\"context\": \"a\", \"response\": \"b\"}\n",
    )
    .unwrap();
    std::fs::write(
        data.join("chat/test-00000.jsonl"),
        "{\"context\": \"bye\", \"response\": \"see you\"}\n",
    )
    .unwrap();
    data
}
