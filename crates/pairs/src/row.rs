//! One training example: the row formats of the 2021 "embedding-training-data" collection.
//!
//! A row has two or more texts, anchor first, then the positive, then any hard negatives:
//! - a list: `["anchor", "positive", "neg1", ...]`;
//! - an object: `{"anchor"|"query": ..., "positive"|"pos": ..., "negative"|"neg": str | [str]}`;
//! - an object `{"texts": [...]}`, or `{"set": [...]}` (the 2021 files of duplicate sets use it;
//!   the first two texts form the pair).

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
        line: usize,
        msg: String,
    },
}

fn text(v: &Value, what: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("{what} is not a string but {}", kind(other))),
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

fn list(items: &[Value], what: &str) -> Result<Row, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| text(v, &format!("{what}[{i}]")))
        .collect()
}

/// Parses one line of a pair file. The error says what is wrong (the caller adds file:line).
pub fn parse_row(line: &str) -> Result<Row, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let row = match &v {
        Value::Array(items) => list(items, "text")?,
        Value::Object(o) => {
            if let Some(t) = o.get("texts").or_else(|| o.get("set")) {
                match t {
                    Value::Array(items) => list(items, "texts")?,
                    other => return Err(format!("\"texts\" is {}, not a list", kind(other))),
                }
            } else {
                let get = |a: &str, b: &str| o.get(a).or_else(|| o.get(b));
                let anchor = get("anchor", "query").ok_or("no \"anchor\" (or \"query\") field")?;
                let pos = get("positive", "pos").ok_or("no \"positive\" (or \"pos\") field")?;
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
            return Err(format!(
                "a row must be a list or an object, not {}",
                kind(other)
            ))
        }
    };
    if row.len() < 2 {
        return Err(format!(
            "a row needs at least 2 texts, this one has {}",
            row.len()
        ));
    }
    Ok(row)
}

/// Reads every row of a plain `.jsonl` pair file, blank lines skipped. Errors name file:line.
pub fn read_jsonl_rows(path: &Path) -> Result<Vec<Row>, RowError> {
    let bytes = std::fs::read(path).map_err(|cause| RowError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let bad = |line: usize, msg: String| RowError::Bad {
        path: path.to_path_buf(),
        line,
        msg,
    };
    let mut rows = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = std::str::from_utf8(raw).map_err(|e| {
            bad(
                i + 1,
                format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
            )
        })?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(parse_row(line).map_err(|m| bad(i + 1, m))?);
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
    }

    #[test]
    fn bad_rows_say_what_is_wrong() {
        assert!(parse_row(r#"["only one"]"#)
            .unwrap_err()
            .contains("at least 2"));
        assert!(parse_row(r#"["a", 3]"#)
            .unwrap_err()
            .contains("text[1] is not a string"));
        assert!(parse_row(r#"{"anchor": "a"}"#)
            .unwrap_err()
            .contains("positive"));
        assert!(parse_row(r#"{"anchor": "a", "positive": null}"#)
            .unwrap_err()
            .contains("not a string but null"));
        assert!(parse_row("{").unwrap_err().contains("invalid JSON"));
        assert!(parse_row("17").unwrap_err().contains("list or an object"));
    }
}
