//! `pairtrain data fetch`: everything a recipe needs from the Hugging Face hub (its base model,
//! teacher, `hf://` data and evaluation paths) fetched into the shared cache before a long run,
//! in parallel, with one progress bar; and what `data check-recipe` says of each source.

use crate::progress;
use anyhow::{anyhow, Result};
use clap::Args;
use hub::{HfRef, Hub, Repo, RepoKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use train::sources::Plan;

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The recipe (TOML).
    pub config: PathBuf,
    /// Files downloaded at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Also re-hash every file already in the cache against the hash the hub names it by;
    /// a damaged one is fetched again.
    #[arg(long)]
    pub verify: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// How one of a recipe's sources stands.
pub enum Status {
    /// A local path that exists.
    Local,
    /// In the hub cache already.
    Cached(PathBuf),
    /// On the hub, not yet in the cache: its size when the listing says.
    WillDownload(Option<u64>),
    Missing(String),
}

/// A model named by a recipe: a folder, or a hub id.
pub fn model_status(spec: &str) -> Status {
    if Path::new(spec).exists() {
        return Status::Local;
    }
    if !model::hub::is_hub_id(spec) {
        return Status::Missing(format!("{spec}: no such folder"));
    }
    let cfg = hub::HubConfig::from_env();
    let (id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let repo = match Repo::new(RepoKind::Model, id, revision) {
        Ok(r) => r,
        Err(e) => return Status::Missing(e.to_string()),
    };
    // Whatever the network says, the cache alone tells what is there already.
    let offline = Hub::new(hub::HubConfig {
        offline: true,
        ..cfg.clone()
    });
    match model::hub::fetch_model(&offline, &repo) {
        Ok(dir) => return Status::Cached(dir),
        Err(e) if cfg.offline => return Status::Missing(e.to_string()),
        Err(_) => {}
    }
    match Hub::new(cfg).snapshot(&repo) {
        Ok(snap) => {
            if !snap.files.iter().any(|f| f.name == "model.safetensors") {
                return Status::Missing(format!(
                    "{}: the repository has no model.safetensors",
                    repo.describe(None)
                ));
            }
            Status::WillDownload(
                snap.files
                    .iter()
                    .filter_map(|f| f.size)
                    .reduce(|a, b| a + b),
            )
        }
        Err(e) => Status::Missing(e.to_string()),
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The `hf://` paths of a recipe's data and evaluation entries, with a label each.
fn hub_paths(recipe: &train::Recipe) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, d) in recipe.data.iter().enumerate() {
        let name = d.name.clone().unwrap_or_else(|| format!("data{i}"));
        out.push((format!("data {name}"), d.path.clone()));
    }
    for e in &recipe.eval {
        out.push((format!("eval {}", e.display_name()), e.path.clone()));
    }
    out.retain(|(_, p)| p.starts_with("hf://"));
    out
}

pub fn fetch(a: &FetchArgs) -> Result<()> {
    let recipe = train::Recipe::load_unchecked(&a.config)?;
    let hub = Hub::from_env();
    let mut problems = Vec::new();
    let mut models = vec![("model", recipe.model.base.clone())];
    if let Some(t) = &recipe.teacher {
        models.push(("teacher", t.model.clone()));
    }
    for (what, spec) in &models {
        match model_status(spec) {
            Status::Local => eprintln!("{what} {spec}: a local folder"),
            Status::Cached(dir) => eprintln!("{what} {spec}: cached ({})", dir.display()),
            Status::Missing(e) => problems.push(format!("{what} {spec}: {e}")),
            Status::WillDownload(size) => {
                let pb = progress::line_spinner(&format!(
                    "{what} {spec}: downloading{}",
                    size.map_or(String::new(), |s| format!(" ({})", human(s)))
                ));
                let (id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
                let r = Repo::new(RepoKind::Model, id, revision)
                    .and_then(|repo| model::hub::fetch_model(&hub, &repo));
                pb.finish_and_clear();
                match r {
                    Ok(dir) => eprintln!("{what} {spec}: downloaded ({})", dir.display()),
                    Err(e) => problems.push(format!("{what} {spec}: {e}")),
                }
            }
        }
    }

    // Every file of every hf:// path: what is cached (and, with --verify, still intact), and
    // what is to download.
    let mut todo: Vec<(String, hub::Repo, String, hub::RemoteFile)> = Vec::new();
    let (mut cached_files, mut cached_bytes) = (0usize, 0u64);
    for (what, path) in hub_paths(&recipe) {
        let plan = match HfRef::parse(&path)
            .expect("kept hf:// paths only")
            .map_err(|e| anyhow!(e))
            .and_then(|r| Plan::new(&hub, &r))
        {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("{what}: {e:#}"));
                continue;
            }
        };
        for f in &plan.files {
            let repo = &plan.reference.repo;
            if plan.cached(&hub, f)? {
                if a.verify {
                    if let Some(problem) = hub.verify_cached(repo, &plan.commit, &f.name)? {
                        eprintln!("{what} {}: {problem}; fetching it again", f.name);
                        hub.evict(repo, &plan.commit, &f.name)?;
                        todo.push((what.clone(), repo.clone(), plan.commit.clone(), f.clone()));
                        continue;
                    }
                }
                cached_files += 1;
                cached_bytes += f.size.unwrap_or(0);
            } else if hub.cfg.offline {
                problems.push(format!(
                    "{what} {}: not in the cache and HF_HUB_OFFLINE is set",
                    f.name
                ));
            } else {
                todo.push((what.clone(), repo.clone(), plan.commit.clone(), f.clone()));
            }
        }
    }
    let total: u64 = todo.iter().map(|t| t.3.size.unwrap_or(0)).sum();
    let pb = progress::bytes_bar(
        total,
        &format!("downloading {} files", todo.len()),
        a.quiet || todo.is_empty(),
    );
    let started = std::time::Instant::now();
    let (next, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..a.jobs.clamp(1, 32).min(todo.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((what, repo, commit, f)) = todo.get(i) else {
                    break;
                };
                let r = hub.fetch(repo, commit, &f.name, Some(f), &|n| pb.inc(n));
                match r {
                    Ok(Some(_)) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => failures.lock().unwrap().push(format!(
                        "{what} {}: listed but not served by the hub",
                        f.name
                    )),
                    Err(e) => failures.lock().unwrap().push(format!("{what}: {e}")),
                }
            });
        }
    });
    pb.finish_and_clear();
    problems.extend(failures.into_inner().unwrap());
    eprintln!(
        "{}: {cached_files} files already cached ({}), {} downloaded ({}) in {:.1} s",
        a.config.display(),
        human(cached_bytes),
        done.load(Ordering::Relaxed),
        human(pb.position()),
        started.elapsed().as_secs_f64()
    );
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        std::process::exit(1);
    }
    Ok(())
}

