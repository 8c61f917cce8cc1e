//! Hook execution (HookTemplate actions: exec, httpGet, httpPost, tcpSocket).
//!
//! [`execute`] runs one hook of a session: it resolves the HookTemplate's parameters against the
//! hook's `params` and `variables`, renders the action (parameter substitution plus the Summary
//! fields KubeStash renders into hook templates), then tries the action `1 + maxRetry` times, each
//! attempt bounded by the hook's `timeout`. Success follows KubeStash: exec exits 0, HTTP answers
//! 200–399, a TCP port accepts a connection.
//!
//! Everything here blocks (HTTP, TCP, the retry delay); async callers run it on a blocking thread.
//! Exec actions are delegated to the platform through an [`ExecFn`] (a child process embedded, a
//! command in the selected pod on Kubernetes); HTTP and TCP actions are performed here, as the
//! KubeStash operator does for `Operator` executors.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use kstash_api::common::{HookExecutionPolicy, HookInfo};
use kstash_api::core::{HookAction, HookTemplate, HttpHeader};
use kstash_api::duration::{format_go_duration, parse_go_duration};

use crate::platform::{CommandOutput, PlatformError};

/// Bound of one attempt when the hook sets no `timeout` (or `0`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two attempts of a failing hook.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Host of HTTP and TCP actions that name none. KubeStash probes the pod's IP there; our embedded
/// runtime has no pod, so an action without a host targets the local machine.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// How much of a failing HTTP response's body goes into the error message.
const BODY_EXCERPT_BYTES: u64 = 200;

/// Rendered into hook templates as KubeStash's Summary (Go field names for templates).
///
/// Templates reference the Go field names (`{{ .Status.Phase }}`, `{{ .Target.APIGroup }}`); the
/// serialized form uses KubeStash's JSON tags (`status.phase`, `target.apiGroup`).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The session (BackupSession or RestoreSession) name.
    pub name: String,
    pub namespace: String,
    /// The BackupConfiguration or RestoreSession that ran the session.
    pub invoker: SummaryRef,
    /// The backed up or restored application.
    pub target: SummaryRef,
    pub status: SummaryStatus,
}

/// A typed object reference of the Summary (kmodules `TypedObjectReference`).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryRef {
    pub api_group: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// The session outcome of the Summary (empty phase for pre hooks).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryStatus {
    pub phase: String,
    pub duration: String,
    pub error: String,
}

/// Why a hook did not succeed. The message names the hook, its HookTemplate and the cause.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook or its template cannot run as written (a required parameter without value, an
    /// unsupported template expression, an invalid timeout or port, no action). Never retried.
    #[error("hook \"{hook}\" (HookTemplate {template}): {message}")]
    Invalid {
        hook: String,
        template: String,
        message: String,
    },
    /// The action ran and failed on every attempt; `message` is the cause of the last attempt.
    #[error("hook \"{hook}\" (HookTemplate {template}): {message}{}", attempts_suffix(.attempts))]
    Failed {
        hook: String,
        template: String,
        attempts: u32,
        message: String,
    },
}

fn attempts_suffix(attempts: &u32) -> String {
    if *attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// Runs an exec action's command: `(command, environment, timeout)`. The command has been rendered;
/// the environment holds the parameters, the hook's variables and the Summary as `KSTASH_HOOK_PHASE`,
/// `_ERROR`, `_DURATION`, `_SESSION`, `_NAMESPACE`, `_TARGET_KIND`, `_TARGET_NAME`, `_TARGET_NAMESPACE`,
/// `_INVOKER_KIND` and `_INVOKER_NAME` (these win over a parameter or variable of the same name).
pub type ExecFn<'a> =
    &'a dyn Fn(&[String], &BTreeMap<String, String>, Duration) -> Result<CommandOutput, PlatformError>;

/// Run one hook: resolve params, render, try 1 + maxRetry times, each attempt bounded by `timeout`
/// (default 30s when unset).
pub fn execute(
    hook: &HookInfo,
    template: &HookTemplate,
    summary: &Summary,
    exec: ExecFn<'_>,
) -> Result<(), HookError> {
    let template_label = template_label(hook, template);
    let invalid = |message: String| HookError::Invalid {
        hook: hook.name.clone(),
        template: template_label.clone(),
        message,
    };

    let timeout = hook_timeout(hook).map_err(invalid)?;
    let vars = resolve_vars(hook, template).map_err(invalid)?;
    let renderer = Renderer { vars: &vars, summary };
    let action = template
        .spec
        .action
        .as_ref()
        .ok_or_else(|| {
            "the HookTemplate has no action (spec.action must set exec, httpGet, httpPost or tcpSocket)"
                .to_string()
        })
        .and_then(|action| prepare(action, &renderer, &vars, summary))
        .map_err(invalid)?;

    let attempts = 1 + u32::try_from(hook.max_retry.max(0)).unwrap_or(0);
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        match action.run(timeout, exec) {
            Ok(()) => {
                tracing::info!(
                    hook = %hook.name, template = %template_label, attempt, attempts,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "hook succeeded"
                );
                return Ok(());
            }
            Err(message) => {
                tracing::info!(
                    hook = %hook.name, template = %template_label, attempt, attempts, error = %message,
                    "hook attempt failed"
                );
                if attempt >= attempts {
                    return Err(HookError::Failed {
                        hook: hook.name.clone(),
                        template: template_label,
                        attempts,
                        message,
                    });
                }
            }
        }
        attempt += 1;
        std::thread::sleep(RETRY_DELAY);
    }
}

/// Whether a post hook runs given the session outcome: Always; OnSuccess only when succeeded;
/// OnFailure only when failed. An unset policy is `Always` (KubeStash's default).
pub fn should_run(policy: Option<HookExecutionPolicy>, session_succeeded: bool) -> bool {
    match policy.unwrap_or_default() {
        HookExecutionPolicy::Always => true,
        HookExecutionPolicy::OnSuccess => session_succeeded,
        HookExecutionPolicy::OnFailure => !session_succeeded,
    }
}

