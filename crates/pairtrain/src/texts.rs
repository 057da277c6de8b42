//! Reading texts to embed (`.txt`, one per line; `.jsonl`, one object per line) and writing
//! embeddings (`.jsonl` or `.npy`), atomically.

use anyhow::{bail, Context, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Reads every text of `path`. `.txt`: each line is one text (a trailing `\r` is dropped; an
/// empty line is an empty text). `.jsonl`: each non-blank line is an object whose `field` is a
/// string. Errors name the file and the 1-based line.
pub fn read_texts(path: &Path, field: &str) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let kind = input_kind(path)?;
    let mut out = Vec::new();
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if body.is_empty() && bytes.len() <= 1 {
        return Ok(out);
    }
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| {
            anyhow::anyhow!(
                "{}:{line_no}: invalid UTF-8 at byte {} of the line",
                path.display(),
                e.valid_up_to()
            )
        })?;
        match kind {
            InputKind::Txt => out.push(line.to_string()),
            InputKind::Jsonl => {
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                    anyhow::anyhow!("{}:{line_no}: invalid JSON: {e}", path.display())
                })?;
                match v.get(field) {
                    Some(serde_json::Value::String(s)) => out.push(s.clone()),
                    Some(_) => bail!(
                        "{}:{line_no}: field \"{field}\" is not a string",
                        path.display()
                    ),
                    None => bail!("{}:{line_no}: no field \"{field}\"", path.display()),
                }
            }
        }
    }
    Ok(out)
}

enum InputKind {
    Txt,
    Jsonl,
}

fn input_kind(path: &Path) -> Result<InputKind> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("txt") => Ok(InputKind::Txt),
        Some("jsonl") => Ok(InputKind::Jsonl),
        _ => bail!(
            "{}: unknown input type (use .txt, one text per line, or .jsonl)",
            path.display()
        ),
    }
}

/// The output format, chosen by the file's extension.
#[derive(Clone, Copy)]
pub enum OutputKind {
    Jsonl,
    Npy,
}

impl OutputKind {
    pub fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl") => Ok(OutputKind::Jsonl),
            Some("npy") => Ok(OutputKind::Npy),
            _ => bail!(
                "{}: unknown output type (use .jsonl or .npy)",
                path.display()
            ),
        }
    }
}

/// Writes to `<path>.partial` and renames it over `path` on `finish`, so a reader never sees a
/// half-written file; dropped without `finish`, the partial file is removed.
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    w: Option<BufWriter<std::fs::File>>,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> Result<Self> {
        let mut name = dest.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        let tmp = dest.with_file_name(name);
        let f = std::fs::File::create(&tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        Ok(Self {
            tmp,
            dest: dest.to_path_buf(),
            w: Some(BufWriter::with_capacity(1 << 20, f)),
        })
    }

    pub fn writer(&mut self) -> &mut BufWriter<std::fs::File> {
        self.w.as_mut().expect("writer used after finish")
    }

    pub fn finish(mut self) -> Result<()> {
        let w = self.w.take().expect("finish called twice");
        let f = w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("{}: {}", self.tmp.display(), e.error()))?;
        f.sync_all()
            .with_context(|| format!("{}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("{}: cannot rename into place", self.dest.display()))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.w.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Streams embeddings, in order, into a `.jsonl` or `.npy` file.
pub struct EmbeddingWriter {
    file: AtomicFile,
    kind: OutputKind,
    rows: usize,
    dim: usize,
    path: PathBuf,
}

impl EmbeddingWriter {
    pub fn create(path: &Path, dim: usize) -> Result<Self> {
        let kind = OutputKind::of(path)?;
        let mut file = AtomicFile::create(path)?;
        if let OutputKind::Npy = kind {
            file.writer().write_all(&model::npy::header(0, dim))?;
        }
        Ok(Self {
            file,
            kind,
            rows: 0,
            dim,
            path: path.to_path_buf(),
        })
    }

    pub fn write(&mut self, emb: &[f32]) -> Result<()> {
        if emb.len() != self.dim {
            bail!("embedding of {} values, expected {}", emb.len(), self.dim);
        }
        let w = self.file.writer();
        let res = match self.kind {
            OutputKind::Jsonl => {
                serde_json::to_writer(&mut *w, &serde_json::json!({ "embedding": emb }))
                    .map_err(std::io::Error::other)
                    .and_then(|_| w.write_all(b"\n"))
            }
            OutputKind::Npy => emb.iter().try_for_each(|v| w.write_all(&v.to_le_bytes())),
        };
        res.with_context(|| format!("{}: write failed", self.path.display()))?;
        self.rows += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<usize> {
        if let OutputKind::Npy = self.kind {
            use std::io::{Seek, SeekFrom};
            let header = model::npy::header(self.rows, self.dim);
            let w = self.file.writer();
            w.seek(SeekFrom::Start(0))?;
            w.write_all(&header)?;
        }
        let rows = self.rows;
        self.file.finish()?;
        Ok(rows)
    }
}
