//! StackExchange: (title, body), (title, best answer), (title + body, best answer) and
//! duplicate-question pairs (PostLinks LinkTypeId 3) from a site's Posts.xml, streamed.
//!
//! The 2021 filters: title ≥ 20 characters, body 20..=4096 characters after HTML stripping,
//! question score ≥ 0 (answers take the same body bounds). The best answer is the highest-scored
//! one (ties: the earliest), or with `--answer accepted` the accepted one.
//!
//! Answers can come long after their question in the file, so questions and answers are spilled
//! to disk partitioned by question id and joined one partition at a time (bounded memory for
//! StackOverflow-sized sites). Duplicate links are few: while the partitions are joined, the
//! questions the links name are collected, then paired.

use crate::html::html_to_text;
use crate::io::{io_err, Common, MineError, Result, RunStats, ShardWriter};
use crate::spill::{partitions_for, read_partition, ScratchDir, SpillWriter};
use pairs::BadRowPolicy;
use quick_xml::events::{BytesStart, Event};
use quick_xml::XmlVersion;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerChoice {
    /// The highest-scored answer (the 2021 data).
    Best,
    /// The answer the asker accepted.
    Accepted,
}

impl std::str::FromStr for AnswerChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "best" => Ok(Self::Best),
            "accepted" => Ok(Self::Accepted),
            _ => Err(format!("answer \"{s}\" is not one of best, accepted")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub answer: AnswerChoice,
    pub min_title: usize,
    pub min_body: usize,
    pub max_body: usize,
    pub min_score: i64,
    pub partitions: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            answer: AnswerChoice::Best,
            min_title: 20,
            min_body: 20,
            max_body: 4096,
            min_score: 0,
            partitions: 64,
        }
    }
}

/// Output names (files `<out>/<site>/<name>-NNNNN.jsonl.gz`).
pub const OUTPUTS: &[&str] = &[
    "title_body",
    "title_answer",
    "title_body_answer",
    "duplicates_title",
    "duplicates_body",
    "duplicates_title_body",
];

/// A site's dump: a folder with Posts.xml (and PostLinks.xml), a Posts.xml file (PostLinks.xml
/// beside it is used), or the site's .7z archive.
#[derive(Clone, Debug)]
pub struct Site {
    pub name: String,
    pub path: PathBuf,
}

impl Site {
    pub fn from_path(path: &Path) -> Self {
        let file = path
            .file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned());
        let name = if path.is_dir() {
            file
        } else if let Some(stem) = file.strip_suffix(".7z") {
            // StackOverflow comes as one archive per table: stackoverflow.com-Posts.7z.
            stem.strip_suffix("-Posts").unwrap_or(stem).to_string()
        } else {
            // .../<site>/Posts.xml
            path.parent()
                .and_then(|p| p.file_name())
                .map_or(file.clone(), |f| f.to_string_lossy().into_owned())
        };
        Self {
            name,
            path: path.to_path_buf(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "t")]
enum Rec {
    Q {
        id: u64,
        title: String,
        body: String,
        accepted: Option<u64>,
    },
    A {
        q: u64,
        id: u64,
        score: i64,
        body: String,
    },
}

/// One `<row …/>` of Posts.xml, the attributes the miner uses.
#[derive(Default, Debug)]
struct Post {
    id: Option<u64>,
    post_type: Option<u32>,
    parent: Option<u64>,
    accepted: Option<u64>,
    score: Option<i64>,
    title: Option<String>,
    body: Option<String>,
}

fn num<T: std::str::FromStr>(v: &str, what: &str) -> std::result::Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{what} is not a number: {v:?}"))
}

fn parse_post(e: &BytesStart) -> std::result::Result<Post, String> {
    let mut p = Post::default();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("malformed attribute: {e}"))?;
        let v = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("malformed attribute value: {e}"))?;
        match a.key.as_ref() {
            "Id" => p.id = Some(num(&v, "Id")?),
            "PostTypeId" => p.post_type = Some(num(&v, "PostTypeId")?),
            "ParentId" => p.parent = Some(num(&v, "ParentId")?),
            "AcceptedAnswerId" => p.accepted = Some(num(&v, "AcceptedAnswerId")?),
            "Score" => p.score = Some(num(&v, "Score")?),
            "Title" => p.title = Some(v.into_owned()),
            "Body" => p.body = Some(v.into_owned()),
            _ => {}
        }
    }
    Ok(p)
}

