//! The Kubernetes side of the binary: `kstash operator`, and `kstash exec`/`kstash trigger` when
//! they run in a pod the operator created (`KSTASH_RUNTIME=kubernetes`), with resources through
//! the Kubernetes API instead of the embedded store.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use kstash_api::client::ResourcesExt;
use kstash_api::core::BackupConfiguration;
use kstash_controller::backup_configuration;
use kstash_exec::{ExecOptions, LocalMode, StorageOpsImpl};
use kstash_kube::KubeResources;
use kstash_kube::leader::LeaseConfig;
use kstash_kube::lock_holders::{PodLiveness, PodScope};
use kstash_kube::operator::{self, OperatorConfig};
use kstash_kube::platform::{KubePlatform, KubeSettings};

use crate::cli::{ExecArgs, ExecJob, OperatorArgs, TriggerArgs};

/// Whether this process runs in a pod made by the operator.
pub fn in_cluster() -> bool {
    std::env::var(kstash_kube::build::RUNTIME_ENV).as_deref() == Ok("kubernetes")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn addr(text: &str, flag: &str) -> Result<Option<SocketAddr>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .with_context(|| format!("{flag} {text:?} is not an address like 0.0.0.0:8081"))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received; stopping"),
    }
}

/// `kstash operator`.
pub fn operator(a: OperatorArgs) -> Result<ExitCode> {
    let identity = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{}-{}", kstash_repo::host::hostname(), std::process::id()));
    let config = OperatorConfig {
        kubeconfig: a.kubeconfig.clone(),
        lease: a.leader_elect.then(|| LeaseConfig {
            namespace: a.lease_namespace.clone(),
            name: "kstash-operator".into(),
            identity,
            duration: Duration::from_secs(15),
        }),
        health_addr: addr(&a.health_addr, "--health-addr")?,
        metrics_addr: addr(&a.metrics_addr, "--metrics-addr")?,
        workers: a.workers,
        settings: KubeSettings {
            image: a.image.clone(),
            pushgateway: a.pushgateway.clone(),
        },
    };
    let rt = runtime()?;
    let (client, _url) = rt
        .block_on(operator::connect(a.kubeconfig.as_deref()))
        .map_err(|e| anyhow!(e))?;
    let res = KubeResources::new(client, rt.handle().clone());
    // Local (volume) storages are reached where the operator's pod mounts them. Snapshot
    // wipe-outs lock repositories; a conflicting lock whose pod (in any namespace: the operator
    // may list pods cluster-wide) has ended is removed instead of waited for.
    let storage = Arc::new(
        StorageOpsImpl::new(LocalMode::Mounted)
            .with_lock_liveness(PodLiveness::new(&res, PodScope::AllNamespaces).judge()),
    );
    // The dashboard reads and acts through the Kubernetes API, as the CLI does in a pod.
    let _dashboard = match &a.ui.ui_addr {
        Some(addr) if !addr.is_empty() => {
            let p = Arc::new(KubePlatform::new(res, storage.clone(), config.settings.clone()));
            let home = crate::ops::home_dir(None)?;
            let opts = ExecOptions {
                local_mode: LocalMode::Mounted,
                ..ExecOptions::embedded()
            };
            crate::dashboard::start(&a.ui, None, &home, p, None, opts)?
        }
        _ => None,
    };
    rt.block_on(operator::run(config, storage, terminated()))
        .map_err(|e| anyhow!(e))
        .context("kstash operator")?;
    // Reconciles in flight on blocking threads finish on their own; do not wait for watches.
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}

fn kube_resources(rt: &tokio::runtime::Runtime) -> Result<KubeResources> {
    let (client, _url) = rt.block_on(operator::connect(None)).map_err(|e| anyhow!(e))?;
    Ok(KubeResources::new(client, rt.handle().clone()))
}

