//! Inputs and outputs shared by the miners: decompressing readers that count the compressed
//! bytes they consume (for progress and bytes/s), sharded gzip/zstd pair writers that only
//! rename a file into place once it is complete, and the run's stats.json.

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An error that names where it happened.
#[derive(Debug, thiserror::Error)]
pub enum MineError {
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// `at` is a line number or byte offset, as the message says.
    #[error("{}: {at}: {msg}", path.display())]
    Bad {
        path: PathBuf,
        at: String,
        msg: String,
    },
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, MineError>;

pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MineError + '_ {
    move |cause| MineError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// Counts bytes read through it into shared counters (the run's, for progress, and one
/// input's, for its stats).
pub struct Counting<R> {
    inner: R,
    counts: Counters,
}

pub type Counters = Vec<Arc<AtomicU64>>;

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for c in &self.counts {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

impl<R> Counting<R> {
    pub fn new(inner: R, counts: Counters) -> Self {
        Self { inner, counts }
    }

    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// A reader of `path`, decompressed by its extension (.gz, .zst, .bz2, .xz, or plain); the
/// compressed bytes consumed are added to `count`.
pub fn open_input(path: &Path, counts: Counters) -> Result<Box<dyn BufRead + Send>> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let raw = BufReader::with_capacity(1 << 20, Counting::new(f, counts));
    let name = path.to_string_lossy();
    let r: Box<dyn Read + Send> = if name.ends_with(".bz2") {
        Box::new(bzip2::bufread::MultiBzDecoder::new(raw))
    } else if name.ends_with(".xz") {
        Box::new(xz2::bufread::XzDecoder::new_multi_decoder(raw))
    } else {
        pairs::reader::decompressor(path, raw).map_err(io_err(path))?
    };
    // Small reads: a decoder that meets a truncated stream fails the whole read call, so the
    // data decoded in that call is lost; 64 KiB calls lose at most that.
    Ok(Box::new(BufReader::with_capacity(64 << 10, r)))
}

/// Output compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "gz" | "gzip" => Ok(Self::Gzip),
            "zst" | "zstd" => Ok(Self::Zstd),
            _ => Err(format!("compression \"{s}\" is not one of gz, zst")),
        }
    }
}

impl Compression {
    fn ext(self) -> &'static str {
        match self {
            Self::Gzip => "jsonl.gz",
            Self::Zstd => "jsonl.zst",
        }
    }
}

/// Writes rows to `<dir>/<name>-00000.jsonl.gz`, `-00001`, … starting a new shard after
/// `shard_bytes` of uncompressed JSON. Each shard is written as `….partial` and renamed when
/// complete; `finish` completes the last one.
pub struct ShardWriter {
    dir: PathBuf,
    name: String,
    compression: Compression,
    shard_bytes: u64,
    shard: usize,
    written: u64,
    out: Option<(PathBuf, Box<dyn Write + Send>)>,
    pub rows: u64,
    pub files: Vec<PathBuf>,
}

impl ShardWriter {
    pub fn new(dir: &Path, name: &str, compression: Compression, shard_bytes: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            compression,
            shard_bytes: shard_bytes.max(1),
            shard: 0,
            written: 0,
            out: None,
            rows: 0,
            files: Vec::new(),
        }
    }

    fn path(&self, shard: usize) -> PathBuf {
        self.dir.join(format!(
            "{}-{shard:05}.{}",
            self.name,
            self.compression.ext()
        ))
    }

    fn open(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let path = self.path(self.shard);
        let tmp = partial(&path);
        let f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let buf = std::io::BufWriter::with_capacity(1 << 20, f);
        let w: Box<dyn Write + Send> = match self.compression {
            // Level 1: the default level 6 spent 3/4 of StackExchange mining time in deflate,
            // for files only ~10% smaller.
            Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
                buf,
                flate2::Compression::fast(),
            )),
            Compression::Zstd => Box::new(
                zstd::stream::write::Encoder::new(buf, 3)
                    .map_err(io_err(&tmp))?
                    .auto_finish(),
            ),
        };
        self.out = Some((path, w));
        self.written = 0;
        Ok(())
    }

    pub fn write<T: Serialize>(&mut self, row: &T) -> Result<()> {
        if self.out.is_none() {
            self.open()?;
        }
        let mut line = serde_json::to_vec(row).map_err(|e| MineError::Other(e.to_string()))?;
        line.push(b'\n');
        let (path, w) = self.out.as_mut().expect("opened above");
        w.write_all(&line).map_err(io_err(path))?;
        self.written += line.len() as u64;
        self.rows += 1;
        if self.written >= self.shard_bytes {
            self.close()?;
            self.shard += 1;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some((path, mut w)) = self.out.take() {
            w.flush().map_err(io_err(&path))?;
            drop(w);
            std::fs::rename(partial(&path), &path).map_err(io_err(&path))?;
            self.files.push(path);
        }
        Ok(())
    }

    /// Completes the last shard; returns the files written.
    pub fn finish(mut self) -> Result<(u64, Vec<PathBuf>)> {
        self.close()?;
        Ok((self.rows, std::mem::take(&mut self.files)))
    }
}

