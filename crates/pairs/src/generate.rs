//! Synthetic pair files for benchmarking the pipeline: datasets of chosen sizes, written as gzip
//! and zstd shards, with texts drawn word by word from a real text (so word frequencies, and
//! with them tokenization cost, are natural) and a share of repeated anchors to give the
//! in-batch deduplication work to do.

use crate::rng::{mix, Rng};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct GenDataset {
    pub name: String,
    pub rows: u64,
    pub shards: usize,
}

/// The benchmark mix: five datasets of 10k to 10M rows at `total` = 20M (scaled linearly, but
/// never under 10k rows, so that every dataset can fill a batch of 1024 distinct rows).
pub fn bench_mix(total: u64) -> Vec<GenDataset> {
    let parts = [
        ("large", 0.5, 4),
        ("medium", 0.3, 2),
        ("small", 0.15, 2),
        ("tiny", 0.0495, 1),
        ("micro", 0.0005, 1),
    ];
    parts
        .iter()
        .map(|&(name, f, shards)| GenDataset {
            name: name.into(),
            rows: ((total as f64 * f).round() as u64).max(10_000),
            shards,
        })
        .collect()
}

/// The words of `text`: runs of letters, digits and apostrophes, lowercased.
pub fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty() && w.len() < 20)
        .map(|w| w.to_lowercase())
        .collect()
}

fn sentence(words: &[String], n: usize, rng: &mut Rng, out: &mut String) {
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&words[rng.below(words.len() as u64) as usize]);
    }
}

/// Words that make a text non-ASCII, as real data has them: accents, typographic quotes and
/// dashes, other scripts.
const NON_ASCII: &[&str] = &[
    "café",
    "naïve",
    "l’été",
    "“quoted”",
    "Zürich",
    "São Paulo",
    "—",
    "façade",
    "Ελλάδα",
    "東京",
    "it’s",
    "résumé",
    "…",
];

/// Writes one shard of `rows` rows; returns its path. Shards alternate gzip and zstd.
fn write_shard(
    dir: &Path,
    ds: &GenDataset,
    shard: usize,
    rows: u64,
    words: &[String],
    seed: u64,
    non_ascii: f64,
) -> std::io::Result<PathBuf> {
    let gzip = shard.is_multiple_of(2);
    let ext = if gzip { "jsonl.gz" } else { "jsonl.zst" };
    let path = dir.join(format!("{}-{shard:02}.{ext}", ds.name));
    let tmp = path.with_extension("partial");
    let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    let mut w: Box<dyn Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(zstd::stream::write::Encoder::new(file, 3)?.auto_finish())
    };
    let mut rng = Rng::new(mix(&[seed, ds.rows, shard as u64]));
    let (mut a, mut p) = (String::new(), String::new());
    for _ in 0..rows {
        a.clear();
        p.clear();
        // 2% of anchors come from a pool of 500, as FAQ-style data repeats its questions.
        if rng.below(50) == 0 {
            let mut pool = Rng::new(rng.below(500));
            sentence(words, 6, &mut pool, &mut a);
        } else {
            let n = 4 + rng.below(13) as usize;
            sentence(words, n, &mut rng, &mut a);
        }
        let n = 8 + rng.below(57) as usize;
        sentence(words, n, &mut rng, &mut p);
        for t in [&mut a, &mut p] {
            if rng.uniform() < non_ascii {
                t.push(' ');
                t.push_str(NON_ASCII[rng.below(NON_ASCII.len() as u64) as usize]);
            }
        }
        serde_json::to_writer(&mut w, &[&a, &p])?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Writes every dataset under `dir/<name>/`, shards in parallel. Returns the glob of each.
/// `non_ascii` is the share of texts given one non-ASCII word.
pub fn generate(
    dir: &Path,
    datasets: &[GenDataset],
    words: &[String],
    seed: u64,
    non_ascii: f64,
    threads: usize,
) -> std::io::Result<Vec<(String, String)>> {
    if words.is_empty() {
        return Err(std::io::Error::other("no words to build texts from"));
    }
    let mut jobs = Vec::new();
    for ds in datasets {
        let d = dir.join(&ds.name);
        std::fs::create_dir_all(&d)?;
        for s in 0..ds.shards {
            let rows =
                ds.rows / ds.shards as u64 + u64::from((s as u64) < ds.rows % ds.shards as u64);
            jobs.push((d.clone(), ds, s, rows));
        }
    }
    let results = crate::par::par_map(&jobs, threads, |(d, ds, s, rows)| {
        write_shard(d, ds, *s, *rows, words, seed, non_ascii)
    });
    for r in results {
        r?;
    }
    Ok(datasets
        .iter()
        .map(|ds| {
            let g = dir.join(&ds.name).join(format!("{}-*.jsonl.*", ds.name));
            (ds.name.clone(), g.display().to_string())
        })
        .collect())
}
