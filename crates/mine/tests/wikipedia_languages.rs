//! Wikipedias in other languages: namespace names from the dump's siteinfo (same-category pairs
//! on a German and a Latgalian dump), intros without leftover markup, and cross-language pairs
//! from two dumps joined by their interlanguage links (a langlinks table, or the wikitext).
//!
//! The dumps are small pages-articles files in the MediaWiki export format (schema 0.10, as
//! the dumps are written), with the constructs real dumps have: localized category and file
//! links, image captions with nested piped links, behaviour switches, interlanguage links on
//! lines of their own (also empty ones), redirects, user pages, pages without <ns>.

mod common;

use common::{common, filtered, rows};
use mine::wikipedia::{mine_dump, Options};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A page of the export format.
fn page(id: u64, ns: Option<i32>, title: &str, text: &str) -> String {
    let ns = ns.map_or(String::new(), |n| format!("    <ns>{n}</ns>\n"));
    let text = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "  <page>\n    <title>{title}</title>\n{ns}    <id>{id}</id>\n    <revision>\n      \
         <id>{}</id>\n      <contributor>\n        <username>X</username>\n        <id>7</id>\n      \
         </contributor>\n      <model>wikitext</model>\n      <format>text/x-wiki</format>\n      \
         <text xml:space=\"preserve\">{text}</text>\n    </revision>\n  </page>\n",
        id + 1000
    )
}

fn redirect(id: u64, title: &str, target: &str) -> String {
    format!(
        "  <page>\n    <title>{title}</title>\n    <ns>0</ns>\n    <id>{id}</id>\n    \
         <redirect title=\"{target}\" />\n    <revision>\n      <id>{}</id>\n      \
         <text xml:space=\"preserve\">#REDIRECT [[{target}]]</text>\n    </revision>\n  </page>\n",
        id + 1000
    )
}

/// A dump of `pages` for wiki `dbname` with the given local namespace names, bzip2-compressed.
fn dump(
    dir: &Path,
    name: &str,
    dbname: &str,
    lang: &str,
    ns: &[(i32, &str)],
    pages: &[String],
) -> PathBuf {
    let mut xml = format!(
        "<mediawiki xmlns=\"http://www.mediawiki.org/xml/export-0.10/\" version=\"0.10\" \
         xml:lang=\"{lang}\">\n  <siteinfo>\n    <sitename>Wikipedia</sitename>\n    \
         <dbname>{dbname}</dbname>\n    <base>https://{lang}.wikipedia.org/wiki/</base>\n    \
         <case>first-letter</case>\n    <namespaces>\n      \
         <namespace key=\"0\" case=\"first-letter\" />\n"
    );
    for (k, n) in ns {
        xml += &format!("      <namespace key=\"{k}\" case=\"first-letter\">{n}</namespace>\n");
    }
    xml += "    </namespaces>\n  </siteinfo>\n";
    for p in pages {
        xml += p;
    }
    xml += "</mediawiki>\n";
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(xml.as_bytes()).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, e.finish().unwrap()).unwrap();
    path
}

const DE_NS: &[(i32, &str)] = &[
    (-2, "Medium"),
    (2, "Benutzer"),
    (6, "Datei"),
    (10, "Vorlage"),
    (14, "Kategorie"),
];

/// No markup of any kind left in an intro.
fn assert_plain(title: &str, intro: &str) {
    for bad in ["[[", "]]", "{{", "}}", "<ref", "'''"] {
        assert!(!intro.contains(bad), "{title}: {bad} in {intro:?}");
    }
    let words: Vec<&str> = intro.split("__").collect();
    for w in words.iter().skip(1).take(words.len().saturating_sub(2)) {
        assert!(
            w.is_empty() || w.chars().any(|c| c.is_lowercase() || c.is_whitespace()),
            "{title}: a magic word __{w}__ in {intro:?}"
        );
    }
    for prefix in [
        "fiu-vro:", "bat-smg:", "en:", "fr:", "lv:", "Datei:", "Fails:",
    ] {
        assert!(!intro.contains(prefix), "{title}: {prefix} in {intro:?}");
    }
}

