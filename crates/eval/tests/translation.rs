//! TranslationEvaluator against sentence-transformers: all-MiniLM-L6-v2 on the Multi30k
//! validation pairs of ../shared/data/parallel. The expected accuracies are what
//! sentence-transformers 6.2.0's `TranslationEvaluator` (torch 2.15, CPU) returned on the same
//! files and model on 2026-11-30 (a throwaway run; they are counts over 1,013 pairs, so a single
//! different match would move them by 1e-3).

use eval::translation::{evaluate_translation, load_parallel};
use test_support::{minilm_dir, shared_dir};

#[test]
fn multi30k_bitext_accuracy_matches_sentence_transformers() {
    let model = model::SentenceModel::load(&minilm_dir(), &Default::default()).unwrap();
    for (lang, src2trg, trg2src) in [
        ("de", 0.18657453109575517, 0.18361303060217177),
        ("fr", 0.3079960513326752, 0.315893385982231),
    ] {
        let path = shared_dir().join(format!("data/parallel/multi30k-val.en-{lang}.tsv.gz"));
        let data = load_parallel(&path).unwrap();
        let m = evaluate_translation(&model, &data, 32).unwrap();
        assert!(
            (m["src2trg_accuracy"] - src2trg).abs() < 1e-5,
            "{lang}: {m:?}"
        );
        assert!(
            (m["trg2src_accuracy"] - trg2src).abs() < 1e-5,
            "{lang}: {m:?}"
        );
        assert!((m["mean_accuracy"] - (src2trg + trg2src) / 2.0).abs() < 1e-5);
    }
}

#[test]
fn parallel_files_name_their_bad_line() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.tsv");
    std::fs::write(&p, "a house\tein Haus\nno tab here\n").unwrap();
    let e = load_parallel(&p).err().unwrap().to_string();
    assert!(e.contains("bad.tsv:2"), "{e}");
}

/// MSEEvaluator with all-MiniLM-L6-v2 as both teacher (English sources) and student
/// (translations): sentence-transformers 6.2.0 gave these on 2026-11-30.
#[test]
fn multi30k_mse_matches_sentence_transformers() {
    let model = model::SentenceModel::load(&minilm_dir(), &Default::default()).unwrap();
    for (lang, negative_mse) in [("de", -0.4390921890735626), ("fr", -0.4074166417121887)] {
        let path = shared_dir().join(format!("data/parallel/multi30k-val.en-{lang}.tsv.gz"));
        let data = load_parallel(&path).unwrap();
        let m = eval::mse::evaluate_mse(&model, &model, &data, 32).unwrap();
        assert!(
            (m["negative_mse"] - negative_mse).abs() < 1e-5,
            "{lang}: {m:?}"
        );
    }
}