/// `kstash exec backup|restore` inside an executor Job.
pub fn exec(a: ExecArgs) -> Result<ExitCode> {
    if let ExecJob::StreamDump(_) | ExecJob::StreamLoad(_) = &a.job {
        return crate::ops::exec(None, a);
    }
    let rt = runtime()?;
    let res = kube_resources(&rt)?;
    let component = std::env::var("KSTASH_COMPONENT").unwrap_or_else(|_| "dump".into());
    let opts = ExecOptions {
        local_mode: LocalMode::Mounted,
        hostname: component.clone(),
        deadline: None,
        component: (component != "dump").then(|| component.clone()),
        total_components: std::env::var("KSTASH_TOTAL_COMPONENTS")
            .ok()
            .and_then(|n| n.parse().ok()),
        progress_period: a.progress_period,
        // A conflicting lock whose pod (in this namespace) has ended is removed, not waited for.
        lock_liveness: Some(PodLiveness::own_namespace(&res).judge()),
    };
    let result = crate::ops::run_exec_job(&res, &a.job, &opts);
    match result {
        Ok(report) => {
            tracing::info!(%report, "executor finished");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(anyhow!(e)),
    }
}

/// `kstash trigger` in a trigger CronJob's pod: create the BackupSessions through the API.
pub fn trigger(a: TriggerArgs) -> Result<ExitCode> {
    if a.wait {
        bail!("--wait is not available in a Kubernetes pod; watch the BackupSession with kubectl instead");
    }
    let rt = runtime()?;
    let p = trigger_platform(&rt)?;
    let ns = a.namespace.as_str();
    let Some(bc) = active_configuration(&p, ns, &a.name, "no backup triggered")? else {
        return Ok(ExitCode::SUCCESS);
    };
    let sessions: Vec<String> = if a.sessions.is_empty() {
        bc.spec.sessions.iter().map(|s| s.name.clone()).collect()
    } else {
        a.sessions.clone()
    };
    for s in &sessions {
        let retry = backup_configuration::retry_budget(&bc, s);
        let bs = backup_configuration::trigger(&p, &bc, s, retry).map_err(|e| anyhow!(e))?;
        println!(
            "backupsession.core.kubestash.com/{} created",
            bs.metadata.name.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `kstash verify` in a `trigger-verifier-…` CronJob's pod: create the BackupVerificationSessions
/// through the API, with the verifier's retry budget.
pub fn verify(a: crate::cli::VerifyArgs) -> Result<ExitCode> {
    use kstash_api::verification::BackupVerifier;
    if a.wait {
        bail!(
            "--wait is not available in a Kubernetes pod; watch the BackupVerificationSession with kubectl instead"
        );
    }
    let rt = runtime()?;
    let p = trigger_platform(&rt)?;
    let ns = a.namespace.as_str();
    let Some(bc) = active_configuration(&p, ns, &a.name, "no verification started")? else {
        return Ok(ExitCode::SUCCESS);
    };
    for (session, repository) in crate::ops::verified_repositories(&bc, a.repository.as_deref())? {
        let retry = bc
            .spec
            .sessions
            .iter()
            .flat_map(|s| &s.repositories)
            .find(|r| r.name == repository)
            .and_then(|r| r.backup_verifier.as_ref())
            .and_then(|v| {
                p.get_as::<BackupVerifier>(v.namespace.as_deref().unwrap_or(ns), &v.name)
                    .ok()
                    .flatten()
            })
            .and_then(|v| v.spec.retry_config.and_then(|r| r.max_retry))
            .unwrap_or(0);
        let bvs =
            kstash_controller::verification_session::trigger(&p, ns, &a.name, &session, &repository, retry)
                .map_err(|e| anyhow!(e))?;
        println!(
            "backupverificationsession.core.kubestash.com/{} created",
            bvs.metadata.name.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The platform a trigger CronJob's pod acts through (it only creates sessions).
fn trigger_platform(rt: &tokio::runtime::Runtime) -> Result<KubePlatform> {
    Ok(KubePlatform::new(
        kube_resources(rt)?,
        Arc::new(StorageOpsImpl::new(LocalMode::Mounted)),
        KubeSettings {
            image: String::new(),
            pushgateway: None,
        },
    ))
}

/// The BackupConfiguration a trigger acts on; `None` (and a note saying `what` did not happen)
/// while it is paused.
fn active_configuration(
    p: &KubePlatform,
    ns: &str,
    name: &str,
    what: &str,
) -> Result<Option<BackupConfiguration>> {
    let bc: BackupConfiguration = p
        .get_as(ns, name)
        .map_err(|e| anyhow!(e))?
        .with_context(|| format!("BackupConfiguration {ns}/{name} not found"))?;
    if bc.spec.paused {
        eprintln!("BackupConfiguration {ns}/{name} is paused; {what}");
        return Ok(None);
    }
    Ok(Some(bc))
}
