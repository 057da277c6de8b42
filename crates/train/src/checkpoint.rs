//! Checkpoints: everything needed to continue a run exactly — weights, AdamW moments and step
//! count, the training step, the data position and the dropout generator.
//!
//! Layout: `<output>/checkpoints/step-NNNNNNNN/{model.safetensors, optimizer.safetensors,
//! trainer_state.json, manifest.json}` (plus `dense.safetensors` for a student's Dense
//! projection), written under `.partial`, flushed to disk and renamed when complete. The
//! manifest holds every file's size and SHA-256; resuming verifies them, so a checkpoint damaged
//! after it was written (a disk error, a copy cut short) is reported and the one before it used.

use crate::trainer::Trainer;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct TrainerState {
    step: usize,
    adam_t: u64,
    dropout_rng: u64,
    data: serde_json::Value,
    history: Vec<crate::trainer::StepRecord>,
    #[serde(default)]
    evals: Vec<crate::trainer::EvalRecord>,
    /// Ranks that wrote it (absent before multi-process training: 1).
    #[serde(default)]
    world_size: Option<usize>,
}

/// The student's Dense projection (distillation), beside the encoder's model.safetensors.
const DENSE_FILE: &str = "dense.safetensors";

const MANIFEST: &str = "manifest.json";

/// A checkpoint's files: name → (bytes, SHA-256 in hex).
type Manifest = std::collections::BTreeMap<String, (u64, String)>;

fn sha256_of(path: &Path) -> Result<(u64, String)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .with_context(|| format!("{}: read failed", path.display()))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((n, hex))
}

/// Writes the manifest of the files in `dir` and flushes every file and the folder to disk, so
/// that the rename that follows publishes a checkpoint whose bytes are all there.
fn seal(dir: &Path) -> Result<()> {
    let mut manifest = Manifest::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("{}: cannot flush", path.display()))?;
        manifest.insert(name, sha256_of(&path)?);
    }
    let path = dir.join(MANIFEST);
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)?)
        .with_context(|| format!("{}: write failed", path.display()))?;
    for p in [path.as_path(), dir] {
        std::fs::File::open(p)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("{}: cannot flush", p.display()))?;
    }
    Ok(())
}

/// Checks a checkpoint's files against its manifest: `Err` says which file is missing, cut short
/// or changed. A checkpoint from before manifests passes with nothing to check.
pub fn verify(dir: &Path) -> Result<()> {
    let path = dir.join(MANIFEST);
    if !path.is_file() {
        return Ok(());
    }
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(&path)?)
        .with_context(|| format!("{}: invalid", path.display()))?;
    for (name, (size, sha)) in &manifest {
        let f = dir.join(name);
        let got = std::fs::metadata(&f)
            .with_context(|| format!("{}: missing", f.display()))?
            .len();
        if got != *size {
            bail!("{}: {got} bytes, the manifest says {size}", f.display());
        }
        if sha256_of(&f)?.1 != *sha {
            bail!("{}: its SHA-256 differs from the manifest's", f.display());
        }
    }
    Ok(())
}

/// Saves a checkpoint of the current step; returns its folder.
pub fn save(tr: &Trainer) -> Result<PathBuf> {
    let root = tr.output_dir().join("checkpoints");
    let dest = root.join(format!("step-{:08}", tr.step));
    let tmp = root.join(format!("step-{:08}.partial", tr.step));
    // Rank 0 alone writes here, so any `.partial` is what a crashed run left mid-write.
    if let Ok(entries) = std::fs::read_dir(&root) {
        for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if p.to_string_lossy().ends_with(".partial") {
                std::fs::remove_dir_all(&p).with_context(|| {
                    format!("{}: cannot remove an unfinished checkpoint", p.display())
                })?;
            }
        }
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    model::save::write_safetensors(&tr.model, &tmp.join("model.safetensors"))?;
    if let Some(d) = &tr.model.dense {
        let path = tmp.join(DENSE_FILE);
        model::save::write_params(&d.params, &path, crate::trainer::DENSE_PREFIX)?;
    }
    let opt_path = tmp.join("optimizer.safetensors");
    let moments: HashMap<String, Tensor> = tr.opt.state().into_iter().collect();
    candle_core::safetensors::save(&moments, &opt_path)
        .with_context(|| format!("{}: write failed", opt_path.display()))?;
    let state = TrainerState {
        step: tr.step,
        adam_t: tr.opt.t,
        dropout_rng: tr.dropout.rng.state(),
        data: tr.data_state()?,
        history: tr.history.clone(),
        evals: tr.evals.clone(),
        world_size: Some(tr.rank().1),
    };
    std::fs::write(
        tmp.join("trainer_state.json"),
        serde_json::to_string_pretty(&state)?,
    )?;
    seal(&tmp)?;
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(&tmp, &dest)
        .with_context(|| format!("{}: cannot rename into place", dest.display()))?;
    if let Some(keep) = tr.recipe.train.save_total_limit {
        prune(&root, keep)?;
    }
    let t = &tr.recipe.train;
    if let (Some(repo), true) = (&t.push_to, t.push_checkpoints) {
        let name = format!("checkpoint-{}", tr.step);
        let msg = format!("Training in progress, step {}", tr.step);
        if let Err(e) = crate::push::push_folder(&dest, repo, t.push_private, Some(&name), &msg) {
            eprintln!(
                "warning: checkpoint {} was not pushed to {repo}: {e:#}",
                tr.step
            );
        }
    }
    Ok(dest)
}

