//! Every CUDA kernel of crates/model/src/ops/cuda, run by the CPU harness, against its composed
//! reference (model::ops::reference, gradients through candle's autograd): forward and every input
//! gradient, f32 and bf16, random inputs, outputs filled with NaN before each run, padding masks
//! with holes and whole padded rows, MPNet's bias, dropout, and every harness schedule. Dropout
//! masks and the AdamW update must equal the CPU's bit for bit.

use candle_core::{Device, Tensor, Var};
use cuda_cpu::{result, sys, AdamwTensor, Launch, Schedule, ADAMW_CHUNK, ATT_TILE, SCHEDULES};
use half::bf16;
use model::ops::{reference, AttentionSpec};
use model::rng::Rng;

fn randn(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.normal() as f32 * scale).collect()
}

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

fn vec_of(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// The largest |a − b| relative to max(1, |b|), with NaN counted as a failure.
fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let e = (x - y).abs() / y.abs().max(1.0);
        assert!(e <= tol, "{what}: element {i}: {x} vs {y}");
    }
}

fn to_bf16(v: &[f32]) -> Vec<bf16> {
    v.iter().map(|&x| bf16::from_f32(x)).collect()
}

fn from_bf16(v: &[bf16]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

fn rounded(v: &[f32]) -> Vec<f32> {
    from_bf16(&to_bf16(v))
}

#[test]
fn gelu_forward_and_backward() {
    let n = 3000;
    let x = randn(n, 1, 3.0);
    let g = randn(n, 2, 1.0);
    let xv = Var::from_tensor(&t(&x, &[n])).unwrap();
    let y = reference::gelu_erf(xv.as_tensor()).unwrap();
    let want = vec_of(&y);
    let grads = (&y * t(&g, &[n]))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let want_dx = vec_of(grads.get(xv.as_tensor()).unwrap());
    for s in SCHEDULES {
        // A grid smaller than the data: the grid-stride loop covers the rest.
        let l = Launch::linear(3, 256, 0, s);
        let mut y = vec![f32::NAN; n];
        let mut dx = vec![f32::NAN; n];
        unsafe {
            result(sys::cucpu_gelu_fwd_f32(
                &l,
                y.as_mut_ptr(),
                x.as_ptr(),
                n as u64,
            ))
            .unwrap();
            result(sys::cucpu_gelu_bwd_f32(
                &l,
                dx.as_mut_ptr(),
                x.as_ptr(),
                g.as_ptr(),
                n as u64,
            ))
            .unwrap();
        }
        close(&y, &want, 1e-6, "gelu f32");
        close(&dx, &want_dx, 1e-6, "gelu backward f32");
        let (xb, gb) = (to_bf16(&x), to_bf16(&g));
        let mut yb = vec![bf16::NAN; n];
        let mut dxb = vec![bf16::NAN; n];
        unsafe {
            result(sys::cucpu_gelu_fwd_bf16(
                &l,
                yb.as_mut_ptr(),
                xb.as_ptr(),
                n as u64,
            ))
            .unwrap();
            result(sys::cucpu_gelu_bwd_bf16(
                &l,
                dxb.as_mut_ptr(),
                xb.as_ptr(),
                gb.as_ptr(),
                n as u64,
            ))
            .unwrap();
        }
        // bf16 in and out, f32 inside: within one bf16 rounding of the reference on those inputs.
        let xr = Var::from_tensor(&t(&rounded(&x), &[n])).unwrap();
        let y = reference::gelu_erf(xr.as_tensor()).unwrap();
        close(&from_bf16(&yb), &vec_of(&y), 1.0 / 128.0, "gelu bf16");
        let grads = (&y * t(&rounded(&g), &[n]))
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        close(
            &from_bf16(&dxb),
            &vec_of(grads.get(xr.as_tensor()).unwrap()),
            1.0 / 128.0,
            "gelu backward bf16",
        );
    }
}

#[test]
fn dropout_masks_are_the_cpus_bit_for_bit() {
    let (n, p, seed) = (5000, 0.1, 77u64);
    let keep = (1.0 / (1.0 - p)) as f32;
    let want = vec_of(
        &model::ops::dropout::mask_tensor(seed, p, &candle_core::Shape::from(n), &Device::Cpu)
            .unwrap(),
    );
    let x = randn(n, 3, 1.0);
    let fused = vec_of(&model::ops::dropout(&t(&x, &[n]), p, seed).unwrap());
    for s in SCHEDULES {
        let l = Launch::linear(4, 128, 0, s);
        let mut m = vec![f32::NAN; n];
        let mut y = vec![f32::NAN; n];
        unsafe {
            result(sys::cucpu_dropout_mask(
                &l,
                m.as_mut_ptr(),
                n as u64,
                p as f32,
                keep,
                seed,
            ))
            .unwrap();
            result(sys::cucpu_dropout_f32(
                &l,
                y.as_mut_ptr(),
                x.as_ptr(),
                n as u64,
                p as f32,
                keep,
                seed,
            ))
            .unwrap();
        }
        assert_eq!(
            m.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(
            y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            fused.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}

/// LayerNorm (rows × n) through the kernels: y, then dx, dw, db for the upstream gradient g.
#[allow(clippy::type_complexity)]
fn layer_norm_kernels(
    (x, w, b, g): (&[f32], &[f32], &[f32], &[f32]),
    rows: usize,
    n: usize,
    blocks: u32,
    s: Schedule,
    bf: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let eps = 1e-12f32;
    let l = Launch::linear(blocks, 128, 32 * 4, s);
    let mut part = vec![f32::NAN; blocks as usize * 2 * n];
    let sums = Launch::linear(2, 64, 0, s);
    let (ri, ni, pi) = (rows as i32, n as i32, blocks as i32);
    if !bf {
        let (mut y, mut dx) = (vec![f32::NAN; rows * n], vec![f32::NAN; rows * n]);
        let (mut dw, mut db) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        unsafe {
            let (xp, wp, bp, gp) = (x.as_ptr(), w.as_ptr(), b.as_ptr(), g.as_ptr());
            result(sys::cucpu_layer_norm_fwd_f32(
                &l,
                y.as_mut_ptr(),
                xp,
                wp,
                bp,
                ri,
                ni,
                eps,
            ))
            .unwrap();
            result(sys::cucpu_layer_norm_bwd_f32(
                &l,
                dx.as_mut_ptr(),
                part.as_mut_ptr(),
                xp,
                wp,
                gp,
                ri,
                ni,
                eps,
            ))
            .unwrap();
            let stride = 2 * ni;
            result(sys::cucpu_column_sums_f32(
                &sums,
                dw.as_mut_ptr(),
                part.as_ptr(),
                pi,
                ni,
                stride,
            ))
            .unwrap();
            result(sys::cucpu_column_sums_f32(
                &sums,
                db.as_mut_ptr(),
                part.as_ptr().add(n),
                pi,
                ni,
                stride,
            ))
            .unwrap();
        }
        return (y, dx, dw, db);
    }
    let (xb, wb, bb, gb) = (to_bf16(x), to_bf16(w), to_bf16(b), to_bf16(g));
    let (mut y, mut dx) = (vec![bf16::NAN; rows * n], vec![bf16::NAN; rows * n]);
    let (mut dw, mut db) = (vec![bf16::NAN; n], vec![bf16::NAN; n]);
    unsafe {
        let (xp, wp, bp, gp) = (xb.as_ptr(), wb.as_ptr(), bb.as_ptr(), gb.as_ptr());
        result(sys::cucpu_layer_norm_fwd_bf16(
            &l,
            y.as_mut_ptr(),
            xp,
            wp,
            bp,
            ri,
            ni,
            eps,
        ))
        .unwrap();
        result(sys::cucpu_layer_norm_bwd_bf16(
            &l,
            dx.as_mut_ptr(),
            part.as_mut_ptr(),
            xp,
            wp,
            gp,
            ri,
            ni,
            eps,
        ))
        .unwrap();
        let stride = 2 * ni;
        result(sys::cucpu_column_sums_bf16(
            &sums,
            dw.as_mut_ptr(),
            part.as_ptr(),
            pi,
            ni,
            stride,
        ))
        .unwrap();
        result(sys::cucpu_column_sums_bf16(
            &sums,
            db.as_mut_ptr(),
            part.as_ptr().add(n),
            pi,
            ni,
            stride,
        ))
        .unwrap();
    }
    (
        from_bf16(&y),
        from_bf16(&dx),
        from_bf16(&dw),
        from_bf16(&db),
    )
}

#[test]
fn layer_norm_forward_and_every_gradient() {
    // n not a multiple of the block; more rows than blocks (each block loops).
    for (rows, n, blocks) in [(37, 384, 5), (9, 200, 9), (4, 1100, 2)] {
        let x = randn(rows * n, 4, 2.0);
        let w = randn(n, 5, 1.0);
        let b = randn(n, 6, 1.0);
        let g = randn(rows * n, 7, 1.0);
        for bf in [false, true] {
            let (x, w, b, g) = if bf {
                (rounded(&x), rounded(&w), rounded(&b), rounded(&g))
            } else {
                (x.clone(), w.clone(), b.clone(), g.clone())
            };
            let (xv, wv, bv) = (
                Var::from_tensor(&t(&x, &[rows, n])).unwrap(),
                Var::from_tensor(&t(&w, &[n])).unwrap(),
                Var::from_tensor(&t(&b, &[n])).unwrap(),
            );
            let y = reference::layer_norm(xv.as_tensor(), wv.as_tensor(), bv.as_tensor(), 1e-12)
                .unwrap();
            let grads = (&y * t(&g, &[rows, n]))
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let want = [
                vec_of(&y),
                vec_of(grads.get(xv.as_tensor()).unwrap()),
                vec_of(grads.get(wv.as_tensor()).unwrap()),
                vec_of(grads.get(bv.as_tensor()).unwrap()),
            ];
            for s in SCHEDULES {
                let (y, dx, dw, db) = layer_norm_kernels((&x, &w, &b, &g), rows, n, blocks, s, bf);
                let tol = if bf { 1.0 / 64.0 } else { 2e-5 };
                let what = format!("{rows}x{n} bf16={bf} {s:?}");
                close(&y, &want[0], tol, &format!("{what} y"));
                close(&dx, &want[1], tol, &format!("{what} dx"));
                // Sums over rows: bf16's output rounding on a sum of many terms.
                close(
                    &dw,
                    &want[2],
                    if bf { 1.0 / 64.0 } else { 1e-4 },
                    &format!("{what} dw"),
                );
                close(
                    &db,
                    &want[3],
                    if bf { 1.0 / 64.0 } else { 1e-4 },
                    &format!("{what} db"),
                );
            }
        }
    }
}

struct AttnCase {
    b: usize,
    l: usize,
    heads: usize,
    dh: usize,
    mask: Vec<f32>,
    bias: Option<Vec<f32>>,
    dropout: Option<(f64, u64)>,
}

/// (out, dq, dk, dv) through the kernels for upstream gradient g.
fn attention_kernels(
    c: &AttnCase,
    (q, k, v, g): (&[f32], &[f32], &[f32], &[f32]),
    s: Schedule,
    bf: bool,
) -> [Vec<f32>; 4] {
    let h = c.heads * c.dh;
    let n = c.b * c.l * h;
    let rows = c.b * c.heads * c.l;
    let grid = [
        c.l.div_ceil(ATT_TILE as usize) as u32,
        c.heads as u32,
        c.b as u32,
    ];
    let tile = ATT_TILE as usize;
    let fwd_smem = (2 * tile * c.dh + tile) * 4 + 4;
    let dkv_smem = (2 * tile * c.dh + 2 * tile) * 4 + 4;
    let lf = Launch::new(grid, [ATT_TILE, 1, 1], fwd_smem, s);
    let lk = Launch::new(grid, [ATT_TILE, 1, 1], dkv_smem, s);
    let scale = 1.0 / (c.dh as f32).sqrt();
    let (p, seed, on) = match c.dropout {
        Some((p, seed)) => (p as f32, seed, 1),
        None => (0.0, 0, 0),
    };
    let keep = c.dropout.map_or(1.0, |(p, _)| (1.0 / (1.0 - p)) as f32);
    let bias = c.bias.as_ref().map_or(std::ptr::null(), |b| b.as_ptr());
    let (bi, li, hi, nh) = (c.b as i32, c.l as i32, h as i32, c.heads as i32);
    let mut lse = vec![f32::NAN; rows];
    let mut dsum = vec![f32::NAN; rows];
    macro_rules! run {
        ($fwd:ident, $dq:ident, $dkv:ident, $q:expr, $k:expr, $v:expr, $g:expr, $nan:expr) => {{
            let (mut out, mut dq, mut dk, mut dv) =
                (vec![$nan; n], vec![$nan; n], vec![$nan; n], vec![$nan; n]);
            unsafe {
                result(sys::$fwd(
                    &lf,
                    out.as_mut_ptr(),
                    lse.as_mut_ptr(),
                    $q.as_ptr(),
                    $k.as_ptr(),
                    $v.as_ptr(),
                    bi,
                    li,
                    hi,
                    nh,
                    scale,
                    c.mask.as_ptr(),
                    bias,
                    p,
                    keep,
                    seed,
                    on,
                ))
                .unwrap();
                result(sys::$dq(
                    &lf,
                    dq.as_mut_ptr(),
                    dsum.as_mut_ptr(),
                    $q.as_ptr(),
                    $k.as_ptr(),
                    $v.as_ptr(),
                    out.as_ptr(),
                    $g.as_ptr(),
                    lse.as_ptr(),
                    bi,
                    li,
                    hi,
                    nh,
                    scale,
                    c.mask.as_ptr(),
                    bias,
                    p,
                    keep,
                    seed,
                    on,
                ))
                .unwrap();
                result(sys::$dkv(
                    &lk,
                    dk.as_mut_ptr(),
                    dv.as_mut_ptr(),
                    $q.as_ptr(),
                    $k.as_ptr(),
                    $v.as_ptr(),
                    $g.as_ptr(),
                    lse.as_ptr(),
                    dsum.as_ptr(),
                    bi,
                    li,
                    hi,
                    nh,
                    scale,
                    c.mask.as_ptr(),
                    bias,
                    p,
                    keep,
                    seed,
                    on,
                ))
                .unwrap();
            }
            [out, dq, dk, dv]
        }};
    }
    if bf {
        let (qb, kb, vb, gb) = (to_bf16(q), to_bf16(k), to_bf16(v), to_bf16(g));
        let r = match c.dh {
            32 => run!(
                cucpu_attention_fwd_bf16_d32,
                cucpu_attention_bwd_dq_bf16_d32,
                cucpu_attention_bwd_dkv_bf16_d32,
                qb,
                kb,
                vb,
                gb,
                bf16::NAN
            ),
            _ => run!(
                cucpu_attention_fwd_bf16_d64,
                cucpu_attention_bwd_dq_bf16_d64,
                cucpu_attention_bwd_dkv_bf16_d64,
                qb,
                kb,
                vb,
                gb,
                bf16::NAN
            ),
        };
        return r.map(|x| from_bf16(&x));
    }
    match c.dh {
        32 => run!(
            cucpu_attention_fwd_f32_d32,
            cucpu_attention_bwd_dq_f32_d32,
            cucpu_attention_bwd_dkv_f32_d32,
            q,
            k,
            v,
            g,
            f32::NAN
        ),
        _ => run!(
            cucpu_attention_fwd_f32_d64,
            cucpu_attention_bwd_dq_f32_d64,
            cucpu_attention_bwd_dkv_f32_d64,
            q,
            k,
            v,
            g,
            f32::NAN
        ),
    }
}

fn attention_reference(
    c: &AttnCase,
    (q, k, v, g): (&[f32], &[f32], &[f32], &[f32]),
) -> [Vec<f32>; 4] {
    let h = c.heads * c.dh;
    let shape = [c.b, c.l, h];
    let (qv, kv, vv) = (
        Var::from_tensor(&t(q, &shape)).unwrap(),
        Var::from_tensor(&t(k, &shape)).unwrap(),
        Var::from_tensor(&t(v, &shape)).unwrap(),
    );
    let mask = t(&c.mask, &[c.b, c.l]);
    let bias = c.bias.as_ref().map(|b| t(b, &[c.heads, c.l, c.l]));
    let spec = AttentionSpec {
        mask: &mask,
        heads: c.heads,
        scale: 1.0 / (c.dh as f64).sqrt(),
        bias: bias.as_ref(),
        dropout: c.dropout,
        packing: None,
        window: None,
    };
    let out = reference::attention(qv.as_tensor(), kv.as_tensor(), vv.as_tensor(), &spec).unwrap();
    let grads = (&out * t(g, &shape))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    [
        vec_of(&out),
        vec_of(grads.get(qv.as_tensor()).unwrap()),
        vec_of(grads.get(kv.as_tensor()).unwrap()),
        vec_of(grads.get(vv.as_tensor()).unwrap()),
    ]
}

#[test]
fn attention_forward_and_every_gradient() {
    // Lengths across tiles of 64 and not multiples of them; right padding, holes, and a batch
    // element that is all padding; MPNet's bias; dropout; head dims 32 and 64.
    let l = 70;
    let mut holes = vec![1f32; 3 * l];
    for j in [3usize, 40, 66] {
        holes[j] = 0.0;
    }
    for j in 50..l {
        holes[l + j] = 0.0;
    }
    for j in 0..l {
        holes[2 * l + j] = 0.0;
    }
    let cases = [
        AttnCase {
            b: 2,
            l: 20,
            heads: 2,
            dh: 32,
            mask: vec![1.0; 40],
            bias: None,
            dropout: None,
        },
        AttnCase {
            b: 3,
            l,
            heads: 2,
            dh: 64,
            mask: holes.clone(),
            bias: None,
            dropout: None,
        },
        AttnCase {
            b: 3,
            l,
            heads: 2,
            dh: 32,
            mask: holes.clone(),
            bias: Some(randn(2 * l * l, 9, 0.5)),
            dropout: Some((0.1, 1234)),
        },
        AttnCase {
            b: 1,
            l: 130,
            heads: 1,
            dh: 64,
            mask: vec![1.0; 130],
            bias: None,
            dropout: Some((0.2, 99)),
        },
    ];
    for (ci, c) in cases.iter().enumerate() {
        let n = c.b * c.l * c.heads * c.dh;
        let (q, k, v, g) = (
            randn(n, 11, 1.0),
            randn(n, 12, 1.0),
            randn(n, 13, 1.0),
            randn(n, 14, 1.0),
        );
        for bf in [false, true] {
            let (q, k, v, g) = if bf {
                (rounded(&q), rounded(&k), rounded(&v), rounded(&g))
            } else {
                (q.clone(), k.clone(), v.clone(), g.clone())
            };
            let want = attention_reference(c, (&q, &k, &v, &g));
            let schedules: &[Schedule] = if ci == 3 { &SCHEDULES[..2] } else { &SCHEDULES };
            for &s in schedules {
                let got = attention_kernels(c, (&q, &k, &v, &g), s, bf);
                let tol = if bf { 1.0 / 32.0 } else { 2e-5 };
                for (i, name) in ["out", "dq", "dk", "dv"].iter().enumerate() {
                    close(
                        &got[i],
                        &want[i],
                        tol,
                        &format!("case {ci} bf16={bf} {s:?} {name}"),
                    );
                }
            }
        }
    }
}

#[test]
fn adamw_and_the_gradient_norm_equal_the_cpu_bit_for_bit() {
    use train::optim::{clip_grad_norm, AdamW, AdamWConfig};
    // Three tensors, one without decay, one without a gradient, sizes across chunks.
    let shapes = [
        (ADAMW_CHUNK as usize * 2 + 5, true),
        (300, false),
        (ADAMW_CHUNK as usize, true),
    ];
    let names = ["a.weight", "a.bias", "c.weight"];
    let mut vars = Vec::new();
    for (i, &(n, _)) in shapes.iter().enumerate() {
        vars.push((
            names[i].to_string(),
            Var::from_tensor(&t(&randn(n, 20 + i as u64, 0.1), &[n])).unwrap(),
        ));
    }
    let cfg = AdamWConfig::default();
    let mut opt = AdamW::new(vars.clone(), cfg.clone()).unwrap();
    // The kernels' copies of p, m, v.
    let mut p: Vec<Vec<f32>> = vars.iter().map(|(_, v)| vec_of(v.as_tensor())).collect();
    let mut m: Vec<Vec<f32>> = shapes.iter().map(|&(n, _)| vec![0f32; n]).collect();
    let mut v: Vec<Vec<f32>> = shapes.iter().map(|&(n, _)| vec![0f32; n]).collect();
    let (chunk_tensor, chunk_start): (Vec<i32>, Vec<u64>) = shapes
        .iter()
        .enumerate()
        .flat_map(|(i, &(n, _))| {
            (0..n as u64)
                .step_by(ADAMW_CHUNK as usize)
                .map(move |s| (i as i32, s))
        })
        .unzip();
    let chunks = chunk_tensor.len() as i32;
    for step in 0..3 {
        let lr = 1e-3 * (step + 1) as f64;
        // Large gradients the first two steps (clipped), small the third (not clipped).
        let scale = if step < 2 { 5.0 } else { 1e-3 };
        let gs: Vec<Option<Vec<f32>>> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(n, _))| (i != 1).then(|| randn(n, 40 + step * 3 + i as u64, scale)))
            .collect();
        let mut grads: Vec<Option<Tensor>> = gs
            .iter()
            .map(|g| g.as_ref().map(|g| t(g, &[g.len()])))
            .collect();
        let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
        opt.step(&grads, lr).unwrap();

        let descs: Vec<AdamwTensor> = (0..3)
            .map(|i| AdamwTensor {
                p: p[i].as_mut_ptr(),
                g: gs[i].as_ref().map_or(std::ptr::null(), |g| g.as_ptr()),
                m: m[i].as_mut_ptr(),
                v: v[i].as_mut_ptr(),
                n: shapes[i].0 as u64,
                decay: shapes[i].1 as i32,
            })
            .collect();
        let k = opt.constants(lr, true);
        let s = SCHEDULES[step as usize % SCHEDULES.len()];
        let mut partial = vec![f64::NAN; chunks as usize];
        let (mut gnorm, mut coef) = (f64::NAN, f32::NAN);
        unsafe {
            let l = Launch::linear(3, 128, 4 * 8, s);
            result(sys::cucpu_grad_sq_sums(
                &l,
                partial.as_mut_ptr(),
                descs.as_ptr(),
                chunk_tensor.as_ptr(),
                chunk_start.as_ptr(),
                chunks,
            ))
            .unwrap();
            let one = Launch::linear(1, 32, 0, s);
            result(sys::cucpu_grad_norm_finish(
                &one,
                &mut gnorm,
                &mut coef,
                partial.as_ptr(),
                chunks,
                1.0,
            ))
            .unwrap();
            result(sys::cucpu_adamw_step(
                &l,
                descs.as_ptr(),
                chunk_tensor.as_ptr(),
                chunk_start.as_ptr(),
                chunks,
                &coef,
                k.keep,
                k.b1w,
                k.b2,
                k.omb2,
                k.bc2_sqrt,
                k.eps,
                k.neg_step,
            ))
            .unwrap();
        }
        // The norm is summed in another order (chunks, not tensors): equal to f64 rounding.
        assert!(
            (gnorm - norm).abs() <= 1e-12 * norm.max(1.0),
            "step {step}: {gnorm} vs {norm}"
        );
        for (i, (_, var)) in vars.iter().enumerate() {
            let want = vec_of(var.as_tensor());
            assert_eq!(
                p[i].iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "step {step} tensor {i}"
            );
        }
    }
}
