//! Helpers shared by the crate's tests: seeded random tensors and a finite-difference gradient
//! check run in f64, where central differences are accurate to ~1e-9.

use crate::rng::Rng;
use candle_core::{DType, Device, Result, Tensor, Var};

/// A tensor of N(0, scale²) values from a fixed seed.
pub fn rand_tensor(dims: &[usize], seed: u64, scale: f64, dtype: DType) -> Result<Tensor> {
    let mut rng = Rng::new(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.normal() * scale).collect();
    Tensor::from_vec(v, dims, &Device::Cpu)?.to_dtype(dtype)
}

/// Compares the autograd gradient of the scalar `f()` with central differences, for up to
/// `per_var` elements of every variable (evenly spread). Fails if any gradient is all zero or if
/// any element is off by more than 1e-6 relative to the largest gradient of its tensor.
pub fn check_gradients(
    vars: &[(&str, Var)],
    per_var: usize,
    f: impl Fn() -> Result<Tensor>,
) -> Result<()> {
    let grads = f()?.backward()?;
    let h = 1e-5;
    for (name, var) in vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"))
            .flatten_all()?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        let gmax = g.iter().fold(0f64, |a, v| a.max(v.abs()));
        assert!(gmax > 0.0, "{name}: gradient is all zero");
        let orig = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        let step = (orig.len() / per_var.min(orig.len()).max(1)).max(1);
        for i in (0..orig.len()).step_by(step) {
            let mut at = |delta: f64| -> Result<f64> {
                let mut p = orig.clone();
                p[i] += delta;
                var.set(&Tensor::from_vec(p, var.shape(), &Device::Cpu)?)?;
                f()?.to_dtype(DType::F64)?.to_scalar::<f64>()
            };
            let numeric = (at(h)? - at(-h)?) / (2.0 * h);
            let err = (numeric - g[i]).abs();
            assert!(
                err <= 1e-6 * gmax.max(1e-3),
                "{name}[{i}]: autograd {} vs finite difference {numeric} (max |g| {gmax})",
                g[i]
            );
        }
        var.set(&Tensor::from_vec(orig, var.shape(), &Device::Cpu)?)?;
    }
    Ok(())
}
