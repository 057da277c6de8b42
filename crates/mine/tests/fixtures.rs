//! The miners on the real dump samples in ../shared/fixtures: known pairs, filter counts
//! (checked independently against the fixtures with Python's xml.etree and html modules), and
//! bad input reported by file and offset or counted.

mod common;

use common::{common, filtered, fixture, rows};
use pairs::BadRowPolicy;
use std::io::Read;
use std::path::Path;

/// Every file and folder under `dir`.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.display().to_string());
            if p.is_dir() {
                out.extend(walk(&p));
            }
        }
    }
    out
}

#[test]
fn stackexchange_coffee_pairs_and_filter_counts() {
    use mine::stackexchange::*;
    let d = tempfile::tempdir().unwrap();
    let c = common(d.path());
    let site = Site::from_path(&fixture("stackexchange/coffee.stackexchange.com-2015"));
    assert_eq!(site.name, "coffee.stackexchange.com-2015");
    let s = mine_site(&site, &Options::default(), &c).unwrap();
    assert_eq!(s.rows_in, 592);
    assert_eq!(s.rows_out["title_body"], 218);
    assert_eq!(s.rows_out["title_answer"], 203);
    assert_eq!(s.rows_out["title_body_answer"], 203);
    assert_eq!(filtered(&s, "question: title shorter than the minimum"), 3);
    assert_eq!(filtered(&s, "question: score below the minimum"), 4);
    assert_eq!(filtered(&s, "question: body shorter than the minimum"), 0);
    assert_eq!(filtered(&s, "answer: body longer than the maximum"), 4);
    assert_eq!(filtered(&s, "answer: question filtered out or missing"), 9);
    assert_eq!(filtered(&s, "not a question or answer"), 40);
    let dir = d.path().join(&site.name);
    let find = |name: &str, title: &str| -> String {
        rows(&dir, name)
            .into_iter()
            .find(|r| r[0].as_str().unwrap().starts_with(title))
            .unwrap_or_else(|| panic!("no {name} row for {title}"))[1]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Question 5: the best answer (id 7, score 11) is not the accepted one (id 8).
    let best = find(
        "title_answer",
        "How important is tamping coffee for an espresso machine",
    );
    assert!(
        best.starts_with(
            "Tamping is one of three key controls you have over the espresso brewing process;"
        ),
        "{best}"
    );
    assert!(
        find("title_body", "How should I store whole bean coffee?").starts_with(
            "I just got a pound of microroasted, local coffee and am curious what the optimal way"
        )
    );
    let tb = rows(&dir, "title_body_answer");
    assert!(tb.iter().any(|r| r[0]
        .as_str()
        .unwrap()
        .starts_with("How should I store whole bean coffee? I just got a pound")
        && r[1]
            .as_str()
            .unwrap()
            .starts_with("In a cool, dark, dry, place and whenever possible vacuum sealed.")));
    // HTML is gone, entities decoded.
    assert!(tb
        .iter()
        .all(|r| !r[1].as_str().unwrap().contains("<p>")
            && !r[1].as_str().unwrap().contains("&amp;")));
    assert!(dir.join("stats.json").is_file());

    // The accepted answer instead, on request.
    let d2 = tempfile::tempdir().unwrap();
    let o = Options {
        answer: AnswerChoice::Accepted,
        ..Default::default()
    };
    mine_site(&site, &o, &common(d2.path())).unwrap();
    let acc = rows(&d2.path().join(&site.name), "title_answer")
        .into_iter()
        .find(|r| {
            r[0].as_str()
                .unwrap()
                .starts_with("How important is tamping")
        })
        .unwrap();
    assert!(acc[1]
        .as_str()
        .unwrap()
        .starts_with("Let's start off with what the function of the tamp is."));

    // A re-run finds the site complete and skips it.
    let again = mine_site(&site, &Options::default(), &c).unwrap();
    assert_eq!(again.seconds, s.seconds);
}

#[test]
fn stackexchange_duplicates_from_postlinks() {
    use mine::stackexchange::*;
    let d = tempfile::tempdir().unwrap();
    let site = Site::from_path(&fixture(
        "stackexchange/cstheory.meta.stackexchange.com-2019",
    ));
    let s = mine_site(&site, &Options::default(), &common(d.path())).unwrap();
    assert_eq!(s.rows_out["title_body"], 544);
    assert_eq!(s.rows_out["title_answer"], 444);
    assert_eq!(filtered(&s, "question: title shorter than the minimum"), 31);
    assert_eq!(filtered(&s, "question: score below the minimum"), 10);
    assert_eq!(filtered(&s, "question: body longer than the maximum"), 4);
    assert_eq!(s.rows_out["duplicates_title"], 13);
    let dups = rows(&d.path().join(&site.name), "duplicates_title");
    assert!(dups
        .iter()
        .any(|r| r[0] == "A first slate of moderators" && r[1] == "Who should the moderators be?"));
}

#[test]
fn stackexchange_from_a_7z_archive_equals_the_folder() {
    use mine::stackexchange::*;
    let d = tempfile::tempdir().unwrap();
    let src = fixture("stackexchange/cstheory.meta.stackexchange.com-2019");
    let archive = d.path().join("cstheory.meta.stackexchange.com-2019.7z");
    sevenz_rust2::compress_to_path(&src, &archive).unwrap();
    let c = common(&d.path().join("out"));
    let a = mine_site(&Site::from_path(&archive), &Options::default(), &c).unwrap();
    let f = mine_site(
        &Site::from_path(&src),
        &Options::default(),
        &common(&d.path().join("out2")),
    )
    .unwrap();
    assert_eq!(a.rows_out, f.rows_out);
    assert_eq!(a.filtered, f.filtered);
    let name = "cstheory.meta.stackexchange.com-2019";
    // StackOverflow's layout: one archive per table, named <site>-Posts.7z, <site>-PostLinks.7z.
    let split = d.path().join("split");
    for table in ["Posts", "PostLinks"] {
        let one = d.path().join(format!("only-{table}"));
        std::fs::create_dir_all(&one).unwrap();
        std::fs::copy(
            src.join(format!("{table}.xml")),
            one.join(format!("{table}.xml")),
        )
        .unwrap();
        std::fs::create_dir_all(&split).unwrap();
        sevenz_rust2::compress_to_path(&one, split.join(format!("{name}-{table}.7z"))).unwrap();
    }
    let sp = Site::from_path(&split.join(format!("{name}-Posts.7z")));
    assert_eq!(sp.name, name);
    let s = mine_site(&sp, &Options::default(), &common(&d.path().join("out3"))).unwrap();
    assert_eq!(s.rows_out, f.rows_out);
    for o in OUTPUTS {
        assert_eq!(
            rows(&d.path().join("out").join(name), o),
            rows(&d.path().join("out2").join(name), o),
            "{o}"
        );
        assert_eq!(
            rows(&d.path().join("out3").join(name), o),
            rows(&d.path().join("out2").join(name), o),
            "{o}"
        );
    }
}

#[test]
fn stackexchange_malformed_xml_names_the_offset_or_is_counted() {
    use mine::stackexchange::*;
    let d = tempfile::tempdir().unwrap();
    let site_dir = d.path().join("bad.stackexchange.com");
    std::fs::create_dir_all(&site_dir).unwrap();
    let good = std::fs::read_to_string(fixture(
        "stackexchange/coffee.stackexchange.com-2015/Posts.xml",
    ))
    .unwrap();
    // Row 3 gets a broken Score, and the file is cut inside a later row.
    let broken = good.replacen("Score=\"13\"", "Score=\"thirteen\"", 1);
    let cut = &broken[..broken.len() * 2 / 3];
    let cut = &cut[..cut.rfind("<row").unwrap() + 30];
    std::fs::write(site_dir.join("Posts.xml"), cut).unwrap();
    let site = Site::from_path(&site_dir);
    let e = mine_site(&site, &Options::default(), &common(&d.path().join("o"))).unwrap_err();
    let msg = e.to_string();
    let at = broken.find("Score=\"thirteen\"").unwrap();
    let row_start = broken[..at].rfind("<row").unwrap();
    assert!(msg.contains("Posts.xml: byte "), "{msg}");
    assert!(msg.contains("Score is not a number"), "{msg}");
    // The offset is the start of the row (after the BOM-less prefix quick-xml counts).
    let off: usize = msg
        .split("byte ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(off.abs_diff(row_start) <= 4, "{off} vs {row_start}");
    // The failed run leaves no scratch: no spill folder, no half-written shard.
    let left: Vec<String> = walk(&d.path().join("o"))
        .into_iter()
        .filter(|p| p.contains(".spill") || p.ends_with(".partial"))
        .collect();
    assert!(left.is_empty(), "a failed run left {left:?}");

    let mut c = common(&d.path().join("o2"));
    c.policy = BadRowPolicy::Skip;
    let s = mine_site(&site, &Options::default(), &c).unwrap();
    assert_eq!(s.skipped.by_reason["malformed row"], 1);
    assert_eq!(s.skipped.by_reason["malformed XML"], 1);
    assert!(s.rows_out["title_body"] > 100);
}

#[test]
fn reddit_fixture_and_threads_built_from_it() {
    use mine::reddit::*;
    let d = tempfile::tempdir().unwrap();
    let src = fixture("reddit/pushshift_comments_sample.ndjson");
    let s = mine(
        std::slice::from_ref(&src),
        &Options::default(),
        &common(d.path()),
    )
    .unwrap();
    // Every schema in the sample (2005 to 2024) parses; none has its parent in the sample.
    assert_eq!(s.rows_in, 27);
    assert_eq!(s.skipped.total(), 0);
    assert_eq!(
        filtered(&s, "no context: top-level comment")
            + filtered(&s, "no context: parent comment not in the dump"),
        27
    );
    assert_eq!(s.rows_out["train"] + s.rows_out["test"], 0);
    // The other compressions of the dumps read the same.
    let raw = std::fs::read(&src).unwrap();
    let bz = d.path().join("c.ndjson.bz2");
    let mut e = bzip2::write::BzEncoder::new(
        std::fs::File::create(&bz).unwrap(),
        bzip2::Compression::fast(),
    );
    std::io::Write::write_all(&mut e, &raw).unwrap();
    e.finish().unwrap();
    let xz = d.path().join("c.ndjson.xz");
    let mut e = xz2::write::XzEncoder::new(std::fs::File::create(&xz).unwrap(), 1);
    std::io::Write::write_all(&mut e, &raw).unwrap();
    e.finish().unwrap();
    for (i, p) in [bz, xz].into_iter().enumerate() {
        let s = mine(
            &[p],
            &Options::default(),
            &common(&d.path().join(format!("c{i}"))),
        )
        .unwrap();
        assert_eq!(s.rows_in, 27);
    }

    // The same comments chained into one thread (each replying to the one before, in file
    // order): every consecutive pair of usable comments is an example.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&src)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut chained = String::new();
    for (i, l) in lines.iter().enumerate() {
        let mut l = l.clone();
        l["id"] = format!("zz{i:03}").into();
        l["link_id"] = "t3_thread1".into();
        l["parent_id"] = if i == 0 {
            "t3_thread1".to_string()
        } else {
            format!("t1_zz{:03}", i - 1)
        }
        .into();
        chained += &format!("{l}\n");
    }
    let p = d.path().join("chained.ndjson");
    std::fs::write(&p, chained).unwrap();
    let mut c = common(&d.path().join("chained"));
    c.force = true;
    let s = mine(&[p], &Options::default(), &c).unwrap();
    let ok = |b: &str| {
        b.chars().count() <= 127 && b.chars().count() >= 9 && b != "[deleted]" && b != "[removed]"
    };
    let bodies: Vec<&str> = lines.iter().map(|l| l["body"].as_str().unwrap()).collect();
    let expected: Vec<(usize, usize)> = (1..bodies.len())
        .filter(|&i| ok(bodies[i]) && ok(bodies[i - 1]))
        .map(|i| (i - 1, i))
        .collect();
    assert!(!expected.is_empty());
    let mut got: Vec<serde_json::Value> = rows(&d.path().join("chained"), "train");
    got.extend(rows(&d.path().join("chained"), "test"));
    // All in one thread, so all in one split: PolyAI's split is by thread.
    assert!(s.rows_out["train"] == 0 || s.rows_out["test"] == 0);
    assert_eq!(got.len(), expected.len());
    for (row, (ci, ri)) in got.iter().zip(&expected) {
        assert_eq!(row["context"], bodies[*ci]);
        assert_eq!(row["response"], bodies[*ri]);
        assert_eq!(row["context_author"], lines[*ci]["author"]);
        assert_eq!(row["response_author"], lines[*ri]["author"]);
        assert_eq!(row["subreddit"], lines[*ri]["subreddit"]);
        assert_eq!(row["thread_id"], "thread1");
        // Earlier contexts, nearest first, trimmed as PolyAI trims them; at most 9.
        for k in 0..9 {
            let key = format!("context/{k}");
            match ci.checked_sub(k + 1) {
                Some(j) => assert_eq!(row[&key], trim(bodies[j], 127).as_ref(), "{key}"),
                None => assert!(row.get(&key).is_none()),
            }
        }
        // The rows train as (context, response).
        let parsed = pairs::parse_row(&row.to_string()).unwrap();
        assert_eq!(
            parsed,
            vec![bodies[*ci].to_string(), bodies[*ri].to_string()]
        );
    }
}

#[test]
fn reddit_bad_input_names_file_and_line_or_is_counted() {
    use mine::reddit::*;
    let d = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(fixture("reddit/pushshift_comments_sample.ndjson")).unwrap();
    // An invalid JSON line (line 4).
    let mut lines: Vec<&str> = src.lines().collect();
    lines.insert(3, "{\"id\": \"x\", \"body\": ");
    let p = d.path().join("bad.ndjson");
    std::fs::write(&p, lines.join("\n")).unwrap();
    let e = mine(
        std::slice::from_ref(&p),
        &Options::default(),
        &common(&d.path().join("a")),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}: line 4, byte ", p.display())),
        "{e}"
    );
    assert!(e.to_string().contains("invalid JSON"), "{e}");
    let mut c = common(&d.path().join("b"));
    c.policy = BadRowPolicy::Skip;
    let s = mine(&[p], &Options::default(), &c).unwrap();
    assert_eq!(s.skipped.by_reason["invalid comment"], 1);
    assert_eq!(s.rows_in, 28);

    // A dump compressed as pushshift's are (zstd --long=31) reads like any other.
    let long = d.path().join("long.ndjson.zst");
    let mut e =
        zstd::stream::write::Encoder::new(std::fs::File::create(&long).unwrap(), 3).unwrap();
    e.long_distance_matching(true).unwrap();
    e.window_log(31).unwrap();
    std::io::Write::write_all(&mut e, src.as_bytes()).unwrap();
    e.finish().unwrap();
    let s = mine(
        &[long],
        &Options::default(),
        &common(&d.path().join("long")),
    )
    .unwrap();
    assert_eq!(s.rows_in, 27);

    // A truncated .zst file (generated comments: varied enough to span many zstd blocks).
    let p = d.path().join("cut.ndjson.zst");
    generate(&p, 5000, 3).unwrap();
    let z = std::fs::read(&p).unwrap();
    std::fs::write(&p, &z[..z.len() / 2]).unwrap();
    let e = mine(
        std::slice::from_ref(&p),
        &Options::default(),
        &common(&d.path().join("c")),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{}: line ", p.display())), "{msg}");
    assert!(msg.contains("truncated or corrupt"), "{msg}");
    let mut c = common(&d.path().join("d"));
    c.policy = BadRowPolicy::Skip;
    let s = mine(&[p], &Options::default(), &c).unwrap();
    assert_eq!(s.skipped.by_reason["truncated or corrupt file"], 1);
    assert!(
        s.rows_in > 1000,
        "rows before the cut are kept: {}",
        s.rows_in
    );
}

#[test]
fn reddit_groups_threads_in_random_order_across_files() {
    use mine::reddit::*;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("gen.ndjson.zst");
    generate(&p, 30_000, 7).unwrap();
    // Split the dump into two files (threads now cross files).
    let mut text = String::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(&p).unwrap())
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    let pa = d.path().join("a.ndjson");
    let pb = d.path().join("b.ndjson.gz");
    std::fs::write(&pa, a.join("\n")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&pb).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut gz, b.join("\n").as_bytes()).unwrap();
    gz.finish().unwrap();
    // Expected: one example per comment whose parent comment exists, both usable.
    let mut body = std::collections::HashMap::new();
    let mut parent = std::collections::HashMap::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        body.insert(id.clone(), v["body"].as_str().unwrap().to_string());
        parent.insert(id, v["parent_id"].as_str().unwrap().to_string());
    }
    let ok =
        |b: &str| (9..=127).contains(&b.chars().count()) && b != "[deleted]" && b != "[removed]";
    let expected = parent
        .iter()
        .filter(|(id, p)| {
            p.starts_with("t1_") && body.get(&p[3..]).is_some_and(|pb| ok(pb)) && ok(&body[*id])
        })
        .count() as u64;
    let o = Options {
        partitions: 7,
        ..Default::default()
    };
    let s = mine(&[pa, pb], &o, &common(d.path())).unwrap();
    assert_eq!(s.rows_in, 30_000);
    assert_eq!(s.rows_out["train"] + s.rows_out["test"], expected);
    let test_share = s.rows_out["test"] as f64 / expected as f64;
    assert!((0.05..0.15).contains(&test_share), "{test_share}");
    // Bots: with the filter on, their comments are never a context or response.
    let o = Options {
        bot_filter: true,
        ..Default::default()
    };
    let mut c = common(&d.path().join("bots"));
    c.force = true;
    mine(&[p], &o, &c).unwrap();
    for r in rows(&d.path().join("bots"), "train") {
        for k in ["context_author", "response_author"] {
            let a = r[k].as_str().unwrap();
            assert!(!a.ends_with("bot") && a != "AutoModerator", "{a}");
        }
    }
}

