//! `pairtrain data filter`: consistency filtering (E5, Wang et al. 2022): a pair is kept only if
//! its positive ranks in the top-k of its anchor's candidates among a pool of positives drawn
//! from the same dataset (E5: top-2 among 1M).
//!
//! Per dataset (one `--input`, a file or a glob): pass 1 reads the positives and draws the pool
//! (reservoir sampling, seeded, distinct texts); the pool is embedded once (cached on disk as
//! `.npy`, keyed by the model, the files and the options, so a second run does not embed it
//! again). Pass 2 streams the rows in chunks, embeds anchors and positives, and ranks each
//! positive by exact search: a blocked matrix multiply of the anchors against the pool, counting
//! the pool texts that score above the positive (the positive's own copy in the pool excluded).
//! Kept rows are written verbatim, in the input's format, to `<out>/<file name>`, each file under
//! a temporary name renamed when complete; a rerun skips the files already complete.

use crate::texts::AtomicFile;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use model::SentenceModel;
use pairs::reader::{Line, PairReader};
use pairs::{BadRowPolicy, SkipCounts};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Options {
    pub top_k: usize,
    pub pool: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub policy: BadRowPolicy,
    pub quiet: bool,
    /// Dropped pairs kept in stats.json for a person to read, per dataset.
    pub samples: usize,
}

/// Rows embedded and ranked at a time.
const CHUNK: usize = 4096;
/// Score differences within this are ties (float rounding of one dot product done two ways).
const TIE: f64 = 1e-6;

/// Scores are computed in [ROW_BLOCK, POOL_BLOCK] blocks (32 MiB of f32): the memory beyond
/// the pool stays a constant.
const ROW_BLOCK: usize = 1024;
const POOL_BLOCK: usize = 8192;

/// What a dataset's filtering did, as stats.json reports it.
#[derive(Default, Serialize, Deserialize, Clone)]
pub struct DatasetStats {
    pub files: Vec<String>,
    pub pool: usize,
    pub kept: u64,
    pub dropped: u64,
    /// How many positives ranked 1, 2, …, 10, 11-100, 101-1000, >1000.
    pub rank_histogram: BTreeMap<String, u64>,
    pub dropped_sample: Vec<Dropped>,
    pub skipped: SkipCounts,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct Dropped {
    pub file: String,
    pub line: u64,
    pub anchor: String,
    pub positive: String,
    pub rank: u64,
    /// The pool text the anchor scored highest.
    pub best: String,
}

fn bucket(rank: u64) -> String {
    match rank {
        1..=10 => format!("{rank:02}"),
        11..=100 => "11-100".into(),
        101..=1000 => "101-1000".into(),
        _ => ">1000".into(),
    }
}

/// Reads every row of `files` as (line, raw line, anchor, positive); bad rows follow `policy`.
pub(crate) fn for_each_row(
    files: &[PathBuf],
    policy: BadRowPolicy,
    skipped: &mut SkipCounts,
    mut f: impl FnMut(u64, &str, &str, &str) -> Result<()>,
) -> Result<()> {
    for path in files {
        let mut r = PairReader::open(path)?;
        let format = r.format();
        loop {
            let line_no = r.line() + 1;
            let problem = match r.next_line() {
                Line::End => break,
                Line::Text(t) if t.trim().is_empty() => continue,
                Line::Text(t) => match format.parse(t) {
                    Ok(row) => {
                        f(line_no, t, &row[0], &row[1])?;
                        continue;
                    }
                    Err(p) => p,
                },
                Line::Bad(p) => p,
            };
            match policy {
                BadRowPolicy::Error => bail!("{}:{line_no}: {}", path.display(), problem.msg),
                BadRowPolicy::Skip => {
                    skipped.add(problem.reason, format!("{}:{line_no}", path.display()))
                }
            }
        }
    }
    Ok(())
}

/// A key for the pool cache: the model, the pool options, the files' names, sizes and times.
fn cache_key(model: &SentenceModel, files: &[PathBuf], o: &Options) -> u64 {
    let mut parts = vec![o.pool as u64, o.seed];
    parts.extend(crate::corpus_embeddings::model_identity(model));
    for p in files {
        parts.extend(crate::corpus_embeddings::file_identity(p));
    }
    pairs::rng::mix(&parts)
}

/// Filters one dataset (`files`) into `out`.
pub fn filter_dataset(
    model: &SentenceModel,
    files: &[PathBuf],
    out: &Path,
    o: &Options,
) -> Result<DatasetStats> {
    let mut st = DatasetStats {
        files: files.iter().map(|p| p.display().to_string()).collect(),
        ..Default::default()
    };
    // Pass 1: the pool, a reservoir sample of the distinct positives.
    let mut rng = pairs::rng::Rng::new(o.seed);
    let mut pool: Vec<String> = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut distinct = 0u64;
    let mut rows = 0u64;
    let mut skipped = SkipCounts::default();
    for_each_row(files, o.policy, &mut skipped, |_, _, _, pos| {
        rows += 1;
        if !seen.insert(pairs::dedup::hash_bytes(pos.as_bytes())) {
            return Ok(());
        }
        distinct += 1;
        if pool.len() < o.pool {
            pool.push(pos.to_string());
        } else {
            let j = rng.below(distinct) as usize;
            if j < o.pool {
                pool[j] = pos.to_string();
            }
        }
        Ok(())
    })?;
    drop(seen);
    st.pool = pool.len();
    if pool.is_empty() {
        bail!("{}: no rows to filter", st.files.join(", "));
    }
    let dim = model.dim();
    let cache_dir = out.join(".pool-cache");
    std::fs::create_dir_all(&cache_dir)?;
    let key = cache_key(model, files, o);
    // A finished file's numbers also depend on the rule and the bad-row policy.
    let done_key = pairs::rng::mix(&[key, o.top_k as u64, o.policy as u64]);
    let cached = cache_dir.join(format!("{key:016x}.npy"));
    let v =
        crate::corpus_embeddings::cached(model, &pool, &cached, o.batch_size, "the pool", o.quiet)?;
    // Transposed as a view: the multiply reads it in place, no second copy of the pool.
    let pool_t = Tensor::from_vec(v, (pool.len(), dim), &model.device)?.t()?;
    let mut pool_of_text: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, t) in pool.iter().enumerate() {
        pool_of_text
            .entry(pairs::dedup::hash_bytes(t.as_bytes()))
            .or_default()
            .push(i);
    }

