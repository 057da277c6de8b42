//! The data pipeline against its contract: weighted shares, no text twice in a batch, exact
//! resume, and bad input reported by file:line or counted.

use pairs::dedup::text_key;
use pairs::reader::PairReader;
use pairs::sampler::RawBatch;
use pairs::*;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

fn write_gz(path: &Path, body: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    w.write_all(body).unwrap();
    w.finish().unwrap();
}

fn write_zst(path: &Path, body: &[u8]) {
    std::fs::write(path, zstd::encode_all(body, 3).unwrap()).unwrap();
}

/// `n` distinct pairs whose texts carry `tag`, split over gz and zst shards.
fn dataset(dir: &Path, tag: &str, n: usize, shards: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for s in 0..shards {
        let body: String = (0..n)
            .filter(|i| i % shards == s)
            .map(|i| format!("[\"{tag} q{i}\", \"{tag} a{i}\"]\n"))
            .collect();
        let p = if s % 2 == 0 {
            let p = dir.join(format!("{tag}-{s}.jsonl.gz"));
            write_gz(&p, body.as_bytes());
            p
        } else {
            let p = dir.join(format!("{tag}-{s}.jsonl.zst"));
            write_zst(&p, body.as_bytes());
            p
        };
        out.push(p);
    }
    out
}

fn spec(name: &str, files: Vec<PathBuf>, weight: f64, buffer: usize) -> DatasetSpec {
    DatasetSpec {
        name: name.into(),
        files,
        weight,
        shuffle_buffer: buffer,
        columns: None,
        shape: None,
    }
}

fn cfg(batch_size: usize, datasets_per_batch: usize) -> SamplerConfig {
    SamplerConfig {
        batch_size,
        datasets_per_batch,
        seed: 11,
        shuffle: true,
        policy: BadRowPolicy::Error,
        dedup: true,
    }
}

#[test]
fn batch_shares_match_weights_within_one_percent() {
    let dir = tempfile::tempdir().unwrap();
    let weights = [50.0, 30.0, 14.0, 5.0, 1.0];
    let specs = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let tag = format!("d{i}");
            spec(&tag, dataset(dir.path(), &tag, 40 + 30 * i, 3), w, 16)
        })
        .collect();
    let mut s = Sampler::new(specs, cfg(4, 1)).unwrap();
    let n = 10_000;
    let mut counts = [0usize; 5];
    for _ in 0..n {
        let b = s.next_batch().unwrap();
        assert!(
            b.dataset.iter().all(|&d| d == b.dataset[0]),
            "one dataset per batch"
        );
        counts[b.dataset[0]] += 1;
    }
    let total: f64 = weights.iter().sum();
    for (i, &w) in weights.iter().enumerate() {
        let share = counts[i] as f64 / n as f64;
        assert!(
            (share - w / total).abs() < 0.01,
            "dataset {i}: share {share}, weight share {}",
            w / total
        );
    }
    // Small datasets wrapped around many times along the way.
    assert!(s.streams[0].passes() > 10);
}

#[test]
fn two_datasets_per_batch_split_each_batch() {
    let dir = tempfile::tempdir().unwrap();
    let specs = (0..3)
        .map(|i| {
            let tag = format!("d{i}");
            spec(&tag, dataset(dir.path(), &tag, 50, 1), 1.0, 8)
        })
        .collect();
    let mut s = Sampler::new(specs, cfg(9, 2)).unwrap();
    let mut per = [0usize; 3];
    for _ in 0..3000 {
        let b = s.next_batch().unwrap();
        let ds: HashSet<usize> = b.dataset.iter().copied().collect();
        assert_eq!(ds.len(), 2);
        assert_eq!(b.rows.len(), 9);
        for d in ds {
            per[d] += 1;
        }
    }
    for c in per {
        assert!((c as f64 / 6000.0 - 1.0 / 3.0).abs() < 0.01, "{per:?}");
    }
}

