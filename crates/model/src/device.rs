//! Choosing where a model runs and in what precision, from what a user types (`--device`,
//! `--dtype`, `[train] device`/`dtype`).

use candle_core::{DType, Device};

/// The GPU ordinal `s` names: None for `cpu`, N for `cuda` (0) or `cuda:N`.
fn device_ordinal(s: &str) -> Result<Option<usize>, String> {
    let bad = || format!("device \"{s}\" is not one of cpu, cuda, cuda:N");
    match s.strip_prefix("cuda") {
        _ if s == "cpu" => Ok(None),
        Some("") => Ok(Some(0)),
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .map(Some)
            .ok_or_else(bad),
        None => Err(bad()),
    }
}

/// `cpu`, `cuda` (GPU 0) or `cuda:N`. CUDA needs a binary built with the `cuda` feature
/// (`scripts/build-cuda`); the default build says so instead of failing later.
pub fn parse_device(s: &str) -> Result<Device, String> {
    let s = s.trim();
    match device_ordinal(s)? {
        None => Ok(Device::Cpu),
        Some(ordinal) => cuda_device(ordinal, s),
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize, s: &str) -> Result<Device, String> {
    Device::new_cuda(ordinal).map_err(|e| format!("device \"{s}\": cannot open the GPU: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(_ordinal: usize, s: &str) -> Result<Device, String> {
    Err(format!(
        "device \"{s}\": this pairtrain was built without CUDA support; build it with \
         scripts/build-cuda (cargo build --release --features cuda)"
    ))
}

/// Whether `s` names a device, without opening it (recipes are checked before a run starts,
/// possibly on a machine other than the one that trains).
pub fn check_device(s: &str) -> Result<(), String> {
    let s = s.trim();
    match device_ordinal(s)? {
        Some(_) if !cfg!(feature = "cuda") => cuda_device(0, s).map(|_| ()),
        _ => Ok(()),
    }
}

/// `f32` (default), `bf16` or `f16`.
pub fn parse_dtype(s: &str) -> Result<DType, String> {
    match s.trim() {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" => Ok(DType::F16),
        other => Err(format!("dtype \"{other}\" is not one of f32, bf16, f16")),
    }
}

/// Tensor copies from a GPU to the host so far in this process (0 in a build without CUDA): a
/// training step should make one, for its loss and gradient norm together.
pub fn dtoh_copies() -> usize {
    #[cfg(feature = "cuda")]
    return candle_core::cuda_backend::dtoh_copies();
    #[cfg(not(feature = "cuda"))]
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_dtypes_parse_or_explain() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device("gpu")
            .unwrap_err()
            .contains("not one of cpu, cuda"));
        assert!(parse_device("cuda:x").unwrap_err().contains("not one of"));
        if !cfg!(feature = "cuda") {
            let e = parse_device("cuda:1").unwrap_err();
            assert!(e.contains("built without CUDA"), "{e}");
        }
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert!(parse_dtype("fp8")
            .unwrap_err()
            .contains("not one of f32, bf16"));
    }
}