/// `namespace/name` of the template, from its metadata or else from the hook's reference.
fn template_label(hook: &HookInfo, template: &HookTemplate) -> String {
    let reference = hook.hook_template.as_ref();
    let name = template
        .metadata
        .name
        .clone()
        .or_else(|| reference.map(|r| r.name.clone()))
        .unwrap_or_default();
    let namespace = template
        .metadata
        .namespace
        .clone()
        .or_else(|| reference.and_then(|r| r.namespace.clone()))
        .unwrap_or_default();
    if namespace.is_empty() {
        name
    } else {
        format!("{namespace}/{name}")
    }
}

fn hook_timeout(hook: &HookInfo) -> Result<Duration, String> {
    match hook.timeout.as_deref().map(str::trim) {
        None | Some("") => Ok(DEFAULT_TIMEOUT),
        Some(s) => match parse_go_duration(s) {
            Ok(d) if d.is_zero() => Ok(DEFAULT_TIMEOUT),
            Ok(d) => Ok(d),
            Err(e) => Err(format!("invalid timeout {s:?}: {e} (field hooks[].timeout)")),
        },
    }
}

/// The substitution map: template parameter defaults, overlaid by the hook's `params`, then the
/// hook's `variables`.
fn resolve_vars(hook: &HookInfo, template: &HookTemplate) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for def in &template.spec.params {
        if !def.name.is_empty() && !def.default.is_empty() {
            vars.insert(def.name.clone(), def.default.clone());
        }
    }
    match &hook.params {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(map)) => {
            for (key, value) in map {
                let value = match value {
                    serde_json::Value::Null => continue,
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Number(n) => n.to_string(),
                    other => other.to_string(),
                };
                vars.insert(key.clone(), value);
            }
        }
        Some(other) => {
            return Err(format!(
                "params must be an object of name: value pairs, got {}",
                excerpt(&other.to_string(), 80)
            ));
        }
    }
    for def in &template.spec.params {
        if def.required && vars.get(&def.name).is_none_or(|v| v.is_empty()) {
            return Err(format!(
                "required parameter {:?} has no value: set hooks.<preBackup|postBackup|preRestore|postRestore>\
                 [name={:?}].params.{}{}",
                def.name,
                hook.name,
                def.name,
                if def.usage.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", def.usage)
                }
            ));
        }
    }
    for var in &hook.variables {
        match &var.value {
            Some(value) => {
                vars.insert(var.name.clone(), value.clone());
            }
            None if var.value_from.is_some() => {
                return Err(format!(
                    "variable {:?} uses valueFrom, which hooks run by kstash do not resolve; set value",
                    var.name
                ));
            }
            None => {
                vars.insert(var.name.clone(), String::new());
            }
        }
    }
    Ok(vars)
}

/// A rendered action, ready to be attempted.
enum Action {
    Exec {
        command: Vec<String>,
        env: BTreeMap<String, String>,
    },
    Http(HttpRequest),
    Tcp {
        host: String,
        port: u16,
    },
}

struct HttpRequest {
    method: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    body: PostBody,
}

enum PostBody {
    Empty,
    Text(String),
    Form(Vec<(String, String)>),
}

/// Render the template's action. Like KubeStash's prober, the first of exec, httpGet, httpPost and
/// tcpSocket that is set is the action.
fn prepare(
    action: &HookAction,
    renderer: &Renderer<'_>,
    vars: &BTreeMap<String, String>,
    summary: &Summary,
) -> Result<Action, String> {
    let set = [
        action.exec.is_some(),
        action.http_get.is_some(),
        action.http_post.is_some(),
        action.tcp_socket.is_some(),
    ];
    if set.iter().filter(|s| **s).count() > 1 {
        tracing::warn!(
            "HookTemplate action sets more than one handler; the first of exec, httpGet, httpPost, tcpSocket runs"
        );
    }
    if let Some(exec) = &action.exec {
        if exec.command.is_empty() {
            return Err("action.exec.command is empty".into());
        }
        let command = exec
            .command
            .iter()
            .map(|arg| renderer.render(arg, false))
            .collect::<Result<Vec<_>, _>>()?;
        let mut env = vars.clone();
        for (key, value) in [
            ("KSTASH_HOOK_SESSION", &summary.name),
            ("KSTASH_HOOK_NAMESPACE", &summary.namespace),
            ("KSTASH_HOOK_PHASE", &summary.status.phase),
            ("KSTASH_HOOK_ERROR", &summary.status.error),
            ("KSTASH_HOOK_DURATION", &summary.status.duration),
            ("KSTASH_HOOK_TARGET_KIND", &summary.target.kind),
            ("KSTASH_HOOK_TARGET_NAME", &summary.target.name),
            ("KSTASH_HOOK_TARGET_NAMESPACE", &summary.target.namespace),
            ("KSTASH_HOOK_INVOKER_KIND", &summary.invoker.kind),
            ("KSTASH_HOOK_INVOKER_NAME", &summary.invoker.name),
        ] {
            env.insert(key.to_string(), value.clone());
        }
        return Ok(Action::Exec { command, env });
    }
    if let Some(get) = &action.http_get {
        let target = HttpTarget {
            field: "httpGet",
            scheme: &get.scheme,
            host: &get.host,
            port: &get.port,
            path: &get.path,
            headers: &get.http_headers,
        };
        let (url, headers) = target.render(renderer)?;
        return Ok(Action::Http(HttpRequest {
            method: "GET",
            url,
            headers,
            body: PostBody::Empty,
        }));
    }
    if let Some(post) = &action.http_post {
        let target = HttpTarget {
            field: "httpPost",
            scheme: &post.scheme,
            host: &post.host,
            port: &post.port,
            path: &post.path,
            headers: &post.http_headers,
        };
        let (url, mut headers) = target.render(renderer)?;
        let content_type = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            .map(|(_, value)| value.to_ascii_lowercase());
        let body = if !post.body.is_empty() {
            if !post.form.is_empty() {
                tracing::warn!("httpPost sets both body and form; the body is sent");
            }
            let trimmed = post.body.trim_start();
            let json = content_type.as_deref().is_some_and(|ct| ct.contains("json"))
                || trimmed.starts_with('{')
                || trimmed.starts_with('[');
            if json && content_type.is_none() {
                headers.push(("Content-Type".into(), "application/json".into()));
            }
            PostBody::Text(renderer.render(&post.body, json)?)
        } else if !post.form.is_empty() {
            let mut fields = Vec::new();
            for entry in &post.form {
                let key = renderer.render(&entry.key, false)?;
                for value in &entry.values {
                    fields.push((key.clone(), renderer.render(value, false)?));
                }
            }
            PostBody::Form(fields)
        } else {
            PostBody::Empty
        };
        return Ok(Action::Http(HttpRequest {
            method: "POST",
            url,
            headers,
            body,
        }));
    }
    if let Some(tcp) = &action.tcp_socket {
        let host = render_host(&tcp.host, renderer, "tcpSocket")?;
        let port = parse_port(&tcp.port, renderer, "tcpSocket")?
            .ok_or_else(|| "action.tcpSocket.port is required".to_string())?;
        return Ok(Action::Tcp { host, port });
    }
    Err("the HookTemplate has no action (spec.action must set exec, httpGet, httpPost or tcpSocket)".into())
}

