//! Every encoder is trainable: gradients reach every parameter and agree with finite
//! differences (in f64, on a tiny random config of each architecture, dropout on with a fixed
//! mask).

use candle_core::{DType, Device, Tensor};
use model::pooling::{l2_normalize, pad_batch};
use model::{build_encoder, Dropout, Encoder, ModelConfig, ParamSource, Pooling};
use test_support::{check_gradients, spread};

const ARCHITECTURES: [&str; 4] = ["bert", "mpnet", "roberta", "distilbert"];

fn tiny(arch: &str, dtype: DType) -> Box<dyn Encoder> {
    let mut cfg = ModelConfig::bert(8, 2, 2, 16);
    cfg.model_type = arch.to_string();
    cfg.vocab_size = 40;
    cfg.max_position_embeddings = 12;
    if arch == "roberta" {
        cfg.pad_token_id = 1;
        cfg.type_vocab_size = 1;
    }
    if arch == "mpnet" {
        cfg.pad_token_id = 1;
        cfg.layer_norm_eps = 1e-5;
        // Few buckets so that the 7-token batch reaches several of them.
        cfg.relative_attention_num_buckets = 8;
    }
    // Larger than BERT's 0.02 so that every path carries a gradient well above rounding noise.
    build_encoder(&cfg, ParamSource::random(11, 0.5, dtype, &Device::Cpu)).unwrap()
}

/// A scalar that depends on every token: mean-pooled, normalised embeddings of a padded batch,
/// projected on a fixed direction.
fn loss(enc: &dyn Encoder, dtype: DType) -> candle_core::Result<Tensor> {
    let rows: [&[u32]; 3] = [&[3, 5, 9, 33, 2], &[3, 7, 2], &[3, 39, 12, 4, 17, 2, 6]];
    let pad = enc.config().pad_token_id;
    let (ids, mask) = pad_batch(&rows, pad, 1, &Device::Cpu).unwrap();
    let mut dropout = Dropout::new(3);
    let tokens = enc.forward(&ids, &mask, Some(&mut dropout)).unwrap();
    let emb = l2_normalize(&Pooling::Mean.apply(&tokens, &mask).unwrap()).unwrap();
    let dir: Vec<f64> = (0..8).map(|i| ((i * 7 % 5) as f64) - 2.0).collect();
    let dir = Tensor::new(dir.as_slice(), &Device::Cpu)?.to_dtype(dtype)?;
    (emb.broadcast_mul(&dir)?.sum_all()? * 3.0)?.sqr()
}

#[test]
fn every_parameter_receives_a_gradient() {
    for arch in ARCHITECTURES {
        every_parameter_receives_a_gradient_in(arch);
    }
}

fn every_parameter_receives_a_gradient_in(arch: &str) {
    let mut enc = tiny(arch, DType::F32);
    let vars = enc.params_mut().make_trainable().unwrap();
    let grads = loss(enc.as_ref(), DType::F32).unwrap().backward().unwrap();
    // The pooler is not part of a sentence embedding and is not trainable.
    assert!(vars.iter().all(|(n, _)| !n.starts_with("pooler.")));
    let want = match arch {
        "mpnet" => 4 + 2 * 16 + 1,
        "distilbert" => 4 + 2 * 16,
        _ => 5 + 2 * 16,
    };
    assert_eq!(vars.len(), want, "{arch}");
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
        if name.ends_with("attention.self.key.bias")
            || name.ends_with("attention.attn.k.bias")
            || name.ends_with("attention.k_lin.bias")
        {
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
    for arch in ARCHITECTURES {
        gradients_match_finite_differences_in(arch);
    }
}

fn gradients_match_finite_differences_in(arch: &str) {
    let mut enc = tiny(arch, DType::F64);
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
