//! Ranks started by MPI (`mpirun`, `srun --mpi=pmix`): the gather and all-reduce of the training
//! step over MPI collectives on host buffers (CPU ranks; GPU tensors are copied through the host).

use crate::process_group::{buckets, concat_flat, split_flat, ProcessGroup, Traffic, TrafficMeter};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::time::Instant;

/// Gradients are summed this many f32 values at a time: one call per bucket, not per tensor.
const BUCKET: usize = 1 << 22;

pub struct MpiGroup {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    traffic: TrafficMeter,
    // Last: MPI is finalized when the universe goes, after every use of `world`.
    _universe: Universe,
}

impl MpiGroup {
    /// The world of this MPI job (a process started without a launcher is rank 0 of 1).
    pub fn init() -> Result<Self> {
        let universe = mpi::initialize().context("MPI was already initialized")?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Self {
            world,
            rank,
            size,
            traffic: TrafficMeter::default(),
            _universe: universe,
        })
    }

    /// Overwrites `buf` on every rank with rank 0's bytes.
    pub fn broadcast_from_root(&self, buf: &mut [std::ffi::c_char]) {
        self.world.process_at_rank(0).broadcast_into(buf);
    }
}

/// A tensor's values as f32 on the host, row-major.
fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.detach()
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

impl ProcessGroup for MpiGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn all_gather(&self, local: &Tensor) -> Result<Tensor> {
        let _wait = crate::watchdog::waiting("all-gather of the embeddings");
        let n = local.dim(0)?;
        let row: usize = local.dims()[1..].iter().product();
        let t0 = Instant::now();
        let send = host(local)?;
        let mut all = vec![0f32; send.len() * self.size];
        self.world.all_gather_into(&send[..], &mut all[..]);
        self.traffic.record(4 * send.len() * self.size, t0);
        let mut shape = local.dims().to_vec();
        let parts = (0..self.size)
            .map(|r| {
                if r == self.rank {
                    // This rank's rows stay in the graph.
                    return Ok(local.clone());
                }
                shape[0] = n;
                let rows = &all[r * n * row..(r + 1) * n * row];
                Ok(Tensor::from_slice(rows, shape.as_slice(), local.device())?
                    .to_dtype(local.dtype())?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    }

    fn all_reduce_sum(&self, grads: &mut [Option<Tensor>]) -> Result<()> {
        let _wait = crate::watchdog::waiting("all-reduce of the gradients");
        let t0 = Instant::now();
        let mut moved = 0;
        for bucket in buckets(grads, BUCKET) {
            let flat = concat_flat(grads, &bucket)?;
            let buf = host(&flat)?;
            let mut sum = vec![0f32; buf.len()];
            moved += 8 * buf.len();
            self.world
                .all_reduce_into(&buf[..], &mut sum[..], SystemOperation::sum());
            let n = sum.len();
            split_flat(grads, &bucket, &Tensor::from_vec(sum, n, flat.device())?)?;
        }
        self.traffic.record(moved, t0);
        Ok(())
    }

    fn traffic(&self) -> Traffic {
        self.traffic.get()
    }

    fn on_device(self: Box<Self>, device: &candle_core::Device) -> Result<Box<dyn ProcessGroup>> {
        #[cfg(feature = "nccl")]
        if let candle_core::Device::Cuda(gpu) = device {
            if std::env::var("PAIRTRAIN_NCCL").as_deref() != Ok("0") {
                let nccl = crate::nccl_group::NcclGroup::new(*self, gpu)?;
                return Ok(Box::new(nccl));
            }
        }
        let _ = device;
        Ok(self)
    }

    fn any(&self, flag: bool) -> Result<bool> {
        let _wait = crate::watchdog::waiting("stop decision");
        let mut max = 0i32;
        self.world
            .all_reduce_into(&(flag as i32), &mut max, SystemOperation::max());
        Ok(max != 0)
    }

    fn all_gather_u64(&self, local: &[u64]) -> Result<Vec<u64>> {
        let _wait = crate::watchdog::waiting("exchange at start (agreement check, watchdog board)");
        let mut all = vec![0u64; local.len() * self.size];
        self.world.all_gather_into(local, &mut all[..]);
        Ok(all)
    }

    fn check_in_sync(&self, value: f64) -> Result<()> {
        let _wait = crate::watchdog::waiting("parameter checksum");
        let mut all = vec![0f64; self.size];
        self.world.all_gather_into(&value, &mut all[..]);
        if all.iter().any(|v| v.to_bits() != value.to_bits()) {
            bail!("the ranks' parameters differ (checksums {all:?}): the run is no longer data-parallel");
        }
        Ok(())
    }
}
