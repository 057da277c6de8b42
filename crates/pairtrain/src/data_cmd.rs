//! `pairtrain data …`: look at pair files (stats, validate), measure the loader (bench), and
//! make the benchmark's synthetic data (generate).

use crate::progress;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use pairs::BadRowPolicy;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Rows, texts per row, text-length percentiles and an estimate of duplicate texts.
    ///
    /// The row count is what `rows = N` in a recipe's [[data]] entry wants for temperature
    /// sampling. Files may be .jsonl, .jsonl.gz or .jsonl.zst, or quoted globs.
    Stats(StatsArgs),
    /// List every bad row with file:line and what is wrong; exits 1 if there is any.
    Validate(ValidateArgs),
    /// Run a recipe's data pipeline (sampling, dedup, tokenization) without training and
    /// report batches/s, pairs/s, tokens/s and peak memory.
    Bench(DataBenchArgs),
    /// Write synthetic pair files for `data bench`: five datasets (10k to 10M rows at 20M
    /// pairs), gzip and zstd shards, texts drawn from the words of a real text.
    Generate(GenerateArgs),
    /// Consistency filtering (E5): keep a pair only if its positive ranks in the top-k of its
    /// anchor's candidates among a pool of positives from the same dataset.
    ///
    /// Each --input (a file or a quoted glob) is one dataset with its own pool (E5: top-2 among
    /// 1M). Kept rows are written unchanged, in the input's format and compression, to
    /// <out>/<file name>; <out>/stats.json has kept/dropped per dataset, the rank histogram and
    /// a sample of dropped pairs to read. The pool's embeddings are cached under
    /// <out>/.pool-cache and files already complete are skipped, so a killed run resumes.
    ///
    /// Example: pairtrain data filter --model all-MiniLM-L6-v2 --input 'pairs/se/*.jsonl.gz'
    /// --input pairs/reddit.jsonl.gz --out filtered/ --top-k 2
    Filter(FilterArgs),
    /// Hard-negative mining: add to each (anchor, positive) the corpus texts its anchor scores
    /// highest that are not its positives, as sentence-transformers' mine_hard_negatives.
    ///
    /// The options mean what they mean there (6.x). The output is JSONL that `pairtrain train`
    /// reads as hard negatives: [anchor, positive, negative] rows (--output-format triplet) or
    /// [anchor, positive, neg1, …, negN] (n-tuple). Embeddings are cached beside the output.
    ///
    /// Example (NV-Retriever's TopK-PercPos 95%): pairtrain data mine-negatives --model
    /// all-MiniLM-L6-v2 --input pairs.jsonl.gz --out triplets.jsonl.gz --relative-margin 0.05
    /// --num-negatives 5
    MineNegatives(MineNegativesArgs),
    /// Before a long run: which of a recipe's files are present, missing or malformed.
    ///
    /// For each [[data]] entry, every file its path or glob names, opened as training opens it
    /// (Parquet columns included) and read for its first --rows rows (--full: every row); the
    /// model, teacher and [[eval]] paths must exist. Prints one line per file, a summary, and
    /// exits 1 when anything is missing or malformed.
    ///
    /// Sources on the Hugging Face hub (a hub id as model or teacher, `hf://` data and
    /// evaluation paths) are `cached`, `will download` (with the size the hub lists), or
    /// MISSING with the reason; with HF_HUB_OFFLINE=1 only the cache counts.
    ///
    /// Example: pairtrain data check-recipe recipes/general/minilm-l6.toml
    CheckRecipe(CheckRecipeArgs),
    /// Fetch everything a recipe needs from the Hugging Face hub before a long run: the base
    /// model and teacher given by hub id, every file of its `hf://` data and evaluation paths.
    ///
    /// Into the cache the Python tools share (HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN), in
    /// parallel (--jobs), with one progress bar and a summary of what was already cached; an
    /// interrupted download resumes, and every file is checked against the hash the hub names
    /// it by. Training then reads the cache, with HF_HUB_OFFLINE=1 too.
    ///
    /// Example: pairtrain data fetch recipes/general/minilm-l6.toml
    Fetch(crate::fetch_cmd::FetchArgs),
}

