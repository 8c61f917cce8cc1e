//! What a job reads through the resource client before it touches data: Secrets (with `data`
//! or `stringData`), encryption passwords, the storage of a Repository, and the restic
//! repository of one component (opened, or created on first use).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::common::ObjectReference;
use kstash_api::storage::{BackupStorage, Repository};
use kstash_repo::{InitOptions, Repository as EngineRepo};
use kstash_storage::layout::StorageLayout;
use kstash_storage::{LocalMode, SecretData, StorageConfig};

use crate::error::{ExecError, Result};

/// The key of an encryption Secret that holds the restic password.
pub const PASSWORD_KEY: &str = "RESTIC_PASSWORD";

/// `Kind namespace/name` of a namespaced object's metadata, for messages.
pub(crate) fn describe(
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> String {
    format!(
        "{kind} {}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// The keys of a Secret: `data` (already base64-decoded by the type) overlaid with
/// `stringData`, as the API server merges them.
pub fn secret_data(secret: &Secret) -> SecretData {
    let mut data = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        data.insert(k.clone(), v.0.clone());
    }
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.as_bytes().to_vec());
    }
    SecretData {
        name: format!(
            "{}/{}",
            secret.metadata.namespace.as_deref().unwrap_or_default(),
            secret.metadata.name.as_deref().unwrap_or_default()
        ),
        data,
    }
}

/// The encryption password in the Secret `reference` (its namespace defaulting to
/// `default_namespace`), key `RESTIC_PASSWORD`. `purpose` says whose password it is.
pub(crate) fn password_from(
    client: &dyn Resources,
    reference: &ObjectReference,
    default_namespace: &str,
    purpose: &str,
) -> Result<String> {
    let ns = reference
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(default_namespace);
    let secret_name = format!("{ns}/{}", reference.name);
    let purpose = format!("the encryption password of {purpose}");
    let Some(secret) = client.get_as::<Secret>(ns, &reference.name)? else {
        return Err(ExecError::SecretNotFound {
            secret: secret_name,
            key: PASSWORD_KEY.into(),
            purpose,
        });
    };
    secret_data(&secret)
        .get(PASSWORD_KEY)
        .ok_or(ExecError::SecretKeyMissing {
            secret: secret_name,
            key: PASSWORD_KEY.into(),
            purpose,
        })
}

/// The password of `repo` from its `spec.encryptionSecret` (namespace defaulting to the
/// Repository's), or from `fallback` (with its default namespace) when the Repository names none.
pub(crate) fn repository_password(
    client: &dyn Resources,
    repo: &Repository,
    fallback: Option<(&ObjectReference, &str)>,
) -> Result<(String, String)> {
    let repo_ns = repo.metadata.namespace.as_deref().unwrap_or_default();
    let object = describe("Repository", &repo.metadata);
    let (reference, default_ns) = match (&repo.spec.encryption_secret, fallback) {
        (Some(r), _) if !r.name.is_empty() => (r, repo_ns),
        (_, Some((r, ns))) if !r.name.is_empty() => (r, ns),
        _ => {
            return Err(ExecError::invalid(
                object,
                "spec.encryptionSecret is not set; name a Secret holding RESTIC_PASSWORD",
            ));
        }
    };
    let ns = reference
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(default_ns);
    let password = password_from(client, reference, default_ns, &object)?;
    Ok((
        password,
        format!("key {PASSWORD_KEY} of Secret {ns}/{}", reference.name),
    ))
}

/// The BackupStorage of a Repository (`spec.storageRef`, namespace defaulting to the
/// Repository's) with its credentials Secret, as a [`StorageLayout`].
pub(crate) fn repository_storage(
    client: &dyn Resources,
    repo: &Repository,
    local: LocalMode,
) -> Result<StorageLayout> {
    let repo_ns = repo.metadata.namespace.as_deref().unwrap_or_default();
    let r = &repo.spec.storage_ref;
    if r.name.is_empty() {
        return Err(ExecError::invalid(
            describe("Repository", &repo.metadata),
            "spec.storageRef.name is empty; name the BackupStorage the repository lives in",
        ));
    }
    let ns = r
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(repo_ns);
    let storage: BackupStorage = client.must_get(ns, &r.name)?;
    let secret = storage_secret(client, &storage)?;
    storage_layout(&storage, secret.as_ref(), local)
}

/// The credentials Secret of a BackupStorage (`spec.storage.<provider>.secretName`, in the
/// BackupStorage's namespace), `None` when it names none or it does not exist (the storage
/// config then says which Secret is missing).
pub(crate) fn storage_secret(client: &dyn Resources, storage: &BackupStorage) -> Result<Option<Secret>> {
    let Some(name) = storage.spec.storage.secret_name() else {
        return Ok(None);
    };
    let ns = storage.metadata.namespace.as_deref().unwrap_or_default();
    Ok(client.get_as::<Secret>(ns, name)?)
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
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn secret_data_merges_data_and_string_data() {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("enc".into()),
                namespace: Some("demo".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([
                ("RESTIC_PASSWORD".to_string(), ByteString(b"old\n".to_vec())),
                ("OTHER".to_string(), ByteString(b"x".to_vec())),
            ])),
            string_data: Some(BTreeMap::from([(
                "RESTIC_PASSWORD".to_string(),
                "new".to_string(),
            )])),
            ..Default::default()
        };
        let d = secret_data(&secret);
        assert_eq!(d.name, "demo/enc");
        assert_eq!(d.get("RESTIC_PASSWORD").as_deref(), Some("new"));
        assert_eq!(d.get("OTHER").as_deref(), Some("x"));
    }

    #[test]
    fn repository_directories_are_validated() {
        assert_eq!(repo_dir("r", "/demo//pg/").unwrap(), "demo/pg");
        for bad in ["", "/", "a/../b", "./a"] {
            let e = repo_dir("Repository demo/r", bad).unwrap_err().to_string();
            assert!(e.contains("Repository demo/r") && e.contains("spec.path"), "{e}");
        }
    }
}
