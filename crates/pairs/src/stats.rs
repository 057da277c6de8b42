//! `data stats` and `data validate`: one pass over pair files, in parallel over files.

use crate::dedup::text_key;
use crate::par::par_map;
use crate::reader::{BadRowPolicy, PairReader, SkipCounts};
use crate::rng::Rng;
use crate::row::RowError;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Text lengths kept per column for the percentiles (a uniform reservoir sample).
const RESERVOIR: usize = 100_000;
/// Distinct keys kept for the duplicate estimate before the hash sample is halved.
const MAX_KEYS: usize = 1 << 21;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50: usize,
    pub p90: usize,
    pub p99: usize,
    pub max: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub files: Vec<(String, u64)>,
    pub rows: u64,
    /// Rows by number of texts.
    pub texts_per_row: BTreeMap<usize, u64>,
    /// Characters per text, by column ("anchor", "positive", "negative").
    pub chars: BTreeMap<String, Percentiles>,
    pub texts: u64,
    /// Texts whose normalized form (stripped, lowercased) appeared before, estimated from a
    /// hash sample when there are more than ~2M distinct texts.
    pub duplicate_texts_estimate: u64,
    pub duplicate_sample_fraction: f64,
    pub skipped: SkipCounts,
}

/// Per-file partial results.
#[derive(Default)]
struct Acc {
    rows: u64,
    texts_per_row: BTreeMap<usize, u64>,
    lengths: BTreeMap<&'static str, (Vec<usize>, u64, usize)>,
    keys: HashMap<u64, u32>,
    level: u32,
    skipped: SkipCounts,
}

fn column_name(i: usize) -> &'static str {
    match i {
        0 => "anchor",
        1 => "positive",
        _ => "negative",
    }
}

impl Acc {
    fn add_length(&mut self, col: &'static str, len: usize, rng: &mut Rng) {
        let (sample, seen, max) = self.lengths.entry(col).or_default();
        *seen += 1;
        *max = (*max).max(len);
        if sample.len() < RESERVOIR {
            sample.push(len);
        } else {
            let j = rng.below(*seen) as usize;
            if j < RESERVOIR {
                sample[j] = len;
            }
        }
    }

    /// Keeps a key when its top `level` bits are zero: a sample of 1/2^level of all distinct
    /// texts, with every copy of a sampled text counted, so the duplicate rate is unbiased.
    fn add_key(&mut self, k: u64) {
        if self.level > 0 && k >> (64 - self.level) != 0 {
            return;
        }
        *self.keys.entry(k).or_default() += 1;
        if self.keys.len() > MAX_KEYS {
            self.raise_level();
        }
    }

    fn raise_level(&mut self) {
        self.level += 1;
        let l = self.level;
        self.keys.retain(|k, _| k >> (64 - l) == 0);
    }
}

fn scan(
    path: &Path,
    policy: BadRowPolicy,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<Acc, RowError> {
    let mut acc = Acc::default();
    let mut r = PairReader::open(path)?;
    let mut rng = Rng::new(7);
    let mut scratch = Vec::new();
    let mut last = 0u64;
    while let Some(row) = r.next_row(policy, &mut acc.skipped)? {
        acc.rows += 1;
        *acc.texts_per_row.entry(row.len()).or_default() += 1;
        for (i, t) in row.iter().enumerate() {
            acc.add_length(column_name(i), t.chars().count(), &mut rng);
            let k = text_key(t, &mut scratch);
            acc.add_key(k);
        }
        if acc.rows % 65_536 == 0 {
            let n = r.line();
            on_bytes(n - last);
            last = n;
        }
    }
    on_bytes(r.line() - last);
    Ok(acc)
}

fn percentiles(mut v: Vec<usize>, max: usize) -> Percentiles {
    v.sort_unstable();
    let at = |q: f64| {
        if v.is_empty() {
            0
        } else {
            v[((v.len() - 1) as f64 * q).round() as usize]
        }
    };
    Percentiles {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max,
    }
}

/// Rows, row widths, text lengths and an estimate of duplicate texts over all `files`.
/// `on_lines` is told how many lines were read, for progress.
pub fn stats(
    files: &[PathBuf],
    policy: BadRowPolicy,
    threads: usize,
    on_lines: &(dyn Fn(u64) + Sync),
) -> Result<Stats, RowError> {
    let parts = par_map(files, threads, |p| scan(p, policy, on_lines));
    let mut total = Acc::default();
    let mut st = Stats::default();
    let mut lengths: BTreeMap<&'static str, (Vec<usize>, u64, usize)> = BTreeMap::new();
    for (p, part) in files.iter().zip(parts) {
        let part = part?;
        st.files.push((p.display().to_string(), part.rows));
        total.rows += part.rows;
        for (k, v) in part.texts_per_row {
            *total.texts_per_row.entry(k).or_default() += v;
        }
        for (c, (sample, seen, max)) in part.lengths {
            let e = lengths.entry(c).or_default();
            // Merged samples are not a uniform reservoir, but each file's sample is; enough for
            // percentiles of a mix.
            e.0.extend(sample);
            e.1 += seen;
            e.2 = e.2.max(max);
        }
        total.skipped.merge(&part.skipped);
        // Bring both to the same sampling level, then add.
        while total.level < part.level {
            total.raise_level();
        }
        for (k, n) in part.keys {
            if total.level == 0 || k >> (64 - total.level) == 0 {
                *total.keys.entry(k).or_default() += n;
            }
        }
        while total.keys.len() > MAX_KEYS {
            total.raise_level();
        }
    }
    st.rows = total.rows;
    st.texts = total.texts_per_row.iter().map(|(k, v)| *k as u64 * v).sum();
    st.texts_per_row = total.texts_per_row;
    st.chars = lengths
        .into_iter()
        .map(|(c, (s, _, m))| (c.to_string(), percentiles(s, m)))
        .collect();
    let scale = (1u64 << total.level) as f64;
    let dups: u64 = total.keys.values().map(|&n| n as u64 - 1).sum();
    st.duplicate_texts_estimate = (dups as f64 * scale).round() as u64;
    st.duplicate_sample_fraction = 1.0 / scale;
    st.skipped = total.skipped;
    Ok(st)
}

/// One bad row.
#[derive(Clone, Debug, Serialize)]
pub struct BadRow {
    pub file: String,
    pub line: u64,
    pub reason: String,
    pub msg: String,
}

/// Every bad row of `files`, in file and line order, and the number of good rows.
pub fn validate(
    files: &[PathBuf],
    threads: usize,
    on_lines: &(dyn Fn(u64) + Sync),
) -> Result<(u64, Vec<BadRow>), RowError> {
    let parts = par_map(
        files,
        threads,
        |p| -> Result<(u64, Vec<BadRow>), RowError> {
            let mut r = PairReader::open(p)?;
            let mut good = 0;
            let mut bad = Vec::new();
            let file = p.display().to_string();
            while let Some((line, parsed)) = r.next_parsed() {
                match parsed {
                    Ok(_) => {
                        good += 1;
                        if good % 65_536 == 0 {
                            on_lines(65_536);
                        }
                    }
                    Err(problem) => bad.push(BadRow {
                        file: file.clone(),
                        line,
                        reason: problem.reason.to_string(),
                        msg: problem.msg,
                    }),
                }
            }
            Ok((good, bad))
        },
    );
    let mut good = 0;
    let mut bad = Vec::new();
    for p in parts {
        let (g, b) = p?;
        good += g;
        bad.extend(b);
    }
    Ok((good, bad))
}
