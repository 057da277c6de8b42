//! Reddit: context/response pairs from pushshift / arctic-shift comment dumps (NDJSON, plain or
//! .zst/.bz2/.xz/.gz), following PolyAI's conversational-datasets rules exactly:
//! - a comment's body is trimmed to 127 characters at a word boundary; a comment that needed
//!   trimming, is `[deleted]`/`[removed]`, or is under 9 characters cannot be a context or a
//!   response;
//! - threads (comments sharing a link_id) are walked breadth first from their roots (comments
//!   whose parent is not in the thread); each path of up to 11 comments gives one example: the
//!   last comment is the response, the one before the context, and up to 9 before that are
//!   `context/0` (nearest) … `context/8`;
//! - train/test: md5 of the thread id, `(1 + digest mod 4096) / 4096 < 0.9` is train.
//!
//! Beyond PolyAI: an optional bot filter (authors ending in "bot", AutoModerator, a blocklist),
//! whose comments stay in the tree but never become a context or a response; subreddit allow and
//! deny lists.
//!
//! A thread spans a whole monthly file (and can cross into the next), so comments are spilled
//! to disk partitioned by thread id and each partition is grouped in memory on its own: memory
//! is bounded by the largest partition, not the month.

use crate::io::{io_err, open_input, Common, MineError, Result, RunStats, ShardWriter};
use crate::spill::{partitions_for, read_partition, ScratchDir, SpillWriter};
use md5::{Digest, Md5};
use pairs::BadRowPolicy;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Options {
    pub min_length: usize,
    pub max_length: usize,
    /// Comments on a path before the response (PolyAI: 10).
    pub parent_depth: usize,
    pub train_split: f64,
    pub bot_filter: bool,
    /// Authors to treat as bots (with `bot_filter`).
    pub blocklist: HashSet<String>,
    pub allow_subreddits: Option<HashSet<String>>,
    pub deny_subreddits: HashSet<String>,
    /// Spill partitions, at least (more for big inputs).
    pub partitions: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            min_length: 9,
            max_length: 127,
            parent_depth: 10,
            train_split: 0.9,
            bot_filter: false,
            blocklist: HashSet::new(),
            allow_subreddits: None,
            deny_subreddits: HashSet::new(),
            partitions: 64,
        }
    }
}

/// PolyAI's `trim`: at most `max_length` characters, cut where an alphanumeric character meets
/// a non-alphanumeric one.
pub fn trim(text: &str, max_length: usize) -> Cow<'_, str> {
    if text.chars().count() <= max_length {
        return Cow::Borrowed(text);
    }
    let mut t: Vec<char> = text.chars().take(max_length + 1).collect();
    while t.len() >= 2 && t[t.len() - 1].is_alphanumeric() == t[t.len() - 2].is_alphanumeric() {
        t.pop();
    }
    t.pop();
    Cow::Owned(t.into_iter().collect())
}

/// PolyAI's split: the test share is decided by the thread id alone.
pub fn is_train(thread_id: &str, train_split: f64) -> bool {
    let d = Md5::digest(thread_id.as_bytes());
    // int(hexdigest, 16) % 4096 is the digest's last 12 bits.
    let low = (u16::from_be_bytes([d[14], d[15]]) & 0x0fff) as f64;
    (1.0 + low) / 4096.0 < train_split
}

fn strip_kind(id: &str) -> &str {
    // "t1_abc" → "abc", as PolyAI's `^t[0-9]_`.
    let b = id.as_bytes();
    if b.len() >= 3 && b[0] == b't' && b[1].is_ascii_digit() && b[2] == b'_' {
        &id[3..]
    } else {
        id
    }
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    link_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    body: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    author: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    subreddit: Option<Cow<'a, str>>,
}

/// A comment as spilled: body already trimmed.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Comment {
    id: String,
    parent: String,
    thread: String,
    body: String,
    trimmed: bool,
    author: String,
    subreddit: String,
    bot: bool,
    /// The parent is a comment (t1_), not the submission.
    parent_is_comment: bool,
}

fn is_bot(author: &str, o: &Options) -> bool {
    o.bot_filter
        && (author.to_ascii_lowercase().ends_with("bot")
            || author == "AutoModerator"
            || o.blocklist.contains(author))
}

