//! A small blocking HTTP client for the Elasticsearch/OpenSearch REST API (ureq, rustls): basic
//! auth from the AppBinding's Secret, the AppBinding's caBundle as the only trusted roots when it
//! has one, JSON in and out. Messages name the cluster and the AppBinding, never the password.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::de::DeserializeOwned;
use ureq::http::Request;

use crate::appbinding::Connection;
use crate::error::{ExecError, Result};

/// The tool name in messages and thread names.
pub(crate) const TOOL: &str = "elasticsearch";
const DEFAULT_PORT: u16 = 9200;

/// How a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HttpError {
    /// No HTTP answer: connection refused, reset, timeout, TLS failure.
    Transport(String),
    /// An answer with a status outside 2xx; `reason` is the server's error text.
    Status { status: u16, reason: String },
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Transport(m) => write!(f, "{m}"),
            HttpError::Status { status, reason } => write!(f, "HTTP {status}: {reason}"),
        }
    }
}

/// The cluster's identity from `GET /`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterInfo {
    /// `opensearch` or `elasticsearch`.
    pub distribution: String,
    pub version: String,
    pub cluster_name: String,
}

impl ClusterInfo {
    pub fn is_opensearch(&self) -> bool {
        self.distribution == "opensearch"
    }

    /// The major version (0 when unknown).
    pub fn major(&self) -> u32 {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }
}

/// A client of one cluster; cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
    /// `Elasticsearch http://host:port (AppBinding ns/name, user u from Secret ns/s)`.
    pub target: String,
    /// The user and the Secret it came from, for authentication errors.
    pub credentials: String,
}

impl Client {
    pub fn new(conn: &Connection) -> Result<Client> {
        let scheme = match conn.scheme.as_deref() {
            None | Some("") | Some("http") => "http",
            Some("https") => "https",
            Some(other) => {
                return Err(ExecError::invalid(
                    &conn.object,
                    format!(
                        "spec.clientConfig.url has scheme {other:?}; Elasticsearch/OpenSearch is reached over http or https"
                    ),
                ));
            }
        };
        let host = if conn.host.contains(':') {
            format!("[{}]", conn.host)
        } else {
            conn.host.clone()
        };
        let base = format!("{scheme}://{host}:{}", conn.port.unwrap_or(DEFAULT_PORT));
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(bundle) = &conn.ca_bundle {
            let pem = decode_ca_bundle(bundle)
                .map_err(|m| ExecError::invalid(&conn.object, format!("spec.clientConfig.caBundle {m}")))?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(ExecError::invalid(
                    &conn.object,
                    "spec.clientConfig.caBundle holds no PEM certificate; put the CA certificate (base64 of its PEM) there",
                ));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        if conn.insecure_skip_tls_verify {
            tracing::warn!(object = %conn.object, "insecureSkipTLSVerify: the server's certificate is not verified");
            tls = tls.disable_verification(true);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(600)))
            .max_idle_connections_per_host(16)
            .tls_config(tls.build())
            .user_agent("kstash")
            .build()
            .into();
        let auth = (!conn.user.is_empty()).then(|| {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", conn.user, conn.password));
            format!("Basic {token}")
        });
        Ok(Client {
            agent,
            target: format!("Elasticsearch {base} ({})", conn.object),
            credentials: format!("user {} from Secret {}", conn.user, conn.secret),
            base,
            auth,
        })
    }

