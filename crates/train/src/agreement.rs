//! Agreement at start: every rank of a job checks that it runs the same program, the same recipe
//! and the same data files as rank 0 before the first collective, so hosts that differ (a stale
//! binary, an edited recipe, a data file copied short) stop the job with the difference named
//! instead of training silently on different things.

use crate::process_group::ProcessGroup;
use crate::Recipe;
use anyhow::{bail, Result};
use pairs::dedup::hash_bytes;

/// What is compared, in order.
const WHAT: [&str; 4] = ["program", "recipe", "data files", "world size"];

/// This rank's description of each of `WHAT`, for the messages.
fn describe(recipe: &Recipe, world: usize) -> Result<[String; 4]> {
    let exe = std::env::current_exe()?;
    let program = match std::fs::read(&exe) {
        Ok(bytes) => format!(
            "{} {} ({} bytes, hash {:016x})",
            exe.display(),
            env!("CARGO_PKG_VERSION"),
            bytes.len(),
            hash_bytes(&bytes)
        ),
        Err(e) => format!("{} ({e})", exe.display()),
    };
    let mut data = Vec::new();
    for d in &recipe.data {
        for f in crate::sources::data_files(&d.path)? {
            let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            data.push(format!("{} ({size} bytes)", f.display()));
        }
    }
    Ok([
        program,
        format!("{recipe:?}"),
        data.join(", "),
        world.to_string(),
    ])
}

/// Fails on every rank when any rank's program, recipe, data files or world size differ from
/// rank 0's. The ranks that differ print what they have, and rank 0 what it has.
pub fn check(recipe: &Recipe, group: &dyn ProcessGroup) -> Result<()> {
    let world = group.world_size();
    if world == 1 {
        return Ok(());
    }
    let mine = describe(recipe, world)?;
    let hashes: Vec<u64> = mine.iter().map(|d| hash_bytes(d.as_bytes())).collect();
    let all = group.all_gather_u64(&hashes)?;
    let rank0 = &all[..WHAT.len()];
    let mut differ = Vec::new();
    for r in 1..world {
        for (k, what) in WHAT.iter().enumerate() {
            if all[r * WHAT.len() + k] != rank0[k] {
                differ.push((r, k, *what));
            }
        }
    }
    if differ.is_empty() {
        return Ok(());
    }
    let rank = group.rank();
    let host = crate::process_group::host_name();
    let kinds: std::collections::BTreeSet<usize> = differ.iter().map(|d| d.1).collect();
    for k in kinds {
        if rank == 0 || differ.iter().any(|d| d.0 == rank && d.1 == k) {
            let detail: String = mine[k].chars().take(2000).collect();
            crate::process_group::say(&format!(
                "rank {rank} on host {host}: {}: {detail}",
                WHAT[k]
            ));
        }
    }
    let list: Vec<String> = differ
        .iter()
        .map(|(r, _, what)| format!("rank {r}'s {what} differ"))
        .collect();
    bail!(
        "the ranks do not agree with rank 0: {} (each rank printed its own above); start every \
         rank with the same binary, recipe and data",
        list.join(", ")
    )
}
