//! The Kubernetes runtime of kstash: the controller's `Platform` seam implemented on kube-rs.
//!
//! - [`resources::KubeResources`]: the `Resources` seam over the API server (status subresource,
//!   resourceVersion checks, finalizers), used by the reconcilers and by executors in Jobs.
//! - [`build`]: pure builders of the objects the operator owns — executor Jobs from an Addon task
//!   and its Function, trigger CronJobs `trigger-<bc>-<session>`, and per-namespace RBAC.
//! - [`platform::KubePlatform`]: the `Platform` seam (jobs, schedules, targets, Events), applying
//!   owned objects with server-side apply under one field manager.
//! - [`defaulting`]: KubeStash's mutating-webhook defaults, applied by the operator since kstash
//!   installs no admission webhook.
//! - [`leader`]: Lease-based leader election, so two operator replicas never act at once.
//! - [`lock_holders`]: whether the holder of a repository lock still runs, judged by its pod, so
//!   a killed executor's lock does not block later backups for 30 minutes.
//! - [`cache`]: the operator's read cache of the kinds it watches, fed by the watches.
//! - [`operator`]: the operator loop — CRD check, watches with backoff, a de-duplicating work
//!   queue over the shared reconcilers, health endpoints, clean shutdown on SIGTERM.

pub mod build;
pub mod cache;
pub mod defaulting;
pub mod error;
pub mod leader;
pub mod lock_holders;
pub mod operator;
pub mod platform;
pub mod resources;

pub use error::KubeError;
pub use platform::KubePlatform;
pub use resources::KubeResources;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "kstash-operator";
