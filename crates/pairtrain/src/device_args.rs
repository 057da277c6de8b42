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
    /// Weights and activations in f32, bf16 or f16 (bf16 is meant for GPUs; on CPUs it is slower
    /// than f32). Pooling and normalisation always run in f32.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
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
        let opts = LoadOptions {
            dtype: Some(self.dtype()?),
            ..opts
        };
        Ok(SentenceModel::load_on(dir, &opts, &self.device()?)?)
    }
}
