//! GPU ranks: the gather of the embeddings and the all-reduce of the gradients through NCCL,
//! device to device on candle's stream, instead of through host buffers and MPI. MPI still
//! starts the ranks, carries NCCL's unique id from rank 0 to the others, and answers the small
//! host-side questions (checksums, "does any rank stop").
//!
//! NCCL puts one rank on one GPU: two ranks on one GPU are refused by NCCL itself
//! ("duplicate GPU"); run those with `PAIRTRAIN_NCCL=0`, which keeps the host path of
//! `MpiGroup`.

use crate::mpi_group::MpiGroup;
use crate::process_group::{buckets, concat_flat, split_flat, ProcessGroup, Traffic, TrafficMeter};
use anyhow::{anyhow, Result};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaDevice, CudaStorage, CustomOp1, DType, Layout, Shape, Tensor};
use cudarc::nccl::{Comm, Id, ReduceOp};
use std::time::Instant;

/// Gradients are summed this many f32 values at a time: one call per bucket, not per tensor.
const BUCKET: usize = 1 << 24;

pub struct NcclGroup {
    // Dropped first: NCCL's communicator goes before MPI is finalized.
    comm: Comm,
    mpi: MpiGroup,
    traffic: TrafficMeter,
}

impl NcclGroup {
    /// A communicator over the ranks of `mpi`, each on its own GPU `device`.
    pub fn new(mpi: MpiGroup, device: &CudaDevice) -> Result<Self> {
        let stream = device.cuda_stream();
        stream
            .context()
            .bind_to_thread()
            .map_err(|e| anyhow!("NCCL: binding the GPU of rank {}: {e:?}", mpi.rank()))?;
        let mut bytes = [0 as std::ffi::c_char; 128];
        if mpi.rank() == 0 {
            let id = Id::new().map_err(|e| {
                anyhow!("NCCL: ncclGetUniqueId failed ({e:?}); is libnccl.so.2 on LD_LIBRARY_PATH?")
            })?;
            bytes = *id.internal();
        }
        mpi.broadcast_from_root(&mut bytes);
        let comm = Comm::from_rank(stream, mpi.rank(), mpi.world_size(), Id::uninit(bytes))
            .map_err(|e| {
                anyhow!(
                    "NCCL: rank {} of {} could not join the communicator ({e:?}); NCCL needs one \
                     GPU per rank (set PAIRTRAIN_NCCL=0 to go through the host instead)",
                    mpi.rank(),
                    mpi.world_size()
                )
            })?;
        Ok(Self {
            comm,
            mpi,
            traffic: TrafficMeter::default(),
        })
    }
}

impl ProcessGroup for NcclGroup {
    fn rank(&self) -> usize {
        self.mpi.rank()
    }

    fn world_size(&self) -> usize {
        self.mpi.world_size()
    }

    fn all_gather(&self, local: &Tensor) -> Result<Tensor> {
        let t0 = Instant::now();
        let n = local.dim(0)?;
        // NCCL carries f32 here; embeddings are pooled in f32 already, so this is no copy.
        let all = local
            .detach()
            .to_dtype(DType::F32)?
            .contiguous()?
            .apply_op1_no_bwd(&Collective::AllGather(&self.comm))?
            .to_dtype(local.dtype())?;
        self.traffic
            .record(4 * local.elem_count() * self.world_size(), t0);
        let parts = (0..self.world_size())
            .map(|r| {
                if r == self.rank() {
                    // This rank's rows stay in the graph; the others are constants.
                    Ok(local.clone())
                } else {
                    all.narrow(0, r * n, n)
                }
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    }

    fn all_reduce_sum(&self, grads: &mut [Option<Tensor>]) -> Result<()> {
        let t0 = Instant::now();
        let mut moved = 0;
        for bucket in buckets(grads, BUCKET) {
            let flat = concat_flat(grads, &bucket)?;
            let sum = flat.apply_op1_no_bwd(&Collective::AllReduceSum(&self.comm))?;
            moved += 8 * flat.elem_count();
            split_flat(grads, &bucket, &sum)?;
        }
        self.traffic.record(moved, t0);
        Ok(())
    }

    fn check_in_sync(&self, value: f64) -> Result<()> {
        self.mpi.check_in_sync(value)
    }

    fn any(&self, flag: bool) -> Result<bool> {
        self.mpi.any(flag)
    }

    fn all_gather_u64(&self, local: &[u64]) -> Result<Vec<u64>> {
        self.mpi.all_gather_u64(local)
    }

    fn traffic(&self) -> Traffic {
        self.traffic.get()
    }

    fn on_device(self: Box<Self>, _device: &candle_core::Device) -> Result<Box<dyn ProcessGroup>> {
        Ok(self)
    }
}

/// One NCCL collective on a contiguous f32 CUDA tensor, into a new tensor on the same stream.
enum Collective<'a> {
    /// Every rank's tensor stacked along dim 0, in rank order.
    AllGather(&'a Comm),
    /// The element-wise sum over the ranks.
    AllReduceSum(&'a Comm),
}

impl CustomOp1 for Collective<'_> {
    fn name(&self) -> &'static str {
        match self {
            Collective::AllGather(_) => "nccl-all-gather",
            Collective::AllReduceSum(_) => "nccl-all-reduce",
        }
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Err(candle_core::Error::Msg(format!(
            "{}: NCCL carries CUDA tensors only",
            self.name()
        )))
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let (start, end) = l
            .contiguous_offsets()
            .ok_or(candle_core::Error::RequiresContiguous { op: self.name() })?;
        if s.dtype() != DType::F32 {
            return Err(candle_core::Error::Msg(format!(
                "{}: f32 tensors only, got {:?}",
                self.name(),
                s.dtype()
            )));
        }
        let src = s.as_cuda_slice::<f32>()?.slice(start..end);
        let dev = s.device().clone();
        let failed = |e| candle_core::Error::Msg(format!("{}: {e:?}", self.name()));
        let (dst, shape) = match self {
            Collective::AllGather(comm) => {
                let mut dims = l.dims().to_vec();
                dims[0] *= comm.world_size();
                // SAFETY: NCCL writes every element before the stream's next use of `dst`.
                let mut dst = unsafe { dev.alloc::<f32>((end - start) * comm.world_size())? };
                comm.all_gather(&src, &mut dst).map_err(failed)?;
                (dst, Shape::from(dims))
            }
            Collective::AllReduceSum(comm) => {
                // SAFETY: as above.
                let mut dst = unsafe { dev.alloc::<f32>(end - start)? };
                comm.all_reduce(&src, &mut dst, &ReduceOp::Sum)
                    .map_err(failed)?;
                (dst, l.shape().clone())
            }
        };
        Ok((CudaStorage::wrap_cuda_slice(dst, dev), shape))
    }
}