/// The URL parts shared by httpGet and httpPost.
struct HttpTarget<'a> {
    field: &'static str,
    scheme: &'a str,
    host: &'a str,
    port: &'a serde_json::Value,
    path: &'a str,
    headers: &'a [HttpHeader],
}

impl HttpTarget<'_> {
    fn render(&self, renderer: &Renderer<'_>) -> Result<(String, Vec<(String, String)>), String> {
        let field = self.field;
        let scheme = match renderer.render(self.scheme, false)?.to_ascii_lowercase().as_str() {
            "" | "http" => "http",
            "https" => "https",
            other => return Err(format!("action.{field}.scheme {other:?} is not HTTP or HTTPS")),
        };
        let host = render_host(self.host, renderer, field)?;
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        let port = parse_port(self.port, renderer, field)?;
        let mut path = renderer.render(self.path, false)?;
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        // Without a port the scheme's default applies (80 or 443).
        let url = match port {
            Some(port) => format!("{scheme}://{host}:{port}{path}"),
            None => format!("{scheme}://{host}{path}"),
        };
        let headers = self
            .headers
            .iter()
            .map(|h| {
                Ok((
                    renderer.render(&h.name, false)?,
                    renderer.render(&h.value, false)?,
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok((url, headers))
    }
}

fn render_host(host: &str, renderer: &Renderer<'_>, field: &str) -> Result<String, String> {
    let host = renderer.render(host, false)?.trim().to_string();
    if host.contains("://") || host.contains('/') {
        return Err(format!(
            "action.{field}.host {host:?} must be a host name or address, not a URL (use scheme, port and path)"
        ));
    }
    Ok(if host.is_empty() {
        DEFAULT_HOST.to_string()
    } else {
        host
    })
}

/// A port is an int or a string holding a number (after substitution). A named port (`http`) needs a
/// pod's container ports to resolve against, which kstash does not have here.
fn parse_port(port: &serde_json::Value, renderer: &Renderer<'_>, field: &str) -> Result<Option<u16>, String> {
    let bad = |shown: &str| format!("action.{field}.port {shown} is not a port number between 1 and 65535");
    match port {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => match n.as_u64().and_then(|n| u16::try_from(n).ok()) {
            Some(p) if p > 0 => Ok(Some(p)),
            _ => Err(bad(&n.to_string())),
        },
        serde_json::Value::String(s) => {
            let rendered = renderer.render(s, false)?;
            let rendered = rendered.trim();
            if rendered.is_empty() {
                return Ok(None);
            }
            if !rendered.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "action.{field}.port {rendered:?} is a named port, which kstash cannot resolve \
                     (there is no pod to look it up in); use the port number"
                ));
            }
            match rendered.parse::<u16>() {
                Ok(p) if p > 0 => Ok(Some(p)),
                _ => Err(bad(&format!("{rendered:?}"))),
            }
        }
        other => Err(bad(&other.to_string())),
    }
}

impl Action {
    /// One attempt; the error is the cause, for the hook's message.
    fn run(&self, timeout: Duration, exec: ExecFn<'_>) -> Result<(), String> {
        match self {
            Action::Exec { command, env } => match exec(command, env, timeout) {
                Ok(out) if out.success => Ok(()),
                Ok(out) => Err(format!("command {command:?} failed: {}", out.message)),
                Err(e) => Err(format!("command {command:?} could not run: {e}")),
            },
            Action::Http(req) => req.send(timeout),
            Action::Tcp { host, port } => tcp_connect(host, *port, timeout),
        }
    }
}

impl HttpRequest {
    fn send(&self, timeout: Duration) -> Result<(), String> {
        // Statuses are judged here (200–399 succeed), so ureq must return 4xx/5xx as responses and
        // must not follow redirects: a 3xx is a success, as in KubeStash.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .user_agent(concat!("kstash-hook/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let (method, url) = (self.method, &self.url);
        let result = match &self.body {
            PostBody::Empty if method == "GET" => {
                let mut req = agent.get(url);
                for (name, value) in &self.headers {
                    req = req.header(name, value);
                }
                req.call()
            }
            body => {
                let mut req = agent.post(url);
                for (name, value) in &self.headers {
                    req = req.header(name, value);
                }
                match body {
                    PostBody::Empty => req.send_empty(),
                    PostBody::Text(text) => req.send(text.as_str()),
                    PostBody::Form(fields) => req.send_form(fields.iter().map(|(k, v)| (k, v))),
                }
            }
        };
        match result {
            Ok(mut response) => {
                let status = response.status();
                if (200..400).contains(&status.as_u16()) {
                    return Ok(());
                }
                let mut buf = Vec::new();
                // The excerpt is best effort: a body that cannot be read leaves it empty.
                let _ = response
                    .body_mut()
                    .as_reader()
                    .take(BODY_EXCERPT_BYTES)
                    .read_to_end(&mut buf);
                let body = String::from_utf8_lossy(&buf);
                let body = body.trim();
                let status = match status.canonical_reason() {
                    Some(reason) => format!("{} {reason}", status.as_u16()),
                    None => status.as_u16().to_string(),
                };
                if body.is_empty() {
                    Err(format!("{method} {url} answered {status}"))
                } else {
                    Err(format!("{method} {url} answered {status}: {body}"))
                }
            }
            Err(ureq::Error::Timeout(_)) => Err(format!(
                "{method} {url} timed out after {}",
                format_go_duration(timeout)
            )),
            Err(e) => Err(format!("{method} {url} failed: {e}")),
        }
    }
}

