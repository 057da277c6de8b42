//! `pairtrain train` distilling into a real multilingual student: multilingual-e5-small (XLM-R
//! tokenizer, with e5's `query: ` prompt) learns all-MiniLM-L6-v2's embeddings of English Multi30k
//! sources for French translations, with the teacher cache and an `mse` evaluation; the saved
//! model carries the prompt as its default, so it embeds as the trained student did.

use test_support::{e5_dir, minilm_dir, run_cli, shared_dir};

#[test]
fn distil_into_multilingual_e5_with_prompt_cache_and_eval() {
    let d = tempfile::tempdir().unwrap();
    let rows =
        pairs::read_jsonl_rows(&shared_dir().join("data/parallel/multi30k-train.en-fr.tsv.gz"))
            .unwrap();
    let data = d.path().join("en-fr.tsv");
    let text: String = rows[..64].iter().map(|r| r.join("\t") + "\n").collect();
    std::fs::write(&data, &text).unwrap();
    let out = d.path().join("run");
    let recipe = d.path().join("distil.toml");
    std::fs::write(
        &recipe,
        format!(
            r#"
[model]
base = "{e5}"
prompt = "query: "
max_seq_length = 64
[teacher]
model = "{minilm}"
cache = true
cache_dir = "{cache}"
[loss]
kind = "mse"
[train]
batch_size = 8
steps = 3
lr = 5e-5
output = "{out}"
[[data]]
path = "{data}"
[[eval]]
kind = "mse"
path = "{data}"
teacher = "{minilm}"
"#,
            e5 = e5_dir().display(),
            minilm = minilm_dir().display(),
            cache = d.path().join("cache").display(),
            out = out.display(),
            data = data.display(),
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_pairtrain");
    let o = run_cli(
        bin,
        &["train", "--config", recipe.to_str().unwrap(), "--quiet"],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("negative_mse"), "{stderr}");
    assert!(stderr.contains("teacher cache"), "{stderr}");

    let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap();
    let steps: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("loss").is_some())
        .collect();
    assert_eq!(steps.len(), 3);
    // Untrained, the two models' spaces are unrelated: the MSE of unit vectors in 384
    // dimensions is about 2/384.
    let first = steps[0]["loss"].as_f64().unwrap();
    assert!((0.002..0.01).contains(&first), "{first}");

    let saved = out.join("model");
    // The card names models by id or folder name and lists the rows each dataset gave.
    let card = std::fs::read_to_string(saved.join("README.md")).unwrap();
    assert!(
        card.contains("`sentence-transformers/all-MiniLM-L6-v2`"),
        "{card}"
    );
    assert!(card.contains("| data0 | `en-fr.tsv` | 24 | 1 |"), "{card}");
    assert!(card.contains("prefixed with `query: `"), "{card}");
    assert!(!card.contains(&d.path().display().to_string()), "{card}");
    let cfg = std::fs::read_to_string(saved.join("config_sentence_transformers.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["default_prompt_name"], "default");
    assert_eq!(cfg["prompts"]["default"], "query: ");
    let m = model::SentenceModel::load(&saved, &Default::default()).unwrap();
    assert_eq!(m.prompt.as_deref(), Some("query: "));
    // The default prompt is applied: the same as the prompt written out with no prompt set.
    let mut bare = model::SentenceModel::load(&saved, &Default::default()).unwrap();
    bare.prompt = None;
    let a = m
        .encode(&["Un homme joue de la guitare."], 1, |_| {})
        .unwrap();
    let b = bare
        .encode(&["query: Un homme joue de la guitare."], 1, |_| {})
        .unwrap();
    assert!(test_support::max_abs_diff(&a[0], &b[0]) < 1e-6);
}
