//! Storage backends for kstash repositories and the KubeStash bucket layout.
//!
//! - [`StorageConfig`]: where a storage is (local directory, S3, GCS, Azure Blob, B2, Swift,
//!   restic REST) and how to reach it, from a BackupStorage and its Secret or from a restic-style
//!   repository URL ([`parse_repository_url`]).
//! - [`ObjectStore`]: a bucket prefix on OpenDAL (retries, bounded concurrency, rate limits,
//!   multipart uploads); [`ObjectBackend`] puts a restic repository in it; [`RestBackend`] talks
//!   to a restic REST server; [`open_backend`] picks the right one.
//! - [`layout`]: `metadata.yaml`, `repository.yaml`, `snapshots/<name>.yaml` and the per-component
//!   repositories of a KubeStash bucket.

mod bucket;
mod config;
mod error;
pub mod layout;
mod object;
mod repo_backend;
mod rest;
mod runtime;
mod url;

use std::sync::Arc;

pub use bucket::{create_bucket, open_backend_creating_bucket};
pub use config::{
    AzureLocation, B2Location, DEFAULT_MAX_CONNECTIONS, GcsLocation, LocalMode, Location, RestLocation,
    S3Credentials, S3Location, SecretData, StorageConfig, SwiftLocation, Tuning,
};
pub use error::{RemoteKind, Result, StorageError, repo_error_category};
pub use object::{ObjectEntry, ObjectStore};
pub use repo_backend::ObjectBackend;
pub use rest::RestBackend;
pub use url::parse_repository_url;

/// The engine backend for the repository at `config`: the engine's own local backend for a
/// directory, the REST client for a REST server, otherwise an object store. Remote stores are
/// probed once, so a missing bucket, refused credentials or an unreachable endpoint fail here
/// with that reason rather than later as "no repository".
pub fn open_backend(config: &StorageConfig) -> Result<Arc<dyn kstash_repo::Backend>> {
    Ok(match &config.location {
        Location::Local { root } => Arc::new(kstash_repo::LocalBackend::new(root)),
        Location::Rest(rest) => Arc::new(RestBackend::new(rest, &config.tuning)?),
        _ => {
            let store = ObjectStore::open(config)?;
            store.probe()?;
            Arc::new(ObjectBackend::new(store))
        }
    })
}
