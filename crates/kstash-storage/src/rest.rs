//! [`RestBackend`]: a client of restic's REST protocol v2 (rest-server, `rclone serve restic`),
//! with basic auth, retries on transient failures and bounded concurrency.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kstash_repo::{Backend, FileType};
use reqwest::{Method, StatusCode, header};
use tokio::sync::Semaphore;

use crate::config::{RestLocation, Tuning};
use crate::error::{RemoteKind, Result, StorageError};
use crate::object::RateLimit;
use crate::runtime::block_on;

/// The v2 listing media type (names and sizes).
const V2: &str = "application/vnd.x.restic.rest.v2";

/// A restic repository on a REST server.
#[derive(Clone)]
pub struct RestBackend {
    client: reqwest::Client,
    url: String,
    auth: Option<(String, Option<String>)>,
    retries: usize,
    permits: Arc<Semaphore>,
    max_connections: usize,
    upload_limit: Option<Arc<RateLimit>>,
    download_limit: Option<Arc<RateLimit>>,
}

impl std::fmt::Debug for RestBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestBackend").field("url", &self.url).finish()
    }
}

/// One answer, read whole.
struct Answer {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Bytes,
}

impl RestBackend {
    /// A client for the repository at `location` (nothing is sent yet).
    pub fn new(location: &RestLocation, tuning: &Tuning) -> Result<RestBackend> {
        let display = format!("rest:{}", location.url);
        let client = crate::object::http_client(
            location.insecure_tls,
            location.ca_cert_pem.as_deref(),
            Some(Duration::from_secs(300)),
            &display,
        )?;
        Ok(RestBackend {
            client,
            url: location.url.trim_end_matches('/').to_string(),
            auth: location.username.clone().map(|u| (u, location.password.clone())),
            retries: tuning.retries,
            permits: Arc::new(Semaphore::new(tuning.max_connections.max(1))),
            max_connections: tuning.max_connections.max(1),
            upload_limit: tuning.upload_limit.map(|r| Arc::new(RateLimit::new(r))),
            download_limit: tuning.download_limit.map(|r| Arc::new(RateLimit::new(r))),
        })
    }

    fn display(&self) -> String {
        format!("rest:{}", self.url)
    }

    fn object(t: FileType, name: &str) -> String {
        match t {
            FileType::Config => "config".into(),
            _ => format!("{}/{name}", t.dir()),
        }
    }

    /// Send one request, retrying transient failures (connection errors, 5xx, 429) with
    /// exponential backoff. Any other answer is returned as is.
    fn send(
        &self,
        op: &'static str,
        method: Method,
        object: &str,
        headers: Vec<(header::HeaderName, String)>,
        body: Option<Vec<Bytes>>,
    ) -> Result<Answer> {
        let url = if object.is_empty() {
            format!("{}/", self.url)
        } else {
            format!("{}/{object}", self.url)
        };
        let me = self.clone();
        let res = block_on(async move {
            let mut delay = Duration::from_millis(200);
            let mut attempt = 0;
            loop {
                attempt += 1;
                let _permit = me.permits.acquire().await.map_err(|e| e.to_string())?;
                let body_len = body
                    .as_ref()
                    .map(|b| b.iter().map(|p| p.len() as u64).sum::<u64>());
                if let (Some(l), Some(n)) = (&me.upload_limit, body_len) {
                    l.take(n).await;
                }
                let mut req = me.client.request(method.clone(), &url);
                if let Some((u, p)) = &me.auth {
                    req = req.basic_auth(u, p.as_ref());
                }
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                if let (Some(pieces), Some(n)) = (&body, body_len) {
                    // Streamed from the pieces (no contiguous copy), with the length announced.
                    let stream =
                        futures::stream::iter(pieces.clone().into_iter().map(Ok::<_, std::io::Error>));
                    req = req
                        .header(header::CONTENT_LENGTH, n)
                        .body(reqwest::Body::wrap_stream(stream));
                }
                let outcome = match req.send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        let hdrs = resp.headers().clone();
                        match resp.bytes().await {
                            Ok(body) => Ok(Answer {
                                status,
                                headers: hdrs,
                                body,
                            }),
                            Err(e) => Err(format!("reading the answer: {e}")),
                        }
                    }
                    Err(e) => Err(error_chain(&e)),
                };
                let transient = match &outcome {
                    Ok(a) => a.status.is_server_error() || a.status == StatusCode::TOO_MANY_REQUESTS,
                    Err(_) => true,
                };
                if !transient || attempt > me.retries {
                    if let (Some(l), Ok(a)) = (&me.download_limit, &outcome) {
                        l.take(a.body.len() as u64).await;
                    }
                    return outcome.map(|a| (a, attempt));
                }
                tracing::debug!(op, url = %url, attempt, "retrying a failed REST request");
                drop(_permit);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        });
        match res {
            Ok((a, _)) => Ok(a),
            Err(detail) => Err(StorageError::Remote {
                storage: self.display(),
                op,
                object: object.into(),
                kind: RemoteKind::Network,
                detail: format!("{detail} (after {} retries)", self.retries),
            }),
        }
    }

    /// An error for an unexpected answer.
    fn status_error(&self, op: &'static str, object: &str, a: &Answer) -> StorageError {
        let kind = match a.status {
            StatusCode::NOT_FOUND => RemoteKind::NotFound,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RemoteKind::Auth,
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => RemoteKind::Unavailable,
            _ => RemoteKind::Other,
        };
        let text = String::from_utf8_lossy(&a.body);
        let text = text.trim();
        StorageError::Remote {
            storage: self.display(),
            op,
            object: object.into(),
            kind,
            detail: format!(
                "HTTP {}{}",
                a.status,
                if text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", &text[..text.len().min(300)])
                }
            ),
        }
    }

    fn expect_ok(&self, op: &'static str, object: &str, a: Answer) -> Result<Answer> {
        if a.status.is_success() {
            Ok(a)
        } else {
            Err(self.status_error(op, object, &a))
        }
    }

    fn stat_object(&self, object: &str) -> Result<u64> {
        let a = self.send("stat", Method::HEAD, object, vec![], None)?;
        let a = self.expect_ok("stat", object, a)?;
        a.headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StorageError::Remote {
                storage: self.display(),
                op: "stat",
                object: object.into(),
                kind: RemoteKind::Other,
                detail: "the answer has no Content-Length".into(),
            })
    }
}

