//! Commands on the Repositories and Snapshots of the store, worked on with the engine directly (no
//! daemon needed; kubectl-kubestash habits): `snapshots`, `unlock`, `password`, `download`. Unlike
//! `repo_cmd` (`kstash repo …`, a restic repository given by its path), these name a Repository
//! or Snapshot resource and reach its component repositories (`repository/v1/<session>/<component>`)
//! through its BackupStorage, opened with the Repository's encryption password.

mod download;
mod password;
mod snapshots;
mod unlock;

pub use download::download;
pub use password::password;
pub use snapshots::snapshots;
pub use unlock::{unlock, unlock_repository};

use anyhow::{Context as _, Result, bail};
use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::resolve;
use kstash_api::storage::Repository;
use kstash_embedded::Store;
use kstash_exec::ExecOptions;
use kstash_exec::access::{ComponentRepo, component_repositories};
use kstash_repo::lock::{self, LockOptions};

/// Where component repositories live inside a repository directory.
const COMPONENT_PREFIX: &str = "repository/v1/";

pub(crate) fn get_repository(store: &dyn Resources, ns: &str, name: &str) -> Result<Repository> {
    store
        .get_as::<Repository>(ns, name)?
        .with_context(|| format!("Repository {ns}/{name} not found (kstash get repo -n {ns})"))
}

/// The Secret that holds the Repository's password (by the one rule of `kstash_api::resolve`),
/// for messages.
pub(crate) fn encryption_secret(store: &Store, repo: &Repository) -> Result<String> {
    Ok(resolve::repository(store, repo.clone())?
        .password
        .secret
        .to_string())
}

/// `wanted` as a component path: exact, or relative to `repository/v1/`.
pub(crate) fn matches_path(component: &str, wanted: &str) -> bool {
    let wanted = wanted.trim_matches('/');
    component == wanted || component.strip_prefix(COMPONENT_PREFIX) == Some(wanted)
}

/// The component repositories of `namespace/name`, only those in `paths` when given.
pub(crate) fn components(
    store: &dyn Resources,
    ns: &str,
    name: &str,
    paths: &[String],
) -> Result<(Repository, Vec<ComponentRepo>)> {
    let repo = get_repository(store, ns, name)?;
    let all = component_repositories(store, &repo, &ExecOptions::embedded())
        .with_context(|| format!("finding the component repositories of Repository {ns}/{name}"))?;
    if all.is_empty() {
        bail!(
            "Repository {ns}/{name} has no component repositories yet: no backup has written into it (kstash trigger <backupconfiguration> -n {ns})"
        );
    }
    let paths: Vec<&String> = paths.iter().filter(|p| !p.trim().is_empty()).collect();
    if paths.is_empty() {
        return Ok((repo, all));
    }
    let unknown: Vec<&str> = paths
        .iter()
        .filter(|p| !all.iter().any(|c| matches_path(&c.path, p)))
        .map(|p| p.as_str())
        .collect();
    if !unknown.is_empty() {
        bail!(
            "Repository {ns}/{name} has no component path {}; its paths: {}",
            unknown.join(", "),
            all.iter().map(|c| c.path.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let selected = all
        .into_iter()
        .filter(|c| paths.iter().any(|p| matches_path(&c.path, p)))
        .collect();
    Ok((repo, selected))
}

pub(crate) fn open_component(comp: &ComponentRepo, ns: &str, repo: &str) -> Result<kstash_repo::Repository> {
    comp.open()
        .with_context(|| format!("opening {} of Repository {ns}/{repo}", comp.path))
}

/// Take a lock on a component repository, pointing at `kstash unlock` when another holds it.
pub(crate) fn lock_component(
    engine: &kstash_repo::Repository,
    exclusive: bool,
    comp: &ComponentRepo,
    ns: &str,
    repo: &str,
) -> Result<lock::RepoLock> {
    lock::acquire(engine, exclusive, &LockOptions::default()).with_context(|| {
        format!(
            "locking {} of Repository {ns}/{repo} (if the process holding the lock is gone: kstash unlock {repo} -n {ns} --remove-all)",
            comp.path
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_paths_match_with_or_without_prefix() {
        assert!(matches_path(
            "repository/v1/frequent/dump",
            "repository/v1/frequent/dump"
        ));
        assert!(matches_path("repository/v1/frequent/dump", "frequent/dump"));
        assert!(!matches_path("repository/v1/frequent/dump", "dump"));
    }
}
