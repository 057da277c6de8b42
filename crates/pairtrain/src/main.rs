//! `pairtrain`: the command line over the pairtrain crates. It parses arguments, shows progress
//! and turns recipes into calls; the work itself lives in the library crates.

mod bench;
mod encode;
mod progress;
mod texts;

use clap::{Parser, Subcommand};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "pairtrain",
    version,
    about = "Train, evaluate and run sentence-embedding models on text pairs",
    long_about = "Train, evaluate and run sentence-embedding models on text pairs.\n\n\
        Models are read from and written to sentence-transformers folders, so they load unchanged \
        in sentence-transformers.\n\nExample:\n  pairtrain encode --model all-MiniLM-L6-v2/ \
        --input texts.txt --output emb.npy"
)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Embed texts with a model.
    Encode(encode::EncodeArgs),
    /// Measure throughput on built-in inputs.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

fn main() {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        // candle's matmul reads the same variable to size its thread pool.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    let res = match &cli.cmd {
        Cmd::Encode(a) => encode::run(a),
        Cmd::Bench(b) => bench::run(b),
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
