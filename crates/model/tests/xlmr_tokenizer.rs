//! The XLM-R Unigram tokenizer (Precompiled normalizer, Metaspace) of multilingual-e5-small
//! against transformers 5: `tests/data/xlmr-e5-ids.jsonl` holds the ids `AutoTokenizer` gave for
//! the golden texts, whitespace cases and parallel sentences in 13 languages
//! (`scripts/reference/xlmr_tokenizer_ids.py`).

use test_support::{e5_dir, repo_root};

fn reference() -> Vec<(String, Vec<u32>)> {
    let path = repo_root().join("crates/model/tests/data/xlmr-e5-ids.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ids = v["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            (v["text"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

#[test]
fn ids_equal_transformers() {
    // Long enough that nothing is truncated: the reference is untruncated.
    let (tok, pad) = model::load_tokenizer(&e5_dir(), Some(4096)).unwrap();
    assert_eq!(pad, 1);
    let rows = reference();
    assert!(rows.len() > 400);
    let texts: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    let got = tok.encode_batch(&texts).unwrap();
    // The loader's tokenizer (no ASCII shortcut applies to Unigram) gives the same ids.
    let batch = pairs::BatchTokenizer::new(tok.inner().clone(), 4096, pad, 1).unwrap();
    assert!(!batch.has_shortcut());
    let mut wrong = Vec::new();
    for ((text, want), got) in rows.iter().zip(&got) {
        if got != want || &batch.encode(text).unwrap() != want {
            wrong.push(format!("{text:?}: got {got:?}, transformers {want:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The case that told the pipelines apart: tokenizer.json alone gives a lone `▁` (id 6) for
/// trailing whitespace; transformers splits on whitespace first.
#[test]
fn trailing_whitespace_gives_no_lone_metaspace() {
    let (tok, _) = model::load_tokenizer(&e5_dir(), None).unwrap();
    let ids = tok.encode_batch(&["Hello world ", "Hello world"]).unwrap();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0], vec![0, 35378, 8999, 2]);
}
