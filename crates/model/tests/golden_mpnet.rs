//! all-mpnet-base-v2 against sentence-transformers' own output for the 64 golden texts.

use model::{LoadOptions, SentenceModel};
use test_support::{golden, max_abs_diff, mpnet_dir};

#[test]
fn mpnet_token_ids_and_embeddings_match() {
    let m = SentenceModel::load(&mpnet_dir(), &LoadOptions::default()).unwrap();
    assert_eq!(m.max_seq_length, 384);
    assert_eq!(m.pad_id(), 1);
    assert!(m.normalize);
    let rows = golden("all-mpnet-base-v2.jsonl");
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let ids = m.tokenizer.encode_batch(&texts).unwrap();
    for (r, got) in rows.iter().zip(&ids) {
        assert_eq!(got, &r.input_ids, "token ids of {:?}", r.text);
    }
    for batch in [32, 1] {
        let emb = m.encode(&texts, batch, |_| {}).unwrap();
        let mut worst = 0f32;
        for (r, e) in rows.iter().zip(&emb) {
            let d = max_abs_diff(e, &r.embedding);
            assert!(d <= 1e-5, "batch {batch}: {:?} differs by {d}", r.text);
            worst = worst.max(d);
        }
        eprintln!("mpnet batch {batch}: max abs diff {worst:e}");
    }
}

#[test]
fn relative_position_buckets_follow_transformers() {
    use model::mpnet::relative_position_bucket as bucket;
    // Keys before the query (relative < 0) use buckets 0..16, after it 16..32; exact up to 7,
    // logarithmic to 128, then saturated.
    assert_eq!(bucket(0, 32), 0);
    assert_eq!(bucket(-1, 32), 1);
    assert_eq!(bucket(1, 32), 17);
    assert_eq!(bucket(-7, 32), 7);
    assert_eq!(bucket(-8, 32), 8);
    assert_eq!(bucket(-127, 32), 15);
    assert_eq!(bucket(-1000, 32), 15);
    assert_eq!(bucket(1000, 32), 31);
    // Bucket boundaries where float32 rounding decides (values from transformers' formula run
    // in torch 2.15): 2.0 exactly at distance 16, etc.
    for (rel, want) in [
        (-16, 10),
        (-32, 12),
        (-64, 14),
        (16, 26),
        (32, 28),
        (64, 30),
    ] {
        assert_eq!(bucket(rel, 32), want, "relative {rel}");
    }
    let changes: Vec<i64> = (9..400)
        .filter(|&d| bucket(-d, 32) != bucket(-d + 1, 32))
        .collect();
    assert_eq!(changes, vec![12, 16, 23, 32, 46, 64, 91]);
    let mut last = 0;
    for d in 0..400 {
        let b = bucket(-d, 32);
        assert!(b >= last && b < 16, "{d}: {b}");
        last = b;
    }
}
