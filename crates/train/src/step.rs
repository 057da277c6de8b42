//! One training step, top to bottom: embed each column of this rank's rows → gather the
//! embeddings across ranks (a no-op for one process) → the loss on the embeddings → backward →
//! sum the parameter gradients across ranks (a no-op) → clip → AdamW.
//!
//! How the embeddings and their gradients are computed is the `Embedding` choice: in one graph
//! (`Direct`), or GradCache's two passes over mini-batches (`crate::gradcache`).

use crate::losses::{Embedded, Loss};
use crate::optim::{AdamW, GradNorm};
use crate::process_group::ProcessGroup;
use anyhow::Result;
use candle_core::{DType, Tensor, Var};
use model::{Dropout, SentenceModel};

/// One column of this rank's rows (anchors, positives, or one hard-negative column), tokenized
/// and padded on its own to its longest row.
pub struct Column {
    pub ids: Tensor,
    pub mask: Tensor,
    /// Each row's prompt tokens, which pooling leaves out (a model with `include_prompt =
    /// false` and prompts); `None`: pooling takes every token.
    pub prompt_lengths: Option<Vec<u32>>,
}

/// A training batch: column 0 anchors, column 1 positives, columns 2.. hard negatives.
pub struct TrainBatch {
    /// This rank's rows.
    pub columns: Vec<Column>,
    /// The texts of the whole (global) batch, per column: duplicate masking looks at all of them.
    pub texts: Vec<Vec<String>>,
    /// Where this rank's rows start in the global batch.
    pub offset: usize,
    /// Distillation: the teacher's embeddings of this rank's sources [rows, D] (no gradient).
    pub targets: Option<Tensor>,
    /// GISTEmbed: the guide model's embeddings of this rank's rows, per column (no gradient).
    pub guide: Option<Vec<Tensor>>,
    /// The scores of the whole (global) batch's rows, when the loss takes them.
    pub scores: Option<Vec<Vec<f32>>>,
}

impl TrainBatch {
    /// This rank's rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.ids.dims()[0])
    }
}

/// How a step computes embeddings and their gradients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Embedding {
    /// The whole batch in one graph.
    Direct,
    /// GradCache: activation memory of `mini_batch_size` rows, negatives of the whole batch.
    GradCache { mini_batch_size: usize },
}

pub struct Gradients {
    pub loss: f64,
    /// Gradient of the loss for each trainable variable, in the order of `vars`, summed over
    /// ranks.
    pub grads: Vec<Option<Tensor>>,
}

/// What one optimizer step measured.
pub struct StepResult {
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// The loss of `batch` and its gradients with respect to `vars` (the model's trainable
/// parameters); dropout masks come from `dropout`.
pub fn gradients(
    model: &SentenceModel,
    vars: &[(String, Var)],
    batch: &TrainBatch,
    loss: &dyn Loss,
    embedding: Embedding,
    dropout: &mut Dropout,
    group: &dyn ProcessGroup,
) -> Result<Gradients> {
    let (value, grads) = gradients_lazy(model, vars, batch, loss, embedding, dropout, group)?;
    Ok(Gradients {
        loss: scalar(&value)?,
        grads,
    })
}

/// `gradients` with the loss left where it was computed (on a GPU: not read to the host yet).
fn gradients_lazy(
    model: &SentenceModel,
    vars: &[(String, Var)],
    batch: &TrainBatch,
    loss: &dyn Loss,
    embedding: Embedding,
    dropout: &mut Dropout,
    group: &dyn ProcessGroup,
) -> Result<(Tensor, Vec<Option<Tensor>>)> {
    if let Embedding::GradCache { mini_batch_size } = embedding {
        return crate::gradcache::gradients(
            model,
            vars,
            batch,
            loss,
            mini_batch_size,
            dropout,
            group,
        );
    }
    let columns = batch
        .columns
        .iter()
        .map(|c| {
            let local = model.embed_pooled(
                model.encoder.as_ref(),
                &c.ids,
                &c.mask,
                c.prompt_lengths.as_deref(),
                Some(dropout),
            )?;
            group.all_gather(&local)
        })
        .collect::<Result<Vec<_>>>()?;
    let targets = match &batch.targets {
        Some(t) => Some(group.all_gather(t)?),
        None => None,
    };
    let guide = gathered_guide(batch, group)?;
    let mut embedded = Embedded::all(&columns, &batch.texts);
    embedded.targets = targets.as_ref();
    embedded.guide = guide.as_deref();
    embedded.scores = batch.scores.as_deref();
    let value = loss.forward(&embedded)?;
    let mut grads = grads_of(&value, vars)?;
    group.all_reduce_sum(&mut grads)?;
    Ok((value.detach(), grads))
}

/// A whole optimizer step at learning rate `lr`: gradients, clipping at `max_grad_norm` (0: off),
/// AdamW.
#[allow(clippy::too_many_arguments)]
pub fn step(
    model: &SentenceModel,
    opt: &mut AdamW,
    batch: &TrainBatch,
    loss: &dyn Loss,
    embedding: Embedding,
    dropout: &mut Dropout,
    group: &dyn ProcessGroup,
    lr: f64,
    max_grad_norm: f64,
) -> Result<StepResult> {
    let (loss, mut grads) =
        gradients_lazy(model, &opt.vars, batch, loss, embedding, dropout, group)?;
    let norm = opt.clip_and_step(&mut grads, lr, max_grad_norm)?;
    // The step's one read from the device: the loss and the norm together.
    let (loss, grad_norm) = match norm {
        GradNorm::Host(norm) => (scalar(&loss)?, norm),
        GradNorm::Device(norm) => {
            let both = Tensor::cat(&[loss.to_dtype(DType::F64)?.reshape(1)?, norm], 0)?;
            let v = both.to_vec1::<f64>()?;
            (v[0], v[1])
        }
    };
    Ok(StepResult { loss, grad_norm })
}

/// The guide's embeddings of the whole batch, per column (gathered like the columns).
pub(crate) fn gathered_guide(
    batch: &TrainBatch,
    group: &dyn ProcessGroup,
) -> Result<Option<Vec<Tensor>>> {
    batch
        .guide
        .as_ref()
        .map(|g| g.iter().map(|c| group.all_gather(c)).collect())
        .transpose()
}

pub(crate) fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Runs backward from `loss` and collects the gradients of `vars`, detached: a gradient that
/// candle computed from tracked tensors still references the forward graph, and holding it
/// would keep every activation alive (GradCache accumulates over many mini-batches).
pub(crate) fn grads_of(loss: &Tensor, vars: &[(String, Var)]) -> Result<Vec<Option<Tensor>>> {
    let store = loss.backward()?;
    Ok(vars
        .iter()
        .map(|(_, v)| store.get(v.as_tensor()).map(|g| g.detach()))
        .collect())
}
