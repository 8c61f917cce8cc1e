//! Azure Blob Storage emulator Azurite (npm `azurite`), blob service only, in memory.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use crate::error::Result;
use crate::process::{ServerProcess, Stop, retry_on_port_clash, temp_dir};
use crate::tools::{azurite_blob_main, system_tool};

/// The well-known Azurite development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The well-known (public) key of [`AZURITE_ACCOUNT`].
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service on 127.0.0.1 with in-memory storage and telemetry off.
pub struct Azurite {
    /// `http://127.0.0.1:PORT/devstoreaccount1` (path-style account).
    pub blob_endpoint: String,
    pub account: String,
    pub key: String,
    process: ServerProcess,
    dir: TempDir,
}

impl Azurite {
    /// Starts `node …/azurite/dist/src/blob/main.js` and returns when the blob port answers HTTP.
    pub fn start() -> Result<Self> {
        retry_on_port_clash(Self::try_start)
    }

    fn try_start() -> Result<Self> {
        let main = azurite_blob_main()?;
        let dir = temp_dir("azurite")?;
        let port = crate::ports::free_port()?;
        let mut cmd = Command::new(system_tool("node")?);
        cmd.arg(main)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args([
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
            ])
            .current_dir(dir.path());
        let mut process = ServerProcess::spawn("azurite", cmd, &dir.path().join("azurite.log"), Stop::Kill)?;
        let blob_endpoint = format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}");
        // Unsigned, so the answer is an authorization error, but any HTTP answer means the service runs.
        process.wait_ready(crate::READY_TIMEOUT, || {
            crate::http::answers(&format!("{blob_endpoint}?comp=list"))
        })?;
        Ok(Self {
            blob_endpoint,
            account: AZURITE_ACCOUNT.into(),
            key: AZURITE_KEY.into(),
            process,
            dir,
        })
    }

    /// A connection string for the Azure SDKs.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
            self.account, self.key, self.blob_endpoint
        )
    }

    /// The server log.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The instance's temp dir (working directory of the server).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
