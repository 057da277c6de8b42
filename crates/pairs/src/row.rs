//! One training example: the row formats of the 2021 "embedding-training-data" collection.
//!
//! A row has two or more texts, anchor first, then the positive, then any hard negatives:
//! - a list: `["anchor", "positive", "neg1", ...]`;
//! - an object: `{"anchor"|"query": ..., "positive"|"pos": ..., "negative"|"neg": str | [str]}`;
//! - an object `{"texts": [...]}`, or `{"set": [...]}` (the 2021 files of duplicate sets use it;
//!   the first two texts form the pair);
//! - a conversational object `{"context": ..., "response": ..., ...}` (PolyAI's Reddit format):
//!   the pair (context, response).
//!
//! A row may also carry **scores** (a similarity label for scored pairs, a teacher's margin or
//! its scores for MarginMSE): numbers after the texts of a list (`["a", "b", 0.8]`), or a
//! `"score"`/`"label"` number or `"scores"`/`"labels"` list of an object; `sentence1`/`sentence2`
//! (STS) and `text1`/`text2` name the two texts of a scored pair. A tab-separated file whose
//! first line names its columns (`sentence1<TAB>sentence2<TAB>score`, as STS-B's files do) reads
//! its `score`/`label` columns as scores.

use serde_json::Value;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

/// One example: its texts, anchor first, and its scores (none for plain pairs). It reads as
/// its list of texts (`row[0]`, `row.len()`), which is what most of the pipeline looks at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub texts: Vec<String>,
    pub scores: Vec<f32>,
}

impl Row {
    pub fn new(texts: Vec<String>, scores: Vec<f32>) -> Self {
        Self { texts, scores }
    }
}

impl Deref for Row {
    type Target = Vec<String>;
    fn deref(&self) -> &Vec<String> {
        &self.texts
    }
}

impl DerefMut for Row {
    fn deref_mut(&mut self) -> &mut Vec<String> {
        &mut self.texts
    }
}

impl From<Vec<String>> for Row {
    fn from(texts: Vec<String>) -> Self {
        Self {
            texts,
            scores: Vec::new(),
        }
    }
}

impl From<Vec<&str>> for Row {
    fn from(texts: Vec<&str>) -> Self {
        texts
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
            .into()
    }
}

impl IntoIterator for Row {
    type Item = String;
    type IntoIter = std::vec::IntoIter<String>;
    fn into_iter(self) -> Self::IntoIter {
        self.texts.into_iter()
    }
}

impl<'a> IntoIterator for &'a Row {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.texts.iter()
    }
}

impl PartialEq<Vec<String>> for Row {
    fn eq(&self, other: &Vec<String>) -> bool {
        self.scores.is_empty() && &self.texts == other
    }
}

impl PartialEq<Vec<&str>> for Row {
    fn eq(&self, other: &Vec<&str>) -> bool {
        self.scores.is_empty() && self.texts.iter().eq(other.iter().copied())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RowError {
    // Not `source`: the message already includes it, and a source would print it twice.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}:{line}: {msg}", path.display())]
    Bad {
        path: PathBuf,
        line: u64,
        msg: String,
    },
    #[error("{0}")]
    Other(String),
}

/// Why a row was rejected: a short, stable reason (the key under which `skip` counts it) and a
/// message for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub reason: &'static str,
    pub msg: String,
}

impl Problem {
    pub fn new(reason: &'static str, msg: impl Into<String>) -> Self {
        Self {
            reason,
            msg: msg.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

/// Reasons a row is bad, as `skip` counts them.
pub const INVALID_JSON: &str = "invalid JSON";
pub const INVALID_UTF8: &str = "invalid UTF-8";
pub const NOT_A_STRING: &str = "text is not a string";
pub const TOO_FEW_TEXTS: &str = "fewer than 2 texts";
pub const BAD_LAYOUT: &str = "not a pair row";
pub const UNREADABLE: &str = "truncated or corrupt file";
pub const NOT_A_SCORE: &str = "score is not a number";
/// The row is well formed but not what the recipe's loss takes (texts or scores).
pub const WRONG_SHAPE: &str = "wrong shape for the loss";

fn text(v: &Value, what: &str) -> Result<String, Problem> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(Problem::new(
            NOT_A_STRING,
            format!("{what} is not a string but {}", kind(other)),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn list(items: &[Value], what: &str) -> Result<Vec<String>, Problem> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| text(v, &format!("{what}[{i}]")))
        .collect()
}

/// A finite score; `what` names it in the error.
fn score(v: &Value, what: &str) -> Result<f32, Problem> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x.abs() <= f32::MAX as f64 => Ok(x as f32),
        _ => Err(Problem::new(
            NOT_A_SCORE,
            format!("{what} is not a finite number but {}", kind(v)),
        )),
    }
}

/// A list row: its texts, then any numbers (scores). A text after a number is an error.
fn texts_then_scores(items: &[Value], what: &str) -> Result<Row, Problem> {
    let n = items
        .iter()
        .position(|v| v.is_number())
        .unwrap_or(items.len());
    let texts = list(&items[..n], what)?;
    let scores = items[n..]
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(_) => Err(Problem::new(
                BAD_LAYOUT,
                format!(
                    "{what}[{}] is a text after the score {what}[{n}]; scores follow all texts",
                    n + i
                ),
            )),
            _ => score(v, &format!("{what}[{}]", n + i)),
        })
        .collect::<Result<_, _>>()?;
    Ok(Row::new(texts, scores))
}

