//! InformationRetrievalEvaluator, as sentence-transformers names it: queries against a corpus,
//! exact (brute-force) top-k by cosine similarity, and accuracy/precision/recall@k, MRR@k,
//! nDCG@k and MAP@k with binary relevance.
//!
//! The corpus is embedded and scored in chunks, so memory is bounded by the chunk size, whatever
//! the corpus size; scoring uses all cores.

use crate::metrics::RankedHits;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use model::SentenceModel;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A BEIR-layout collection.
pub struct IrData {
    /// (id, text) of every query with at least one relevant document.
    pub queries: Vec<(String, String)>,
    /// (id, text); text is `(title + " " + text).trim()`.
    pub corpus: Vec<(String, String)>,
    pub relevant: HashMap<String, HashSet<String>>,
}

/// k values reported, as sentence-transformers' defaults.
pub const ACCURACY_PRECISION_RECALL_AT: [usize; 4] = [1, 3, 5, 10];
pub const MRR_AT: usize = 10;
pub const NDCG_AT: usize = 10;
pub const MAP_AT: usize = 100;

fn read_jsonl(
    path: &Path,
    mut row: impl FnMut(usize, serde_json::Value) -> Result<()>,
) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let line = std::str::from_utf8(raw)
            .map_err(|_| anyhow::anyhow!("{}:{n}: invalid UTF-8", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{}:{n}: invalid JSON: {e}", path.display()))?;
        row(n, v)?;
    }
    Ok(())
}

fn field(
    path: &Path,
    n: usize,
    v: &serde_json::Value,
    key: &str,
    required: bool,
) -> Result<String> {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        // Some BEIR sets write numeric ids.
        Some(serde_json::Value::Number(x)) if key == "_id" => Ok(x.to_string()),
        None | Some(serde_json::Value::Null) if !required => Ok(String::new()),
        None => bail!("{}:{n}: no \"{key}\" field", path.display()),
        Some(_) => bail!("{}:{n}: \"{key}\" is not a string", path.display()),
    }
}

/// Reads `dir/corpus.jsonl`, `dir/queries.jsonl` and `dir/qrels.tsv` (or BEIR's
/// `dir/qrels/test.tsv`). A qrels row with score > 0 marks a relevant document. Errors name
/// file:line, including qrels rows that point to unknown query or corpus ids.
pub fn load_beir(dir: &Path) -> Result<IrData> {
    let cpath = dir.join("corpus.jsonl");
    let mut corpus = Vec::new();
    let mut corpus_ids = HashSet::new();
    read_jsonl(&cpath, |n, v| {
        let id = field(&cpath, n, &v, "_id", true)?;
        let title = field(&cpath, n, &v, "title", false)?;
        let text = field(&cpath, n, &v, "text", true)?;
        if !corpus_ids.insert(id.clone()) {
            bail!("{}:{n}: duplicate id \"{id}\"", cpath.display());
        }
        corpus.push((id, format!("{title} {text}").trim().to_string()));
        Ok(())
    })?;
    let qpath = dir.join("queries.jsonl");
    let mut queries = Vec::new();
    let mut query_ids = HashSet::new();
    read_jsonl(&qpath, |n, v| {
        let id = field(&qpath, n, &v, "_id", true)?;
        query_ids.insert(id.clone());
        queries.push((id, field(&qpath, n, &v, "text", true)?));
        Ok(())
    })?;
    let rpath: PathBuf = [dir.join("qrels.tsv"), dir.join("qrels/test.tsv")]
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| format!("{}: no qrels.tsv (or qrels/test.tsv)", dir.display()))?;
    let text = std::fs::read_to_string(&rpath)
        .with_context(|| format!("{}: cannot read (or not UTF-8)", rpath.display()))?;
    let mut relevant: HashMap<String, HashSet<String>> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let f: Vec<&str> = line.split('\t').map(|s| s.trim()).collect();
        if line.trim().is_empty() || (i == 0 && f.first() == Some(&"query-id")) {
            continue;
        }
        if f.len() < 3 {
            bail!(
                "{}:{n}: expected 3 tab-separated fields (query-id, corpus-id, score), found {}",
                rpath.display(),
                f.len()
            );
        }
        let score: f64 = f[2].parse().map_err(|_| {
            anyhow::anyhow!(
                "{}:{n}: score \"{}\" is not a number",
                rpath.display(),
                f[2]
            )
        })?;
        if !query_ids.contains(f[0]) {
            bail!(
                "{}:{n}: query id \"{}\" is not in queries.jsonl",
                rpath.display(),
                f[0]
            );
        }
        if !corpus_ids.contains(f[1]) {
            bail!(
                "{}:{n}: corpus id \"{}\" is not in corpus.jsonl",
                rpath.display(),
                f[1]
            );
        }
        if score > 0.0 {
            relevant
                .entry(f[0].to_string())
                .or_default()
                .insert(f[1].to_string());
        }
    }
    queries.retain(|(id, _)| relevant.contains_key(id));
    if queries.is_empty() {
        bail!("{}: no query has a relevant document", rpath.display());
    }
    Ok(IrData {
        queries,
        corpus,
        relevant,
    })
}

