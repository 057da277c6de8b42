//! `pairtrain bench …`: throughput measurements on built-in, deterministic inputs.

use anyhow::Result;
use clap::{Args, Subcommand};
use model::rng::Rng;
use model::{LoadOptions, SentenceModel};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Sentences per second of `encode` on N built-in texts of mixed lengths.
    Encode(BenchEncodeArgs),
}

#[derive(Args, Debug)]
pub struct BenchEncodeArgs {
    /// Model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// How many texts.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Timed repetitions; the best is reported (the least disturbed by other work).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Write the built-in texts to this file (one per line) and exit, so another tool can be
    /// measured on exactly the same input.
    #[arg(long)]
    pub dump_texts: Option<PathBuf>,
    /// Print a JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: &BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Encode(a) => encode(a),
    }
}

const WORDS: &[&str] = &[
    "the",
    "model",
    "learns",
    "embeddings",
    "from",
    "pairs",
    "of",
    "questions",
    "and",
    "answers",
    "coffee",
    "beans",
    "roast",
    "grind",
    "water",
    "temperature",
    "brewing",
    "espresso",
    "milk",
    "how",
    "do",
    "I",
    "make",
    "a",
    "better",
    "cup",
    "with",
    "less",
    "bitterness",
    "?",
    "it",
    "depends",
    "on",
    "freshness",
    "storage",
    "airtight",
    "container",
    "light",
    "heat",
    "moisture",
    "Rust",
    "compiles",
    "quickly",
    "when",
    "dependencies",
    "are",
    "few",
    "tokenizer",
    "sentence",
    "retrieval",
    "semantic",
    "search",
    "transformer",
    "attention",
    "layer",
    "norm",
    "gradient",
    "München",
    "café",
    "naïve",
    "日本語",
    "données",
    "2021",
    "3.14",
    "e-mail",
    "state-of-the-art",
];

/// `n` texts of mixed lengths: mostly short (like titles and queries), some paragraphs, a few
/// long enough to be truncated. The same `n` always gives the same texts.
pub fn bench_texts(n: usize) -> Vec<String> {
    let mut rng = Rng::new(2021);
    (0..n)
        .map(|_| {
            let words = match rng.below(10) {
                0..=5 => 4 + rng.below(16),
                6..=8 => 20 + rng.below(80),
                _ => 100 + rng.below(300),
            };
            let mut s = String::new();
            for i in 0..words {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
            }
            s
        })
        .collect()
}

fn encode(a: &BenchEncodeArgs) -> Result<()> {
    let texts = bench_texts(a.n);
    if let Some(p) = &a.dump_texts {
        std::fs::write(p, texts.join("\n") + "\n")?;
        eprintln!("wrote {} texts to {}", texts.len(), p.display());
        return Ok(());
    }
    let model = SentenceModel::load(&a.model, &LoadOptions::default())?;
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    // Warm-up: first-touch page faults and thread-pool start-up are not throughput.
    model.encode(&refs[..refs.len().min(a.batch_size)], a.batch_size, |_| {})?;
    let mut best = f64::INFINITY;
    for _ in 0..a.repeat.max(1) {
        let t = Instant::now();
        model.encode(&refs, a.batch_size, |_| {})?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    let sps = texts.len() as f64 / best;
    println!(
        "encode: {} texts, batch {}, {} threads: {:.3} s, {:.1} sentences/s",
        texts.len(),
        a.batch_size,
        rayon::current_num_threads(),
        best,
        sps
    );
    if a.json {
        println!("{}", serde_json::json!({ "sentences_per_s": sps }));
    }
    Ok(())
}