/// Calls `f` with every `<row>` of an XML dump file, in order. A malformed row follows
/// `policy`; malformed XML (which ends the stream) is an error naming the byte offset, or under
/// `skip` ends the file with a counted skip.
pub fn for_each_row(
    path: &Path,
    input: impl BufRead,
    policy: BadRowPolicy,
    stats: &mut RunStats,
    limit: Option<u64>,
    mut f: impl FnMut(&BytesStart, &mut RunStats) -> std::result::Result<(), String>,
) -> Result<()> {
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::with_capacity(64 << 10);
    let mut rows = 0u64;
    loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event_into(&mut buf);
        let bad = |msg: String, at: u64| MineError::Bad {
            path: path.to_path_buf(),
            at: format!("byte {at}"),
            msg,
        };
        match ev {
            Ok(Event::Empty(e)) | Ok(Event::Start(e)) if e.name().as_ref() == "row" => {
                rows += 1;
                if let Err(msg) = f(&e, stats) {
                    match policy {
                        BadRowPolicy::Error => return Err(bad(msg, pos)),
                        BadRowPolicy::Skip => stats
                            .skipped
                            .add("malformed row", format!("{}: byte {pos}", path.display())),
                    }
                }
                if limit.is_some_and(|l| rows >= l) {
                    break;
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                let at = reader.error_position();
                match policy {
                    BadRowPolicy::Error => return Err(bad(format!("malformed XML: {e}"), at)),
                    BadRowPolicy::Skip => {
                        stats
                            .skipped
                            .add("malformed XML", format!("{}: byte {at}", path.display()));
                        break;
                    }
                }
            }
        }
        buf.clear();
    }
    Ok(())
}

/// Duplicate links (LinkTypeId 3) of a PostLinks.xml: (duplicate, original).
fn read_links(
    path: &Path,
    input: impl BufRead,
    c: &Common,
    stats: &mut RunStats,
) -> Result<Vec<(u64, u64)>> {
    let mut links = Vec::new();
    for_each_row(path, input, c.policy, stats, None, |e, _| {
        let (mut a, mut b, mut t) = (None, None, None);
        for at in e.attributes() {
            let at = at.map_err(|e| format!("malformed attribute: {e}"))?;
            let v = at
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?;
            match at.key.as_ref() {
                "PostId" => a = Some(num::<u64>(&v, "PostId")?),
                "RelatedPostId" => b = Some(num::<u64>(&v, "RelatedPostId")?),
                "LinkTypeId" => t = Some(num::<u32>(&v, "LinkTypeId")?),
                _ => {}
            }
        }
        if let (Some(a), Some(b), Some(3)) = (a, b, t) {
            links.push((a, b));
        }
        Ok(())
    })?;
    Ok(links)
}

struct Writers(Vec<ShardWriter>);

impl Writers {
    fn new(dir: &Path, c: &Common) -> Self {
        Self(
            OUTPUTS
                .iter()
                .map(|n| ShardWriter::new(dir, n, c.compression, c.shard_bytes))
                .collect(),
        )
    }
    fn put(&mut self, which: usize, a: &str, b: &str) -> Result<()> {
        self.0[which].write(&[a, b])
    }
}