fn assert_unique_texts(b: &RawBatch) {
    let mut seen = HashSet::new();
    let mut scratch = Vec::new();
    let mut keys_of_row =
        |row: &[String]| -> Vec<u64> { row.iter().map(|t| text_key(t, &mut scratch)).collect() };
    for row in &b.rows {
        let keys: HashSet<u64> = keys_of_row(row).into_iter().collect();
        for k in keys {
            assert!(seen.insert(k), "a text occurs twice in one batch: {row:?}");
        }
    }
}

#[test]
fn no_batch_holds_a_text_twice_even_with_heavy_duplication() {
    let dir = tempfile::tempdir().unwrap();
    // 2,000 rows over 60 distinct anchors in varying case and whitespace, answers from 150.
    let body: String = (0..2000)
        .map(|i| {
            let q = match i % 3 {
                0 => format!("Question {}", i % 60),
                1 => format!("  question {}\t", i % 60),
                _ => format!("QUESTION {}", i % 60),
            };
            format!(
                "{}\n",
                serde_json::json!([q, format!("answer {}", i % 150)])
            )
        })
        .collect();
    let p = dir.path().join("dup.jsonl");
    std::fs::write(&p, body).unwrap();
    let mut s = Sampler::new(vec![spec("dup", vec![p.clone()], 1.0, 64)], cfg(32, 1)).unwrap();
    let mut skipped = 0;
    for _ in 0..500 {
        let b = s.next_batch().unwrap();
        assert_eq!(b.rows.len(), 32);
        assert_unique_texts(&b);
        skipped += b.duplicates_skipped;
    }
    assert!(skipped > 1000, "duplicates were skipped: {skipped}");

    // More rows than distinct anchors: a clear error, not a hang.
    let mut s = Sampler::new(vec![spec("dup", vec![p], 1.0, 64)], cfg(61, 1)).unwrap();
    let e = s.next_batch().unwrap_err().to_string();
    assert!(e.contains("dataset dup") && e.contains("distinct"), "{e}");
}

#[test]
fn dedup_is_fast_at_batch_65536() {
    // Not a timing test: it shows a 65,536-row batch is built with no quadratic step (the
    // run takes well under a second in release builds; a quadratic scan would take minutes).
    let dir = tempfile::tempdir().unwrap();
    let files = dataset(dir.path(), "big", 70_000, 2);
    let mut s = Sampler::new(vec![spec("big", files, 1.0, 4096)], cfg(65_536, 1)).unwrap();
    let b = s.next_batch().unwrap();
    assert_eq!(b.rows.len(), 65_536);
    assert_unique_texts(&b);
}

fn tiny_tokenizer() -> BatchTokenizer {
    use tokenizers::models::wordlevel::WordLevel;
    let mut vocab: std::collections::HashMap<String, u32> = Default::default();
    for (i, w) in ["[PAD]", "[UNK]", "d0", "d1", "d2", "q", "a"]
        .iter()
        .enumerate()
    {
        vocab.insert(w.to_string(), i as u32);
    }
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut t = tokenizers::Tokenizer::new(model);
    t.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::whitespace::Whitespace {}));
    BatchTokenizer::new(t, 16, 0, 8).unwrap()
}

fn three_datasets(dir: &Path) -> Vec<DatasetSpec> {
    (0..3)
        .map(|i| {
            let tag = format!("d{i}");
            // Sizes not multiples of the buffer or batch, so blocks and passes straddle.
            spec(
                &tag,
                dataset(dir, &tag, 97 + 41 * i, 1 + i),
                1.0 + i as f64,
                13,
            )
        })
        .collect()
}