/// The complete checkpoints under `root`, oldest first.
fn complete(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("{}: cannot list", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("trainer_state.json").is_file())
        .filter(|p| !p.to_string_lossy().ends_with(".partial"))
        .collect();
    found.sort();
    Ok(found)
}

/// Keeps the newest `keep` checkpoints under `root` (`save_total_limit`), deleting the others.
fn prune(root: &Path, keep: usize) -> Result<()> {
    let found = complete(root)?;
    let extra = found.len().saturating_sub(keep.max(1));
    for old in &found[..extra] {
        std::fs::remove_dir_all(old)
            .with_context(|| format!("{}: cannot remove an old checkpoint", old.display()))?;
    }
    Ok(())
}

/// A checkpoint folder itself (which must verify), or the newest complete checkpoint under an
/// output folder that verifies: a damaged newer one is reported and passed over.
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    if dir.join("trainer_state.json").is_file() {
        verify(dir).with_context(|| format!("{}: damaged checkpoint", dir.display()))?;
        return Ok(dir.to_path_buf());
    }
    let root = dir.join("checkpoints");
    if !root.is_dir() {
        bail!("{}: no checkpoint here", dir.display());
    }
    let mut found = complete(&root)?;
    let mut damaged: Vec<(PathBuf, anyhow::Error)> = Vec::new();
    while let Some(p) = found.pop() {
        match verify(&p) {
            Ok(()) => {
                for (d, e) in &damaged {
                    eprintln!(
                        "warning: checkpoint {} is damaged ({e:#}); resuming from {} instead",
                        d.display(),
                        p.display()
                    );
                }
                return Ok(p);
            }
            Err(e) => damaged.push((p, e)),
        }
    }
    match damaged.first() {
        Some((d, e)) => bail!(
            "{}: every checkpoint is damaged (the newest, {}: {e:#})",
            root.display(),
            d.display()
        ),
        None => bail!("{}: no complete checkpoint", root.display()),
    }
}

/// Restores a trainer to the state saved in checkpoint folder `dir`.
pub fn load(tr: &mut Trainer, dir: &Path) -> Result<()> {
    let state_path = dir.join("trainer_state.json");
    let state: TrainerState = serde_json::from_slice(
        &std::fs::read(&state_path).with_context(|| format!("{}", state_path.display()))?,
    )
    .with_context(|| format!("{}: invalid", state_path.display()))?;
    let mut weights =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
            .with_context(|| format!("{}: cannot read", dir.join("model.safetensors").display()))?;
    if tr.model.dense.is_some() {
        let path = dir.join(DENSE_FILE);
        weights.extend(
            candle_core::safetensors::load(&path, &Device::Cpu)
                .with_context(|| format!("{}: cannot read", path.display()))?,
        );
    }
    let moments = candle_core::safetensors::load(dir.join("optimizer.safetensors"), &Device::Cpu)
        .with_context(|| {
        format!(
            "{}: cannot read",
            dir.join("optimizer.safetensors").display()
        )
    })?;
    let get = |m: &HashMap<String, Tensor>, k: &str| -> Result<Tensor> {
        m.get(k)
            .cloned()
            .with_context(|| format!("{}: checkpoint has no tensor {k}", dir.display()))
    };
    for (name, var) in &tr.opt.vars {
        var.set(
            &get(&weights, name)?
                .to_dtype(var.dtype())?
                .to_device(var.device())?,
        )?;
    }
    tr.opt
        .load_state(&moments, state.adam_t)
        .map_err(|e| anyhow::anyhow!("{}: optimizer state: {e}", dir.display()))?;
    tr.step = state.step;
    tr.dropout = model::Dropout {
        rng: model::rng::Rng::new(state.dropout_rng),
    };
    let (rank, world) = tr.rank();
    let saved = state.world_size.unwrap_or(1);
    if saved != world && rank == 0 {
        // The sampler draws the global batch and the step computes the global loss whatever the
        // number of ranks, so the run continues with the same data and maths; only dropout
        // masks, drawn per rank's rows, take another random stream.
        eprintln!(
            "note: {} was written by {saved} rank(s), continuing on {world}: same batches and \
             loss; dropout masks differ from a run that kept {saved}",
            dir.display()
        );
    }
    tr.history = state.history;
    tr.evals = state.evals;
    tr.restore_data(&state.data)?;
    Ok(())
}
