//! `pairtrain bench …`: throughput measurements on built-in, deterministic inputs.

use anyhow::Result;
use clap::{Args, Subcommand};
use model::rng::Rng;
use model::LoadOptions;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Sentences per second of `encode` on N built-in texts of mixed lengths.
    Encode(BenchEncodeArgs),
    /// Seconds per training step (MNRL + AdamW) of a randomly initialised BERT of a given shape.
    Train(BenchTrainArgs),
    /// Every fused op against its composed reference on one device (forward and gradients, f32
    /// and bf16), and AdamW there against the CPU's: on a GPU, the check of the CUDA kernels.
    Kernels(crate::bench_kernels::BenchKernelsArgs),
}

#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    /// bert, or modernbert (pre-LN, rotary, GeGLU; a local window of 128 tokens in two layers
    /// of three; ModernBERT-base is --hidden 768 --layers 22 --heads 12 --intermediate 1152).
    #[arg(long, default_value = "bert")]
    pub arch: String,
    #[arg(long, default_value_t = 6)]
    pub layers: usize,
    #[arg(long, default_value_t = 384)]
    pub hidden: usize,
    #[arg(long, default_value_t = 12)]
    pub heads: usize,
    #[arg(long, default_value_t = 1536)]
    pub intermediate: usize,
    /// Pairs per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Tokens per text (every text is this long, no padding, unless --min-seq is given).
    #[arg(long, default_value_t = 64)]
    pub seq: usize,
    /// Mixed lengths: text i of column c has min_seq + (i·7919 + c·13) mod (seq − min_seq + 1)
    /// real tokens, the rest padding (scripts/bench/torch_train_step.py draws the same). Packed
    /// batches (the default on a CPU) skip the padding; --padded runs it.
    #[arg(long)]
    pub min_seq: Option<usize>,
    /// Timed steps (after the warm-up steps); the median is reported.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed steps first: the allocator reaches its steady state (no more memory taken from the
    /// system) after two.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Dropout probability (hidden and attention), as BERT's config sets it.
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f64,
    /// Use CachedMultipleNegativesRankingLoss (GradCache) with this mini-batch size.
    #[arg(long)]
    pub mini_batch: Option<usize>,
    /// Print a JSON object as the last line.
    #[arg(long)]
    pub json: bool,
    /// `--dtype bf16` here is mixed precision: f32 master weights and AdamW, bf16 compute.
    #[command(flatten)]
    pub run_on: crate::device_args::DeviceArgs,
}

#[derive(Args, Debug)]
pub struct BenchEncodeArgs {
    /// Model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// How many texts.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Embed these texts instead of the built-in ones: `.txt` (one per line) or `.jsonl` (see
    /// --field), so that every tool is measured on the same file.
    #[arg(long)]
    pub texts: Option<PathBuf>,
    /// The `.jsonl` field that holds the text.
    #[arg(long, default_value = "text")]
    pub field: String,
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
    #[command(flatten)]
    pub run_on: crate::device_args::DeviceArgs,
}

pub fn run(cmd: &BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Encode(a) => encode(a),
        BenchCmd::Train(a) => train_step(a),
        BenchCmd::Kernels(a) => crate::bench_kernels::run(a),
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
    let texts = match &a.texts {
        Some(p) => crate::texts::read_texts(p, &a.field)?,
        None => bench_texts(a.n),
    };
    if let Some(p) = &a.dump_texts {
        std::fs::write(p, texts.join("\n") + "\n")?;
        eprintln!("wrote {} texts to {}", texts.len(), p.display());
        return Ok(());
    }
    let model = a.run_on.load(&a.model, LoadOptions::default())?;
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    // Warm-up: first-touch page faults and thread-pool start-up are not throughput.
    model.encode(&refs[..refs.len().min(a.batch_size)], a.batch_size, |_| {})?;
    let mut best = f64::INFINITY;
    let cpu = CpuTime::start();
    for _ in 0..a.repeat.max(1) {
        let t = Instant::now();
        model.encode(&refs, a.batch_size, |_| {})?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    let cpu = cpu.stop();
    let sps = texts.len() as f64 / best;
    // Which multiply the linear layers ran: bf16 on a CPU is only fast with bf16 dot products.
    let linear = if model.encoder.params().has_packed_bf16() {
        model::ops::bf16_kernel()
    } else {
        "f32"
    };
    let machine = Machine::here(&a.run_on);
    let batches = if model.encoder.config().padded || !model.device.is_cpu() {
        "padded"
    } else {
        "packed"
    };
    println!("{}", machine.line());
    println!(
        "encode: {} texts, batch {} ({batches}), {} threads, {} {} (linear layers: {linear}): \
         {:.3} s, {:.1} sentences/s; {}",
        texts.len(),
        a.batch_size,
        model::ops::pool::threads(),
        a.run_on.device,
        a.run_on.dtype,
        best,
        sps,
        cpu.line()
    );
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "sentences_per_s": sps,
                "device": a.run_on.device,
                "dtype": a.run_on.dtype,
                "linear_kernel": linear,
                "batches": batches,
                "amx": linear == "amx",
                "machine": machine.json(),
                "cpu_time": cpu.json(),
            })
        );
    }
    Ok(())
}

