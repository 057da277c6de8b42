//! Cross-language Wikipedia pairs: (intro of an article in language A, intro of the same
//! article in language B), for multilingual training and as parallel-ish data for distillation.
//!
//! Which article of B is "the same" comes from A's interlanguage links: the `langlinks` table
//! (`*-langlinks.sql.gz`, rows `(ll_from, ll_lang, ll_title)`: current dumps, where the links
//! live in Wikidata and no longer in the wikitext) or, without it, the `[[xx:Title]]` links in
//! A's wikitext (older dumps). A link to a redirect of B is followed one step.
//!
//! The join is on B's title and spills to disk by title: A's linked articles, B's articles and
//! B's redirects go to P partitions; each partition is joined in memory, and links that reach a
//! redirect are joined again in a second pass. Memory is one partition plus, with a langlinks
//! file, A's links to B (page id → title).

use crate::io::{io_err, open_input, Common, MineError, Result, RunStats, ShardWriter};
use crate::siteinfo::SiteInfo;
use crate::spill::{partitions_for, read_partition, ScratchDir, SpillWriter};
use crate::wikipedia::{scan, Entry, Options as WikiOptions};
use crate::wikitext::normalize_title;
use pairs::BadRowPolicy;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A's `langlinks` table dump; without it, the links in A's wikitext.
    pub langlinks: Option<PathBuf>,
    /// Intro cleaning and filters, as `mine wikipedia`.
    pub wiki: WikiOptions,
}

const NOT_KEPT: &str = "linked article not kept in B (missing, or filtered there)";
const VIA_REDIRECT_NOT_KEPT: &str =
    "linked redirect of B leads to nothing kept (a double redirect, or its target filtered)";

/// A spilled record, keyed by a title of B.
#[derive(Serialize, Deserialize)]
enum Rec {
    /// An article of A linked to `to` in B.
    Linked {
        to: String,
        title: String,
        intro: String,
    },
    Article {
        title: String,
        intro: String,
    },
    Redirect {
        title: String,
        target: String,
    },
}

fn language(site: &SiteInfo, dump: &Path) -> Result<String> {
    site.language.clone().ok_or_else(|| MineError::Bad {
        path: dump.to_path_buf(),
        at: "the siteinfo".into(),
        msg: "cannot tell the dump's language: no <dbname>, xml:lang or <base> \
              (see `pairtrain mine wikipedia --lang-report`)"
            .into(),
    })
}