/// Reads one dump file into the spill. Returns its stats.
fn spill_file(path: &Path, spill: &SpillWriter, o: &Options, c: &Common) -> Result<RunStats> {
    let mut stats = RunStats::default();
    let (counters, own) = c.counters();
    let mut r = open_input(path, counters)?;
    let mut line = Vec::with_capacity(1 << 14);
    let mut n = 0u64;
    let mut offset = 0u64;
    loop {
        line.clear();
        let at = offset;
        let got = match r.read_until(b'\n', &mut line) {
            Ok(g) => g,
            Err(e) => {
                let msg = format!("cannot read further (truncated or corrupt file?): {e}");
                match c.policy {
                    BadRowPolicy::Error => {
                        return Err(MineError::Bad {
                            path: path.to_path_buf(),
                            at: format!("line {}, byte {at} of the decompressed stream", n + 1),
                            msg,
                        })
                    }
                    BadRowPolicy::Skip => {
                        stats.skipped.add(
                            "truncated or corrupt file",
                            format!("{}: line {}", path.display(), n + 1),
                        );
                        break;
                    }
                }
            }
        };
        if got == 0 {
            break;
        }
        offset += got as u64;
        n += 1;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        stats.rows_in += 1;
        match parse_comment(&line, o) {
            Ok(Some(cm)) => {
                if cm.bot {
                    stats.filter("bot author (kept in threads, never a context or response)");
                }
                spill.put(&cm.thread, &cm)?
            }
            Ok(None) => stats.filter("subreddit not allowed or denied"),
            Err(msg) => match c.policy {
                BadRowPolicy::Error => {
                    return Err(MineError::Bad {
                        path: path.to_path_buf(),
                        at: format!("line {n}, byte {at} of the decompressed stream"),
                        msg,
                    })
                }
                BadRowPolicy::Skip => stats
                    .skipped
                    .add("invalid comment", format!("{}: line {n}", path.display())),
            },
        }
        if c.limit.is_some_and(|l| stats.rows_in >= l) {
            break;
        }
    }
    stats.bytes_in = own.load(std::sync::atomic::Ordering::Relaxed);
    Ok(stats)
}

fn parse_comment(line: &[u8], o: &Options) -> std::result::Result<Option<Comment>, String> {
    let raw: Raw = serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let id = match (&raw.id, &raw.name) {
        (Some(id), _) => strip_kind(id).to_string(),
        (None, Some(name)) => strip_kind(name).to_string(),
        _ => return Err("comment has no id".into()),
    };
    let parent = raw.parent_id.ok_or("comment has no parent_id")?;
    let link = raw.link_id.ok_or("comment has no link_id")?;
    let subreddit = raw.subreddit.unwrap_or_default().into_owned();
    if let Some(allow) = &o.allow_subreddits {
        if !allow.contains(&subreddit) {
            return Ok(None);
        }
    }
    if o.deny_subreddits.contains(&subreddit) {
        return Ok(None);
    }
    let body = raw.body.unwrap_or_default();
    let trimmed_body = trim(&body, o.max_length);
    let author = raw.author.unwrap_or_default().into_owned();
    Ok(Some(Comment {
        trimmed: matches!(trimmed_body, Cow::Owned(_)),
        body: trimmed_body.into_owned(),
        id,
        parent_is_comment: parent.starts_with("t1_"),
        parent: strip_kind(&parent).to_string(),
        thread: strip_kind(&link).to_string(),
        bot: is_bot(&author, o),
        author,
        subreddit,
    }))
}

/// Why a comment cannot be a context or response (PolyAI's `_should_skip`, plus bots).
fn skip_reason(c: &Comment, o: &Options) -> Option<&'static str> {
    if c.trimmed {
        Some("longer than the maximum")
    } else if c.body == "[deleted]" || c.body == "[removed]" {
        Some("deleted or removed")
    } else if c.body.chars().count() < o.min_length {
        Some("shorter than the minimum")
    } else if c.bot {
        Some("bot author")
    } else {
        None
    }
}

/// Reddit ids are base 36: shorter is earlier.
fn id_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The examples of one thread, in PolyAI's breadth-first order.
fn thread_examples(
    mut comments: Vec<Comment>,
    o: &Options,
    stats: &mut RunStats,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    comments.sort_by(|a, b| id_order(&a.id, &b.id));
    comments.dedup_by(|a, b| a.id == b.id);
    let index: HashMap<&str, usize> = comments
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut paths: Vec<Vec<usize>> = Vec::new();
    let mut seen: HashSet<usize> = HashSet::new();
    for (i, c) in comments.iter().enumerate() {
        children.entry(c.parent.as_str()).or_default().push(i);
        if !index.contains_key(c.parent.as_str()) {
            paths.push(vec![i]);
            seen.insert(i);
            stats.filter(if c.parent_is_comment {
                "no context: parent comment not in the dump"
            } else {
                "no context: top-level comment"
            });
        }
    }
    let mut out = Vec::new();
    while !paths.is_empty() {
        let mut next = Vec::new();
        for path in &paths {
            let last = &comments[*path.last().expect("paths are never empty")];
            for &child in children.get(last.id.as_str()).map_or(&[][..], |v| v) {
                if !seen.insert(child) {
                    continue;
                }
                let keep = path.len().min(o.parent_depth);
                let mut p = path[path.len() - keep..].to_vec();
                p.push(child);
                if let Some(ex) = example(&comments, &p, o, stats) {
                    out.push(ex);
                }
                next.push(p);
            }
        }
        paths = next;
    }
    out
}