/// The `score`/`label` (one number) or `scores`/`labels` (a list) of an object row.
fn object_scores(o: &serde_json::Map<String, Value>) -> Result<Vec<f32>, Problem> {
    for key in ["score", "label"] {
        if let Some(v) = o.get(key) {
            return Ok(vec![score(v, &format!("\"{key}\""))?]);
        }
    }
    for key in ["scores", "labels"] {
        match o.get(key) {
            Some(Value::Array(items)) => {
                return items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| score(v, &format!("\"{key}\"[{i}]")))
                    .collect()
            }
            Some(other) => {
                return Err(Problem::new(
                    NOT_A_SCORE,
                    format!("\"{key}\" is {}, not a list of numbers", kind(other)),
                ))
            }
            None => {}
        }
    }
    Ok(Vec::new())
}

/// Parses one line of a pair file. The error says what is wrong (the caller adds file:line).
pub fn parse_row(line: &str) -> Result<Row, Problem> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| Problem::new(INVALID_JSON, format!("invalid JSON: {e}")))?;
    let row = match &v {
        Value::Array(items) => texts_then_scores(items, "text")?,
        Value::Object(o) => {
            let scores = object_scores(o)?;
            let texts = if let (Some(c), Some(r)) = (o.get("context"), o.get("response")) {
                // Conversational rows (the Reddit miner's): context, then response.
                vec![text(c, "context")?, text(r, "response")?]
            } else if let Some((a, b)) = ["sentence1", "text1"]
                .iter()
                .zip(["sentence2", "text2"])
                .find_map(|(a, b)| Some((o.get(*a)?, o.get(b)?)))
            {
                vec![text(a, "sentence1")?, text(b, "sentence2")?]
            } else if let Some(t) = o.get("texts").or_else(|| o.get("set")) {
                match t {
                    Value::Array(items) => list(items, "texts")?,
                    other => {
                        return Err(Problem::new(
                            BAD_LAYOUT,
                            format!("\"texts\" is {}, not a list", kind(other)),
                        ))
                    }
                }
            } else {
                let get = |a: &str, b: &str| o.get(a).or_else(|| o.get(b));
                let missing = |m: &str| Problem::new(BAD_LAYOUT, m);
                let anchor = get("anchor", "query")
                    .ok_or_else(|| missing("no \"anchor\" (or \"query\") field"))?;
                let pos = get("positive", "pos")
                    .ok_or_else(|| missing("no \"positive\" (or \"pos\") field"))?;
                let mut row = vec![text(anchor, "anchor")?, text(pos, "positive")?];
                match get("negative", "neg") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => row.extend(list(items, "negative")?),
                    Some(n) => row.push(text(n, "negative")?),
                }
                row
            };
            Row::new(texts, scores)
        }
        other => {
            return Err(Problem::new(
                BAD_LAYOUT,
                format!("a row must be a list or an object, not {}", kind(other)),
            ))
        }
    };
    if row.len() < 2 {
        return Err(Problem::new(
            TOO_FEW_TEXTS,
            format!("a row needs at least 2 texts, this one has {}", row.len()),
        ));
    }
    Ok(row)
}

/// Parses one line of a tab-separated file (parallel sentences: `source<TAB>translation…`, or
/// `anchor<TAB>positive<TAB>negative…`): every field is a text, none may be empty.
pub fn parse_tsv_row(line: &str) -> Result<Row, Problem> {
    parse_tsv_fields(line, &[])
}

/// Names a header line gives score columns.
const SCORE_COLUMNS: &[&str] = &["score", "label", "scores", "labels"];

/// The score columns of a tab-separated file's first line when it is a header: it names at least
/// one `score`/`label` column beside at least two others (`sentence1<TAB>sentence2<TAB>score`).
/// A first line of plain texts gives `None` and is read as a row.
pub fn tsv_header(line: &str) -> Option<Vec<usize>> {
    let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
    let scores: Vec<usize> = (0..fields.len())
        .filter(|&i| SCORE_COLUMNS.contains(&fields[i].to_lowercase().as_str()))
        .collect();
    (!scores.is_empty() && fields.len() - scores.len() >= 2).then_some(scores)
}

