//! The fused ops: each against its definition, each against its composed reference in
//! `ops::reference` (forward and backward, in f32 and f64), and their gradients against finite
//! differences.

use candle_core::{DType, Device, Result, Tensor, Var, D};
use model::ops::{
    attention, dropout, geglu, gelu_erf, layer_norm, linear, masked_softmax, reference, rotary,
    softmax_last_dim, swiglu, AttentionSpec, RotaryTables,
};
use model::packing::Packing;

fn spec<'a>(
    mask: &'a Tensor,
    heads: usize,
    scale: f64,
    bias: Option<&'a Tensor>,
    dropout: Option<(f64, u64)>,
) -> AttentionSpec<'a> {
    AttentionSpec {
        mask,
        heads,
        scale,
        bias,
        dropout,
        packing: None,
        window: None,
    }
}
use test_support::{check_gradients, rand_tensor};

#[test]
fn softmax_matches_definition_and_rows_sum_to_one() -> Result<()> {
    let x = rand_tensor(&[3, 5, 7], 1, 3.0, DType::F32)?;
    let y = softmax_last_dim(&x)?;
    let e = x.exp()?;
    let want = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
    let diff = (&y - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-6, "softmax differs by {diff}");
    let sums = y.sum(D::Minus1)?.flatten_all()?.to_vec1::<f32>()?;
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-6));
    Ok(())
}

#[test]
fn gelu_matches_erf_definition() -> Result<()> {
    let x = Tensor::new(&[-3.0f32, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0], &Device::Cpu)?;
    let y = gelu_erf(&x)?.to_vec1::<f32>()?;
    // 0.5·x·(1 + erf(x/√2)) from Python's math.erf.
    let want: [f64; 7] = [
        -0.004_049_694,
        -0.158_655_254,
        -0.154_268_769,
        0.0,
        0.345_731_231,
        0.841_344_746,
        2.995_950_306,
    ];
    for (&a, b) in y.iter().zip(want) {
        assert!((a as f64 - b).abs() < 1e-6, "{a} vs {b}");
    }
    Ok(())
}

#[test]
fn layer_norm_normalises_rows() -> Result<()> {
    let x = rand_tensor(&[4, 16], 2, 5.0, DType::F32)?;
    let w = Tensor::ones(16, DType::F32, &Device::Cpu)?;
    let b = Tensor::zeros(16, DType::F32, &Device::Cpu)?;
    let y = layer_norm(&x, &w, &b, 1e-12)?;
    let mean = y.mean(D::Minus1)?.to_vec1::<f32>()?;
    let var = y.sqr()?.mean(D::Minus1)?.to_vec1::<f32>()?;
    assert!(mean.iter().all(|m| m.abs() < 1e-6));
    assert!(var.iter().all(|v| (v - 1.0).abs() < 1e-5));
    Ok(())
}

#[test]
fn fused_ops_gradients_match_finite_differences() -> Result<()> {
    let f64t = |dims: &[usize], seed, scale| rand_tensor(dims, seed, scale, DType::F64);
    let x = Var::from_tensor(&f64t(&[3, 6], 3, 1.5)?)?;
    let w = Var::from_tensor(&(f64t(&[6], 4, 0.5)? + 1.0)?)?;
    let b = Var::from_tensor(&f64t(&[6], 5, 0.5)?)?;
    // A fixed random projection turns the output into a scalar with a rich gradient.
    let proj = f64t(&[3, 6], 6, 1.0)?;
    let vars = [("x", &x), ("w", &w), ("b", &b)].map(|(n, v)| (n.to_string(), v.clone()));
    check_gradients(
        &vars,
        |_, n| (0..n).collect(),
        || {
            let h = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5)?;
            let h = gelu_erf(&(h * 1.7)?)?;
            let h = softmax_last_dim(&h)?;
            (h * &proj)?.sum_all()
        },
    );
    Ok(())
}