/// `data check-recipe`'s view of one `hf://` data or evaluation path: a line per file, and the
/// local files that are cached (to be read like local ones). Returns (cached paths, will
/// download count, missing count).
pub fn check_hub_path(what: &str, path: &str) -> (Vec<PathBuf>, usize, usize) {
    let hub = Hub::from_env();
    let plan = match HfRef::parse(path)
        .expect("an hf:// path")
        .map_err(|e| anyhow!(e))
        .and_then(|r| Plan::new(&hub, &r))
    {
        Ok(p) => p,
        Err(e) => {
            println!("MISSING  {what}: {e:#}");
            return (Vec::new(), 0, 1);
        }
    };
    let (mut cached, mut later, mut missing) = (Vec::new(), 0, 0);
    let rc = hub.cache.repo(&plan.reference.repo);
    for f in &plan.files {
        match rc.lookup(&plan.commit, &f.name) {
            Ok(hub::Lookup::Present(p)) => cached.push(p),
            _ if hub.cfg.offline => {
                println!(
                    "MISSING  {what} {} (not in the cache; HF_HUB_OFFLINE is set)",
                    f.name
                );
                missing += 1;
            }
            _ => {
                println!(
                    "will download  {what} {}{}",
                    f.name,
                    f.size.map_or(String::new(), |s| format!(" ({})", human(s)))
                );
                later += 1;
            }
        }
    }
    (cached, later, missing)
}