/// A tab-separated line whose fields `score_columns` are numbers (scores) and the rest texts.
pub fn parse_tsv_fields(line: &str, score_columns: &[usize]) -> Result<Row, Problem> {
    let mut row = Row::default();
    for (i, f) in line.split('\t').enumerate() {
        if score_columns.contains(&i) {
            let x: f32 = f.trim().parse().map_err(|_| {
                Problem::new(
                    NOT_A_SCORE,
                    format!(
                        "field {} (a score column) is not a number: \"{}\"",
                        i + 1,
                        preview(f)
                    ),
                )
            })?;
            if !x.is_finite() {
                return Err(Problem::new(
                    NOT_A_SCORE,
                    format!("field {} (a score column) is not finite", i + 1),
                ));
            }
            row.scores.push(x);
        } else if f.trim().is_empty() {
            return Err(Problem::new(
                BAD_LAYOUT,
                format!("field {} of the tab-separated row is empty", i + 1),
            ));
        } else {
            row.texts.push(f.to_string());
        }
    }
    if let Some(&c) = score_columns
        .iter()
        .find(|&&c| c >= row.texts.len() + row.scores.len())
    {
        return Err(Problem::new(
            NOT_A_SCORE,
            format!("the row has no field {} (the header's score column)", c + 1),
        ));
    }
    if row.len() < 2 {
        return Err(Problem::new(
            TOO_FEW_TEXTS,
            format!(
                "a row needs at least 2 tab-separated texts, this one has {}",
                row.len()
            ),
        ));
    }
    Ok(row)
}

fn preview(t: &str) -> String {
    t.chars().take(40).collect()
}

/// How a pair file is laid out, from its name (`.parquet`: Parquet; `.tsv` before any
/// `.gz`/`.zst`: tab-separated lines; anything else: JSON lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFormat {
    Jsonl,
    Tsv,
    /// Read by `crate::parquet_rows`, not line by line.
    Parquet,
}

impl RowFormat {
    pub fn of(path: &Path) -> Self {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase());
        let name = name.unwrap_or_default();
        let stem = [".gz", ".zst", ".zstd"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        if stem.ends_with(".tsv") {
            RowFormat::Tsv
        } else if name.ends_with(".parquet") {
            RowFormat::Parquet
        } else {
            RowFormat::Jsonl
        }
    }

    pub fn parse(self, line: &str) -> Result<Row, Problem> {
        match self {
            RowFormat::Jsonl => parse_row(line),
            RowFormat::Tsv => parse_tsv_row(line),
            RowFormat::Parquet => Err(Problem::new(BAD_LAYOUT, "a Parquet file has no text lines")),
        }
    }
}

