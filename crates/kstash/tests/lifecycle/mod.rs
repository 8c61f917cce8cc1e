//! Fixtures of the lifecycle end-to-end tests: a data directory, the `kstash server` daemon as a
//! real child process, manifests written for a local BackupStorage in a temporary directory, and
//! polling helpers. Tests only talk to kstash through manifests and CLI commands.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where everything of one test lives: `home` (KSTASH_HOME), `storage` (the local BackupStorage),
/// `data` (the directory being backed up).
pub struct Env {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub storage: PathBuf,
    pub data: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let storage = dir.path().join("storage");
        let data = dir.path().join("data");
        for d in [&home, &storage, &data] {
            std::fs::create_dir_all(d).unwrap();
        }
        Env {
            dir,
            home,
            storage,
            data,
        }
    }

    /// Run `kstash` with this KSTASH_HOME.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kstash"))
            .args(args)
            .env("KSTASH_HOME", &self.home)
            .env_remove("KSTASH_PUSHGATEWAY")
            .output()
            .unwrap()
    }

    /// Run, expect success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kstash {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Apply a manifest given as text.
    pub fn apply(&self, yaml: &str) {
        let path = self.dir.path().join(format!("manifest-{}.yaml", rand_suffix()));
        std::fs::write(&path, yaml).unwrap();
        self.ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    /// An object as JSON, or None when it does not exist.
    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let out = self.run(&["get", kind, name, "-n", ns, "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Every object of a kind in a namespace.
    pub fn list(&self, kind: &str, ns: &str) -> Vec<Value> {
        let out = self.ok(&["get", kind, "-n", ns, "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        match v.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ if v.is_object() && v.get("kind").is_some() => vec![v],
            _ => vec![],
        }
    }

    /// Start `kstash server` on this home.
    pub fn start_daemon(&self, extra: &[&str]) -> Daemon {
        self.start_daemon_with_env(extra, &[])
    }

    /// Start `kstash server` on this home with `env` added (its executors inherit it).
    pub fn start_daemon_with_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = self.dir.path().join(format!("daemon-{}.log", rand_suffix()));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kstash"))
            .arg("server")
            .args(["--metrics-addr", ""])
            .args(extra)
            .envs(env.iter().copied())
            .env("KSTASH_HOME", &self.home)
            .env("KSTASH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        let d = Daemon {
            child: Some(child),
            log,
        };
        wait_for(Duration::from_secs(20), "the daemon to start", || {
            std::fs::read_to_string(&d.log)
                .unwrap_or_default()
                .contains("reconcile loop started")
        });
        d
    }

    /// The local storage, retention policy and encryption secret of namespace `demo`.
    pub fn storage_manifests(&self, retention_last: u32) -> String {
        format!(
            r#"
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {{name: local-storage, namespace: demo}}
spec:
  storage:
    provider: local
    local:
      mountPath: /safe/data
      hostPath: {{path: {storage}}}
  usagePolicy: {{allowedNamespaces: {{from: Same}}}}
  default: true
  deletionPolicy: WipeOut
---
apiVersion: storage.kubestash.com/v1alpha1
kind: RetentionPolicy
metadata: {{name: keep-last, namespace: demo}}
spec:
  default: true
  successfulSnapshots: {{last: {retention_last}}}
  failedSnapshots: {{last: 2}}
---
apiVersion: v1
kind: Secret
metadata: {{name: encrypt, namespace: demo}}
stringData: {{RESTIC_PASSWORD: changeit}}
"#,
            storage = self.storage.display()
        )
    }

    /// A BackupConfiguration `name` backing up `paths` with the workload addon; `session_extra`
    /// is inserted into the session (indented by 6 spaces), e.g. hooks or retryConfig.
    pub fn backup_configuration(
        &self,
        name: &str,
        schedule: &str,
        paths: &str,
        session_extra: &str,
    ) -> String {
        format!(
            r#"
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: {name}, namespace: demo}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: {name}-app, namespace: demo}}
  backends:
    - name: local
      storageRef: {{name: local-storage, namespace: demo}}
      retentionPolicy: {{name: keep-last, namespace: demo}}
  sessions:
    - name: frequent
      scheduler: {{schedule: "{schedule}"}}
      sessionHistoryLimit: 10
      repositories:
        - name: {name}-repo
          backend: local
          directory: demo/{name}
          encryptionSecret: {{name: encrypt, namespace: demo}}
      addon:
        name: workload-addon
        tasks:
          - name: logical-backup
            params: {{paths: "{paths}"}}
{session_extra}
"#
        )
    }

    /// BackupSessions of one BackupConfiguration, oldest first.
    pub fn sessions_of(&self, bc: &str) -> Vec<Value> {
        let mut v: Vec<Value> = self
            .list("backupsessions", "demo")
            .into_iter()
            .filter(|s| s.pointer("/spec/invoker/name").and_then(Value::as_str) == Some(bc))
            .collect();
        v.sort_by_key(|s| {
            s.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        });
        v
    }

    /// The component restic repository of a repository directory (`demo/<bc>`).
    pub fn component_repo(&self, directory: &str, session: &str) -> PathBuf {
        self.storage
            .join(directory)
            .join("repository/v1")
            .join(session)
            .join("dump")
    }
}

