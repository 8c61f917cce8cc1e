//! The process job runner of the embedded runtime: each executor job is a child process
//! `kstash exec <args…>` with its log and exit record under `$KSTASH_HOME/jobs/<ns>/<name>/`, killed
//! at its deadline. Job state survives a daemon restart: a job whose process is gone without an
//! exit record reads as `Missing` (the session then ends `Failed` with `BackupIncomplete`).

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kstash_controller::platform::{JobSpec, JobState, PlatformError};
use serde::{Deserialize, Serialize};

/// Environment variable through which a job learns where to write its exit record.
pub const JOB_RESULT_ENV: &str = "KSTASH_JOB_RESULT";

/// What `job.json` records about a started job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub name: String,
    pub namespace: String,
    pub args: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub pid: u32,
    pub started: Timestamp,
    pub deadline: Option<Timestamp>,
    /// Waiting for a free executor slot (pid is 0).
    #[serde(default)]
    pub queued: bool,
}

/// What `result.json` records when a job ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    pub exit_code: i32,
    pub message: String,
}

/// Starts, watches and stops executor processes.
#[derive(Debug, Clone)]
pub struct JobRunner {
    root: PathBuf,
    program: PathBuf,
    env: Vec<(String, String)>,
    children: Arc<Mutex<BTreeMap<(String, String), u32>>>,
    queue: Arc<Mutex<VecDeque<(String, String)>>>,
    max_running: usize,
}

/// How much nicer than the daemon executors run (the daemon keeps its own nice, usually 0).
pub const EXECUTOR_NICE: i32 = 10;

/// Default cap on concurrently running executors.
pub const DEFAULT_MAX_RUNNING: usize = 8;

fn err(msg: String) -> PlatformError {
    PlatformError::new(msg)
}

impl JobRunner {
    /// Jobs live under `root` (`$KSTASH_HOME/jobs`); `program` is the `kstash` binary; `env` is
    /// added to every job's environment (e.g. `KSTASH_HOME`).
    pub fn new(root: impl Into<PathBuf>, program: impl Into<PathBuf>, env: Vec<(String, String)>) -> Self {
        let runner = JobRunner {
            root: root.into(),
            program: program.into(),
            env,
            children: Arc::default(),
            queue: Arc::default(),
            max_running: DEFAULT_MAX_RUNNING,
        };
        // Jobs queued by an earlier daemon, oldest first.
        let mut queued: Vec<JobRecord> = runner
            .list()
            .into_iter()
            .filter(|r| r.queued && runner.result(&r.namespace, &r.name).is_none())
            .collect();
        queued.sort_by_key(|r| r.started);
        runner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(queued.into_iter().map(|r| (r.namespace, r.name)));
        runner
    }

    /// Cap the number of executors running at once (at least 1).
    pub fn with_max_running(mut self, max: usize) -> Self {
        self.max_running = max.max(1);
        self
    }

