//! all-MiniLM-L6-v2 against sentence-transformers' own output for 64 tricky texts.

use model::{LoadOptions, SentenceModel};
use test_support::{golden, max_abs_diff, minilm_dir};

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

/// The same weights as a plain Hugging Face folder (no modules.json, no sentence_bert_config.json):
/// mean pooling without normalisation, max_seq_length from tokenizer_config.json. Normalised
/// afterwards, the embeddings are the golden ones.
#[test]
fn plain_hf_folder_means_mean_pooling_without_normalisation() {
    let src = minilm_dir();
    let dir = std::env::temp_dir().join(format!("pt-plain-hf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let m = SentenceModel::load(&dir, &LoadOptions::default()).unwrap();
    assert!(!m.normalize);
    assert_eq!(m.pooling, model::Pooling::Mean);
    // This package's tokenizer_config.json says model_max_length 512 (the base MiniLM's), as
    // sentence-transformers would also use for a plain folder.
    assert_eq!(m.max_seq_length, 512);
    let rows = golden("all-MiniLM-L6-v2.jsonl");
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).take(8).collect();
    let emb = m.encode(&texts, 4, |_| {}).unwrap();
    for (r, e) in rows.iter().zip(&emb) {
        let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() > 1e-3,
            "plain HF output should not be normalised"
        );
        let unit: Vec<f32> = e.iter().map(|v| v / norm).collect();
        assert!(max_abs_diff(&unit, &r.embedding) <= 1e-5);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
