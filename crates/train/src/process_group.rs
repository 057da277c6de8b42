//! The processes of one run and the collectives the training loop needs (the step's gather and
//! all-reduce, and agreement checks). One process is rank 0 of 1 and every collective is a
//! no-op; a multi-process backend (MPI, NCCL) implements the same trait.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

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
    /// Every rank's `local` (the same length on every rank), concatenated in rank order.
    fn all_gather_u64(&self, local: &[u64]) -> Result<Vec<u64>>;
    /// What the gather and the all-reduce have cost this rank so far.
    fn traffic(&self) -> Traffic {
        Traffic::default()
    }
    /// The group to use once the model's device is known: MPI ranks on GPUs switch to NCCL
    /// (with the `nccl` feature); everything else stays as it is.
    fn on_device(self: Box<Self>, _device: &candle_core::Device) -> Result<Box<dyn ProcessGroup>>;
}

/// Payload this rank passed through the collectives of the training step (what it sent plus what
/// it received, before the MPI library's own algorithm), and the time spent in them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub bytes: u64,
    pub seconds: f64,
}

/// A rank's running `Traffic`, added to by each collective.
#[derive(Default)]
pub struct TrafficMeter(std::cell::Cell<Traffic>);

impl TrafficMeter {
    /// One collective: `bytes` of payload, begun at `since`.
    pub fn record(&self, bytes: usize, since: std::time::Instant) {
        let mut t = self.0.get();
        t.bytes += bytes as u64;
        t.seconds += since.elapsed().as_secs_f64();
        self.0.set(t);
    }

    pub fn get(&self) -> Traffic {
        self.0.get()
    }
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

/// Writes `line` and a newline to stderr in one write. The ranks of a job share the launcher's
/// stderr, and `eprintln!` writes a formatted line in pieces that can interleave with another
/// rank's (a test once read "rank rank 0 on host …" then "1 on host …").
pub fn say(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}

/// This machine's host name (of its UTS namespace, as the launcher's hosts are named).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into())
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

    fn all_gather_u64(&self, local: &[u64]) -> Result<Vec<u64>> {
        Ok(local.to_vec())
    }

    fn on_device(self: Box<Self>, _device: &candle_core::Device) -> Result<Box<dyn ProcessGroup>> {
        Ok(self)
    }
}

/// Consecutive runs of gradients (indices into `grads`, `None`s skipped) of at most `limit`
/// values each, a run holding at least one gradient.
pub fn buckets(grads: &[Option<Tensor>], limit: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut size = 0;
    for (i, g) in grads.iter().enumerate() {
        let Some(g) = g else { continue };
        let n = g.elem_count();
        match out.last_mut() {
            Some(last) if size + n <= limit => last.push(i),
            _ => {
                out.push(vec![i]);
                size = 0;
            }
        }
        size += n;
    }
    out
}

/// The gradients of one bucket as one flat f32 tensor, in bucket order.
pub fn concat_flat(grads: &[Option<Tensor>], bucket: &[usize]) -> Result<Tensor> {
    let parts = bucket
        .iter()
        .map(|&i| {
            let g = grads[i].as_ref().expect("buckets hold gradients only");
            g.flatten_all()?.to_dtype(DType::F32)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

/// Puts the pieces of a flat tensor back as the bucket's gradients (shapes and dtypes kept).
pub fn split_flat(grads: &mut [Option<Tensor>], bucket: &[usize], flat: &Tensor) -> Result<()> {
    let mut at = 0;
    for &i in bucket {
        let g = grads[i].as_mut().expect("buckets hold gradients only");
        let n = g.elem_count();
        *g = flat
            .narrow(0, at, n)?
            .reshape(g.shape())?
            .to_dtype(g.dtype())?;
        at += n;
    }
    if at != flat.elem_count() {
        bail!(
            "all-reduce: {} values came back for {at}",
            flat.elem_count()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn grad(values: &[f32], shape: &[usize], dtype: DType) -> Option<Tensor> {
        let t = Tensor::from_slice(values, shape, &Device::Cpu).unwrap();
        Some(t.to_dtype(dtype).unwrap())
    }

    #[test]
    fn buckets_stay_under_the_limit_and_skip_missing_gradients() {
        let zeros = |n: usize| grad(&vec![0.0; n], &[n], DType::F32);
        let grads = vec![
            zeros(3),
            None,
            zeros(4),
            zeros(2),
            zeros(10),
            None,
            zeros(1),
        ];
        // A gradient larger than the limit gets a bucket of its own.
        assert_eq!(
            buckets(&grads, 8),
            vec![vec![0, 2], vec![3], vec![4], vec![6]]
        );
        assert_eq!(buckets(&grads, 100), vec![vec![0, 2, 3, 4, 6]]);
        assert!(buckets(&[None, None], 8).is_empty());
    }

    /// What a collective does to a bucket (here: doubling, as a sum over two equal ranks) comes
    /// back in each gradient's own shape and dtype.
    #[test]
    fn a_flattened_bucket_comes_back_as_its_gradients() {
        let mut grads = vec![
            grad(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], DType::F32),
            None,
            grad(&[-1.5, 0.25], &[1, 1, 2], DType::F64),
            grad(&[7.0], &[1], DType::F32),
        ];
        let bucket = vec![0, 2, 3];
        let flat = concat_flat(&grads, &bucket).unwrap();
        assert_eq!(
            flat.to_vec1::<f32>().unwrap(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -1.5, 0.25, 7.0]
        );
        split_flat(&mut grads, &bucket, &(flat * 2.0).unwrap()).unwrap();
        let g0 = grads[0].as_ref().unwrap();
        assert_eq!(g0.dims(), &[2, 3]);
        assert_eq!(
            g0.to_vec2::<f32>().unwrap(),
            vec![vec![2.0, 4.0, 6.0], vec![8.0, 10.0, 12.0]]
        );
        assert!(grads[1].is_none());
        let g2 = grads[2].as_ref().unwrap();
        assert_eq!((g2.dims(), g2.dtype()), (&[1, 1, 2][..], DType::F64));
        assert_eq!(
            g2.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            vec![-3.0, 0.5]
        );
        assert_eq!(
            grads[3].as_ref().unwrap().to_vec1::<f32>().unwrap(),
            vec![14.0]
        );
        // A flat tensor of the wrong length is an error, not a silent truncation.
        let short = Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap();
        assert!(split_flat(&mut grads, &bucket, &short).is_err());
    }
}
