//! Embeddings of a whole corpus for search (consistency filtering, hard-negative mining):
//! L2-normalized so that a dot product is the cosine, written once to an `.npy` cache in chunks
//! and read back into one tensor, so a second run does not embed again.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use model::SentenceModel;
use std::io::Read;
use std::path::Path;

pub use model::identity::{file_identity, model_identity};

/// Texts embedded at a time on the way to the cache (sorted by length within the chunk).
const CHUNK: usize = 4096;

/// Embeddings [n, d] (f32, L2-normalized: scores are cosines) of `texts`, on the model's device.
pub fn embed(
    model: &SentenceModel,
    texts: &[&str],
    batch_size: usize,
    mut tick: impl FnMut(usize),
) -> Result<Tensor> {
    let rows = model.encode(texts, batch_size, &mut tick)?;
    let flat: Vec<f32> = rows.concat();
    let t = Tensor::from_vec(flat, (texts.len(), model.dim()), &model.device)?;
    let norm = t.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    Ok(t.broadcast_div(&norm)?)
}

/// The float32 rows of an .npy file written by `EmbeddingWriter`, read straight into one vector
/// (a corpus is the largest thing in memory: no second copy of it).
pub fn read_npy(path: &Path, dim: usize) -> Result<Vec<f32>> {
    let ctx = || format!("{}: cannot read", path.display());
    let mut f = std::io::BufReader::new(std::fs::File::open(path).with_context(ctx)?);
    let mut head = [0u8; 10];
    f.read_exact(&mut head).with_context(ctx)?;
    if &head[..6] != b"\x93NUMPY" {
        bail!("{}: not an .npy file", path.display());
    }
    let mut dict = vec![0u8; u16::from_le_bytes([head[8], head[9]]) as usize];
    f.read_exact(&mut dict).with_context(ctx)?;
    let size = std::fs::metadata(path).with_context(ctx)?.len() as usize;
    let data_len = size.saturating_sub(10 + dict.len());
    if !data_len.is_multiple_of(4 * dim) {
        bail!("{}: not rows of {dim} float32 values", path.display());
    }
    let mut out = Vec::with_capacity(data_len / 4);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(ctx)?;
        if n == 0 {
            break;
        }
        // The buffer holds whole floats except at a read boundary, which `read` may cut.
        let whole = n - n % 4;
        out.extend(
            buf[..whole]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        if whole < n {
            let mut rest = [0u8; 4];
            rest[..n - whole].copy_from_slice(&buf[whole..n]);
            f.read_exact(&mut rest[n - whole..]).with_context(ctx)?;
            out.push(f32::from_le_bytes(rest));
        }
    }
    Ok(out)
}

/// Whether a file name asks for zstd (`.zst`, `.zstd`) or gzip (`.gz`) compression.
pub fn compression_of(path: &Path) -> Option<&'static str> {
    let name = path.to_string_lossy();
    if name.ends_with(".zst") || name.ends_with(".zstd") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    }
}

/// The embeddings of `texts` as one row-major vector: read from `cache` when it is there, else
/// embedded in chunks straight into it first (memory: one chunk beside the result).
pub fn cached(
    model: &SentenceModel,
    texts: &[String],
    cache: &Path,
    batch_size: usize,
    what: &str,
    quiet: bool,
) -> Result<Vec<f32>> {
    let dim = model.dim();
    if !cache.is_file() {
        if let Some(dir) = cache.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
        }
        let bar = crate::progress::bar(
            texts.len() as u64,
            &format!("embedding {what}"),
            "texts",
            quiet,
        );
        let mut w = crate::texts::EmbeddingWriter::create(cache, dim)?;
        for chunk in texts.chunks(CHUNK) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let e = embed(model, &refs, batch_size, |n| bar.inc(n as u64))?;
            for row in e.to_dtype(DType::F32)?.to_vec2::<f32>()? {
                w.write(&row)?;
            }
        }
        w.finish()?;
        bar.finish_and_clear();
    }
    let v = read_npy(cache, dim)?;
    if v.len() != texts.len() * dim {
        bail!(
            "{}: holds {} embeddings where {} are expected; delete it",
            cache.display(),
            v.len() / dim,
            texts.len()
        );
    }
    Ok(v)
}
