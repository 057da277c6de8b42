//! GradCache gives the gradients of the uncached loss, and replays dropout masks exactly.

use candle_core::{Tensor, Var};
use model::{Dropout, SentenceModel};
use test_support::shared_dir;
use test_support::sum_sq as sq;
use train::losses::{Embedded, Loss, MultipleNegativesRankingLoss, Similarity};
use train::process_group::SingleProcess;
use train::step::{gradients, Embedding, Gradients, TrainBatch};
use train::trainer::tokenize_batch;

const MNRL: MultipleNegativesRankingLoss = MultipleNegativesRankingLoss {
    scale: 20.0,
    similarity: Similarity::Cos,
};

fn grads(
    m: &SentenceModel,
    vars: &[(String, Var)],
    batch: &TrainBatch,
    embedding: Embedding,
    seed: u64,
) -> Gradients {
    let mut d = Dropout::new(seed);
    gradients(m, vars, batch, &MNRL, embedding, &mut d, &SingleProcess).unwrap()
}

fn setup(
    data: &str,
    model_dir: &std::path::Path,
) -> (SentenceModel, Vec<(String, Var)>, TrainBatch) {
    let mut m = SentenceModel::load(model_dir, &Default::default()).unwrap();
    let vars = m.encoder.params_mut().make_trainable().unwrap();
    let rows =
        pairs::read_jsonl_rows(&shared_dir().join("reference/train-parity").join(data)).unwrap();
    let batch = tokenize_batch(&m, &rows[..16]).unwrap();
    (m, vars, batch)
}

/// Over all gradients together, ‖a − b‖ ≤ rtol·‖b‖ (the bar of the reference's GradCache check);
/// each tensor alone within 10·rtol (tensors whose gradient is a sum that nearly cancels, like
/// the last LayerNorm bias, lose a digit), or 1e-9 absolute for the key biases, whose true
/// gradient is zero.
fn assert_grads_close(
    vars: &[(String, Var)],
    a: &[Option<Tensor>],
    b: &[Option<Tensor>],
    rtol: f64,
) {
    let (mut diff_sq, mut norm_sq) = (0f64, 0f64);
    for ((name, _), (a, b)) in vars.iter().zip(a.iter().zip(b)) {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        let (d, n) = (sq(&(a - b).unwrap()), sq(b));
        diff_sq += d;
        norm_sq += n;
        let (d, n) = (d.sqrt(), n.sqrt());
        assert!(
            d <= 10.0 * rtol * n + 1e-9,
            "{name}: |Δg| {d:e} vs |g| {n:e}"
        );
    }
    let rel = (diff_sq / norm_sq).sqrt();
    eprintln!("gradients: normwise relative difference {rel:.2e}");
    assert!(rel <= rtol, "gradients differ normwise by {rel:e}");
}

fn parity_model() -> std::path::PathBuf {
    shared_dir().join("reference/train-parity/model")
}

#[test]
fn cached_equals_uncached_for_pairs_and_hard_negatives() {
    for data in ["pairs.jsonl", "data.jsonl"] {
        let (m, vars, batch) = setup(data, &parity_model());
        let a = grads(&m, &vars, &batch, Embedding::Direct, 1);
        let cached = Embedding::GradCache { mini_batch_size: 4 };
        let b = grads(&m, &vars, &batch, cached, 1);
        assert!(
            (a.loss - b.loss).abs() <= 1e-5 * a.loss.abs(),
            "{data}: {} vs {}",
            a.loss,
            b.loss
        );
        assert_grads_close(&vars, &b.grads, &a.grads, 1e-5);
    }
}

/// With dropout on, the second (gradient) pass of each mini-batch must draw the masks of its
/// first pass. Reference: the same mini-batches embedded once, with a graph, consuming the
/// dropout stream in the same order — the uncached gradient under those very masks.
#[test]
fn cached_replays_dropout_masks() {
    let dir = tempfile::tempdir().unwrap();
    let src = parity_model();
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        let dst = dir.path().join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            for f in std::fs::read_dir(&p).unwrap() {
                let f = f.unwrap().path();
                std::fs::copy(&f, dst.join(f.file_name().unwrap())).unwrap();
            }
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
    let cfg_path = dir.path().join("config.json");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let cfg = cfg.replace(
        "\"attention_probs_dropout_prob\": 0.0",
        "\"attention_probs_dropout_prob\": 0.1",
    );
    let cfg = cfg.replace(
        "\"hidden_dropout_prob\": 0.0",
        "\"hidden_dropout_prob\": 0.1",
    );
    assert!(cfg.matches(": 0.1").count() >= 2, "dropout not switched on");
    std::fs::write(&cfg_path, cfg).unwrap();

    let (m, vars, batch) = setup("pairs.jsonl", dir.path());
    let mb = 4;
    let cached = Embedding::GradCache {
        mini_batch_size: mb,
    };
    let got = grads(&m, &vars, &batch, cached, 7);

    let mut d = Dropout::new(7);
    let mut embs = Vec::new();
    for col in &batch.columns {
        let mut parts = Vec::new();
        for start in (0..16).step_by(mb) {
            let ids = col.ids.narrow(0, start, mb).unwrap();
            let mask = col.mask.narrow(0, start, mb).unwrap();
            parts.push(
                m.embed_padded(m.encoder.as_ref(), &ids, &mask, Some(&mut d))
                    .unwrap(),
            );
        }
        embs.push(Tensor::cat(&parts, 0).unwrap());
    }
    let loss = MNRL.forward(&Embedded::all(&embs, &batch.texts)).unwrap();
    let store = loss.backward().unwrap();
    let want: Vec<Option<Tensor>> = vars
        .iter()
        .map(|(_, v)| store.get(v.as_tensor()).cloned())
        .collect();
    let want_loss = loss.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (got.loss - want_loss).abs() <= 1e-6 * want_loss,
        "{} vs {want_loss}",
        got.loss
    );
    assert_grads_close(&vars, &got.grads, &want, 1e-5);

    // And dropout really is on: without it the loss differs.
    let (m0, vars0, batch0) = setup("pairs.jsonl", &parity_model());
    let off = grads(&m0, &vars0, &batch0, cached, 7);
    assert!((off.loss - got.loss).abs() > 1e-4, "dropout had no effect");
}
