//! Prometheus Pushgateway (Debian `prometheus-pushgateway`), in memory.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use crate::error::Result;
use crate::process::{ServerProcess, Stop, retry_on_port_clash, temp_dir};
use crate::tools::system_tool;

/// A Pushgateway on 127.0.0.1 without a persistence file.
pub struct Pushgateway {
    /// `http://127.0.0.1:PORT`; push to `{url}/metrics/job/<job>/…`, scrape `{url}/metrics`.
    pub url: String,
    process: ServerProcess,
    dir: TempDir,
}

impl Pushgateway {
    /// Starts the gateway and returns when `GET /-/ready` answers 200.
    pub fn start() -> Result<Self> {
        retry_on_port_clash(Self::try_start)
    }

    fn try_start() -> Result<Self> {
        let dir = temp_dir("pushgateway")?;
        let port = crate::ports::free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(system_tool("prometheus-pushgateway")?);
        cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path());
        let mut process = ServerProcess::spawn(
            "pushgateway",
            cmd,
            &dir.path().join("pushgateway.log"),
            Stop::Kill,
        )?;
        process.wait_ready(crate::READY_TIMEOUT, || {
            crate::http::answers_ok(&format!("{url}/-/ready"))
        })?;
        Ok(Self { url, process, dir })
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