fn tcp_connect(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("TCP connection to {host}:{port} failed: cannot resolve {host:?}: {e}"))?
        .collect();
    let mut cause = format!("{host:?} resolves to no address");
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            cause = format!("timed out after {}", format_go_duration(timeout));
            break;
        }
        match TcpStream::connect_timeout(&addr, remaining) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                cause = format!("timed out after {}", format_go_duration(timeout));
            }
            Err(e) => cause = e.to_string(),
        }
    }
    Err(format!("TCP connection to {host}:{port} failed: {cause}"))
}

fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Template rendering
//
// Hook templates mix two syntaxes: `${NAME}` / `${NAME:=default}` parameter substitution (the
// envsubst syntax KubeStash uses for addon and hook parameters) and Go `text/template` actions over
// the Summary. Only field references to the Summary are implemented (`{{ .Status.Phase }}`,
// `{{- .Target.Name -}}`): the Go templates in KubeStash's hook documentation and examples only
// ever reference Summary fields, and no Go-template engine is maintained for Rust (Tera, Handlebars
// and MiniJinja have different syntax and semantics). Any other action (`if`, `range`, pipelines,
// functions, variables) is rejected with an error naming the expression instead of being rendered
// differently from KubeStash.
//
// Substituted values are never rescanned, so a value containing `${X}` or `{{` stays literal. In
// JSON bodies, values substituted inside a JSON string literal are JSON-escaped.

/// One piece of a template.
enum Token<'a> {
    Text(&'a str),
    Var {
        name: &'a str,
        default: Option<&'a str>,
        raw: &'a str,
    },
    Action {
        inner: &'a str,
        raw: &'a str,
    },
}

struct Renderer<'a> {
    vars: &'a BTreeMap<String, String>,
    summary: &'a Summary,
}

impl Renderer<'_> {
    /// Render `input`; with `json`, values landing inside JSON string literals are escaped.
    fn render(&self, input: &str, json: bool) -> Result<String, String> {
        if !input.contains("${") && !input.contains("{{") {
            return Ok(input.to_string());
        }
        let tokens = tokenize(input)?;
        let mut out = String::with_capacity(input.len());
        let mut state = JsonState::default();
        for token in &tokens {
            let value: &str = match token {
                Token::Text(text) => {
                    out.push_str(text);
                    if json {
                        state.feed(text);
                    }
                    continue;
                }
                Token::Var { name, default, raw } => match (self.vars.get(*name), *default) {
                    (Some(v), Some(d)) if v.is_empty() => d,
                    (Some(v), _) => v.as_str(),
                    (None, Some(d)) => d,
                    // An unknown `${X}` is left as written (it may be meant for a shell).
                    (None, None) => raw,
                },
                Token::Action { inner, raw } => {
                    summary_field(self.summary, inner.trim()).ok_or_else(|| {
                        format!(
                            "unsupported template expression {raw:?}: hook templates support only Summary \
                         field references: {}",
                            SUMMARY_FIELDS.join(", ")
                        )
                    })?
                }
            };
            if json && state.in_string {
                push_json_escaped(&mut out, value);
            } else {
                out.push_str(value);
                if json {
                    state.feed(value);
                }
            }
        }
        Ok(out)
    }
}

const SUMMARY_FIELDS: &[&str] = &[
    "{{ .Name }}",
    "{{ .Namespace }}",
    "{{ .Invoker.APIGroup }}",
    "{{ .Invoker.Kind }}",
    "{{ .Invoker.Name }}",
    "{{ .Invoker.Namespace }}",
    "{{ .Target.APIGroup }}",
    "{{ .Target.Kind }}",
    "{{ .Target.Name }}",
    "{{ .Target.Namespace }}",
    "{{ .Status.Phase }}",
    "{{ .Status.Duration }}",
    "{{ .Status.Error }}",
];

/// The value of a Go field reference to the Summary (`.Status.Phase`), or None when unsupported.
fn summary_field<'s>(summary: &'s Summary, expr: &str) -> Option<&'s str> {
    let reference = |r: &'s SummaryRef, field: &str| -> Option<&'s str> {
        match field {
            "APIGroup" => Some(&r.api_group),
            "Kind" => Some(&r.kind),
            "Name" => Some(&r.name),
            "Namespace" => Some(&r.namespace),
            _ => None,
        }
    };
    let path = expr.strip_prefix('.')?;
    match path.split_once('.') {
        None => match path {
            "Name" => Some(&summary.name),
            "Namespace" => Some(&summary.namespace),
            _ => None,
        },
        Some(("Invoker", field)) => reference(&summary.invoker, field),
        Some(("Target", field)) => reference(&summary.target, field),
        Some(("Status", "Phase")) => Some(&summary.status.phase),
        Some(("Status", "Duration")) => Some(&summary.status.duration),
        Some(("Status", "Error")) => Some(&summary.status.error),
        _ => None,
    }
}