/// Where a benchmark ran: the CPU, the kernels pairtrain chose on it (and what `PAIRTRAIN_ISA`
/// allowed), the thread count.
struct Machine {
    cpu: String,
    isa: &'static str,
    detected: &'static str,
    f32_gemm: &'static str,
    bf16_linear: &'static str,
    threads: usize,
    device: String,
}

impl Machine {
    fn here(run_on: &crate::device_args::DeviceArgs) -> Self {
        use model::ops::isa;
        Self {
            cpu: isa::cpu_model(),
            isa: isa::active().name(),
            detected: isa::detected().name(),
            f32_gemm: model::ops::f32_gemm_kernels(),
            bf16_linear: model::ops::bf16_kernel(),
            threads: model::ops::pool::threads(),
            device: run_on.device.clone(),
        }
    }

    fn line(&self) -> String {
        let cap = if self.isa == self.detected {
            "the best this CPU has".to_string()
        } else {
            format!("PAIRTRAIN_ISA; the CPU has {}", self.detected)
        };
        format!(
            "machine: {} ({} threads); kernels: {} ({cap}); f32 multiply: gemm crate {}; bf16 \
             linear layers: {}; device {}",
            self.cpu, self.threads, self.isa, self.f32_gemm, self.bf16_linear, self.device
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "cpu": self.cpu,
            "isa": self.isa,
            "isa_detected": self.detected,
            "f32_gemm": self.f32_gemm,
            "bf16_linear": self.bf16_linear,
            "threads": self.threads,
            "device": self.device,
        })
    }
}

/// The CPU time (user and system) this process spent over a wall-clock interval: system time is
/// where page faults and thread wake-ups show.
struct CpuTime {
    wall: Instant,
    user: f64,
    sys: f64,
}

struct CpuSpent {
    wall: f64,
    user: f64,
    sys: f64,
}

impl CpuTime {
    fn start() -> Self {
        let (user, sys) = rusage();
        Self {
            wall: Instant::now(),
            user,
            sys,
        }
    }

    fn stop(self) -> CpuSpent {
        let (user, sys) = rusage();
        CpuSpent {
            wall: self.wall.elapsed().as_secs_f64(),
            user: user - self.user,
            sys: sys - self.sys,
        }
    }
}

impl CpuSpent {
    fn line(&self) -> String {
        format!(
            "timed part {:.2} s wall: CPU user {:.2} s, system {:.2} s ({:.1}% of wall)",
            self.wall,
            self.user,
            self.sys,
            100.0 * self.sys / self.wall
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "wall_s": self.wall, "user_s": self.user, "sys_s": self.sys })
    }
}

/// (user, system) CPU seconds of this process so far.
fn rusage() -> (f64, f64) {
    // SAFETY: getrusage writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return (f64::NAN, f64::NAN);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (secs(u.ru_utime), secs(u.ru_stime))
}

