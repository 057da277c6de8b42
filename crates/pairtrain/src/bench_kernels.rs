//! `pairtrain bench kernels`: every fused op on the chosen device against its composed reference
//! on the same device (forward and every input gradient, f32 and bf16, padding with holes, MPNet's
//! bias, dropout), and AdamW on the device against the CPU's update. On a GPU this is the check
//! that the CUDA kernels equal their references there (scripts/device/gpu-check runs it, also
//! under compute-sanitizer); on the CPU it checks the CPU kernels the same way.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use clap::Args;
use model::ops::{self, reference, AttentionSpec};
use model::rng::Rng;

#[derive(Args, Debug)]
pub struct BenchKernelsArgs {
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Smaller shapes (for compute-sanitizer, which runs kernels far slower).
    #[arg(long)]
    pub small: bool,
    /// Print a JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

/// One comparison: the largest difference relative to max(1, |reference|), and the bar.
struct Check {
    name: String,
    err: f64,
    tol: f64,
}

fn randn(shape: &[usize], seed: u64, scale: f64, dev: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut r = Rng::new(seed);
    let v: Vec<f32> = (0..n).map(|_| (r.normal() * scale) as f32).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?.to_device(dev)?)
}

fn rel_err(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a
        .to_dtype(DType::F64)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let b = b
        .to_dtype(DType::F64)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    if a.len() != b.len() {
        return Ok(f64::INFINITY);
    }
    Ok(a.iter()
        .zip(&b)
        .map(|(x, y)| {
            let e = (x - y).abs() / y.abs().max(1.0);
            if e.is_nan() {
                f64::INFINITY
            } else {
                e
            }
        })
        .fold(0.0, f64::max))
}

/// The op's outputs and the gradients of Σ out·g with respect to `inputs`.
fn with_grads(
    inputs: &[Tensor],
    g: &Tensor,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<Vec<Tensor>> {
    let vars: Vec<Var> = inputs
        .iter()
        .map(Var::from_tensor)
        .collect::<candle_core::Result<_>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&ts)?;
    let grads = (out.to_dtype(DType::F32)? * g.to_dtype(DType::F32)?)?
        .sum_all()?
        .backward()?;
    let mut r = vec![out];
    for v in &vars {
        r.push(
            grads
                .get(v.as_tensor())
                .cloned()
                .unwrap_or(v.as_tensor().zeros_like()?),
        );
    }
    Ok(r)
}

fn compare(
    checks: &mut Vec<Check>,
    name: &str,
    fused: &[Tensor],
    want: &[Tensor],
    tol: f64,
) -> Result<()> {
    let parts = ["out", "d1", "d2", "d3"];
    for (i, (a, b)) in fused.iter().zip(want).enumerate() {
        checks.push(Check {
            name: format!("{name} {}", parts[i.min(3)]),
            err: rel_err(a, b)?,
            tol,
        });
    }
    Ok(())
}

