//! Every recipe shipped in `recipes/` parses and passes the recipe checks (unknown keys are
//! errors, so a renamed setting breaks this test rather than a user's run), and the recipes of
//! the three models are what recipes/README.md says: the general ones the 2021 mix exactly, as
//! the data_config.json published with all-MiniLM-L6-v2 has it.

use std::path::{Path, PathBuf};
use test_support::{minilm_dir, repo_root};
use train::losses::Similarity;
use train::Recipe;

fn recipes_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// Loads a recipe as `pairtrain train` does; a GPU recipe on a build without CUDA is checked as
/// `--device cpu` would run it.
fn load(p: &Path) -> Recipe {
    let mut r = Recipe::load_unchecked(p).unwrap_or_else(|e| panic!("{e}"));
    if r.train.device.starts_with("cuda") && model::device::check_device("cuda").is_err() {
        r.train.device = "cpu".into();
    }
    r.check().unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    r
}

#[test]
fn shipped_recipes_are_valid() {
    let all = recipes_under(&repo_root().join("recipes"));
    for p in &all {
        load(p);
    }
    assert!(all.len() >= 20, "{} recipes", all.len());
}

#[derive(serde::Deserialize)]
struct Entry2021 {
    name: String,
    lines: u64,
    weight: f64,
}

