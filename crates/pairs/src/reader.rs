//! Reading pair files line by line: plain, gzip (`.gz`) and zstd (`.zst`) JSONL or TSV, with the line
//! number kept for error messages and resume positions, and the bad-row policy applied.

use crate::row::{self, Problem, Row, RowError, RowFormat};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// What to do with a row that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BadRowPolicy {
    /// Stop with an error naming file:line (the default: bad data is a bug to fix upstream).
    #[default]
    Error,
    /// Pass over it and count it by reason.
    Skip,
}

impl std::str::FromStr for BadRowPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "error" => Ok(Self::Error),
            "skip" => Ok(Self::Skip),
            _ => Err(format!("bad-row policy \"{s}\" is not one of error, skip")),
        }
    }
}

/// Rows passed over under `skip`, by reason; the first few places are kept for the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SkipCounts {
    pub by_reason: BTreeMap<String, u64>,
    pub examples: Vec<String>,
}

const KEPT_EXAMPLES: usize = 5;

impl SkipCounts {
    pub fn total(&self) -> u64 {
        self.by_reason.values().sum()
    }

    pub fn add(&mut self, reason: &str, place: String) {
        *self.by_reason.entry(reason.to_string()).or_default() += 1;
        if self.examples.len() < KEPT_EXAMPLES {
            self.examples.push(place);
        }
    }

    pub fn merge(&mut self, other: &SkipCounts) {
        for (k, v) in &other.by_reason {
            *self.by_reason.entry(k.clone()).or_default() += v;
        }
        for e in &other.examples {
            if self.examples.len() < KEPT_EXAMPLES {
                self.examples.push(e.clone());
            }
        }
    }

    /// One line for logs: "3 rows skipped (invalid JSON: 2, fewer than 2 texts: 1)".
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .by_reason
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!("{} rows skipped ({})", self.total(), parts.join(", "))
    }
}

/// `raw` decompressed as `path`'s extension says: `.gz`, `.zst`/`.zstd`, else as it is (the
/// miners add the dump formats on top).
pub fn decompressor<R: BufRead + Send + 'static>(
    path: &Path,
    raw: R,
) -> std::io::Result<Box<dyn Read + Send>> {
    let name = path.to_string_lossy();
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::bufread::MultiGzDecoder::new(raw))
    } else if name.ends_with(".zst") || name.ends_with(".zstd") {
        let mut d = zstd::stream::read::Decoder::with_buffer(raw)?;
        // Files made with `zstd --long=31` (pushshift's dumps, large pair files) need the larger
        // window.
        d.window_log_max(31)?;
        Box::new(d)
    } else {
        Box::new(raw)
    })
}

/// A decompressing reader for `path`, chosen by its extension.
pub fn open_decoded(path: &Path) -> Result<Box<dyn Read + Send>, RowError> {
    let io = |cause| RowError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let raw = BufReader::with_capacity(1 << 16, std::fs::File::open(path).map_err(io)?);
    decompressor(path, raw).map_err(io)
}

/// The rows of one pair file, in order.
pub struct PairReader {
    path: PathBuf,
    inner: Box<dyn BufRead + Send>,
    /// Parquet files are read by row group; `line` then counts rows.
    parquet: Option<crate::parquet_rows::ParquetRows>,
    line: u64,
    buf: Vec<u8>,
    done: bool,
    format: RowFormat,
    /// A tab-separated file's score columns, from its header line.
    tsv_scores: Vec<usize>,
    /// The rows the caller's loss takes; others are bad rows.
    shape: Option<crate::shape::RowShape>,
}

/// One raw line, or the reason it could not be read.
pub enum Line<'a> {
    Text(&'a str),
    Bad(Problem),
    End,
}

impl PairReader {
    pub fn open(path: &Path) -> Result<Self, RowError> {
        Self::open_with(path, None)
    }

    /// Opens `path`; of a Parquet file, reads `columns` in that order (default: a known layout
    /// such as anchor/positive/negative or query/answer). Other formats take no columns.
    pub fn open_with(path: &Path, columns: Option<&[String]>) -> Result<Self, RowError> {
        let format = RowFormat::of(path);
        if format == RowFormat::Parquet {
            let rows = crate::parquet_rows::ParquetRows::open(path, columns)
                .map_err(|msg| RowError::Other(format!("{}: {msg}", path.display())))?;
            return Ok(Self {
                inner: Box::new(std::io::empty()),
                parquet: Some(rows),
                path: path.to_path_buf(),
                line: 0,
                buf: Vec::new(),
                done: false,
                format,
                tsv_scores: Vec::new(),
                shape: None,
            });
        }
        if columns.is_some() {
            return Err(RowError::Other(format!(
                "{}: `columns` picks the columns of Parquet files; JSONL and TSV rows are read \
                 as they are",
                path.display()
            )));
        }
        Ok(Self {
            inner: Box::new(BufReader::with_capacity(1 << 18, open_decoded(path)?)),
            parquet: None,
            path: path.to_path_buf(),
            line: 0,
            buf: Vec::with_capacity(4096),
            done: false,
            format,
            tsv_scores: Vec::new(),
            shape: None,
        })
    }