#[test]
fn masked_softmax_equals_adding_the_most_negative_float() -> Result<()> {
    let x = rand_tensor(&[2, 3, 4, 5], 7, 2.0, DType::F32)?;
    let mask = Tensor::new(
        &[[1f32, 1., 1., 0., 0.], [1., 1., 1., 1., 1.]],
        &Device::Cpu,
    )?;
    let got = masked_softmax(&x, &mask, 0.35)?;
    let bias = ((1.0 - &mask)? * f32::MIN as f64)?.reshape((2, 1, 1, 5))?;
    let want = softmax_last_dim(&(&x * 0.35)?.broadcast_add(&bias)?)?;
    let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-7, "{diff}");
    Ok(())
}

/// The fused dropout draws the mask as it multiplies, and again in the backward: the same bits
/// as multiplying by `mask_tensor`, forward and backward, in f32 and f64; about p dropped.
#[test]
fn fused_dropout_matches_the_mask_tensor_bit_for_bit() -> Result<()> {
    let (p, seed) = (0.1, 0x5eed);
    for dtype in [DType::F32, DType::F64] {
        // Several parallel chunks and a ragged end.
        let x = Var::from_tensor(&rand_tensor(&[3, 70_001], 15, 1.0, dtype)?)?;
        let g = rand_tensor(&[3, 70_001], 16, 1.0, dtype)?;
        let run = |f: &dyn Fn(&Tensor) -> Result<Tensor>| -> Result<(Vec<f64>, Vec<f64>)> {
            let y = f(x.as_tensor())?;
            let dx = (&y * &g)?.sum_all()?.backward()?;
            let dx = dx.get(x.as_tensor()).expect("gradient of x").clone();
            let flat = |t: &Tensor| t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>();
            Ok((flat(&y)?, flat(&dx)?))
        };
        let (y, dx) = run(&|x| dropout(x, p, seed))?;
        let (y_ref, dx_ref) = run(&|x| reference::dropout(x, p, seed))?;
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert!(bits(&y) == bits(&y_ref), "{dtype:?}: forward differs");
        assert!(bits(&dx) == bits(&dx_ref), "{dtype:?}: backward differs");
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
        assert!((dropped - p).abs() < 0.005, "{dtype:?}: dropped {dropped}");
    }
    Ok(())
}

#[test]
fn linear_matches_matmul() -> Result<()> {
    let x = rand_tensor(&[2, 3, 5], 8, 1.0, DType::F32)?;
    let w = rand_tensor(&[4, 5], 9, 1.0, DType::F32)?;
    let b = rand_tensor(&[4], 10, 1.0, DType::F32)?;
    let got = linear(&x, &w, &b)?;
    let want = x.broadcast_matmul(&w.t()?)?.broadcast_add(&b)?;
    assert_eq!(got.dims(), &[2, 3, 4]);
    let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-5, "{diff}");
    Ok(())
}

#[test]
fn attention_ops_gradients_match_finite_differences() -> Result<()> {
    let f64t = |dims: &[usize], seed, scale| rand_tensor(dims, seed, scale, DType::F64);
    let x = Var::from_tensor(&f64t(&[2, 3, 4], 11, 1.0)?)?;
    let w = Var::from_tensor(&f64t(&[4, 4], 12, 1.0)?)?;
    let b = Var::from_tensor(&f64t(&[4], 13, 1.0)?)?;
    let mask = Tensor::new(&[[1f32, 1., 0., 0.], [1., 1., 1., 1.]], &Device::Cpu)?;
    let proj = f64t(&[2, 3, 4], 14, 1.0)?;
    let vars = [("x", &x), ("w", &w), ("b", &b)].map(|(n, v)| (n.to_string(), v.clone()));
    check_gradients(
        &vars,
        |_, n| (0..n).collect(),
        || {
            let h = linear(x.as_tensor(), w.as_tensor(), b.as_tensor())?;
            let p = masked_softmax(&h.unsqueeze(1)?, &mask, 0.7)?.squeeze(1)?;
            (p * &proj)?.sum_all()
        },
    );
    Ok(())
}