    /// `METHOD path` with an optional JSON (or NDJSON) body; the body of a 2xx answer.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> std::result::Result<Vec<u8>, HttpError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Accept", "application/json");
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        let result = match body {
            Some((content_type, bytes)) => {
                let req = req
                    .header("Content-Type", content_type)
                    .body(bytes)
                    .map_err(|e| HttpError::Transport(format!("bad request {method} {path}: {e}")))?;
                self.agent.run(req)
            }
            // A POST or PUT without a body says so (`Content-Length: 0`), rather than sending
            // an empty chunked body, which some proxies do not read.
            None if matches!(method, "POST" | "PUT") => {
                let req = req
                    .header("Content-Length", "0")
                    .body(&[][..])
                    .map_err(|e| HttpError::Transport(format!("bad request {method} {path}: {e}")))?;
                self.agent.run(req)
            }
            None => {
                let req = req
                    .body(())
                    .map_err(|e| HttpError::Transport(format!("bad request {method} {path}: {e}")))?;
                self.agent.run(req)
            }
        };
        let mut resp = result.map_err(|e| HttpError::Transport(transport_message(&e)))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| HttpError::Transport(format!("reading the answer: {}", transport_message(&e))))?;
        if (200..300).contains(&status) {
            Ok(bytes)
        } else {
            Err(HttpError::Status {
                status,
                reason: error_reason(&bytes),
            })
        }
    }

    /// [`Client::send`] with a JSON value as the body.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> std::result::Result<Vec<u8>, HttpError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.send(method, path, Some(("application/json", &bytes)))
    }

    /// The error of a failed request, as the executor reports it: authentication failures say
    /// which credentials were refused, everything else what was being done.
    pub fn error(&self, doing: &str, e: HttpError) -> ExecError {
        let message = match &e {
            HttpError::Status { status: 401, reason } => format!(
                "{}: {doing}: authentication failed for {} (HTTP 401: {reason}); fix: correct the username and password in that Secret",
                self.target, self.credentials
            ),
            HttpError::Status { status: 403, reason } => format!(
                "{}: {doing}: {} is not allowed to (HTTP 403: {reason}); fix: grant that user the needed privileges or use another user",
                self.target, self.credentials
            ),
            other => format!("{}: {doing}: {other}", self.target),
        };
        ExecError::Tool {
            tool: TOOL.into(),
            message,
        }
    }

    /// `METHOD path` decoded as `T`; failures as [`Client::error`].
    pub fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        doing: &str,
    ) -> Result<T> {
        let bytes = match body {
            Some(b) => self.send_json(method, path, b),
            None => self.send(method, path, None),
        }
        .map_err(|e| self.error(doing, e))?;
        serde_json::from_slice(&bytes).map_err(|e| ExecError::Tool {
            tool: TOOL.into(),
            message: format!("{}: {doing}: unexpected answer: {e}", self.target),
        })
    }

    /// Wait until the cluster answers `GET /` and its health is not red; fail at once when it
    /// refuses the credentials.
    pub fn wait_ready(&self, timeout: Duration) -> Result<ClusterInfo> {
        let started = Instant::now();
        let mut last;
        loop {
            match self.send("GET", "/", None) {
                Ok(bytes) => {
                    let info = parse_info(&bytes);
                    match self.send("GET", "/_cluster/health?wait_for_status=yellow&timeout=5s", None) {
                        Ok(h) => {
                            let status = serde_json::from_slice::<serde_json::Value>(&h)
                                .ok()
                                .and_then(|v| v["status"].as_str().map(str::to_string))
                                .unwrap_or_default();
                            if status != "red" {
                                tracing::info!(
                                    distribution = %info.distribution,
                                    version = %info.version,
                                    health = %status,
                                    "cluster ready"
                                );
                                return Ok(info);
                            }
                            last = "cluster health is red".to_string();
                        }
                        Err(
                            e @ HttpError::Status {
                                status: 401 | 403, ..
                            },
                        ) => {
                            return Err(self.error("reading the cluster health", e));
                        }
                        // Health may be forbidden to a restricted user, or time out (408).
                        Err(HttpError::Status { status: 408, .. }) => {
                            last = "cluster health did not reach yellow".to_string();
                        }
                        Err(HttpError::Status { .. }) => return Ok(info),
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(
                    e @ HttpError::Status {
                        status: 401 | 403, ..
                    },
                ) => {
                    return Err(self.error("connecting", e));
                }
                Err(e) => last = e.to_string(),
            }
            if started.elapsed() >= timeout {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(ExecError::NotReady {
            target: self.target.clone(),
            waited: crate::duration::go_duration(started.elapsed()),
            detail: last,
        })
    }
}

/// The caBundle's PEM: base64 of it as YAML carries Go `[]byte`, or the PEM itself.
fn decode_ca_bundle(bundle: &str) -> std::result::Result<Vec<u8>, String> {
    let trimmed = bundle.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.as_bytes().to_vec());
    }
    let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("is neither PEM nor base64 of PEM: {e}"))
}

fn parse_info(bytes: &[u8]) -> ClusterInfo {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    ClusterInfo {
        distribution: v["version"]["distribution"]
            .as_str()
            .unwrap_or("elasticsearch")
            .to_string(),
        version: v["version"]["number"].as_str().unwrap_or_default().to_string(),
        cluster_name: v["cluster_name"].as_str().unwrap_or_default().to_string(),
    }
}

/// A ureq error with its causes.
fn transport_message(e: &ureq::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

/// The server's error text: `type: reason` of `{"error":{…}}`, the string of
/// `{"error":"…"}`, or the body's start.
pub(crate) fn error_reason(bytes: &[u8]) -> String {
    let v: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            return if text.is_empty() {
                "(no body)".into()
            } else {
                text.chars().take(300).collect()
            };
        }
    };
    match &v["error"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(_) => describe_error(&v["error"]),
        _ => v.to_string().chars().take(300).collect(),
    }
}

/// `type: reason` of an error object (the root cause's when the reason is generic).
pub(crate) fn describe_error(e: &serde_json::Value) -> String {
    let kind = e["type"].as_str().unwrap_or("error");
    let reason = e["reason"].as_str().unwrap_or_default();
    let mut text = format!("{kind}: {reason}");
    if let Some(cause) = e["caused_by"].as_object() {
        let c = describe_error(&serde_json::Value::Object(cause.clone()));
        text = format!("{text} (caused by {c})");
    }
    text
}

/// A path segment with everything but `[A-Za-z0-9._-]` percent-encoded.
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reasons_are_read() {
        assert_eq!(
            error_reason(br#"{"error":{"type":"resource_already_exists_exception","reason":"index [a] already exists"},"status":400}"#),
            "resource_already_exists_exception: index [a] already exists"
        );
        assert_eq!(
            error_reason(br#"{"error":"no handler found"}"#),
            "no handler found"
        );
        assert_eq!(error_reason(b"Unauthorized"), "Unauthorized");
        assert_eq!(error_reason(b""), "(no body)");
        assert_eq!(encode("logs-2024.01+x"), "logs-2024.01%2Bx");
    }

    #[test]
    fn ca_bundles_decode() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(decode_ca_bundle(pem).unwrap(), pem.trim().as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(decode_ca_bundle(&b64).unwrap(), pem.as_bytes());
        assert!(decode_ca_bundle("!!!").is_err());
    }
}
