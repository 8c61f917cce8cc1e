//! Reconcile pipelines for every KubeStash kind, written once against the [`platform::Platform`]
//! seam so the embedded runtime and the Kubernetes operator run the same logic: read references →
//! validate (pure) → plan (pure) → apply → write status.

pub mod backup_configuration;
pub mod backup_session;
pub mod blueprint;
pub mod dispatch;
pub mod hook_steps;
pub mod hooks;
pub mod metrics;
pub mod platform;
pub mod pushgateway;
pub mod queue;
pub mod restore_session;
pub mod retention;
pub mod stash_backup;
pub mod stash_restore;
pub mod storage;
pub mod tasks;
pub mod util;
pub mod verification_session;

pub use dispatch::{Key, keys_for_change, reconcile};
pub use queue::WorkQueue;
pub use util::{ReconcileError, Requeue};