#[test]
fn attention_matches_composed_ops() -> Result<()> {
    let (b, l, h, nh) = (2, 5, 8, 2);
    let q = rand_tensor(&[b, l, h], 15, 1.0, DType::F32)?;
    let k = rand_tensor(&[b, l, h], 16, 1.0, DType::F32)?;
    let v = rand_tensor(&[b, l, h], 17, 1.0, DType::F32)?;
    // Right padding, and a mask with a hole (the general path).
    for mask in [
        [[1f32, 1., 1., 0., 0.], [1., 1., 1., 1., 1.]],
        [[1f32, 0., 1., 1., 0.], [1., 1., 1., 1., 0.]],
    ] {
        let mask = Tensor::new(&mask, &Device::Cpu)?;
        let got = attention(&q, &k, &v, &spec(&mask, nh, 0.5, None, None))?;
        let split = |t: &Tensor| t.reshape((b, l, nh, h / nh))?.transpose(1, 2)?.contiguous();
        let bias = ((1.0 - &mask)? * f32::MIN as f64)?.reshape((b, 1, 1, l))?;
        let s = (split(&q)?.matmul(&split(&k)?.t()?)? * 0.5)?.broadcast_add(&bias)?;
        let want = softmax_last_dim(&s)?
            .matmul(&split(&v)?)?
            .transpose(1, 2)?
            .reshape((b, l, h))?;
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "{diff}");
    }
    Ok(())
}

#[test]
fn attention_gradients_match_finite_differences() -> Result<()> {
    let f64t = |dims: &[usize], seed| rand_tensor(dims, seed, 1.0, DType::F64);
    let q = Var::from_tensor(&f64t(&[2, 4, 6], 18)?)?;
    let k = Var::from_tensor(&f64t(&[2, 4, 6], 19)?)?;
    let v = Var::from_tensor(&f64t(&[2, 4, 6], 20)?)?;
    let mask = Tensor::new(&[[1f32, 1., 1., 0.], [1., 1., 1., 1.]], &Device::Cpu)?;
    let proj = f64t(&[2, 4, 6], 21)?;
    let vars = [("q", &q), ("k", &k), ("v", &v)].map(|(n, t)| (n.to_string(), t.clone()));
    check_gradients(
        &vars,
        |_, n| (0..n).collect(),
        || {
            let s = spec(&mask, 3, 0.6, None, Some((0.3, 99)));
            let o = attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), &s)?;
            (o * &proj)?.sum_all()
        },
    );
    Ok(())
}

/// Largest absolute difference between two tensors of the same shape.
fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Runs `f` (fused) and `g` (reference) on the same variables, with the same random projection
/// of the output as the loss, and checks outputs and every input gradient agree within `tol`.
fn fused_equals_reference(
    name: &str,
    inputs: &[Tensor],
    tol: f64,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    g: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let (yf, yg) = (f(&ts).unwrap(), g(&ts).unwrap());
    let d = max_diff(&yf, &yg);
    assert!(d <= tol, "{name}: forward differs by {d:e}");
    let proj = rand_tensor(yf.dims(), 1234, 1.0, yf.dtype()).unwrap();
    let gf = (yf * &proj).unwrap().sum_all().unwrap().backward().unwrap();
    let gg = (yg * &proj).unwrap().sum_all().unwrap().backward().unwrap();
    for (i, t) in ts.iter().enumerate() {
        let (a, b) = (gf.get(t), gg.get(t));
        match (a, b) {
            (Some(a), Some(b)) => {
                let d = max_diff(a, b);
                assert!(d <= tol, "{name}: gradient of input {i} differs by {d:e}");
            }
            (None, None) => {}
            _ => panic!("{name}: input {i} has a gradient on one path only"),
        }
    }
}

