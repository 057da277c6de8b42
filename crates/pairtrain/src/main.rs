//! `pairtrain`: the command line over the pairtrain crates. It parses arguments, shows progress
//! and turns recipes into calls; the work itself lives in the library crates.

mod bench;
mod bench_kernels;
mod consistency_filter;
mod corpus_embeddings;
mod data_cmd;
mod dataset_card;
mod device_args;
mod encode;
mod eval_cmd;
mod fetch_cmd;
mod hard_negatives;
mod mine_cmd;
mod progress;
mod prompt_args;
mod push_cmd;
mod texts;
mod train_cmd;

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
    /// Train (fine-tune) a model as a recipe says.
    Train(train_cmd::TrainArgs),
    /// Evaluate a model as sentence-transformers' evaluators do (STS, retrieval, translation,
    /// MSE), and conversational response retrieval.
    Eval(eval_cmd::EvalArgs),
    /// Show the documents of a corpus closest to a query.
    Search(eval_cmd::SearchArgs),
    /// Mine training pairs from raw dumps (StackExchange, Reddit, Wikipedia).
    #[command(subcommand)]
    Mine(mine_cmd::MineCmd),
    /// Inspect pair files and measure the data pipeline.
    #[command(subcommand)]
    Data(data_cmd::DataCmd),
    /// Measure throughput on built-in inputs.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Publish a model folder, or a folder of pair files (--dataset), to the Hugging Face hub.
    Push(push_cmd::PushArgs),
}

/// Keeps freed memory mapped instead of returning it to the OS after 10 ms (mimalloc's default).
/// A forward pass frees and reallocates the same large activations batch after batch; returning
/// them costs a page fault per 4 KiB on every reuse (measured: 25k faults → 540, ~10% of encode
/// time). The peak footprint is unchanged.
#[cfg(feature = "mimalloc")]
fn tune_allocator() {
    // `mi_option_purge_delay` in mimalloc's option enum (not exported by libmimalloc-sys).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option is allowed at any time; -1 means "never purge".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

#[cfg(not(feature = "mimalloc"))]
fn tune_allocator() {}

fn main() {
    tune_allocator();
    // A file-size limit (`ulimit -f`) then makes writes fail with an error naming the file
    // instead of killing the process without a word.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    if let Err(e) = model::ops::isa::check_env() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    if let Some(n) = cli.threads {
        // candle's matmul reads the same variable to size its thread pool.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    let res = match &cli.cmd {
        Cmd::Encode(a) => encode::run(a),
        Cmd::Train(a) => train_cmd::run(a),
        Cmd::Eval(a) => eval_cmd::run_eval(a),
        Cmd::Search(a) => eval_cmd::run_search(a),
        Cmd::Bench(b) => bench::run(b),
        Cmd::Data(d) => data_cmd::run(d),
        Cmd::Mine(m) => mine_cmd::run(m),
        Cmd::Push(p) => push_cmd::run(p),
    };
    if let Err(e) = res {
        // One write: the ranks of a job print their errors to one stream.
        train::process_group::say(&format!("error: {e:#}"));
        std::process::exit(1);
    }
}
