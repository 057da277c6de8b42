//! Pair rows from Parquet files, the format the sentence-transformers dataset pages publish pair
//! data in: string columns (`anchor`/`positive`/`negative`, `query`/`answer`,
//! `sentence1`/`sentence2`, `text1`/`text2`, …), a column of string lists counting as several
//! texts (hard negatives). Read one row group at a time (memory: one row group of the chosen
//! columns), with the position counted in rows so a resume skips whole row groups unread.

use crate::row::{self, Problem, Row};
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::record::Field;
use parquet::schema::types::Type;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

/// The column layouts tried, in order, when a dataset names none (`[[data]] columns`); the
/// trailing columns of a layout are optional (hard negatives).
const LAYOUTS: &[(&[&str], usize)] = &[
    (&["anchor", "positive", "negative"], 2),
    (&["query", "positive", "negative"], 2),
    (&["query", "answer"], 2),
    (&["question", "answer"], 2),
    (&["sentence1", "sentence2"], 2),
    (&["text1", "text2"], 2),
    (&["english", "non_english"], 2),
];

/// Columns that are never texts (labels, scores) when a file's layout is not a known one.
const NOT_TEXT: &[&str] = &["label", "labels", "score", "scores", "id", "idx"];

pub struct ParquetRows {
    reader: SerializedFileReader<std::fs::File>,
    projection: Type,
    /// The next row group to read.
    group: usize,
    rows: VecDeque<Result<Row, Problem>>,
}

fn corrupt(msg: impl std::fmt::Display) -> Problem {
    Problem::new(
        row::UNREADABLE,
        format!("cannot read further (truncated or corrupt Parquet file?): {msg}"),
    )
}

/// What a panic inside the parquet crate said (it panics on some corrupt pages).
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the reader panicked".into())
}

impl ParquetRows {
    /// Opens `path`, reading `columns` in that order (default: the first known layout, else
    /// every string column but labels and scores).
    pub fn open(path: &Path, columns: Option<&[String]>) -> Result<Self, String> {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let reader = SerializedFileReader::new(file)
            .map_err(|e| format!("not a readable Parquet file (truncated or corrupt?): {e}"))?;
        let root = reader.metadata().file_metadata().schema().clone();
        let names: Vec<&str> = root.get_fields().iter().map(|f| f.name()).collect();
        let chosen: Vec<String> = match columns {
            Some(c) => {
                if let Some(missing) = c.iter().find(|c| !names.contains(&c.as_str())) {
                    return Err(format!(
                        "has no column \"{missing}\" (its columns: {})",
                        names.join(", ")
                    ));
                }
                c.to_vec()
            }
            None => default_columns(&root)?,
        };
        let fields: Vec<Arc<Type>> = chosen
            .iter()
            .map(|c| {
                let f = root
                    .get_fields()
                    .iter()
                    .find(|f| f.name() == c)
                    .expect("checked above")
                    .clone();
                if !is_text_column(&f) && !is_number_column(&f) {
                    return Err(format!(
                        "column \"{c}\" is not a string, a number, or a list of either"
                    ));
                }
                Ok(f)
            })
            .collect::<Result<_, String>>()?;
        if fields.iter().filter(|f| is_text_column(f)).count() < 2 {
            let numbers: Vec<String> = fields
                .iter()
                .filter(|f| !is_text_column(f))
                .map(|f| format!("\"{}\"", f.name()))
                .collect();
            return Err(format!(
                "needs at least 2 text columns; {} of those chosen hold numbers, which are read \
                 as scores, not texts",
                numbers.join(", ")
            ));
        }
        let projection = Type::group_type_builder(root.name())
            .with_fields(fields)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            reader,
            projection,
            group: 0,
            rows: VecDeque::new(),
        })
    }

    /// The next row, or `None` at the end; a row group that cannot be read ends the file with
    /// one `UNREADABLE` problem.
    pub fn next_row(&mut self) -> Option<Result<Row, Problem>> {
        while self.rows.is_empty() {
            if self.group >= self.reader.num_row_groups() {
                return None;
            }
            let g = self.group;
            self.group += 1;
            match self.read_group(g) {
                Ok(rows) => self.rows.extend(rows),
                Err(p) => {
                    self.group = self.reader.num_row_groups();
                    return Some(Err(p));
                }
            }
        }
        self.rows.pop_front()
    }

    /// Passes over `n` rows, whole row groups without reading them. Returns how many rows there
    /// were to pass (fewer than `n` at the end of the file, or before an unreadable row group,
    /// which `next_row` then reports).
    pub fn skip(&mut self, mut n: u64) -> u64 {
        let groups = self.reader.num_row_groups();
        let mut skipped = 0;
        while n > 0 {
            if self.rows.pop_front().is_some() {
                n -= 1;
                skipped += 1;
                continue;
            }
            if self.group >= groups {
                break;
            }
            let rows = self
                .reader
                .metadata()
                .row_group(self.group)
                .num_rows()
                .max(0) as u64;
            let g = self.group;
            self.group += 1;
            if rows <= n {
                n -= rows;
                skipped += rows;
            } else {
                match self.read_group(g) {
                    Ok(r) => self.rows.extend(r),
                    Err(p) => {
                        self.group = groups;
                        self.rows.push_back(Err(p));
                        break;
                    }
                }
            }
        }
        skipped
    }

    fn read_group(&self, g: usize) -> Result<Vec<Result<Row, Problem>>, Problem> {
        // Some corrupt pages make the parquet crate panic instead of returning an error: a bad
        // file must be an error naming it, never a crash.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let rg = self.reader.get_row_group(g).map_err(corrupt)?;
            let iter = rg
                .get_row_iter(Some(self.projection.clone()))
                .map_err(corrupt)?;
            let mut out = Vec::with_capacity(rg.metadata().num_rows().max(0) as usize);
            for r in iter {
                let r = r.map_err(corrupt)?;
                out.push(texts_of(&r));
            }
            Ok(out)
        }))
        .unwrap_or_else(|p| Err(corrupt(panic_message(p))))
    }
}