fn example(
    comments: &[Comment],
    path: &[usize],
    o: &Options,
    stats: &mut RunStats,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let response = &comments[path[path.len() - 1]];
    let context = &comments[path[path.len() - 2]];
    if let Some(r) = skip_reason(response, o) {
        stats.filter(&format!("response: {r}"));
        return None;
    }
    if let Some(r) = skip_reason(context, o) {
        stats.filter(&format!("context: {r}"));
        return None;
    }
    let mut m = serde_json::Map::new();
    let s = |v: &str| serde_json::Value::String(v.to_string());
    m.insert("context".into(), s(&context.body));
    m.insert("response".into(), s(&response.body));
    for i in 0..o.parent_depth.saturating_sub(1) {
        let Some(k) = path.len().checked_sub(3 + i) else {
            break;
        };
        m.insert(format!("context/{i}"), s(&comments[path[k]].body));
    }
    m.insert("subreddit".into(), s(&response.subreddit));
    m.insert("thread_id".into(), s(&response.thread));
    m.insert("context_author".into(), s(&context.author));
    m.insert("response_author".into(), s(&response.author));
    Some(m)
}

/// Mines `inputs` together (threads may cross files) into `<out>/train-*.jsonl.*` and
/// `<out>/test-*`, with stats.json. A re-run over the same inputs whose output is complete is
/// skipped.
pub fn mine(inputs: &[PathBuf], o: &Options, c: &Common) -> Result<RunStats> {
    let t0 = std::time::Instant::now();
    let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    if !c.force {
        if let Some(done) = RunStats::completed(&c.out, &names) {
            return Ok(done);
        }
    }
    let work = ScratchDir::new(c.out.join(".spill"))?;
    // Phase 1: every input into the spill, several files at once.
    let mut input_bytes = 0;
    for p in inputs {
        input_bytes += std::fs::metadata(p).map_err(io_err(p))?.len();
    }
    let spill = SpillWriter::new(&work, partitions_for(input_bytes, o.partitions))?;
    let parts = spill.parts();
    let results = pairs::par::par_map(inputs, c.threads, |p| spill_file(p, &spill, o, c));
    spill.finish()?;
    let mut stats = RunStats {
        inputs: names,
        ..Default::default()
    };
    for r in results {
        stats.merge(&r?);
    }
    // Phase 2: partitions, `threads` at a time, written in partition order.
    let mut train = ShardWriter::new(&c.out, "train", c.compression, c.shard_bytes);
    let mut test = ShardWriter::new(&c.out, "test", c.compression, c.shard_bytes);
    let parts: Vec<usize> = (0..parts).collect();
    for chunk in parts.chunks(c.threads.max(1)) {
        let done = pairs::par::par_map(chunk, c.threads, |&p| -> Result<(Vec<_>, RunStats)> {
            let mut st = RunStats::default();
            let comments: Vec<Comment> = read_partition(&work, p)?;
            let mut threads: HashMap<String, Vec<Comment>> = HashMap::new();
            for cm in comments {
                threads.entry(cm.thread.clone()).or_default().push(cm);
            }
            let mut ids: Vec<String> = threads.keys().cloned().collect();
            ids.sort_by(|a, b| id_order(a, b));
            let mut ex = Vec::new();
            for t in ids {
                let cs = threads.remove(&t).unwrap_or_default();
                ex.extend(thread_examples(cs, o, &mut st));
            }
            Ok((ex, st))
        });
        for d in done {
            let (examples, st) = d?;
            stats.merge(&st);
            for e in examples {
                let t = e["thread_id"].as_str().unwrap_or("");
                if is_train(t, o.train_split) {
                    train.write(&e)?;
                } else {
                    test.write(&e)?;
                }
            }
        }
    }
    let (n_train, _) = train.finish()?;
    let (n_test, _) = test.finish()?;
    stats.rows_out.insert("train".into(), n_train);
    stats.rows_out.insert("test".into(), n_test);
    drop(work);
    stats.finish(t0.elapsed().as_secs_f64());
    stats.write(&c.out)?;
    Ok(stats)
}

