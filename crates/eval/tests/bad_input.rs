//! Bad evaluation data fails with file:line and what is wrong.

use eval::embedding_similarity::load_sts;
use eval::information_retrieval::load_beir;

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn sts_missing_column_and_bad_score() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("sts.tsv");
    std::fs::write(&p, "sentence1\tsentence2\tscore\na\tb\t1.0\nc\td\n").unwrap();
    let e = err_of(load_sts(&p));
    assert!(e.contains("sts.tsv:3") && e.contains("found 2"), "{e}");
    std::fs::write(&p, "sentence1\tsentence2\tscore\na\tb\t1.0\nc\td\thigh\n").unwrap();
    let e = err_of(load_sts(&p));
    assert!(
        e.contains("sts.tsv:3") && e.contains("\"high\" is not a number"),
        "{e}"
    );
    std::fs::write(&p, "sentence1\tscore\na\t1.0\n").unwrap();
    // No sentence2 in the header: read as the STS-B layout, which needs 7 fields.
    let e = err_of(load_sts(&p));
    assert!(e.contains("sts.tsv:1") && e.contains("fields"), "{e}");
}

#[test]
fn stsb_original_layout_is_read_from_fields_5_to_7() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("sts-dev.csv");
    std::fs::write(
        &p,
        "main-captions\tMSRvid\t2012test\t0000\t5.000\tA man plays.\tA man is playing.\n\
         main-captions\tMSRvid\t2012test\t0001\t1.5\tA \"cat\".\tA dog.\textra\tsource\n",
    )
    .unwrap();
    let s = load_sts(&p).unwrap();
    assert_eq!(s.scores, vec![5.0, 1.5]);
    assert_eq!(s.sentences1[1], "A \"cat\".");
    assert_eq!(s.sentences2[0], "A man is playing.");
}

#[test]
fn qrels_pointing_to_unknown_ids() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("corpus.jsonl"),
        "{\"_id\": \"d1\", \"title\": \"\", \"text\": \"x\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("queries.jsonl"),
        "{\"_id\": \"q1\", \"text\": \"y\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("qrels.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td9\t1\n",
    )
    .unwrap();
    let e = err_of(load_beir(dir));
    assert!(
        e.contains("qrels.tsv:3") && e.contains("\"d9\" is not in corpus.jsonl"),
        "{e}"
    );
    std::fs::write(
        dir.join("qrels.tsv"),
        "query-id\tcorpus-id\tscore\nq7\td1\t1\n",
    )
    .unwrap();
    let e = err_of(load_beir(dir));
    assert!(
        e.contains("qrels.tsv:2") && e.contains("\"q7\" is not in queries.jsonl"),
        "{e}"
    );
    std::fs::write(
        dir.join("qrels.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td1\n",
    )
    .unwrap();
    let e = err_of(load_beir(dir));
    assert!(e.contains("qrels.tsv:2") && e.contains("found 2"), "{e}");
    std::fs::write(dir.join("corpus.jsonl"), "{\"_id\": \"d1\", \"text\": 5}\n").unwrap();
    let e = err_of(load_beir(dir));
    assert!(
        e.contains("corpus.jsonl:1") && e.contains("\"text\" is not a string"),
        "{e}"
    );
}
