//! A small blocking HTTP/1.1 client (ureq, plain http only, no proxy) for readiness checks and tests.

use std::sync::OnceLock;
use std::time::Duration;

use ureq::Agent;

use crate::error::{Error, Result};

/// Status and body of an HTTP response. Non-2xx statuses are returned, not turned into errors.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Ok(self)` for 2xx, otherwise an error naming the request and showing the body.
    pub fn ensure_success(self, what: &str) -> Result<Self> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(Error::Protocol(format!(
                "{what}: HTTP {}: {}",
                self.status,
                self.text()
            )))
        }
    }
}

/// Status codes are returned, not errors; never a proxy (test servers are on loopback).
fn new_agent(timeout: Duration) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(Duration::from_secs(5)))
        .build()
        .into()
}

/// For requests from tests: up to 5 minutes each.
fn agent() -> &'static Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    AGENT.get_or_init(|| new_agent(Duration::from_secs(300)))
}

/// For readiness probes: a hung server must not stall the start-up loop.
fn probe_agent() -> &'static Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    AGENT.get_or_init(|| new_agent(Duration::from_secs(5)))
}

/// Sends `method url` with `headers` and an optional body.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Result<Response> {
    send(agent(), method, url, headers, body)
}

fn send(
    agent: &Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response> {
    let fail = |message: String| Error::Http {
        method: method.to_owned(),
        url: url.to_owned(),
        message,
    };
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let result = match body {
        Some(bytes) => agent.run(builder.body(bytes).map_err(|e| fail(e.to_string()))?),
        None => agent.run(builder.body(()).map_err(|e| fail(e.to_string()))?),
    };
    let mut response = result.map_err(|e| fail(e.to_string()))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .map_err(|e| fail(e.to_string()))?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response> {
    request("GET", url, &[], None)
}

/// `POST url` with a body of the given content type.
pub fn post(url: &str, content_type: &str, body: &[u8]) -> Result<Response> {
    request("POST", url, &[("content-type", content_type)], Some(body))
}

/// `PUT url` with a body of the given content type.
pub fn put(url: &str, content_type: &str, body: &[u8]) -> Result<Response> {
    request("PUT", url, &[("content-type", content_type)], Some(body))
}

/// [`request`] with the short timeout of readiness probes.
pub(crate) fn probe_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response> {
    send(probe_agent(), method, url, headers, body)
}

/// Readiness probe: any HTTP response at all (whatever the status) means the server is up.
pub(crate) fn answers(url: &str) -> std::result::Result<(), String> {
    send(probe_agent(), "GET", url, &[], None)
        .map(|_| ())
        .map_err(crate::process::short)
}

/// Readiness probe: a 2xx response.
pub(crate) fn answers_ok(url: &str) -> std::result::Result<(), String> {
    match send(probe_agent(), "GET", url, &[], None) {
        Ok(r) if r.is_success() => Ok(()),
        Ok(r) => Err(format!(
            "GET {url}: HTTP {}: {}",
            r.status,
            crate::process::short(r.text())
        )),
        Err(e) => Err(crate::process::short(e)),
    }
}

/// Percent-encodes everything except RFC 3986 unreserved characters (and `/` when `keep_slash`).
pub fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
