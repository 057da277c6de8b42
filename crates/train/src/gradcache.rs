//! GradCache (Gao et al., 2021, "Scaling Deep Contrastive Learning Batch Size under Memory
//! Limited Setup"): the negatives of the full batch with the activation memory of one
//! mini-batch. It is a way of computing a loss's parameter gradients, not a loss, so it wraps
//! any of `crate::losses` (sentence-transformers' Cached* losses):
//!
//! 1. embed every mini-batch of every column without a gradient graph;
//! 2. gather the embeddings across ranks, compute the loss on them and its gradient with
//!    respect to the embeddings;
//! 3. embed each local mini-batch again with a graph and backpropagate its slice of that
//!    gradient.
//!
//! Each mini-batch's second pass replays the dropout stream of its first, so both passes draw the
//! same masks and the result equals the uncached gradient.

use crate::losses::{Embedded, Loss};
use crate::process_group::ProcessGroup;
use crate::step::{grads_of, TrainBatch};
use anyhow::Result;
use candle_core::{Tensor, Var};
use model::{Dropout, SentenceModel};

/// The loss (left on its device) and the parameter gradients of `batch`.
pub(crate) fn gradients(
    model: &SentenceModel,
    vars: &[(String, Var)],
    batch: &TrainBatch,
    loss: &dyn Loss,
    mini_batch_size: usize,
    dropout: &mut Dropout,
    group: &dyn ProcessGroup,
) -> Result<(Tensor, Vec<Option<Tensor>>)> {
    let rows = batch.rows();
    let mb = mini_batch_size.max(1);
    let frozen = model.encoder.detached();
    // (column, start, len, dropout state before the first pass)
    let mut slices = Vec::new();
    let mut leaves = Vec::with_capacity(batch.columns.len());
    for (c, col) in batch.columns.iter().enumerate() {
        let mut parts = Vec::new();
        for start in (0..rows).step_by(mb) {
            let len = mb.min(rows - start);
            slices.push((c, start, len, dropout.clone()));
            let ids = col.ids.narrow(0, start, len)?;
            let mask = col.mask.narrow(0, start, len)?;
            let prompts = col.prompt_lengths.as_ref().map(|p| &p[start..start + len]);
            parts.push(model.embed_pooled(frozen.as_ref(), &ids, &mask, prompts, Some(dropout))?);
        }
        let local = Tensor::cat(&parts, 0)?;
        leaves.push(Var::from_tensor(&group.all_gather(&local)?)?);
    }
    let after_first_pass = dropout.clone();

    let columns: Vec<Tensor> = leaves.iter().map(|v| v.as_tensor().clone()).collect();
    let guide = crate::step::gathered_guide(batch, group)?;
    let mut embedded = Embedded::all(&columns, &batch.texts);
    embedded.guide = guide.as_deref();
    embedded.scores = batch.scores.as_deref();
    let value = loss.forward(&embedded)?;
    let emb_grads = value.backward()?;
    let loss_value = value.detach();
    drop(value);

    let mut total: Vec<Option<Tensor>> = vec![None; vars.len()];
    for (c, start, len, replay) in slices {
        let col = &batch.columns[c];
        let Some(g) = emb_grads.get(leaves[c].as_tensor()) else {
            continue;
        };
        let g = g.narrow(0, batch.offset + start, len)?.detach();
        let mut d = replay;
        let ids = col.ids.narrow(0, start, len)?;
        let mask = col.mask.narrow(0, start, len)?;
        let prompts = col.prompt_lengths.as_ref().map(|p| &p[start..start + len]);
        let e = model.embed_pooled(model.encoder.as_ref(), &ids, &mask, prompts, Some(&mut d))?;
        let surrogate = (e * g)?.sum_all()?;
        for (acc, g) in total.iter_mut().zip(grads_of(&surrogate, vars)?) {
            *acc = match (acc.take(), g) {
                (Some(a), Some(g)) => Some((a + g)?),
                (a, g) => a.or(g),
            };
        }
    }
    *dropout = after_first_pass;
    group.all_reduce_sum(&mut total)?;
    Ok((loss_value, total))
}
