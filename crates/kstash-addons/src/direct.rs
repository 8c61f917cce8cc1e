//! Stream drivers run without a store: the export of a database target to any writer and the
//! import of a stream from any reader, the target given by URL and credentials instead of an
//! AppBinding. Behind the hidden `kstash exec stream-dump` / `stream-load` (benchmarks,
//! debugging, moving data by hand). Parameters are the Addon task's, as `name=value`.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crate::appbinding::Connection;
use crate::error::{ExecError, Result};
use crate::stream::StreamDriver;
use crate::task::{ResolvedTask, TaskKind, driver_of};
use kstash_api::appcatalog::parse_client_url;

/// A database target given directly.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectTarget {
    /// `http://host:9200`, `postgres://host:5432/db`.
    pub url: String,
    pub user: String,
    pub password: String,
    /// PEM (or base64 of PEM) of the CA to trust.
    pub ca_bundle: Option<String>,
}

impl std::fmt::Debug for DirectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectTarget")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How to reach a target given directly: what every driver connects with, as it would from an
/// AppBinding.
pub(crate) fn connection(target: &DirectTarget) -> Result<Connection> {
    let object = format!("URL {}", target.url);
    let u = parse_client_url(&target.url).map_err(|m| ExecError::invalid(&object, m))?;
    Ok(Connection {
        object,
        secret: "(given directly)".into(),
        version: String::new(),
        host: u.host.clone(),
        port: u.port,
        sslmode: None,
        database: u.database.clone(),
        scheme: u.scheme.clone(),
        ca_bundle: target.ca_bundle.clone(),
        insecure_skip_tls_verify: false,
        user: target.user.clone(),
        password: target.password.clone(),
        tls: None,
    })
}

fn driver(
    function: &str,
    kind: TaskKind,
    target: &DirectTarget,
    params: &BTreeMap<String, String>,
) -> Result<Box<dyn StreamDriver>> {
    let conn = connection(target)?;
    let object = conn.object.clone();
    let driver = driver_of(function, kind)
        .ok_or_else(|| ExecError::invalid(&object, format!("function {function} has no stream driver")))?;
    let task = ResolvedTask {
        addon: "(direct)".into(),
        task: function.into(),
        function: function.into(),
        driver,
        params: params.clone(),
        required: Vec::new(),
    };
    crate::stream::driver_with(conn, &task)?.ok_or_else(|| {
        ExecError::invalid(
            &object,
            format!("function {function} backs up volumes, not a stream"),
        )
    })
}

/// Run the backup function's export and write the stream to `out`; returns its bytes.
pub fn dump_stream(
    function: &str,
    target: &DirectTarget,
    params: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<u64> {
    let driver = driver(function, TaskKind::Backup, target, params)?;
    let mut source = driver.produce()?;
    let copied = std::io::copy(&mut source, out);
    let bytes = source.finish()?;
    copied.map_err(|e| ExecError::Tool {
        tool: function.into(),
        message: format!("writing the stream: {e}"),
    })?;
    out.flush().map_err(|e| ExecError::Tool {
        tool: function.into(),
        message: format!("writing the stream: {e}"),
    })?;
    Ok(bytes)
}

/// Feed the stream read from `input` into the restore function's import; returns its bytes.
pub fn load_stream(
    function: &str,
    target: &DirectTarget,
    params: &BTreeMap<String, String>,
    input: &mut dyn Read,
) -> Result<u64> {
    let driver = driver(function, TaskKind::Restore, target, params)?;
    let mut sink = driver.consume()?;
    let copied = std::io::copy(input, &mut sink);
    // The import's own failure explains a broken copy.
    let bytes = sink.finish()?;
    copied.map_err(|e| ExecError::Tool {
        tool: function.into(),
        message: format!("reading the stream: {e}"),
    })?;
    Ok(bytes)
}