    fn running(&self) -> usize {
        self.children.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Start queued jobs while slots are free; the daemon calls this on every loop round.
    pub fn pump(&self) {
        loop {
            if self.running() >= self.max_running {
                return;
            }
            let next = self.queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some((ns, name)) = next else { return };
            let Some(record) = self.record(&ns, &name) else {
                continue;
            };
            if !record.queued || self.result(&ns, &name).is_some() {
                continue;
            }
            if let Err(e) = self.spawn(record) {
                tracing::error!(job = %format!("{ns}/{name}"), error = %e, "cannot start queued executor");
                let _ = write_json(
                    &self.job_dir(&ns, &name).join("result.json"),
                    &JobResult {
                        exit_code: -1,
                        message: e.to_string(),
                    },
                );
            }
        }
    }

    /// Directory of one job.
    pub fn job_dir(&self, namespace: &str, name: &str) -> PathBuf {
        self.root.join(namespace).join(name)
    }

    /// The job's combined stdout/stderr log.
    pub fn log_path(&self, namespace: &str, name: &str) -> PathBuf {
        self.job_dir(namespace, name).join("log")
    }

    /// The recorded job, if it was started.
    pub fn record(&self, namespace: &str, name: &str) -> Option<JobRecord> {
        let body = fs::read(self.job_dir(namespace, name).join("job.json")).ok()?;
        serde_json::from_slice(&body).ok()
    }

    /// The exit record, if the job ended.
    pub fn result(&self, namespace: &str, name: &str) -> Option<JobResult> {
        let body = fs::read(self.job_dir(namespace, name).join("result.json")).ok()?;
        serde_json::from_slice(&body).ok()
    }

    /// Start `job` unless it was started before; queue it when every slot is taken.
    pub fn start(&self, job: &JobSpec) -> Result<(), PlatformError> {
        let dir = self.job_dir(&job.namespace, &job.name);
        if dir.join("job.json").exists() {
            return Ok(());
        }
        fs::create_dir_all(&dir)
            .map_err(|e| err(format!("cannot create job directory {}: {e}", dir.display())))?;
        let record = JobRecord {
            name: job.name.clone(),
            namespace: job.namespace.clone(),
            args: job.purpose.exec_args(&job.namespace),
            labels: job.labels.clone(),
            pid: 0,
            started: Timestamp::now(),
            deadline: job.deadline,
            queued: true,
        };
        let waiting = !self.queue.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
        if waiting || self.running() >= self.max_running {
            write_json(&dir.join("job.json"), &record)?;
            tracing::info!(job = %format!("{}/{}", job.namespace, job.name), "executor queued (all slots busy)");
            self.queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_back((job.namespace.clone(), job.name.clone()));
            self.pump();
            return Ok(());
        }
        self.spawn(record)
    }

    /// Run the recorded job now (`record.started` is kept: a queued job started when it was queued).
    fn spawn(&self, mut record: JobRecord) -> Result<(), PlatformError> {
        let dir = self.job_dir(&record.namespace, &record.name);
        let log = File::create(dir.join("log"))
            .map_err(|e| err(format!("cannot create job log in {}: {e}", dir.display())))?;
        let log2 = log.try_clone().map_err(|e| err(e.to_string()))?;
        let mut cmd = Command::new(&self.program);
        cmd.arg("exec")
            .args(&record.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .env(JOB_RESULT_ENV, dir.join("result.json"));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| {
            err(format!(
                "cannot start executor {} for job {}/{}: {e}",
                self.program.display(),
                record.namespace,
                record.name
            ))
        })?;
        // Executors are batch work: below the daemon's priority, so CPU-bound backups (two on a
        // 2-core machine) never starve the scheduler and the reconcilers. Measured: with two
        // executors at the daemon's priority, 10,000 minute schedules were only partly
        // reconciled after 3 minutes (see bench/daemon-scale). Best effort: a refusal is logged.
        // Relative to the daemon's own nice: a daemon started under `nice` keeps its executors
        // below it (19 is the lowest priority there is).
        let own = rustix::process::getpriority_process(None).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(
            Some(rustix::process::Pid::from_child(&child)),
            (own + EXECUTOR_NICE).min(19),
        ) {
            tracing::debug!(error = %e, "cannot lower the executor's priority");
        }
        record.pid = child.id();
        record.queued = false;
        write_json(&dir.join("job.json"), &record)?;
        tracing::info!(job = %format!("{}/{}", record.namespace, record.name), pid = child.id(), "executor started");
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((record.namespace.clone(), record.name.clone()), child.id());
        let (children, key, deadline) = (
            self.children.clone(),
            (record.namespace.clone(), record.name.clone()),
            record.deadline,
        );
        std::thread::Builder::new()
            .name(format!("job-{}", record.name))
            .spawn(move || watch_child(child, &dir, deadline, &children, key))
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    }

    /// The job's state (see the module docs).
    pub fn state(&self, namespace: &str, name: &str) -> JobState {
        if let Some(r) = self.result(namespace, name) {
            return if r.exit_code == 0 {
                JobState::Succeeded
            } else {
                JobState::Failed(r.message)
            };
        }
        let Some(record) = self.record(namespace, name) else {
            return JobState::Missing;
        };
        if record.queued {
            return JobState::Running;
        }
        let ours = self
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&(namespace.to_string(), name.to_string()));
        if ours || process_alive(record.pid) {
            // A result may have landed between the two reads.
            if let Some(r) = self.result(namespace, name) {
                return if r.exit_code == 0 {
                    JobState::Succeeded
                } else {
                    JobState::Failed(r.message)
                };
            }
            JobState::Running
        } else {
            JobState::Missing
        }
    }

