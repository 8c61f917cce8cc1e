//! Small shared pieces of the reconcilers: KubeStash label keys, finalizers, owner references,
//! conditions with timestamps, durations and the reconcile error type.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kstash_api::ErrorCategory;
use kstash_api::client::ClientError;
use kstash_api::common::Condition;
use kstash_api::phase;

use crate::platform::PlatformError;

/// Finalizer KubeStash puts on objects it cleans up after.
pub const FINALIZER: &str = "kubestash.com/cleanup";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "kubestash.com";
pub const LABEL_INVOKER_NAME: &str = "kubestash.com/invoker-name";
pub const LABEL_INVOKER_KIND: &str = "kubestash.com/invoker-kind";
pub const LABEL_INVOKER_NAMESPACE: &str = "kubestash.com/invoker-namespace";
pub const LABEL_SESSION_NAME: &str = "kubestash.com/session-name";
pub const LABEL_REPO_NAME: &str = "kubestash.com/repo-name";
pub const LABEL_APP_REF_KIND: &str = "kubestash.com/app-ref-kind";
pub const LABEL_APP_REF_NAME: &str = "kubestash.com/app-ref-name";
pub const LABEL_APP_REF_NAMESPACE: &str = "kubestash.com/app-ref-namespace";

/// Why a reconcile step failed; the work queue retries it with the backoff of its category.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The object asks for something that cannot work; the message names the field and the fix.
    #[error("{0}")]
    Invalid(String),
    /// No free name for a generated object (every candidate was taken).
    #[error("{0}")]
    NameExhausted(String),
}

impl ReconcileError {
    /// What kind of failure this is (drives the requeue backoff).
    pub fn category(&self) -> ErrorCategory {
        match self {
            ReconcileError::Client(e) => e.category(),
            ReconcileError::Platform(e) => e.category(),
            ReconcileError::Invalid(_) => ErrorCategory::Invalid,
            ReconcileError::NameExhausted(_) => ErrorCategory::Transient,
        }
    }
}

pub type Result<T, E = ReconcileError> = std::result::Result<T, E>;

/// When to look at an object again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Requeue {
    /// Only on the next change or periodic resync.
    #[default]
    Idle,
    /// After this long (waiting for a job, a retry delay, a deadline).
    After(Duration),
}

impl Requeue {
    /// The sooner of two requeues.
    pub fn min(self, other: Requeue) -> Requeue {
        match (self, other) {
            (Requeue::Idle, x) | (x, Requeue::Idle) => x,
            (Requeue::After(a), Requeue::After(b)) => Requeue::After(a.min(b)),
        }
    }
}

pub fn time(t: Timestamp) -> Time {
    Time(t)
}

pub fn has_finalizer(meta: &ObjectMeta) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

/// Adds the finalizer; true when it was missing.
pub fn add_finalizer(meta: &mut ObjectMeta) -> bool {
    if has_finalizer(meta) {
        return false;
    }
    meta.finalizers
        .get_or_insert_with(Vec::new)
        .push(FINALIZER.to_string());
    true
}

pub fn remove_finalizer(meta: &mut ObjectMeta) {
    if let Some(f) = meta.finalizers.as_mut() {
        f.retain(|x| x != FINALIZER);
    }
}

pub fn is_deleting(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

pub fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// The object's uid (names its tracked tasks); empty before it is stored.
pub fn uid(meta: &ObjectMeta) -> &str {
    meta.uid.as_deref().unwrap_or("")
}

pub fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("")
}

/// A controller owner reference to `owner`.
pub fn owner_ref(api_version: String, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version,
        kind: kind.to_string(),
        name: name(meta).to_string(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Set a condition with `lastTransitionTime` = now (kept when the status did not change).
pub fn set_cond(
    conds: &mut Vec<Condition>,
    now: Timestamp,
    type_: &str,
    ok: bool,
    reason: &str,
    msg: impl Into<String>,
) {
    let mut c = Condition::new(type_, ok, reason, msg);
    c.last_transition_time = Some(time(now));
    phase::set_condition(conds, c);
}

/// Set a True condition recording the generation it was reached for (a step done once per spec
/// change, such as writing `metadata.yaml` or `repository.yaml`).
pub fn set_done_for_generation(
    conds: &mut Vec<Condition>,
    now: Timestamp,
    type_: &str,
    reason: &str,
    msg: &str,
    generation: i64,
) {
    let mut c = Condition::new(type_, true, reason, msg);
    c.observed_generation = Some(generation);
    c.last_transition_time = Some(time(now));
    phase::set_condition(conds, c);
}

/// Whether the condition is True for exactly this generation.
pub fn done_for_generation(conds: &[Condition], type_: &str, generation: i64) -> bool {
    phase::find(conds, type_).is_some_and(|c| {
        c.status == kstash_api::common::ConditionStatus::True && c.observed_generation == Some(generation)
    })
}

/// The condition's status: Some(true/false), None when absent.
pub fn cond(conds: &[Condition], type_: &str) -> Option<bool> {
    phase::find(conds, type_).map(|c| c.status == kstash_api::common::ConditionStatus::True)
}

/// A duration as Go prints it (`1m30.5s`, `2.3s`), rounded to 0.1 s.
pub fn go_duration(d: Duration) -> String {
    let tenths = (d.as_millis() / 100) as u64;
    let (h, rest) = (tenths / 36000, tenths % 36000);
    let (m, rest) = (rest / 600, rest % 600);
    let s = rest as f64 / 10.0;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

/// Elapsed time between two timestamps (zero when negative).
pub fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// How long ago the object was created (zero without a creationTimestamp).
pub fn age(meta: &ObjectMeta, now: Timestamp) -> Duration {
    meta.creation_timestamp
        .as_ref()
        .map(|t| elapsed(t.0, now))
        .unwrap_or_default()
}

/// `t + d`.
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or_default())
        .unwrap_or(t)
}

/// Labels as a map.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// A reference's namespace, or `default` when it has none (the one helper, in the resolver).
pub use kstash_api::resolve::ns_or;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_millis(2340)), "2.3s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3661)), "1h1m1s");
    }
}
