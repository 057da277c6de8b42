//! `pairtrain train`: run a recipe.

use crate::progress;
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use train::{Recipe, Trainer};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The recipe (TOML): [model], [loss], [train] and [[data]] sections; see README.md.
    /// Relative paths in it are taken from the working directory.
    #[arg(long)]
    pub config: PathBuf,
    /// Also write one JSON line per step here: {"step", "loss", "lr", "grad_norm"} (grad_norm
    /// before clipping, lr as used by that step).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Continue from a checkpoint folder, or from the newest checkpoint under an output folder.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Overrides the recipe's `[train] device` (cpu, cuda, cuda:N).
    #[arg(long)]
    pub device: Option<String>,
    /// Overrides the recipe's `[train] dtype` (f32, or bf16 for mixed precision).
    #[arg(long)]
    pub dtype: Option<String>,
}

pub fn run(args: &TrainArgs) -> Result<()> {
    // Checked once the command line has had its say: `--device cpu` runs a GPU recipe on a
    // build without CUDA.
    let mut recipe = Recipe::load_unchecked(&args.config)?;
    if let Some(d) = &args.device {
        recipe.train.device = d.clone();
    }
    if let Some(d) = &args.dtype {
        recipe.train.dtype = d.clone();
    }
    recipe.check().with_context(|| {
        format!(
            "{} with the command line's overrides",
            args.config.display()
        )
    })?;
    let mut tr = Trainer::new(recipe, args.resume.as_deref())?;
    let (rank, world) = tr.rank();
    let line = if world > 1 {
        format!(
            "rank {rank} of {world} on {} (local rank {})",
            train::process_group::host_name(),
            train::process_group::local_rank()
        )
    } else {
        format!("rank {rank} of {world}")
    };
    train::process_group::say(&line);
    // Rank 0 reports; the other ranks train in silence.
    let quiet = args.quiet || rank > 0;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // First Ctrl-C: finish the step, save a checkpoint, exit. Second: exit at once.
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: saving a checkpoint after this step (Ctrl-C again to abort)");
        })
        .context("cannot install the Ctrl-C handler")?;
    }
    let mut trace = match &args.trace {
        Some(p) if rank == 0 => Some(std::io::LineWriter::new(
            std::fs::File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        )),
        _ => None,
    };
    let total = tr.recipe.train.steps as u64;
    let bar = progress::bar(total, "training", "steps", quiet);
    bar.set_position(tr.step as u64);
    let mut trace_err = None;
    let finished = tr.run(&stop, |r| {
        bar.set_position(r.step as u64);
        bar.set_message(format!("loss {:.4}", r.loss));
        if let Some(t) = trace.as_mut() {
            let line = serde_json::json!({
                "step": r.step, "loss": r.loss, "lr": r.lr, "grad_norm": r.grad_norm
            });
            if let Err(e) = writeln!(t, "{line}") {
                trace_err.get_or_insert(e);
            }
        }
    })?;
    bar.finish_and_clear();
    if let Some(e) = trace_err {
        return Err(e).context("writing the trace");
    }
    if !finished {
        if rank > 0 {
            std::process::exit(130);
        }
        eprintln!(
            "stopped after step {}; checkpoint saved under {}; continue with --resume {}",
            tr.step,
            tr.output_dir().join("checkpoints").display(),
            tr.output_dir().display()
        );
        std::process::exit(130);
    }
    if rank > 0 {
        return Ok(());
    }
    let traffic = tr.traffic();
    if world > 1 && !tr.history.is_empty() {
        let steps = tr.history.len() as f64;
        let busy: f64 = tr
            .history
            .iter()
            .map(|r| tr.recipe.train.batch_size as f64 / r.pairs_per_s)
            .sum();
        eprintln!(
            "communication on rank 0: {:.2} MB per step through the collectives, {:.1}% of the \
             step time",
            traffic.bytes as f64 / steps / 1e6,
            100.0 * traffic.seconds / busy.max(1e-9)
        );
    }
    if let Some(e) = tr.evals.last() {
        for (task, metrics) in &e.eval {
            let main = [
                "spearman_cosine",
                "cosine_ndcg@10",
                "mean_accuracy",
                "negative_mse",
            ]
            .iter()
            .find_map(|k| metrics.get(*k).map(|v| format!("{k} {v:.5}")))
            .unwrap_or_default();
            eprintln!("eval {task} after step {}: {main}", e.step);
        }
    }
    let skipped = tr.skipped_rows();
    if skipped.total() > 0 {
        eprintln!(
            "data: {} (first at {})",
            skipped.summary(),
            skipped.examples.join(", ")
        );
    }
    let dir = tr.save_final()?;
    if let (Some(repo), 0) = (&tr.recipe.train.push_to, rank) {
        let report = train::push::push_folder(
            &dir,
            repo,
            tr.recipe.train.push_private,
            None,
            &format!("Training finished after {} steps", tr.step),
        )
        .with_context(|| {
            format!(
                "the model is saved in {}; publish it with `pairtrain push {} {repo}`",
                dir.display(),
                dir.display()
            )
        })?;
        eprintln!(
            "pushed to {}: {}",
            report.url,
            report.commit.as_deref().unwrap_or("nothing had changed")
        );
    }
    if let Some(last) = tr.history.last() {
        eprintln!(
            "trained {} steps, final loss {:.4}; model in {}, log and plot in {}",
            tr.step,
            last.loss,
            dir.display(),
            tr.output_dir().display()
        );
    }
    Ok(())
}