#[test]
fn wikipedia_fixture_articles_and_categories() {
    use mine::wikipedia::*;
    let d = tempfile::tempdir().unwrap();
    let c = common(d.path());
    let dump =
        fixture("wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2");
    let s = mine_dump(&dump, &Options::default(), &c).unwrap();
    let dir = d
        .path()
        .join("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened");
    assert_eq!(s.rows_in, 206);
    assert_eq!(filtered(&s, "redirect"), 99);
    assert_eq!(filtered(&s, "disambiguation page"), 8);
    assert_eq!(s.rows_out["title_intro"], 97);
    let ti = rows(&dir, "title_intro");
    let anarchism = ti.iter().find(|r| r[0] == "Anarchism").unwrap();
    assert!(anarchism[1]
        .as_str()
        .unwrap()
        .starts_with("Anarchism is a political philosophy that advocates self-governed societies"));
    for r in &ti {
        let t = r[1].as_str().unwrap();
        for bad in [
            "{{", "}}", "[[", "]]", "<ref", "{|", "'''", "&nbsp;", "<!--",
        ] {
            assert!(!t.contains(bad), "{}: {bad} in {t}", r[0]);
        }
    }
    // Redirect and disambiguation titles are absent.
    assert!(!ti
        .iter()
        .any(|r| r[0].as_str().unwrap().ends_with("(disambiguation)")));
    let sc = rows(&dir, "same_category");
    assert_eq!(sc.len() as u64, s.rows_out["same_category"]);
    assert!(sc
        .iter()
        .any(|r| r["category"] == "Member states of the United Nations"));
    for r in &sc {
        let (a, b) = (
            r["titles"][0].as_str().unwrap(),
            r["titles"][1].as_str().unwrap(),
        );
        assert_ne!(a, b);
        let intro = |t: &str| ti.iter().find(|x| x[0] == t).unwrap()[1].clone();
        assert_eq!(r["anchor"], intro(a));
        assert_eq!(r["positive"], intro(b));
    }
    // Deterministic: a second run writes the same pairs.
    let mut c2 = common(&d.path().join("again"));
    c2.force = true;
    mine_dump(&dump, &Options::default(), &c2).unwrap();
    assert_eq!(
        rows(
            &d.path().join("again").join(dir.file_name().unwrap()),
            "same_category"
        ),
        sc
    );

    // Tables in the intro are removed.
    let s = mine_dump(
        &fixture("wikipedia/enwiki-table-markup.xml.bz2"),
        &Options::default(),
        &c,
    )
    .unwrap();
    assert_eq!(s.rows_out["title_intro"], 5);
    for r in rows(&d.path().join("enwiki-table-markup"), "title_intro") {
        let t = r[1].as_str().unwrap();
        assert!(
            !t.contains("{|") && !t.contains("|-") && !t.contains("||"),
            "{t}"
        );
    }
}

