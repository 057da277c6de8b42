//! `pairtrain data filter` (consistency filtering) on a labelled set: STS-B train pairs with
//! a score of at least 4 are true pairs; a fifth of them get another pair's positive. With
//! all-MiniLM-L6-v2 and the top-1 rule, the swapped ones must go and the true ones mostly stay.

use std::io::{Read, Write};
use test_support::{minilm_dir, shared_dir};

fn pairtrain(args: &[&str]) -> std::process::Output {
    test_support::run_cli(env!("CARGO_BIN_EXE_pairtrain"), args)
}

/// (rows as JSON lines, which rows were swapped): STS-B train pairs with score >= 4, each
/// sentence used once, the first `n`.
fn labelled(n: usize) -> (Vec<String>, Vec<bool>) {
    let text = std::fs::read_to_string(shared_dir().join("data/stsb/sts-train.tsv")).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        if f[2].parse::<f64>().unwrap() >= 4.0 && !seen.contains(f[0]) && !seen.contains(f[1]) {
            seen.insert(f[0].to_string());
            seen.insert(f[1].to_string());
            pairs.push((f[0].into(), f[1].into()));
        }
    }
    pairs.truncate(n);
    // Every fifth row takes the positive of the next fifth row (the last the first's).
    let idx: Vec<usize> = (0..pairs.len()).step_by(5).collect();
    let mut swapped = vec![false; pairs.len()];
    let mut rows: Vec<String> = pairs
        .iter()
        .map(|(a, p)| serde_json::json!([a, p]).to_string())
        .collect();
    for (k, &i) in idx.iter().enumerate() {
        let j = idx[(k + 1) % idx.len()];
        rows[i] = serde_json::json!([pairs[i].0, pairs[j].1]).to_string();
        swapped[i] = true;
    }
    // Objects too: kept rows come out exactly as they went in.
    rows[1] = serde_json::json!({"anchor": pairs[1].0, "positive": pairs[1].1}).to_string();
    (rows, swapped)
}

#[test]
fn filter_drops_swapped_positives_keeps_true_pairs_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let (rows, swapped) = labelled(500);
    let input = d.path().join("stsb.jsonl.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for r in &rows {
        writeln!(e, "{r}").unwrap();
    }
    std::fs::write(&input, e.finish().unwrap()).unwrap();
    let out = d.path().join("out");
    let model = minilm_dir();
    let args = [
        "data",
        "filter",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--top-k",
        "1",
        "--quiet",
    ];
    let o = pairtrain(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read_kept = || {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(out.join("stsb.jsonl.gz")).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let kept_text = read_kept();
    let kept: std::collections::HashSet<&str> = kept_text.lines().collect();
    let n_swapped = swapped.iter().filter(|&&s| s).count();
    let dropped_swapped = rows
        .iter()
        .zip(&swapped)
        .filter(|(r, &s)| s && !kept.contains(r.as_str()))
        .count();
    let kept_true = rows
        .iter()
        .zip(&swapped)
        .filter(|(r, &s)| !s && kept.contains(r.as_str()))
        .count();
    assert!(
        dropped_swapped as f64 >= 0.95 * n_swapped as f64,
        "{dropped_swapped} of {n_swapped} swapped dropped"
    );
    // True STS pairs at score >= 4 are near-paraphrases: measured 94.6% kept at top-1 over all
    // 1,342 of them.
    let n_true = rows.len() - n_swapped;
    assert!(
        kept_true as f64 >= 0.9 * n_true as f64,
        "{kept_true} of {n_true} true pairs kept"
    );
    // Kept rows are the input's lines, in order.
    let in_order: Vec<&str> = rows
        .iter()
        .map(String::as_str)
        .filter(|r| kept.contains(r))
        .collect();
    assert_eq!(kept_text.lines().collect::<Vec<_>>(), in_order);
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("stats.json")).unwrap()).unwrap();
    let ds = &stats["datasets"][input.to_str().unwrap()];
    assert_eq!(ds["kept"].as_u64().unwrap() as usize, kept.len());
    assert_eq!(
        ds["kept"].as_u64().unwrap() + ds["dropped"].as_u64().unwrap(),
        rows.len() as u64
    );
    assert_eq!(ds["pool"], rows.len());
    assert_eq!(
        ds["rank_histogram"]["01"].as_u64().unwrap() as usize,
        kept.len()
    );
    let sample = ds["dropped_sample"].as_array().unwrap();
    assert_eq!(sample.len(), 20);
    assert!(sample.iter().all(|s| s["rank"].as_u64().unwrap() > 1));

    // A rerun finds the pool cached and the file complete: same output, same numbers.
    let before = std::fs::metadata(out.join("stsb.jsonl.gz"))
        .unwrap()
        .modified()
        .unwrap();
    let o = pairtrain(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = std::fs::metadata(out.join("stsb.jsonl.gz"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("stats.json")).unwrap()).unwrap();
    assert_eq!(again["datasets"], stats["datasets"]);
    assert!(!std::fs::read_dir(&out).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".partial")));

    // Another rule into the same folder is not taken for the finished file: top-5 keeps more.
    let mut wider = args.to_vec();
    wider[9] = "5";
    let o = pairtrain(&wider);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let top5: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("stats.json")).unwrap()).unwrap();
    let kept5 = top5["datasets"][input.to_str().unwrap()]["kept"]
        .as_u64()
        .unwrap();
    assert!(kept5 > kept.len() as u64, "{kept5}");
    assert_eq!(read_kept().lines().count() as u64, kept5);

    // The output folder may not be the input's: the input would be overwritten.
    let mut onto_input = args.to_vec();
    onto_input[7] = d.path().to_str().unwrap();
    let o = pairtrain(&onto_input);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("would overwrite this input"));
}

#[test]
fn filter_names_the_bad_row() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("bad.jsonl");
    std::fs::write(&input, "[\"a question\", \"an answer\"]\n[\"only one\"]\n").unwrap();
    let model = minilm_dir();
    let o = pairtrain(&[
        "data",
        "filter",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        d.path().join("out").to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.jsonl:2"), "{err}");
    assert!(!d.path().join("out").join("bad.jsonl").exists());
}
