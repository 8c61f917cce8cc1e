//! The process job runner of the embedded runtime: each executor job is a child process
//! `kstash exec <args…>` with its log and exit record under `$KSTASH_HOME/jobs/<ns>/<name>/`, killed
//! at its deadline. Job state survives a daemon restart: a job whose process is gone without an
//! exit record reads as `Missing` (the session then ends `Failed` with `BackupIncomplete`).

use std::collections::BTreeMap;
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
}

fn err(msg: String) -> PlatformError {
    PlatformError::new(msg)
}

impl JobRunner {
    /// Jobs live under `root` (`$KSTASH_HOME/jobs`); `program` is the `kstash` binary; `env` is
    /// added to every job's environment (e.g. `KSTASH_HOME`).
    pub fn new(root: impl Into<PathBuf>, program: impl Into<PathBuf>, env: Vec<(String, String)>) -> Self {
        JobRunner {
            root: root.into(),
            program: program.into(),
            env,
            children: Arc::default(),
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

    /// Start `job` unless it was started before.
    pub fn start(&self, job: &JobSpec) -> Result<(), PlatformError> {
        let dir = self.job_dir(&job.namespace, &job.name);
        if dir.join("job.json").exists() {
            return Ok(());
        }
        fs::create_dir_all(&dir)
            .map_err(|e| err(format!("cannot create job directory {}: {e}", dir.display())))?;
        let log = File::create(dir.join("log"))
            .map_err(|e| err(format!("cannot create job log in {}: {e}", dir.display())))?;
        let log2 = log.try_clone().map_err(|e| err(e.to_string()))?;
        let mut cmd = Command::new(&self.program);
        cmd.arg("exec")
            .args(&job.args)
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
                job.namespace,
                job.name
            ))
        })?;
        let record = JobRecord {
            name: job.name.clone(),
            namespace: job.namespace.clone(),
            args: job.args.clone(),
            labels: job.labels.clone(),
            pid: child.id(),
            started: Timestamp::now(),
            deadline: job.deadline,
        };
        write_json(&dir.join("job.json"), &record)?;
        tracing::info!(job = %format!("{}/{}", job.namespace, job.name), pid = child.id(), "executor started");
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((job.namespace.clone(), job.name.clone()), child.id());
        let (children, key, deadline) = (
            self.children.clone(),
            (job.namespace.clone(), job.name.clone()),
            job.deadline,
        );
        std::thread::Builder::new()
            .name(format!("job-{}", job.name))
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
