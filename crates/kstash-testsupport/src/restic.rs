//! The real `restic` binary (Debian `restic` 0.14): find it and run it against one repository.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::error::{IoContext, Result};
use crate::tools::{describe, run_command, system_tool};

/// Path of the `restic` binary.
pub fn restic_binary() -> Result<PathBuf> {
    system_tool("restic")
}

/// Whether this run is under continuous integration: `CI` is set to anything but empty, `0` or
/// `false` (what GitHub Actions, GitLab CI and most runners export).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The `restic` oracle for a cross-tool test, or `None` when it is not installed, after a
/// visible `SKIPPED <test>: …` line on stderr.
///
/// Under CI ([`under_ci`]) a missing restic **panics** instead: `scripts/setup` installs it, so
/// its absence is a broken machine, and a test that returned early would count as passed without
/// having compared anything. Use it as the first line of a test that needs restic:
///
/// ```no_run
/// if kstash_testsupport::restic_or_skip().is_none() {
///     return;
/// }
/// ```
pub fn restic_or_skip() -> Option<PathBuf> {
    let found = restic_binary().map_err(|e| e.to_string()).and_then(|path| {
        let out = Command::new(&path).arg("version").output();
        match out {
            Ok(o) if o.status.success() => Ok(path),
            Ok(o) => Err(format!("`{} version` failed: {}", path.display(), o.status)),
            Err(e) => Err(format!("cannot run {}: {e}", path.display())),
        }
    });
    let why = match found {
        Ok(path) => return Some(path),
        Err(why) => why,
    };
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    assert!(
        !under_ci(),
        "{test}: the `restic` oracle is missing under CI ({why}); scripts/setup installs it, \
         and a cross-tool test must not pass without it"
    );
    eprintln!(
        "SKIPPED {test}: `restic` is not installed ({why}); cross-tool tests need restic 0.14+ (scripts/setup)"
    );
    None
}

/// Runs `restic -r REPO …` with `RESTIC_PASSWORD` and extra environment (backend credentials).
/// Always passes `--no-cache`, so runs leave nothing in `~/.cache/restic`.
#[derive(Debug, Clone)]
pub struct Restic {
    binary: PathBuf,
    pub repository: String,
    env: Vec<(String, String)>,
}

impl Restic {
    pub fn new(repository: impl Into<String>, password: &str) -> Result<Self> {
        Ok(Self {
            binary: restic_binary()?,
            repository: repository.into(),
            env: vec![("RESTIC_PASSWORD".into(), password.into())],
        })
    }

    /// Adds an environment variable for every run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command `restic -r REPO --no-cache ARGS…` with the environment set, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        // Settings from the caller's environment must not redirect the run.
        for var in [
            "RESTIC_REPOSITORY",
            "RESTIC_REPOSITORY_FILE",
            "RESTIC_PASSWORD_FILE",
            "RESTIC_PASSWORD_COMMAND",
        ] {
            cmd.env_remove(var);
        }
        cmd.args(["-r", &self.repository, "--no-cache"]).args(args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs restic; stdout on success, `CommandFailed` (with stderr) otherwise.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        run_command(&mut self.command(args))
    }

    /// Runs restic and returns the raw output whatever the exit status.
    pub fn output(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = self.command(args);
        cmd.output().context(|| format!("starting `{}`", describe(&cmd)))
    }
}

/// A real restic **exclusive** lock, held for as long as a test needs it: `restic key passwd`
/// takes an exclusive lock, then waits for the new password on standard input, which this
/// holder keeps open. Killed on drop, so a failing test leaves no restic process behind.
#[derive(Debug)]
pub struct ResticLockHolder {
    child: Option<std::process::Child>,
    lock_id: String,
}

/// Names of the lock files in a local repository (restic's `<id>-tmp-…` files excluded).
pub fn lock_file_names(repo: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo.join("locks"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

impl ResticLockHolder {
    /// Start restic on the local repository `repo` and return once its lock file exists.
    pub fn start(repo: &std::path::Path, password: &str) -> Result<Self> {
        use std::process::Stdio;
        use std::time::{Duration, Instant};
        let before = lock_file_names(repo);
        let mut cmd = Restic::new(repo.display().to_string(), password)?.command(&["key", "passwd"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().context(|| format!("starting `{}`", describe(&cmd)))?;
        let mut holder = ResticLockHolder {
            child: Some(child),
            lock_id: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let new: Vec<String> = lock_file_names(repo)
                .into_iter()
                .filter(|n| !before.contains(n))
                .collect();
            if let [id] = new.as_slice() {
                holder.lock_id = id.clone();
                return Ok(holder);
            }
            assert!(
                Instant::now() < deadline,
                "restic never wrote its lock file in {}",
                repo.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// PID of the restic process holding the lock.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(std::process::Child::id)
            .unwrap_or_default()
    }

    /// Id (file name) of restic's lock file.
    pub fn lock_id(&self) -> &str {
        &self.lock_id
    }

    /// Give restic an empty password: it gives up and removes its lock, as a finishing process
    /// does. Returns restic's stderr.
    pub fn finish(mut self) -> String {
        let mut child = self.child.take().expect("holder still running");
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("waiting for restic");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// SIGKILL: the lock file stays behind with a dead PID.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ResticLockHolder {
    fn drop(&mut self) {
        self.stop();
    }
}