#[test]
fn every_fused_op_equals_its_reference_forward_and_backward() {
    for (dtype, tol) in [(DType::F32, 2e-5), (DType::F64, 1e-12)] {
        let r = |dims: &[usize], seed| rand_tensor(dims, seed, 1.5, dtype).unwrap();
        let tag = |op: &str| format!("{op} ({dtype:?})");
        fused_equals_reference(
            &tag("softmax"),
            &[r(&[3, 4, 9], 1)],
            tol,
            |t| softmax_last_dim(&t[0]),
            |t| reference::softmax_last_dim(&t[0]),
        );
        fused_equals_reference(
            &tag("gelu"),
            &[r(&[5, 33], 2)],
            tol,
            |t| gelu_erf(&t[0]),
            |t| reference::gelu_erf(&t[0]),
        );
        fused_equals_reference(
            &tag("geglu"),
            &[r(&[2, 5, 2 * 12], 21)],
            tol,
            |t| geglu(&t[0]),
            |t| reference::geglu(&t[0]),
        );
        fused_equals_reference(
            &tag("swiglu"),
            &[r(&[2, 5, 12], 23), r(&[2, 5, 12], 24)],
            tol,
            |t| swiglu(&t[0], &t[1]),
            |t| reference::swiglu(&t[0], &t[1]),
        );
        // Rotary tables of 7 positions, 2 heads of 8, as ModernBERT's (any angles will do).
        let angles: Vec<f32> = (0..7 * 8).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let tables = RotaryTables {
            head_dim: 8,
            positions: 7,
            cos: std::sync::Arc::new(angles.iter().map(|a| a.cos()).collect()),
            sin: std::sync::Arc::new(angles.iter().map(|a| a.sin()).collect()),
        };
        fused_equals_reference(
            &tag("rotary"),
            &[r(&[3, 6, 16], 22)],
            tol,
            |t| rotary(&t[0], &tables, 2),
            |t| reference::rotary(&t[0], &tables, 2),
        );
        fused_equals_reference(
            &tag("layer_norm"),
            &[r(&[2, 7, 48], 3), r(&[48], 4), r(&[48], 5)],
            tol,
            |t| layer_norm(&t[0], &t[1], &t[2], 1e-12),
            |t| reference::layer_norm(&t[0], &t[1], &t[2], 1e-12),
        );
        fused_equals_reference(
            &tag("linear"),
            &[r(&[2, 5, 24], 6), r(&[16, 24], 7), r(&[16], 8)],
            tol,
            |t| linear(&t[0], &t[1], &t[2]),
            |t| reference::linear(&t[0], &t[1], &t[2]),
        );
        // Right padding, and a mask with a hole (the kernel's general path).
        for mask in [
            [[1f32, 1., 1., 0., 0., 0.], [1., 1., 1., 1., 1., 1.]],
            [[1f32, 0., 1., 1., 0., 1.], [1., 1., 1., 1., 1., 0.]],
        ] {
            let mask = Tensor::new(&mask, &Device::Cpu).unwrap();
            fused_equals_reference(
                &tag("masked_softmax"),
                &[r(&[2, 3, 6, 6], 9)],
                tol,
                |t| masked_softmax(&t[0], &mask, 0.4),
                |t| reference::masked_softmax(&t[0], &mask, 0.4),
            );
            let qkv = [r(&[2, 6, 8], 10), r(&[2, 6, 8], 11), r(&[2, 6, 8], 12)];
            // The kernel keeps the bias in f32 (a constant table): give it f32 values.
            let bias = r(&[2, 6, 6], 13)
                .to_dtype(DType::F32)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            for (b, drop) in [
                (None, None),
                (None, Some((0.3, 77))),
                (Some(&bias), None),
                (Some(&bias), Some((0.2, 78))),
            ] {
                fused_equals_reference(
                    &tag("attention"),
                    &qkv,
                    tol,
                    |t| attention(&t[0], &t[1], &t[2], &spec(&mask, 2, 0.5, b, drop)),
                    |t| reference::attention(&t[0], &t[1], &t[2], &spec(&mask, 2, 0.5, b, drop)),
                );
            }
        }
        // Packed (unpadded) batches: three sequences of 3, 6 and 1 tokens in 10 rows. The
        // reference is the padded composed op on the batch unpacked, packed again.
        let mask = [
            [1f32, 1., 1., 0., 0., 0.],
            [1.; 6],
            [1., 0., 0., 0., 0., 0.],
        ];
        let mask = Tensor::new(&mask, &Device::Cpu).unwrap();
        let pk = Packing::of_mask(&mask)
            .unwrap()
            .expect("right padding packs");
        assert_eq!(pk.offsets(), [0, 3, 9, 10]);
        let qkv = [r(&[1, 10, 8], 14), r(&[1, 10, 8], 15), r(&[1, 10, 8], 16)];
        let bias = r(&[2, 6, 6], 17)
            .to_dtype(DType::F32)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        for (b, drop, window) in [
            (None, None, None),
            (None, Some((0.3, 79)), None),
            (Some(&bias), Some((0.2, 80)), None),
            (None, Some((0.2, 81)), Some(1)),
        ] {
            let packed = AttentionSpec {
                packing: Some(&pk),
                window,
                ..spec(&mask, 2, 0.5, b, drop)
            };
            let padded_spec = AttentionSpec {
                window,
                ..spec(&mask, 2, 0.5, b, drop)
            };
            fused_equals_reference(
                &tag("packed attention"),
                &qkv,
                tol,
                |t| attention(&t[0], &t[1], &t[2], &packed),
                |t| {
                    let [q, k, v] = [0, 1, 2].map(|i| pk.unpack(&t[i]).unwrap());
                    let padded = reference::attention(&q, &k, &v, &padded_spec)?;
                    pk.pack(&padded)
                },
            );
        }
    }
}