/// Peak resident set size of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn train_step(a: &BenchTrainArgs) -> Result<()> {
    use candle_core::{DType, Tensor};
    use model::{build_encoder, ModelConfig, ParamSource, Pooling};
    use train::losses::{MultipleNegativesRankingLoss, Similarity};
    use train::optim::{AdamW, AdamWConfig};
    use train::process_group::SingleProcess;
    use train::step::{Column, Embedding, TrainBatch};

    let mut cfg = ModelConfig::bert(a.hidden, a.layers, a.heads, a.intermediate);
    cfg.max_position_embeddings = cfg.max_position_embeddings.max(a.seq);
    cfg.hidden_dropout_prob = a.dropout;
    cfg.attention_probs_dropout_prob = a.dropout;
    match a.arch.as_str() {
        "bert" => {}
        "modernbert" => {
            // ModernBERT-base's config.json beside the shape given.
            cfg.model_type = "modernbert".into();
            cfg.vocab_size = 50368;
            cfg.max_position_embeddings = a.seq.max(8192);
            let extra = serde_json::json!({
                "global_attn_every_n_layers": 3, "local_attention": 128,
                "global_rope_theta": 160000.0, "local_rope_theta": 10000.0,
                "attention_dropout": a.dropout, "mlp_dropout": a.dropout,
                "embedding_dropout": a.dropout, "norm_eps": 1e-5,
            });
            if let serde_json::Value::Object(m) = extra {
                cfg.extra = m;
            }
        }
        other => anyhow::bail!("--arch {other}: bert or modernbert"),
    }
    cfg.validate().map_err(anyhow::Error::msg)?;
    let device = a.run_on.device()?;
    let compute = a.run_on.dtype()?;
    cfg.compute_dtype = (compute != DType::F32).then_some(compute);
    cfg.padded = a.run_on.padded;
    let encoder = build_encoder(&cfg, ParamSource::random(1, 0.02, DType::F32, &device))?;
    let mut m = model::SentenceModel {
        encoder,
        tokenizer: model::tokenize::TextTokenizer::placeholder(a.seq),
        pooling: Pooling::Mean,
        normalize: true,
        max_seq_length: a.seq,
        dense: None,
        prompt: None,
        prompts: Default::default(),
        default_prompt_name: None,
        include_prompt: true,
        truncate_dim: None,
        similarity_fn_name: "cosine".into(),
        dir: PathBuf::from("<random>"),
        transformer_dir: PathBuf::from("<random>"),
        device: device.clone(),
    };
    let vars = m.encoder.params_mut().make_trainable()?;
    let mut opt = AdamW::new(vars, AdamWConfig::default())?;
    let loss = MultipleNegativesRankingLoss {
        scale: 20.0,
        similarity: Similarity::Cos,
    };
    let embedding = match a.mini_batch {
        Some(mb) => Embedding::GradCache {
            mini_batch_size: mb,
        },
        None => Embedding::Direct,
    };
    let mut rng = Rng::new(7);
    let min_seq = a.min_seq.unwrap_or(a.seq).clamp(1, a.seq);
    let mut column = |c: usize| -> Result<Column> {
        let mut ids: Vec<u32> = (0..a.batch * a.seq)
            .map(|_| 1000 + rng.below(29_000) as u32)
            .collect();
        let mut mask = vec![1f32; a.batch * a.seq];
        for i in 0..a.batch {
            let len = min_seq + (i * 7919 + c * 13) % (a.seq - min_seq + 1);
            for j in len..a.seq {
                (ids[i * a.seq + j], mask[i * a.seq + j]) = (0, 0.0);
            }
        }
        Ok(Column {
            ids: Tensor::from_vec(ids, (a.batch, a.seq), &device)?,
            mask: Tensor::from_vec(mask, (a.batch, a.seq), &device)?,
            prompt_lengths: None,
        })
    };
    let texts = |tag: &str| (0..a.batch).map(|i| format!("{tag}{i}")).collect();
    let batch = TrainBatch {
        columns: vec![column(0)?, column(1)?],
        texts: vec![texts("a"), texts("p")],
        offset: 0,
        targets: None,
        guide: None,
        scores: None,
    };
    let mut dropout = model::Dropout::new(3);
    let mut times = Vec::new();
    let mut cpu = None;
    let mut copies = 0;
    let warmup = a.warmup.max(1);
    for i in 0..warmup + a.steps.max(1) {
        device.synchronize()?;
        if i == warmup {
            cpu = Some(CpuTime::start());
            copies = model::device::dtoh_copies();
        }
        let t = Instant::now();
        train::step::step(
            &m,
            &mut opt,
            &batch,
            &loss,
            embedding,
            &mut dropout,
            &SingleProcess,
            2e-5,
            1.0,
        )?;
        // The device's queued work, so the timer measures it (a no-op on the CPU).
        device.synchronize()?;
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let cpu = cpu.map(CpuTime::stop);
    // Reads of the GPU by the host per step (its loss and norm: one when nothing else waits).
    let dtoh_per_step = (model::device::dtoh_copies() - copies) as f64 / times.len() as f64;
    times.sort_by(|x, y| x.total_cmp(y));
    let median = times[times.len() / 2];
    let rss = peak_rss_mib();
    let machine = Machine::here(&a.run_on);
    println!(
        "train step: {} {} layers × {} hidden, batch {}{}, seq {} ({}), {} on {} ({} threads): \
         median {:.4} s/step, peak RSS {:.0} MiB",
        a.arch,
        a.layers,
        a.hidden,
        a.batch,
        a.mini_batch
            .map_or(String::new(), |mb| format!(" (GradCache mini-batch {mb})")),
        match a.min_seq {
            Some(m) => format!("{}-{}", m.clamp(1, a.seq), a.seq),
            None => a.seq.to_string(),
        },
        if a.run_on.padded || !device.is_cpu() {
            "padded"
        } else {
            "packed"
        },
        a.run_on.dtype,
        a.run_on.device,
        model::ops::pool::threads(),
        median,
        rss
    );
    println!("{}", machine.line());
    if let Some(cpu) = &cpu {
        println!("timed steps: {}", cpu.line());
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "s_per_step": median,
                "peak_rss_mib": rss,
                "dtoh_copies_per_step": dtoh_per_step,
                "machine": machine.json(),
                "cpu_time": cpu.as_ref().map(CpuSpent::json),
            })
        );
    }
    Ok(())
}
