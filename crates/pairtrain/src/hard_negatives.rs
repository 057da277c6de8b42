//! `pairtrain data mine-negatives`: hard-negative mining with the options and meaning of
//! sentence-transformers' `mine_hard_negatives` (6.x), so the same embeddings give the same
//! negatives.
//!
//! What it does, as sentence-transformers does it: the anchors are deduplicated (an anchor with
//! several positives is one query whose distinct positives are all excluded, and a repeated pair
//! comes out once); the corpus is the
//! deduplicated `--corpus` texts followed by the positives; embeddings are L2-normalized and
//! scored by dot product (cosine). For each query the `range_max + max_positives` best
//! candidates are kept (exact search, blocked multiply); its positives are disqualified; the
//! margins (against the query's lowest positive score), `max_score` and `min_score` disqualify
//! more; the best `range_max` remain, the first `range_min` are skipped, and `num_negatives` are
//! taken from the top or at random among the qualified ones. Rows come out grouped by query in
//! order of first appearance, each positive of a query in input order.
//!
//! Random sampling uses this project's seeded generator, not Python's: the same candidates,
//! other draws.

use anyhow::{bail, Result};
use candle_core::Tensor;
use model::SentenceModel;
use pairs::{BadRowPolicy, SkipCounts};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sampling {
    Top,
    Random,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// `[anchor, positive, negative]`, one row per negative.
    Triplet,
    /// `[anchor, positive, negative_1, …, negative_n]`, only rows with all n negatives.
    #[value(name = "n-tuple")]
    NTuple,
}

pub struct Options {
    pub num_negatives: usize,
    pub range_min: usize,
    pub range_max: Option<usize>,
    pub max_score: Option<f32>,
    pub min_score: Option<f32>,
    pub absolute_margin: Option<f32>,
    pub relative_margin: Option<f32>,
    pub sampling: Sampling,
    pub output_format: OutputFormat,
    pub batch_size: usize,
    pub seed: u64,
    pub policy: BadRowPolicy,
    pub quiet: bool,
}

/// What a run did.
#[derive(Default, serde::Serialize)]
pub struct Report {
    pub pairs: usize,
    pub queries: usize,
    pub corpus: usize,
    pub range_max: usize,
    pub rows_out: usize,
    /// Candidates disqualified, by reason (absolute_margin, relative_margin, max_score,
    /// min_score), each counted under the first reason that disqualified it.
    pub skipped_candidates: std::collections::BTreeMap<String, u64>,
    /// Pairs (triplet: negatives) that could not be given all their negatives.
    pub missing: usize,
    pub skipped_rows: SkipCounts,
}

/// Query chunk and corpus block of the exact search.
const QUERY_BLOCK: usize = 1024;
const CORPUS_BLOCK: usize = 8192;

fn read_pairs(
    files: &[PathBuf],
    policy: BadRowPolicy,
    skipped: &mut SkipCounts,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    crate::consistency_filter::for_each_row(files, policy, skipped, |_, _, a, p| {
        out.push((a.to_string(), p.to_string()));
        Ok(())
    })?;
    Ok(out)
}

/// The `k` best (score, corpus index) of every query, best first, by exact search.
fn top_k(queries: &Tensor, corpus_t: &Tensor, k: usize) -> Result<Vec<Vec<(f32, usize)>>> {
    let (nq, nc) = (queries.dims()[0], corpus_t.dims()[1]);
    let mut out = Vec::with_capacity(nq);
    for q0 in (0..nq).step_by(QUERY_BLOCK) {
        let qn = QUERY_BLOCK.min(nq - q0);
        let q = queries.narrow(0, q0, qn)?;
        let mut best: Vec<Vec<(f32, usize)>> = vec![Vec::with_capacity(k + 1); qn];
        for c0 in (0..nc).step_by(CORPUS_BLOCK) {
            let cn = CORPUS_BLOCK.min(nc - c0);
            let scores = q.matmul(&corpus_t.narrow(1, c0, cn)?)?.to_vec2::<f32>()?;
            for (b, row) in best.iter_mut().zip(scores) {
                for (j, s) in row.into_iter().enumerate() {
                    // Kept sorted, best first; a tie keeps the lower corpus index first.
                    if b.len() == k && s <= b[k - 1].0 {
                        continue;
                    }
                    let at = b.partition_point(|&(bs, _)| bs >= s);
                    b.insert(at, (s, c0 + j));
                    b.truncate(k);
                }
            }
        }
        out.extend(best);
    }
    Ok(out)
}