/// Mines one site into `<out>/<site>/`. Returns its stats (also written there as stats.json).
pub fn mine_site(site: &Site, opts: &Options, c: &Common) -> Result<RunStats> {
    let t0 = std::time::Instant::now();
    let dir = c.out.join(&site.name);
    let inputs = vec![site.path.display().to_string()];
    if !c.force {
        if let Some(done) = RunStats::completed(&dir, &inputs) {
            return Ok(done);
        }
    }
    let work = ScratchDir::new(dir.join(".spill"))?;
    let mut stats = RunStats {
        inputs,
        ..Default::default()
    };
    let size_of = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let size = if site.path.is_dir() {
        size_of(&site.path.join("Posts.xml"))
    } else if site.path.to_string_lossy().ends_with(".7z") {
        // An archive holds about a tenth of its XML.
        size_of(&site.path) * 10
    } else {
        size_of(&site.path)
    };
    let mut miner = SiteMiner {
        opts,
        c,
        spill: SpillWriter::new(&work, partitions_for(size, opts.partitions))?,
        links: Vec::new(),
        out: Writers::new(&dir, c),
    };
    let (counters, own) = c.counters();
    if site.path.to_string_lossy().ends_with(".7z") {
        // A split dump's links are in their own archive beside the posts.
        let split_links = site
            .path
            .to_string_lossy()
            .strip_suffix("-Posts.7z")
            .map(|p| PathBuf::from(format!("{p}-PostLinks.7z")))
            .filter(|p| p.is_file());
        if let Some(links) = split_links {
            miner.read_7z(&links, counters.clone(), &mut stats)?;
        }
        if !miner.read_7z(&site.path, counters, &mut stats)? {
            return Err(MineError::Other(format!(
                "{}: the archive has no Posts.xml",
                site.path.display()
            )));
        }
    } else {
        let posts = if site.path.is_dir() {
            site.path.join("Posts.xml")
        } else {
            site.path.clone()
        };
        let links = posts.with_file_name("PostLinks.xml");
        if links.is_file() {
            let r = crate::io::open_input(&links, counters.clone())?;
            miner.links = read_links(&links, r, c, &mut stats)?;
        }
        let r = crate::io::open_input(&posts, counters)?;
        miner.posts(&posts, r, &mut stats)?;
    }
    let SiteMiner {
        spill,
        links,
        mut out,
        ..
    } = miner;
    let parts = spill.parts();
    spill.finish()?;
    let dup_ids: HashSet<u64> = links.iter().flat_map(|&(a, b)| [a, b]).collect();
    let dup_texts = join_answers(&work, parts, opts, &dup_ids, &mut out, &mut stats)?;
    for (dup, orig) in links {
        if let (Some(d), Some(o)) = (dup_texts.get(&dup), dup_texts.get(&orig)) {
            out.put(3, &d.0, &o.0)?;
            out.put(4, &d.1, &o.1)?;
            out.put(5, &format!("{} {}", d.0, d.1), &format!("{} {}", o.0, o.1))?;
        } else {
            stats.filter("duplicate link: a question is missing or filtered out");
        }
    }
    for (name, w) in OUTPUTS.iter().zip(out.0) {
        let (rows, _) = w.finish()?;
        stats.rows_out.insert(name.to_string(), rows);
    }
    drop(work);
    stats.bytes_in = own.load(std::sync::atomic::Ordering::Relaxed);
    stats.finish(t0.elapsed().as_secs_f64());
    stats.write(&dir)?;
    Ok(stats)
}

struct SiteMiner<'a> {
    opts: &'a Options,
    c: &'a Common,
    spill: SpillWriter,
    links: Vec<(u64, u64)>,
    out: Writers,
}

impl SiteMiner<'_> {
    /// Reads PostLinks.xml and Posts.xml from a .7z; returns whether it had Posts.xml.
    fn read_7z(
        &mut self,
        path: &Path,
        counters: crate::io::Counters,
        stats: &mut RunStats,
    ) -> Result<bool> {
        let f = std::fs::File::open(path).map_err(io_err(path))?;
        let counted = crate::io::Counting::new(f, counters);
        let seekable = SeekCounting(counted);
        let mut ar = sevenz_rust2::ArchiveReader::new(seekable, sevenz_rust2::Password::empty())
            .map_err(|e| MineError::Bad {
                path: path.to_path_buf(),
                at: "header".into(),
                msg: format!("not a readable .7z archive: {e}"),
            })?;
        let mut result = Ok(());
        let mut saw_posts = false;
        let walk = ar.for_each_entries(|entry, reader| {
            let name = entry.name().rsplit('/').next().unwrap_or("").to_string();
            let inner = path.join(&name);
            let r = std::io::BufReader::with_capacity(1 << 20, reader);
            let res = match name.as_str() {
                "PostLinks.xml" => read_links(&inner, r, self.c, stats).map(|l| self.links = l),
                "Posts.xml" => {
                    saw_posts = true;
                    self.posts(&inner, r, stats)
                }
                _ => {
                    // Entries of a solid archive must be decoded to reach the next one.
                    std::io::copy(&mut std::io::BufReader::new(r), &mut std::io::sink())
                        .map(|_| ())
                        .map_err(io_err(&inner))
                }
            };
            match res {
                Ok(()) => Ok(true),
                Err(e) => {
                    result = Err(e);
                    Ok(false)
                }
            }
        });
        result?;
        walk.map_err(|e| MineError::Bad {
            path: path.to_path_buf(),
            at: "archive".into(),
            msg: format!("cannot decompress: {e}"),
        })?;
        Ok(saw_posts)
    }

    fn posts(&mut self, path: &Path, input: impl BufRead, stats: &mut RunStats) -> Result<()> {
        let (opts, limit, policy) = (self.opts, self.c.limit, self.c.policy);
        let mut failed: Option<MineError> = None;
        for_each_row(path, input, policy, stats, limit, |e, stats| {
            stats.rows_in += 1;
            let p = parse_post(e)?;
            let id = p.id.ok_or("row has no Id")?;
            let res = match p.post_type {
                Some(1) => self.question(id, p, opts, stats),
                Some(2) => self.answer(id, p, opts, stats),
                _ => {
                    stats.filter("not a question or answer");
                    Ok(())
                }
            };
            if let Err(e) = res {
                failed.get_or_insert(e);
            }
            Ok(())
        })?;
        failed.map_or(Ok(()), Err)
    }

    fn question(&mut self, id: u64, p: Post, o: &Options, stats: &mut RunStats) -> Result<()> {
        let title = p.title.unwrap_or_default().trim().to_string();
        let body = html_to_text(p.body.as_deref().unwrap_or(""));
        let n = body.chars().count();
        let reason = if title.chars().count() < o.min_title {
            Some("question: title shorter than the minimum")
        } else if n < o.min_body {
            Some("question: body shorter than the minimum")
        } else if n > o.max_body {
            Some("question: body longer than the maximum")
        } else if p.score.unwrap_or(0) < o.min_score {
            Some("question: score below the minimum")
        } else {
            None
        };
        if let Some(r) = reason {
            stats.filter(r);
            return Ok(());
        }
        self.out.put(0, &title, &body)?;
        self.spill.put(
            &id.to_string(),
            &Rec::Q {
                id,
                title,
                body,
                accepted: p.accepted,
            },
        )
    }

    fn answer(&mut self, id: u64, p: Post, o: &Options, stats: &mut RunStats) -> Result<()> {
        let Some(q) = p.parent else {
            stats.filter("answer: no ParentId");
            return Ok(());
        };
        let body = html_to_text(p.body.as_deref().unwrap_or(""));
        let n = body.chars().count();
        if n < o.min_body {
            stats.filter("answer: body shorter than the minimum");
            return Ok(());
        }
        if n > o.max_body {
            stats.filter("answer: body longer than the maximum");
            return Ok(());
        }
        self.spill.put(
            &q.to_string(),
            &Rec::A {
                q,
                id,
                score: p.score.unwrap_or(0),
                body,
            },
        )
    }
}

