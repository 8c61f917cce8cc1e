//! The web dashboard of `kstash server` and `kstash operator`: the runtime side of
//! [`kstash_ui::Operations`] (each action calls the same function as its CLI command: trigger,
//! pause/resume, unlock) and starting the dashboard from the `--ui-*` flags.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::core::BackupConfiguration;
use kstash_api::storage::{RetentionPolicy, Snapshot, SnapshotPhase};
use kstash_controller::platform::Platform;
use kstash_controller::retention::{Candidate, select};
use kstash_exec::ExecOptions;
use kstash_exec::access::component_repositories;
use kstash_storage::layout::component_path;
use kstash_ui::{ComponentData, OpError, Operations, UiConfig};

use crate::cli::UiArgs;

/// How long an opened component repository is kept for the next browse or download (opening
/// derives the key from the password, which is slow on purpose).
const KEEP_OPEN: Duration = Duration::from_secs(120);
/// At most this many component repositories are kept open.
const KEEP_OPEN_MAX: usize = 16;

/// Opened component repositories by `(namespace, repository, component path)`.
type OpenRepos = HashMap<(String, String, String), (Arc<kstash_repo::Repository>, Instant)>;

/// The dashboard's actions and repository access on a platform (embedded or Kubernetes).
pub struct DashboardOps<P> {
    platform: Arc<P>,
    /// Where executor logs live (`<home>/jobs/<ns>/<job>/log`); `None` on Kubernetes.
    jobs: Option<PathBuf>,
    opts: ExecOptions,
    /// Component repositories recently opened (the browser walks one snapshot page by page).
    open_repos: Mutex<OpenRepos>,
}

fn op(e: anyhow::Error) -> OpError {
    OpError(format!("{e:#}"))
}

impl<P: Platform> DashboardOps<P> {
    /// Actions on `platform`; executor logs under `jobs` when they are local files.
    pub fn new(platform: Arc<P>, jobs: Option<PathBuf>, opts: ExecOptions) -> Self {
        DashboardOps {
            platform,
            jobs,
            opts,
            open_repos: Mutex::new(HashMap::new()),
        }
    }

    fn res(&self) -> &dyn Resources {
        &*self.platform
    }

    fn reasons(&self, ns: &str, repository: &str) -> Result<BTreeMap<String, String>> {
        let res = self.res();
        // The retention policy of the backend the owning configuration writes this repository to.
        let bcs: Vec<BackupConfiguration> = res.list_as(Some(ns), &[])?;
        let policy_ref = bcs.iter().find_map(|bc| {
            let backend = bc
                .spec
                .sessions
                .iter()
                .flat_map(|s| &s.repositories)
                .find(|r| r.name == repository)?
                .backend
                .clone();
            bc.spec
                .backends
                .iter()
                .find(|b| b.name == backend)
                .and_then(|b| b.retention_policy.clone())
        });
        let Some(pr) = policy_ref else {
            return Ok(BTreeMap::new());
        };
        let Some(policy) = res.get_as::<RetentionPolicy>(pr.namespace.as_deref().unwrap_or(ns), &pr.name)?
        else {
            return Ok(BTreeMap::new());
        };
        let snaps: Vec<Snapshot> = res.list_as(Some(ns), &[])?;
        let candidates: Vec<Candidate> = snaps
            .iter()
            .filter(|s| s.spec.repository == repository)
            .map(|s| {
                let st = s.status.clone().unwrap_or_default();
                Candidate {
                    name: s.metadata.name.clone().unwrap_or_default(),
                    phase: st.phase.unwrap_or(SnapshotPhase::Pending),
                    time: st
                        .snapshot_time
                        .map(|t| t.0)
                        .or_else(|| s.metadata.creation_timestamp.as_ref().map(|t| t.0))
                        .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                }
            })
            .collect();
        let decision = select(&policy.spec, &candidates, self.platform.now()).map_err(|e| anyhow!(e))?;
        let mut out: BTreeMap<String, String> = decision
            .keep
            .into_iter()
            .map(|(name, why)| {
                let text: Vec<String> = why.iter().map(|r| format!("{r:?}")).collect();
                (name, text.join(", "))
            })
            .collect();
        for name in decision.remove {
            out.insert(name, "removed at the next retention run".into());
        }
        Ok(out)
    }

    fn open(&self, ns: &str, snapshot: &str, component: &str) -> Result<ComponentData> {
        let res = self.res();
        let snap: Snapshot = res.must_get(ns, snapshot)?;
        let st = snap.status.clone().unwrap_or_default();
        let comp = st
            .components
            .get(component)
            .with_context(|| format!("Snapshot {ns}/{snapshot} has no component {component}"))?;
        let path = if comp.path.is_empty() {
            component_path(&snap.spec.session, component)
        } else {
            comp.path.clone()
        };
        let key = (ns.to_string(), snap.spec.repository.clone(), path.clone());
        let kept = {
            let mut open = self.open_repos.lock().unwrap_or_else(|e| e.into_inner());
            open.retain(|_, (_, at)| at.elapsed() < KEEP_OPEN);
            open.get(&key).map(|(r, _)| r.clone())
        };
        let engine = match kept {
            // New backups may have added index files since it was opened.
            Some(r) => {
                r.refresh_index()?;
                r
            }
            None => {
                let repo = crate::repositories::get_repository(res, ns, &snap.spec.repository)?;
                let found = component_repositories(res, &repo, &self.opts)?
                    .into_iter()
                    .find(|c| c.path == path)
                    .with_context(|| {
                        format!(
                            "Repository {ns}/{} has no component repository {path}",
                            snap.spec.repository
                        )
                    })?;
                let r = Arc::new(found.open()?);
                let mut open = self.open_repos.lock().unwrap_or_else(|e| e.into_inner());
                if open.len() >= KEEP_OPEN_MAX
                    && let Some(oldest) = open.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone())
                {
                    open.remove(&oldest);
                }
                open.insert(key, (r.clone(), Instant::now()));
                r
            }
        };
        let snapshot_ids = comp.restic_snapshot_ids();
        Ok(ComponentData {
            repo: engine,
            snapshot_ids,
        })
    }
}

