//! Self-healing repository locks on Kubernetes: a lock whose `hostname` names a pod that has
//! ended is removed, and the next backup locks at once, instead of waiting 30 minutes for the
//! lock to go stale.
//!
//! End to end through kube-rs and HTTP against `FakeKubeApi`, an in-process FAKE of the
//! Kubernetes API server (kstash-testsupport): no real kube-apiserver, kind, k3s or envtest can be
//! installed or run on this machine (reference/test-infra.md §12). The fake runs no controllers,
//! so the tests put Pods with the phase they need, as the kubelet would report it. The repository
//! and its lock files are real, in a temporary directory.

use std::time::Duration;

use kstash_kube::KubeResources;
use kstash_kube::lock_holders::{PodLiveness, PodScope};
use kstash_repo::gojson::GoTime;
use kstash_repo::lock::{self, LockFile, LockOptions};
use kstash_repo::{Error, FileType, Repository};
use kstash_testsupport::FakeKubeApi;
use serde_json::json;

// The engine's own local-repository fixture, shared rather than copied.
#[path = "../../kstash-repo/tests/common/mod.rs"]
mod common;
use common::TestRepo;

/// The executor's namespace.
const NS: &str = "demo";

/// A fake cluster, a client whose calls run on a runtime of its own, and a local repository.
struct World {
    api: FakeKubeApi,
    _rt: tokio::runtime::Runtime,
    res: KubeResources,
    dir: TestRepo,
    repo: Repository,
}

impl World {
    fn new() -> World {
        let api = FakeKubeApi::start().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = kube::Config::new(api.url().parse().unwrap());
        config.default_namespace = NS.into();
        // The fake answers 503 while unavailable; kube-rs would retry that for minutes.
        config.default_retry = false;
        let client = rt.block_on(async { kube::Client::try_from(config) }).unwrap();
        let res = KubeResources::new(client, rt.handle().clone());
        let dir = TestRepo::new();
        let repo = dir.init();
        World {
            api,
            _rt: rt,
            res,
            dir,
            repo,
        }
    }

    /// A pod `name` in `namespace` in `phase`, as the kubelet reports it.
    fn pod(&self, namespace: &str, name: &str, phase: &str) {
        self.api.put(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "executor", "image": "ghcr.io/kstash/kstash:test"}]},
            "status": {"phase": phase},
        }));
    }

    /// An exclusive lock as the executor in pod `pod` wrote it, last refreshed `age` ago (PID 1:
    /// the executor is its container's first process). Returns its file name.
    fn lock_of(&self, pod: &str, age: jiff::SignedDuration) -> String {
        let lock = LockFile {
            time: GoTime::utc(jiff::Timestamp::now() - age),
            hostname: pod.into(),
            pid: 1,
            ..LockFile::for_this_process(true)
        };
        self.repo.save_json(FileType::Lock, &lock).unwrap().to_hex()
    }

    /// Lock options of an executor in `NS` judging holders by their pods, waiting up to `wait`.
    fn executor(&self, wait: Duration) -> LockOptions {
        self.judged(PodLiveness::own_namespace(&self.res), wait)
    }

    fn judged(&self, pods: PodLiveness, wait: Duration) -> LockOptions {
        LockOptions {
            wait,
            retry_interval: Duration::from_millis(20),
            settle: Duration::from_millis(5),
            liveness: Some(pods.judge()),
            ..LockOptions::default()
        }
    }

    /// A backup's shared lock, taken with `options`.
    fn backup(&self, options: &LockOptions) -> kstash_repo::Result<lock::RepoLock> {
        lock::acquire(&self.repo, false, options)
    }
}

/// Younger than `ABSENT_AFTER`: a holder this fresh may still be running somewhere.
fn fresh() -> jiff::SignedDuration {
    jiff::SignedDuration::from_mins(1)
}

/// Older than `ABSENT_AFTER`, younger than `STALE_AFTER`: not stale by restic's rule.
fn unrefreshed() -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(lock::ABSENT_AFTER).unwrap() + jiff::SignedDuration::from_mins(1)
}

