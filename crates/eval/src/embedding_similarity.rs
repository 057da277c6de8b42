//! EmbeddingSimilarityEvaluator, as sentence-transformers names it: sentence pairs with gold
//! similarity scores; Pearson and Spearman correlation between the gold scores and the model's
//! cosine, dot, (negative) euclidean and (negative) manhattan similarities.

use crate::metrics::{pearson, spearman};
use anyhow::{bail, Context, Result};
use model::SentenceModel;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Sentence pairs and their gold scores.
pub struct StsData {
    pub sentences1: Vec<String>,
    pub sentences2: Vec<String>,
    pub scores: Vec<f64>,
}

/// Reads either layout, both tab-separated and unquoted (sentences contain `"`):
/// - a header naming the columns `sentence1`, `sentence2`, `score` (in any order);
/// - the original STS-B csv files, no header: score, sentence1, sentence2 in fields 5, 6, 7.
///
/// Errors name file:line and what is wrong.
pub fn load_sts(path: &Path) -> Result<StsData> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        anyhow::anyhow!("{}:{line}: invalid UTF-8", path.display())
    })?;
    let mut lines = text.lines().enumerate().peekable();
    let header: Option<Vec<&str>> = lines
        .peek()
        .map(|(_, l)| l.split('\t').map(|f| f.trim()).collect::<Vec<_>>())
        .filter(|h| h.contains(&"sentence1") && h.contains(&"sentence2"));
    let (i1, i2, is) = match &header {
        Some(h) => {
            let col = |name: &str| {
                h.iter().position(|&c| c == name).ok_or_else(|| {
                    anyhow::anyhow!("{}:1: the header has no \"{name}\" column", path.display())
                })
            };
            let cols = (col("sentence1")?, col("sentence2")?, col("score")?);
            lines.next();
            cols
        }
        None => (5, 6, 4),
    };
    let need = i1.max(i2).max(is) + 1;
    let mut d = StsData {
        sentences1: Vec::new(),
        sentences2: Vec::new(),
        scores: Vec::new(),
    };
    for (i, line) in lines {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < need {
            bail!(
                "{}:{n}: expected at least {need} tab-separated fields ({}), found {}",
                path.display(),
                if header.is_some() {
                    "as the header says"
                } else {
                    "STS-B layout: score, sentence1, sentence2 in fields 5-7"
                },
                f.len()
            );
        }
        let score: f64 = f[is].trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "{}:{n}: score \"{}\" is not a number",
                path.display(),
                f[is]
            )
        })?;
        if !score.is_finite() {
            bail!("{}:{n}: score \"{}\" is not finite", path.display(), f[is]);
        }
        d.sentences1.push(f[i1].to_string());
        d.sentences2.push(f[i2].to_string());
        d.scores.push(score);
    }
    if d.scores.len() < 2 {
        bail!(
            "{}: needs at least 2 sentence pairs, found {}",
            path.display(),
            d.scores.len()
        );
    }
    Ok(d)
}

/// Embeds each distinct sentence once, in batches of `batch_size`.
pub fn evaluate_sts(
    model: &SentenceModel,
    data: &StsData,
    batch_size: usize,
) -> Result<BTreeMap<String, f64>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut unique: Vec<&str> = Vec::new();
    for s in data.sentences1.iter().chain(&data.sentences2) {
        index.entry(s.as_str()).or_insert_with(|| {
            unique.push(s.as_str());
            unique.len() - 1
        });
    }
    let emb = model.encode(&unique, batch_size, |_| {})?;
    let n = data.scores.len();
    let mut sims: [Vec<f64>; 4] = Default::default();
    for i in 0..n {
        let a = &emb[index[data.sentences1[i].as_str()]];
        let b = &emb[index[data.sentences2[i].as_str()]];
        let (mut dot, mut na, mut nb, mut l2, mut l1) = (0f64, 0f64, 0f64, 0f64, 0f64);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (x as f64, y as f64);
            dot += x * y;
            na += x * x;
            nb += y * y;
            l2 += (x - y) * (x - y);
            l1 += (x - y).abs();
        }
        sims[0].push(dot / (na.sqrt() * nb.sqrt()).max(1e-12));
        sims[1].push(dot);
        sims[2].push(-l2.sqrt());
        sims[3].push(-l1);
    }
    let mut out = BTreeMap::new();
    let (mut pmax, mut smax) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for (name, s) in ["cosine", "dot", "euclidean", "manhattan"]
        .iter()
        .zip(&sims)
    {
        let p = pearson(&data.scores, s);
        let r = spearman(&data.scores, s);
        pmax = pmax.max(p);
        smax = smax.max(r);
        out.insert(format!("pearson_{name}"), p);
        out.insert(format!("spearman_{name}"), r);
    }
    out.insert("pearson_max".into(), pmax);
    out.insert("spearman_max".into(), smax);
    Ok(out)
}
