//! A run's model and checkpoints published to the hub as it trains (`[train] push_to`), through
//! the same upload as `pairtrain push` (hub::upload).

use anyhow::{bail, Result};
use hub::{Hub, LocalFile, PushOptions, RepoKind};
use std::path::Path;

/// Fails before training when `push_to` is set and no token is there to push with: a run of
/// hours should not find out at its end.
pub fn check_token(repo: &str) -> Result<()> {
    if Hub::from_env().cfg.token.is_none() {
        bail!(
            "[train] push_to = {repo:?} needs a token with write access: set HF_TOKEN (or log in \
             with `hf auth login`), or leave push_to out"
        );
    }
    Ok(())
}

/// Publishes the folder `dir` to `repo`, under `prefix/` when given, in one commit.
pub fn push_folder(
    dir: &Path,
    repo: &str,
    private: bool,
    prefix: Option<&str>,
    message: &str,
) -> Result<hub::PushReport> {
    let hub = Hub::from_env();
    let mut files = LocalFile::folder(dir)?;
    if let Some(p) = prefix {
        for f in &mut files {
            f.path_in_repo = format!("{p}/{}", f.path_in_repo);
        }
    }
    let opts = PushOptions {
        kind: RepoKind::Model,
        id: repo.to_string(),
        revision: "main".into(),
        private,
        message: message.to_string(),
        description: String::new(),
    };
    Ok(hub.push(&opts, &files, &mut ())?)
}