    /// Rows that are not of `shape` become bad rows (errors or counted skips, per the policy).
    pub fn with_shape(mut self, shape: Option<crate::shape::RowShape>) -> Self {
        self.shape = shape;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How this file's lines are laid out (from its name).
    pub fn format(&self) -> RowFormat {
        self.format
    }

    /// Lines consumed so far (the resume position).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next line. A read error (a truncated or corrupt compressed stream) ends the file:
    /// nothing after it can be trusted. A Parquet file has no lines (one problem, then the end).
    pub fn next_line(&mut self) -> Line<'_> {
        if self.done {
            return Line::End;
        }
        if self.parquet.is_some() {
            self.done = true;
            return Line::Bad(Problem::new(
                row::BAD_LAYOUT,
                "a Parquet file has rows, not lines: this tool reads JSONL or TSV",
            ));
        }
        self.buf.clear();
        match self.inner.read_until(b'\n', &mut self.buf) {
            Ok(0) => {
                self.done = true;
                Line::End
            }
            Ok(_) => {
                self.line += 1;
                let raw = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                match std::str::from_utf8(raw) {
                    Ok(s) => Line::Text(s),
                    Err(e) => Line::Bad(Problem::new(
                        row::INVALID_UTF8,
                        format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
                    )),
                }
            }
            Err(e) => {
                self.done = true;
                self.line += 1;
                Line::Bad(Problem::new(
                    row::UNREADABLE,
                    format!("cannot read further (truncated or corrupt file?): {e}"),
                ))
            }
        }
    }

    /// The next non-blank line parsed, with its line number; `None` at the end.
    pub fn next_parsed(&mut self) -> Option<(u64, Result<Row, Problem>)> {
        let (line, parsed) = self.next_unchecked()?;
        let parsed = match (&self.shape, parsed) {
            (Some(shape), Ok(row)) => shape.check(&row).map(|()| row),
            (_, parsed) => parsed,
        };
        Some((line, parsed))
    }

    fn next_unchecked(&mut self) -> Option<(u64, Result<Row, Problem>)> {
        if let Some(p) = &mut self.parquet {
            let next = p.next_row()?;
            self.line += 1;
            return Some((self.line, next));
        }
        let format = self.format;
        loop {
            let line = self.line + 1;
            let first = line == 1;
            let mut header = None;
            // Out of `self` while the line borrows it.
            let score_columns = std::mem::take(&mut self.tsv_scores);
            let parsed = match self.next_line() {
                Line::End => return None,
                Line::Text(t) if t.trim().is_empty() => continue,
                Line::Text(t) if format == RowFormat::Tsv && first => {
                    header = row::tsv_header(t);
                    row::parse_tsv_row(t)
                }
                Line::Text(t) if format == RowFormat::Tsv => {
                    row::parse_tsv_fields(t, &score_columns)
                }
                Line::Text(t) => format.parse(t),
                Line::Bad(p) => Err(p),
            };
            self.tsv_scores = score_columns;
            if let Some(cols) = header {
                // A header names the columns; it is not a row.
                self.tsv_scores = cols;
                continue;
            }
            return Some((line, parsed));
        }
    }

    /// The next usable row, or `None` at the end. Blank lines are passed over; bad rows follow
    /// `policy`.
    pub fn next_row(
        &mut self,
        policy: BadRowPolicy,
        skips: &mut SkipCounts,
    ) -> Result<Option<Row>, RowError> {
        while let Some((line, parsed)) = self.next_parsed() {
            let problem = match parsed {
                Ok(row) => return Ok(Some(row)),
                Err(p) => p,
            };
            match policy {
                BadRowPolicy::Error => {
                    return Err(RowError::Bad {
                        path: self.path.clone(),
                        line,
                        msg: problem.msg,
                    })
                }
                BadRowPolicy::Skip => {
                    skips.add(problem.reason, format!("{}:{line}", self.path.display()))
                }
            }
        }
        Ok(None)
    }

    /// Passes over `n` lines without parsing them (to reach a resume position).
    pub fn skip_lines(&mut self, n: u64) -> Result<(), RowError> {
        if let Some(p) = &mut self.parquet {
            let want = n.saturating_sub(self.line);
            let got = p.skip(want);
            self.line += got;
            if got < want {
                return Err(RowError::Other(format!(
                    "{}: has {} rows, but the saved position is row {n}; did the file change?",
                    self.path.display(),
                    self.line
                )));
            }
            return Ok(());
        }
        let tsv = self.format == RowFormat::Tsv;
        while self.line < n {
            let first = self.line == 0;
            let header = match self.next_line() {
                Line::End => {
                    return Err(RowError::Other(format!(
                        "{}: has {} lines, but the saved position is line {n}; did the file \
                         change?",
                        self.path.display(),
                        self.line
                    )))
                }
                Line::Text(t) if tsv && first => row::tsv_header(t),
                _ => None,
            };
            if let Some(cols) = header {
                self.tsv_scores = cols;
            }
        }
        Ok(())
    }
}

/// The files a dataset path names: the file itself, or every match of a glob, sorted.
pub fn expand(pattern: &str) -> Result<Vec<PathBuf>, RowError> {
    if !pattern.contains(['*', '?', '[']) {
        let p = PathBuf::from(pattern);
        if !p.is_file() {
            return Err(RowError::Other(format!("{pattern}: no such file")));
        }
        return Ok(vec![p]);
    }
    let mut out = Vec::new();
    let paths = glob::glob(pattern).map_err(|e| RowError::Other(format!("{pattern}: {e}")))?;
    for p in paths {
        let p = p.map_err(|e| RowError::Other(format!("{pattern}: {e}")))?;
        if p.is_file() {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(RowError::Other(format!("{pattern}: no file matches")));
    }
    out.sort();
    Ok(out)
}