pub fn run(a: &BenchKernelsArgs) -> Result<()> {
    let dev = model::device::parse_device(&a.device).map_err(anyhow::Error::msg)?;
    let mut checks = Vec::new();
    let (rows, n) = if a.small { (8, 200) } else { (300, 768) };
    for dt in [DType::F32, DType::BF16] {
        let tag = if dt == DType::F32 { "f32" } else { "bf16" };
        let tol = if dt == DType::F32 { 1e-4 } else { 3e-2 };
        let x = randn(&[rows, n], 1, 2.0, &dev)?.to_dtype(dt)?;
        let g = randn(&[rows, n], 2, 1.0, &dev)?.to_dtype(dt)?;
        let fused = with_grads(std::slice::from_ref(&x), &g, |t| Ok(ops::gelu_erf(&t[0])?))?;
        let want = with_grads(std::slice::from_ref(&x), &g, |t| {
            Ok(reference::gelu_erf(&t[0])?)
        })?;
        compare(&mut checks, &format!("gelu {tag}"), &fused, &want, tol)?;

        let w = randn(&[n], 3, 1.0, &dev)?.to_dtype(dt)?;
        let b = randn(&[n], 4, 1.0, &dev)?.to_dtype(dt)?;
        let inputs = [x.clone(), w, b];
        let fused = with_grads(&inputs, &g, |t| {
            Ok(ops::layer_norm(&t[0], &t[1], &t[2], 1e-12)?)
        })?;
        let want = with_grads(&inputs, &g, |t| {
            Ok(reference::layer_norm(&t[0], &t[1], &t[2], 1e-12)?)
        })?;
        // dw and db sum over every row: bf16's rounding of a long sum.
        compare(
            &mut checks,
            &format!("layer_norm {tag}"),
            &fused,
            &want,
            tol,
        )?;

        let fused = with_grads(std::slice::from_ref(&x), &g, |t| {
            Ok(ops::dropout(&t[0], 0.1, 42)?)
        })?;
        let want = with_grads(std::slice::from_ref(&x), &g, |t| {
            Ok(reference::dropout(&t[0], 0.1, 42)?)
        })?;
        compare(&mut checks, &format!("dropout {tag}"), &fused, &want, 0.0)?;

        // Attention: right padding, a hole, a whole padded row; with and without bias and
        // dropout; head sizes 32 and 64.
        let (bsz, len) = if a.small { (2, 70) } else { (8, 128) };
        for (dh, heads, bias, drop) in [(32, 12, false, None), (64, 12, true, Some((0.1, 7u64)))] {
            let h = dh * heads;
            let mut m = vec![1f32; bsz * len];
            m[len - 20..len].fill(0.0);
            m[len + 3] = 0.0;
            if bsz > 2 {
                for v in &mut m[2 * len..3 * len] {
                    *v = 0.0;
                }
            }
            let mask = Tensor::from_vec(m, (bsz, len), &Device::Cpu)?.to_device(&dev)?;
            let bias_t = bias
                .then(|| randn(&[heads, len, len], 5, 0.5, &dev))
                .transpose()?;
            let q = randn(&[bsz, len, h], 6, 1.0, &dev)?.to_dtype(dt)?;
            let k = randn(&[bsz, len, h], 7, 1.0, &dev)?.to_dtype(dt)?;
            let v = randn(&[bsz, len, h], 8, 1.0, &dev)?.to_dtype(dt)?;
            let ga = randn(&[bsz, len, h], 9, 1.0, &dev)?.to_dtype(dt)?;
            let spec = AttentionSpec {
                mask: &mask,
                heads,
                scale: 1.0 / (dh as f64).sqrt(),
                bias: bias_t.as_ref(),
                dropout: drop,
                packing: None,
                window: None,
            };
            let inputs = [q, k, v];
            let fused = with_grads(&inputs, &ga, |t| {
                Ok(ops::attention(&t[0], &t[1], &t[2], &spec)?)
            })?;
            let want = with_grads(&inputs, &ga, |t| {
                Ok(reference::attention(&t[0], &t[1], &t[2], &spec)?)
            })?;
            let name = format!(
                "attention {tag} d{dh}{}{}",
                if bias { " bias" } else { "" },
                if drop.is_some() { " dropout" } else { "" }
            );
            compare(
                &mut checks,
                &name,
                &fused,
                &want,
                if dt == DType::F32 { 1e-4 } else { 5e-2 },
            )?;
        }
    }
    checks.extend(adamw_check(&dev, a.small)?);

    let mut failed = 0;
    for c in &checks {
        let ok = c.err <= c.tol;
        failed += !ok as usize;
        println!(
            "{:<44} max rel. error {:.2e} (bar {:.0e}) {}",
            c.name,
            c.err,
            c.tol,
            if ok { "ok" } else { "FAILED" }
        );
    }
    if a.json {
        let v: Vec<_> = checks
            .iter()
            .map(|c| serde_json::json!({"check": c.name, "max_rel_err": c.err, "tol": c.tol, "ok": c.err <= c.tol}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"device": a.device, "checks": v, "failed": failed})
        );
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} kernel checks failed", checks.len());
    }
    Ok(())
}

/// Three AdamW steps with clipping on `dev` (one launch per step on a GPU) against the same steps
/// on the CPU: the parameters must match bit for bit, and the norms to f64 rounding.
fn adamw_check(dev: &Device, small: bool) -> Result<Vec<Check>> {
    use train::optim::{AdamW, AdamWConfig, GradNorm};
    let sizes = if small {
        [5000, 300, 4096]
    } else {
        [500_000, 768, 1 << 20]
    };
    let names = ["l.weight", "l.bias", "e.weight"];
    let make = |d: &Device| -> Result<AdamW> {
        let vars = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                Ok((
                    names[i].to_string(),
                    Var::from_tensor(&randn(&[n], 20 + i as u64, 0.1, d)?)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW::new(vars, AdamWConfig::default())?)
    };
    let (mut here, mut cpu) = (make(dev)?, make(&Device::Cpu)?);
    let mut checks = Vec::new();
    for step in 0..3u64 {
        let scale = if step < 2 { 5.0 } else { 1e-3 };
        let grads = |d: &Device| -> Result<Vec<Option<Tensor>>> {
            sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    (i != 1)
                        .then(|| randn(&[n], 40 + step * 3 + i as u64, scale, d))
                        .transpose()
                })
                .collect()
        };
        let (mut g1, mut g2) = (grads(dev)?, grads(&Device::Cpu)?);
        let n1 = match here.clip_and_step(&mut g1, 1e-3, 1.0)? {
            GradNorm::Host(n) => n,
            GradNorm::Device(t) => t.to_dtype(DType::F64)?.to_vec1::<f64>()?[0],
        };
        let n2 = match cpu.clip_and_step(&mut g2, 1e-3, 1.0)? {
            GradNorm::Host(n) => n,
            GradNorm::Device(_) => unreachable!("CPU tensors"),
        };
        checks.push(Check {
            name: format!("adamw step {step} norm"),
            err: (n1 - n2).abs() / n2.max(1.0),
            tol: 1e-12,
        });
        let mut worst = 0f64;
        for ((_, a), (_, b)) in here.vars.iter().zip(&cpu.vars) {
            let a = a.as_tensor().to_device(&Device::Cpu)?.to_vec1::<f32>()?;
            let b = b.as_tensor().to_vec1::<f32>()?;
            if a.iter().zip(&b).any(|(x, y)| x.to_bits() != y.to_bits()) {
                worst = worst.max(
                    a.iter()
                        .zip(&b)
                        .map(|(x, y)| (x - y).abs() as f64)
                        .fold(0.0, f64::max)
                        .max(1e-300),
                );
            }
        }
        checks.push(Check {
            name: format!("adamw step {step} parameters (bits)"),
            err: worst,
            tol: 0.0,
        });
    }
    Ok(checks)
}
