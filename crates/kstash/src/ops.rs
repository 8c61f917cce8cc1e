//! Lifecycle commands of the CLI: `server` (the embedded daemon), `exec` (executor jobs),
//! `trigger` (with a foreground run when no daemon is up, and `--wait`), `pause`/`resume`, `logs`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use kstash_api::client::ResourcesExt;
use kstash_api::core::{BackupConfiguration, BackupInvokerPhase, BackupSession, BackupSessionPhase};
use kstash_api::phase;
use kstash_controller::backup_configuration;
use kstash_embedded::platform::EmbeddedPlatform;
use kstash_embedded::server::{self, ServerLock, StopWhen};
use kstash_embedded::{Store, runner};
use kstash_exec::{ExecOptions, LocalMode, StorageOpsImpl};

use crate::cli::{BcArgs, ExecArgs, ExecJob, LogsArgs, ServerArgs, TriggerArgs};

/// The addon catalog shipped with kstash, installed into the store by `kstash server`.
pub const CATALOG: &[(&str, &str)] = &[
    (
        "catalog/workload-addon.yaml",
        include_str!("../../../catalog/workload-addon.yaml"),
    ),
    (
        "catalog/pvc-addon.yaml",
        include_str!("../../../catalog/pvc-addon.yaml"),
    ),
    (
        "catalog/postgres-addon.yaml",
        include_str!("../../../catalog/postgres-addon.yaml"),
    ),
    (
        "catalog/mysql-addon.yaml",
        include_str!("../../../catalog/mysql-addon.yaml"),
    ),
    (
        "catalog/mariadb-addon.yaml",
        include_str!("../../../catalog/mariadb-addon.yaml"),
    ),
    (
        "catalog/redis-addon.yaml",
        include_str!("../../../catalog/redis-addon.yaml"),
    ),
    (
        "catalog/zookeeper-addon.yaml",
        include_str!("../../../catalog/zookeeper-addon.yaml"),
    ),
    (
        "catalog/elasticsearch-addon.yaml",
        include_str!("../../../catalog/elasticsearch-addon.yaml"),
    ),
    (
        "catalog/kubedump-addon.yaml",
        include_str!("../../../catalog/kubedump-addon.yaml"),
    ),
];

/// Where `kstash server` serves its dashboard unless `--ui-addr` says otherwise.
pub const DEFAULT_UI_ADDR: &str = "127.0.0.1:9465";

/// The data directory: `--home`, `$KSTASH_HOME`, or `~/.local/share/kstash`.
pub fn home_dir(home: Option<&Path>) -> Result<PathBuf> {
    match home {
        Some(h) => Ok(h.to_path_buf()),
        None => {
            let db = Store::default_path()?;
            Ok(db.parent().map(Path::to_path_buf).unwrap_or_default())
        }
    }
}

fn platform(home: &Path, store: Arc<Store>, pushgateway: Option<String>) -> Result<EmbeddedPlatform> {
    let program = std::env::current_exe().context("locating the kstash binary for executor jobs")?;
    let storage = Arc::new(StorageOpsImpl::new(LocalMode::Host));
    Ok(EmbeddedPlatform::new(
        store,
        home.to_path_buf(),
        program,
        storage,
        pushgateway,
    ))
}

