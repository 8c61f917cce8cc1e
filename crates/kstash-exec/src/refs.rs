//! What a job reaches once its session is resolved ([`kstash_api::resolve`]): Secrets' keys
//! (with `data` or `stringData`), the storage layout of a repository, and the restic repository
//! of one component (opened, or created on first use).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kstash_api::client::Resources;
pub(crate) use kstash_api::resolve::describe;
use kstash_api::resolve::{self, ResolvedRepository};
use kstash_api::storage::BackupStorage;
use kstash_repo::{InitOptions, Repository as EngineRepo};
use kstash_storage::layout::StorageLayout;
use kstash_storage::{LocalMode, StorageConfig};

pub use kstash_addons::secret_data;

use crate::{ExecError, Result};

/// The layout of a resolved repository's BackupStorage, reached with its credentials Secret.
pub(crate) fn repository_layout(
    client: &dyn Resources,
    repo: &ResolvedRepository,
    local: LocalMode,
) -> Result<StorageLayout> {
    let secret = resolve::storage_secret(client, &repo.storage)?;
    storage_layout(&repo.storage, secret.as_ref(), local)
}

/// The layout of a BackupStorage reached with its Secret.
pub(crate) fn storage_layout(
    storage: &BackupStorage,
    secret: Option<&Secret>,
    local: LocalMode,
) -> Result<StorageLayout> {
    let object = describe("BackupStorage", &storage.metadata);
    let data = secret.map(secret_data);
    let storage_err = |source| ExecError::storage(&object, source);
    let config = StorageConfig::from_backend(&object, &storage.spec.storage, data.as_ref(), local)
        .map_err(storage_err)?;
    StorageLayout::new(config).map_err(storage_err)
}

/// A repository path as a directory below the storage root (slashes trimmed and collapsed;
/// `.`/`..` refused), as the bucket layout names it.
pub(crate) fn repo_dir(object: &str, path: &str) -> Result<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(ExecError::invalid(
            object,
            format!("spec.path {path:?} does not name a directory inside the storage"),
        ));
    }
    Ok(parts.join("/"))
}

/// The storage of the restic repository at `component_path` (`repository/v1/<session>/<name>`)
/// of the repository directory `repo_path`.
pub(crate) fn component_config(
    layout: &StorageLayout,
    object: &str,
    repo_path: &str,
    component_path: &str,
) -> Result<StorageConfig> {
    let dir = repo_dir(object, repo_path)?;
    let parts: Vec<&str> = component_path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(ExecError::invalid(
            object,
            format!("component path {component_path:?} does not name a directory inside the repository"),
        ));
    }
    Ok(layout.config().join(&format!("{dir}/{}", parts.join("/"))))
}

/// Open the restic repository at `config` with `password` (`password_from` names where the
/// password came from, for the wrong-password message).
pub(crate) fn open_repository(
    config: &StorageConfig,
    password: &str,
    password_from: &str,
) -> Result<EngineRepo> {
    let location = config.display();
    let backend = open_backend(config)?;
    EngineRepo::open(backend, password).map_err(|e| ExecError::repo(location, e, password_from))
}

/// Open the restic repository at `config`, creating it (format v2) when there is none yet.
/// Returns the repository and whether it was created now.
pub(crate) fn open_or_init_repository(
    config: &StorageConfig,
    password: &str,
    password_from: &str,
) -> Result<(EngineRepo, bool)> {
    let location = config.display();
    let backend = open_backend(config)?;
    match EngineRepo::open(Arc::clone(&backend), password) {
        Ok(r) => return Ok((r, false)),
        Err(kstash_repo::Error::NotFound(_)) => {}
        Err(e) => return Err(ExecError::repo(location, e, password_from)),
    }
    match EngineRepo::init(Arc::clone(&backend), password, InitOptions::default()) {
        Ok(r) => {
            tracing::info!(repo = %location, "initialised the component repository");
            Ok((r, true))
        }
        // Another executor created it in the meantime.
        Err(kstash_repo::Error::AlreadyInitialised(_)) => EngineRepo::open(backend, password)
            .map(|r| (r, false))
            .map_err(|e| ExecError::repo(location, e, password_from)),
        Err(e) => Err(ExecError::repo(location, e, password_from)),
    }
}

fn open_backend(config: &StorageConfig) -> Result<Arc<dyn kstash_repo::Backend>> {
    kstash_storage::open_backend(config)
        .map_err(|source| ExecError::storage(format!("repository {}", config.display()), source))
}

/// Bytes stored in a restic repository (every file: config, keys, snapshots, index, packs, locks).
pub(crate) fn repository_bytes(repo: &EngineRepo) -> Result<u64> {
    use kstash_repo::FileType;
    let mut total = 0;
    for t in std::iter::once(FileType::Config).chain(FileType::DIRS) {
        total += repo
            .backend()
            .list(t)
            .map_err(|e| ExecError::repo(repo.location(), e, ""))?
            .iter()
            .map(|(_, size)| size)
            .sum::<u64>();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_directories_are_validated() {
        assert_eq!(repo_dir("r", "/demo//pg/").unwrap(), "demo/pg");
        for bad in ["", "/", "a/../b", "./a"] {
            let e = repo_dir("Repository demo/r", bad).unwrap_err().to_string();
            assert!(e.contains("Repository demo/r") && e.contains("spec.path"), "{e}");
        }
    }
}
