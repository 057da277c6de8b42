//! The processes of one run and the two collectives the training step needs. One process is
//! rank 0 of 1 and both collectives are no-ops; a multi-process backend (MPI, NCCL) implements
//! the same trait.

use anyhow::Result;
use candle_core::Tensor;

pub trait ProcessGroup: Send {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Every rank's `local` rows [n_r, …] concatenated in rank order. This rank's slice stays in
    /// the autograd graph; the other ranks' rows arrive as constants. With every rank computing
    /// the loss of the whole gathered batch, the gradient that reaches each rank's own rows is
    /// then exact, and summing parameter gradients over ranks gives the single-process gradient.
    fn all_gather(&self, local: &Tensor) -> Result<Tensor>;
    /// Sums each gradient over the ranks, in place.
    fn all_reduce_sum(&self, grads: &mut [Option<Tensor>]) -> Result<()>;
}

/// A run of one process.
pub struct SingleProcess;

impl ProcessGroup for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn all_gather(&self, local: &Tensor) -> Result<Tensor> {
        Ok(local.clone())
    }

    fn all_reduce_sum(&self, _grads: &mut [Option<Tensor>]) -> Result<()> {
        Ok(())
    }
}
