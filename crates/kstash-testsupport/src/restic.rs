//! The real `restic` binary (Debian `restic` 0.14): find it and run it against one repository.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::error::{IoContext, Result};
use crate::tools::{describe, run_command, system_tool};

/// Path of the `restic` binary.
pub fn restic_binary() -> Result<PathBuf> {
    system_tool("restic")
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