/// Mines negatives for the pairs of `files` into `out` (JSONL, gzip or zstd by its name).
pub fn mine(
    model: &SentenceModel,
    files: &[PathBuf],
    corpus_files: &[PathBuf],
    out: &Path,
    cache_dir: &Path,
    o: &Options,
) -> Result<Report> {
    let mut rep = Report::default();
    let pairs = read_pairs(files, o.policy, &mut rep.skipped_rows)?;
    if pairs.is_empty() {
        bail!(
            "no pairs in {}",
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    rep.pairs = pairs.len();
    // Queries in order of first appearance; each query's positives in input order.
    let mut query_idx: HashMap<&str, usize> = HashMap::new();
    let mut queries: Vec<String> = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    for p in corpus_files {
        // A blank line is no candidate.
        extra.extend(
            crate::texts::read_texts(p, "text")?
                .into_iter()
                .filter(|t| !t.trim().is_empty()),
        );
    }
    let mut corpus: Vec<String> = Vec::new();
    let mut corpus_idx: HashMap<String, usize> = HashMap::new();
    for t in extra
        .into_iter()
        .chain(pairs.iter().map(|(_, p)| p.clone()))
    {
        if !corpus_idx.contains_key(&t) {
            corpus_idx.insert(t.clone(), corpus.len());
            corpus.push(t);
        }
    }
    // Each query's distinct positives; `rows_per_query` counts repeated pairs too, as the
    // default range does.
    let mut positives: Vec<Vec<usize>> = Vec::new();
    let mut seen_pairs: std::collections::HashSet<(usize, usize)> = Default::default();
    let mut rows_per_query: Vec<usize> = Vec::new();
    for (a, p) in &pairs {
        let q = *query_idx.entry(a.as_str()).or_insert_with(|| {
            queries.push(a.clone());
            positives.push(Vec::new());
            rows_per_query.push(0);
            queries.len() - 1
        });
        rows_per_query[q] += 1;
        let ci = corpus_idx[p];
        if seen_pairs.insert((q, ci)) {
            positives[q].push(ci);
        }
    }
    drop(query_idx);
    rep.queries = queries.len();
    rep.corpus = corpus.len();
    let max_positives = rows_per_query.iter().copied().max().unwrap_or(1);
    let filtering =
        o.absolute_margin.is_some() || o.relative_margin.is_some() || o.max_score.is_some();
    let range_max = o.range_max.unwrap_or(if filtering {
        o.range_min + o.num_negatives * 10 + max_positives
    } else {
        o.range_min + o.num_negatives + max_positives
    });
    rep.range_max = range_max;
    let k = (range_max + max_positives).min(corpus.len());

    // Embeddings, cached by the model and the texts themselves.
    let dim = model.dim();
    let key = |texts: &[String]| {
        let mut parts = crate::corpus_embeddings::model_identity(model);
        parts.extend(texts.iter().map(|t| pairs::dedup::hash_bytes(t.as_bytes())));
        pairs::rng::mix(&parts)
    };
    let c = crate::corpus_embeddings::cached(
        model,
        &corpus,
        &cache_dir.join(format!("corpus-{:016x}.npy", key(&corpus))),
        o.batch_size,
        "the corpus",
        o.quiet,
    )?;
    let corpus_t = Tensor::from_vec(c, (corpus.len(), dim), &model.device)?;
    let q = crate::corpus_embeddings::cached(
        model,
        &queries,
        &cache_dir.join(format!("queries-{:016x}.npy", key(&queries))),
        o.batch_size,
        "the queries",
        o.quiet,
    )?;
    let query_t = Tensor::from_vec(q, (queries.len(), dim), &model.device)?;
    let corpus_tt = corpus_t.t()?;
    let corpus_rows = |i: usize| -> Result<Vec<f32>> { Ok(corpus_t.get(i)?.to_vec1::<f32>()?) };

    let mut rng = pairs::rng::Rng::new(o.seed);
    let mut file = crate::texts::AtomicFile::create(out)?;
    let mut w = crate::consistency_filter::Compressed::new(out, file.writer())?;
    let bar = crate::progress::bar(queries.len() as u64, "mining", "queries", o.quiet);
    // One block of queries at a time: searched, then mined, so memory stays one block's
    // candidates.
    for q0 in (0..queries.len()).step_by(QUERY_BLOCK) {
        let block = query_t.narrow(0, q0, QUERY_BLOCK.min(queries.len() - q0))?;
        let query_rows = block.to_vec2::<f32>()?;
        let candidates = top_k(&block, &corpus_tt, k)?;
        for (bi, cands) in candidates.into_iter().enumerate() {
            let qi = q0 + bi;
            let pos = &positives[qi];
            let pos_set: std::collections::HashSet<usize> = pos.iter().copied().collect();
            // The query's positive scores, by dot product as sentence-transformers' pairwise
            // similarity computes them.
            let pos_scores: Vec<f32> = pos
                .iter()
                .map(|&p| corpus_rows(p).map(|v| dot(&query_rows[bi], &v)))
                .collect::<Result<_>>()?;
            let lowest_positive = pos_scores.iter().copied().fold(f32::INFINITY, f32::min);
            let mut scored: Vec<(f32, usize)> = cands
                .into_iter()
                .map(|(s, i)| {
                    if pos_set.contains(&i) {
                        (f32::NEG_INFINITY, i)
                    } else {
                        (s, i)
                    }
                })
                .collect();
            let mut disqualify = |name: &str, test: &dyn Fn(f32) -> bool| {
                for c in scored
                    .iter_mut()
                    .filter(|c| c.0 != f32::NEG_INFINITY && test(c.0))
                {
                    c.0 = f32::NEG_INFINITY;
                    *rep.skipped_candidates.entry(name.into()).or_default() += 1;
                }
            };
            if let Some(m) = o.absolute_margin {
                disqualify("absolute_margin", &|s| s + m > lowest_positive);
            }
            if let Some(m) = o.relative_margin {
                // |positive| × margin below the positive, whatever its sign.
                let threshold = lowest_positive - lowest_positive.abs() * m;
                disqualify("relative_margin", &|s| s > threshold);
            }
            if let Some(m) = o.max_score {
                disqualify("max_score", &|s| s > m);
            }
            if let Some(m) = o.min_score {
                disqualify("min_score", &|s| s < m);
            }
            // Best first again (disqualified ones last), the best range_max, minus the first
            // range_min.
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.truncate(range_max);
            let scored: Vec<(f32, usize)> = scored.into_iter().skip(o.range_min).collect();
            let chosen: Vec<(f32, usize)> = match o.sampling {
                Sampling::Top => scored.into_iter().take(o.num_negatives).collect(),
                Sampling::Random => {
                    let qualified = scored.iter().filter(|c| c.0 != f32::NEG_INFINITY).count();
                    let options = qualified.max(o.num_negatives).min(scored.len());
                    let mut picks: Vec<usize> = (0..options).collect();
                    pairs::rng::shuffle(&mut picks, &mut rng);
                    picks.truncate(o.num_negatives);
                    picks.sort_unstable();
                    picks.into_iter().map(|i| scored[i]).collect()
                }
            };
            let negatives: Vec<&str> = chosen
                .iter()
                .filter(|c| c.0 != f32::NEG_INFINITY)
                .map(|c| corpus[c.1].as_str())
                .collect();
            for &p in pos {
                let mut write_row = |row: &[&str]| -> Result<()> {
                    serde_json::to_writer(&mut w, row)?;
                    w.write_all(b"\n")?;
                    rep.rows_out += 1;
                    Ok(())
                };
                match o.output_format {
                    OutputFormat::Triplet => {
                        rep.missing += o.num_negatives - negatives.len();
                        for n in &negatives {
                            write_row(&[&queries[qi], &corpus[p], n])?;
                        }
                    }
                    OutputFormat::NTuple => {
                        if negatives.len() < o.num_negatives {
                            rep.missing += 1;
                            continue;
                        }
                        let mut row = vec![queries[qi].as_str(), corpus[p].as_str()];
                        row.extend(&negatives);
                        write_row(&row)?;
                    }
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    w.finish()?;
    file.finish()?;
    Ok(rep)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A path for the cache folder beside an output file.
pub fn cache_dir_for(out: &Path) -> PathBuf {
    let name = out.file_name().map_or("mine-negatives".into(), |n| {
        n.to_string_lossy().into_owned()
    });
    out.with_file_name(format!(".{name}.cache"))
}

/// Checks the options as sentence-transformers would refuse them.
pub fn check(o: &Options) -> Result<()> {
    if o.num_negatives == 0 {
        bail!("--num-negatives must be at least 1");
    }
    if let Some(r) = o.range_max {
        if r <= o.range_min {
            bail!(
                "--range-max ({r}) must be above --range-min ({})",
                o.range_min
            );
        }
    }
    Ok(())
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} pairs ({} distinct anchors), corpus {}, range_max {}: {} rows written",
            self.pairs, self.queries, self.corpus, self.range_max, self.rows_out
        )?;
        for (k, v) in &self.skipped_candidates {
            write!(f, "\n  skipped {v} candidates for {k}")?;
        }
        if self.missing > 0 {
            write!(f, "\n  could not find enough negatives {} times (raise --range-max or relax the filters)", self.missing)?;
        }
        Ok(())
    }
}
