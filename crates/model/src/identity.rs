//! What a model's embeddings and a data file's contents depend on, as hashes for cache keys
//! (embedding caches of the data tools, the distillation teacher's cache).

use std::path::Path;

/// What embeddings depend on, for cache keys: the weights, tokenizer and module files (names,
/// sizes, times), the precision and device, the length limit, pooling, normalisation, prompt and truncation.
pub fn model_identity(model: &crate::SentenceModel) -> Vec<u64> {
    let mut parts = portable_identity(model);
    parts.push(pairs::dedup::hash_bytes(
        format!("{:?}", model.device.location()).as_bytes(),
    ));
    parts
}

/// `model_identity` without the device: for caches that every rank of a multi-GPU run shares.
pub fn portable_identity(model: &crate::SentenceModel) -> Vec<u64> {
    let t = &model.transformer_dir;
    let files = [
        t.join("model.safetensors"),
        t.join("pytorch_model.bin"),
        t.join("tokenizer.json"),
        t.join("config.json"),
        model.dir.join("modules.json"),
    ];
    let mut parts: Vec<u64> = files.iter().flat_map(|p| file_identity(p)).collect();
    let setup = format!(
        "{:?} {} {:?} {} {:?} {:?}",
        model.encoder.config().compute_dtype,
        model.tokenizer.max_len(),
        model.pooling,
        model.normalize,
        model.prompt,
        model.truncate_dim,
    );
    parts.push(pairs::dedup::hash_bytes(setup.as_bytes()));
    parts
}

/// A file's identity for cache keys: its canonical name, size and modification time.
pub fn file_identity(p: &Path) -> [u64; 3] {
    let m = std::fs::metadata(p).ok();
    let t = m
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    let name = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    [
        pairs::dedup::hash_bytes(name.to_string_lossy().as_bytes()),
        m.map_or(0, |m| m.len()),
        t,
    ]
}
