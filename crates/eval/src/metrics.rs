//! Metrics as pure functions, computed the way sentence-transformers' evaluators compute them:
//! Pearson and Spearman as scipy's `pearsonr` / `spearmanr` (ties get the average rank), and the
//! ranking metrics of `InformationRetrievalEvaluator` with binary relevance.

/// Pearson's correlation coefficient (NaN when either side is constant or empty).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "pearson: lengths differ");
    let n = x.len() as f64;
    if x.is_empty() {
        return f64::NAN;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    // Clamped like scipy: rounding can push |r| a hair past 1.
    (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0)
}

/// 1-based ranks with ties given the average of the ranks they span (scipy's `rankdata`
/// "average").
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = avg;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation: Pearson on average ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// The ranking metrics of one query, from the relevance (0/1) of its ranked results, best first.
/// `n_relevant` is the number of relevant documents the query has in all.
pub struct RankedHits<'a> {
    pub hits: &'a [bool],
    pub n_relevant: usize,
}

impl RankedHits<'_> {
    fn top(&self, k: usize) -> &[bool] {
        &self.hits[..k.min(self.hits.len())]
    }

    fn count(&self, k: usize) -> usize {
        self.top(k).iter().filter(|&&h| h).count()
    }

    /// 1 if any relevant document is in the top k.
    pub fn accuracy_at(&self, k: usize) -> f64 {
        (self.count(k) > 0) as u8 as f64
    }

    /// Relevant documents in the top k, divided by k.
    pub fn precision_at(&self, k: usize) -> f64 {
        self.count(k) as f64 / k as f64
    }

    /// Relevant documents in the top k, divided by all relevant documents.
    pub fn recall_at(&self, k: usize) -> f64 {
        self.count(k) as f64 / self.n_relevant as f64
    }

    /// 1 / rank of the first relevant document within the top k, else 0.
    pub fn mrr_at(&self, k: usize) -> f64 {
        self.top(k)
            .iter()
            .position(|&h| h)
            .map_or(0.0, |r| 1.0 / (r + 1) as f64)
    }

    /// nDCG with binary gains: DCG = Σ 1/log2(rank + 1) over hits in the top k, over the DCG of
    /// min(k, #relevant) hits in a row.
    pub fn ndcg_at(&self, k: usize) -> f64 {
        let dcg: f64 = self
            .top(k)
            .iter()
            .enumerate()
            .filter(|(_, &h)| h)
            .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
            .sum();
        let ideal: f64 = (0..k.min(self.n_relevant))
            .map(|i| 1.0 / ((i + 2) as f64).log2())
            .sum();
        if ideal == 0.0 {
            0.0
        } else {
            dcg / ideal
        }
    }

    /// Average precision at k: Σ over hits in the top k of (hits so far / rank), divided by
    /// min(k, #relevant).
    pub fn map_at(&self, k: usize) -> f64 {
        let mut hits = 0usize;
        let mut sum = 0.0;
        for (i, &h) in self.top(k).iter().enumerate() {
            if h {
                hits += 1;
                sum += hits as f64 / (i + 1) as f64;
            }
        }
        let denom = k.min(self.n_relevant);
        if denom == 0 {
            0.0
        } else {
            sum / denom as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_and_spearman_match_scipy() {
        // scipy.stats.pearsonr / spearmanr on these vectors (scipy 1.17).
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0];
        let y = [2.0, 1.0, 4.0, 3.0, 7.0, 6.0];
        assert!((pearson(&x, &y) - 0.863_511_536_641_545_6).abs() < 1e-12);
        assert!((spearman(&x, &y) - 0.869_656_553_478_672_7).abs() < 1e-12);
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 30.0]),
            vec![1.5, 3.0, 1.5, 4.0]
        );
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn ranking_metrics_by_hand() {
        // Relevant at ranks 2 and 4; 3 relevant documents in all.
        let h = RankedHits {
            hits: &[false, true, false, true, false],
            n_relevant: 3,
        };
        assert_eq!(h.accuracy_at(1), 0.0);
        assert_eq!(h.accuracy_at(3), 1.0);
        assert!((h.precision_at(5) - 0.4).abs() < 1e-15);
        assert!((h.recall_at(5) - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(h.mrr_at(10), 0.5);
        assert_eq!(h.mrr_at(1), 0.0);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((h.ndcg_at(10) - dcg / idcg).abs() < 1e-15);
        assert!((h.map_at(100) - (0.5 + 0.5) / 3.0).abs() < 1e-15);
        assert!((h.map_at(2) - 0.5 / 2.0).abs() < 1e-15);
    }
}
