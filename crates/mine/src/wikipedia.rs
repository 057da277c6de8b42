//! Wikipedia: (title, intro) pairs and same-category intro pairs from a pages-articles
//! .xml.bz2 dump of any language. Articles only (namespace 0), no redirects or disambiguation
//! pages; intros are cleaned to plain text (see `wikitext`). Namespace names (which links are
//! categories, files, …) come from the dump's siteinfo (see `siteinfo`).
//!
//! With the multistream variant and its index (`…-multistream-index.txt.bz2`, found beside the
//! dump or given), the dump is cut at the bzip2 stream offsets the index lists and the pieces
//! are decompressed and parsed on all threads; output order stays the dump's order.
//!
//! Same-category pairs: each kept article's (title, intro) is written once to a scratch file,
//! and every (category, position in that file) is spilled by category (an article has ~10
//! categories; spilling intros with each would multiply the disk by ten). Then each category
//! with 2..=`max_category_size` members is shuffled with a seed from its name and its members
//! are paired off in that order, at most `pairs_per_category` pairs: deterministic, and huge
//! categories do not dominate. The intros of the chosen pairs are read back in file order.

use crate::io::{io_err, open_input, Common, MineError, Result, RunStats, ShardWriter};
use crate::siteinfo::{Namespaces, SiteInfo};
use crate::spill::{partitions_for, read_partition, ScratchDir, SpillWriter};
use crate::wikitext;
use pairs::BadRowPolicy;
use quick_xml::events::Event;
use quick_xml::XmlVersion;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, Read, Seek};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Options {
    /// Intros shorter than this (characters, after cleaning) are dropped.
    pub min_intro: usize,
    pub max_category_size: usize,
    pub pairs_per_category: usize,
    /// The multistream index; found beside the dump when not given.
    pub index: Option<PathBuf>,
    pub partitions: usize,
    pub seed: u64,
    /// Keep each article's interlanguage links (for cross-language pairs).
    pub langlinks: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            min_intro: 20,
            max_category_size: 10_000,
            pairs_per_category: 20,
            index: None,
            partitions: 64,
            seed: 1,
            langlinks: false,
        }
    }
}

#[derive(Default, Debug)]
struct Page {
    title: String,
    ns: String,
    /// The page id (not a revision's or contributor's).
    id: String,
    redirect: bool,
    /// `<redirect title="…"/>`: where a redirect leads.
    redirect_to: Option<String>,
    text: String,
}

#[derive(Serialize, Deserialize)]
struct Member {
    category: String,
    /// Byte offset of the article's line in the intros scratch file.
    at: u64,
}