    // Pass 2: rank every positive, file by file; a file already complete (its output and its
    // stats beside it) is taken as it is.
    let bar = crate::progress::bar(rows, "filtering", "pairs", o.quiet);
    let done_dir = out.join(".done");
    std::fs::create_dir_all(&done_dir)?;
    for path in files {
        let name = path.file_name().context("an input without a file name")?;
        let dest = out.join(name);
        let mut done_name = name.to_os_string();
        done_name.push(format!(".{done_key:016x}.json"));
        let done = done_dir.join(done_name);
        if dest.is_file() {
            if let Some(fs) = std::fs::read_to_string(&done)
                .ok()
                .and_then(|t| serde_json::from_str::<DatasetStats>(&t).ok())
            {
                bar.inc(fs.kept + fs.dropped);
                st.merge(fs, o.samples);
                continue;
            }
        }
        // Any other run's record of this output is void once it is rewritten.
        let prefix = format!("{}.", name.to_string_lossy());
        for e in std::fs::read_dir(&done_dir)?.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                std::fs::remove_file(e.path())?;
            }
        }
        let mut fs = DatasetStats::default();
        let mut file = AtomicFile::create(&dest)?;
        let mut w = Compressed::new(&dest, file.writer())?;
        let mut chunk: Vec<Pending> = Vec::with_capacity(CHUNK);
        let mut flush = |chunk: &mut Vec<Pending>| -> Result<()> {
            let anchors: Vec<&str> = chunk.iter().map(|c| c.anchor.as_str()).collect();
            let positives: Vec<&str> = chunk.iter().map(|c| c.positive.as_str()).collect();
            let a = crate::corpus_embeddings::embed(model, &anchors, o.batch_size, |_| {})?;
            let p = crate::corpus_embeddings::embed(model, &positives, o.batch_size, |_| {})?;
            let own = (&a * &p)?.sum_keepdim(1)?;
            let (ranks, best) = rank(&a, &own, &pool_t, &positives, &pool_of_text)?;
            for (c, (r, b)) in chunk.drain(..).zip(ranks.into_iter().zip(best)) {
                *fs.rank_histogram.entry(bucket(r)).or_default() += 1;
                if r as usize <= o.top_k {
                    fs.kept += 1;
                    w.write_all(c.raw.as_bytes())?;
                    w.write_all(b"\n")?;
                } else {
                    fs.dropped += 1;
                    if fs.dropped_sample.len() < o.samples {
                        fs.dropped_sample.push(Dropped {
                            file: path.display().to_string(),
                            line: c.line,
                            anchor: c.anchor,
                            positive: c.positive,
                            rank: r,
                            best: pool[b].clone(),
                        });
                    }
                }
                bar.inc(1);
            }
            Ok(())
        };
        let mut skipped = SkipCounts::default();
        for_each_row(
            std::slice::from_ref(path),
            o.policy,
            &mut skipped,
            |line, raw, a, p| {
                chunk.push(Pending {
                    line,
                    raw: raw.to_string(),
                    anchor: a.to_string(),
                    positive: p.to_string(),
                });
                if chunk.len() == CHUNK {
                    flush(&mut chunk)?;
                }
                Ok(())
            },
        )?;
        if !chunk.is_empty() {
            flush(&mut chunk)?;
        }
        w.finish()?;
        file.finish()?;
        fs.skipped = skipped;
        fs.files = vec![path.display().to_string()];
        std::fs::write(&done, serde_json::to_string(&fs)?)
            .with_context(|| format!("{}: cannot write", done.display()))?;
        st.merge(fs, o.samples);
    }
    bar.finish_and_clear();
    Ok(st)
}

