//! The operator loop: connect (kubeconfig or in-cluster), check the API and the CRDs with clear
//! errors, elect a leader through a Lease, watch every reconciled kind and the executor Jobs
//! (kube-rs watchers with their default backoff), and run the shared reconcilers one at a time
//! from a de-duplicating delay queue, resyncing every 10 s. Serves `/healthz`, `/readyz` and
//! `/metrics`, and stops cleanly when the shutdown future resolves (SIGTERM in the binary).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kstash_api::meta::ResourceType;
use kstash_controller::dispatch::{self, Key, RECONCILED, Wake};
use kstash_controller::metrics::{StateObjects, state_metrics};
use kstash_controller::platform::StorageOps;
use kstash_controller::{ReconcileError, Requeue, WorkQueue};
use kube::api::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cache::{ObjectCache, kind_key};
use crate::error::{KubeError, Result};
use crate::leader::{self, Election, LeaseConfig};
use crate::platform::{KubePlatform, KubeSettings};
use crate::resources::{KubeResources, api_resource, builtin};

/// How often every object is reconciled even without changes (KubeStash requeues every 10 s).
pub const RESYNC: Duration = Duration::from_secs(10);

/// What the operator is started with.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// A kubeconfig file; `None`: `KUBECONFIG`, `~/.kube/config`, or the in-cluster ServiceAccount.
    pub kubeconfig: Option<PathBuf>,
    /// The Lease to hold; `None` disables leader election (one replica only!).
    pub lease: Option<LeaseConfig>,
    /// Where `/healthz` and `/readyz` are served (`None`: not served).
    pub health_addr: Option<SocketAddr>,
    /// Where `/metrics` is served (`None`: not served).
    pub metrics_addr: Option<SocketAddr>,
    /// Reconcile workers (one object at a time each).
    pub workers: usize,
    pub settings: KubeSettings,
}

/// A client from the kubeconfig (or the environment), and the API server URL for messages.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<(kube::Client, String)> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| KubeError::Config(format!("kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| KubeError::Config(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => kube::Config::infer().await.map_err(|e| {
            KubeError::Config(format!(
                "{e} (set --kubeconfig or KUBECONFIG, or run in a pod with a ServiceAccount)"
            ))
        })?,
    };
    config.connect_timeout = Some(Duration::from_secs(5));
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| KubeError::Config(e.to_string()))?;
    Ok((client, url))
}

/// The CustomResourceDefinitions kstash needs (`<plural>.<group>` of every kind it serves).
pub fn required_crds() -> Vec<String> {
    kstash_api::meta::ALL
        .iter()
        .filter(|rt| rt.group.ends_with(".kubestash.com") || rt.group == kstash_api::meta::APPCATALOG_GROUP)
        .map(|rt| rt.qualified_plural())
        .collect()
}