/// A reqwest error with its causes ("connection refused" sits deep in the chain).
fn error_chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

type R<T> = kstash_repo::Result<T>;

impl Backend for RestBackend {
    fn location(&self) -> String {
        self.display()
    }

    fn create(&self) -> R<()> {
        let a = self.send("create", Method::POST, "?create=true", vec![], None)?;
        self.expect_ok("create", "", a)?;
        Ok(())
    }

    fn read(&self, t: FileType, name: &str) -> R<Vec<u8>> {
        let object = Self::object(t, name);
        let a = self.send("read", Method::GET, &object, vec![], None)?;
        Ok(self.expect_ok("read", &object, a)?.body.to_vec())
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: usize) -> R<Vec<u8>> {
        let object = Self::object(t, name);
        if len == 0 {
            return Ok(Vec::new());
        }
        let range = format!("bytes={}-{}", offset, offset + len as u64 - 1);
        let a = self.send("read", Method::GET, &object, vec![(header::RANGE, range)], None)?;
        let a = self.expect_ok("read", &object, a)?;
        if a.body.len() != len {
            return Err(StorageError::Remote {
                storage: self.display(),
                op: "read",
                object,
                kind: RemoteKind::Other,
                detail: format!("asked for {len} bytes at offset {offset}, got {}", a.body.len()),
            }
            .into());
        }
        Ok(a.body.to_vec())
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> R<()> {
        let object = Self::object(t, name);
        if matches!(t, FileType::Config | FileType::Key) && self.exists(t, name)? {
            return Err(kstash_repo::Error::AlreadyExists(format!(
                "{}/{object}",
                self.display()
            )));
        }
        let a = self.send(
            "write",
            Method::POST,
            &object,
            vec![(header::CONTENT_TYPE, "application/octet-stream".into())],
            Some(vec![Bytes::copy_from_slice(data)]),
        )?;
        self.expect_ok("write", &object, a)?;
        Ok(())
    }

    fn write_file(&self, t: FileType, name: &str, path: &Path) -> R<()> {
        let pieces = std::fs::metadata(path)
            .and_then(|m| crate::object::read_in_pieces(path, m.len()))
            .map_err(|e| {
                kstash_repo::Error::from(StorageError::Io {
                    op: "read",
                    path: path.display().to_string(),
                    source: e,
                })
            });
        let _ = std::fs::remove_file(path);
        let pieces = pieces?;
        if matches!(t, FileType::Config | FileType::Key) {
            return self.write(t, name, &pieces.concat());
        }
        let object = Self::object(t, name);
        let a = self.send(
            "write",
            Method::POST,
            &object,
            vec![(header::CONTENT_TYPE, "application/octet-stream".into())],
            Some(pieces),
        )?;
        self.expect_ok("write", &object, a)?;
        Ok(())
    }

    fn list(&self, t: FileType) -> R<Vec<(String, u64)>> {
        if t == FileType::Config {
            return match self.stat_object("config") {
                Ok(size) => Ok(vec![("config".into(), size)]),
                Err(e) if e.remote_kind() == Some(RemoteKind::NotFound) => Ok(Vec::new()),
                Err(e) => Err(e.into()),
            };
        }
        let dir = format!("{}/", t.dir());
        let a = self.send("list", Method::GET, &dir, vec![(header::ACCEPT, V2.into())], None)?;
        if a.status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let a = self.expect_ok("list", &dir, a)?;
        #[derive(serde::Deserialize)]
        struct Entry {
            name: String,
            size: u64,
        }
        let v2 = a
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(V2));
        if v2 {
            let entries: Vec<Entry> = serde_json::from_slice(&a.body).map_err(|e| StorageError::Remote {
                storage: self.display(),
                op: "list",
                object: dir.clone(),
                kind: RemoteKind::Other,
                detail: format!("invalid v2 listing: {e}"),
            })?;
            return Ok(entries.into_iter().map(|e| (e.name, e.size)).collect());
        }
        // A v1-only server lists names; sizes need one HEAD each.
        let names: Vec<String> = serde_json::from_slice(&a.body).map_err(|e| StorageError::Remote {
            storage: self.display(),
            op: "list",
            object: dir.clone(),
            kind: RemoteKind::Other,
            detail: format!("invalid listing: {e}"),
        })?;
        names
            .into_iter()
            .map(|n| {
                let size = self.stat(t, &n)?;
                Ok((n, size))
            })
            .collect()
    }

    fn remove(&self, t: FileType, name: &str) -> R<()> {
        let object = Self::object(t, name);
        let a = self.send("delete", Method::DELETE, &object, vec![], None)?;
        self.expect_ok("delete", &object, a)?;
        Ok(())
    }

    fn stat(&self, t: FileType, name: &str) -> R<u64> {
        Ok(self.stat_object(&Self::object(t, name))?)
    }

    fn upload_concurrency(&self) -> usize {
        // As for object stores: each upload holds a pack in memory.
        self.max_connections
            .clamp(1, crate::repo_backend::MAX_PARALLEL_PACK_UPLOADS)
    }
}