#[test]
fn german_dump_namespaces_intros_and_category_pairs() {
    let d = tempfile::tempdir().unwrap();
    let cities = [
        ("Berlin", "Hauptstadt in Europa", "Ort in Deutschland"),
        ("Paris", "Hauptstadt in Europa", "Ort in Frankreich"),
        ("Wien", "Hauptstadt in Europa", "Ort in Österreich"),
        ("Hamburg", "Ort in Deutschland", "Hafenstadt"),
        ("München", "Ort in Deutschland", "Ort in Bayern"),
        ("Marseille", "Hafenstadt", "Ort in Frankreich"),
    ];
    let mut pages = vec![page(
        1,
        Some(0),
        "Berlin",
        "__NOTOC__\n[[Datei:Berlin Mitte.jpg|mini|Blick über [[Berlin-Mitte|Mitte]] mit dem \
         [[Fernsehturm Berlin|Fernsehturm]]]]\n[[Bild:Alt.jpg|mini|Altes [[Foto]]]]\n\
         '''Berlin''' ist die [[Hauptstadt]] der \
         [[de:Deutschland|Bundesrepublik Deutschland]]<ref>{{Internetquelle|url=x}}</ref>. \
         <!-- [[Kategorie:Versteckt]] [[fr:Caché]] --> \
         __KEINVERZEICHNIS__\n\n[[Kategorie:Hauptstadt in Europa]]\n[[Kategorie:Ort in Deutschland|!]]\n\
         [[en:Berlin]]\n[[fiu-vro:Berliin]]\n[[bat-smg:Berlīns]]\n[[fr:]]\n",
    )];
    for (i, (title, c1, c2)) in cities.iter().enumerate().skip(1) {
        // Half the pages name categories with the canonical English prefix, valid everywhere.
        let cat = if i % 2 == 0 { "Category" } else { "Kategorie" };
        pages.push(page(
            1 + i as u64,
            Some(0),
            title,
            &format!(
                "'''{title}''' ist eine Stadt in Europa, bekannt für ihre Geschichte.\n\
                 [[{cat}:{c1}]]\n[[kategorie:{c2}]]\n[[Kategorie:Große Kategorie]]\n[[en:{title}]]\n"
            ),
        ));
    }
    for i in 0..6 {
        // A category bigger than the maximum below.
        pages.push(page(
            20 + i,
            Some(0),
            &format!("Ort {i}"),
            &format!("'''Ort {i}''' ist ein Ort mit einer langen Geschichte.\n[[Kategorie:Große Kategorie]]"),
        ));
    }
    pages.push(page(
        40,
        Some(2),
        "Benutzer:Jemand",
        "Ich bin ein Benutzer dieser Wikipedia hier.",
    ));
    // Before export schema 0.5 pages had no <ns>: the title's prefix says it.
    pages.push(page(
        41,
        None,
        "Kategorie:Hauptstadt in Europa",
        "Städte, die Hauptstädte eines Staates in Europa sind.",
    ));
    pages.push(redirect(42, "BER", "Berlin"));
    // An old dump's redirect: no <redirect> element, the German magic word.
    pages.push(page(43, Some(0), "Bärlin", "#WEITERLEITUNG [[Berlin]]"));
    pages.push(page(
        44,
        Some(0),
        "Mitte",
        "'''Mitte''' steht für:\n* [[Berlin-Mitte]], ein Bezirk\n* die Mitte einer Strecke\n\
         {{Begriffsklärung}}",
    ));
    let path = dump(
        d.path(),
        "dewiki-test-pages-articles.xml.bz2",
        "dewiki",
        "de",
        DE_NS,
        &pages,
    );

    let site = mine::siteinfo::read(&path).unwrap();
    assert_eq!(site.language.as_deref(), Some("de"));
    let report = site.report();
    assert!(
        report.contains("categories: Kategorie, Category"),
        "{report}"
    );
    assert!(
        report.contains("files: Datei, Bild, File, Image"),
        "{report}"
    );

    let o = Options {
        max_category_size: 8,
        pairs_per_category: 1,
        ..Default::default()
    };
    let s = mine_dump(&path, &o, &common(d.path())).unwrap();
    assert_eq!(s.language.as_deref(), Some("de"));
    assert_eq!(s.rows_in, 17);
    assert_eq!(filtered(&s, "not an article (namespace)"), 2);
    assert_eq!(filtered(&s, "redirect"), 2);
    assert_eq!(filtered(&s, "disambiguation page"), 1);
    assert_eq!(s.rows_out["title_intro"], 12);
    let dir = d.path().join("dewiki-test-pages-articles");
    let ti = rows(&dir, "title_intro");
    assert_eq!(
        ti[0],
        serde_json::json!([
            "Berlin",
            "Berlin ist die Hauptstadt der Bundesrepublik Deutschland."
        ])
    );
    for r in &ti {
        assert_plain(r[0].as_str().unwrap(), r[1].as_str().unwrap());
    }
    // Same-category pairs with the 2021 rules: at most `pairs_per_category` per category, the
    // category of 11 members skipped, one-member categories none.
    let sc = rows(&dir, "same_category");
    let mut cats: Vec<&str> = sc.iter().map(|r| r["category"].as_str().unwrap()).collect();
    cats.sort();
    assert_eq!(
        cats,
        [
            "Hafenstadt",
            "Hauptstadt in Europa",
            "Ort in Deutschland",
            "Ort in Frankreich"
        ]
    );
    assert_eq!(filtered(&s, "category larger than the maximum"), 1);
    assert_eq!(filtered(&s, "category with one member"), 2);
    for r in &sc {
        let (a, b) = (
            r["titles"][0].as_str().unwrap(),
            r["titles"][1].as_str().unwrap(),
        );
        let want = cities
            .iter()
            .filter(|c| c.1 == r["category"] || c.2 == r["category"]);
        let members: Vec<&str> = want.map(|c| c.0).collect();
        assert!(
            members.contains(&a) && members.contains(&b) && a != b,
            "{r}"
        );
    }
}