/// Mines the pairs of dumps `a` and `b` into `<out>/<lang A>-<lang B>/langlinks-*`.
pub fn mine(a: &Path, b: &Path, o: &Options, c: &Common) -> Result<RunStats> {
    let t0 = std::time::Instant::now();
    let (site_a, site_b) = (crate::siteinfo::read(a)?, crate::siteinfo::read(b)?);
    let (lang_a, lang_b) = (language(&site_a, a)?, language(&site_b, b)?);
    if lang_a == lang_b {
        return Err(MineError::Other(format!(
            "{} and {} are both the {lang_a} Wikipedia: give dumps of two languages",
            a.display(),
            b.display()
        )));
    }
    let dir = c.out.join(format!("{lang_a}-{lang_b}"));
    let mut inputs = vec![a.display().to_string(), b.display().to_string()];
    if let Some(l) = &o.langlinks {
        inputs.push(l.display().to_string());
    }
    if !c.force {
        if let Some(done) = RunStats::completed(&dir, &inputs) {
            return Ok(done);
        }
    }
    let mut stats = RunStats {
        inputs,
        language: Some(format!("{lang_a}-{lang_b}")),
        ..Default::default()
    };
    let (counters, own) = c.counters();
    let table = match &o.langlinks {
        Some(p) => Some(read_langlinks(p, &lang_b, c, &counters, &mut stats)?),
        None => None,
    };
    let work = ScratchDir::new(dir.join(".spill"))?;
    let size = std::fs::metadata(a).map_err(io_err(a))?.len()
        + std::fs::metadata(b).map_err(io_err(b))?.len();
    // Intros are spilled whole, so the partitions are sized on the compressed dumps (several
    // times smaller than the raw XML, a few times larger than the intros).
    let spill = SpillWriter::new(&work.join("1"), partitions_for(size, o.wiki.partitions))?;
    let parts = spill.parts();

    let wiki_a = WikiOptions {
        langlinks: table.is_none(),
        ..o.wiki.clone()
    };
    let no_link = format!("article with no link to {lang_b}");
    scan(
        a,
        &wiki_a,
        c,
        &site_a,
        &counters,
        &mut stats,
        &mut |e, st| {
            let Entry::Article(art) = e else {
                return Ok(());
            };
            let to = match &table {
                Some(t) => art.id.and_then(|id| t.get(&id).cloned()),
                None => art
                    .langlinks
                    .into_iter()
                    .find(|(code, _)| *code == lang_b)
                    .map(|(_, t)| t),
            };
            match to {
                Some(to) => spill.put(
                    &to,
                    &Rec::Linked {
                        to: to.clone(),
                        title: art.title,
                        intro: art.intro,
                    },
                ),
                None => {
                    st.filter(&no_link);
                    Ok(())
                }
            }
        },
    )?;
    let wiki_b = WikiOptions {
        langlinks: false,
        ..o.wiki.clone()
    };
    scan(
        b,
        &wiki_b,
        c,
        &site_b,
        &counters,
        &mut stats,
        &mut |e, _| {
            let (key, rec) = match e {
                Entry::Article(art) => (
                    normalize_title(&art.title),
                    Rec::Article {
                        title: art.title,
                        intro: art.intro,
                    },
                ),
                Entry::Redirect { title, target } => (
                    normalize_title(&title),
                    Rec::Redirect {
                        title,
                        target: normalize_title(&target),
                    },
                ),
            };
            spill.put(&key, &rec)
        },
    )?;
    spill.finish()?;

    let mut out = ShardWriter::new(&dir, "langlinks", c.compression, c.shard_bytes);
    let mut write = |ta: &str, ia: &str, tb: &str, ib: &str| {
        out.write(&serde_json::json!({
            "anchor": ia,
            "positive": ib,
            "titles": [ta, tb],
            "languages": [lang_a, lang_b],
        }))
    };
    // Pass 1: links that reach an article; those that reach a redirect are spilled again under
    // the redirect's target, by the same partitioning, for pass 2.
    let again = SpillWriter::new(&work.join("2"), parts)?;
    for part in 0..parts {
        let recs: Vec<Rec> = read_partition(&work.join("1"), part)?;
        let mut articles: HashMap<String, (String, String)> = HashMap::new();
        let mut redirects: HashMap<String, String> = HashMap::new();
        let mut linked = Vec::new();
        for r in recs {
            match r {
                Rec::Article { title, intro } => {
                    articles
                        .entry(normalize_title(&title))
                        .or_insert((title, intro));
                }
                Rec::Redirect { title, target } => {
                    redirects.insert(normalize_title(&title), target);
                }
                l @ Rec::Linked { .. } => linked.push(l),
            }
        }
        for l in linked {
            let Rec::Linked { to, title, intro } = l else {
                continue;
            };
            if let Some((tb, ib)) = articles.get(&to) {
                write(&title, &intro, tb, ib)?;
            } else if let Some(target) = redirects.get(&to) {
                again.put(
                    target,
                    &Rec::Linked {
                        to: target.clone(),
                        title,
                        intro,
                    },
                )?;
            } else {
                stats.filter(NOT_KEPT);
            }
        }
    }
    again.finish()?;
    for part in 0..parts {
        let linked: Vec<Rec> = read_partition(&work.join("2"), part)?;
        if linked.is_empty() {
            continue;
        }
        let mut articles: HashMap<String, (String, String)> = HashMap::new();
        for r in read_partition::<Rec>(&work.join("1"), part)? {
            if let Rec::Article { title, intro } = r {
                articles
                    .entry(normalize_title(&title))
                    .or_insert((title, intro));
            }
        }
        for l in linked {
            let Rec::Linked { to, title, intro } = l else {
                continue;
            };
            match articles.get(&to) {
                Some((tb, ib)) => write(&title, &intro, tb, ib)?,
                None => stats.filter(VIA_REDIRECT_NOT_KEPT),
            }
        }
    }
    let (n, _) = out.finish()?;
    stats.rows_out.insert("langlinks".into(), n);
    drop(work);
    stats.bytes_in = own.load(std::sync::atomic::Ordering::Relaxed);
    stats.finish(t0.elapsed().as_secs_f64());
    stats.write(&dir)?;
    Ok(stats)
}