/// A scored candidate; ordered best first: higher score, then smaller corpus id (string order),
/// as the reference evaluator breaks ties.
#[derive(Clone, Copy)]
struct Hit {
    score: f32,
    doc: usize,
}

fn better(a: &Hit, b: &Hit, ids: &[(String, String)]) -> std::cmp::Ordering {
    b.score
        .total_cmp(&a.score)
        .then_with(|| ids[a.doc].0.cmp(&ids[b.doc].0))
}

/// Embeddings as returned by `encode`, as one [n, dim] tensor with L2-normalised rows.
pub(crate) fn normalized(rows: Vec<Vec<f32>>, dim: usize) -> Result<Tensor> {
    let n = rows.len();
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    let t = Tensor::from_vec(flat, (n, dim), &Device::Cpu)?;
    Ok(model::pooling::l2_normalize(&t)?)
}

/// Runs the evaluation; corpus embedded `chunk` documents at a time.
pub fn evaluate_retrieval(
    model: &SentenceModel,
    data: &IrData,
    batch_size: usize,
    chunk: usize,
) -> Result<BTreeMap<String, f64>> {
    let dim = model.dim();
    let qtexts: Vec<&str> = data.queries.iter().map(|(_, t)| t.as_str()).collect();
    let q = normalized(model.encode(&qtexts, batch_size, |_| {})?, dim)?;
    let nq = data.queries.len();
    let mut top: Vec<Vec<Hit>> = vec![Vec::new(); nq];
    for start in (0..data.corpus.len()).step_by(chunk.max(1)) {
        let end = (start + chunk.max(1)).min(data.corpus.len());
        let ctexts: Vec<&str> = data.corpus[start..end]
            .iter()
            .map(|(_, t)| t.as_str())
            .collect();
        let c = normalized(model.encode(&ctexts, batch_size, |_| {})?, dim)?;
        let scores = q.matmul(&c.t()?)?.to_vec2::<f32>()?;
        top.par_iter_mut().zip(scores).for_each(|(best, row)| {
            best.extend(row.into_iter().enumerate().map(|(j, score)| Hit {
                score,
                doc: start + j,
            }));
            best.sort_by(|a, b| better(a, b, &data.corpus));
            best.truncate(MAP_AT);
        });
    }
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for ((qid, _), best) in data.queries.iter().zip(&top) {
        let rel = &data.relevant[qid];
        let hits: Vec<bool> = best
            .iter()
            .map(|h| rel.contains(&data.corpus[h.doc].0))
            .collect();
        let r = RankedHits {
            hits: &hits,
            n_relevant: rel.len(),
        };
        let mut add = |k: String, v: f64| *sums.entry(k).or_default() += v;
        for k in ACCURACY_PRECISION_RECALL_AT {
            add(format!("cosine_accuracy@{k}"), r.accuracy_at(k));
            add(format!("cosine_precision@{k}"), r.precision_at(k));
            add(format!("cosine_recall@{k}"), r.recall_at(k));
        }
        add(format!("cosine_mrr@{MRR_AT}"), r.mrr_at(MRR_AT));
        add(format!("cosine_ndcg@{NDCG_AT}"), r.ndcg_at(NDCG_AT));
        add(format!("cosine_map@{MAP_AT}"), r.map_at(MAP_AT));
    }
    Ok(sums.into_iter().map(|(k, v)| (k, v / nq as f64)).collect())
}
