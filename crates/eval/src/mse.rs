//! MSEEvaluator, as sentence-transformers names it: how close a student's embeddings of the
//! translations are to a teacher's embeddings of the sources (knowledge distillation). The metric
//! is `negative_mse`: minus the mean squared difference over every component, times 100.

use crate::translation::ParallelData;
use anyhow::{bail, Result};
use model::SentenceModel;
use std::collections::BTreeMap;

pub fn evaluate_mse(
    student: &SentenceModel,
    teacher: &SentenceModel,
    data: &ParallelData,
    batch_size: usize,
) -> Result<BTreeMap<String, f64>> {
    if student.dim() != teacher.dim() {
        bail!(
            "the student embeds in {} dimensions and the teacher in {}: MSE needs the same (add a \
             Dense projection to the student)",
            student.dim(),
            teacher.dim()
        );
    }
    let sources: Vec<&str> = data.sources.iter().map(String::as_str).collect();
    let targets: Vec<&str> = data.targets.iter().map(String::as_str).collect();
    let t = teacher.encode(&sources, batch_size, |_| {})?;
    let s = student.encode(&targets, batch_size, |_| {})?;
    let (mut sum, mut n) = (0f64, 0usize);
    for (a, b) in t.iter().zip(&s) {
        for (x, y) in a.iter().zip(b) {
            let d = (*x - *y) as f64;
            sum += d * d;
            n += 1;
        }
    }
    let mse = 100.0 * sum / n.max(1) as f64;
    Ok(BTreeMap::from([("negative_mse".to_string(), -mse)]))
}
