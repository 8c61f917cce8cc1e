//! Whether the holder of a restic repository lock still runs, judged by its pod.
//!
//! On Kubernetes every executor runs in its own pod, whose host name is the pod name, so restic's
//! rule (a dead PID on this same host) never applies and a lock left by a killed executor blocks
//! every later backup until it goes stale after 30 minutes. KubeStash (since 2025-07) takes the
//! lock's `hostname` to be the holder's pod name and looks that pod up; so does [`PodLiveness`],
//! the [`HolderLiveness`] judge executors (in their own namespace) and the operator (in every
//! namespace) hand the engine:
//!
//! | pod named like the lock's `hostname`          | verdict                                            |
//! |-----------------------------------------------|----------------------------------------------------|
//! | `Succeeded` or `Failed`                       | [`HolderState::Gone`]: the lock is removed at once |
//! | any other phase (also while terminating)      | [`HolderState::Alive`]: waited for as usual        |
//! | none (or the name cannot be a pod's)          | [`HolderState::Absent`]: removed once unrefreshed for [`ABSENT_AFTER`](kstash_repo::lock::ABSENT_AFTER) |
//! | the API fails or does not answer in time      | [`HolderState::Unknown`]: waited for — never delete on doubt |
//!
//! "None" is not "gone" (KubeStash's rule) because a live holder may be a pod where we do not
//! look — the operator's own snapshot wipe-out, a restore in another namespace — or restic on a
//! machine outside the cluster; all of them refresh their locks every five minutes, so a lock
//! without a pod is removed only once it has stopped being refreshed.

use std::future::Future;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kstash_repo::lock::{HolderLiveness, HolderState, LivenessJudge, LockFile};
use kube::api::{Api, ListParams};

use crate::KubeResources;
use crate::build::POD_NAMESPACE_ENV;

/// How long one pod lookup may take before the holder counts as [`HolderState::Unknown`].
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a lock holder's pod is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodScope {
    /// One namespace (an executor's own: its ServiceAccount may only `get` pods there).
    Namespace(String),
    /// Every namespace, by a `metadata.name` field selector (the operator, which may list pods
    /// cluster-wide).
    AllNamespaces,
}

/// Why a pod lookup gave no answer (the holder then counts as [`HolderState::Unknown`]).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The API answered with an error (no permission, unavailable, ...).
    #[error("looking up pod {pod}: {source}")]
    Api {
        /// The pod looked for (`namespace/name` or `name` in every namespace).
        pod: String,
        /// What kube-rs reported.
        source: kube::Error,
    },
    /// The API did not answer within [`LOOKUP_TIMEOUT`].
    #[error("looking up pod {pod}: no answer from the Kubernetes API within {}s", timeout.as_secs())]
    TimedOut {
        /// The pod looked for.
        pod: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The async runtime the client runs on has shut down.
    #[error("looking up pod {pod}: the async runtime has stopped")]
    RuntimeStopped {
        /// The pod looked for.
        pod: String,
    },
}

/// Judges lock holders by their pods (see the module documentation).
#[derive(Clone)]
pub struct PodLiveness {
    client: kube::Client,
    handle: tokio::runtime::Handle,
    scope: PodScope,
    timeout: Duration,
}