fn data_config() -> Vec<Entry2021> {
    let text = std::fs::read_to_string(minilm_dir().join("data_config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// (hub id, batch, steps) of each base, as recipes/README.md lists them.
const BASES: [(&str, &str, usize, usize); 3] = [
    (
        "minilm-l6",
        "nreimers/MiniLM-L6-H384-uncased",
        1024,
        100_000,
    ),
    ("mpnet-base", "microsoft/mpnet-base", 1024, 100_000),
    (
        "distilroberta",
        "distilbert/distilroberta-base",
        512,
        920_000,
    ),
];

#[test]
fn general_recipes_are_the_2021_mix() {
    let cfg = data_config();
    assert_eq!(cfg.len(), 290);
    assert_eq!(cfg.iter().map(|e| e.lines).sum::<u64>(), 1_170_060_424);
    for (key, hub, batch, steps) in BASES {
        let r = load(&repo_root().join(format!("recipes/general/{key}.toml")));
        assert_eq!(r.model.base, hub);
        assert_eq!((r.train.batch_size, r.train.steps), (batch, steps), "{key}");
        assert_eq!((r.train.lr, r.train.warmup_steps), (2e-5, 500), "{key}");
        assert_eq!(r.model.max_seq_length, Some(128));
        assert_eq!(r.model.normalize, Some(true));
        assert_eq!(r.train.datasets_per_batch, 2);
        assert_eq!(r.loss.kind, train::recipe::LossKind::MnrlSymmetric);
        assert_eq!(r.data.len(), cfg.len(), "{key}");
        for (d, e) in r.data.iter().zip(&cfg) {
            // The file itself: on the hub by its 2021 name, or under data/2021/.
            let hub = "hf://datasets/sentence-transformers/embedding-training-data/";
            assert!(
                d.path == format!("data/2021/{}", e.name) || d.path == format!("{hub}{}", e.name),
                "{}: {}",
                e.name,
                d.path
            );
            assert_eq!(d.weight, Some(e.weight), "{}", e.name);
            assert_eq!(d.rows, Some(e.lines), "{}", e.name);
        }
    }
}

#[test]
fn semantic_search_recipes_weight_ms_marco_highest_and_dot_is_dot() {
    for (key, hub, batch, steps) in BASES {
        for sim in ["cos", "dot"] {
            let r = load(&repo_root().join(format!("recipes/semantic-search/{key}-{sim}.toml")));
            assert_eq!(r.model.base, hub);
            assert_eq!((r.train.batch_size, r.train.steps), (batch, steps));
            let weight = |name: &str| {
                r.data
                    .iter()
                    .find(|d| d.name.as_deref() == Some(name))
                    .and_then(|d| d.weight)
                    .unwrap()
            };
            let top = r.data.iter().filter_map(|d| d.weight).fold(0.0, f64::max);
            assert_eq!(weight("msmarco-query_passage_negative.jsonl.gz"), top);
            assert_eq!(weight("gooaq_pairs.jsonl.gz") * 2.0, top);
            let rows: u64 = r.data.iter().filter_map(|d| d.rows).sum();
            assert_eq!(rows, 206_825_998, "the multi-qa list (README's table)");
            if sim == "dot" {
                assert_eq!(r.loss.similarity(), Similarity::Dot);
                assert_eq!((r.loss.scale, r.model.normalize), (1.0, Some(false)));
                assert_eq!(r.model.pooling, Some(model::Pooling::Cls));
            } else {
                assert_eq!(r.loss.similarity(), Similarity::Cos);
                assert_eq!((r.loss.scale, r.model.normalize), (20.0, Some(true)));
            }
        }
    }
}

#[test]
fn conversational_recipes_read_the_mined_reddit_for_half_the_weight() {
    for (key, hub, ..) in BASES {
        let r = load(&repo_root().join(format!("recipes/conversational/{key}.toml")));
        assert_eq!(r.model.base, hub);
        let total: f64 = r.data.iter().filter_map(|d| d.weight).sum();
        let reddit: f64 = r
            .data
            .iter()
            .filter(|d| d.path.starts_with("data/reddit/"))
            .filter_map(|d| d.weight)
            .sum();
        assert!((reddit / total - 0.5).abs() < 0.01, "{reddit} of {total}");
        assert_eq!(r.eval[0].kind, eval::TaskKind::ResponseRetrieval);
    }
}

/// What a user can type but cannot mean is refused before a run starts, naming the setting.
#[test]
fn nonsense_settings_are_refused_with_the_setting_named() {
    let d = tempfile::tempdir().unwrap();
    let base = "[model]\nbase = \"m\"\n[[data]]\npath = \"d.jsonl\"\n";
    let check = |extra: &str, needle: &str| {
        let p = d.path().join("r.toml");
        std::fs::write(&p, format!("{base}{extra}")).unwrap();
        let e = train::Recipe::load(&p).unwrap_err().to_string();
        assert!(e.contains(needle), "{extra:?}: {e}");
        assert!(e.contains("r.toml"), "the error names the file: {e}");
    };
    let train = |kv: &str| format!("[train]\nbatch_size = 8\nsteps = 10\noutput = \"o\"\n{kv}\n");
    check(&train("lr = 0"), "lr must be above 0");
    check(&train("lr = -1e-5"), "lr must be above 0");
    check(
        &train("warmup_steps = 11"),
        "warmup_steps (11) is more than steps (10)",
    );
    check(
        &train("device = \"tpu\""),
        "device \"tpu\" is not one of cpu, cuda",
    );
    check(
        &train("dtype = \"fp8\""),
        "dtype \"fp8\" is not one of f32, bf16",
    );
    check(
        "[train]\nbatch_size = 8\nsteps = 0\noutput = \"o\"\n",
        "steps must be at least 1",
    );
    check(
        "[train]\nbatch_size = 8\nsteps = 3\n",
        "[train] output (the run's folder) is required",
    );
    check(
        &format!("[loss]\nscale = 0\n{}", train("")),
        "scale must be above 0",
    );
    check(
        &format!(
            "[loss]\nkind = \"cached-mnrl\"\nmini_batch_size = 16\n{}",
            train("")
        ),
        "mini_batch_size (16) must be between 1 and [train] batch_size (8)",
    );
    check(
        &format!("[loss]\nkind = \"mnrl-sym\"\n{}", train("")),
        "[loss] kind \"mnrl-sym\" is not one of mnrl, mnrl-symmetric, cached-mnrl",
    );
    check(
        &format!("[loss]\nsimilarity = \"l2\"\n{}", train("")),
        "similarity \"l2\" is not one of cos, dot",
    );
    check(
        &format!("{}[[eval]]\nkind = \"nli\"\npath = \"x\"\n", train("")),
        "evaluation kind \"nli\" is not one of sts, retrieval",
    );
    let pooled = "[model]\nbase = \"m\"\npooling = \"avg\"\n[[data]]\npath = \"d.jsonl\"\n";
    let p = d.path().join("p.toml");
    std::fs::write(&p, format!("{pooled}{}", train(""))).unwrap();
    let e = train::Recipe::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("pooling \"avg\" is not one of mean, cls, max"),
        "{e}"
    );
}

/// A data-only recipe (what `pairtrain data bench` reads) needs no steps or output.
#[test]
fn data_only_recipes_need_only_what_the_loader_reads() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("data.toml");
    std::fs::write(
        &p,
        "[model]\nbase = \"m\"\n[train]\nbatch_size = 64\n[[data]]\npath = \"d.jsonl\"\n",
    )
    .unwrap();
    train::Recipe::load_data_only(&p).unwrap();
    assert!(train::Recipe::load(&p).is_err());
}