/// A number column's value as a score.
fn number(f: &Field) -> Option<f64> {
    Some(match f {
        Field::Float(x) => *x as f64,
        Field::Double(x) => *x,
        Field::Byte(x) => *x as f64,
        Field::Short(x) => *x as f64,
        Field::Int(x) => *x as f64,
        Field::Long(x) => *x as f64,
        Field::UByte(x) => *x as f64,
        Field::UShort(x) => *x as f64,
        Field::UInt(x) => *x as f64,
        Field::ULong(x) => *x as f64,
        Field::Bool(b) => *b as u8 as f64,
        _ => return None,
    })
}

fn score(name: &str, x: f64) -> Result<f32, Problem> {
    if x.is_finite() && x.abs() <= f32::MAX as f64 {
        Ok(x as f32)
    } else {
        Err(Problem::new(
            row::NOT_A_SCORE,
            format!("column \"{name}\" holds {x}, not a finite score"),
        ))
    }
}

/// The texts of one record, columns in order, lists flattened, and its scores (number columns,
/// lists of numbers); a null text or fewer than two texts is a bad row.
fn texts_of(r: &parquet::record::Row) -> Result<Row, Problem> {
    let mut out = Vec::new();
    let mut scores = Vec::new();
    for (name, field) in r.get_column_iter() {
        if let Some(x) = number(field) {
            scores.push(score(name, x)?);
            continue;
        }
        match field {
            Field::Str(s) => out.push(s.clone()),
            Field::Null if out.len() >= 2 => {}
            Field::Null => {
                return Err(Problem::new(
                    row::NOT_A_STRING,
                    format!("column \"{name}\" is null"),
                ))
            }
            Field::ListInternal(l) => {
                for e in l.elements() {
                    match e {
                        Field::Str(s) => out.push(s.clone()),
                        e if number(e).is_some() => {
                            scores.push(score(name, number(e).expect("a number"))?)
                        }
                        _ => {
                            return Err(Problem::new(
                                row::NOT_A_STRING,
                                format!("column \"{name}\" holds a non-string item"),
                            ))
                        }
                    }
                }
            }
            other => {
                return Err(Problem::new(
                    row::NOT_A_STRING,
                    format!("column \"{name}\" is not a string but {other}"),
                ))
            }
        }
    }
    if out.len() < 2 {
        return Err(Problem::new(
            row::TOO_FEW_TEXTS,
            format!("a row needs at least 2 texts, this one has {}", out.len()),
        ));
    }
    Ok(Row::new(out, scores))
}

fn is_string(t: &Type) -> bool {
    use parquet::basic::{ConvertedType, LogicalType, Type as Physical};
    t.is_primitive()
        && t.get_physical_type() == Physical::BYTE_ARRAY
        && (matches!(
            t.get_basic_info().logical_type_ref(),
            Some(LogicalType::String)
        ) || t.get_basic_info().converted_type() == ConvertedType::UTF8)
}

/// A string column, or a list of strings (any of Parquet's list encodings).
fn is_text_column(t: &Type) -> bool {
    if is_string(t) {
        return true;
    }
    let mut t = t;
    // LIST group → repeated group → element, or the legacy two-level form.
    for _ in 0..2 {
        if t.is_primitive() || t.get_fields().len() != 1 {
            return false;
        }
        t = &t.get_fields()[0];
        if is_string(t) {
            return true;
        }
    }
    false
}

/// A number column, or a list of numbers (scores).
fn is_number_column(t: &Type) -> bool {
    use parquet::basic::Type as Physical;
    let num = |t: &Type| {
        t.is_primitive()
            && matches!(
                t.get_physical_type(),
                Physical::INT32 | Physical::INT64 | Physical::FLOAT | Physical::DOUBLE
            )
    };
    let mut t = t;
    for _ in 0..3 {
        if num(t) {
            return true;
        }
        if t.is_primitive() || t.get_fields().len() != 1 {
            return false;
        }
        t = &t.get_fields()[0];
    }
    false
}

/// The score columns of a file (`score`, `label`, … holding numbers), read after the texts.
fn score_columns(root: &Type) -> Vec<String> {
    NOT_TEXT[..4]
        .iter()
        .filter_map(|n| root.get_fields().iter().find(|f| f.name() == *n))
        .filter(|f| is_number_column(f))
        .map(|f| f.name().to_string())
        .collect()
}

fn default_columns(root: &Type) -> Result<Vec<String>, String> {
    let has = |n: &str| root.get_fields().iter().any(|f| f.name() == n);
    for (layout, required) in LAYOUTS {
        if layout[..*required].iter().all(|c| has(c)) {
            let mut cols: Vec<String> = layout
                .iter()
                .filter(|c| has(c))
                .map(|c| c.to_string())
                .collect();
            cols.extend(score_columns(root));
            return Ok(cols);
        }
    }
    let texts: Vec<String> = root
        .get_fields()
        .iter()
        .filter(|f| !NOT_TEXT.contains(&f.name()) && is_text_column(f))
        .map(|f| f.name().to_string())
        .collect();
    if texts.len() < 2 {
        let names: Vec<&str> = root.get_fields().iter().map(|f| f.name()).collect();
        return Err(format!(
            "no two text columns to pair (its columns: {}); name them with [[data]] columns",
            names.join(", ")
        ));
    }
    let mut texts = texts;
    texts.extend(score_columns(root));
    Ok(texts)
}