#[test]
fn a_lock_whose_pod_failed_or_succeeded_is_removed_and_the_next_backup_locks_at_once() {
    for phase in ["Failed", "Succeeded"] {
        let w = World::new();
        let pod = "pg-backup-1763805600-x7k2q";
        w.pod(NS, pod, phase);
        let theirs = w.lock_of(pod, fresh());
        let ours = w.backup(&w.executor(Duration::ZERO)).unwrap();
        assert_eq!(
            w.dir.lock_names(),
            vec![ours.id().to_hex()],
            "{phase}: {theirs} removed"
        );
        assert!(
            w.api
                .requests()
                .iter()
                .any(|r| r == &format!("GET /api/v1/namespaces/{NS}/pods/{pod}")),
            "{:?}",
            w.api.requests()
        );
    }
}

#[test]
fn a_lock_whose_pod_no_longer_exists_is_removed_once_it_stopped_being_refreshed() {
    let w = World::new();
    let theirs = w.lock_of("pg-backup-1763805600-x7k2q", unrefreshed());
    let ours = w.backup(&w.executor(Duration::ZERO)).unwrap();
    assert_eq!(w.dir.lock_names(), vec![ours.id().to_hex()], "{theirs} removed");
}

#[test]
fn a_fresh_lock_whose_pod_is_not_in_this_namespace_is_respected_and_judged_by_the_operator() {
    let w = World::new();
    // The operator (namespace kstash) wiping out a snapshot holds the repository exclusively.
    let operator = "kstash-operator-6d9f8b7c5-q2w4z";
    w.pod("kstash", operator, "Running");
    let theirs = w.lock_of(operator, fresh());
    let err = w.backup(&w.executor(Duration::ZERO)).unwrap_err();
    assert!(
        matches!(&err, Error::Locked { holder, .. } if holder.lock.hostname == operator),
        "{err}"
    );
    assert_eq!(w.dir.lock_names(), vec![theirs.clone()]);

    // The operator looks in every namespace: running, then ended.
    let everywhere = || w.judged(PodLiveness::new(&w.res, PodScope::AllNamespaces), Duration::ZERO);
    assert!(matches!(w.backup(&everywhere()), Err(Error::Locked { .. })));
    assert_eq!(w.dir.lock_names(), vec![theirs]);
    w.pod("kstash", operator, "Failed");
    let ours = w.backup(&everywhere()).unwrap();
    assert_eq!(w.dir.lock_names(), vec![ours.id().to_hex()]);
}

#[test]
fn a_lock_whose_pod_is_running_or_pending_is_respected() {
    for phase in ["Running", "Pending"] {
        let w = World::new();
        let pod = "pg-backup-1763805600-x7k2q";
        w.pod(NS, pod, phase);
        let theirs = w.lock_of(pod, unrefreshed());
        let err = w.backup(&w.executor(Duration::from_millis(100))).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "repository is already locked exclusively by PID 1 on host {pod} "
            )),
            "{phase}: {msg}"
        );
        assert!(msg.contains("still after waiting"), "{phase}: {msg}");
        assert_eq!(
            w.dir.lock_names(),
            vec![theirs],
            "{phase}: left alone, ours withdrawn"
        );
    }
}

#[test]
fn an_api_error_leaves_the_lock_alone() {
    let w = World::new();
    let pod = "pg-backup-1763805600-x7k2q";
    w.pod(NS, pod, "Failed");
    let theirs = w.lock_of(pod, unrefreshed());
    w.api.set_unavailable(true);
    let err = w.backup(&w.executor(Duration::ZERO)).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert_eq!(w.dir.lock_names(), vec![theirs]);
    // The error was the only reason: with the API back, the lock goes.
    w.api.set_unavailable(false);
    let ours = w.backup(&w.executor(Duration::ZERO)).unwrap();
    assert_eq!(w.dir.lock_names(), vec![ours.id().to_hex()]);
}
