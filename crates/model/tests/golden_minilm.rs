//! all-MiniLM-L6-v2 against sentence-transformers' own output for 64 tricky texts.

use model::testing::{golden, max_abs_diff, minilm_dir};
use model::{LoadOptions, SentenceModel};

#[test]
fn token_ids_match_exactly() {
    let m = SentenceModel::load(&minilm_dir(), &LoadOptions::default()).unwrap();
    assert_eq!(m.max_seq_length, 256);
    let rows = golden("all-MiniLM-L6-v2.jsonl");
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let ids = m.tokenizer.encode_batch(&texts).unwrap();
    for (r, got) in rows.iter().zip(&ids) {
        assert_eq!(got, &r.input_ids, "token ids of {:?}", r.text);
    }
}

fn check_embeddings(batch_size: usize) {
    let m = SentenceModel::load(&minilm_dir(), &LoadOptions::default()).unwrap();
    assert!(m.normalize);
    let rows = golden("all-MiniLM-L6-v2.jsonl");
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let emb = m.encode(&texts, batch_size, |_| {}).unwrap();
    let mut worst = 0f32;
    for (r, e) in rows.iter().zip(&emb) {
        let d = max_abs_diff(e, &r.embedding);
        assert!(d <= 1e-5, "batch {batch_size}: {:?} differs by {d}", r.text);
        worst = worst.max(d);
    }
    eprintln!("batch {batch_size}: max abs diff {worst:e}");
}

#[test]
fn embeddings_match_with_batch_32() {
    check_embeddings(32);
}

#[test]
fn embeddings_match_with_batch_1() {
    check_embeddings(1);
}