impl std::fmt::Debug for PodLiveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLiveness")
            .field("scope", &self.scope)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PodLiveness {
    /// Look holders up in `scope` through `res`'s client and runtime.
    pub fn new(res: &KubeResources, scope: PodScope) -> PodLiveness {
        PodLiveness {
            client: res.client().clone(),
            handle: res.handle().clone(),
            scope,
            timeout: LOOKUP_TIMEOUT,
        }
    }

    /// Look holders up in this pod's own namespace: `$POD_NAMESPACE` (set on executor Jobs
    /// through the downward API), else the client's default namespace (in a pod: the
    /// ServiceAccount's namespace file).
    pub fn own_namespace(res: &KubeResources) -> PodLiveness {
        let ns = std::env::var(POD_NAMESPACE_ENV)
            .ok()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| res.client().default_namespace().to_string());
        PodLiveness::new(res, PodScope::Namespace(ns))
    }

    /// Give up on a lookup after `timeout` instead of [`LOOKUP_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> PodLiveness {
        self.timeout = timeout;
        self
    }

    /// Where holders are looked up.
    pub fn scope(&self) -> &PodScope {
        &self.scope
    }

    /// This judge, for [`kstash_repo::lock::LockOptions::liveness`].
    pub fn judge(self) -> LivenessJudge {
        LivenessJudge::new(self)
    }

    /// The verdict on the pod `name`, or why there is none.
    pub fn pod_state(&self, name: &str) -> Result<HolderState, LookupError> {
        if !is_pod_name(name) {
            return Ok(HolderState::Absent);
        }
        match &self.scope {
            PodScope::Namespace(ns) => {
                let pod = format!("{ns}/{name}");
                let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
                let name = name.to_string();
                let found = self
                    .run(&pod, async move { api.get_opt(&name).await })?
                    .map_err(|source| LookupError::Api { pod, source })?;
                Ok(match found {
                    None => HolderState::Absent,
                    Some(p) if has_ended(&p) => HolderState::Gone,
                    Some(_) => HolderState::Alive,
                })
            }
            PodScope::AllNamespaces => {
                let api: Api<Pod> = Api::all(self.client.clone());
                let params = ListParams::default().fields(&format!("metadata.name={name}"));
                let found = self
                    .run(name, async move { api.list(&params).await })?
                    .map_err(|source| LookupError::Api {
                        pod: name.to_string(),
                        source,
                    })?;
                Ok(if found.items.is_empty() {
                    HolderState::Absent
                } else if found.items.iter().all(has_ended) {
                    HolderState::Gone
                } else {
                    HolderState::Alive
                })
            }
        }
    }

    /// Run `fut` on the client's runtime and wait for it on this thread, at most `self.timeout`.
    ///
    /// The lock code calling us is synchronous and may run on a plain thread, a `spawn_blocking`
    /// thread or (mistakenly) a runtime worker; `Handle::block_on` would panic on the last, so
    /// the request is spawned onto the runtime and its answer awaited on a channel instead. A
    /// request still running at the deadline is aborted.
    fn run<T: Send + 'static>(
        &self,
        pod: &str,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, LookupError> {
        let (tx, rx) = sync_channel(1);
        let task = self.handle.spawn(async move {
            // The receiver is gone only when we stopped waiting.
            let _ = tx.send(fut.await);
        });
        match rx.recv_timeout(self.timeout) {
            Ok(v) => Ok(v),
            Err(RecvTimeoutError::Timeout) => {
                task.abort();
                Err(LookupError::TimedOut {
                    pod: pod.to_string(),
                    timeout: self.timeout,
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(LookupError::RuntimeStopped { pod: pod.to_string() }),
        }
    }
}

impl HolderLiveness for PodLiveness {
    fn holder_state(&self, lock: &LockFile) -> HolderState {
        match self.pod_state(&lock.hostname) {
            Ok(state) => {
                tracing::debug!(pod = %lock.hostname, ?state, "judged a lock holder by its pod");
                state
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether a lock holder still runs; leaving its lock");
                HolderState::Unknown
            }
        }
    }
}

/// Whether every container of the pod has ended for good (phase `Succeeded` or `Failed`).
fn has_ended(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// Whether `name` can be a pod's name (a DNS-1123 subdomain); a host name that cannot (empty,
/// upper case, `_`) is not a pod's, so needs no lookup.
fn is_pod_name(name: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 253
        && bytes.iter().all(|&b| alnum(b) || b == b'-' || b == b'.')
        && name.split('.').all(|label| {
            let l = label.as_bytes();
            !l.is_empty() && alnum(l[0]) && alnum(l[l.len() - 1])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_are_dns_subdomains() {
        for ok in ["backup-job-x7k2q", "a", "pod-0.svc", "0abc"] {
            assert!(is_pod_name(ok), "{ok}");
        }
        for bad in ["", "MyLaptop", "host_name", "-a", "a-", "a..b", &"a".repeat(254)] {
            assert!(!is_pod_name(bad), "{bad}");
        }
    }
}
