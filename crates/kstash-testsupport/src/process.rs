//! A server child process: started in its own process group with output to a log file, waited on
//! until a readiness probe passes, and killed with its whole group on drop.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// How a server is asked to stop before its process group gets SIGKILL.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop {
    /// SIGKILL the group at once (the data dir is thrown away anyway).
    Kill,
    /// Send `signal` to the main process and give it `grace` to exit (PostgreSQL: SIGQUIT stops its
    /// backends, which live in their own sessions, and releases shared memory).
    Signal { signal: &'static str, grace: Duration },
}

pub(crate) struct ServerProcess {
    name: &'static str,
    child: Child,
    log: PathBuf,
    stop: Stop,
}

impl ServerProcess {
    /// Spawns `cmd` with stdin closed, stdout and stderr appended to `log`, in a new process group.
    pub(crate) fn spawn(name: &'static str, mut cmd: Command, log: &Path, stop: Stop) -> Result<Self> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .context(|| format!("creating log {}", log.display()))?;
        let err = out.try_clone().context(|| "cloning log file handle".into())?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = cmd.spawn().map_err(|source| Error::Io {
            context: format!("starting {name}: `{}`", crate::tools::describe(&cmd)),
            source,
        })?;
        Ok(Self {
            name,
            child,
            log: log.to_owned(),
            stop,
        })
    }

    /// Polls `probe` every 50 ms until it succeeds, the process exits, or `timeout` passes.
    /// `probe` returns why the server is not ready yet; the last reason ends up in the error.
    pub(crate) fn wait_ready(
        &mut self,
        timeout: Duration,
        mut probe: impl FnMut() -> std::result::Result<(), String>,
    ) -> Result<()> {
        let started = Instant::now();
        let mut last = String::from("no readiness check ran");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(started, format!("process exited ({status}); last check: {last}")));
            }
            match probe() {
                Ok(()) => return Ok(()),
                Err(reason) => last = reason,
            }
            if started.elapsed() >= timeout {
                return Err(self.not_ready(started, last));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn not_ready(&self, started: Instant, reason: String) -> Error {
        Error::NotReady {
            server: self.name.to_owned(),
            waited: started.elapsed(),
            reason,
            log: self.log.clone(),
            tail: self.log_tail(40),
        }
    }

    /// The last `lines` lines of the server log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let pid = self.child.id();
        if let Stop::Signal { signal, grace } = self.stop
            && matches!(self.child.try_wait(), Ok(None))
        {
            send_signal(signal, &pid.to_string());
            let deadline = Instant::now() + grace;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The group id is the leader's pid; it stays reserved while any member lives.
        send_signal("KILL", &format!("-{pid}"));
        let _ = self.child.wait();
    }
}

/// `kill -s SIGNAL -- TARGET` (a pid, or `-pgid` for a group). Uses the `kill` program because the
/// workspace forbids `unsafe`, which a direct `libc::kill` would need.
fn send_signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs `attempt` up to three times while it fails because a chosen port was taken in the meantime
/// (another test may grab a port between our check and the server's bind).
pub(crate) fn retry_on_port_clash<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt() {
            Err(Error::NotReady { ref tail, .. })
                if tries < 3 && tail.to_lowercase().contains("address already in use") => {}
            other => return other,
        }
    }
}

/// A fresh temp dir `kstash-<name>-XXXX` under the system temp dir.
pub(crate) fn temp_dir(name: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("kstash-{name}-"))
        .tempdir()
        .context(|| format!("creating temp dir for {name}"))
}

/// The tail of an error message, for probes that report why they failed.
pub(crate) fn short(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    let s = s.trim();
    if s.len() > 300 {
        format!("…{}", &s[s.ceil_char_boundary(s.len() - 300)..])
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn start_up_failure_reports_exit_and_log_tail() {
        let dir = temp_dir("process-test").unwrap();
        let log = dir.path().join("server.log");
        let mut process = ServerProcess::spawn(
            "fake",
            shell("echo starting; echo 'fatal: boom' >&2; exit 3"),
            &log,
            Stop::Kill,
        )
        .unwrap();

        let error = process
            .wait_ready(Duration::from_secs(10), || Err("not yet".into()))
            .unwrap_err();

        let message = error.to_string();
        assert!(message.starts_with("fake not ready after"), "{message}");
        // The process may exit before the first readiness check runs, so only the exit is asserted.
        assert!(
            message.contains("process exited (exit status: 3); last check: "),
            "{message}"
        );
        assert!(message.ends_with("starting\nfatal: boom"), "{message}");
    }

    #[test]
    fn timeout_reports_last_probe_result() {
        let dir = temp_dir("process-test").unwrap();
        let mut process = ServerProcess::spawn(
            "sleeper",
            shell("exec sleep 30"),
            &dir.path().join("log"),
            Stop::Kill,
        )
        .unwrap();

        let error = process
            .wait_ready(Duration::from_millis(200), || Err("port closed".into()))
            .unwrap_err();

        assert!(
            matches!(&error, Error::NotReady { reason, .. } if reason == "port closed"),
            "{error}"
        );
    }

    #[test]
    fn drop_kills_the_whole_process_group() {
        let dir = temp_dir("process-test").unwrap();
        let log = dir.path().join("log");
        // The shell starts a grandchild in the background and prints its pid.
        let process =
            ServerProcess::spawn("tree", shell("sleep 300 & echo $!; wait"), &log, Stop::Kill).unwrap();
        let grandchild = {
            let started = Instant::now();
            loop {
                let text = std::fs::read_to_string(&log).unwrap();
                if let Ok(pid) = text.trim().parse::<u32>() {
                    break pid;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "no pid in log: {text:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let alive = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.split(' ').nth(2).is_none_or(|state| state != "Z"))
        };
        assert!(alive(grandchild));

        drop(process);

        let started = Instant::now();
        while alive(grandchild) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "grandchild {grandchild} survived the drop"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
