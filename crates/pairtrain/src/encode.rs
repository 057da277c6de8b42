//! `pairtrain encode`: texts in, embeddings out, in input order.

use crate::progress;
use crate::texts::{read_texts, EmbeddingWriter};
use anyhow::Result;
use clap::Args;
use model::LoadOptions;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// Model folder: sentence-transformers layout (modules.json, …) or a plain Hugging Face folder
    /// (config.json, model.safetensors, tokenizer.json; mean pooling, no normalisation).
    #[arg(long)]
    pub model: PathBuf,
    /// Texts to embed: `.txt` (one text per line) or `.jsonl` (one object per line, see --field).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the embeddings: `.jsonl` (one {"embedding": [...]} per line) or `.npy`
    /// (float32, N×D). Written under a temporary name and renamed when complete.
    #[arg(long)]
    pub output: PathBuf,
    /// The `.jsonl` field that holds the text.
    #[arg(long, default_value = "text")]
    pub field: String,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Truncate texts to this many tokens (default: the model's max_seq_length).
    #[arg(long)]
    pub max_seq_length: Option<usize>,
    /// Do not L2-normalise embeddings, even if the model's modules.json has a Normalize step.
    #[arg(long)]
    pub no_normalize: bool,
    /// Keep only the first N dimensions of each embedding (a Matryoshka-trained model's
    /// shorter embeddings; sentence-transformers' `truncate_dim`). Cut after normalisation, as
    /// sentence-transformers does: cosine similarity is unaffected, dot products are not
    /// renormalised. Default: the model folder's `truncate_dim`, else all.
    #[arg(long, value_name = "N")]
    pub truncate_dim: Option<usize>,
    #[command(flatten)]
    pub prompt: crate::prompt_args::PromptArgs,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub run_on: crate::device_args::DeviceArgs,
}

/// Texts are embedded this many at a time (sorted by length within the chunk), so the output
/// streams to disk and memory does not grow with the embeddings.
const CHUNK: usize = 16_384;

pub fn run(args: &EncodeArgs) -> Result<()> {
    let opts = LoadOptions {
        max_seq_length: args.max_seq_length,
        normalize: args.no_normalize.then_some(false),
        ..Default::default()
    };
    let mut model = args.run_on.load(&args.model, opts)?;
    args.prompt.apply(&mut model)?;
    if args.truncate_dim.is_some() {
        model.set_truncate_dim(args.truncate_dim, "--truncate-dim")?;
    }
    let texts = read_texts(&args.input, &args.field)?;
    let mut out = EmbeddingWriter::create(&args.output, model.dim())?;
    let bar = progress::bar(texts.len() as u64, "encoding", "texts", args.quiet);
    for chunk in texts.chunks(CHUNK) {
        let refs: Vec<&str> = chunk.iter().map(|s| s.as_str()).collect();
        let emb = model.encode(&refs, args.batch_size, |n| bar.inc(n as u64))?;
        for e in &emb {
            out.write(e)?;
        }
    }
    bar.finish_and_clear();
    let n = out.finish()?;
    if !args.quiet {
        eprintln!(
            "wrote {n} embeddings of dimension {} to {}",
            model.dim(),
            args.output.display()
        );
    }
    Ok(())
}
