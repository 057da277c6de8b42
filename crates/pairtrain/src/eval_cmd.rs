//! `pairtrain eval` and `pairtrain search`.

use crate::texts::{read_texts, AtomicFile};
use anyhow::{bail, Context, Result};
use clap::Args;
use eval::{run_task, Suite, TaskSpec};
use model::LoadOptions;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// One task: `sts` (a TSV of sentence pairs with gold scores), `retrieval` (a BEIR folder:
    /// corpus.jsonl, queries.jsonl, qrels.tsv) or `translation` (parallel sentences,
    /// source<TAB>translation, .tsv or .tsv.gz: bitext retrieval accuracy both ways) or `mse`
    /// (the same files and --teacher: negative MSE x 100 to the teacher's embeddings) or
    /// `response-retrieval` (held-out context/response pairs, e.g. `pairtrain mine reddit`'s
    /// test-* files: 1-of-100 accuracy and MRR).
    #[arg(long, requires = "data", conflicts_with = "suite")]
    pub task: Option<String>,
    /// The task's data: the STS file, the BEIR folder, the parallel sentences or the pairs.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The teacher of an `mse` task (knowledge distillation): its embeddings of the sources are
    /// the targets for --model's embeddings of the translations.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Several tasks from a TOML file of `[[task]]` entries (name, kind, path).
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// Also write the results as JSON: {"<task>": {"<metric>": value, …}, …}, metric keys as
    /// sentence-transformers names them.
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[command(flatten)]
    pub prompt: crate::prompt_args::PromptArgs,
    /// Score at each of these embedding sizes (a Matryoshka model's first N dimensions, as
    /// sentence-transformers' evaluators' `truncate_dim`): `--truncate-dim 384,128,64` runs
    /// every task once per size, named `<task>-<N>`.
    #[arg(long, value_name = "N,N,…", value_delimiter = ',')]
    pub truncate_dim: Vec<usize>,
    #[command(flatten)]
    pub run_on: crate::device_args::DeviceArgs,
}

pub fn run_eval(a: &EvalArgs) -> Result<()> {
    let tasks: Vec<TaskSpec> = match (&a.task, &a.data, &a.suite) {
        (Some(kind), Some(data), None) => {
            vec![TaskSpec::new(
                kind.parse().map_err(anyhow::Error::msg)?,
                data,
            )]
        }
        (None, None, Some(suite)) => Suite::load(suite)?.task,
        _ => bail!("give either --task and --data, or --suite"),
    };
    let mut model = a.run_on.load(&a.model, LoadOptions::default())?;
    a.prompt.apply(&mut model)?;
    let dims: Vec<Option<usize>> = if a.truncate_dim.is_empty() {
        vec![None]
    } else {
        a.truncate_dim.iter().map(|&d| Some(d)).collect()
    };
    let mut all: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for (mut t, dim) in tasks
        .into_iter()
        .flat_map(|t| dims.iter().map(move |&d| (t.clone(), d)))
    {
        t.batch_size = a.batch_size;
        if let (None, Some(p)) = (&t.teacher, &a.teacher) {
            t.teacher = Some(p.display().to_string());
        }
        let mut name = t.display_name();
        if let Some(d) = dim {
            t.truncate_dim = Some(d);
            name = format!("{name}-{d}");
        }
        let t0 = Instant::now();
        let res = run_task(&model, &t).with_context(|| format!("task {name}"))?;
        eprintln!(
            "{name}: {} metrics in {:.2} s",
            res.len(),
            t0.elapsed().as_secs_f64()
        );
        println!("{name}");
        for (k, v) in &res {
            println!("  {k:<28} {v:.5}");
        }
        all.insert(name, res);
    }
    if let Some(out) = &a.output {
        let mut f = AtomicFile::create(out)?;
        writeln!(f.writer(), "{}", serde_json::to_string_pretty(&all)?)?;
        f.finish()?;
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Documents: `.txt` (one per line) or `.jsonl` (see --field).
    #[arg(long)]
    pub corpus: PathBuf,
    /// The `.jsonl` field that holds the text.
    #[arg(long, default_value = "text")]
    pub field: String,
    /// What to search for.
    #[arg(long)]
    pub query: String,
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Search with the first N dimensions of the embeddings (see `encode --truncate-dim`).
    #[arg(long, value_name = "N")]
    pub truncate_dim: Option<usize>,
    /// The query's prompt (documents take the model's default prompt, or none).
    #[command(flatten)]
    pub prompt: crate::prompt_args::PromptArgs,
    #[command(flatten)]
    pub run_on: crate::device_args::DeviceArgs,
}

pub fn run_search(a: &SearchArgs) -> Result<()> {
    let mut model = a.run_on.load(&a.model, LoadOptions::default())?;
    if a.truncate_dim.is_some() {
        model.set_truncate_dim(a.truncate_dim, "--truncate-dim")?;
    }
    let docs = read_texts(&a.corpus, &a.field)?;
    let refs: Vec<&str> = docs.iter().map(|s| s.as_str()).collect();
    let emb = model.encode(&refs, a.batch_size, |_| {})?;
    a.prompt.apply(&mut model)?;
    let q = model.encode(&[a.query.as_str()], 1, |_| {})?.remove(0);
    let cos = |d: &[f32]| {
        let (mut dot, mut nq, mut nd) = (0f64, 0f64, 0f64);
        for (&x, &y) in q.iter().zip(d) {
            dot += x as f64 * y as f64;
            nq += x as f64 * x as f64;
            nd += y as f64 * y as f64;
        }
        dot / (nq.sqrt() * nd.sqrt()).max(1e-12)
    };
    let mut scored: Vec<(f64, usize)> = emb.iter().enumerate().map(|(i, e)| (cos(e), i)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (rank, (s, i)) in scored.iter().take(a.top_k).enumerate() {
        let text: String = docs[*i].chars().take(120).collect();
        println!("{:>3}. {s:.4}  [line {}] {text}", rank + 1, i + 1);
    }
    Ok(())
}
