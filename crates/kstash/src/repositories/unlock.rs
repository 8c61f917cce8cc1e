//! `kstash unlock`: remove stale (or, with `--remove-all`, all) locks from every component
//! repository of a Repository.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use kstash_api::client::Resources;
use kstash_embedded::Store;
use kstash_repo::lock::{self};

use super::{components, open_component};
use crate::cli::UnlockArgs;

/// `kstash unlock <repo>`: remove stale locks (or all) from every component repository.
pub fn unlock(store: &Store, a: UnlockArgs) -> Result<ExitCode> {
    let removed = unlock_repository(store, &a.namespace, &a.repository, &a.paths, a.remove_all)?;
    let mut total = 0;
    for (path, ids) in &removed {
        total += ids.len();
        if ids.is_empty() {
            outln!("{path}: removed 0 locks");
        } else {
            outln!("{path}: removed {} locks ({})", ids.len(), ids.join(", "));
        }
    }
    if total == 0 && !a.remove_all {
        eprintln!(
            "note: only stale locks are removed (their process is gone or they are older than 30 minutes); --remove-all removes locks of running processes too"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Remove the stale locks (every lock with `remove_all`) of a Repository's component
/// repositories (only `paths` when given); the short ids removed per component path. Shared by
/// `kstash unlock` and the dashboard.
pub fn unlock_repository(
    res: &dyn Resources,
    ns: &str,
    repository: &str,
    paths: &[String],
    remove_all: bool,
) -> Result<Vec<(String, Vec<String>)>> {
    let (_, comps) = components(res, ns, repository, paths)?;
    let mut out = Vec::new();
    for comp in &comps {
        let engine = open_component(comp, ns, repository)?;
        let removed = if remove_all {
            lock::remove_all_locks(&engine)
        } else {
            lock::remove_stale_locks(&engine)
        }
        .with_context(|| format!("removing locks of {} of Repository {ns}/{repository}", comp.path))?;
        out.push((comp.path.clone(), removed.iter().map(|id| id.short()).collect()));
    }
    Ok(out)
}
