//! `--device` and `--dtype`, shared by the commands that run a model.

use anyhow::Result;
use candle_core::{DType, Device};
use clap::Args;
use model::{LoadOptions, SentenceModel};
use std::path::Path;

#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Where the model runs: cpu, cuda (GPU 0) or cuda:N. CUDA needs a binary built with
    /// scripts/build-cuda (`--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weights and activations in f32, bf16 or f16. On a CPU, bf16 multiplies the linear layers
    /// (nearly all the arithmetic) in bf16 with f32 sums and keeps everything else in f32: about
    /// twice as fast as f32 where the CPU has AMX (Xeon 4th generation and later) or
    /// AVX512-BF16 (AMD Zen 4 and later); on other CPUs the linear layers stay in f32. f16 on a
    /// CPU is slow. Pooling and normalisation always run in f32.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Run each batch padded to its longest text, as sentence-transformers does, instead of
    /// packed. On a CPU, batches run packed by default: the real tokens of all texts one after
    /// another, attention kept within each text, so no arithmetic goes to padding; the
    /// embeddings are the same to float rounding. (A GPU runs padded batches for now.)
    #[arg(long)]
    pub padded: bool,
}

impl DeviceArgs {
    pub fn device(&self) -> Result<Device> {
        model::device::parse_device(&self.device).map_err(anyhow::Error::msg)
    }

    pub fn dtype(&self) -> Result<DType> {
        model::device::parse_dtype(&self.dtype).map_err(anyhow::Error::msg)
    }

    /// Loads `dir` on this device, in this dtype, with `opts`' other choices.
    pub fn load(&self, dir: &Path, opts: LoadOptions) -> Result<SentenceModel> {
        let (device, dtype) = (self.device()?, self.dtype()?);
        let opts = LoadOptions {
            padded: self.padded,
            ..opts
        };
        // bf16 on a CPU keeps f32 weights and packs bf16 copies of the linear ones
        // (`SentenceModel::load_on`); CUDA holds the weights themselves in bf16.
        let opts = if device.is_cpu() && dtype == DType::BF16 {
            if model::ops::bf16_kernel() == "f32" {
                eprintln!(
                    "note: this CPU has no bf16 dot products (AMX or AVX512-BF16), or \
                     PAIRTRAIN_ISA turns them off: --dtype bf16 runs the linear layers in f32, \
                     which is as fast here and more precise"
                );
            }
            LoadOptions {
                dtype: Some(DType::F32),
                compute_dtype: Some(DType::BF16),
                ..opts
            }
        } else {
            LoadOptions {
                dtype: Some(dtype),
                ..opts
            }
        };
        Ok(SentenceModel::load_on(dir, &opts, &device)?)
    }
}
