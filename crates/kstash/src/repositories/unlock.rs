//! `kstash unlock`: remove stale (or, with `--remove-all`, all) locks from every component
//! repository of a Repository.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use kstash_embedded::Store;
use kstash_repo::lock::{self};

use super::{components, open_component};
use crate::cli::UnlockArgs;

/// `kstash unlock <repo>`: remove stale locks (or all) from every component repository.
pub fn unlock(store: &Store, a: UnlockArgs) -> Result<ExitCode> {
    let ns = a.namespace.as_str();
    let (_, comps) = components(store, ns, &a.repository, &a.paths)?;
    let mut total = 0;
    for comp in &comps {
        let engine = open_component(comp, ns, &a.repository)?;
        let removed = if a.remove_all {
            lock::remove_all_locks(&engine)
        } else {
            lock::remove_stale_locks(&engine)
        }
        .with_context(|| {
            format!(
                "removing locks of {} of Repository {ns}/{}",
                comp.path, a.repository
            )
        })?;
        total += removed.len();
        let ids: Vec<String> = removed.iter().map(|id| id.short()).collect();
        if ids.is_empty() {
            outln!("{}: removed 0 locks", comp.path);
        } else {
            outln!("{}: removed {} locks ({})", comp.path, ids.len(), ids.join(", "));
        }
    }
    if total == 0 && !a.remove_all {
        eprintln!(
            "note: only stale locks are removed (their process is gone or they are older than 30 minutes); --remove-all removes locks of running processes too"
        );
    }
    Ok(ExitCode::SUCCESS)
}