/// `kstash server`.
pub fn server(home: Option<&Path>, a: ServerArgs) -> Result<ExitCode> {
    let home = home_dir(home)?;
    let lock = ServerLock::acquire(&home).map_err(|e| anyhow!(e))?;
    let store = Arc::new(crate::resources::open_store(Some(&home))?);
    if !a.no_catalog {
        let n = server::install_catalog(&store, CATALOG).map_err(|e| anyhow!(e))?;
        tracing::info!(objects = n, "addon catalog installed");
    }
    let p = Arc::new(
        platform(&home, store.clone(), a.pushgateway.clone())?
            .with_max_executors(a.max_executors)
            .with_reconcile_workers(a.workers),
    );
    if !a.metrics_addr.is_empty() {
        let addr = kstash_embedded::http::serve(store, &a.metrics_addr).map_err(|e| anyhow!(e))?;
        eprintln!("kstash server: metrics at http://{addr}/metrics");
    }
    // Kept until the server stops: dropping it stops the dashboard.
    let _dashboard = crate::dashboard::start(
        &a.ui,
        Some(DEFAULT_UI_ADDR),
        &home,
        p.clone(),
        Some(home.join("jobs")),
        ExecOptions::embedded(),
    )?;
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, shutdown.clone()).context("installing the signal handler")?;
    }
    eprintln!(
        "kstash server: running on {} (pid {}, lock {})",
        home.display(),
        std::process::id(),
        lock.path().display()
    );
    server::run(&p, &shutdown, StopWhen::Never)?;
    eprintln!("kstash server: stopped (running executors finish on their own; a restart picks them up)");
    Ok(ExitCode::SUCCESS)
}

/// Run a backup or restore job against `client` (the embedded store, or the Kubernetes API in an
/// operator-made pod); the report as text.
pub fn run_exec_job(
    client: &dyn kstash_api::client::Resources,
    job: &ExecJob,
    opts: &ExecOptions,
) -> kstash_exec::Result<String> {
    match job {
        ExecJob::Backup {
            namespace,
            backupsession,
        } => kstash_exec::run_backup(client, namespace, backupsession, opts).map(|r| format!("{r:?}")),
        ExecJob::Restore {
            namespace,
            restoresession,
            snapshot,
        } => kstash_exec::run_restore(client, namespace, restoresession, snapshot, opts)
            .map(|r| format!("{r:?}")),
        ExecJob::Verify {
            namespace,
            backupverificationsession,
        } => kstash_exec::run_verify(client, namespace, backupverificationsession, opts)
            .map(|r| format!("{r:?}")),
        ExecJob::StashBackup {
            namespace,
            backupsession,
        } => kstash_exec::run_stash_backup(client, namespace, backupsession, opts).map(|r| format!("{r:?}")),
        ExecJob::StashRestore {
            namespace,
            restoresession,
        } => {
            kstash_exec::run_stash_restore(client, namespace, restoresession, opts).map(|r| format!("{r:?}"))
        }
        ExecJob::StreamDump(_) | ExecJob::StreamLoad(_) => unreachable!("stream jobs need no resources"),
    }
}