/// Long sequences run in tiles of query rows (the backward sums dK and dV over them), and a
/// local window sees only nearby keys: both against the composed op, whose window is a bias.
#[test]
fn long_and_windowed_attention_equals_the_reference() {
    let (l, h) = (600, 8);
    let mask = Tensor::new(&[[1f32; 600], [1.; 600]], &Device::Cpu).unwrap();
    let mut short = [[1f32; 600]; 2];
    short[0][300..].fill(0.0);
    let short = Tensor::new(&short, &Device::Cpu).unwrap();
    let pk = Packing::of_mask(&short).unwrap().unwrap();
    for (dtype, tol) in [(DType::F32, 2e-5), (DType::F64, 1e-12)] {
        let r = |dims: &[usize], seed| rand_tensor(dims, seed, 1.5, dtype).unwrap();
        let qkv = [r(&[2, l, h], 50), r(&[2, l, h], 51), r(&[2, l, h], 52)];
        let packed_qkv = [
            r(&[1, 900, h], 53),
            r(&[1, 900, h], 54),
            r(&[1, 900, h], 55),
        ];
        for window in [None, Some(64)] {
            let s = AttentionSpec {
                window,
                ..spec(&mask, 2, 0.3, None, Some((0.1, 90)))
            };
            fused_equals_reference(
                &format!("attention over {l} tokens, window {window:?} ({dtype:?})"),
                &qkv,
                tol,
                |t| attention(&t[0], &t[1], &t[2], &s),
                |t| reference::attention(&t[0], &t[1], &t[2], &s),
            );
            let s = AttentionSpec {
                window,
                ..spec(&short, 2, 0.3, None, Some((0.1, 91)))
            };
            let packed = AttentionSpec {
                packing: Some(&pk),
                ..s
            };
            fused_equals_reference(
                &format!("packed attention of 300 + 600 tokens, window {window:?} ({dtype:?})"),
                &packed_qkv,
                tol,
                |t| attention(&t[0], &t[1], &t[2], &packed),
                |t| {
                    let [q, k, v] = [0, 1, 2].map(|i| pk.unpack(&t[i]).unwrap());
                    pk.pack(&reference::attention(&q, &k, &v, &s)?)
                },
            );
        }
    }
}

