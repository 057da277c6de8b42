//! `pairtrain push`: a model folder or a folder of pair files published to the Hugging Face hub
//! in one commit (hub::upload), as `model.push_to_hub` and `huggingface-cli upload` publish them.
//! Everything is checked before anything is sent: the token, the repository id, that a model
//! folder loads as a model; a dataset gets its card (dataset_card.rs).

use crate::dataset_card;
use crate::progress;
use anyhow::{bail, Context, Result};
use clap::Args;
use hub::{Hub, LocalFile, PushOptions, PushProgress, RepoKind};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(
    after_help = "The token is huggingface_hub's: HF_TOKEN, else the file HF_TOKEN_PATH \
names, else $HF_HOME/token (what `hf auth login` writes); it is never printed. HF_ENDPOINT \
names another hub. Run the same push again after an interrupt: large files already on the hub \
are not sent again, and files equal to the repository's are left out of the commit.

Examples:
  pairtrain push runs/minilm/model my-org/minilm-qa
  pairtrain push --dataset pairs/se my-org/stackexchange-pairs --private"
)]
pub struct PushArgs {
    /// The folder to publish: a model folder (as `pairtrain train` writes it), or with
    /// --dataset a folder of pair files (as `pairtrain mine` or `data filter` write them).
    pub dir: PathBuf,
    /// The repository: `org/name` (or `name`).
    pub repo: String,
    /// Publish a dataset: its shards as they are (JSON-list rows rewritten as objects, which
    /// `datasets` needs), with a dataset card that declares its configurations and splits.
    #[arg(long)]
    pub dataset: bool,
    /// Create the repository private (an existing repository keeps its visibility).
    #[arg(long)]
    pub private: bool,
    /// The branch to commit to.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// The commit message.
    #[arg(long, short = 'm')]
    pub message: Option<String>,
    /// The licence named in a dataset card (default: the source's, from its stats.json).
    #[arg(long)]
    pub license: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

struct Bar(indicatif::ProgressBar);

impl PushProgress for Bar {
    fn sent(&mut self, bytes: u64) {
        self.0.inc(bytes);
    }
}

pub fn run(args: &PushArgs) -> Result<()> {
    let kind = if args.dataset {
        RepoKind::Dataset
    } else {
        RepoKind::Model
    };
    if let Some(why) = hub::names::bad_repo_id(&args.repo) {
        bail!(
            "{:?} is not a repository id: {why}; nothing was sent",
            args.repo
        );
    }
    if let Some(why) = hub::names::unsafe_path_reason(&args.revision) {
        bail!("--revision {:?}: {why}; nothing was sent", args.revision);
    }
    let hub = Hub::from_env();
    if hub.cfg.token.is_none() {
        bail!(
            "no token: set HF_TOKEN to a token with write access, or log in with `hf auth login` \
             (it writes $HF_HOME/token); nothing was sent"
        );
    }
    if !args.dir.is_dir() {
        bail!("{}: not a folder", args.dir.display());
    }
    // A dataset's rows may need rewriting, into a scratch folder removed however this ends.
    let mut _scratch = None;
    let files = if args.dataset {
        let scratch = tempfile::Builder::new()
            .prefix(".pairtrain-push-")
            .tempdir()
            .context("cannot create a scratch folder")?;
        let files = dataset_card::prepare(
            &args.dir,
            &args.repo,
            args.license.as_deref(),
            scratch.path(),
        )?;
        _scratch = Some(scratch);
        files
    } else {
        check_model(&args.dir)?;
        LocalFile::folder(&args.dir)?
    };
    let large: u64 = files.iter().map(|f| f.size).sum();
    let opts = PushOptions {
        kind,
        id: args.repo.clone(),
        revision: args.revision.clone(),
        private: args.private,
        message: args.message.clone().unwrap_or_else(|| {
            format!(
                "Upload {} with pairtrain {}",
                if args.dataset { "dataset" } else { "model" },
                env!("CARGO_PKG_VERSION")
            )
        }),
        description: String::new(),
    };
    let bar = progress::bytes_bar(large, "push", args.quiet);
    let mut p = Bar(bar.clone());
    let report = hub.push(&opts, &files, &mut p)?;
    bar.finish_and_clear();
    let what = match report.commit {
        Some(c) => format!("commit {c}"),
        None => "nothing had changed, no commit".into(),
    };
    eprintln!(
        "{}: {} ({} file(s) committed, {} unchanged; large files: {} sent ({}), {} already on the hub)",
        report.url,
        what,
        report.committed,
        report.unchanged,
        report.lfs_sent,
        human(report.bytes_sent),
        report.lfs_present
    );
    Ok(())
}

fn human(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

/// A model folder is one that loads as pairtrain (and sentence-transformers) load it.
pub fn check_model(dir: &Path) -> Result<()> {
    let has = |f: &str| dir.join(f).is_file();
    if !has("config.json") || !(has("model.safetensors") || has("pytorch_model.bin")) {
        bail!(
            "{}: not a model folder (it needs config.json and model.safetensors, as `pairtrain \
             train` writes them); to publish pair files, add --dataset; nothing was sent",
            dir.display()
        );
    }
    model::SentenceModel::load(dir, &model::LoadOptions::default()).with_context(|| {
        format!(
            "{}: does not load as a model; nothing was sent",
            dir.display()
        )
    })?;
    if !has("README.md") {
        eprintln!(
            "warning: {} has no README.md: the repository will have no model card",
            dir.display()
        );
    }
    Ok(())
}
