//! The embedded `Platform`: resources in the SQLite store, executor jobs as child processes, the
//! in-process cron, hooks as local commands, and storage operations in-process.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kstash_api::client::{ClientResult, Resources};
use kstash_api::common::TypedObjectReference;
use kstash_api::meta::{self, ResourceType};
use kstash_controller::platform::{
    CommandOutput, HookCommands, JobSpec, JobState, Platform, PlatformError, ScheduleSpec, StorageOps,
};
use kstash_controller::pushgateway::Pusher;
use kstash_controller::tasks::TaskTracker;
use serde_json::Value;

use crate::runner::JobRunner;
use crate::scheduler::Scheduler;
use crate::store::Store;

/// Everything the embedded runtime runs on.
pub struct EmbeddedPlatform {
    pub store: Arc<Store>,
    pub runner: JobRunner,
    pub scheduler: Scheduler,
    storage: Arc<dyn StorageOps>,
    pusher: Option<Pusher>,
    home: PathBuf,
    workers: usize,
    tasks: TaskTracker,
}

/// Hooks' commands run as local processes.
struct LocalCommands;

impl HookCommands for LocalCommands {
    fn exec(
        &self,
        _namespace: &str,
        command: &[String],
        env: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<CommandOutput, PlatformError> {
        run_local_command(command, env, timeout)
    }
}

impl std::fmt::Debug for EmbeddedPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPlatform")
            .field("home", &self.home)
            .finish()
    }
}

impl EmbeddedPlatform {
    /// A platform over `store` whose data directory is `home` (jobs under `home/jobs`); executors
    /// run `program exec …`.
    pub fn new(
        store: Arc<Store>,
        home: PathBuf,
        program: PathBuf,
        storage: Arc<dyn StorageOps>,
        pushgateway: Option<String>,
    ) -> Self {
        let env = vec![(
            crate::store::KSTASH_HOME_ENV.to_string(),
            home.display().to_string(),
        )];
        EmbeddedPlatform {
            runner: JobRunner::new(home.join("jobs"), program, env),
            scheduler: Scheduler::default(),
            store,
            storage,
            pusher: pushgateway.map(Pusher::start),
            home,
            workers: kstash_controller::queue::DEFAULT_WORKERS,
            tasks: TaskTracker::new(),
        }
    }

    /// Cap the number of executors running at once (more wait in a queue).
    pub fn with_max_executors(mut self, max: usize) -> Self {
        self.runner = self.runner.with_max_running(max);
        self
    }

    /// Reconcile this many objects at once (default [`kstash_controller::queue::DEFAULT_WORKERS`]).
    pub fn with_reconcile_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// How many objects the daemon reconciles at once.
    pub fn reconcile_workers(&self) -> usize {
        self.workers
    }

    /// The data directory.
    pub fn home(&self) -> &PathBuf {
        &self.home
    }
}

impl Resources for EmbeddedPlatform {
    fn get(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<Option<Value>> {
        Resources::get(&*self.store, rt, namespace, name)
    }
    fn get_lean(
        &self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
    ) -> ClientResult<Option<Value>> {
        Resources::get_lean(&*self.store, rt, namespace, name)
    }
    fn list(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        labels: &[(&str, &str)],
    ) -> ClientResult<Vec<Value>> {
        Resources::list(&*self.store, rt, namespace, labels)
    }
    fn create(&self, obj: Value) -> ClientResult<Value> {
        Resources::create(&*self.store, obj)
    }
    fn update(&self, obj: Value) -> ClientResult<Value> {
        Resources::update(&*self.store, obj)
    }
    fn update_status(&self, obj: Value) -> ClientResult<Value> {
        Resources::update_status(&*self.store, obj)
    }
    fn delete(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<()> {
        Resources::delete(&*self.store, rt, namespace, name)
    }
}

impl Platform for EmbeddedPlatform {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn start_job(&self, job: &JobSpec) -> Result<(), PlatformError> {
        self.runner.start(job)
    }

    fn job_state(&self, namespace: &str, name: &str) -> JobState {
        self.runner.state(namespace, name)
    }

    fn stop_job(&self, namespace: &str, name: &str, reason: &str) -> Result<(), PlatformError> {
        self.runner.stop(namespace, name, reason)
    }

    fn delete_job(&self, namespace: &str, name: &str) -> Result<(), PlatformError> {
        self.runner.delete(namespace, name)
    }

    fn ensure_schedule(&self, schedule: &ScheduleSpec) -> Result<Option<Timestamp>, PlatformError> {
        self.scheduler.ensure(schedule, Timestamp::now())
    }

    fn remove_schedules(&self, namespace: &str, invoker: &str, keep: &[String]) -> Result<(), PlatformError> {
        self.scheduler.remove(namespace, invoker, keep);
        Ok(())
    }

    /// Embedded mode has no workloads: a Deployment/StatefulSet/DaemonSet/PVC target stands for the
    /// host directories in the task's `paths`, which the executor checks, so such targets count as
    /// found. AppBindings (databases) must exist in the store.
    fn target_found(&self, target: &TypedObjectReference) -> Result<Option<bool>, PlatformError> {
        match target.kind.as_deref() {
            Some("AppBinding") => {
                let ns = target.namespace.as_deref().unwrap_or("default");
                let found = Resources::get(&*self.store, &meta::APP_BINDING, ns, &target.name)
                    .map_err(|e| PlatformError::new(e.to_string()))?
                    .is_some();
                Ok(Some(found))
            }
            _ => Ok(Some(true)),
        }
    }

    fn hook_commands(&self) -> Arc<dyn HookCommands> {
        Arc::new(LocalCommands)
    }

    fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    fn storage(&self) -> Arc<dyn StorageOps> {
        self.storage.clone()
    }

    fn pusher(&self) -> Option<&Pusher> {
        self.pusher.as_ref()
    }

    /// Executors restore onto this machine's disk, where the verifier job can read the files.
    fn compares_restored_volumes(&self) -> bool {
        true
    }
}

/// Run a command with a timeout; the message carries the exit status and the output's tail.
pub fn run_local_command(
    command: &[String],
    env: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<CommandOutput, PlatformError> {
    let (prog, args) = command
        .split_first()
        .ok_or_else(|| PlatformError::new("hook exec.command is empty"))?;
    let mut child = Command::new(prog)
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PlatformError::new(format!("cannot run {prog}: {e}")))?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut buf = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut buf);
        }
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut buf);
        }
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| PlatformError::new(e.to_string()))? {
            break Some(s);
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = reader.join().unwrap_or_default();
    let tail: String = output
        .trim()
        .chars()
        .rev()
        .take(500)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Ok(match status {
        None => CommandOutput {
            success: false,
            message: format!("`{}` timed out after {timeout:?}", command.join(" ")),
        },
        Some(s) => CommandOutput {
            success: s.success(),
            message: if s.success() {
                tail
            } else {
                format!("`{}` failed ({s}): {tail}", command.join(" "))
            },
        },
    })
}
