//! Reconcile pipelines for every KubeStash kind, written once against the [`platform::Platform`]
//! seam so the embedded runtime and the Kubernetes operator run the same logic: read references →
//! validate (pure) → plan (pure) → apply → write status.

pub mod hooks;
pub mod metrics;
pub mod platform;
pub mod retention;