/// Reads every row of a pair file (plain, gzip or zstd), blank lines skipped. Errors name
/// file:line.
pub fn read_jsonl_rows(path: &Path) -> Result<Vec<Row>, RowError> {
    let mut reader = crate::reader::PairReader::open(path)?;
    let mut skips = crate::reader::SkipCounts::default();
    let mut rows = Vec::new();
    while let Some(row) = reader.next_row(crate::reader::BadRowPolicy::Error, &mut skips)? {
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_row_layouts() {
        assert_eq!(parse_row(r#"["a", "b"]"#).unwrap(), vec!["a", "b"]);
        assert_eq!(
            parse_row(r#"["a", "b", "c"]"#).unwrap(),
            vec!["a", "b", "c"]
        );
        assert_eq!(
            parse_row(r#"{"anchor": "a", "positive": "b", "negative": "c"}"#).unwrap(),
            vec!["a", "b", "c"]
        );
        assert_eq!(
            parse_row(r#"{"query": "a", "pos": "b", "neg": ["c", "d"]}"#).unwrap(),
            vec!["a", "b", "c", "d"]
        );
        assert_eq!(
            parse_row(r#"{"texts": ["a", "b"]}"#).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(
            parse_row(r#"{"set": ["a", "b", "c"]}"#).unwrap(),
            vec!["a", "b", "c"]
        );
        assert_eq!(
            parse_row(r#"{"context": "a", "context/0": "z", "response": "b", "subreddit": "x"}"#)
                .unwrap(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn tab_separated_rows() {
        let p = |n: &str| RowFormat::of(Path::new(n));
        assert_eq!(p("multi30k-train.en-de.tsv.gz"), RowFormat::Tsv);
        assert_eq!(p("x.TSV"), RowFormat::Tsv);
        assert_eq!(p("x.tsv.zst"), RowFormat::Tsv);
        assert_eq!(p("x.jsonl.gz"), RowFormat::Jsonl);
        assert_eq!(
            parse_tsv_row("A man.\tEin Mann.\tUn homme.").unwrap(),
            vec!["A man.", "Ein Mann.", "Un homme."]
        );
        // Quotes and JSON-looking text are text in a TSV.
        assert_eq!(
            parse_tsv_row("\"[1]\"\t{x}").unwrap(),
            vec!["\"[1]\"", "{x}"]
        );
        assert_eq!(parse_tsv_row("only one").unwrap_err().reason, TOO_FEW_TEXTS);
        let e = parse_tsv_row("a\t\tc").unwrap_err();
        assert_eq!(e.reason, BAD_LAYOUT);
        assert!(e.msg.contains("field 2"), "{}", e.msg);
    }

    #[test]
    fn scores_after_texts_and_in_objects() {
        let r = parse_row(r#"["a", "b", 0.8]"#).unwrap();
        assert_eq!((r.texts.len(), r.scores.clone()), (2, vec![0.8]));
        let r = parse_row(r#"["q", "p", "n", 8.5, 1]"#).unwrap();
        assert_eq!((r.texts.len(), r.scores.clone()), (3, vec![8.5, 1.0]));
        let r = parse_row(r#"{"sentence1": "a", "sentence2": "b", "score": 4.2}"#).unwrap();
        assert_eq!(
            (r.texts.clone(), r.scores.clone()),
            (vec!["a".to_string(), "b".into()], vec![4.2])
        );
        let r = parse_row(r#"{"query": "q", "positive": "p", "negative": "n", "label": -1.5}"#)
            .unwrap();
        assert_eq!((r.texts.len(), r.scores.clone()), (3, vec![-1.5]));
        let r = parse_row(r#"{"texts": ["a", "b"], "scores": [1, 2]}"#).unwrap();
        assert_eq!(r.scores, vec![1.0, 2.0]);
        // A text after a score, a score that is not a number: errors that say so.
        let e = parse_row(r#"["a", 1, "b"]"#).unwrap_err();
        assert_eq!(e.reason, BAD_LAYOUT, "{e}");
        assert!(
            e.msg.contains("text[2] is a text after the score text[1]"),
            "{e}"
        );
        let e = parse_row(r#"{"sentence1": "a", "sentence2": "b", "score": "high"}"#).unwrap_err();
        assert_eq!(e.reason, NOT_A_SCORE);
        assert!(e.msg.contains("\"score\""), "{e}");
        assert_eq!(
            parse_row(r#"["a", 0.5]"#).unwrap_err().reason,
            TOO_FEW_TEXTS
        );
    }

    #[test]
    fn tsv_with_a_header_reads_its_score_column() {
        assert_eq!(tsv_header("sentence1\tsentence2\tscore"), Some(vec![2]));
        assert_eq!(tsv_header("A man.\tEin Mann."), None);
        // One text beside a "score" is a row, not a header.
        assert_eq!(tsv_header("score\tPunktzahl"), None);
        let r = parse_tsv_fields("A plane.\tAn air plane.\t5.000", &[2]).unwrap();
        assert_eq!((r.texts.len(), r.scores.clone()), (2, vec![5.0]));
        let e = parse_tsv_fields("a\tb\tfive", &[2]).unwrap_err();
        assert_eq!(e.reason, NOT_A_SCORE);
        assert!(e.msg.contains("field 3"), "{e}");
        assert_eq!(
            parse_tsv_fields("a\tb", &[2]).unwrap_err().reason,
            NOT_A_SCORE
        );
    }

    #[test]
    fn bad_rows_say_what_is_wrong() {
        assert!(parse_row(r#"["only one"]"#)
            .unwrap_err()
            .msg
            .contains("at least 2"));
        assert!(parse_row(r#"["a", true]"#)
            .unwrap_err()
            .msg
            .contains("text[1] is not a string"));
        assert!(parse_row(r#"{"anchor": "a"}"#)
            .unwrap_err()
            .msg
            .contains("positive"));
        assert!(parse_row(r#"{"anchor": "a", "positive": null}"#)
            .unwrap_err()
            .msg
            .contains("not a string but null"));
        assert!(parse_row("{").unwrap_err().msg.contains("invalid JSON"));
        assert_eq!(parse_row("17").unwrap_err().reason, BAD_LAYOUT);
        assert_eq!(parse_row(r#"["a"]"#).unwrap_err().reason, TOO_FEW_TEXTS);
        assert_eq!(
            parse_row(r#"["a", null]"#).unwrap_err().reason,
            NOT_A_STRING
        );
    }
}