#[test]
fn resuming_gives_the_same_next_1000_batches() {
    let dir = tempfile::tempdir().unwrap();
    let c = LoaderConfig {
        workers: 3,
        prefetch: 2,
    };
    let mut l = Loader::start(
        Sampler::new(three_datasets(dir.path()), cfg(10, 1)).unwrap(),
        tiny_tokenizer(),
        c.clone(),
    );
    for _ in 0..137 {
        l.next_batch().unwrap();
    }
    let saved = serde_json::to_string(l.state()).unwrap();
    let expected: Vec<TokenBatch> = (0..1000).map(|_| l.next_batch().unwrap()).collect();
    drop(l);

    // A fresh process: new sampler, state read back from JSON.
    let state: SamplerState = serde_json::from_str(&saved).unwrap();
    let mut s = Sampler::new(three_datasets(dir.path()), cfg(10, 1)).unwrap();
    s.restore(&state).unwrap();
    let mut l = Loader::start(s, tiny_tokenizer(), c);
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(&l.next_batch().unwrap(), e, "batch {i} after resuming");
    }
    // Padding is per column, rounded up to a multiple of 8.
    assert!(expected
        .iter()
        .all(|b| b.columns.iter().all(|c| c.len % 8 == 0)));

    // Restoring a running loader in place gives the same batches too.
    l.restore(&state).unwrap();
    assert_eq!(&l.next_batch().unwrap(), &expected[0]);
}

#[test]
fn shard_order_and_rows_are_reshuffled_each_pass() {
    let dir = tempfile::tempdir().unwrap();
    let files = dataset(dir.path(), "d0", 60, 3);
    // A buffer of 6 divides the 60 rows, so blocks end where passes end.
    let mut s = Sampler::new(vec![spec("d0", files, 1.0, 6)], cfg(10, 1)).unwrap();
    let pass = |s: &mut Sampler| -> Vec<String> {
        (0..6)
            .flat_map(|_| s.next_batch().unwrap().rows)
            .map(|r| r[0].clone())
            .collect()
    };
    let (a, b) = (pass(&mut s), pass(&mut s));
    assert_ne!(a, b);
    let mut sorted_a = a.clone();
    sorted_a.sort();
    let mut all: Vec<String> = (0..60).map(|i| format!("d0 q{i}")).collect();
    all.sort();
    // Each pass has every row once.
    assert_eq!(sorted_a, all);

    // Without shuffle, rows come in file order.
    let files = vec![dir.path().join("d0-0.jsonl.gz")];
    let mut c = cfg(5, 1);
    c.shuffle = false;
    let mut s = Sampler::new(vec![spec("d0", files, 1.0, 7)], c).unwrap();
    let first: Vec<String> = s
        .next_batch()
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(first, ["d0 q0", "d0 q3", "d0 q6", "d0 q9", "d0 q12"]);
}

/// Each kind of bad input, as (file name, bytes, expected line).
fn bad_inputs(dir: &Path) -> Vec<(PathBuf, usize)> {
    let good = "[\"a1\", \"b1\"]\n[\"a2\", \"b2\"]\n";
    let mut out = Vec::new();
    // A gzip file cut in the middle.
    let big: String = (0..50_000)
        .map(|i| format!("[\"q{i}\", \"a{i}\"]\n"))
        .collect();
    let p = dir.join("truncated.jsonl.gz");
    write_gz(&p, big.as_bytes());
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    out.push((p, 0));
    // A zstd file cut in the middle.
    let p = dir.join("truncated.jsonl.zst");
    write_zst(&p, big.as_bytes());
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    out.push((p, 0));
    // Invalid UTF-8 on line 3.
    let p = dir.join("utf8.jsonl");
    let mut b = good.as_bytes().to_vec();
    b.extend_from_slice(b"[\"caf\xe9\", \"x\"]\n");
    b.extend_from_slice(good.as_bytes());
    std::fs::write(&p, b).unwrap();
    out.push((p, 3));
    // One text only, on line 2.
    let p = dir.join("one.jsonl");
    std::fs::write(&p, "[\"a\", \"b\"]\n[\"lonely\"]\n[\"c\", \"d\"]\n").unwrap();
    out.push((p, 2));
    // A text that is a number, on line 3 (after a blank line).
    let p = dir.join("number.jsonl");
    std::fs::write(
        &p,
        "[\"a\", \"b\"]\n\n{\"anchor\": \"q\", \"positive\": 42}\n[\"c\", \"d\"]\n",
    )
    .unwrap();
    out.push((p, 3));
    out
}