/// An article kept: title, clean intro, categories.
pub struct Article {
    pub id: Option<u64>,
    pub title: String,
    pub intro: String,
    pub categories: Vec<String>,
    /// Interlanguage links (edition, title), when `Options::langlinks`.
    pub langlinks: Vec<(&'static str, String)>,
}

/// What a page of the article namespace gives.
pub enum Entry {
    Article(Article),
    Redirect { title: String, target: String },
}

/// Parses the pages of an XML fragment (a whole dump or a run of multistream streams).
fn parse_pages(
    path: &Path,
    input: impl BufRead,
    policy: BadRowPolicy,
    stats: &mut RunStats,
    limit: Option<u64>,
    mut f: impl FnMut(Page, &mut RunStats) -> Result<()>,
) -> Result<()> {
    let mut r = quick_xml::Reader::from_reader(input);
    // A run of multistream streams is a fragment: pages without the root element around them.
    r.config_mut().check_end_names = false;
    r.config_mut().allow_unmatched_ends = true;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut page: Option<Page> = None;
    let mut field: Option<&'static str> = None;
    let mut in_revision = false;
    let mut pages = 0u64;
    loop {
        let ev = match r.read_event_into(&mut buf) {
            Ok(ev) => ev,
            Err(e) => {
                let at = r.error_position();
                let msg = format!("malformed XML: {e}");
                match policy {
                    BadRowPolicy::Error => {
                        return Err(MineError::Bad {
                            path: path.to_path_buf(),
                            at: format!("byte {at} of the decompressed stream"),
                            msg,
                        })
                    }
                    BadRowPolicy::Skip => {
                        stats
                            .skipped
                            .add("malformed XML", format!("{}: byte {at}", path.display()));
                        return Ok(());
                    }
                }
            }
        };
        match ev {
            Event::Start(e) => match e.name().as_ref() {
                "page" => page = Some(Page::default()),
                "title" => field = Some("title"),
                "ns" => field = Some("ns"),
                "id" if !in_revision => field = Some("id"),
                "revision" => in_revision = true,
                "text" => field = Some("text"),
                _ => {}
            },
            Event::Empty(e) if e.name().as_ref() == "redirect" => {
                if let Some(p) = page.as_mut() {
                    p.redirect = true;
                    p.redirect_to = e
                        .try_get_attribute("title")
                        .ok()
                        .flatten()
                        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok())
                        .map(|v| v.into_owned());
                }
            }
            Event::Text(t) => push(&mut page, field, &t.xml_content(XmlVersion::Implicit1_0)),
            Event::CData(t) => push(&mut page, field, &t.xml_content(XmlVersion::Implicit1_0)),
            Event::GeneralRef(g) => {
                let c = match g.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    _ => match g.as_ref() {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => None,
                    },
                };
                if let Some(c) = c {
                    push(&mut page, field, c.encode_utf8(&mut [0; 4]));
                }
            }
            Event::End(e) => match e.name().as_ref() {
                "page" => {
                    if let Some(p) = page.take() {
                        stats.rows_in += 1;
                        pages += 1;
                        f(p, stats)?;
                        if limit.is_some_and(|l| pages >= l) {
                            return Ok(());
                        }
                    }
                }
                "title" | "ns" | "id" | "text" => field = None,
                "revision" => in_revision = false,
                _ => {}
            },
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

fn push(page: &mut Option<Page>, field: Option<&'static str>, s: &str) {
    if let (Some(p), Some(f)) = (page.as_mut(), field) {
        match f {
            "title" => p.title.push_str(s),
            "ns" => p.ns.push_str(s),
            "id" => p.id.push_str(s),
            _ => p.text.push_str(s),
        }
    }
}

/// The article or redirect a page gives, or why it gives none (counted).
fn entry(p: Page, o: &Options, ns: &Namespaces, stats: &mut RunStats) -> Option<Entry> {
    // Dumps before export schema 0.5 have no <ns>: the title's prefix says it.
    let in_articles = match p.ns.trim() {
        "" => ns.of_title(&p.title) == 0,
        n => n == "0",
    };
    if !in_articles {
        stats.filter("not an article (namespace)");
        return None;
    }
    // Old dumps have no <redirect> element: the text says it, in the wiki's language.
    let by_text = wikitext::redirect_target(&p.text);
    if p.redirect || by_text.is_some() {
        stats.filter("redirect");
        return p.redirect_to.or(by_text).map(|target| Entry::Redirect {
            title: p.title,
            target,
        });
    }
    if wikitext::is_disambiguation(&p.title, &p.text) {
        stats.filter("disambiguation page");
        return None;
    }
    let intro = wikitext::clean(wikitext::intro(&p.text), ns);
    if intro.chars().count() < o.min_intro {
        stats.filter("intro shorter than the minimum");
        return None;
    }
    Some(Entry::Article(Article {
        id: p.id.trim().parse().ok(),
        categories: wikitext::categories(&p.text, ns),
        langlinks: if o.langlinks {
            wikitext::langlinks(&p.text, ns)
        } else {
            Vec::new()
        },
        title: p.title,
        intro,
    }))
}

/// Every article and redirect of a dump, in dump order, on `c.threads` threads when the dump
/// is multistream with an index.
pub fn scan(
    dump: &Path,
    o: &Options,
    c: &Common,
    site: &SiteInfo,
    counters: &crate::io::Counters,
    stats: &mut RunStats,
    keep: &mut dyn FnMut(Entry, &mut RunStats) -> Result<()>,
) -> Result<()> {
    let index = o.index.clone().or_else(|| find_index(dump));
    match index {
        Some(index) if c.threads > 1 => {
            let ranges = stream_ranges(dump, &index, c)?;
            parallel_streams(dump, &ranges, o, c, site, counters, stats, keep)
        }
        _ => {
            let r = open_input(dump, counters.clone())?;
            let ns = &site.namespaces;
            parse_pages(dump, r, c.policy, stats, c.limit, |p, st| {
                match entry(p, o, ns, st) {
                    Some(e) => keep(e, st),
                    None => Ok(()),
                }
            })
        }
    }
}

/// The intros scratch file, read at given offsets.
struct IntroFile {
    path: PathBuf,
    file: std::io::BufReader<std::fs::File>,
}

impl IntroFile {
    fn open(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(io_err(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            file: std::io::BufReader::new(f),
        })
    }

    /// (title, intro) at each offset, read in file order.
    fn read(&mut self, at: impl Iterator<Item = u64>) -> Result<HashMap<u64, (String, String)>> {
        let mut offsets: Vec<u64> = at.collect();
        offsets.sort_unstable();
        offsets.dedup();
        let mut out = HashMap::with_capacity(offsets.len());
        let mut line = String::new();
        for off in offsets {
            self.file
                .seek(std::io::SeekFrom::Start(off))
                .map_err(io_err(&self.path))?;
            line.clear();
            self.file.read_line(&mut line).map_err(io_err(&self.path))?;
            let (t, i): (String, String) =
                serde_json::from_str(&line).map_err(|e| MineError::Bad {
                    path: self.path.clone(),
                    at: format!("byte {off}"),
                    msg: format!("scratch file is corrupt: {e}"),
                })?;
            out.insert(off, (t, i));
        }
        Ok(out)
    }
}

/// Byte ranges of the dump's bzip2 streams, from the multistream index.
fn stream_ranges(dump: &Path, index: &Path, c: &Common) -> Result<Vec<(u64, u64)>> {
    let mut offsets: Vec<u64> = vec![0];
    let r = open_input(index, Vec::new())?;
    for (i, line) in r.lines().enumerate() {
        let line = line.map_err(io_err(index))?;
        let off = line.split(':').next().and_then(|s| s.parse::<u64>().ok());
        match off {
            Some(o) => {
                if offsets.last() != Some(&o) {
                    offsets.push(o);
                }
            }
            None if c.policy == BadRowPolicy::Skip => {}
            None => {
                return Err(MineError::Bad {
                    path: index.to_path_buf(),
                    at: format!("line {}", i + 1),
                    msg: "not offset:id:title".into(),
                })
            }
        }
    }
    let len = std::fs::metadata(dump).map_err(io_err(dump))?.len();
    offsets.push(len);
    offsets.dedup();
    Ok(offsets.windows(2).map(|w| (w[0], w[1])).collect())
}

fn find_index(dump: &Path) -> Option<PathBuf> {
    let name = dump.file_name()?.to_string_lossy().into_owned();
    let idx = name.replace("multistream.xml.bz2", "multistream-index.txt.bz2");
    (idx != name)
        .then(|| dump.with_file_name(idx))
        .filter(|p| p.is_file())
}

/// Mines one dump into `<out>/<dump name>/`: `title_intro-*` and `same_category-*`.
pub fn mine_dump(dump: &Path, o: &Options, c: &Common) -> Result<RunStats> {
    let t0 = std::time::Instant::now();
    let name = dump
        .file_name()
        .map_or("wikipedia".into(), |f| f.to_string_lossy().into_owned());
    let name = name
        .trim_end_matches(".bz2")
        .trim_end_matches(".xml")
        .to_string();
    let dir = c.out.join(&name);
    let inputs = vec![dump.display().to_string()];
    if !c.force {
        if let Some(done) = RunStats::completed(&dir, &inputs) {
            return Ok(done);
        }
    }
    let site = crate::siteinfo::read(dump)?;
    let work = ScratchDir::new(dir.join(".spill"))?;
    // Categories spill a few dozen bytes per article: about 1/100 of the dump.
    let size = std::fs::metadata(dump).map_err(io_err(dump))?.len();
    let spill = SpillWriter::new(&work, partitions_for(size / 10, o.partitions))?;
    let intros_path = work.join("intros.jsonl");
    let mut intros =
        std::io::BufWriter::new(std::fs::File::create(&intros_path).map_err(io_err(&intros_path))?);
    let mut intros_at = 0u64;
    let mut titles = ShardWriter::new(&dir, "title_intro", c.compression, c.shard_bytes);
    let mut stats = RunStats {
        inputs,
        language: site.language.clone(),
        ..Default::default()
    };
    let (counters, own) = c.counters();
    let mut keep = |e: Entry, _: &mut RunStats| -> Result<()> {
        let Entry::Article(a) = e else { return Ok(()) };
        titles.write(&[&a.title, &a.intro])?;
        if a.categories.is_empty() {
            return Ok(());
        }
        let mut line = serde_json::to_vec(&[&a.title, &a.intro])
            .map_err(|e| MineError::Other(e.to_string()))?;
        line.push(b'\n');
        std::io::Write::write_all(&mut intros, &line).map_err(io_err(&intros_path))?;
        for cat in &a.categories {
            spill.put(
                cat,
                &Member {
                    category: cat.clone(),
                    at: intros_at,
                },
            )?;
        }
        intros_at += line.len() as u64;
        Ok(())
    };
    scan(dump, o, c, &site, &counters, &mut stats, &mut keep)?;
    let parts = spill.parts();
    spill.finish()?;
    std::io::Write::flush(&mut intros).map_err(io_err(&intros_path))?;
    drop(intros);
    let (n, _) = titles.finish()?;
    stats.rows_out.insert("title_intro".into(), n);
    let mut pairs_out = ShardWriter::new(&dir, "same_category", c.compression, c.shard_bytes);
    let mut lookup = IntroFile::open(&intros_path)?;
    for part in 0..parts {
        let members: Vec<Member> = read_partition(&work, part)?;
        let mut by_cat: HashMap<String, Vec<u64>> = HashMap::new();
        for m in members {
            by_cat.entry(m.category).or_default().push(m.at);
        }
        let mut cats: Vec<String> = by_cat.keys().cloned().collect();
        cats.sort();
        let mut chosen: Vec<(String, u64, u64)> = Vec::new();
        for cat in cats {
            let mut ms = by_cat.remove(&cat).unwrap_or_default();
            ms.sort_unstable();
            ms.dedup();
            if ms.len() < 2 {
                stats.filter("category with one member");
                continue;
            }
            if ms.len() > o.max_category_size {
                stats.filter("category larger than the maximum");
                continue;
            }
            let seed = pairs::rng::mix(&[o.seed, pairs::dedup::hash_bytes(cat.as_bytes())]);
            pairs::rng::shuffle(&mut ms, &mut pairs::rng::Rng::new(seed));
            for pair in ms.chunks_exact(2).take(o.pairs_per_category) {
                chosen.push((cat.clone(), pair[0], pair[1]));
            }
        }
        let texts = lookup.read(chosen.iter().flat_map(|(_, a, b)| [*a, *b]))?;
        for (cat, a, b) in chosen {
            let (ta, ia) = &texts[&a];
            let (tb, ib) = &texts[&b];
            pairs_out.write(&serde_json::json!({
                "anchor": ia,
                "positive": ib,
                "category": cat,
                "titles": [ta, tb],
            }))?;
        }
    }
    let (n, _) = pairs_out.finish()?;
    stats.rows_out.insert("same_category".into(), n);
    drop(work);
    stats.bytes_in = own.load(std::sync::atomic::Ordering::Relaxed);
    stats.finish(t0.elapsed().as_secs_f64());
    stats.write(&dir)?;
    Ok(stats)
}

/// Decompresses and parses groups of streams on `c.threads` threads, handing entries to `keep`
/// in dump order.
#[allow(clippy::too_many_arguments)]
fn parallel_streams(
    dump: &Path,
    ranges: &[(u64, u64)],
    o: &Options,
    c: &Common,
    site: &SiteInfo,
    counters: &crate::io::Counters,
    stats: &mut RunStats,
    keep: &mut dyn FnMut(Entry, &mut RunStats) -> Result<()>,
) -> Result<()> {
    // About 10 streams (1,000 pages) per task.
    let groups: Vec<(u64, u64)> = ranges
        .chunks(10)
        .map(|g| (g[0].0, g[g.len() - 1].1))
        .collect();
    // `--limit` counts this dump's pages (a run may scan several dumps into one `stats`).
    let start = stats.rows_in;
    for window in groups.chunks(c.threads * 4) {
        let results = pairs::par::par_map(window, c.threads, |&(a, b)| {
            let mut f = std::fs::File::open(dump).map_err(io_err(dump))?;
            f.seek(std::io::SeekFrom::Start(a)).map_err(io_err(dump))?;
            let piece = crate::io::Counting::new(f.take(b - a), counters.clone());
            let dec = std::io::BufReader::new(bzip2::read::MultiBzDecoder::new(piece));
            let mut st = RunStats::default();
            let mut arts = Vec::new();
            parse_pages(dump, dec, c.policy, &mut st, None, |p, st| {
                if let Some(a) = entry(p, o, &site.namespaces, st) {
                    arts.push(a);
                }
                Ok(())
            })
            .map_err(|e| match e {
                MineError::Bad { path, at, msg } => MineError::Bad {
                    path,
                    at: format!("{at} of the bzip2 stream at byte {a}"),
                    msg,
                },
                e => e,
            })?;
            Ok::<_, MineError>((arts, st))
        });
        for r in results {
            let (arts, st) = r?;
            stats.merge(&st);
            for a in arts {
                keep(a, stats)?;
            }
            if c.limit.is_some_and(|l| stats.rows_in - start >= l) {
                return Ok(());
            }
        }
    }
    Ok(())
}