#[test]
fn wikipedia_multistream_equals_single_stream() {
    use mine::wikipedia::*;
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    // Rebuild the fixture as a multistream dump: header, then 10 pages per bzip2 stream, with
    // its index.
    let mut xml = String::new();
    mine::io::open_input(
        &fixture("wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"),
        Vec::new(),
    )
    .unwrap()
    .read_to_string(&mut xml)
    .unwrap();
    let first = xml.find("  <page>").unwrap();
    let end = xml.rfind("</mediawiki>").unwrap();
    let pages: Vec<&str> = xml[first..end].split_inclusive("</page>\n").collect();
    let bz = |s: &str| {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(s.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let mut dump = bz(&xml[..first]);
    let mut index = String::new();
    for (k, chunk) in pages.chunks(10).enumerate() {
        let off = dump.len();
        for (j, _) in chunk.iter().enumerate() {
            index += &format!("{off}:{}:t{k}-{j}\n", k * 10 + j);
        }
        dump.extend(bz(&chunk.concat()));
    }
    dump.extend(bz(&xml[end..]));
    let p = d
        .path()
        .join("enwiki-test-pages-articles-multistream.xml.bz2");
    std::fs::write(&p, dump).unwrap();
    std::fs::write(
        d.path()
            .join("enwiki-test-pages-articles-multistream-index.txt.bz2"),
        bz(&index),
    )
    .unwrap();
    let mut c = common(&d.path().join("multi"));
    c.threads = 2;
    let m = mine_dump(&p, &Options::default(), &c).unwrap();
    let mut c1 = common(&d.path().join("single"));
    c1.threads = 1;
    let s = mine_dump(&p, &Options::default(), &c1).unwrap();
    assert_eq!(m.rows_out["title_intro"], 97);
    assert_eq!(m.rows_out, s.rows_out);
    let name = "enwiki-test-pages-articles-multistream";
    for o in ["title_intro", "same_category"] {
        assert_eq!(
            rows(&d.path().join("multi").join(name), o),
            rows(&d.path().join("single").join(name), o)
        );
    }
}

/// Broken markup never panics the text cleaners (real dumps have every kind of it).
#[test]
fn cleaners_survive_random_markup() {
    let pieces = [
        "[[",
        "]]",
        "{{",
        "}}",
        "<ref",
        "<ref name=a/>",
        "</ref>",
        "{|",
        "|}",
        "é",
        "中",
        "😀",
        "[http://x",
        "[https://y text]",
        "]",
        "(",
        ")",
        "'''",
        "''",
        "<!--",
        "-->",
        "|",
        ":",
        "File:",
        "Category:",
        "de:",
        "__",
        "__NOTOC__",
        "_",
        "&amp;",
        "&#x1F600;",
        "&#99999999;",
        "&",
        ";",
        "<",
        ">",
        "<p>",
        "</p>",
        "<pre>",
        "<br/>",
        "\n",
        "== H ==\n",
        " ",
        "a",
        "word",
        "<gallery>",
        "(; )",
    ];
    let ns = mine::siteinfo::Namespaces::default();
    let mut rng = pairs::rng::Rng::new(11);
    for _ in 0..3000 {
        let n = rng.below(40) as usize;
        let s: String = (0..n)
            .map(|_| pieces[rng.below(pieces.len() as u64) as usize])
            .collect();
        let w = mine::wikitext::clean(mine::wikitext::intro(&s), &ns);
        // Never more text than went in (cleaning only removes and unwraps).
        assert!(w.len() <= s.len() + 4, "{s:?} → {w:?}");
        let _ = mine::wikitext::categories(&s, &ns);
        let _ = mine::wikitext::langlinks(&s, &ns);
        let _ = mine::html::html_to_text(&s);
        for max in [0, 1, 2, 9, 127] {
            assert!(mine::reddit::trim(&s, max).chars().count() <= max);
        }
    }
}