#[test]
fn bad_input_is_an_error_naming_file_and_line_or_a_counted_skip() {
    let dir = tempfile::tempdir().unwrap();
    for (path, line) in bad_inputs(dir.path()) {
        let name = path.display().to_string();
        // error: file:line.
        let mut r = PairReader::open(&path).unwrap();
        let mut skips = SkipCounts::default();
        let e = loop {
            match r.next_row(BadRowPolicy::Error, &mut skips) {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("{name}: no error"),
                Err(e) => break e.to_string(),
            }
        };
        if line > 0 {
            assert!(e.starts_with(&format!("{name}:{line}: ")), "{e}");
        } else {
            // Truncation: the line where reading stopped, after the rows before it.
            assert!(e.starts_with(&format!("{name}:")), "{e}");
            assert!(e.contains("truncated or corrupt"), "{e}");
            assert!(
                r.line() > 100,
                "{name}: rows before the cut were read: {}",
                r.line()
            );
        }
        // skip: counted, the good rows kept.
        let mut r = PairReader::open(&path).unwrap();
        let mut skips = SkipCounts::default();
        let mut rows = 0;
        while r
            .next_row(BadRowPolicy::Skip, &mut skips)
            .unwrap()
            .is_some()
        {
            rows += 1;
        }
        assert_eq!(skips.total(), 1, "{name}: {skips:?}");
        assert!(rows >= 2, "{name}");
        assert!(skips.examples[0].starts_with(&name));
    }
    // Through the sampler: the counts surface in its state.
    let (p, _) = bad_inputs(dir.path()).remove(3);
    let mut c = cfg(2, 1);
    c.policy = BadRowPolicy::Skip;
    let mut s = Sampler::new(vec![spec("one", vec![p.clone()], 1.0, 4)], c.clone()).unwrap();
    s.next_batch().unwrap();
    assert_eq!(s.state().skipped.by_reason["fewer than 2 texts"], 1);
    c.policy = BadRowPolicy::Error;
    let mut s = Sampler::new(vec![spec("one", vec![p.clone()], 1.0, 4)], c).unwrap();
    let e = s.next_batch().unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2: ", p.display())), "{e}");
}

#[test]
fn stats_and_validate_report_real_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.jsonl");
    let mut body = String::new();
    for i in 0..100 {
        // 10 distinct anchors (each 10 times), 100 distinct positives, 5-char texts and up.
        body += &format!("[\"q{:04}\", \"answer {i:03}\"]\n", i % 10);
    }
    body += "[\"x\", \"y\", \"z\"]\n";
    body += "[\"bad\"]\n";
    std::fs::write(&p, body).unwrap();
    let st = stats::stats(std::slice::from_ref(&p), BadRowPolicy::Skip, 2, &|_| {}).unwrap();
    assert_eq!(st.rows, 101);
    assert_eq!(st.texts_per_row[&2], 100);
    assert_eq!(st.texts_per_row[&3], 1);
    assert_eq!(st.texts, 203);
    assert_eq!(st.duplicate_texts_estimate, 90);
    assert_eq!(st.chars["anchor"].p50, 5);
    assert_eq!(st.chars["positive"].max, 10);
    assert_eq!(st.skipped.total(), 1);
    let (good, bad) = stats::validate(std::slice::from_ref(&p), 1, &|_| {}).unwrap();
    assert_eq!(good, 101);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].line, 102);
    assert_eq!(bad[0].reason, "fewer than 2 texts");
}

/// A column prompt set to "" means no prompt for that column, not the model's default prompt;
/// columns without a prompt of their own take the default.
#[test]
fn an_empty_column_prompt_is_no_prompt() {
    let tok = tiny_tokenizer()
        .with_prefix(Some("q ".into()))
        .unwrap()
        .with_column_prompts(vec![pairs::ColumnPrompts {
            anchor: Some(String::new()),
            positive: None,
            negative: None,
        }])
        .unwrap();
    let rows = vec![pairs::Row {
        texts: vec!["a".into(), "a".into()],
        scores: vec![],
    }];
    let b = tok.tokenize(rows, vec![0], 0).unwrap();
    assert_eq!(b.columns[0].lengths, vec![1], "the anchor took a prompt");
    assert_eq!(
        b.columns[1].lengths,
        vec![2],
        "the positive lost the default prompt"
    );
}