impl<P: Platform + 'static> Operations for DashboardOps<P> {
    fn trigger(&self, ns: &str, name: &str) -> Result<Vec<String>, OpError> {
        let bc: BackupConfiguration = self
            .res()
            .must_get(ns, name)
            .map_err(|e| OpError(e.to_string()))?;
        crate::ops::start_backups(&*self.platform, &bc, &[]).map_err(op)
    }

    fn set_paused(&self, ns: &str, name: &str, paused: bool) -> Result<(), OpError> {
        crate::ops::patch_paused(self.res(), ns, name, paused).map_err(op)
    }

    fn unlock(&self, ns: &str, repository: &str) -> Result<usize, OpError> {
        let removed =
            crate::repositories::unlock_repository(self.res(), ns, repository, &[], false).map_err(op)?;
        Ok(removed.iter().map(|(_, ids)| ids.len()).sum())
    }

    fn locks(&self, ns: &str, repository: &str) -> Result<Vec<kstash_ui::ComponentLocks>, OpError> {
        let (_, comps) = crate::repositories::components(self.res(), ns, repository, &[]).map_err(op)?;
        comps
            .iter()
            .map(|c| {
                let engine = c.open().map_err(|e| OpError(e.to_string()))?;
                let locks = kstash_repo::lock::list_locks(&engine)
                    .map_err(|e| OpError(e.to_string()))?
                    .into_iter()
                    .map(|l| kstash_ui::LockState {
                        id: l.id.short(),
                        exclusive: l.lock.exclusive,
                        holder: format!("{}@{} pid {}", l.lock.username, l.lock.hostname, l.lock.pid),
                        stale: l.stale,
                    })
                    .collect();
                Ok(kstash_ui::ComponentLocks {
                    path: c.path.clone(),
                    locks,
                })
            })
            .collect()
    }

    fn retention_reasons(&self, ns: &str, repository: &str) -> Result<BTreeMap<String, String>, OpError> {
        self.reasons(ns, repository).map_err(op)
    }

    fn executor_log(&self, ns: &str, session: &str) -> Option<String> {
        let jobs = self.jobs.as_ref()?.join(ns);
        [jobs.join(session), jobs.join(format!("restore-{session}"))]
            .iter()
            .find_map(|d| std::fs::read_to_string(d.join("log")).ok())
    }

    fn open_component(&self, ns: &str, snapshot: &str, component: &str) -> Result<ComponentData, OpError> {
        self.open(ns, snapshot, component).map_err(op)
    }

    fn event(&self, object: &str, reason: &str, message: &str) {
        self.platform.event(object, false, reason, message);
    }
}

/// Start the dashboard when `--ui-addr` (or `default_addr`) names an address; its URL is printed
/// and recorded in `home` for `kstash ui-url`.
pub fn start<P: Platform + 'static>(
    args: &UiArgs,
    default_addr: Option<&str>,
    home: &Path,
    platform: Arc<P>,
    jobs: Option<PathBuf>,
    opts: ExecOptions,
) -> Result<Option<kstash_ui::Running>> {
    let addr = args
        .ui_addr
        .clone()
        .or_else(|| default_addr.map(str::to_string))
        .unwrap_or_default();
    if addr.is_empty() {
        return Ok(None);
    }
    let config = UiConfig {
        fall_back_to_free_port: args.ui_addr.is_none(),
        addr,
        tls: args.ui_tls_cert.clone().zip(args.ui_tls_key.clone()),
        insecure: args.ui_insecure,
        read_only: args.ui_read_only,
        home: home.to_path_buf(),
    };
    let res: Arc<dyn Resources> = platform.clone();
    let ops = Arc::new(DashboardOps::new(platform, jobs, opts));
    let running = kstash_ui::serve(config, res, ops).context("starting the dashboard")?;
    eprintln!(
        "kstash: dashboard at {}{} (kstash ui-url prints the login link)",
        running.url,
        if args.ui_read_only { ", read-only" } else { "" }
    );
    Ok(Some(running))
}

/// `kstash ui-url`: the login link of the dashboard that last ran on this data directory.
pub fn ui_url(home: Option<&Path>) -> Result<std::process::ExitCode> {
    let home = crate::ops::home_dir(home)?;
    let link = kstash_ui::login_url(&home)?;
    outln!("{link}");
    Ok(std::process::ExitCode::SUCCESS)
}
