//! `pairtrain mine …`: turn raw dumps into pair files (crate `mine`), with a progress bar over
//! the compressed bytes read.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use mine::io::{Common, Compression, RunStats};
use pairs::BadRowPolicy;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Subcommand, Debug)]
pub enum MineCmd {
    /// StackExchange sites: (title, body), (title, best answer), (title + body, best answer)
    /// and duplicate questions, one set of files per site.
    ///
    /// Each input is a site folder (Posts.xml, PostLinks.xml), a Posts.xml, or the site's .7z.
    /// Filters (2021): title ≥ 20 chars, body 20..=4096 chars after HTML stripping, score ≥ 0.
    Stackexchange(SeArgs),
    /// Reddit comment dumps (NDJSON: plain, .zst, .bz2, .xz, .gz) to context/response pairs by
    /// PolyAI's rules, split 90/10 into train-* and test-* by thread.
    Reddit(RedditArgs),
    /// Wikipedia pages-articles .xml.bz2 of any language: (title, intro) and same-category
    /// intro pairs.
    ///
    /// Namespace names (`Kategorie:`, `Fichier:`, …) come from the dump's <siteinfo>; check
    /// what was recognized with --lang-report.
    Wikipedia(WikiArgs),
    /// Cross-language pairs from two Wikipedias: (intro in language A, intro of the same
    /// article in language B), one row per article of A linked to B.
    ///
    /// The links come from A's langlinks table dump (--langlinks A-langlinks.sql.gz, current
    /// dumps) or, without it, from the [[xx:Title]] links in A's wikitext (older dumps). Output:
    /// <out>/<lang A>-<lang B>/langlinks-*.jsonl.gz with {"anchor", "positive", "titles",
    /// "languages"}.
    ///
    /// Example: pairtrain mine wikipedia-langlinks --dump dewiki-pages-articles.xml.bz2
    /// --dump frwiki-pages-articles.xml.bz2 --langlinks dewiki-langlinks.sql.gz --out pairs/
    WikipediaLanglinks(LanglinksArgs),
    /// Write a synthetic Reddit comment dump (.ndjson.zst, threads in random order) for the
    /// Reddit miner's benchmark.
    GenerateReddit(GenRedditArgs),
}