#[derive(Args, Debug)]
pub struct CheckRecipeArgs {
    /// The recipe (TOML).
    pub config: PathBuf,
    /// Rows read from each file.
    #[arg(long, default_value_t = 1000)]
    pub rows: u64,
    /// Read every row of every file.
    #[arg(long)]
    pub full: bool,
}

#[derive(Args, Debug)]
pub struct MineNegativesArgs {
    /// The model that scores candidates (sentence-transformers folder).
    #[arg(long)]
    pub model: PathBuf,
    /// Pair files or quoted globs: the anchors and positives (and, by default, the corpus).
    #[arg(long, required = true)]
    pub input: Vec<String>,
    /// More candidate texts (.txt one per line, or .jsonl with a "text" field), added to the
    /// positives.
    #[arg(long)]
    pub corpus: Vec<PathBuf>,
    /// Output file: .jsonl, .jsonl.gz or .jsonl.zst.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub num_negatives: usize,
    /// Skip the first this many candidates (likely unlabelled positives).
    #[arg(long, default_value_t = 0)]
    pub range_min: usize,
    /// Consider only the best this many candidates (default: range_min + num_negatives (×10
    /// with a margin or max score) + the most positives of an anchor).
    #[arg(long)]
    pub range_max: Option<usize>,
    /// Disqualify candidates scoring above this.
    #[arg(long)]
    pub max_score: Option<f32>,
    /// Disqualify candidates scoring below this.
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Disqualify candidates with score + margin above the anchor's lowest positive score.
    #[arg(long)]
    pub absolute_margin: Option<f32>,
    /// Disqualify candidates above (1 - margin) × the anchor's lowest positive score
    /// (0.05: a negative is at most 95% as similar as the positive).
    #[arg(long)]
    pub relative_margin: Option<f32>,
    /// top: the best qualified candidates; random: drawn among them.
    #[arg(long, value_enum, default_value = "top")]
    pub sampling: crate::hard_negatives::Sampling,
    #[arg(long, value_enum, default_value = "triplet")]
    pub output_format: crate::hard_negatives::OutputFormat,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Seed of --sampling random.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// error | skip
    #[arg(long, default_value = "error")]
    pub on_bad_row: BadRowPolicy,
    /// Where the embeddings are cached (default: .<out name>.cache beside the output).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub run_on: crate::device_args::DeviceArgs,
}