const LTG_NS: &[(i32, &str)] = &[(2, "Lītuotuojs"), (6, "Fails"), (14, "Kategoreja")];
const LV_NS: &[(i32, &str)] = &[(2, "Dalībnieks"), (6, "Attēls"), (14, "Kategorija")];

/// A Latgalian and a Latvian dump, and the Latgalian langlinks table.
fn baltic(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ltg = dump(
        dir,
        "ltgwiki-20170101-pages-articles.xml.bz2",
        "ltgwiki",
        "ltg",
        LTG_NS,
        &[
            page(
                10,
                Some(0),
                "Rēzekne",
                "'''Rēzekne''' ir pilsāta Latgolā, pi Rēzeknis upis.\n\
                 [[Kategoreja:Latgolys pilsātys]]\n[[lv:Rēzekne]]\n[[de:Rēzekne]]\n",
            ),
            page(
                11,
                Some(0),
                "Daugova",
                "'''Daugova''' ir upe, kura tek car Boltkrīviju, Latveju i Latgolu.\n\
                 [[Kategoreja:Upis]]\n",
            ),
            page(
                12,
                Some(0),
                "Latgola",
                "'''Latgola''' ir vēsturisks nūvods Latvejis vokorūs.\n\
                 [[Kategoreja:Latgola]]\n[[lv:Latgale]]\n",
            ),
            page(
                13,
                Some(0),
                "Reiga",
                "[[Fails:Riga.jpg|thumb|Vacuo Reiga, [[Daugova|Daugovys]] molā, [[Reiga|Reigā]], \
                 pastateita 1201]]\n__NOTOC__\n'''Reiga''' ir Latvejis golvysmīsts.\n\
                 [[Kategoreja:Latgolys pilsātys]]\n[[lv:Rīga]]\n[[fiu-vro:Riia]]\n",
            ),
            page(
                14,
                Some(0),
                "Kruoslova",
                "'''Kruoslova''' ir pilsāta Latgolys dīnvydūs, pi Daugovys.\n",
            ),
        ],
    );
    let lv = dump(
        dir,
        "lvwiki-20170101-pages-articles.xml.bz2",
        "lvwiki",
        "lv",
        LV_NS,
        &[
            page(
                100,
                Some(0),
                "Rēzekne",
                "'''Rēzekne''' ir valstspilsēta Latgalē, pie Rēzeknes upes.\n[[Kategorija:Latvijas pilsētas]]",
            ),
            page(
                101,
                Some(0),
                "Daugava",
                "'''Daugava''' ir upe Krievijā, Baltkrievijā un Latvijā.\n[[Kategorija:Upes]]",
            ),
            page(
                102,
                Some(0),
                "Latgale",
                "'''Latgale''' ir vēsturisks novads Latvijas austrumos.\n[[Kategorija:Latgale]]",
            ),
            redirect(103, "Latgales reģions", "Latgale"),
            // Too short an intro: the link reaches nothing kept.
            page(104, Some(0), "Rīga", "'''Rīga'''."),
        ],
    );
    // The table of current dumps: rows for other languages, for pages A does not have, a link
    // to a redirect (underscores, as the table writes titles), and one only the table knows.
    let sql = "-- MySQL dump 10.19\n\
               CREATE TABLE `langlinks` (\n  `ll_from` int(8) unsigned NOT NULL DEFAULT 0\n);\n\
               INSERT INTO `langlinks` VALUES (10,'de','Rēzekne'),(10,'lv','Rēzekne'),\
               (11,'lv','Daugava'),(12,'lv','Latgales_reģions'),(13,'lv','Rīga'),\
               (14,'de','Krāslava');\n\
               INSERT INTO `langlinks` VALUES (99,'lv','Nīca'),(12,'fr','Latgale');\n";
    let path = dir.join("ltgwiki-20170101-langlinks.sql.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(sql.as_bytes()).unwrap();
    std::fs::write(&path, e.finish().unwrap()).unwrap();
    (ltg, lv, path)
}

fn pairs_of(dir: &Path) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = rows(dir, "langlinks")
        .iter()
        .map(|r| {
            assert_eq!(r["languages"], serde_json::json!(["ltg", "lv"]));
            let s = |v: &serde_json::Value| v.as_str().unwrap().to_string();
            (
                s(&r["titles"][0]),
                s(&r["titles"][1]),
                s(&r["anchor"]),
                s(&r["positive"]),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn cross_language_pairs_from_a_langlinks_table_and_from_wikitext() {
    use mine::wikipedia_langlinks::{mine, Options};
    let d = tempfile::tempdir().unwrap();
    let (ltg, lv, sql) = baltic(d.path());
    let o = Options {
        langlinks: Some(sql),
        ..Default::default()
    };
    let s = mine(&ltg, &lv, &o, &common(&d.path().join("table"))).unwrap();
    assert_eq!(s.language.as_deref(), Some("ltg-lv"));
    let p = |a: &str, b: &str, ia: &str, ib: &str| {
        (a.to_string(), b.to_string(), ia.to_string(), ib.to_string())
    };
    let rezekne = p(
        "Rēzekne",
        "Rēzekne",
        "Rēzekne ir pilsāta Latgolā, pi Rēzeknis upis.",
        "Rēzekne ir valstspilsēta Latgalē, pie Rēzeknes upes.",
    );
    let latgola = p(
        "Latgola",
        "Latgale",
        "Latgola ir vēsturisks nūvods Latvejis vokorūs.",
        "Latgale ir vēsturisks novads Latvijas austrumos.",
    );
    let daugova = p(
        "Daugova",
        "Daugava",
        "Daugova ir upe, kura tek car Boltkrīviju, Latveju i Latgolu.",
        "Daugava ir upe Krievijā, Baltkrievijā un Latvijā.",
    );
    assert_eq!(
        pairs_of(&d.path().join("table").join("ltg-lv")),
        [daugova.clone(), latgola.clone(), rezekne.clone()]
    );
    assert_eq!(s.rows_out["langlinks"], 3);
    assert_eq!(filtered(&s, "article with no link to lv"), 1);
    assert_eq!(
        filtered(
            &s,
            "linked article not kept in B (missing, or filtered there)"
        ),
        1
    );

    // Without the table: the links in the wikitext (Daugova has none; Latgola's goes straight
    // to the article).
    let s = mine(
        &ltg,
        &lv,
        &Options::default(),
        &common(&d.path().join("text")),
    )
    .unwrap();
    assert_eq!(
        pairs_of(&d.path().join("text").join("ltg-lv")),
        [latgola, rezekne]
    );
    assert_eq!(filtered(&s, "article with no link to lv"), 2);
    // The caption with nested piped links went whole, and so did the switch and the links.
    let ti = {
        let c = common(&d.path().join("single"));
        mine_dump(&ltg, &mine::wikipedia::Options::default(), &c).unwrap();
        rows(
            &d.path()
                .join("single")
                .join("ltgwiki-20170101-pages-articles"),
            "title_intro",
        )
    };
    let reiga = ti.iter().find(|r| r[0] == "Reiga").unwrap();
    assert_eq!(reiga[1], "Reiga ir Latvejis golvysmīsts.");
    for r in &ti {
        assert_plain(r[0].as_str().unwrap(), r[1].as_str().unwrap());
    }
    let sc = rows(
        &d.path()
            .join("single")
            .join("ltgwiki-20170101-pages-articles"),
        "same_category",
    );
    assert_eq!(sc.len(), 1);
    assert_eq!(sc[0]["category"], "Latgolys pilsātys");
}

#[test]
fn langlinks_errors_name_the_file_and_line() {
    use mine::wikipedia_langlinks::{mine, Options};
    let d = tempfile::tempdir().unwrap();
    let (ltg, lv, _) = baltic(d.path());
    let bad = d.path().join("bad-langlinks.sql");
    std::fs::write(
        &bad,
        "-- dump\nINSERT INTO `langlinks` VALUES (10,'lv','Rēzekne');\n\
         INSERT INTO `langlinks` VALUES (11,'lv','Daugava),(12,'lv','X');\n",
    )
    .unwrap();
    let o = Options {
        langlinks: Some(bad.clone()),
        ..Default::default()
    };
    let out = d.path().join("out");
    let e = mine(&ltg, &lv, &o, &common(&out)).unwrap_err().to_string();
    assert!(
        e.contains("bad-langlinks.sql") && e.contains("line 3"),
        "{e}"
    );
    // Nothing half-written is left.
    assert!(!out.join("ltg-lv").join(".spill").exists());
    assert!(rows_exist(&out.join("ltg-lv")).is_empty());
    // Under skip: counted, and the good rows still give their pair.
    let mut c = common(&out);
    c.policy = pairs::BadRowPolicy::Skip;
    let s = mine(&ltg, &lv, &o, &c).unwrap();
    assert_eq!(s.skipped.total(), 1);
    assert_eq!(s.rows_out["langlinks"], 1);
    // Another table's dump is no langlinks table.
    let other = d.path().join("pagelinks.sql");
    std::fs::write(&other, "INSERT INTO `pagelinks` VALUES (1,0,'X');\n").unwrap();
    let o = Options {
        langlinks: Some(other),
        ..Default::default()
    };
    let e = mine(&ltg, &lv, &o, &common(&out)).unwrap_err().to_string();
    assert!(
        e.contains("pagelinks.sql") && e.contains("no `INSERT INTO"),
        "{e}"
    );
    // Two dumps of one language are refused.
    let e = mine(&ltg, &ltg, &Options::default(), &common(&out))
        .unwrap_err()
        .to_string();
    assert!(e.contains("both the ltg Wikipedia"), "{e}");
}

fn rows_exist(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains("langlinks-"))
                .collect()
        })
        .unwrap_or_default()
}