/// `kstash exec backup|restore`: run one executor job and record its exit for the runner.
pub fn exec(home: Option<&Path>, a: ExecArgs) -> Result<ExitCode> {
    if let ExecJob::StreamDump(s) | ExecJob::StreamLoad(s) = &a.job {
        return stream_job(matches!(a.job, ExecJob::StreamDump(_)), s);
    }
    let store = crate::resources::open_store(home)?;
    let opts = ExecOptions {
        progress_period: a.progress_period,
        ..ExecOptions::embedded()
    };
    let result = run_exec_job(&store, &a.job, &opts);
    let (code, message) = match &result {
        Ok(_) => (0, String::new()),
        Err(e) => (1, e.to_string()),
    };
    if let Some(path) = std::env::var_os(runner::JOB_RESULT_ENV) {
        let body = serde_json::json!({"exitCode": code, "message": message});
        let path = PathBuf::from(path);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body.to_string())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing the job result {}", path.display()))?;
    }
    match result {
        Ok(report) => {
            tracing::info!(report, "executor finished");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `kstash exec stream-dump|stream-load`: a stream driver between stdio and a target.
fn stream_job(dump: bool, s: &crate::cli::StreamArgs) -> Result<ExitCode> {
    let mut params = std::collections::BTreeMap::new();
    for p in &s.params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--param {p:?} is not name=value"))?;
        params.insert(k.to_string(), v.to_string());
    }
    let target = kstash_exec::DirectTarget {
        url: s.url.clone(),
        user: std::env::var("KSTASH_TARGET_USER").unwrap_or_default(),
        password: std::env::var("KSTASH_TARGET_PASSWORD").unwrap_or_default(),
        ca_bundle: match &s.ca_file {
            Some(f) => Some(
                std::fs::read_to_string(f).with_context(|| format!("reading --ca-file {}", f.display()))?,
            ),
            None => None,
        },
    };
    let started = std::time::Instant::now();
    let bytes = if dump {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        kstash_exec::dump_stream(&s.function, &target, &params, &mut out)?
    } else {
        kstash_exec::load_stream(&s.function, &target, &params, &mut std::io::stdin().lock())?
    };
    tracing::info!(bytes, seconds = started.elapsed().as_secs_f64(), "stream done");
    Ok(ExitCode::SUCCESS)
}

fn session_phase(store: &Store, ns: &str, name: &str) -> Option<BackupSessionPhase> {
    store
        .get_as::<BackupSession>(ns, name)
        .ok()
        .flatten()
        .and_then(|s| s.status.and_then(|st| st.phase))
}

fn all_done(store: &Store, ns: &str, names: &[String]) -> bool {
    names
        .iter()
        .all(|n| session_phase(store, ns, n).is_some_and(phase::backup_session_completed))
}

/// `kstash trigger`.
pub fn trigger(home: Option<&Path>, a: TriggerArgs) -> Result<ExitCode> {
    let home = home_dir(home)?;
    let store = Arc::new(crate::resources::open_store(Some(&home))?);
    let ns = a.namespace.as_str();
    let bc: BackupConfiguration = store.get_as(ns, &a.name)?.with_context(|| {
        format!(
            "BackupConfiguration {ns}/{} not found (kstash get bc -n {ns})",
            a.name
        )
    })?;
    let sessions: Vec<String> = if a.sessions.is_empty() {
        bc.spec.sessions.iter().map(|s| s.name.clone()).collect()
    } else {
        a.sessions.clone()
    };
    for s in &sessions {
        kstash_api::resolve::session_entry(&bc, s)?;
    }
    let p = platform(&home, store.clone(), std::env::var("KSTASH_PUSHGATEWAY").ok())?;
    let daemon = server::server_running(&home);
    let mut created: Vec<String> = Vec::new();
    let foreground_lock = if daemon.is_none() {
        eprintln!(
            "no kstash server is running on {}; running the backup in the foreground",
            home.display()
        );
        let lock = ServerLock::acquire(&home).map_err(|e| anyhow!(e))?;
        server::install_catalog(&store, CATALOG).map_err(|e| anyhow!(e))?;
        // Bring the configuration to Ready first (a fresh one starts its instant backup then).
        let before: Vec<String> = list_sessions(&store, ns, &a.name);
        let shutdown = AtomicBool::new(false);
        let deadline = Instant::now() + Duration::from_secs(120);
        // Ready, with the Repositories of the chosen sessions initialised (or Invalid).
        let ready = |p: &EmbeddedPlatform| {
            let Some(b) = p.store.get_as::<BackupConfiguration>(ns, &a.name).ok().flatten() else {
                return true;
            };
            let st = b.status.clone().unwrap_or_default();
            let repos_ready = b
                .spec
                .sessions
                .iter()
                .filter(|s| sessions.contains(&s.name))
                .flat_map(|s| s.repositories.iter())
                .all(|r| {
                    st.repositories.iter().any(|x| {
                        x.name == r.name && x.phase == Some(kstash_api::storage::RepositoryPhase::Ready)
                    })
                });
            Instant::now() > deadline
                || st.phase == Some(BackupInvokerPhase::Invalid)
                || (st.phase == Some(BackupInvokerPhase::Ready) && repos_ready)
        };
        server::run(&p, &shutdown, StopWhen::Done(&ready))?;
        let bc: BackupConfiguration = store.must_get(ns, &a.name)?;
        let status = bc.status.clone().unwrap_or_default();
        if status.phase != Some(BackupInvokerPhase::Ready) {
            bail!(
                "BackupConfiguration {ns}/{} is not Ready ({}): {}",
                a.name,
                status
                    .phase
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "no phase".into()),
                kstash_controller::backup_session::not_ready_reason(&status)
            );
        }
        // Adopt the instant first backup if this run started it.
        for s in list_sessions(&store, ns, &a.name) {
            if !before.contains(&s) {
                let sess = store.must_get::<BackupSession>(ns, &s)?;
                if sessions.contains(&sess.spec.session) {
                    created.push(s);
                }
            }
        }
        Some(lock)
    } else {
        None
    };
    for s in &sessions {
        let adopted = created.iter().any(|c| {
            store
                .get_as::<BackupSession>(ns, c)
                .ok()
                .flatten()
                .is_some_and(|b| &b.spec.session == s)
        });
        if adopted {
            continue;
        }
        created.extend(start_backups(&p, &bc, std::slice::from_ref(s))?);
    }
    for c in &created {
        outln!("backupsession.core.kubestash.com/{c} created");
    }
    if foreground_lock.is_some() {
        let shutdown = AtomicBool::new(false);
        let watcher = PhaseWatcher::new(ns, &created);
        // Also let retention finish: Snapshots it deleted are wiped out by their finalizers.
        let cleanup_deadline = std::cell::Cell::new(None::<Instant>);
        let done = |p: &EmbeddedPlatform| {
            watcher.report(&p.store);
            if !all_done(&p.store, ns, &created) {
                return false;
            }
            let deadline = *cleanup_deadline
                .get()
                .get_or_insert(Instant::now() + Duration::from_secs(120));
            cleanup_deadline.set(Some(deadline));
            let pending = p
                .store
                .list_as::<kstash_api::storage::Snapshot>(Some(ns), &[])
                .map(|v| v.iter().any(|s| s.metadata.deletion_timestamp.is_some()))
                .unwrap_or(false);
            !pending || Instant::now() > deadline
        };
        server::run(&p, &shutdown, StopWhen::Done(&done))?;
    } else if a.wait {
        let watcher = PhaseWatcher::new(ns, &created);
        while !all_done(&store, ns, &created) {
            watcher.report(&store);
            std::thread::sleep(Duration::from_millis(300));
        }
        watcher.report(&store);
    } else {
        return Ok(ExitCode::SUCCESS);
    }
    let mut ok = true;
    for c in &created {
        let s = store.must_get::<BackupSession>(ns, c)?;
        let st = s.status.unwrap_or_default();
        let ph = st.phase.map(|p| format!("{p:?}")).unwrap_or_default();
        let why = phase::backup_session_failure(&st).unwrap_or_default();
        if st.phase != Some(BackupSessionPhase::Succeeded) {
            ok = false;
            outln!("{c}: {ph} ({}) {why}", st.duration);
        } else {
            outln!("{c}: {ph} in {}", st.duration);
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Start a backup now: one BackupSession per session in `sessions` (every session when empty),
/// with no retries, as `kstash trigger` does; the names created. Shared by the CLI and the
/// dashboard, so a backup started from either is the same resource operation.
pub fn start_backups(
    p: &dyn kstash_controller::platform::Platform,
    bc: &BackupConfiguration,
    sessions: &[String],
) -> Result<Vec<String>> {
    let all: Vec<String> = bc.spec.sessions.iter().map(|s| s.name.clone()).collect();
    let chosen = if sessions.is_empty() { &all[..] } else { sessions };
    let mut created = Vec::new();
    for s in chosen {
        kstash_api::resolve::session_entry(bc, s)?;
        let bs = backup_configuration::trigger(p, bc, s, 0)?;
        created.push(bs.metadata.name.unwrap_or_default());
    }
    Ok(created)
}

fn list_sessions(store: &Store, ns: &str, bc: &str) -> Vec<String> {
    store
        .list_as::<BackupSession>(Some(ns), &[(kstash_controller::util::LABEL_INVOKER_NAME, bc)])
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect()
}

/// Progress of sessions: a spinner on a terminal, one line per phase change otherwise.
struct PhaseWatcher {
    ns: String,
    names: Vec<String>,
    bar: indicatif::ProgressBar,
    last: std::cell::RefCell<Vec<Option<BackupSessionPhase>>>,
}

impl PhaseWatcher {
    fn new(ns: &str, names: &[String]) -> Self {
        let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(Duration::from_millis(120));
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        PhaseWatcher {
            ns: ns.to_string(),
            names: names.to_vec(),
            bar,
            last: std::cell::RefCell::new(vec![None; names.len()]),
        }
    }

    fn report(&self, store: &Store) {
        let mut last = self.last.borrow_mut();
        let mut parts = Vec::new();
        for (i, n) in self.names.iter().enumerate() {
            let ph = session_phase(store, &self.ns, n);
            parts.push(format!(
                "{n}: {}",
                ph.map(|p| format!("{p:?}")).unwrap_or_else(|| "Pending".into())
            ));
            if ph != last[i] {
                last[i] = ph;
                if self.bar.is_hidden()
                    && let Some(ph) = ph
                {
                    eprintln!("{n}: {ph:?}");
                }
            }
        }
        self.bar.set_message(parts.join("  "));
        if all_done(store, &self.ns, &self.names) {
            self.bar.finish_and_clear();
        }
    }
}

/// `kstash pause` / `kstash resume`.
pub fn set_paused(home: Option<&Path>, a: BcArgs, paused: bool) -> Result<ExitCode> {
    let store = crate::resources::open_store(home)?;
    patch_paused(&store, &a.namespace, &a.name, paused)?;
    outln!(
        "backupconfiguration.core.kubestash.com/{} {}",
        a.name,
        if paused { "paused" } else { "resumed" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Set `spec.paused` of a BackupConfiguration (retried on conflicts). Shared by `kstash
/// pause`/`resume` and the dashboard.
pub fn patch_paused(
    res: &dyn kstash_api::client::Resources,
    ns: &str,
    name: &str,
    paused: bool,
) -> Result<()> {
    for _ in 0..10 {
        let mut bc: BackupConfiguration = res
            .get_as(ns, name)?
            .with_context(|| format!("BackupConfiguration {ns}/{name} not found"))?;
        bc.spec.paused = paused;
        match res.update_as(&bc) {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("BackupConfiguration {ns}/{name} kept changing; try again")
}

/// `kstash logs`.
pub fn logs(home: Option<&Path>, a: LogsArgs) -> Result<ExitCode> {
    let home = home_dir(home)?;
    let jobs = home.join("jobs").join(&a.namespace);
    let candidates = [
        jobs.join(&a.name).join("log"),
        jobs.join(format!("restore-{}", a.name)).join("log"),
    ];
    for c in &candidates {
        if let Ok(text) = std::fs::read_to_string(c) {
            out!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
    }
    bail!(
        "no executor log for session {}/{} under {} (logs are removed with the session when the history limit drops it)",
        a.namespace,
        a.name,
        jobs.display()
    )
}

/// The repositories of `bc` that name a BackupVerifier, as (session, repository); only `only`
/// when given (an error naming the choices when it has no verifier).
pub fn verified_repositories(bc: &BackupConfiguration, only: Option<&str>) -> Result<Vec<(String, String)>> {
    let all: Vec<(String, String)> = bc
        .spec
        .sessions
        .iter()
        .flat_map(|s| {
            s.repositories
                .iter()
                .filter(|r| r.backup_verifier.as_ref().is_some_and(|v| !v.name.is_empty()))
                .map(|r| (s.name.clone(), r.name.clone()))
        })
        .collect();
    let ns = bc.metadata.namespace.as_deref().unwrap_or("default");
    let name = bc.metadata.name.as_deref().unwrap_or("");
    if all.is_empty() {
        bail!(
            "BackupConfiguration {ns}/{name} has no repository with a backupVerifier; fix: add `backupVerifier: {{name: …}}` to a repository in spec.sessions[].repositories[] (see docs/verification.md)"
        );
    }
    match only {
        None => Ok(all),
        Some(r) => {
            let chosen: Vec<_> = all.iter().filter(|(_, repo)| repo == r).cloned().collect();
            if chosen.is_empty() {
                bail!(
                    "repository {r} of BackupConfiguration {ns}/{name} has no backupVerifier; repositories with one: {}",
                    all.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
            Ok(chosen)
        }
    }
}

/// `kstash verify`: one BackupVerificationSession per verified repository; without a running
/// daemon the verification runs in the foreground (as `trigger` does).
pub fn verify(home: Option<&Path>, a: crate::cli::VerifyArgs) -> Result<ExitCode> {
    use kstash_api::verification::{BackupVerificationSession, BackupVerificationSessionPhase};
    use kstash_controller::verification_session;
    let home = home_dir(home)?;
    let store = Arc::new(crate::resources::open_store(Some(&home))?);
    let ns = a.namespace.as_str();
    let bc: BackupConfiguration = store.get_as(ns, &a.name)?.with_context(|| {
        format!(
            "BackupConfiguration {ns}/{} not found (kstash get bc -n {ns})",
            a.name
        )
    })?;
    let targets = verified_repositories(&bc, a.repository.as_deref())?;
    let p = platform(&home, store.clone(), std::env::var("KSTASH_PUSHGATEWAY").ok())?;
    let foreground = if server::server_running(&home).is_none() {
        eprintln!(
            "no kstash server is running on {}; running the verification in the foreground",
            home.display()
        );
        let lock = ServerLock::acquire(&home).map_err(|e| anyhow!(e))?;
        server::install_catalog(&store, CATALOG).map_err(|e| anyhow!(e))?;
        Some(lock)
    } else {
        None
    };
    let mut created = Vec::new();
    for (session, repository) in &targets {
        let bvs = verification_session::trigger(&p, ns, &a.name, session, repository, 0)?;
        let name = bvs.metadata.name.unwrap_or_default();
        outln!("backupverificationsession.core.kubestash.com/{name} created");
        created.push(name);
    }
    let phase_of = |store: &Store, n: &str| {
        store
            .get_as::<BackupVerificationSession>(ns, n)
            .ok()
            .flatten()
            .and_then(|s| s.status)
            .and_then(|s| s.phase)
    };
    let done = |store: &Store| {
        created
            .iter()
            .all(|n| phase_of(store, n).is_some_and(|p| p.is_final()))
    };
    if foreground.is_some() {
        let shutdown = AtomicBool::new(false);
        let stop = |p: &EmbeddedPlatform| done(&p.store);
        server::run(&p, &shutdown, StopWhen::Done(&stop))?;
    } else if a.wait {
        while !done(&store) {
            std::thread::sleep(Duration::from_millis(300));
        }
    } else {
        return Ok(ExitCode::SUCCESS);
    }
    let mut ok = true;
    for n in &created {
        let s = store.must_get::<BackupVerificationSession>(ns, n)?;
        let st = s.status.clone().unwrap_or_default();
        let ph = st.phase.map(|p| format!("{p:?}")).unwrap_or_default();
        let msg = verification_session::outcome_message(&st);
        if st.phase == Some(BackupVerificationSessionPhase::Failed) {
            ok = false;
        }
        let msg = if msg.is_empty() {
            String::new()
        } else {
            format!(": {msg}")
        };
        outln!("{n}: {ph} ({}) snapshot {}{msg}", st.duration, s.spec.snapshot);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