#[derive(Args, Debug)]
pub struct FilterArgs {
    /// The model that judges the pairs (sentence-transformers folder).
    #[arg(long)]
    pub model: PathBuf,
    /// A dataset: a pair file or a quoted glob; repeat for more datasets.
    #[arg(long, required = true)]
    pub input: Vec<String>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Keep a pair if its positive ranks within the first k of the pool.
    #[arg(long, default_value_t = 2)]
    pub top_k: usize,
    /// Positives per dataset to rank against (memory: pool × dimension × 4 bytes).
    #[arg(long, default_value_t = 1_000_000)]
    pub pool: usize,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Truncate texts to this many tokens (default: the model's max_seq_length).
    #[arg(long)]
    pub max_seq_length: Option<usize>,
    /// Seed of the pool's sample.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// error | skip
    #[arg(long, default_value = "error")]
    pub on_bad_row: BadRowPolicy,
    /// Dropped pairs per dataset kept in stats.json.
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub run_on: crate::device_args::DeviceArgs,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Pair files or globs (one dataset: the numbers are for all of them together).
    #[arg(required = true)]
    pub files: Vec<String>,
    /// error | skip
    #[arg(long, default_value = "error")]
    pub on_bad_row: BadRowPolicy,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[arg(required = true)]
    pub files: Vec<String>,
    /// Print the bad rows as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DataBenchArgs {
    /// A training recipe: its [[data]], [train] batch/sampling settings and [model] tokenizer.
    #[arg(long)]
    pub config: PathBuf,
    /// Batches to draw.
    #[arg(long, default_value_t = 200)]
    pub batches: usize,
    /// Override the recipe's tokenize_workers.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Override the recipe's batch_size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Tokenize every text through the general tokenizer path (as non-ASCII texts go), not
    /// the ASCII shortcut.
    #[arg(long)]
    pub no_shortcut: bool,
    /// Print a JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Output folder (one subfolder per dataset).
    #[arg(long)]
    pub out: PathBuf,
    /// Total pairs over the five datasets.
    #[arg(long, default_value_t = 20_000_000)]
    pub pairs: u64,
    /// A text file whose words make up the texts.
    #[arg(long)]
    pub words: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of texts (0..1) given a non-ASCII word (accents, curly quotes, other scripts).
    #[arg(long, default_value_t = 0.0)]
    pub non_ascii: f64,
}

pub fn run(cmd: &DataCmd) -> Result<()> {
    match cmd {
        DataCmd::Stats(a) => stats(a),
        DataCmd::Validate(a) => validate(a),
        DataCmd::Bench(a) => bench(a),
        DataCmd::Generate(a) => generate(a),
        DataCmd::Filter(a) => filter(a),
        DataCmd::MineNegatives(a) => mine_negatives(a),
        DataCmd::CheckRecipe(a) => check_recipe(a),
        DataCmd::Fetch(a) => crate::fetch_cmd::fetch(a),
    }
}

fn mine_negatives(a: &MineNegativesArgs) -> Result<()> {
    use crate::hard_negatives::{cache_dir_for, check, mine, Options};
    let o = Options {
        num_negatives: a.num_negatives,
        range_min: a.range_min,
        range_max: a.range_max,
        max_score: a.max_score,
        min_score: a.min_score,
        absolute_margin: a.absolute_margin,
        relative_margin: a.relative_margin,
        sampling: a.sampling,
        output_format: a.output_format,
        batch_size: a.batch_size,
        seed: a.seed,
        policy: a.on_bad_row,
        quiet: a.quiet,
    };
    check(&o)?;
    let files = expand_all(&a.input)?;
    let model = a.run_on.load(&a.model, model::LoadOptions::default())?;
    let cache = a.cache_dir.clone().unwrap_or_else(|| cache_dir_for(&a.out));
    let t0 = Instant::now();
    let rep = mine(&model, &files, &a.corpus, &a.out, &cache, &o)?;
    eprintln!(
        "{rep}\nwrote {} in {:.1} s ({:.0} pairs/s)",
        a.out.display(),
        t0.elapsed().as_secs_f64(),
        rep.pairs as f64 / t0.elapsed().as_secs_f64().max(1e-9)
    );
    if rep.skipped_rows.total() > 0 {
        eprintln!("  {}", rep.skipped_rows.summary());
    }
    Ok(())
}

fn filter(a: &FilterArgs) -> Result<()> {
    use crate::consistency_filter::{filter_dataset, Options};
    if a.top_k == 0 || a.pool == 0 {
        bail!("--top-k and --pool must be at least 1");
    }
    let mut datasets = Vec::new();
    let mut names = std::collections::HashMap::new();
    for pattern in &a.input {
        let files = pairs::reader::expand(pattern)?;
        for f in &files {
            let n = f.file_name().unwrap_or_default().to_os_string();
            if let Some(other) = names.insert(n, f.clone()) {
                bail!(
                    "{} and {} have the same file name: their outputs would collide in {}",
                    other.display(),
                    f.display(),
                    a.out.display()
                );
            }
        }
        datasets.push((pattern.clone(), files));
    }
    // Outputs are named as their inputs: the output folder must not be an input's folder.
    for (_, files) in &datasets {
        for f in files {
            let dest = a.out.join(f.file_name().unwrap_or_default());
            if std::fs::canonicalize(&dest).ok() == std::fs::canonicalize(f).ok() && dest.exists() {
                bail!(
                    "{}: --out {} would overwrite this input; choose another output folder",
                    f.display(),
                    a.out.display()
                );
            }
        }
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    let model = a.run_on.load(
        &a.model,
        model::LoadOptions {
            max_seq_length: a.max_seq_length,
            ..Default::default()
        },
    )?;
    let o = Options {
        top_k: a.top_k,
        pool: a.pool,
        batch_size: a.batch_size,
        seed: a.seed,
        policy: a.on_bad_row,
        quiet: a.quiet,
        samples: a.samples,
    };
    let t0 = Instant::now();
    let mut out = serde_json::Map::new();
    let mut total = 0u64;
    for (name, files) in &datasets {
        let st = filter_dataset(&model, files, &a.out, &o)?;
        let n = st.kept + st.dropped;
        total += n;
        eprintln!(
            "{name}: kept {} of {n} pairs ({:.1}%), pool {}",
            st.kept,
            100.0 * st.kept as f64 / n.max(1) as f64,
            st.pool
        );
        if st.skipped.total() > 0 {
            eprintln!("  {}", st.skipped.summary());
        }
        out.insert(name.clone(), serde_json::to_value(&st)?);
    }
    let secs = t0.elapsed().as_secs_f64();
    let stats = serde_json::json!({
        "model": a.model.display().to_string(),
        "top_k": a.top_k,
        "pool": a.pool,
        "datasets": out,
        "seconds": secs,
        "pairs_per_s": total as f64 / secs.max(1e-9),
    });
    let mut f = crate::texts::AtomicFile::create(&a.out.join("stats.json"))?;
    std::io::Write::write_all(f.writer(), serde_json::to_string_pretty(&stats)?.as_bytes())?;
    f.finish()?;
    eprintln!(
        "{total} pairs in {secs:.1} s ({:.0} pairs/s); stats in {}",
        total as f64 / secs.max(1e-9),
        a.out.join("stats.json").display()
    );
    Ok(())
}

fn expand_all(patterns: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in patterns {
        out.extend(pairs::reader::expand(p)?);
    }
    Ok(out)
}

/// `--threads` (main sizes rayon's pool with it), else all cores.
fn threads() -> usize {
    rayon::current_num_threads()
}

fn stats(a: &StatsArgs) -> Result<()> {
    let files = expand_all(&a.files)?;
    let pb = progress::line_spinner("reading");
    let st = pairs::stats::stats(&files, a.on_bad_row, threads(), &|n| pb.inc(n))?;
    pb.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(());
    }
    for (f, n) in &st.files {
        println!("{f}\t{n} rows");
    }
    println!("rows\t{}", st.rows);
    let widths: Vec<String> = st
        .texts_per_row
        .iter()
        .map(|(k, v)| format!("{k} texts: {v}"))
        .collect();
    println!("texts per row\t{}", widths.join(", "));
    println!("characters per text\tp50\tp90\tp99\tmax");
    for (c, p) in &st.chars {
        println!("  {c}\t{}\t{}\t{}\t{}", p.p50, p.p90, p.p99, p.max);
    }
    let pct = 100.0 * st.duplicate_texts_estimate as f64 / st.texts.max(1) as f64;
    let how = if st.duplicate_sample_fraction < 1.0 {
        format!(
            " (estimated from a 1/{} hash sample)",
            (1.0 / st.duplicate_sample_fraction).round()
        )
    } else {
        String::new()
    };
    println!(
        "duplicate texts\t{} of {} ({pct:.2}%){how}; stripped and lowercased, as in-batch dedup \
         compares them",
        st.duplicate_texts_estimate, st.texts
    );
    if st.skipped.total() > 0 {
        println!("skipped\t{}", st.skipped.summary());
    }
    Ok(())
}

/// What `check_recipe` found for one file.
enum FileCheck {
    Ok(u64),
    Bad(String),
}

/// Reads up to `limit` rows of `path`, each checked against the rows the recipe's loss takes.
fn check_file(
    path: &std::path::Path,
    columns: Option<&[String]>,
    shape: &pairs::RowShape,
    limit: u64,
) -> FileCheck {
    let mut r = match pairs::reader::PairReader::open_with(path, columns) {
        Ok(r) => r.with_shape(Some(shape.clone())),
        Err(e) => return FileCheck::Bad(e.to_string()),
    };
    let mut skips = pairs::SkipCounts::default();
    let mut n = 0;
    while n < limit {
        match r.next_row(BadRowPolicy::Error, &mut skips) {
            Ok(Some(_)) => n += 1,
            Ok(None) if n == 0 => return FileCheck::Bad(format!("{}: no rows", path.display())),
            Ok(None) => break,
            Err(e) => return FileCheck::Bad(e.to_string()),
        }
    }
    FileCheck::Ok(n)
}

fn check_recipe(a: &CheckRecipeArgs) -> Result<()> {
    let recipe = train::Recipe::load_unchecked(&a.config)?;
    let limit = if a.full { u64::MAX } else { a.rows.max(1) };
    let (mut ok, mut missing, mut bad) = (0usize, 0usize, 0usize);
    // Models may be hub ids; data and evaluation paths local files or `hf://` references.
    let mut folder = |what: &str, p: &str, model: bool| {
        use crate::fetch_cmd::{check_hub_path, model_status, Status};
        if p.starts_with("hf://") {
            let (cached, later, gone) = check_hub_path(what, p);
            for c in &cached {
                println!("cached   {what} {}", c.display());
            }
            ok += cached.len() + later;
            missing += gone;
            return;
        }
        match (model, model_status(p)) {
            (_, Status::Local) => {
                println!("ok       {what} {p}");
                ok += 1;
            }
            (true, Status::Cached(dir)) => {
                println!("cached   {what} {p} ({})", dir.display());
                ok += 1;
            }
            (true, Status::WillDownload(size)) => {
                let size = size.map_or(String::new(), |s| format!(" ({s} bytes listed)"));
                println!("will download  {what} {p}{size}");
                ok += 1;
            }
            (true, Status::Missing(e)) => {
                // The hub's errors name the repository as "model org/name@rev".
                let e = e.strip_prefix("model ").unwrap_or(&e);
                println!("MISSING  {what} {e}");
                missing += 1;
            }
            (false, _) => {
                println!("MISSING  {what} {p}");
                missing += 1;
            }
        }
    };
    folder("model", &recipe.model.base, true);
    if let Some(t) = &recipe.teacher {
        folder("teacher", &t.model, true);
    }
    for e in &recipe.eval {
        folder(&format!("eval {}", e.display_name()), &e.path, false);
    }
    for (i, d) in recipe.data.iter().enumerate() {
        let name = d.name.clone().unwrap_or_else(|| format!("data{i}"));
        let files = if d.path.starts_with("hf://") {
            // Cached files are read below like local ones; the others were counted above.
            let (cached, later, gone) =
                crate::fetch_cmd::check_hub_path(&format!("data {name}"), &d.path);
            ok += later;
            missing += gone;
            cached
        } else {
            match pairs::reader::expand(&d.path) {
                Ok(f) => f,
                Err(e) => {
                    println!("MISSING  data {name}: {e}");
                    missing += 1;
                    continue;
                }
            }
        };
        let pb = progress::line_spinner(&format!("reading {name}"));
        for f in files {
            match check_file(&f, d.columns.as_deref(), &recipe.loss.row_shape(), limit) {
                FileCheck::Ok(n) => {
                    println!("ok       data {name} {} ({n} rows read)", f.display());
                    ok += 1;
                }
                FileCheck::Bad(e) => {
                    println!("BAD      data {name} {e}");
                    bad += 1;
                }
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
    }
    eprintln!(
        "{}: {ok} ok, {missing} missing, {bad} malformed",
        a.config.display()
    );
    if missing + bad > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn validate(a: &ValidateArgs) -> Result<()> {
    let files = expand_all(&a.files)?;
    let pb = progress::line_spinner("validating");
    let (good, bad) = pairs::stats::validate(&files, threads(), &|n| pb.inc(n))?;
    pb.finish_and_clear();
    for b in &bad {
        if a.json {
            println!("{}", serde_json::to_string(b)?);
        } else {
            println!("{}:{}: {}", b.file, b.line, b.msg);
        }
    }
    eprintln!(
        "{} files: {good} good rows, {} bad rows",
        files.len(),
        bad.len()
    );
    if !bad.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

fn bench(a: &DataBenchArgs) -> Result<()> {
    let mut recipe = train::Recipe::load_data_only(&a.config)?;
    if let Some(w) = a.workers {
        recipe.train.tokenize_workers = w;
    }
    if let Some(b) = a.batch_size {
        recipe.train.batch_size = b;
    }
    let mut tokenizer = train::data::recipe_tokenizer(&recipe)?;
    if a.no_shortcut {
        tokenizer = tokenizer.without_shortcut();
    }
    let rss0 = crate::bench::peak_rss_mib();
    let t0 = Instant::now();
    let mut loader = train::data::start_loader(&recipe, tokenizer)?;
    let pb = progress::bar(a.batches as u64, "batches", "", false);
    let (mut pairs_n, mut tokens, mut dups) = (0u64, 0u64, 0u64);
    for _ in 0..a.batches {
        let b = loader.next_batch().map_err(anyhow::Error::msg)?;
        pairs_n += b.rows() as u64;
        tokens += b.tokens();
        dups += b.duplicates_skipped;
        pb.inc(1);
    }
    pb.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let skipped = loader.skipped().clone();
    drop(loader);
    let rss = crate::bench::peak_rss_mib();
    let (bps, pps, tps) = (
        a.batches as f64 / secs,
        pairs_n as f64 / secs,
        tokens as f64 / secs,
    );
    println!(
        "{} batches of {} in {secs:.1} s: {bps:.1} batches/s, {pps:.0} pairs/s, {tps:.0} tokens/s; \
         peak RSS {rss:.0} MiB (tokenizer loaded: {rss0:.0} MiB); {dups} duplicate rows skipped; \
         {} workers",
        a.batches, recipe.train.batch_size, recipe.train.tokenize_workers
    );
    if skipped.total() > 0 {
        println!("{}", skipped.summary());
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "pairs_per_s": pps,
                "tokens_per_s": tps,
                "batches_per_s": bps,
                "peak_rss_mib": rss,
            })
        );
    }
    Ok(())
}

fn generate(a: &GenerateArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.words)
        .with_context(|| format!("{}: cannot read", a.words.display()))?;
    let words = pairs::generate::words_of(&text);
    if words.len() < 100 {
        bail!("{}: fewer than 100 words", a.words.display());
    }
    let mix = pairs::generate::bench_mix(a.pairs);
    let t0 = Instant::now();
    eprintln!(
        "writing {} pairs in {} datasets under {} …",
        a.pairs,
        mix.len(),
        a.out.display()
    );
    let globs = pairs::generate::generate(&a.out, &mix, &words, a.seed, a.non_ascii, threads())
        .with_context(|| format!("{}: cannot write", a.out.display()))?;
    for ((name, glob), ds) in globs.iter().zip(&mix) {
        println!(
            "[[data]]\nname = \"{name}\"\npath = \"{glob}\"\nrows = {}\n",
            ds.rows
        );
    }
    eprintln!("done in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}