/// A shard still open when its writer goes away (the run failed) is incomplete: remove it
/// rather than leave a `.partial` file behind.
impl Drop for ShardWriter {
    fn drop(&mut self) {
        if let Some((path, w)) = self.out.take() {
            drop(w);
            let _ = std::fs::remove_file(partial(&path));
        }
    }
}

pub fn partial(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".partial");
    PathBuf::from(s)
}

/// What a run did, written as stats.json beside its outputs.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct RunStats {
    pub inputs: Vec<String>,
    pub rows_in: u64,
    /// Rows written, by output.
    pub rows_out: BTreeMap<String, u64>,
    /// Rows dropped, by filter reason.
    pub filtered: BTreeMap<String, u64>,
    /// Bad records passed over under `--on-bad-record skip`, by reason, with the first places.
    pub skipped: pairs::SkipCounts,
    pub bytes_in: u64,
    /// The Wikipedia edition(s) mined (`de`, or `de-fr` for cross-language pairs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub seconds: f64,
    pub bytes_per_s: f64,
    pub rows_per_s: f64,
    pub complete: bool,
}

impl RunStats {
    pub fn filter(&mut self, reason: &str) {
        *self.filtered.entry(reason.to_string()).or_default() += 1;
    }

    pub fn merge(&mut self, o: &RunStats) {
        self.rows_in += o.rows_in;
        for (k, v) in &o.rows_out {
            *self.rows_out.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.filtered {
            *self.filtered.entry(k.clone()).or_default() += v;
        }
        self.skipped.merge(&o.skipped);
        self.bytes_in += o.bytes_in;
    }

    pub fn finish(&mut self, seconds: f64) {
        self.seconds = seconds;
        self.bytes_per_s = self.bytes_in as f64 / seconds.max(1e-9);
        self.rows_per_s = self.rows_in as f64 / seconds.max(1e-9);
        self.complete = true;
    }

    /// Writes `<dir>/stats.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("stats.json");
        let tmp = partial(&path);
        let text =
            serde_json::to_string_pretty(self).map_err(|e| MineError::Other(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// The stats.json of a complete earlier run over the same inputs, if there is one.
    pub fn completed(dir: &Path, inputs: &[String]) -> Option<RunStats> {
        let s: RunStats =
            serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).ok()?).ok()?;
        (s.complete && s.inputs == inputs).then_some(s)
    }
}

/// Options every miner takes.
#[derive(Clone, Debug)]
pub struct Common {
    pub out: PathBuf,
    pub compression: Compression,
    pub shard_bytes: u64,
    /// Stop after this many input records per input (quick runs).
    pub limit: Option<u64>,
    pub policy: pairs::BadRowPolicy,
    pub threads: usize,
    /// Re-mine inputs whose outputs are already complete.
    pub force: bool,
    /// Compressed input bytes read so far, all inputs together (for progress bars).
    pub bytes: Arc<AtomicU64>,
}

impl Common {
    /// Counters for one input: the run's and a fresh one, returned second.
    pub fn counters(&self) -> (Counters, Arc<AtomicU64>) {
        let own = Arc::new(AtomicU64::new(0));
        (vec![self.bytes.clone(), own.clone()], own)
    }
}