    /// Stop a running job: SIGTERM, then SIGKILL after 5 s; its state becomes `Failed(reason)`.
    pub fn stop(&self, namespace: &str, name: &str, reason: &str) -> Result<(), PlatformError> {
        let Some(record) = self.record(namespace, name) else {
            return Ok(());
        };
        let dir = self.job_dir(namespace, name);
        if !dir.join("result.json").exists() {
            write_json(
                &dir.join("result.json"),
                &JobResult {
                    exit_code: -1,
                    message: format!("stopped: {reason}"),
                },
            )?;
        }
        if process_alive(record.pid) {
            tracing::warn!(job = %format!("{namespace}/{name}"), pid = record.pid, reason, "stopping executor");
            signal(record.pid, nix::sys::signal::Signal::SIGTERM);
            let pid = record.pid;
            std::thread::spawn(move || {
                for _ in 0..50 {
                    if !process_alive(pid) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                signal(pid, nix::sys::signal::Signal::SIGKILL);
            });
        }
        Ok(())
    }

    /// Remove a finished job's directory (a running job is stopped first).
    pub fn delete(&self, namespace: &str, name: &str) -> Result<(), PlatformError> {
        if self.state(namespace, name) == JobState::Running {
            self.stop(namespace, name, "job deleted")?;
        }
        let dir = self.job_dir(namespace, name);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err(format!("cannot remove {}: {e}", dir.display()))),
        }
    }

    /// Every recorded job.
    pub fn list(&self) -> Vec<JobRecord> {
        let mut out = Vec::new();
        for ns in fs::read_dir(&self.root).into_iter().flatten().flatten() {
            for job in fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                if let Ok(body) = fs::read(job.path().join("job.json"))
                    && let Ok(r) = serde_json::from_slice::<JobRecord>(&body)
                {
                    out.push(r);
                }
            }
        }
        out
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), PlatformError> {
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec_pretty(value).map_err(|e| err(e.to_string()))?;
    fs::write(&tmp, body)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| err(format!("cannot write {}: {e}", path.display())))
}

