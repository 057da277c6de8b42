//! `pairtrain data mine-negatives` against sentence-transformers' `mine_hard_negatives` on the
//! same model and data (outputs recorded in tests/data/st-mine-hard-negatives): the same rows in
//! the same order, and the same negatives for at least 99% of the (anchor, positive) pairs (the
//! rest are near-ties that the two implementations' last-bit differences order differently).

use std::collections::HashMap;
use std::io::Read;
use test_support::{minilm_dir, repo_root, shared_dir};

fn pairtrain(args: &[&str]) -> std::process::Output {
    test_support::run_cli(env!("CARGO_BIN_EXE_pairtrain"), args)
}

fn stsb_pairs(path: &std::path::Path) {
    let text = std::fs::read_to_string(shared_dir().join("data/stsb/sts-train.tsv")).unwrap();
    let mut out = String::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        if f[2].parse::<f64>().unwrap() >= 4.0 {
            out += &serde_json::json!([f[0], f[1]]).to_string();
            out.push('\n');
        }
    }
    std::fs::write(path, out).unwrap();
}

fn rows(path: &std::path::Path) -> Vec<Vec<String>> {
    let mut text = String::new();
    let f = std::fs::File::open(path).unwrap();
    if path.to_string_lossy().ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(f)
            .read_to_string(&mut text)
            .unwrap();
    } else {
        std::io::BufReader::new(f)
            .read_to_string(&mut text)
            .unwrap();
    }
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Share of (anchor, positive) whose negatives are identical; asserts the same row order.
fn agreement(ours: &[Vec<String>], theirs: &[Vec<String>]) -> f64 {
    let key = |r: &Vec<String>| (r[0].clone(), r[1].clone());
    let order = |rs: &[Vec<String>]| rs.iter().map(key).collect::<Vec<_>>();
    assert_eq!(order(ours), order(theirs), "rows differ in number or order");
    let group = |rs: &[Vec<String>]| {
        let mut g: HashMap<(String, String), Vec<String>> = HashMap::new();
        for r in rs {
            g.entry(key(r)).or_default().extend(r[2..].iter().cloned());
        }
        g
    };
    let (a, b) = (group(ours), group(theirs));
    a.iter().filter(|(k, v)| b.get(*k) == Some(v)).count() as f64 / a.len() as f64
}

#[test]
fn mine_negatives_matches_sentence_transformers() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("stsb.jsonl");
    stsb_pairs(&input);
    let model = minilm_dir();
    let reference = repo_root().join("crates/pairtrain/tests/data/st-mine-hard-negatives");
    let cache = d.path().join("cache");
    for (name, extra) in [
        ("stsb-top-triplet", vec![]),
        (
            "stsb-relative-0.05-n5-ntuple",
            vec![
                "--relative-margin",
                "0.05",
                "--num-negatives",
                "5",
                "--output-format",
                "n-tuple",
            ],
        ),
    ] {
        let out = d.path().join(format!("{name}.jsonl.gz"));
        let mut args = vec![
            "data",
            "mine-negatives",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--quiet",
        ];
        args.extend(extra);
        let o = pairtrain(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let ours = rows(&out);
        let theirs = rows(&reference.join(format!("{name}.jsonl.gz")));
        let a = agreement(&ours, &theirs);
        assert!(a >= 0.99, "{name}: {:.2}% agree", 100.0 * a);
        // Never a positive of the anchor as its negative.
        let mut positives: HashMap<&str, Vec<&str>> = HashMap::new();
        for r in &ours {
            positives.entry(&r[0]).or_default().push(&r[1]);
        }
        for r in &ours {
            assert!(r[2..]
                .iter()
                .all(|n| !positives[r[0].as_str()].contains(&n.as_str())));
        }
    }
    // The embeddings were cached: one corpus and one query file, used by both runs.
    let cached = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(cached, 2);
}

#[test]
fn random_sampling_draws_from_the_qualified_candidates() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("stsb.jsonl");
    stsb_pairs(&input);
    let model = minilm_dir();
    let run = |sampling: &str, n: &str, out: &std::path::Path| {
        let o = pairtrain(&[
            "data",
            "mine-negatives",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--sampling",
            sampling,
            "--num-negatives",
            n,
            "--range-max",
            "10",
            "--output-format",
            "n-tuple",
            "--quiet",
            "--cache-dir",
            d.path().join("cache").to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        rows(out)
    };
    let random = run("random", "3", &d.path().join("random.jsonl"));
    let top10 = run("top", "10", &d.path().join("top.jsonl"));
    let pool: HashMap<(&str, &str), &[String]> = top10
        .iter()
        .map(|r| ((r[0].as_str(), r[1].as_str()), &r[2..]))
        .collect();
    let mut differs = 0;
    for r in &random {
        let Some(cands) = pool.get(&(r[0].as_str(), r[1].as_str())) else {
            continue;
        };
        assert!(r[2..].iter().all(|n| cands.contains(n)), "{r:?}");
        differs += usize::from(r[2..] != cands[..3]);
    }
    assert!(
        differs > random.len() / 2,
        "random sampling looks like top: {differs}"
    );
}
