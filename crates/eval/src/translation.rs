//! TranslationEvaluator, as sentence-transformers names it: bitext retrieval over parallel
//! sentences. Each source sentence's most similar target (cosine) must be its own translation
//! (src2trg), and each target's most similar source its own (trg2src); a match counts when the
//! texts are equal, so a repeated sentence is not held against the model. Ties go to the first
//! index, as NumPy's argmax does.

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use model::SentenceModel;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Parallel sentences, source and target of each pair at the same index.
pub struct ParallelData {
    pub sources: Vec<String>,
    pub targets: Vec<String>,
}

/// Reads `source<TAB>target` lines (plain, .gz or .zst; no header; further columns ignored).
/// Errors name file:line.
pub fn load_parallel(path: &Path) -> Result<ParallelData> {
    let mut text = String::new();
    pairs::reader::open_decoded(path)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .read_to_string(&mut text)
        .with_context(|| {
            format!(
                "{}: cannot read (not UTF-8, or a broken archive?)",
                path.display()
            )
        })?;
    let mut d = ParallelData {
        sources: Vec::new(),
        targets: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut f = line.split('\t');
        match (f.next(), f.next()) {
            (Some(s), Some(t)) if !s.trim().is_empty() && !t.trim().is_empty() => {
                d.sources.push(s.to_string());
                d.targets.push(t.to_string());
            }
            _ => bail!(
                "{}:{}: expected source<TAB>translation, both non-empty",
                path.display(),
                i + 1
            ),
        }
    }
    if d.sources.len() < 2 {
        bail!(
            "{}: needs at least 2 sentence pairs, found {}",
            path.display(),
            d.sources.len()
        );
    }
    Ok(d)
}

/// First index of the largest value.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// `src2trg_accuracy`, `trg2src_accuracy` and their mean, `mean_accuracy`.
pub fn evaluate_translation(
    model: &SentenceModel,
    data: &ParallelData,
    batch_size: usize,
) -> Result<BTreeMap<String, f64>> {
    let embed = |texts: &[String]| -> Result<Tensor> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let rows = model.encode(&refs, batch_size, |_| {})?;
        let n = rows.len();
        let t = Tensor::from_vec(rows.concat(), (n, model.dim()), &candle_core::Device::Cpu)?;
        let norm = t.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-8, f64::MAX)?;
        Ok(t.broadcast_div(&norm)?)
    };
    let (s, t) = (embed(&data.sources)?, embed(&data.targets)?);
    let sims = s.matmul(&t.t()?)?;
    let forward = sims.to_vec2::<f32>()?;
    let backward = sims.t()?.contiguous()?.to_vec2::<f32>()?;
    let n = data.sources.len();
    let src2trg = (0..n)
        .filter(|&i| data.targets[argmax(&forward[i])] == data.targets[i])
        .count() as f64
        / n as f64;
    let trg2src = (0..n)
        .filter(|&i| data.sources[argmax(&backward[i])] == data.sources[i])
        .count() as f64
        / n as f64;
    Ok(BTreeMap::from([
        ("src2trg_accuracy".to_string(), src2trg),
        ("trg2src_accuracy".to_string(), trg2src),
        ("mean_accuracy".to_string(), (src2trg + trg2src) / 2.0),
    ]))
}