/// Writes a synthetic comment dump for benchmarks and tests: `comments` comments in threads of
/// random shape (1–200 comments), all lines shuffled so threads arrive in random order. Lines
/// carry a pushshift-like set of fields (about 1 KB each); bodies vary in length (some over
/// 127 characters), with some `[deleted]`, `[removed]` and bot authors.
pub fn generate(path: &Path, comments: u64, seed: u64) -> Result<()> {
    use pairs::rng::{shuffle, Rng};
    let mut rng = Rng::new(seed);
    const WORDS: &[&str] = &[
        "the", "a", "this", "is", "really", "good", "point", "but", "I", "think", "you", "are",
        "wrong", "about", "that", "game", "thanks", "for", "sharing", "lol", "what", "why",
        "source", "agreed", "never", "seen", "before", "great", "post", "edit", "same", "here",
    ];
    // (id, parent, thread)
    let mut all: Vec<(u64, Option<u64>, u64)> = Vec::with_capacity(comments as usize);
    let mut next_id = 1_000_000u64;
    let mut thread = 5_000u64;
    while (all.len() as u64) < comments {
        thread += 1;
        let size = 1 + rng.below(200);
        let start = all.len();
        for k in 0..size.min(comments - all.len() as u64) {
            let parent = if k == 0 || rng.below(4) == 0 {
                None
            } else {
                Some(all[start + rng.below(k) as usize].0)
            };
            all.push((next_id, parent, thread));
            next_id += 1 + rng.below(3);
        }
    }
    shuffle(&mut all, &mut rng);
    let tmp = crate::io::partial(path);
    let f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = zstd::stream::write::Encoder::new(std::io::BufWriter::new(f), 3)
        .map_err(io_err(&tmp))?
        .auto_finish();
    let b36 = |mut n: u64| {
        let d = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut s = Vec::new();
        while n > 0 {
            s.push(d[(n % 36) as usize]);
            n /= 36;
        }
        s.reverse();
        String::from_utf8(s).unwrap_or_default()
    };
    for (id, parent, thread) in all {
        let body = match rng.below(20) {
            0 => "[deleted]".to_string(),
            1 => "[removed]".to_string(),
            _ => {
                let most = if rng.below(4) == 0 { 60 } else { 20 };
                let n = 1 + rng.below(most) as usize;
                (0..n)
                    .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        let author = match rng.below(50) {
            0 => "AutoModerator".to_string(),
            1 => format!("helper{}bot", rng.below(10)),
            _ => format!("user{}", rng.below(100_000)),
        };
        let parent_id = match parent {
            Some(p) => format!("t1_{}", b36(p)),
            None => format!("t3_{}", b36(thread)),
        };
        let line = serde_json::json!({
            "all_awardings": [], "archived": false, "author": author,
            "author_flair_css_class": null, "author_flair_text": null, "author_fullname": "t2_x",
            "author_premium": false, "body": body, "can_gild": true, "collapsed": false,
            "controversiality": 0, "created_utc": 1_706_745_600u64 + id % 86_400,
            "distinguished": null, "edited": false, "gilded": 0, "gildings": {},
            "id": b36(id), "is_submitter": false, "link_id": format!("t3_{}", b36(thread)),
            "locked": false, "no_follow": true, "parent_id": parent_id,
            "permalink": format!("/r/generated/comments/{}/x/{}/", b36(thread), b36(id)),
            "retrieved_on": 1_706_875_209u64, "score": rng.below(100), "send_replies": true,
            "stickied": false, "subreddit": "generated", "subreddit_id": "t5_2qh1i",
            "subreddit_name_prefixed": "r/generated", "subreddit_type": "public",
            "total_awards_received": 0, "treatment_tags": [], "ups": 1,
            "author_flair_richtext": [], "author_flair_type": "text", "awarders": [],
            "collapsed_reason": null, "comment_type": null, "mod_reason_by": null,
            "mod_reason_title": null, "top_awarded_type": null, "unrepliable_reason": null,
        });
        serde_json::to_writer(&mut w, &line).map_err(|e| MineError::Other(e.to_string()))?;
        std::io::Write::write_all(&mut w, b"\n").map_err(io_err(&tmp))?;
    }
    drop(w);
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_cuts_at_word_boundaries_as_polyai() {
        assert_eq!(trim("short", 127), "short");
        // What PolyAI's Python `trim` returns for these (it keeps a trailing space when the cut
        // falls just after one).
        assert_eq!(trim("The quick brown fox", 10), "The quick ");
        assert_eq!(trim("The quick brown fox", 9), "The quick");
        assert_eq!(trim("The quick brown fox", 8), "The ");
        assert_eq!(trim("hello, world", 6), "hello");
    }

    #[test]
    fn split_matches_python_md5() {
        // Python: (1 + int(md5(b"abc").hexdigest(), 16) % 4096) / 4096; md5("abc") ends in
        // ...7f72 → 0xf72 = 3954 → 0.9656 ≥ 0.9 → test.
        assert!(!is_train("abc", 0.9));
        assert_eq!(strip_kind("t3_1afjd7n"), "1afjd7n");
        assert_eq!(strip_kind("kod0bkd"), "kod0bkd");
    }
}