/// A row waiting for its chunk to be embedded.
struct Pending {
    line: u64,
    raw: String,
    anchor: String,
    positive: String,
}

impl DatasetStats {
    fn merge(&mut self, o: DatasetStats, samples: usize) {
        self.kept += o.kept;
        self.dropped += o.dropped;
        for (k, v) in o.rank_histogram {
            *self.rank_histogram.entry(k).or_default() += v;
        }
        let room = samples.saturating_sub(self.dropped_sample.len());
        self.dropped_sample
            .extend(o.dropped_sample.into_iter().take(room));
        self.skipped.merge(&o.skipped);
    }
}

/// Kept rows in the input's compression (.gz, .zst or none).
pub(crate) enum Compressed<'a, W: Write> {
    Gz(flate2::write::GzEncoder<&'a mut W>),
    Zst(zstd::Encoder<'static, &'a mut W>),
    Plain(&'a mut W),
}

impl<'a, W: Write> Compressed<'a, W> {
    pub(crate) fn new(path: &Path, w: &'a mut W) -> Result<Self> {
        Ok(match crate::corpus_embeddings::compression_of(path) {
            Some("gzip") => Self::Gz(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::new(1),
            )),
            Some(_) => Self::Zst(zstd::Encoder::new(w, 3)?),
            None => Self::Plain(w),
        })
    }

    /// Ends the compressed stream (its trailer) and flushes.
    pub(crate) fn finish(self) -> std::io::Result<()> {
        match self {
            Self::Gz(e) => e.finish().map(drop),
            Self::Zst(e) => e.finish().map(drop),
            Self::Plain(w) => w.flush(),
        }
    }
}

impl<W: Write> Write for Compressed<'_, W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Gz(e) => e.write(b),
            Self::Zst(e) => e.write(b),
            Self::Plain(w) => w.write(b),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Gz(e) => e.flush(),
            Self::Zst(e) => e.flush(),
            Self::Plain(w) => w.flush(),
        }
    }
}

/// For each anchor row of `a` [n, d]: 1 + the number of pool texts (other than the row's own
/// positive) scoring above `own` [n, 1], and the index of the best-scoring pool text.
fn rank(
    a: &Tensor,
    own: &Tensor,
    pool_t: &Tensor,
    positives: &[&str],
    pool_of_text: &HashMap<u64, Vec<usize>>,
) -> Result<(Vec<u64>, Vec<usize>)> {
    let m = pool_t.dims()[1];
    let n = a.dims()[0];
    // A pool text is above the positive only by more than rounding: another text with the same
    // embedding (the same tokens after truncation or lower-casing) ties, and a tie keeps the pair.
    let own = &own.affine(1.0, TIE)?;
    let own_v = own.flatten_all()?.to_vec1::<f32>()?;
    // The positive's own copy in the pool is not a competitor: where it counted as above, it
    // is taken off again, judged on the very score that was counted (another multiply may
    // round differently).
    let copies: Vec<&[usize]> = positives
        .iter()
        .map(|p| {
            pool_of_text
                .get(&pairs::dedup::hash_bytes(p.as_bytes()))
                .map_or(&[][..], Vec::as_slice)
        })
        .collect();
    let mut above = vec![0u64; n];
    let mut best = vec![(f32::NEG_INFINITY, 0usize); n];
    for r0 in (0..n).step_by(ROW_BLOCK) {
        let rn = ROW_BLOCK.min(n - r0);
        let (a, own) = (a.narrow(0, r0, rn)?, own.narrow(0, r0, rn)?);
        for start in (0..m).step_by(POOL_BLOCK) {
            let len = POOL_BLOCK.min(m - start);
            let scores = a.matmul(&pool_t.narrow(1, start, len)?)?;
            let counts = scores
                .broadcast_gt(&own)?
                .to_dtype(DType::F32)?
                .sum(1)?
                .to_vec1::<f32>()?;
            let mx = scores.max(1)?.to_vec1::<f32>()?;
            let arg = scores.argmax(1)?.to_vec1::<u32>()?;
            for k in 0..rn {
                let i = r0 + k;
                above[i] += counts[k] as u64;
                if mx[k] > best[i].0 {
                    best[i] = (mx[k], start + arg[k] as usize);
                }
                for &j in copies[i]
                    .iter()
                    .filter(|&&j| (start..start + len).contains(&j))
                {
                    let c = scores.get(k)?.get(j - start)?.to_scalar::<f32>()?;
                    if c > own_v[i] {
                        above[i] -= 1;
                    }
                }
            }
        }
    }
    Ok((
        above.iter().map(|c| c + 1).collect(),
        best.iter().map(|b| b.1).collect(),
    ))
}
