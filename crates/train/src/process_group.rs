//! The processes of one run and the collectives the training loop needs (the step's gather and
//! all-reduce, and agreement checks). One process is rank 0 of 1 and every collective is a
//! no-op; a multi-process backend (MPI, NCCL) implements the same trait.

use anyhow::Result;
use candle_core::Tensor;

pub trait ProcessGroup {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Every rank's `local` rows [n_r, …] concatenated in rank order. This rank's slice stays in
    /// the autograd graph; the other ranks' rows arrive as constants. With every rank computing
    /// the loss of the whole gathered batch, the gradient that reaches each rank's own rows is
    /// then exact, and summing parameter gradients over ranks gives the single-process gradient.
    fn all_gather(&self, local: &Tensor) -> Result<Tensor>;
    /// Sums each gradient over the ranks, in place. Every rank passes the same list (the same
    /// graph gives the same `None`s).
    fn all_reduce_sum(&self, grads: &mut [Option<Tensor>]) -> Result<()>;
    /// Fails unless every rank passes the same `value` bit for bit (a parameter checksum).
    fn check_in_sync(&self, value: f64) -> Result<()>;
    /// Whether any rank passes true: decisions (stop now, after a Ctrl-C) taken by all at once.
    fn any(&self, flag: bool) -> Result<bool>;
    /// What the gather and the all-reduce have cost this rank so far.
    fn traffic(&self) -> Traffic {
        Traffic::default()
    }
}

/// Payload this rank passed through the collectives of the training step (what it sent plus what
/// it received, before the MPI library's own algorithm), and the time spent in them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub bytes: u64,
    pub seconds: f64,
}

/// The group this process belongs to: the MPI world when built with the `mpi` feature and started
/// by a launcher (mpirun, srun), otherwise one process.
pub fn from_environment() -> Result<Box<dyn ProcessGroup>> {
    #[cfg(feature = "mpi")]
    {
        let launched = [
            "OMPI_COMM_WORLD_SIZE",
            "PMI_SIZE",
            "PMIX_RANK",
            "SLURM_STEP_NUM_TASKS",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
        if launched {
            let g = crate::mpi_group::MpiGroup::init()?;
            if g.world_size() > 1 {
                return Ok(Box::new(g));
            }
        }
    }
    Ok(Box::new(SingleProcess))
}

/// The GPU of this rank on its machine, from the launcher's local rank (Open MPI, Slurm,
/// torchrun's variable); 0 when none is set.
pub fn local_rank() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(0)
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

    fn check_in_sync(&self, _value: f64) -> Result<()> {
        Ok(())
    }

    fn any(&self, flag: bool) -> Result<bool> {
        Ok(flag)
    }
}
