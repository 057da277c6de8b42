//! One training example: the row formats of the 2021 "embedding-training-data" collection.
//!
//! A row has two or more texts, anchor first, then the positive, then any hard negatives:
//! - a list: `["anchor", "positive", "neg1", ...]`;
//! - an object: `{"anchor"|"query": ..., "positive"|"pos": ..., "negative"|"neg": str | [str]}`;
//! - an object `{"texts": [...]}`, or `{"set": [...]}` (the 2021 files of duplicate sets use it;
//!   the first two texts form the pair);
//! - a conversational object `{"context": ..., "response": ..., ...}` (PolyAI's Reddit format):
//!   the pair (context, response).

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The texts of one example, anchor first.
pub type Row = Vec<String>;

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

fn list(items: &[Value], what: &str) -> Result<Row, Problem> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| text(v, &format!("{what}[{i}]")))
        .collect()
}

/// Parses one line of a pair file. The error says what is wrong (the caller adds file:line).
pub fn parse_row(line: &str) -> Result<Row, Problem> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| Problem::new(INVALID_JSON, format!("invalid JSON: {e}")))?;
    let row = match &v {
        Value::Array(items) => list(items, "text")?,
        Value::Object(o) => {
            if let (Some(c), Some(r)) = (o.get("context"), o.get("response")) {
                // Conversational rows (the Reddit miner's): context, then response.
                vec![text(c, "context")?, text(r, "response")?]
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
            }
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
    let row: Row = line.split('\t').map(str::to_string).collect();
    if row.len() < 2 {
        return Err(Problem::new(
            TOO_FEW_TEXTS,
            "a row needs at least 2 tab-separated texts, this one has 1",
        ));
    }
    if let Some(i) = row.iter().position(|t| t.trim().is_empty()) {
        return Err(Problem::new(
            BAD_LAYOUT,
            format!("field {} of the tab-separated row is empty", i + 1),
        ));
    }
    Ok(row)
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
    fn bad_rows_say_what_is_wrong() {
        assert!(parse_row(r#"["only one"]"#)
            .unwrap_err()
            .msg
            .contains("at least 2"));
        assert!(parse_row(r#"["a", 3]"#)
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
        assert_eq!(parse_row(r#"["a", 1]"#).unwrap_err().reason, NOT_A_STRING);
    }
}
