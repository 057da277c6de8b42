//! Response retrieval, the conversational benchmark of Henderson et al. (2019, "A Repository of
//! Conversational Datasets"): the held-out (context, response) pairs are cut into groups of 100
//! consecutive rows, each context ranks the 100 responses of its group by cosine, and
//! `1_of_100_accuracy` is how often its own response comes first. `mrr` is the mean reciprocal
//! rank of the own response within the group. Rows past the last full group are left out, as
//! there; ties go to the lower index (NumPy's argsort order for equal scores is not defined, so
//! the reference script breaks them the same way).

use crate::information_retrieval::normalized;
use anyhow::{bail, Result};
use candle_core::Tensor;
use model::SentenceModel;
use pairs::{BadRowPolicy, SkipCounts};
use std::collections::BTreeMap;
use std::path::Path;

/// Responses each context ranks.
pub const GROUP: usize = 100;

/// (context, response) pairs: the first two texts of each row.
pub struct ResponsePairs {
    pub contexts: Vec<String>,
    pub responses: Vec<String>,
}

/// Reads the first `max_rows` rows (all when `None`) of any pair file the loader reads (JSONL
/// with `context`/`response` as `pairtrain mine reddit` writes, other JSONL rows, TSV,
/// Parquet). A bad row is an error naming the file and line.
pub fn load_pairs(path: &Path, max_rows: Option<usize>) -> Result<ResponsePairs> {
    let mut reader =
        pairs::reader::PairReader::open_with(path, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut skips = SkipCounts::default();
    let mut d = ResponsePairs {
        contexts: Vec::new(),
        responses: Vec::new(),
    };
    while max_rows.is_none_or(|m| d.contexts.len() < m) {
        match reader
            .next_row(BadRowPolicy::Error, &mut skips)
            .map_err(|e| anyhow::anyhow!("{e}"))?
        {
            Some(mut row) => {
                row.truncate(2);
                let response = row.pop().unwrap_or_default();
                d.contexts.push(row.pop().unwrap_or_default());
                d.responses.push(response);
            }
            None => break,
        }
    }
    if d.contexts.len() < GROUP {
        bail!(
            "{}: response retrieval ranks each context's response among {GROUP}, so it needs at \
             least {GROUP} pairs; found {}",
            path.display(),
            d.contexts.len()
        );
    }
    Ok(d)
}

/// `1_of_100_accuracy` and `mrr` over the full groups of 100 pairs.
pub fn evaluate_response_retrieval(
    model: &SentenceModel,
    data: &ResponsePairs,
    batch_size: usize,
) -> Result<BTreeMap<String, f64>> {
    let n = data.contexts.len() / GROUP * GROUP;
    let embed = |texts: &[String]| -> Result<Tensor> {
        let refs: Vec<&str> = texts[..n].iter().map(String::as_str).collect();
        normalized(model.encode(&refs, batch_size, |_| {})?, model.dim())
    };
    let (c, r) = (embed(&data.contexts)?, embed(&data.responses)?);
    let (mut hits, mut rr) = (0usize, 0f64);
    for g in (0..n).step_by(GROUP) {
        let scores = c
            .narrow(0, g, GROUP)?
            .matmul(&r.narrow(0, g, GROUP)?.t()?)?
            .to_vec2::<f32>()?;
        for (i, row) in scores.iter().enumerate() {
            let own = row[i];
            // Candidates ranked above the own response: higher scores, and equal ones earlier.
            let above = row
                .iter()
                .enumerate()
                .filter(|&(j, &s)| s > own || (s == own && j < i))
                .count();
            hits += usize::from(above == 0);
            rr += 1.0 / (above + 1) as f64;
        }
    }
    Ok(BTreeMap::from([
        ("1_of_100_accuracy".to_string(), hits as f64 / n as f64),
        ("mrr".to_string(), rr / n as f64),
        ("pairs".to_string(), n as f64),
    ]))
}