/// Split a template into text, `${…}` and `{{…}}` tokens, applying Go's `{{-` / `-}}` whitespace
/// trimming to the neighbouring text.
fn tokenize(input: &str) -> Result<Vec<Token<'_>>, String> {
    let mut tokens = Vec::new();
    let mut trim_next_text = false;
    let mut text_start = 0;
    let mut i = 0;
    let bytes = input.as_bytes();
    while i < bytes.len() {
        if bytes[i..].starts_with(b"{{") {
            let Some(len) = input[i + 2..].find("}}") else {
                return Err(format!(
                    "unterminated template action {:?}",
                    excerpt(&input[i..], 40)
                ));
            };
            let raw = &input[i..i + 2 + len + 2];
            let mut inner = &input[i + 2..i + 2 + len];
            let mut text = &input[text_start..i];
            // Go's trim markers are a dash next to the braces followed (or preceded) by a space.
            if let Some(rest) = inner
                .strip_prefix('-')
                .filter(|r| r.starts_with(char::is_whitespace))
            {
                inner = rest;
                text = text.trim_end();
            }
            push_text(&mut tokens, text, &mut trim_next_text);
            if let Some(rest) = inner
                .strip_suffix('-')
                .filter(|r| r.ends_with(char::is_whitespace))
            {
                inner = rest;
                trim_next_text = true;
            }
            tokens.push(Token::Action { inner, raw });
            i += raw.len();
            text_start = i;
            continue;
        }
        if bytes[i..].starts_with(b"${")
            && let Some(len) = input[i + 2..].find('}')
        {
            let raw = &input[i..i + 2 + len + 1];
            let body = &input[i + 2..i + 2 + len];
            let (name, default) = match body.find(":=").or_else(|| body.find(":-")) {
                Some(at) => (&body[..at], Some(&body[at + 2..])),
                None => (body, None),
            };
            if is_var_name(name) {
                push_text(&mut tokens, &input[text_start..i], &mut trim_next_text);
                tokens.push(Token::Var { name, default, raw });
                i += raw.len();
                text_start = i;
                continue;
            }
        }
        i += 1;
    }
    push_text(&mut tokens, &input[text_start..], &mut trim_next_text);
    Ok(tokens)
}