#[derive(Args, Debug)]
pub struct GenRedditArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub comments: u64,
    /// Output file (.ndjson.zst).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// gz | zst
    #[arg(long, default_value = "gz")]
    pub compression: Compression,
    /// Start a new output shard after this many MiB of JSON.
    #[arg(long, default_value_t = 1024)]
    pub shard_mib: u64,
    /// Stop after this many input records (posts, comments, pages) per input: quick runs.
    #[arg(long)]
    pub limit: Option<u64>,
    /// error | skip: what a malformed record, truncated file or invalid line does.
    #[arg(long, default_value = "error")]
    pub on_bad_record: BadRowPolicy,
    /// Mine inputs again even when their outputs are complete.
    #[arg(long)]
    pub force: bool,
    /// Spill partitions for grouping (more: less memory per partition).
    #[arg(long, default_value_t = 64)]
    pub partitions: usize,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SeArgs {
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// best (highest score, as 2021) | accepted
    #[arg(long, default_value = "best")]
    pub answer: mine::stackexchange::AnswerChoice,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct RedditArgs {
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Never use comments by likely bots (names ending in "bot", AutoModerator) as context or
    /// response.
    #[arg(long)]
    pub filter_bots: bool,
    /// A file of further bot names, one per line (implies --filter-bots).
    #[arg(long)]
    pub bot_list: Option<PathBuf>,
    /// Only these subreddits (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub subreddits: Vec<String>,
    /// Never these subreddits (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub exclude_subreddits: Vec<String>,
    /// Comments before the response to keep: the context plus up to N-1 earlier ones as
    /// context/0.. (PolyAI: 10).
    #[arg(long, default_value_t = 10)]
    pub parent_depth: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct WikiArgs {
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The multistream index (default: the …-multistream-index.txt.bz2 beside the dump).
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// Same-category pairs per category at most.
    #[arg(long, default_value_t = 20)]
    pub pairs_per_category: usize,
    /// Skip categories with more members than this.
    #[arg(long, default_value_t = 10_000)]
    pub max_category_size: usize,
    /// Print each dump's language and the namespace names recognized (categories, files, …)
    /// before mining, to see at once if a dump was misread.
    #[arg(long)]
    pub lang_report: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct LanglinksArgs {
    /// The two pages-articles dumps: first A (whose links are followed), then B.
    #[arg(long = "dump", required = true, num_args = 1, value_name = "DUMP")]
    pub dumps: Vec<PathBuf>,
    /// A's langlinks table dump (…-langlinks.sql.gz); default: the links in A's wikitext.
    #[arg(long)]
    pub langlinks: Option<PathBuf>,
    /// Intros shorter than this many characters are dropped (both languages).
    #[arg(long, default_value_t = 20)]
    pub min_intro: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn common(a: &CommonArgs, bytes: Arc<AtomicU64>) -> Common {
    Common {
        out: a.out.clone(),
        compression: a.compression,
        shard_bytes: a.shard_mib.max(1) << 20,
        limit: a.limit,
        policy: a.on_bad_record,
        // `--threads` (main sizes rayon's pool with it), else all cores.
        threads: rayon::current_num_threads(),
        force: a.force,
        bytes,
    }
}

/// Runs `work` with a progress bar over the bytes of `inputs`.
fn with_progress<T>(
    inputs: &[PathBuf],
    quiet: bool,
    work: impl FnOnce(Arc<AtomicU64>) -> T + Send,
) -> Result<T>
where
    T: Send,
{
    let mut total = 0;
    for p in inputs {
        total += std::fs::metadata(p)
            .with_context(|| format!("{}: cannot read", p.display()))?
            .len();
    }
    let bytes = Arc::new(AtomicU64::new(0));
    let bar = crate::progress::bytes_bar(total, "mining", quiet);
    let done = std::sync::atomic::AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                bar.set_position(bytes.load(Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        let r = work(bytes.clone());
        done.store(true, Ordering::Relaxed);
        r
    });
    bar.finish_and_clear();
    Ok(out)
}

fn report(what: &str, s: &RunStats) {
    let outs: Vec<String> = s.rows_out.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "{what}: {} records in, {} out; {:.1} MB/s ({:.0} records/s) over {:.1} s; peak RSS {:.0} MiB",
        s.rows_in,
        outs.join(", "),
        s.bytes_per_s / 1e6,
        s.rows_per_s,
        s.seconds,
        crate::bench::peak_rss_mib()
    );
    if s.skipped.total() > 0 {
        eprintln!("  {}", s.skipped.summary());
    }
}

fn check_inputs(inputs: &[PathBuf]) -> Result<()> {
    for p in inputs {
        if !p.exists() {
            bail!("{}: no such file or folder", p.display());
        }
    }
    Ok(())
}

pub fn run(cmd: &MineCmd) -> Result<()> {
    match cmd {
        MineCmd::GenerateReddit(a) => {
            mine::reddit::generate(&a.out, a.comments, a.seed)?;
            eprintln!("wrote {} comments to {}", a.comments, a.out.display());
        }
        MineCmd::Stackexchange(a) => {
            check_inputs(&a.inputs)?;
            let files: Vec<PathBuf> = a.inputs.iter().map(|p| site_files(p)).collect();
            let opts = mine::stackexchange::Options {
                answer: a.answer,
                partitions: a.common.partitions,
                ..Default::default()
            };
            let results = with_progress(&files, a.common.quiet, |bytes| {
                let c = common(&a.common, bytes);
                let sites: Vec<mine::stackexchange::Site> = a
                    .inputs
                    .iter()
                    .map(|p| mine::stackexchange::Site::from_path(p))
                    .collect();
                let per_site = Common {
                    threads: 1,
                    ..c.clone()
                };
                pairs::par::par_map(&sites, c.threads, |s| {
                    (
                        s.name.clone(),
                        mine::stackexchange::mine_site(s, &opts, &per_site),
                    )
                })
            })?;
            for (name, r) in results {
                report(&name, &r?);
            }
        }
        MineCmd::Reddit(a) => {
            check_inputs(&a.inputs)?;
            let mut blocklist = HashSet::new();
            if let Some(p) = &a.bot_list {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("{}: cannot read", p.display()))?;
                blocklist = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
                    .collect();
            }
            let opts = mine::reddit::Options {
                bot_filter: a.filter_bots || a.bot_list.is_some(),
                blocklist,
                allow_subreddits: (!a.subreddits.is_empty())
                    .then(|| a.subreddits.iter().cloned().collect()),
                deny_subreddits: a.exclude_subreddits.iter().cloned().collect(),
                parent_depth: a.parent_depth.max(1),
                partitions: a.common.partitions,
                ..Default::default()
            };
            let r = with_progress(&a.inputs, a.common.quiet, |bytes| {
                mine::reddit::mine(&a.inputs, &opts, &common(&a.common, bytes))
            })?;
            report("reddit", &r?);
        }
        MineCmd::WikipediaLanglinks(a) => {
            let [da, db] = a.dumps.as_slice() else {
                bail!(
                    "give exactly two dumps, --dump A --dump B (got {})",
                    a.dumps.len()
                );
            };
            let mut inputs = a.dumps.clone();
            inputs.extend(a.langlinks.iter().cloned());
            check_inputs(&inputs)?;
            let opts = mine::wikipedia_langlinks::Options {
                langlinks: a.langlinks.clone(),
                wiki: mine::wikipedia::Options {
                    min_intro: a.min_intro,
                    partitions: a.common.partitions,
                    ..Default::default()
                },
            };
            let r = with_progress(&inputs, a.common.quiet, |bytes| {
                mine::wikipedia_langlinks::mine(da, db, &opts, &common(&a.common, bytes))
            })?;
            let r = r?;
            report(r.language.as_deref().unwrap_or("langlinks"), &r);
        }
        MineCmd::Wikipedia(a) => {
            check_inputs(&a.inputs)?;
            if a.lang_report {
                for p in &a.inputs {
                    let site = mine::siteinfo::read(p)?;
                    eprint!("{}:\n{}", p.display(), site.report());
                }
            }
            let opts = mine::wikipedia::Options {
                index: a.index.clone(),
                pairs_per_category: a.pairs_per_category,
                max_category_size: a.max_category_size,
                partitions: a.common.partitions,
                ..Default::default()
            };
            let results = with_progress(&a.inputs, a.common.quiet, |bytes| {
                let c = common(&a.common, bytes);
                // Several dumps at once, the threads shared out (a multistream dump uses its
                // share to decompress in parallel).
                let at_once = c.threads.min(a.inputs.len()).max(1);
                let each = Common {
                    threads: (c.threads / at_once).max(1),
                    ..c.clone()
                };
                pairs::par::par_map(&a.inputs, at_once, |p| {
                    (p.clone(), mine::wikipedia::mine_dump(p, &opts, &each))
                })
            })?;
            for (p, r) in results {
                report(&p.display().to_string(), &r?);
            }
        }
    }
    Ok(())
}

/// The file whose size a site's progress is measured against.
fn site_files(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("Posts.xml")
    } else {
        p.to_path_buf()
    }
}