/// Reap the child, enforce its deadline, and record its exit unless the job recorded it itself.
fn watch_child(
    mut child: Child,
    dir: &Path,
    deadline: Option<Timestamp>,
    children: &Mutex<BTreeMap<(String, String), u32>>,
    key: (String, String),
) {
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if deadline.is_some_and(|d| Timestamp::now() >= d) && !dir.join("result.json").exists() {
            let _ = write_json(
                &dir.join("result.json"),
                &JobResult {
                    exit_code: -1,
                    message: "deadline exceeded or signal terminated".into(),
                },
            );
            signal(child.id(), nix::sys::signal::Signal::SIGTERM);
            std::thread::sleep(Duration::from_secs(3));
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !dir.join("result.json").exists() {
        let code = status.and_then(|s| s.code()).unwrap_or(-1);
        let message = if code == 0 {
            String::new()
        } else {
            let tail = log_tail(&dir.join("log"), 4096);
            let last = tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string();
            match status {
                Some(s) if s.code().is_none() => format!("killed by a signal ({s}); {last}"),
                _ => format!("exit status {code}: {last}"),
            }
        };
        let _ = write_json(
            &dir.join("result.json"),
            &JobResult {
                exit_code: code,
                message,
            },
        );
    }
    children.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
}

/// The last `max` bytes of a log file.
pub fn log_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = OpenOptions::new().read(true).open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// Whether a process with this pid is alive (not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3 (after the parenthesised command name) is the state; Z = zombie, X = dead.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use kstash_controller::platform::JobPurpose;

    use super::*;

    fn job(name: &str) -> JobSpec {
        JobSpec {
            name: name.into(),
            namespace: "demo".into(),
            purpose: JobPurpose::Backup {
                backup_session: name.into(),
            },
            labels: BTreeMap::new(),
            deadline: None,
        }
    }

    /// A runner whose "executor" is `sh -c 'sleep N'` (the runner adds `exec <args>`, which sh
    /// receives as $0 and ignores).
    fn sleeper(dir: &Path, secs: &str, max: usize) -> JobRunner {
        let script = dir.join("fake-kstash");
        std::fs::write(&script, format!("#!/bin/sh\nsleep {secs}\n")).unwrap();
        let mut perm = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&script, perm).unwrap();
        JobRunner::new(dir.join("jobs"), script, vec![]).with_max_running(max)
    }

    fn wait_until(mut f: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(20), "timed out");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn executors_run_below_the_daemons_priority() {
        let dir = tempfile::tempdir().unwrap();
        let r = sleeper(dir.path(), "1", 1);
        r.start(&job("a")).unwrap();
        let pid = r.record("demo", "a").unwrap().pid;
        let own = rustix::process::getpriority_process(None).unwrap();
        let executor =
            rustix::process::getpriority_process(Some(rustix::process::Pid::from_raw(pid as i32).unwrap()))
                .unwrap();
        assert_eq!(
            executor,
            (own + EXECUTOR_NICE).min(19),
            "executor nice vs the daemon's {own}"
        );
        wait_until(|| r.state("demo", "a") == JobState::Succeeded);
    }

    #[test]
    fn jobs_beyond_the_cap_wait_then_run_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let r = sleeper(dir.path(), "0.3", 1);
        r.start(&job("a")).unwrap();
        r.start(&job("b")).unwrap();
        assert!(r.record("demo", "a").is_some_and(|x| !x.queued && x.pid > 0));
        assert!(
            r.record("demo", "b").is_some_and(|x| x.queued && x.pid == 0),
            "b waits for a slot"
        );
        assert_eq!(
            r.state("demo", "b"),
            JobState::Running,
            "a queued job reads as running"
        );
        wait_until(|| {
            r.pump();
            r.state("demo", "a") == JobState::Succeeded && r.record("demo", "b").is_some_and(|x| !x.queued)
        });
        wait_until(|| r.state("demo", "b") == JobState::Succeeded);
    }

    #[test]
    fn a_stopped_queued_job_never_starts_and_the_queue_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let r = sleeper(dir.path(), "0.5", 1);
        r.start(&job("a")).unwrap();
        r.start(&job("b")).unwrap();
        r.start(&job("c")).unwrap();
        r.stop("demo", "b", "deadline exceeded").unwrap();
        assert_eq!(
            r.state("demo", "b"),
            JobState::Failed("stopped: deadline exceeded".into())
        );
        // A new runner (a restarted daemon) picks up the queue from job.json.
        let r2 = sleeper(dir.path(), "0.1", 1);
        drop(r);
        wait_until(|| {
            r2.pump();
            r2.record("demo", "c").is_some_and(|x| !x.queued)
        });
        assert!(
            r2.record("demo", "b").is_some_and(|x| x.queued),
            "a stopped job is not started"
        );
        wait_until(|| r2.state("demo", "c") == JobState::Succeeded);
    }
}
