//! Parquet pair files (tests/data, written by pyarrow: scripts/reference/make_parquet_fixtures.py)
//! read as the JSONL of the same rows, resumed exactly across row groups, and never a crash on a
//! truncated or corrupt file.

use pairs::reader::{BadRowPolicy, PairReader, SkipCounts};
use pairs::{DatasetSpec, Row, Sampler, SamplerConfig, SamplerState};
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn read_all(path: &Path, columns: Option<&[String]>) -> Vec<Row> {
    let mut r = PairReader::open_with(path, columns).unwrap();
    let mut skips = SkipCounts::default();
    let mut rows = Vec::new();
    while let Some(row) = r.next_row(BadRowPolicy::Error, &mut skips).unwrap() {
        rows.push(row);
    }
    rows
}

#[test]
fn the_same_rows_as_the_jsonl_of_the_same_data() {
    let want = pairs::read_jsonl_rows(&data("triplets.jsonl")).unwrap();
    assert_eq!(want.len(), 120);
    assert_eq!(read_all(&data("triplets.parquet"), None), want);
}

#[test]
fn columns_are_found_by_layout_or_named_in_order() {
    let triplets = pairs::read_jsonl_rows(&data("triplets.jsonl")).unwrap();
    // query/answer, the int64 id column left out.
    let qa = read_all(&data("qa.parquet"), None);
    assert_eq!(qa.len(), 30);
    assert_eq!(qa[3], triplets[3][..2].to_vec());
    let swapped = ["answer".to_string(), "query".to_string()];
    let qa = read_all(&data("qa.parquet"), Some(&swapped));
    assert_eq!(qa[3], vec![triplets[3][1].clone(), triplets[3][0].clone()]);
    // A list-of-strings column gives several hard negatives.
    let lst = read_all(&data("negatives-list.parquet"), None);
    assert_eq!(lst.len(), 10);
    assert_eq!(lst[0].len(), 4);
    assert_eq!(lst[0][..3], triplets[0][..]);
    assert_eq!(lst[0][3], triplets[1][2]);
    // Naming a column that is not there, or one that holds no text, says so.
    let e = PairReader::open_with(&data("qa.parquet"), Some(&["query".into(), "nope".into()]))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("qa.parquet") && e.contains("no column \"nope\""),
        "{e}"
    );
    let e = PairReader::open_with(&data("qa.parquet"), Some(&["query".into(), "id".into()]))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("\"id\" of those chosen hold numbers") && e.contains("2 text columns"),
        "{e}"
    );
    // `columns` is for Parquet only.
    let e = PairReader::open_with(&data("triplets.jsonl"), Some(&swapped))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("Parquet"), "{e}");
}

#[test]
fn resume_positions_cross_row_groups_exactly() {
    let path = data("triplets.parquet");
    let all = read_all(&path, None);
    // Row groups of 50, 50 and 20 rows.
    for n in [0u64, 1, 49, 50, 51, 99, 100, 101, 119, 120] {
        let mut r = PairReader::open(&path).unwrap();
        r.skip_lines(n).unwrap();
        assert_eq!(r.line(), n);
        let mut rest = Vec::new();
        let mut skips = SkipCounts::default();
        while let Some(row) = r.next_row(BadRowPolicy::Error, &mut skips).unwrap() {
            rest.push(row);
        }
        assert_eq!(rest, all[n as usize..], "resumed at row {n}");
    }
    let mut r = PairReader::open(&path).unwrap();
    let e = r.skip_lines(121).unwrap_err().to_string();
    assert!(e.contains("has 120 rows"), "{e}");
}

fn spec(files: Vec<PathBuf>) -> DatasetSpec {
    DatasetSpec {
        name: "pq".into(),
        files,
        weight: 1.0,
        shuffle_buffer: 16,
        columns: None,
        shape: None,
    }
}

/// Through the sampler, shuffled, saved and restored mid-pass: the same next batches.
#[test]
fn the_sampler_resumes_a_parquet_dataset_exactly() {
    let cfg = SamplerConfig {
        batch_size: 8,
        datasets_per_batch: 1,
        seed: 3,
        shuffle: true,
        policy: BadRowPolicy::Error,
        dedup: true,
    };
    let files = vec![data("triplets.parquet"), data("qa.parquet")];
    let mut s = Sampler::new(vec![spec(files.clone())], cfg.clone()).unwrap();
    for _ in 0..13 {
        s.next_batch().unwrap();
    }
    let saved: SamplerState =
        serde_json::from_str(&serde_json::to_string(&s.state()).unwrap()).unwrap();
    let want: Vec<Vec<Row>> = (0..40).map(|_| s.next_batch().unwrap().rows).collect();
    let mut again = Sampler::new(vec![spec(files)], cfg).unwrap();
    again.restore(&saved).unwrap();
    for (i, w) in want.iter().enumerate() {
        assert_eq!(
            &again.next_batch().unwrap().rows,
            w,
            "batch {i} after resuming"
        );
    }
}

/// Every truncation and a sweep of single-byte corruptions: an error naming the file or rows,
/// never a panic; a truncated file is never read as complete.
#[test]
fn truncated_or_corrupt_files_are_errors_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(data("triplets.parquet")).unwrap();
    let all = read_all(&data("triplets.parquet"), None);
    let bad = d.path().join("bad.parquet");
    let read = |p: &Path| -> Result<Vec<Row>, String> {
        let mut r = PairReader::open(p).map_err(|e| e.to_string())?;
        let mut skips = SkipCounts::default();
        let mut rows = Vec::new();
        while let Some(row) = r
            .next_row(BadRowPolicy::Error, &mut skips)
            .map_err(|e| e.to_string())?
        {
            rows.push(row);
        }
        Ok(rows)
    };
    for cut in (0..bytes.len()).step_by(97) {
        std::fs::write(&bad, &bytes[..cut]).unwrap();
        let e = read(&bad).expect_err("a truncated file is an error");
        assert!(e.contains("bad.parquet"), "cut at {cut}: {e}");
    }
    for at in (4..bytes.len() - 8).step_by(13) {
        let mut b = bytes.clone();
        b[at] ^= 0x5a;
        std::fs::write(&bad, &b).unwrap();
        match read(&bad) {
            Err(e) => assert!(e.contains("bad.parquet"), "byte {at}: {e}"),
            // Some bytes (statistics, padding) do not matter; data that reads must be rows.
            Ok(rows) => assert!(rows.len() <= all.len()),
        }
    }
    // With the skip policy, a corrupt row group is counted, not fatal.
    let mut b = bytes.clone();
    let mid = bytes.len() / 2;
    for x in &mut b[mid..mid + 40] {
        *x ^= 0xff;
    }
    std::fs::write(&bad, &b).unwrap();
    if let Ok(mut r) = PairReader::open(&bad) {
        let mut skips = SkipCounts::default();
        while let Ok(Some(_)) = r.next_row(BadRowPolicy::Skip, &mut skips) {}
        assert!(skips.total() <= 1 + all.len() as u64);
    }
}
