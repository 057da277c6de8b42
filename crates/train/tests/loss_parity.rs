//! The losses of today's embedding models (MatryoshkaLoss over MNRL and cached MNRL, TripletLoss,
//! GISTEmbedLoss absolute and relative with hard negatives, CachedGISTEmbedLoss, CoSENTLoss,
//! AnglELoss, CosineSimilarityLoss, MarginMSELoss) against
//! sentence-transformers 6.2's own loss classes: 10 steps of the tiny parity model, per-step loss and
//! gradient norm at rtol 1e-5, final parameter norms. References: tests/data/loss-parity, written
//! by scripts/reference/torch_loss_parity.py.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use test_support::{minilm_dir, repo_root, shared_dir};
use train::{Recipe, Trainer};

fn reference(run: &str) -> serde_json::Value {
    reference_in("", run)
}

/// A reference of `loss-parity/<sub>/`.
fn reference_in(sub: &str, run: &str) -> serde_json::Value {
    let p = repo_root()
        .join("crates/train/tests/data/loss-parity")
        .join(sub)
        .join(format!("{run}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// `data` as the reference script reads it: a file of shared/reference/train-parity, of the
/// references (`ref:`), or of ../shared (`shared:`).
fn data_path(data: &str) -> std::path::PathBuf {
    if let Some(f) = data.strip_prefix("ref:") {
        repo_root()
            .join("crates/train/tests/data/loss-parity")
            .join(f)
    } else if let Some(f) = data.strip_prefix("shared:") {
        shared_dir().join(f)
    } else {
        shared_dir().join("reference/train-parity").join(data)
    }
}

/// Trains the tiny parity model 10 steps with `loss` (a `[loss]` body) on `data` (a file of
/// shared/reference/train-parity), as the reference script does.
fn trained(loss: &str, data: &str, dir: &Path) -> Trainer {
    trained_with(loss, data, "", "", dir)
}

/// As `trained`, with more `[model]` and `[[data]]` lines.
fn trained_with(loss: &str, data: &str, model: &str, data_extra: &str, dir: &Path) -> Trainer {
    let base = shared_dir().join("reference/train-parity/model");
    trained_from(&base, 1e-3, loss, data, model, data_extra, dir)
}

/// As `trained_with`, training the model in `base` at learning rate `lr`.
fn trained_from(
    base: &Path,
    lr: f64,
    loss: &str,
    data: &str,
    model: &str,
    data_extra: &str,
    dir: &Path,
) -> Trainer {
    let text = format!(
        r#"
[model]
base = "{base}"
{model}
[loss]
{loss}
[train]
batch_size = 16
steps = 10
lr = {lr:e}
warmup_steps = 2
weight_decay = 0.01
max_grad_norm = 1.0
adam_eps = 1e-6
seed = 0
shuffle = false
output = "{out}"
[[data]]
path = "{data}"
{data_extra}
"#,
        base = base.display(),
        data = data_path(data).display(),
        out = dir.join("run").display(),
    );
    let p = dir.join("recipe.toml");
    std::fs::write(&p, text).unwrap();
    let recipe = Recipe::load(&p).unwrap();
    let mut tr = Trainer::new(recipe, None).unwrap();
    assert!(tr.run(&AtomicBool::new(false), |_| {}).unwrap());
    tr
}

fn check(run: &str, loss: &str, data: &str) {
    let d = tempfile::tempdir().unwrap();
    check_trained(run, &trained(loss, data, d.path()));
}

fn check_trained(run: &str, tr: &Trainer) {
    check_against(run, reference(run), tr, 1e-5, 0.0);
}

/// Loss within rtol 1e-5 plus `atol`; gradient norm and final parameter norms at `rtol`.
fn check_against(run: &str, want: serde_json::Value, tr: &Trainer, rtol: f64, atol: f64) {
    let steps = want["steps"].as_array().unwrap();
    assert_eq!(tr.history.len(), steps.len(), "{run}");
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-30);
    let (mut wl, mut wg) = (0f64, 0f64);
    for (got, w) in tr.history.iter().zip(steps) {
        let (loss, gn) = (
            w["loss"].as_f64().unwrap(),
            w["grad_norm_before_clip"].as_f64().unwrap(),
        );
        assert!(
            (got.lr - w["lr"].as_f64().unwrap()).abs() < 1e-12,
            "{run} step {}",
            got.step
        );
        wl = wl.max(rel(got.loss, loss));
        wg = wg.max(rel(got.grad_norm, gn));
        assert!(
            (got.loss - loss).abs() <= 1e-5 * loss.abs() + atol,
            "{run} step {}: loss {} vs {loss}",
            got.step,
            got.loss
        );
        assert!(
            rel(got.grad_norm, gn) <= rtol,
            "{run} step {}: grad norm {} vs {gn}",
            got.step,
            got.grad_norm
        );
    }
    let params = tr.model.encoder.params();
    let mut wn = 0f64;
    for (name, w) in want["final"]["param_l2_norms"].as_object().unwrap() {
        let (ours, part) = match params.iter().any(|(n, _)| n == name) {
            true => (name.clone(), None),
            false => checkpoint_name(name),
        };
        let t = params
            .iter()
            .find(|(n, _)| *n == ours)
            .unwrap_or_else(|| panic!("{run}: no parameter {ours} (for {name})"))
            .1;
        let t = match part {
            Some(i) => t.chunk(3, 0).unwrap()[i].clone(),
            None => t.clone(),
        };
        let got = test_support::sum_sq(&t).sqrt();
        let w = w.as_f64().unwrap();
        wn = wn.max((got - w).abs() / w.abs().max(1e-3));
        assert!(
            (got - w).abs() <= rtol * w.abs().max(1e-3),
            "{run}: norm of {name} {got} vs {w}"
        );
    }
    eprintln!(
        "{run}: max relative difference: loss {wl:.1e}, grad norm {wg:.1e}, final norms {wn:.1e}"
    );
}

/// The checkpoint's name of a parameter that transformers names otherwise in memory (NomicBERT's
/// conversion mapping, undone as `save_pretrained` undoes it), and which third of it when
/// transformers splits one fused projection into q, k and v.
fn checkpoint_name(name: &str) -> (String, Option<usize>) {
    let Some(rest) = name.strip_prefix("layers.") else {
        return (name.replace("embeddings.LayerNorm", "emb_ln"), None);
    };
    let (n, part) = rest.split_once('.').unwrap();
    let layer = format!("encoder.layers.{n}");
    for (i, qkv) in [
        "self_attn.q_proj.",
        "self_attn.k_proj.",
        "self_attn.v_proj.",
    ]
    .iter()
    .enumerate()
    {
        if let Some(p) = part.strip_prefix(qkv) {
            return (format!("{layer}.attn.Wqkv.{p}"), Some(i));
        }
    }
    let part = [
        ("self_attn.o_proj", "attn.out_proj"),
        ("post_attention_layernorm", "norm1"),
        ("post_mlp_layernorm", "norm2"),
        ("mlp.up_proj", "mlp.fc11"),
        ("mlp.gate_proj", "mlp.fc12"),
        ("mlp.down_proj", "mlp.fc2"),
    ]
    .iter()
    .fold(part.to_string(), |p, (hf, ours)| p.replace(hf, ours));
    (format!("{layer}.{part}"), None)
}

#[test]
fn matryoshka_over_mnrl() {
    let d = tempfile::tempdir().unwrap();
    let tr = trained(
        "kind = \"mnrl\"\nmatryoshka_dims = [32, 16, 8]",
        "pairs.jsonl",
        d.path(),
    );
    check_trained("matryoshka_mnrl", &tr);
    // The card names the loss as sentence-transformers does, shows the short embeddings' use and
    // cites the method.
    let card = std::fs::read_to_string(tr.save_final().unwrap().join("README.md")).unwrap();
    for want in [
        "Loss: MatryoshkaLoss (dimensions [32, 16, 8]) over MultipleNegativesRankingLoss (scale 20, \
         similarity cos_sim)",
        "truncate_dim=8",
        "--truncate-dim 8",
        "eprint = {2205.13147}",
    ] {
        assert!(card.contains(want), "{want}\n{card}");
    }
}

#[test]
fn matryoshka_over_cached_mnrl_with_weights() {
    check(
        "matryoshka_cached_mnrl",
        "kind = \"cached-mnrl\"\nmini_batch_size = 4\nmatryoshka_dims = [8, 32, 16]\n\
         matryoshka_weights = [0.25, 1.0, 0.5]",
        "pairs.jsonl",
    );
}

#[test]
fn triplet_euclidean_and_cosine() {
    check("triplet", "kind = \"triplet\"", "data.jsonl");
    check(
        "triplet_cosine",
        "kind = \"triplet\"\ntriplet_distance = \"cosine\"\ntriplet_margin = 0.5",
        "data.jsonl",
    );
}

fn guide() -> String {
    minilm_dir().display().to_string()
}

#[test]
fn gist_absolute_and_cached() {
    let g = guide();
    check(
        "gist_absolute",
        &format!("kind = \"gist\"\nguide = \"{g}\""),
        "pairs.jsonl",
    );
    check(
        "cached_gist",
        &format!("kind = \"cached-gist\"\nmini_batch_size = 4\nguide = \"{g}\""),
        "pairs.jsonl",
    );
}

#[test]
fn gist_relative_with_hard_negatives() {
    check(
        "gist_relative_hardneg",
        &format!(
            "kind = \"gist\"\nguide = \"{}\"\nmargin_strategy = \"relative\"\nmargin = 0.1",
            guide()
        ),
        "data.jsonl",
    );
}

/// Scored pairs: STS-B's TSV as published (header, 0–5 scores) for the two ranking losses, which
/// only use the order of the scores; JSONL objects with 0–1 scores for CosineSimilarityLoss.
#[test]
fn cosent_angle_and_cosine_similarity_on_scored_pairs() {
    check(
        "cosent",
        "kind = \"cosent\"",
        "shared:data/stsb/sts-train.tsv",
    );
    check(
        "angle",
        "kind = \"angle\"",
        "shared:data/stsb/sts-train.tsv",
    );
    check(
        "cosine_similarity",
        "kind = \"cosine-similarity\"",
        "ref:stsb-0to1.jsonl",
    );
}

/// MarginMSELoss on (query, positive, negative, score_pos, score_neg) rows, dot product.
#[test]
fn margin_mse_on_teacher_scores() {
    check("margin_mse", "kind = \"margin-mse\"", "ref:margins.jsonl");
}

/// Prompts per column (`query: ` anchors, `passage: ` positives) with the prompt's tokens left
/// out of mean pooling, direct and through GradCache; then the saved model carries the setting.
#[test]
fn column_prompts_without_prompt_pooling() {
    let d = tempfile::tempdir().unwrap();
    let prompts = "prompts = { anchor = \"query: \", positive = \"passage: \" }";
    let tr = trained_with(
        "kind = \"mnrl\"",
        "pairs.jsonl",
        "include_prompt = false",
        prompts,
        d.path(),
    );
    check_trained("prompts_mnrl", &tr);
    let saved = tr.save_final().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let tr = trained_with(
        "kind = \"cached-mnrl\"\nmini_batch_size = 4",
        "pairs.jsonl",
        "include_prompt = false",
        prompts,
        d2.path(),
    );
    check_trained("prompts_cached_mnrl", &tr);
    let pooling: serde_json::Value =
        serde_json::from_slice(&std::fs::read(saved.join("1_Pooling/config.json")).unwrap())
            .unwrap();
    assert_eq!(pooling["include_prompt"], false);
    let card = std::fs::read_to_string(saved.join("README.md")).unwrap();
    assert!(
        card.contains(
            "Prompts: data0: anchor `query: `, positive `passage: ` (left out of pooling: \
             include_prompt false)"
        ),
        "{card}"
    );
    let back = model::SentenceModel::load(&saved, &Default::default()).unwrap();
    assert!(!back.include_prompt);
}

/// A copy of all-MiniLM-L6-v2 (the weights linked) whose config.json turns dropout off, as the
/// reference does: with dropout the two libraries draw different masks.
fn minilm_without_dropout(dir: &Path) -> std::path::PathBuf {
    let src = minilm_dir();
    let dst = dir.join("minilm-no-dropout");
    std::fs::create_dir_all(dst.join("1_Pooling")).unwrap();
    for f in [
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "tokenizer.json",
        "1_Pooling/config.json",
    ] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    std::os::unix::fs::symlink(src.join("model.safetensors"), dst.join("model.safetensors"))
        .unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    cfg["hidden_dropout_prob"] = 0.0.into();
    cfg["attention_probs_dropout_prob"] = 0.0.into();
    std::fs::write(dst.join("config.json"), cfg.to_string()).unwrap();
    dst
}

/// all-MiniLM-L6-v2 itself (6 layers, 384 dimensions, lr 5e-5) through the losses whose values
/// stay well away from zero on these rows. The in-batch ranking losses are left to the tiny
/// model: all-MiniLM-L6-v2 already ranks these pairs almost perfectly, so their loss is ~1e-4
/// and its gradient is float32 rounding of 1 − p (0.03% apart between two correct programs).
/// float32 over 22M parameters: gradient norms agree to 1.0e-5, checked at 2e-5.
#[test]
fn minilm_trajectories() {
    for (run, loss, data) in [
        ("triplet", "kind = \"triplet\"", "data.jsonl"),
        (
            "cosent",
            "kind = \"cosent\"",
            "shared:data/stsb/sts-train.tsv",
        ),
        ("margin_mse", "kind = \"margin-mse\"", "ref:margins.jsonl"),
    ] {
        let d = tempfile::tempdir().unwrap();
        let base = minilm_without_dropout(d.path());
        // The reference truncates at 32 tokens, as the tiny model's folder does.
        let tr = trained_from(&base, 5e-5, loss, data, "max_seq_length = 32", "", d.path());
        check_against(run, reference_in("minilm", run), &tr, 2e-5, 0.0);
    }
}

/// Rows a loss cannot use are errors naming file:line and what the loss takes.
#[test]
fn rows_without_the_scores_a_loss_needs_are_named() {
    let d = tempfile::tempdir().unwrap();
    let run = |loss: &str, data: &Path| {
        let p = d.path().join("r.toml");
        std::fs::write(
            &p,
            format!(
                "[model]\nbase = \"{}\"\n[loss]\nkind = \"{loss}\"\n[train]\nbatch_size = 4\n\
                 steps = 1\noutput = \"{}\"\n[[data]]\npath = \"{}\"\n",
                shared_dir().join("reference/train-parity/model").display(),
                d.path().join("o").display(),
                data.display()
            ),
        )
        .unwrap();
        let mut tr = Trainer::new(Recipe::load(&p).unwrap(), None).unwrap();
        format!("{:#}", tr.run(&AtomicBool::new(false), |_| {}).unwrap_err())
    };
    // Unscored pairs for CoSENT: the first row is named.
    let e = run("cosent", &data_path("pairs.jsonl"));
    assert!(
        e.contains("pairs.jsonl:1") && e.contains("CoSENTLoss takes 1 score per row"),
        "{e}"
    );
    // MarginMSE: line 3 has three scores for one negative.
    let bad = d.path().join("margins.jsonl");
    std::fs::write(
        &bad,
        "[\"q\", \"p\", \"n\", 1.5]\n[\"q\", \"p\", \"n\", 9, 2]\n[\"q\", \"p\", \"n\", 9, 2, 1]\n",
    )
    .unwrap();
    let e = run("margin-mse", &bad);
    assert!(
        e.contains("margins.jsonl:3") && e.contains("1 margin or 2 scores") && e.contains("has 3"),
        "{e}"
    );
}

/// Recipe mistakes are errors that name the key.
#[test]
fn bad_loss_settings_are_named() {
    let d = tempfile::tempdir().unwrap();
    let parity = shared_dir().join("reference/train-parity");
    let load = |loss: &str| {
        let p = d.path().join("r.toml");
        std::fs::write(
            &p,
            format!(
                "[model]\nbase = \"{}\"\n[loss]\n{loss}\n[train]\nbatch_size = 16\nsteps = 2\n\
                 output = \"{}\"\n[[data]]\npath = \"{}\"\n",
                parity.join("model").display(),
                d.path().join("o").display(),
                parity.join("pairs.jsonl").display()
            ),
        )
        .unwrap();
        Recipe::load(&p).map(|_| ()).unwrap_err().to_string()
    };
    assert!(load("kind = \"gist\"").contains("[loss] guide"));
    assert!(load("kind = \"mnrl\"\nguide = \"x\"").contains("[loss] guide is for"));
    assert!(load("matryoshka_dims = [8, 4]\nmatryoshka_weights = [1.0]")
        .contains("matryoshka_weights has 1 values for 2"));
    assert!(load("triplet_distance = \"hamming\"").contains("triplet_distance"));
    // Prompts: a column that does not exist, a default prompt name the model does not have.
    let recipe = |name: &str, model: &str, data: &str| {
        let p = d.path().join(name);
        std::fs::write(
            &p,
            format!(
                "[model]\nbase = \"{}\"\n{model}\n[train]\nbatch_size = 16\nsteps = 1\n\
                 output = \"{}\"\n[[data]]\npath = \"{}\"\n{data}\n",
                parity.join("model").display(),
                d.path().join("o3").display(),
                parity.join("pairs.jsonl").display()
            ),
        )
        .unwrap();
        p
    };
    let e = Recipe::load(&recipe("c.toml", "", "prompts = { query = \"query: \" }"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no column \"query\"") && e.contains("anchor, positive, negative"),
        "{e}"
    );
    let p = recipe(
        "n.toml",
        "prompts = { query = \"query: \" }\ndefault_prompt_name = \"passage\"",
        "",
    );
    let e = format!(
        "{:#}",
        Trainer::new(Recipe::load(&p).unwrap(), None).err().unwrap()
    );
    assert!(
        e.contains("[model] default_prompt_name \"passage\"")
            && e.contains("there: document, query"),
        "{e}"
    );
    // A Matryoshka dimension above the model's is an error before training starts, naming the key.
    let p = d.path().join("big.toml");
    std::fs::write(
        &p,
        format!(
            "[model]\nbase = \"{}\"\n[loss]\nmatryoshka_dims = [64]\n[train]\nbatch_size = 16\n\
             steps = 1\noutput = \"{}\"\n[[data]]\npath = \"{}\"\n",
            parity.join("model").display(),
            d.path().join("o2").display(),
            parity.join("pairs.jsonl").display()
        ),
    )
    .unwrap();
    let e = Trainer::new(Recipe::load(&p).unwrap(), None).err().unwrap();
    assert!(
        format!("{e:#}")
            .contains("[loss] matryoshka_dims: 64 is larger than the model's embeddings (32"),
        "{e:#}"
    );
}

/// The tiny ModernBERT and NomicBERT of crates/model/tests/data (ModernBERT: pre-LN, rotary,
/// GeGLU, local and global layers; NomicBERT: post-LN, rotary, SwiGLU) trained 10 steps with
/// MNRL as sentence-transformers trains them (their ModernBertModel and NomicBertModel through
/// transformers); the reference truncates at 32 tokens.
#[test]
fn rotary_encoders_mnrl_trajectories() {
    for arch in ["modernbert", "nomic_bert"] {
        let d = tempfile::tempdir().unwrap();
        let base = test_support::repo_root()
            .join("crates/model/tests/data")
            .join(arch)
            .join("model");
        let tr = trained_from(
            &base,
            1e-3,
            "kind = \"mnrl\"\nscale = 20.0",
            "pairs.jsonl",
            "max_seq_length = 32",
            "",
            d.path(),
        );
        check_against(
            &format!("{arch} mnrl"),
            reference_in(arch, "mnrl"),
            &tr,
            1e-5,
            0.0,
        );
    }
}
