//! Packed (unpadded) batches against padded ones, for every architecture: the same token
//! embeddings, pooled embeddings and parameter gradients on a batch of mixed lengths (a few
//! tokens up to over 300, past ModernBERT's 128-token local window).

use candle_core::{DType, Device, Tensor};
use model::pooling::pad_batch;
use model::{build_encoder, Encoder, ModelConfig, ParamSource, Pooling, SentenceModel};
use test_support::{max_abs_diff, repo_root};

/// A random encoder of each architecture, wide enough for several heads; ModernBERT and
/// NomicBERT from their parity folders (rotary; local and global layers).
fn encoders() -> Vec<(String, Box<dyn Encoder>)> {
    let mut out = Vec::new();
    for arch in ["bert", "roberta", "xlm-roberta", "mpnet", "distilbert"] {
        let mut cfg = ModelConfig::bert(32, 2, 4, 64);
        cfg.model_type = arch.into();
        cfg.vocab_size = 200;
        cfg.max_position_embeddings = 520;
        if arch != "bert" && arch != "distilbert" {
            cfg.pad_token_id = 1;
            cfg.type_vocab_size = 1;
        }
        let src = ParamSource::random(5, 0.3, DType::F32, &Device::Cpu);
        out.push((arch.to_string(), build_encoder(&cfg, src).unwrap()));
    }
    for arch in ["modernbert", "nomic_bert"] {
        let dir = repo_root()
            .join("crates/model/tests/data")
            .join(arch)
            .join("model");
        let m = SentenceModel::load(&dir, &Default::default()).unwrap();
        out.push((arch.into(), m.encoder));
    }
    out
}

/// Ids of 4, 37, 300 and 140 tokens (none of them the pad id), right-padded.
fn batch(pad: u32) -> (Tensor, Tensor, Vec<usize>) {
    let lens = [4usize, 37, 300, 140];
    let rows: Vec<Vec<u32>> = lens
        .iter()
        .enumerate()
        .map(|(r, &n)| {
            (0..n)
                .map(|i| 3 + ((i * 37 + r * 11) % 190) as u32)
                .collect()
        })
        .collect();
    let refs: Vec<&[u32]> = rows.iter().map(|r| r.as_slice()).collect();
    let (ids, mask) = pad_batch(&refs, pad, 1, &Device::Cpu).unwrap();
    (ids, mask, lens.to_vec())
}

/// The token embeddings at real positions, row by row.
fn real_tokens(t: &Tensor, lens: &[usize]) -> Vec<f32> {
    let t = t.to_vec3::<f32>().unwrap();
    lens.iter()
        .zip(&t)
        .flat_map(|(&n, row)| row[..n].iter().flatten().copied().collect::<Vec<_>>())
        .collect()
}

fn run(enc: &mut Box<dyn Encoder>, padded: bool) -> (Tensor, Tensor, Vec<Vec<f32>>) {
    enc.config_mut().padded = padded;
    let (ids, mask, _) = batch(enc.config().pad_token_id);
    let tokens = enc.forward(&ids, &mask, None).unwrap();
    let pooled = Pooling::Mean.apply(&tokens, &mask).unwrap();
    // A loss over every real token: the gradients of every parameter.
    let proj = test_support::rand_tensor(tokens.dims(), 9, 1.0, DType::F32).unwrap();
    let loss = (tokens.broadcast_mul(&mask.unsqueeze(2).unwrap()).unwrap() * proj)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let g = enc
        .params()
        .iter()
        // The pooler is not part of a sentence embedding and is not trained.
        .filter(|(name, _)| !name.starts_with("pooler."))
        .map(|(name, t)| {
            let g = grads
                .get(t)
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            g.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        })
        .collect();
    (tokens, pooled, g)
}

#[test]
fn packed_and_padded_batches_agree_for_every_architecture() {
    for (arch, mut enc) in encoders() {
        // Inference first (MPNet's position bias is a constant then, taking the packed kernel;
        // trained, it takes the composed path that carries its gradient).
        let forward = |enc: &mut Box<dyn Encoder>, padded| {
            enc.config_mut().padded = padded;
            let (ids, mask, lens) = batch(enc.config().pad_token_id);
            real_tokens(&enc.forward(&ids, &mask, None).unwrap(), &lens)
        };
        let (a, b) = (forward(&mut enc, true), forward(&mut enc, false));
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d0 = max_abs_diff(&a, &b);
        assert!(
            d0 <= 1e-5 * scale.max(1.0),
            "{arch}: tokens differ by {d0} (scale {scale})"
        );
        enc.params_mut().make_trainable().unwrap();
        let (_, mask, lens) = batch(enc.config().pad_token_id);
        assert!(
            model::packing::for_batch(enc.config(), &mask)
                .unwrap()
                .is_some(),
            "{arch}: the batch packs"
        );
        let (tp, pp, gp) = run(&mut enc, true);
        let (tu, pu, gu) = run(&mut enc, false);
        let (a, b) = (real_tokens(&tp, &lens), real_tokens(&tu, &lens));
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max_abs_diff(&a, &b);
        assert!(
            d <= 1e-5 * scale.max(1.0),
            "{arch}: tokens differ by {d} (scale {scale})"
        );
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let dp = max_abs_diff(&flat(&pp), &flat(&pu));
        assert!(dp <= 1e-5, "{arch}: pooled embeddings differ by {dp}");
        // Padding is zeros in the packed run's output, whatever the padded run computed there.
        let last = tu.get(0).unwrap().get(lens[0]).unwrap();
        assert_eq!(
            last.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
        let names = enc.params().iter().map(|(n, _)| n);
        let names = names.filter(|n| !n.starts_with("pooler."));
        // Relative to the largest gradient of all: some are zero in exact arithmetic (a key
        // bias shifts every score of a row alike), so their own scale is rounding noise.
        let gmax = gp.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
        let mut worst = 0f32;
        for (name, (x, y)) in names.zip(gp.iter().zip(&gu)) {
            let d = max_abs_diff(x, y);
            worst = worst.max(d / gmax);
            assert!(
                d <= 1e-5 * gmax,
                "{arch}: gradient of {name} differs by {d} (largest gradient {gmax})"
            );
        }
        eprintln!("{arch}: inference tokens {d0:.1e}, trainable tokens {d:.1e} of {scale:.2}, pooled {dp:.1e}, gradients {worst:.1e}");
    }
}