/// Check that the API answers and every required CRD is installed.
pub async fn check_api(client: &kube::Client, url: &str) -> Result<()> {
    let version = tokio::time::timeout(Duration::from_secs(15), client.apiserver_version())
        .await
        .map_err(|_| KubeError::Unreachable {
            url: url.to_string(),
            message: "no answer within 15 s".into(),
        })?
        .map_err(|e| KubeError::Unreachable {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    tracing::info!(server = %url, version = %version.git_version, "connected to the Kubernetes API");
    let crds = kube::Api::<kube::api::DynamicObject>::all_with(
        client.clone(),
        &builtin(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    );
    let mut missing = Vec::new();
    for name in required_crds() {
        match crds.get_opt(&name).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(name),
            Err(e) => {
                return Err(KubeError::Api {
                    object: format!("CustomResourceDefinition {name}"),
                    message: e.to_string(),
                });
            }
        }
    }
    if !missing.is_empty() {
        return Err(KubeError::CrdMissing { names: missing });
    }
    Ok(())
}

/// The reconciles a watched object wakes: the dispatcher's for kstash kinds, the owning session
/// (at once) for an executor Job.
pub fn wakes_for(obj: &Value) -> Vec<Wake> {
    if obj.pointer("/kind").and_then(Value::as_str) == Some("Job") {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        return obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| {
                let kind = match o["kind"].as_str()? {
                    "BackupSession" => "BackupSession",
                    "RestoreSession" => "RestoreSession",
                    _ => return None,
                };
                Some(Wake {
                    key: Key {
                        kind,
                        namespace: ns.to_string(),
                        name: o["name"].as_str()?.to_string(),
                    },
                    after: std::time::Duration::ZERO,
                })
            })
            .collect();
    }
    dispatch::wakes_for_change(obj)
}

/// Watch `ar` across namespaces (only objects with `labels`), keeping every object in `cache`
/// (when given) before sending the keys of every change, so the reconciles they wake read it.
fn spawn_watch(
    client: kube::Client,
    ar: ApiResource,
    labels: Option<String>,
    cache: Option<Arc<ObjectCache>>,
    tx: mpsc::UnboundedSender<Wake>,
) {
    tokio::spawn(async move {
        let api = kube::Api::<kube::api::DynamicObject>::all_with(client, &ar);
        let mut cfg = watcher::Config::default();
        if let Some(l) = &labels {
            cfg = cfg.labels(l);
        }
        let kind = kind_key(&ar.group, &ar.kind);
        let mut stream = watcher(api, cfg).default_backoff().boxed();
        while let Some(ev) = stream.next().await {
            let (o, deleted) = match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
                Ok(watcher::Event::Delete(o)) => (o, true),
                Ok(watcher::Event::Init) => {
                    if let Some(c) = &cache {
                        c.list_started(&kind);
                    }
                    continue;
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(c) = &cache {
                        c.list_done(&kind);
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(kind = %ar.kind, error = %e, "watch failed; retrying with backoff");
                    continue;
                }
            };
            let Ok(mut v) = serde_json::to_value(&o) else {
                continue;
            };
            if let Some(map) = v.as_object_mut() {
                map.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
                map.insert("kind".into(), Value::String(ar.kind.clone()));
            }
            let wakes = wakes_for(&v);
            if let Some(c) = &cache {
                if deleted {
                    c.delete(&kind, &v);
                } else {
                    c.apply(&kind, v);
                }
            }
            for wake in wakes {
                if tx.send(wake).is_err() {
                    return;
                }
            }
        }
    });
}

/// One reconcile as the operator runs it: the webhook defaults first (kstash installs no
/// admission webhook), then the shared reconciler.
pub fn reconcile(p: &KubePlatform, key: &Key) -> std::result::Result<Requeue, ReconcileError> {
    crate::defaulting::apply_defaults(p, key)?;
    dispatch::reconcile(p, key)
}

/// The objects of the reconciled kinds the periodic resync queues, as keys (from the read cache
/// once the watches have listed them, else from the API server): all but the settled
/// sessions ([`dispatch::settled_phases`], as the embedded daemon's resync). Anything that changes
/// a settled session (an edit, its deletion, one of its Snapshots) still wakes it through the
/// watches; at hundreds of sessions a minute, re-reading every finished one every resync kept
/// the workers from the new ones (`bench/operator-scale`).
fn resync_keys(p: &KubePlatform, cache: &ObjectCache) -> Vec<Key> {
    let mut out = Vec::new();
    for rt in RECONCILED {
        let from_cache = cache.for_each(&kind_key(rt.group, rt.kind), |o| {
            out.extend(resync_key(rt, o));
        });
        if from_cache {
            continue;
        }
        match kstash_api::client::Resources::list(p, rt, None, &[]) {
            Ok(objs) => out.extend(objs.iter().filter_map(|o| resync_key(rt, o))),
            Err(e) => tracing::warn!(kind = rt.kind, error = %e, "resync list failed"),
        }
    }
    out
}

/// `obj`'s key when the resync should queue it; `None` for a settled session.
fn resync_key(rt: &ResourceType, obj: &Value) -> Option<Key> {
    let phase = obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    (!dispatch::settled_phases(rt).contains(&phase)).then(|| Key::of(rt.kind, obj))
}

async fn serve(addr: SocketAddr, router: axum::Router) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| KubeError::Other(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| KubeError::Other(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "HTTP endpoint stopped");
        }
    });
    Ok(bound)
}

