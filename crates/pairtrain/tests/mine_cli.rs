//! `pairtrain mine …` end to end on the fixtures: outputs and stats.json, `--limit`, a re-run
//! that skips complete work, and mined pairs that the trainer's loader reads.

use test_support::shared_dir;

fn pairtrain(args: &[&str]) -> std::process::Output {
    test_support::run_cli(env!("CARGO_BIN_EXE_pairtrain"), args)
}

#[test]
fn mine_stackexchange_with_limit_then_rerun_skips() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("se");
    let site = shared_dir().join("fixtures/stackexchange/coffee.stackexchange.com-2015");
    let args = [
        "mine",
        "stackexchange",
        site.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--limit",
        "100",
        "--quiet",
    ];
    let o = pairtrain(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = out.join("coffee.stackexchange.com-2015");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["rows_in"], 100);
    assert_eq!(stats["complete"], true);
    let n = stats["rows_out"]["title_body"].as_u64().unwrap();
    assert!(n > 20 && n < 100, "{n}");
    // The pair files are what the loader reads: every row valid.
    let files = dir.join("*.jsonl.gz").display().to_string();
    let o = pairtrain(&["data", "validate", &files]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!std::fs::read_dir(&dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".partial")));
    // A second run finds the site complete: same stats, untouched files.
    let before = std::fs::metadata(dir.join("title_body-00000.jsonl.gz"))
        .unwrap()
        .modified()
        .unwrap();
    let o = pairtrain(&args);
    assert!(o.status.success());
    let after = std::fs::metadata(dir.join("title_body-00000.jsonl.gz"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn mine_commands_explain_themselves() {
    let o = pairtrain(&["mine", "reddit", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("PolyAI") && help.contains("--filter-bots"),
        "{help}"
    );
    let o = pairtrain(&["mine", "reddit", "/no/such/file.zst", "--out", "/tmp/x"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/file.zst: no such file"));
}

#[test]
fn mine_wikipedia_reports_its_languages_and_namespaces() {
    let d = tempfile::tempdir().unwrap();
    let dump = shared_dir().join(
        "fixtures/wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    );
    let out = d.path().join("wiki");
    let o = pairtrain(&[
        "mine",
        "wikipedia",
        dump.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--lang-report",
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("language: en (dbname enwiki)")
            && err.contains("categories: Category\n")
            && err.contains("files: File, Image\n")
            && err.contains("100 Portal"),
        "{err}"
    );
    // The cross-language miner wants two dumps of two languages.
    let o = pairtrain(&[
        "mine",
        "wikipedia-langlinks",
        "--dump",
        dump.to_str().unwrap(),
        "--dump",
        dump.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("both the en Wikipedia"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
