//! A restic REST server (v2 API) from `rclone serve restic` (Debian `rclone`), data in a temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::error::{IoContext, Result};
use crate::process::{ServerProcess, Stop, retry_on_port_clash, temp_dir};
use crate::restic::Restic;
use crate::tools::system_tool;

/// `rclone serve restic` on 127.0.0.1, optionally with HTTP basic auth.
pub struct ResticRest {
    /// `http://127.0.0.1:PORT` (no credentials in it).
    pub url: String,
    /// Basic-auth user and password, if started with [`ResticRest::start_with_auth`].
    pub credentials: Option<(String, String)>,
    /// Where the repositories are stored (`<data_dir>/<repo>/config`, ...).
    pub data_dir: PathBuf,
    process: ServerProcess,
    dir: TempDir,
}

impl ResticRest {
    /// Without authentication.
    pub fn start() -> Result<Self> {
        retry_on_port_clash(|| Self::try_start(None))
    }

    /// With HTTP basic auth (`--user/--pass`).
    pub fn start_with_auth(user: &str, password: &str) -> Result<Self> {
        retry_on_port_clash(|| Self::try_start(Some((user.to_owned(), password.to_owned()))))
    }

    fn try_start(credentials: Option<(String, String)>) -> Result<Self> {
        let dir = temp_dir("restic-rest")?;
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&data_dir).context(|| "creating rest data dir".into())?;
        let port = crate::ports::free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(system_tool("rclone")?);
        cmd.args(["serve", "restic"])
            .arg(&data_dir)
            .args([
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--config",
                "/dev/null",
                "-v",
            ])
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .current_dir(dir.path());
        if let Some((user, password)) = &credentials {
            cmd.args(["--user", user, "--pass", password]);
        }
        let mut process = ServerProcess::spawn(
            "rclone serve restic",
            cmd,
            &dir.path().join("rclone.log"),
            Stop::Kill,
        )?;
        // Any HTTP answer (401 with auth, 404 for an unknown repo) means it serves.
        process.wait_ready(crate::READY_TIMEOUT, || crate::http::answers(&format!("{url}/")))?;
        Ok(Self {
            url,
            credentials,
            data_dir,
            process,
            dir,
        })
    }

    /// `rest:http://[user:pass@]127.0.0.1:PORT/<repo>` for restic.
    pub fn repository(&self, repo: &str) -> String {
        let auth = match &self.credentials {
            Some((user, password)) => format!("{user}:{password}@"),
            None => String::new(),
        };
        format!(
            "rest:{}/{}",
            self.url.replacen("http://", &format!("http://{auth}"), 1),
            repo
        )
    }

    /// A [`Restic`] for `<repo>` on this server.
    pub fn restic(&self, repo: &str, password: &str) -> Result<Restic> {
        Restic::new(self.repository(repo), password)
    }

    /// The server log.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