/// Run the operator until `shutdown` resolves. Returns an error when the API or the CRDs are
/// missing at start, or when this replica loses its Lease (the process should exit and restart).
pub async fn run(
    config: OperatorConfig,
    storage: Arc<dyn StorageOps>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(addr) = config.health_addr {
        let r = ready.clone();
        let router = axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route(
                "/readyz",
                axum::routing::get(move || {
                    let r = r.clone();
                    async move {
                        if r.load(Ordering::SeqCst) {
                            (axum::http::StatusCode::OK, "ready")
                        } else {
                            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting")
                        }
                    }
                }),
            );
        let bound = serve(addr, router).await?;
        tracing::info!(addr = %bound, "health endpoints /healthz /readyz");
    }
    let (client, url) = connect(config.kubeconfig.as_deref()).await?;
    tokio::select! {
        r = check_api(&client, &url) => r?,
        () = &mut shutdown => return Ok(()),
    }
    let cache = Arc::new(ObjectCache::new());
    let res = KubeResources::new(client.clone(), tokio::runtime::Handle::current()).with_cache(cache.clone());
    let platform = Arc::new(KubePlatform::new(res, storage, config.settings.clone()));
    ready.store(true, Ordering::SeqCst);
    if let Some(addr) = config.metrics_addr {
        let p = platform.clone();
        let router = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let p = p.clone();
                async move {
                    match tokio::task::spawn_blocking(move || {
                        StateObjects::collect(&*p)
                            .map(|o| state_metrics(&o))
                            .map_err(|e| e.to_string())
                    })
                    .await
                    {
                        Ok(Ok(body)) => (axum::http::StatusCode::OK, body),
                        Ok(Err(e)) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e),
                        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                    }
                }
            }),
        );
        let bound = serve(addr, router).await?;
        tracing::info!(addr = %bound, "metrics endpoint /metrics");
    }

    // Leader election: wait for the Lease before acting.
    if let Some(lease) = &config.lease {
        loop {
            match leader::try_acquire(&client, lease).await {
                Ok(Election::Leader) => {
                    tracing::info!(lease = %format!("{}/{}", lease.namespace, lease.name), identity = %lease.identity, "became the leader");
                    break;
                }
                Ok(Election::Follower { holder }) => {
                    tracing::info!(%holder, "waiting for the leader's Lease to expire");
                }
                Err(e) => tracing::warn!(error = %e, "leader election failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(lease.renew_every()) => {}
                () = &mut shutdown => return Ok(()),
            }
        }
    }

    let (tx, mut rx) = mpsc::unbounded_channel::<Wake>();
    for rt in RECONCILED {
        spawn_watch(
            client.clone(),
            api_resource(rt),
            None,
            Some(cache.clone()),
            tx.clone(),
        );
    }
    spawn_watch(
        client.clone(),
        builtin("batch/v1", "Job", "jobs"),
        Some(format!(
            "{}={}",
            crate::build::LABEL_MANAGED_BY,
            crate::build::MANAGED_BY
        )),
        None,
        tx.clone(),
    );

    let mut resync = tokio::time::interval(RESYNC);
    // The shared work queue: watches and the resync feed it from this task; the workers run the
    // blocking reconcilers on their own threads, one object at a time each.
    let queue = Arc::new(WorkQueue::new());
    // Renew the Lease on its own task, so a long reconcile cannot let it lapse unnoticed; losing
    // it ends the loop before the next reconcile starts.
    let (lost_tx, mut lost_rx) = tokio::sync::watch::channel::<Option<String>>(None);
    if let Some(lease) = config.lease.clone() {
        let client = client.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease.renew_every());
            tick.tick().await;
            let mut last_ok = Instant::now();
            loop {
                tick.tick().await;
                match leader::try_acquire(&client, &lease).await {
                    Ok(Election::Leader) => last_ok = Instant::now(),
                    Ok(Election::Follower { holder }) => {
                        queue.shut_down();
                        let _ = lost_tx.send(Some(format!(
                            "lost the Lease {}/{} to {holder}",
                            lease.namespace, lease.name
                        )));
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew the Lease; retrying");
                        if last_ok.elapsed() >= lease.duration {
                            queue.shut_down();
                            let _ = lost_tx.send(Some(format!(
                                "could not renew the Lease {}/{} for {:?}: {e}",
                                lease.namespace, lease.name, lease.duration
                            )));
                            return;
                        }
                    }
                }
            }
        });
    }
    let workers = {
        let (queue, p) = (queue.clone(), platform.clone());
        let n = config.workers;
        tokio::task::spawn_blocking(move || queue.run_workers(n, |key| reconcile(&p, key)))
    };
    tracing::info!(workers = config.workers, "operator loop started");
    let outcome = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            Some(wake) = rx.recv() => queue.add_after(wake.key, wake.after),
            _ = resync.tick() => {
                let (p, c) = (platform.clone(), cache.clone());
                if let Ok(keys) = tokio::task::spawn_blocking(move || resync_keys(&p, &c)).await {
                    for k in keys {
                        queue.add_if_absent(k);
                    }
                }
            }
            Ok(()) = lost_rx.changed() => {
                let why = lost_rx.borrow().clone().unwrap_or_default();
                break Err(KubeError::Other(format!("{why}; exiting so a restart rejoins the election")));
            }
        }
    };
    // No reconcile starts after this; the ones running finish first.
    queue.shut_down();
    let _ = workers.await;
    if let Some(lease) = &config.lease
        && let Err(e) = leader::release(&client, lease).await
    {
        tracing::warn!(error = %e, "cannot release the Lease");
    }
    tracing::info!("operator stopped");
    outcome
}

#[cfg(test)]
mod tests {
    use kstash_api::meta;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_resync_leaves_settled_sessions_out() {
        let cases: &[(&ResourceType, &str, bool)] = &[
            (&meta::BACKUP_SESSION, "", true),
            (&meta::BACKUP_SESSION, "Running", true),
            (&meta::BACKUP_SESSION, "Succeeded", false),
            (&meta::BACKUP_SESSION, "Failed", false),
            (&meta::BACKUP_SESSION, "Skipped", false),
            (&meta::BACKUP_VERIFICATION_SESSION, "Succeeded", false),
            (&meta::RESTORE_SESSION, "Succeeded", true),
            (&meta::BACKUP_CONFIGURATION, "Ready", true),
            (&meta::SNAPSHOT, "Succeeded", true),
        ];
        for &(rt, phase, queued) in cases {
            let obj = json!({"metadata": {"name": "x", "namespace": "ns"}, "status": {"phase": phase}});
            assert_eq!(
                resync_key(rt, &obj).is_some(),
                queued,
                "{} in phase {phase:?}",
                rt.kind
            );
        }
    }
}