/// A's links to language `lang`, page id → normalized title of B, from a `langlinks` table dump.
fn read_langlinks(
    path: &Path,
    lang: &str,
    c: &Common,
    counters: &crate::io::Counters,
    stats: &mut RunStats,
) -> Result<HashMap<u64, String>> {
    let mut r = open_input(path, counters.clone())?;
    let mut out = HashMap::new();
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut inserts = 0u64;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).map_err(io_err(path))? == 0 {
            break;
        }
        number += 1;
        let Some(values) = insert_values(&line) else {
            continue;
        };
        inserts += 1;
        let rows = match parse_tuples(values) {
            Ok(rows) => rows,
            Err(msg) => match c.policy {
                BadRowPolicy::Error => {
                    return Err(MineError::Bad {
                        path: path.to_path_buf(),
                        at: format!("line {number}"),
                        msg,
                    })
                }
                BadRowPolicy::Skip => {
                    stats.skipped.add(
                        "malformed langlinks INSERT",
                        format!("{}: line {number}: {msg}", path.display()),
                    );
                    continue;
                }
            },
        };
        for (from, ll_lang, title) in rows {
            if crate::langcodes::canonical(&ll_lang).is_some_and(|l| l == lang) || ll_lang == lang {
                // A section of an article is not the article.
                if title.contains('#') {
                    continue;
                }
                let title = normalize_title(&title);
                if !title.is_empty() {
                    out.entry(from).or_insert(title);
                }
            }
        }
    }
    if inserts == 0 {
        return Err(MineError::Bad {
            path: path.to_path_buf(),
            at: format!("all {number} lines"),
            msg: "no `INSERT INTO `langlinks` VALUES` statement: is this a langlinks table dump \
                  (…-langlinks.sql.gz)?"
                .into(),
        });
    }
    Ok(out)
}

/// The `(…),(…);` part of an `INSERT INTO `langlinks` VALUES …` line, if it is one.
fn insert_values(line: &[u8]) -> Option<&[u8]> {
    const HEAD: &[u8] = b"INSERT INTO `langlinks` VALUES ";
    line.strip_prefix(HEAD)
}

/// MySQL's extended INSERT tuples `(ll_from,'ll_lang','ll_title')`, with its string escapes.
fn parse_tuples(s: &[u8]) -> std::result::Result<Vec<(u64, String, String)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| format!("at byte {} of the VALUES list", i + 1);
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && s[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if s.get(i) != Some(&b'(') {
            return Err(format!("expected '(' {}", at(i)));
        }
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        let from: u64 = std::str::from_utf8(&s[start..i])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("ll_from is not a number {}", at(start)))?;
        let mut strings = [String::new(), String::new()];
        for slot in &mut strings {
            if s.get(i) != Some(&b',') || s.get(i + 1) != Some(&b'\'') {
                return Err(format!("expected ,'…' {}", at(i)));
            }
            i += 2;
            let mut bytes = Vec::new();
            loop {
                match s.get(i) {
                    None => return Err(format!("unterminated string {}", at(i))),
                    Some(b'\\') => {
                        let e = *s
                            .get(i + 1)
                            .ok_or_else(|| format!("dangling \\ {}", at(i)))?;
                        bytes.push(match e {
                            b'0' => 0,
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'Z' => 26,
                            other => other,
                        });
                        i += 2;
                    }
                    Some(b'\'') if s.get(i + 1) == Some(&b'\'') => {
                        bytes.push(b'\'');
                        i += 2;
                    }
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(&b) => {
                        bytes.push(b);
                        i += 1;
                    }
                }
            }
            *slot = String::from_utf8(bytes)
                .map_err(|_| format!("a string that is not UTF-8 {}", at(i)))?;
        }
        if s.get(i) != Some(&b')') {
            return Err(format!("expected ')' {}", at(i)));
        }
        i += 1;
        let [l, t] = strings;
        out.push((from, l, t));
        match s.get(i) {
            Some(b',') => i += 1,
            Some(b';') => return Ok(out),
            _ => return Err(format!("expected ',' or ';' {}", at(i))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_tuples_with_escapes() {
        let line = b"INSERT INTO `langlinks` VALUES (12,'de','Berg'),(13,'fr','L\\'\\\\eau'),(14,'it','O''Neill');\n";
        let v = insert_values(line).unwrap();
        assert_eq!(
            parse_tuples(v).unwrap(),
            [
                (12, "de".into(), "Berg".into()),
                (13, "fr".into(), "L'\\eau".into()),
                (14, "it".into(), "O'Neill".into()),
            ]
        );
        assert!(insert_values(b"CREATE TABLE `langlinks` (").is_none());
        for bad in [
            &b"(12,'de','Berg')"[..],
            b"(x,'de','Berg');",
            b"(12,'de','Berg);",
            b"(12,'de');",
        ] {
            assert!(
                parse_tuples(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