fn push_text<'a>(tokens: &mut Vec<Token<'a>>, text: &'a str, trim_next: &mut bool) {
    let text = if std::mem::take(trim_next) {
        text.trim_start()
    } else {
        text
    };
    if !text.is_empty() {
        tokens.push(Token::Text(text));
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Tracks whether the text rendered so far ends inside a JSON string literal.
#[derive(Default)]
struct JsonState {
    in_string: bool,
    escaped: bool,
}

impl JsonState {
    fn feed(&mut self, text: &str) {
        for c in text.chars() {
            if !self.in_string {
                self.in_string = c == '"';
            } else if self.escaped {
                self.escaped = false;
            } else if c == '\\' {
                self.escaped = true;
            } else if c == '"' {
                self.in_string = false;
            }
        }
    }
}

fn push_json_escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use k8s_openapi::api::core::v1::EnvVar;
    use kstash_api::common::{ObjectReference, ParameterDefinition};
    use kstash_api::core::{
        ExecAction, FormEntry, HookTemplateSpec, HttpGetAction, HttpPostAction, TcpSocketAction,
    };
    use serde_json::json;

    // ----- scaffolding --------------------------------------------------------------------

    /// One request as the test server saw it.
    #[derive(Debug, Clone)]
    struct Recorded {
        request_line: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Recorded {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    struct TestServer {
        port: u16,
        requests: Arc<Mutex<Vec<Recorded>>>,
    }

    impl TestServer {
        fn requests(&self) -> Vec<Recorded> {
            self.requests.lock().unwrap().clone()
        }
    }

    /// An HTTP/1.1 server on 127.0.0.1 answering the n-th request with `statuses[n]` (the last
    /// status once exhausted) and `body`; it records every request before answering.
    fn serve(statuses: &[u16], body: &'static str) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let statuses = statuses.to_vec();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                recorded.lock().unwrap().push(request);
                let status = statuses.get(n).or(statuses.last()).copied().unwrap_or(200);
                let reason = match status {
                    200 => "OK",
                    302 => "Found",
                    500 => "Internal Server Error",
                    503 => "Service Unavailable",
                    _ => "Whatever",
                };
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
                let _ = stream.flush();
            }
        });
        TestServer { port, requests }
    }

    fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).ok()?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        Some(Recorded {
            request_line: request_line.trim_end().to_string(),
            headers,
            body: String::from_utf8(body).unwrap(),
        })
    }

    fn template(action: HookAction, params: Vec<ParameterDefinition>) -> HookTemplate {
        let mut t = HookTemplate::new(
            "slack",
            HookTemplateSpec {
                params,
                action: Some(action),
                ..Default::default()
            },
        );
        t.metadata.namespace = Some("demo".into());
        t
    }

    fn hook(params: serde_json::Value) -> HookInfo {
        HookInfo {
            name: "notify".into(),
            hook_template: Some(ObjectReference {
                namespace: Some("demo".into()),
                name: "slack".into(),
            }),
            params: Some(params),
            ..Default::default()
        }
    }

    fn summary() -> Summary {
        Summary {
            name: "pg-backup-frequent-1700000000".into(),
            namespace: "demo".into(),
            invoker: SummaryRef {
                api_group: "core.kubestash.com".into(),
                kind: "BackupConfiguration".into(),
                name: "pg-backup".into(),
                namespace: "demo".into(),
            },
            target: SummaryRef {
                api_group: "kubedb.com".into(),
                kind: "Postgres".into(),
                name: "sample-pg".into(),
                namespace: "demo".into(),
            },
            status: SummaryStatus {
                phase: "Failed".into(),
                duration: "1m2s".into(),
                error: "pg_dump: \"db\" failed\nline two\twith \\ backslash".into(),
            },
        }
    }

    fn get_action(port: u16, path: &str) -> HookAction {
        HookAction {
            http_get: Some(HttpGetAction {
                path: path.into(),
                port: json!(port),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn no_exec(
        _: &[String],
        _: &BTreeMap<String, String>,
        _: Duration,
    ) -> Result<CommandOutput, PlatformError> {
        panic!("exec must not be called")
    }

    fn param(name: &str, required: bool, default: &str) -> ParameterDefinition {
        ParameterDefinition {
            name: name.into(),
            required,
            default: default.into(),
            ..Default::default()
        }
    }

    // ----- HTTP -----------------------------------------------------------------------------

    #[test]
    fn hooks_http_get_200_succeeds_with_rendered_path_and_headers() {
        let server = serve(&[200], "ok");
        let mut action = get_action(server.port, "/ping/${TARGET}");
        action.http_get.as_mut().unwrap().http_headers = vec![HttpHeader {
            name: "X-Session".into(),
            value: "{{ .Name }}".into(),
        }];
        let t = template(action, vec![param("TARGET", false, "default-target")]);
        execute(&hook(json!({"TARGET": "sample-pg"})), &t, &summary(), &no_exec).unwrap();
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].request_line, "GET /ping/sample-pg HTTP/1.1");
        assert_eq!(
            requests[0].header("x-session"),
            Some("pg-backup-frequent-1700000000")
        );
    }

    #[test]
    fn hooks_http_get_redirect_is_success_and_not_followed() {
        let server = serve(&[302], "");
        let t = template(get_action(server.port, "/moved"), vec![]);
        execute(&hook(json!({})), &t, &summary(), &no_exec).unwrap();
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn hooks_http_get_500_is_an_error_naming_hook_template_url_status_and_body() {
        let server = serve(&[500], "database on fire");
        let t = template(get_action(server.port, "/x"), vec![]);
        let err = execute(&hook(json!({})), &t, &summary(), &no_exec).unwrap_err();
        assert!(matches!(err, HookError::Failed { attempts: 1, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "hook \"notify\" (HookTemplate demo/slack): GET http://127.0.0.1:{}/x answered 500 Internal \
                 Server Error: database on fire",
                server.port
            )
        );
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn hooks_retry_succeeds_on_second_attempt() {
        let server = serve(&[503, 200], "");
        let t = template(get_action(server.port, "/"), vec![]);
        let mut h = hook(json!({}));
        h.max_retry = 3;
        execute(&h, &t, &summary(), &no_exec).unwrap();
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn hooks_retries_exhausted_report_last_error_and_attempt_count() {
        let server = serve(&[503, 500], "nope");
        let t = template(get_action(server.port, "/"), vec![]);
        let mut h = hook(json!({}));
        h.max_retry = 1;
        let err = execute(&h, &t, &summary(), &no_exec).unwrap_err().to_string();
        assert!(
            err.contains("answered 500 Internal Server Error: nope (after 2 attempts)"),
            "{err}"
        );
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn hooks_http_post_json_body_renders_summary_and_params_escaped() {
        let server = serve(&[200], "");
        let body = r#"{"text": "{{ .Target.Kind }} {{.Target.Name}} in {{ .Namespace }}: {{ .Status.Phase }} after {{ .Status.Duration }}: {{ .Status.Error }}", "channel": "${CHANNEL}", "count": ${COUNT}, "session": "{{ .Name }}", "by": "{{ .Invoker.Kind }}/{{ .Invoker.Name }}"}"#;
        let action = HookAction {
            http_post: Some(HttpPostAction {
                path: "/services/${TOKEN}".into(),
                port: json!(server.port.to_string()),
                scheme: "HTTP".into(),
                body: body.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let t = template(
            action,
            vec![param("CHANNEL", false, "#general"), param("TOKEN", true, "")],
        );
        let h = hook(json!({"CHANNEL": "#ops \"alerts\"", "COUNT": 3, "TOKEN": "T0/B1"}));
        execute(&h, &t, &summary(), &no_exec).unwrap();
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].request_line, "POST /services/T0/B1 HTTP/1.1");
        assert_eq!(requests[0].header("content-type"), Some("application/json"));
        let got: serde_json::Value = serde_json::from_str(&requests[0].body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", requests[0].body));
        assert_eq!(
            got["text"],
            "Postgres sample-pg in demo: Failed after 1m2s: pg_dump: \"db\" failed\nline two\twith \\ backslash"
        );
        assert_eq!(got["channel"], "#ops \"alerts\"");
        assert_eq!(got["count"], 3);
        assert_eq!(got["session"], "pg-backup-frequent-1700000000");
        assert_eq!(got["by"], "BackupConfiguration/pg-backup");
    }

    #[test]
    fn hooks_http_post_form_is_urlencoded() {
        let server = serve(&[200], "");
        let action = HookAction {
            http_post: Some(HttpPostAction {
                port: json!(server.port),
                path: "/form".into(),
                http_headers: vec![HttpHeader {
                    name: "Authorization".into(),
                    value: "Bearer ${KEY}".into(),
                }],
                form: vec![
                    FormEntry {
                        key: "phase".into(),
                        values: vec!["{{ .Status.Phase }}".into()],
                    },
                    FormEntry {
                        key: "tag".into(),
                        values: vec!["a b".into(), "c&d=${WHO}".into()],
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let t = template(action, vec![]);
        execute(
            &hook(json!({"KEY": "s3cr3t", "WHO": "me"})),
            &t,
            &summary(),
            &no_exec,
        )
        .unwrap();
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.request_line, "POST /form HTTP/1.1");
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(r.header("authorization"), Some("Bearer s3cr3t"));
        assert_eq!(r.body, "phase=Failed&tag=a+b&tag=c%26d%3Dme");
    }

    #[test]
    fn hooks_http_timeout_on_silent_server() {
        // Bound but never accepted: the kernel completes the handshake, nobody answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = template(get_action(port, "/slow"), vec![]);
        let mut h = hook(json!({}));
        h.timeout = Some("1s".into());
        let started = Instant::now();
        let err = execute(&h, &t, &summary(), &no_exec).unwrap_err().to_string();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            err.contains(&format!("GET http://127.0.0.1:{port}/slow timed out after 1s")),
            "{err}"
        );
        drop(listener);
    }

    #[test]
    fn hooks_named_port_is_rejected() {
        let t = template(
            HookAction {
                http_get: Some(HttpGetAction {
                    port: json!("http"),
                    ..Default::default()
                }),
                ..Default::default()
            },
            vec![],
        );
        let err = execute(&hook(json!({})), &t, &summary(), &no_exec).unwrap_err();
        assert!(matches!(err, HookError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("\"http\" is a named port"), "{err}");
    }

    // ----- TCP ------------------------------------------------------------------------------

    #[test]
    fn hooks_tcp_socket_open_port_succeeds() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let action = HookAction {
            tcp_socket: Some(TcpSocketAction {
                port: json!("${PORT}"),
                host: "${HOST}".into(),
            }),
            ..Default::default()
        };
        let t = template(action, vec![param("HOST", false, "127.0.0.1")]);
        execute(&hook(json!({ "PORT": port })), &t, &summary(), &no_exec).unwrap();
    }

    #[test]
    fn hooks_tcp_socket_closed_port_fails() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let action = HookAction {
            tcp_socket: Some(TcpSocketAction {
                port: json!(port),
                host: String::new(),
            }),
            ..Default::default()
        };
        let err = execute(&hook(json!({})), &template(action, vec![]), &summary(), &no_exec).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "hook \"notify\" (HookTemplate demo/slack): TCP connection to 127.0.0.1:{port} failed: "
            )),
            "{msg}"
        );
    }

    // ----- exec -----------------------------------------------------------------------------

    type Calls = Mutex<Vec<(Vec<String>, BTreeMap<String, String>, Duration)>>;

    fn exec_action(command: &[&str]) -> HookAction {
        HookAction {
            exec: Some(ExecAction {
                command: command.iter().map(|s| s.to_string()).collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn hooks_exec_renders_command_and_environment() {
        let calls = Calls::default();
        let fake = |cmd: &[String], env: &BTreeMap<String, String>, timeout: Duration| {
            calls.lock().unwrap().push((cmd.to_vec(), env.clone(), timeout));
            Ok(CommandOutput {
                success: true,
                message: String::new(),
            })
        };
        let t = template(
            exec_action(&[
                "/bin/notify",
                "--db=${DB}",
                "{{ .Target.Kind }}/{{ .Target.Name }} is {{ .Status.Phase }}",
                "${UNKNOWN} ${LEVEL:=info} $HOME",
                "${FLAG}-${RATIO}",
            ]),
            vec![param("DB", true, ""), param("LEVEL", false, "")],
        );
        let mut h = hook(json!({"DB": "postgres", "FLAG": true, "RATIO": 0.5, "SKIP": null}));
        h.variables = vec![EnvVar {
            name: "REGION".into(),
            value: Some("eu-1".into()),
            value_from: None,
        }];
        h.timeout = Some("7s".into());
        execute(&h, &t, &summary(), &fake).unwrap();

        let calls = calls.into_inner().unwrap();
        assert_eq!(calls.len(), 1);
        let (cmd, env, timeout) = &calls[0];
        assert_eq!(
            cmd,
            &[
                "/bin/notify",
                "--db=postgres",
                "Postgres/sample-pg is Failed",
                "${UNKNOWN} info $HOME",
                "true-0.5",
            ]
        );
        assert_eq!(*timeout, Duration::from_secs(7));
        let s = summary();
        let expect = [
            ("KSTASH_HOOK_PHASE", "Failed"),
            ("KSTASH_HOOK_ERROR", s.status.error.as_str()),
            ("KSTASH_HOOK_SESSION", "pg-backup-frequent-1700000000"),
            ("KSTASH_HOOK_NAMESPACE", "demo"),
            ("KSTASH_HOOK_TARGET_KIND", "Postgres"),
            ("KSTASH_HOOK_TARGET_NAME", "sample-pg"),
            ("DB", "postgres"),
            ("FLAG", "true"),
            ("REGION", "eu-1"),
        ];
        for (key, value) in expect {
            assert_eq!(env.get(key).map(String::as_str), Some(value), "env {key}");
        }
        assert!(!env.contains_key("SKIP"), "a null param is unset");
    }

    #[test]
    fn hooks_exec_default_timeout_is_30s() {
        let seen = Mutex::new(None);
        let fake = |_: &[String], _: &BTreeMap<String, String>, timeout: Duration| {
            *seen.lock().unwrap() = Some(timeout);
            Ok(CommandOutput {
                success: true,
                message: String::new(),
            })
        };
        execute(
            &hook(json!({})),
            &template(exec_action(&["true"]), vec![]),
            &summary(),
            &fake,
        )
        .unwrap();
        assert_eq!(seen.into_inner().unwrap(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn hooks_exec_failure_reports_command_output() {
        let fake = |_: &[String], _: &BTreeMap<String, String>, _: Duration| {
            Ok(CommandOutput {
                success: false,
                message: "exit status 3: boom".into(),
            })
        };
        let err = execute(
            &hook(json!({})),
            &template(exec_action(&["false"]), vec![]),
            &summary(),
            &fake,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hook \"notify\" (HookTemplate demo/slack): command [\"false\"] failed: exit status 3: boom"
        );

        let broken = |_: &[String], _: &BTreeMap<String, String>, _: Duration| {
            Err(PlatformError::new("no such file or directory"))
        };
        let err = execute(
            &hook(json!({})),
            &template(exec_action(&["nope"]), vec![]),
            &summary(),
            &broken,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.ends_with("command [\"nope\"] could not run: no such file or directory"),
            "{err}"
        );
    }

    // ----- validation -------------------------------------------------------------------------

    #[test]
    fn hooks_required_param_missing_is_invalid() {
        let t = template(
            exec_action(&["echo", "${webhookURL}"]),
            vec![param("webhookURL", true, "")],
        );
        let err = execute(&hook(json!({"other": "x"})), &t, &summary(), &no_exec).unwrap_err();
        assert!(matches!(err, HookError::Invalid { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("hook \"notify\" (HookTemplate demo/slack): "),
            "{msg}"
        );
        assert!(
            msg.contains("required parameter \"webhookURL\" has no value"),
            "{msg}"
        );
        assert!(msg.contains(".params.webhookURL"), "{msg}");

        // A default satisfies the requirement.
        let calls = Mutex::new(0);
        let fake = |_: &[String], _: &BTreeMap<String, String>, _: Duration| {
            *calls.lock().unwrap() += 1;
            Ok(CommandOutput {
                success: true,
                message: String::new(),
            })
        };
        let t = template(
            exec_action(&["echo"]),
            vec![param("webhookURL", true, "http://x")],
        );
        execute(&hook(json!({})), &t, &summary(), &fake).unwrap();
        assert_eq!(calls.into_inner().unwrap(), 1);
    }

    #[test]
    fn hooks_unsupported_template_expressions_are_rejected() {
        for expr in [
            "{{ .Foo }}",
            "{{ if .Name }}x{{ end }}",
            "{{ .Status }}",
            "{{ .Name | upper }}",
            "{{ . }}",
        ] {
            let t = template(exec_action(&["echo", expr]), vec![]);
            let err = execute(&hook(json!({})), &t, &summary(), &no_exec).unwrap_err();
            assert!(matches!(err, HookError::Invalid { .. }), "{expr}: {err:?}");
            let msg = err.to_string();
            let first = &expr[..expr.find("}}").unwrap() + 2];
            assert!(
                msg.contains(&format!("unsupported template expression {first:?}")),
                "{expr}: {msg}"
            );
        }
        let t = template(exec_action(&["echo", "{{ .Name"]), vec![]);
        let err = execute(&hook(json!({})), &t, &summary(), &no_exec)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unterminated template action"), "{err}");
    }

    #[test]
    fn hooks_invalid_timeout_names_the_field() {
        let mut h = hook(json!({}));
        h.timeout = Some("5 minutes".into());
        let err = execute(
            &h,
            &template(exec_action(&["true"]), vec![]),
            &summary(),
            &no_exec,
        )
        .unwrap_err();
        assert!(matches!(err, HookError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("invalid timeout \"5 minutes\""), "{err}");
    }

    #[test]
    fn hooks_template_without_action_is_invalid() {
        let mut t = template(exec_action(&["true"]), vec![]);
        t.spec.action = None;
        let err = execute(&hook(json!({})), &t, &summary(), &no_exec)
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no action"), "{err}");
    }

    #[test]
    fn hooks_should_run_table() {
        use HookExecutionPolicy::*;
        let table = [
            (None, true, true),
            (None, false, true),
            (Some(Always), true, true),
            (Some(Always), false, true),
            (Some(OnSuccess), true, true),
            (Some(OnSuccess), false, false),
            (Some(OnFailure), true, false),
            (Some(OnFailure), false, true),
        ];
        for (policy, succeeded, want) in table {
            assert_eq!(
                should_run(policy, succeeded),
                want,
                "{policy:?} succeeded={succeeded}"
            );
        }
    }

    // ----- rendering --------------------------------------------------------------------------

    fn render(input: &str, json: bool, vars: &[(&str, &str)]) -> Result<String, String> {
        let vars: BTreeMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let summary = summary();
        Renderer {
            vars: &vars,
            summary: &summary,
        }
        .render(input, json)
    }

    #[test]
    fn hooks_render_substitution_rules() {
        let vars = [("A", "1"), ("EMPTY", ""), ("V", "${A} {{ .Name }}")];
        assert_eq!(
            render("${A}-${B}-${B:=dflt}-${EMPTY:=e}-${A:-x}", false, &vars).unwrap(),
            "1-${B}-dflt-e-1"
        );
        // Values are not rescanned.
        assert_eq!(render("[${V}]", false, &vars).unwrap(), "[${A} {{ .Name }}]");
        // Not a parameter reference: left alone.
        assert_eq!(
            render("$A ${} ${1x} ${", false, &vars).unwrap(),
            "$A ${} ${1x} ${"
        );
        // Go's whitespace trimming markers.
        assert_eq!(
            render("a  {{- .Status.Phase -}}  \n b", false, &[]).unwrap(),
            "aFailedb"
        );
        assert_eq!(render("{{.Target.APIGroup}}", false, &[]).unwrap(), "kubedb.com");
    }

    #[test]
    fn hooks_render_json_escapes_only_inside_strings() {
        let vars = [("OBJ", r#"{"k": "v"}"#), ("Q", "say \"hi\"\u{1}")];
        let out = render(
            r#"{"a": ${OBJ}, "b": "${Q}", "c": "x\"${Q}", "e": "{{ .Status.Error }}"}"#,
            true,
            &vars,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v["a"], json!({"k": "v"}));
        assert_eq!(v["b"], "say \"hi\"\u{1}");
        assert_eq!(v["c"], "x\"say \"hi\"\u{1}");
        assert_eq!(v["e"], summary().status.error);
        // Without JSON mode nothing is escaped.
        assert_eq!(render("\"${Q}\"", false, &vars).unwrap(), "\"say \"hi\"\u{1}\"");
    }

    #[test]
    fn hooks_params_must_be_an_object() {
        let err = execute(
            &hook(json!(["a"])),
            &template(exec_action(&["true"]), vec![]),
            &summary(),
            &no_exec,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("params must be an object"), "{err}");
    }

    #[test]
    fn hooks_variable_with_value_from_is_rejected() {
        let mut h = hook(json!({}));
        h.variables = vec![EnvVar {
            name: "TOKEN".into(),
            value: None,
            value_from: Some(Default::default()),
        }];
        let err = execute(
            &h,
            &template(exec_action(&["true"]), vec![]),
            &summary(),
            &no_exec,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("variable \"TOKEN\" uses valueFrom"), "{err}");
    }
}