pub fn phase(obj: &Value) -> &str {
    obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or("")
}

pub fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The daemon child; killed when dropped.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("daemon running");
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "daemon did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Poll `cond` until true; panic naming `what` after `timeout`.
pub fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Poll until `f` returns Some.
pub fn wait_some<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rand_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Write a small tree of every file type a volume holds under `root`: text, empty, binary
/// (`big_bytes` of noise), a symlink, a hard link pair, a FIFO, an executable, a private file, an
/// empty directory, a name with spaces and non-ASCII letters, and an old modification time.
pub fn write_tree(root: &Path, big_bytes: usize) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::fs::write(root.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(root.join("empty"), "").unwrap();
    std::fs::write(root.join("sub/deeper/notes.md"), "# notes\n".repeat(100)).unwrap();
    std::fs::write(root.join("sub/Grüße und 空白.txt"), "unicode name\n").unwrap();
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let big: Vec<u8> = (0..big_bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(root.join("sub/big.bin"), big).unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link-to-hello")).unwrap();
    std::fs::write(root.join("original"), "linked twice\n").unwrap();
    std::fs::hard_link(root.join("original"), root.join("sub/hard-link")).unwrap();
    std::fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("secret.key"), "private\n").unwrap();
    std::fs::set_permissions(root.join("secret.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let made = |cmd: &mut std::process::Command| {
        let st = cmd.status().unwrap();
        assert!(st.success(), "{cmd:?}");
    };
    made(std::process::Command::new("mkfifo").arg(root.join("pipe")));
    made(
        std::process::Command::new("touch")
            .args(["-m", "-d", "2001-02-03 04:05:06"])
            .arg(root.join("sub/deeper/notes.md")),
    );
}

/// Every entry under `root` with its type, mode bits, content hash and modification time (and
/// the link count, so hard links are compared), for tree equality. FIFOs are not opened.
pub fn tree_listing(root: &Path) -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            let ft = md.file_type();
            if ft.is_symlink() {
                out.push(format!("{rel} -> {}", std::fs::read_link(&p).unwrap().display()));
            } else if md.is_dir() {
                out.push(format!("{rel}/ {mode:o}"));
                walk(root, &p, out);
            } else if ft.is_fifo() {
                out.push(format!("{rel} fifo {mode:o}"));
            } else {
                let body = std::fs::read(&p).unwrap();
                let sum: u64 = body.iter().fold(1469598103934665603u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(1099511628211)
                });
                out.push(format!(
                    "{rel} {mode:o} {} {sum:x} mtime {} links {}",
                    body.len(),
                    md.mtime(),
                    md.nlink()
                ));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

// ------------------------------------------------------------------------------------------------
// Helpers of the hooks, retry, bad-manifest and metrics tests.

impl Env {
    /// Start `kstash server` with exactly `args` after `server` (e.g. a real `--metrics-addr`).
    pub fn start_daemon_args(&self, args: &[&str]) -> Daemon {
        let log = self.dir.path().join(format!("daemon-{}.log", rand_suffix()));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kstash"))
            .arg("server")
            .args(args)
            .env("KSTASH_HOME", &self.home)
            .env("KSTASH_LOG", "info")
            .env_remove("KSTASH_PUSHGATEWAY")
            .env_remove("KSTASH_METRICS_ADDR")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        let d = Daemon {
            child: Some(child),
            log,
        };
        wait_for(Duration::from_secs(20), "the daemon to start", || {
            std::fs::read_to_string(&d.log)
                .unwrap_or_default()
                .contains("reconcile loop started")
        });
        d
    }

    /// Wait until `bc` has at least `n` BackupSessions and the first `n` (oldest first) are
    /// completed (final phase with the final step done); returns them.
    pub fn wait_sessions_done(&self, bc: &str, n: usize) -> Vec<Value> {
        wait_some(
            Duration::from_secs(60),
            &format!("{n} completed BackupSession(s) of {bc}"),
            || {
                let sessions = self.sessions_of(bc);
                (sessions.len() >= n && sessions[..n].iter().all(session_completed))
                    .then(|| sessions[..n].to_vec())
            },
        )
    }

    /// Apply a manifest given as text and return the failed command's stderr (panics if it succeeds).
    pub fn apply_err(&self, yaml: &str) -> String {
        let path = self.dir.path().join(format!("manifest-{}.yaml", rand_suffix()));
        std::fs::write(&path, yaml).unwrap();
        let out = self.run(&["apply", "-f", path.to_str().unwrap()]);
        assert!(
            !out.status.success(),
            "kstash apply unexpectedly accepted:\n{yaml}\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// A BackupSession whose phase is final and whose final step (MetricsPushed) is done.
pub fn session_completed(s: &Value) -> bool {
    matches!(phase(s), "Succeeded" | "Failed" | "Skipped") && condition(s, "MetricsPushed").is_some()
}

/// The condition of type `type_` in `status.conditions`.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    conditions_find(obj.pointer("/status/conditions"), type_)
}

/// The condition of type `type_` in a `conditions` array.
pub fn conditions_find<'a>(conditions: Option<&'a Value>, type_: &str) -> Option<&'a Value> {
    conditions?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// `status` ("True"/"False") and `message` of a condition, for assertions.
pub fn condition_status_message(cond: &Value) -> (&str, &str) {
    (
        cond.get("status").and_then(Value::as_str).unwrap_or(""),
        cond.get("message").and_then(Value::as_str).unwrap_or(""),
    )
}

impl Daemon {
    /// Whether the daemon process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Assert the daemon is alive and its log shows no panic.
    pub fn assert_healthy(&mut self) {
        let log = self.log_text();
        assert!(self.is_running(), "the daemon exited; log:\n{log}");
        assert!(!log.contains("panicked"), "the daemon log shows a panic:\n{log}");
    }
}

// Helpers of the verification tests.

impl Env {
    /// `kstash verify <bc> -n demo --wait` against the running daemon: the finished
    /// BackupVerificationSession it created, and whether the command exited 0.
    pub fn verify_now(&self, bc: &str) -> (Value, bool) {
        let out = self.run(&["verify", bc, "-n", "demo", "--wait"]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let created = stdout
            .lines()
            .find_map(|l| l.strip_prefix("backupverificationsession.core.kubestash.com/"))
            .and_then(|l| l.strip_suffix(" created"))
            .unwrap_or_else(|| {
                panic!(
                    "no session created:\n{stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .to_string();
        (self.wait_verification_done(&created), out.status.success())
    }

    /// Wait until BackupVerificationSession `demo/name` is Succeeded, Failed or Skipped.
    pub fn wait_verification_done(&self, name: &str) -> Value {
        wait_some(Duration::from_secs(120), &format!("verification {name}"), || {
            let s = self.get("backupverificationsession", "demo", name)?;
            matches!(phase(&s), "Succeeded" | "Failed" | "Skipped").then_some(s)
        })
    }
}
