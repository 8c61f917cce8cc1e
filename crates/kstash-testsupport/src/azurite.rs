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

    /// Creates a blob container (`PUT ?restype=container`, signed with the account's shared key).
    pub fn create_container(&self, container: &str) -> Result<()> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let date = rfc1123(std::time::SystemTime::now());
        let version = "2021-08-06";
        // Path-style emulator URLs carry the account in the path, so it appears twice here.
        let resource = format!("/{0}/{0}/{container}\nrestype:container", self.account);
        let string_to_sign =
            format!("PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n{resource}");
        let key = b64.decode(&self.key).map_err(|e| crate::Error::Http {
            method: "PUT".into(),
            url: self.blob_endpoint.clone(),
            message: format!("account key is not base64: {e}"),
        })?;
        let signature = b64.encode(crate::sigv4::hmac(&key, string_to_sign.as_bytes()));
        let auth = format!("SharedKey {}:{signature}", self.account);
        let url = format!("{}/{container}?restype=container", self.blob_endpoint);
        crate::http::request(
            "PUT",
            &url,
            &[
                ("x-ms-date", &date),
                ("x-ms-version", version),
                ("authorization", &auth),
                ("content-length", "0"),
            ],
            Some(b""),
        )?
        .ensure_success(&format!("create container {container}"))?;
        Ok(())
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

/// `Sun, 06 Nov 1994 08:49:37 GMT` (the `x-ms-date` format).
fn rfc1123(now: std::time::SystemTime) -> String {
    let (date, time) = crate::sigv4::utc_date_time(now);
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(secs / 86_400 % 7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months[date[4..6].parse::<usize>().unwrap_or(1) - 1];
    format!(
        "{weekday}, {} {month} {} {}:{}:{} GMT",
        &date[6..8],
        &date[..4],
        &time[..2],
        &time[2..4],
        &time[4..6]
    )
}