/// A bias that does not fit the batch, or no heads, is an error naming the shapes, not a panic.
#[test]
fn attention_refuses_a_bias_or_heads_that_do_not_fit() {
    let mask = Tensor::new(&[[1f32, 1., 1., 0.]], &Device::Cpu).unwrap();
    let q = rand_tensor(&[1, 4, 4], 32, 1.0, DType::F32).unwrap();
    let bias = rand_tensor(&[2, 3, 3], 33, 1.0, DType::F32).unwrap();
    let e = attention(&q, &q, &q, &spec(&mask, 2, 0.5, Some(&bias), None)).unwrap_err();
    assert!(e.to_string().contains("bias of Some(18) values"), "{e}");
    let e = attention(&q, &q, &q, &spec(&mask, 0, 0.5, None, None)).unwrap_err();
    assert!(e.to_string().contains("0 heads"), "{e}");
}

/// A packing keeps each real token's row and puts zeros at padding on the way back; batches it
/// would not pay or not apply to (no padding, left padding, an empty row) are not packed.
#[test]
fn packing_gathers_real_tokens_and_unpacks_with_zeros() {
    let mask = Tensor::new(&[[1u32, 1, 0], [1, 1, 1]], &Device::Cpu).unwrap();
    let pk = Packing::of_mask(&mask).unwrap().unwrap();
    assert_eq!((pk.tokens(), pk.positions()), (5, vec![0, 1, 0, 1, 2]));
    let x = Tensor::arange(0f32, 6., &Device::Cpu)
        .unwrap()
        .reshape((2, 3, 1))
        .unwrap();
    let packed = pk.pack(&x).unwrap();
    assert_eq!(
        packed.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        [0., 1., 3., 4., 5.]
    );
    let back = pk.unpack(&packed).unwrap();
    assert_eq!(
        back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        [0., 1., 0., 3., 4., 5.]
    );
    for no in [
        [[1u32, 1, 1], [1, 1, 1]],
        [[0u32, 1, 1], [1, 1, 1]],
        [[1u32, 1, 0], [0, 0, 0]],
    ] {
        let mask = Tensor::new(&no, &Device::Cpu).unwrap();
        assert!(Packing::of_mask(&mask).unwrap().is_none(), "{no:?}");
    }
}

/// A tracked bias (MPNet's trained relative-position table) gets its gradient: the dispatcher
/// sends it through the composed path.
#[test]
fn attention_bias_being_trained_receives_a_gradient() {
    let mask = Tensor::new(&[[1f32, 1., 1., 0.]], &Device::Cpu).unwrap();
    let q = rand_tensor(&[1, 4, 4], 30, 1.0, DType::F32).unwrap();
    let bias = Var::from_tensor(&rand_tensor(&[2, 4, 4], 31, 1.0, DType::F32).unwrap()).unwrap();
    let out = attention(
        &q,
        &q,
        &q,
        &spec(&mask, 2, 0.5, Some(bias.as_tensor()), None),
    )
    .unwrap();
    let grads = out.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(bias.as_tensor()).is_some());
}

/// The reference in bf16 follows autocast: statistics in f32, result in bf16, close to f32.
#[test]
fn reference_ops_in_bf16_stay_close_to_f32() {
    let x = rand_tensor(&[4, 64], 40, 2.0, DType::F32).unwrap();
    let w = rand_tensor(&[64], 41, 1.0, DType::F32).unwrap();
    let b = rand_tensor(&[64], 42, 1.0, DType::F32).unwrap();
    let xb = x.to_dtype(DType::BF16).unwrap();
    let y32 = layer_norm(&x, &w, &b, 1e-12).unwrap();
    let y16 = layer_norm(&xb, &w, &b, 1e-12).unwrap();
    assert_eq!(y16.dtype(), DType::BF16);
    let d = max_diff(&y32, &y16.to_dtype(DType::F32).unwrap());
    assert!(d < 0.1, "bf16 layer_norm differs by {d}");
    let s16 = softmax_last_dim(&xb).unwrap().to_dtype(DType::F32).unwrap();
    let d = max_diff(&softmax_last_dim(&x).unwrap(), &s16);
    assert!(d < 0.01, "bf16 softmax differs by {d}");
}
