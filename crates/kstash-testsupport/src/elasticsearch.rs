//! Elasticsearch/OpenSearch API from `osmem-server` (PyPI; in-memory, OpenSearch 3.x API).
//! No real Elasticsearch can be installed on the test machines.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use crate::error::Result;
use crate::process::{ServerProcess, Stop, retry_on_port_clash, temp_dir};
use crate::tools::osmem_server;

/// An in-memory search server on 127.0.0.1 speaking the Elasticsearch/OpenSearch REST API.
pub struct Elasticsearch {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    process: ServerProcess,
    dir: TempDir,
}

impl Elasticsearch {
    /// Starts `osmem-server -addr 127.0.0.1:PORT -no-stdin-watch` and returns when
    /// `GET /_cluster/health` answers 200.
    pub fn start() -> Result<Self> {
        retry_on_port_clash(Self::try_start)
    }

    fn try_start() -> Result<Self> {
        let binary = osmem_server()?;
        let dir = temp_dir("osmem")?;
        let port = crate::ports::free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(binary);
        cmd.args(["-addr", &format!("127.0.0.1:{port}"), "-no-stdin-watch"])
            .current_dir(dir.path());
        let mut process =
            ServerProcess::spawn("osmem-server", cmd, &dir.path().join("osmem.log"), Stop::Kill)?;
        process.wait_ready(crate::READY_TIMEOUT, || {
            crate::http::answers_ok(&format!("{url}/_cluster/health"))
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