/// Joins each question with its answers, one partition at a time. Returns the title and body
/// of the questions in `dup_ids`.
fn join_answers(
    work: &Path,
    parts: usize,
    o: &Options,
    dup_ids: &HashSet<u64>,
    out: &mut Writers,
    stats: &mut RunStats,
) -> Result<HashMap<u64, (String, String)>> {
    let mut dup_texts = HashMap::new();
    for part in 0..parts {
        let recs: Vec<Rec> = read_partition(work, part)?;
        let mut questions: HashMap<u64, (String, String, Option<u64>)> = HashMap::new();
        let mut answers: Vec<(u64, u64, i64, String)> = Vec::new();
        for r in recs {
            match r {
                Rec::Q {
                    id,
                    title,
                    body,
                    accepted,
                } => {
                    if dup_ids.contains(&id) {
                        dup_texts.insert(id, (title.clone(), body.clone()));
                    }
                    questions.insert(id, (title, body, accepted));
                }
                Rec::A { q, id, score, body } => answers.push((q, id, score, body)),
            }
        }
        // Per question, the chosen answer: best score then earliest id, or the accepted one.
        let mut chosen: HashMap<u64, (u64, i64, String)> = HashMap::new();
        for (q, id, score, body) in answers {
            let Some((_, _, accepted)) = questions.get(&q) else {
                stats.filter("answer: question filtered out or missing");
                continue;
            };
            if o.answer == AnswerChoice::Accepted && *accepted != Some(id) {
                continue;
            }
            match chosen.get(&q) {
                Some((cid, cs, _))
                    if (*cs, std::cmp::Reverse(*cid)) >= (score, std::cmp::Reverse(id)) => {}
                _ => {
                    chosen.insert(q, (id, score, body));
                }
            }
        }
        let mut ids: Vec<u64> = chosen.keys().copied().collect();
        ids.sort_unstable();
        for q in ids {
            let (title, body, _) = &questions[&q];
            let answer = &chosen[&q].2;
            out.put(1, title, answer)?;
            out.put(2, &format!("{title} {body}"), answer)?;
        }
    }
    Ok(dup_texts)
}

/// The archive reader needs `Seek`; counting only reads.
struct SeekCounting(crate::io::Counting<std::fs::File>);

impl Read for SeekCounting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl std::io::Seek for SeekCounting {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.0.inner_mut().seek(pos)
    }
}
