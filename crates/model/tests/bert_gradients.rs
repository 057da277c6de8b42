//! The BERT encoder is trainable: gradients reach every parameter and agree with finite
//! differences (in f64, on a tiny random config, dropout on with a fixed mask).

use candle_core::{DType, Device, Tensor};
use model::pooling::{l2_normalize, pad_batch};
use model::testing::{check_gradients, spread};
use model::{build_encoder, Dropout, Encoder, ModelConfig, ParamSource, Pooling};

fn tiny(dtype: DType) -> Box<dyn Encoder> {
    let mut cfg = ModelConfig::bert(8, 2, 2, 16);
    cfg.vocab_size = 40;
    cfg.max_position_embeddings = 12;
    // Larger than BERT's 0.02 so that every path carries a gradient well above rounding noise.
    build_encoder(&cfg, ParamSource::random(11, 0.5, dtype, &Device::Cpu)).unwrap()
}

/// A scalar that depends on every token: mean-pooled, normalised embeddings of a padded batch,
/// projected on a fixed direction.
fn loss(enc: &dyn Encoder, dtype: DType) -> candle_core::Result<Tensor> {
    let rows: [&[u32]; 3] = [&[1, 5, 9, 33, 2], &[1, 7, 2], &[1, 39, 12, 4, 17, 2, 0]];
    let (ids, mask) = pad_batch(&rows, 0, 1, &Device::Cpu).unwrap();
    let mut dropout = Dropout::new(3);
    let tokens = enc.forward(&ids, &mask, Some(&mut dropout)).unwrap();
    let emb = l2_normalize(&Pooling::Mean.apply(&tokens, &mask).unwrap()).unwrap();
    let dir: Vec<f64> = (0..8).map(|i| ((i * 7 % 5) as f64) - 2.0).collect();
    let dir = Tensor::new(dir.as_slice(), &Device::Cpu)?.to_dtype(dtype)?;
    (emb.broadcast_mul(&dir)?.sum_all()? * 3.0)?.sqr()
}

#[test]
fn every_parameter_receives_a_gradient() {
    let mut enc = tiny(DType::F32);
    let vars = enc.params_mut().make_trainable().unwrap();
    let grads = loss(enc.as_ref(), DType::F32).unwrap().backward().unwrap();
    // The pooler is not part of a sentence embedding and is not trainable.
    assert!(vars.iter().all(|(n, _)| !n.starts_with("pooler.")));
    assert_eq!(vars.len(), 5 + 2 * 16);
    let norm = |t: &Tensor| {
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .sqrt()
    };
    let norms: Vec<f32> = vars
        .iter()
        .map(|(name, var)| {
            norm(
                grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("{name}: no gradient")),
            )
        })
        .collect();
    let largest = norms.iter().copied().fold(0f32, f32::max);
    for ((name, _), n) in vars.iter().zip(norms) {
        if name.ends_with("attention.self.key.bias") {
            // Adding a constant to every key score of a query leaves the softmax unchanged: this
            // gradient is zero in exact arithmetic and rounding noise in floats.
            assert!(n < 1e-5 * largest, "{name}: {n} (largest {largest})");
        } else {
            assert!(
                n > 1e-4 * largest,
                "{name}: gradient norm {n} (largest {largest})"
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let mut enc = tiny(DType::F64);
    let vars = enc.params_mut().make_trainable().unwrap();
    let pick = |name: &str, n: usize| -> Vec<usize> {
        if name.contains("word_embeddings") {
            // Only rows of tokens in the batch have a gradient: probe two of them.
            (8 * 5..8 * 6).chain(8 * 39..8 * 40).step_by(2).collect()
        } else {
            spread(n, 8)
        }
    };
    check_gradients(&vars, pick, || loss(enc.as_ref(), DType::F64));
}
