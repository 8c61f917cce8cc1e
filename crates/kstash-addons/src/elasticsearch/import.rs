//! Restore: the NDJSON stream of [`super::export`] into a cluster — templates, then indices
//! (after checking `existingIndex` for all of them), then documents through parallel `_bulk`
//! requests, then a refresh and a count check per index.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::client::{HttpError, describe_error, encode};
use super::{Client, ExistingIndex, FORMAT, FORMAT_VERSION, Options, TOOL};
use crate::error::{ExecError, Result};

/// Attempts of a `_bulk` request the cluster rejected for load (HTTP 429).
const BULK_ATTEMPTS: u32 = 8;

fn tool_err(message: String) -> ExecError {
    ExecError::Tool {
        tool: TOOL.into(),
        message,
    }
}

/// A template of the stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    /// `component_template`, `index_template` or `legacy_template`.
    pub kind: String,
    pub name: String,
    pub body: Value,
}

/// An index of the stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexDef {
    pub name: String,
    pub settings: Value,
    pub mappings: Value,
    pub aliases: Value,
}

impl IndexDef {
    fn from_line(v: &Value) -> Result<IndexDef> {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        if name.is_empty() {
            return Err(tool_err("the stream has an index line without a name".into()));
        }
        Ok(IndexDef {
            name,
            settings: v["settings"].clone(),
            mappings: v["mappings"].clone(),
            aliases: v["aliases"].clone(),
        })
    }
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImportSummary {
    /// Documents loaded per restored index.
    pub indices: BTreeMap<String, u64>,
    pub docs: u64,
    /// Indices left alone (`existingIndex: skip`, or not selected).
    pub skipped: Vec<String>,
    pub templates: usize,
}

#[derive(Deserialize)]
struct DocLine<'a> {
    #[serde(borrow)]
    doc: Doc<'a>,
}

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(borrow, rename = "_index")]
    index: Cow<'a, str>,
    #[serde(borrow, rename = "_id")]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    routing: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "_source")]
    source: &'a RawValue,
}

/// The stream's lines, without their line ends.
struct Lines<R> {
    reader: BufReader<R>,
    line: Vec<u8>,
    no: u64,
}

impl<R: Read> Lines<R> {
    /// Read the next line into `self.line`; `false` at the end.
    fn next(&mut self) -> Result<bool> {
        self.line.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.line)
            .map_err(|e| tool_err(format!("reading the backup stream: {e}")))?;
        self.no += 1;
        while self.line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            self.line.pop();
        }
        Ok(n > 0)
    }
}

/// Restore the stream read from `r`.
pub(crate) fn import(client: &Client, opts: &Options, r: &mut dyn Read) -> Result<ImportSummary> {
    let mut lines = Lines {
        reader: BufReader::with_capacity(1 << 20, r),
        line: Vec::with_capacity(1 << 16),
        no: 0,
    };
    if !lines.next()? {
        return Err(tool_err("the backup stream is empty".into()));
    }
    let header: Value = serde_json::from_slice(&lines.line).unwrap_or_default();
    if header["format"].as_str() != Some(FORMAT) {
        return Err(tool_err(format!(
            "the backup stream is not a kstash Elasticsearch backup (its first line has no \"format\":\"{FORMAT}\")"
        )));
    }
    let version = header["version"].as_u64().unwrap_or(0);
    if version == 0 || version > FORMAT_VERSION {
        return Err(tool_err(format!(
            "the backup stream has format version {version}; this kstash reads versions 1 to {FORMAT_VERSION}: restore with a newer kstash"
        )));
    }
    tracing::info!(source = %header["source"], created = %header["created"], "restoring");

    // Templates and indices come before any document.
    let mut templates = Vec::new();
    let mut indices = Vec::new();
    let mut pending = false;
    while lines.next()? {
        if lines.line.is_empty() {
            continue;
        }
        if lines.line.starts_with(b"{\"doc\":") {
            pending = true;
            break;
        }
        let v: Value = serde_json::from_slice(&lines.line)
            .map_err(|e| tool_err(format!("the backup stream's line {} is not JSON: {e}", lines.no)))?;
        let Some((kind, body)) = v.as_object().and_then(|m| m.iter().next()) else {
            continue;
        };
        match kind.as_str() {
            "component_template" | "index_template" | "legacy_template" => templates.push(Template {
                kind: kind.clone(),
                name: body["name"].as_str().unwrap_or_default().to_string(),
                body: body["body"].clone(),
            }),
            "index" => indices.push(IndexDef::from_line(body)?),
            "doc" | "end" => {
                pending = true;
                break;
            }
            other => tracing::warn!(
                kind = other,
                line = lines.no,
                "unknown line in the stream; ignored"
            ),
        }
    }
    let plan = prepare(client, opts, &templates, &indices)?;
    let mut summary = ImportSummary {
        skipped: plan.skipped.clone(),
        templates: templates.len(),
        ..Default::default()
    };
    let mut end: Option<Value> = None;
    let loaded = with_loader(client, opts, |loader| -> Result<()> {
        let mut have = pending;
        loop {
            if !have && !lines.next()? {
                return Ok(());
            }
            have = false;
            if lines.line.is_empty() {
                continue;
            }
            if lines.line.starts_with(b"{\"doc\":") {
                let d: DocLine<'_> = serde_json::from_slice(&lines.line).map_err(|e| {
                    tool_err(format!(
                        "the backup stream's line {} is not a document: {e}",
                        lines.no
                    ))
                })?;
                let d = d.doc;
                if plan.load.contains(d.index.as_ref()) {
                    loader.add(&d.index, &d.id, d.routing.as_deref(), d.source.get().as_bytes())?;
                }
                continue;
            }
            let v: Value = serde_json::from_slice(&lines.line)
                .map_err(|e| tool_err(format!("the backup stream's line {} is not JSON: {e}", lines.no)))?;
            if let Some(e) = v.get("end") {
                end = Some(e.clone());
                return Ok(());
            }
            if let Some(d) = v.get("doc") {
                // A document line written differently (not starting with `{"doc":`).
                let index = d["_index"].as_str().unwrap_or_default();
                if plan.load.contains(index) {
                    let source = serde_json::to_vec(&d["_source"]).unwrap_or_default();
                    loader.add(
                        index,
                        d["_id"].as_str().unwrap_or_default(),
                        d["routing"].as_str(),
                        &source,
                    )?;
                }
                continue;
            }
            tracing::warn!(line = lines.no, "unexpected line among the documents; ignored");
        }
    })?;
    let Some(end) = end else {
        return Err(tool_err(
            "the backup stream ends without its end line: the backup is truncated (its export did not finish)"
                .into(),
        ));
    };
    let expected: BTreeMap<String, u64> = end["indices"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    for name in &plan.load {
        let got = loaded.get(name).copied().unwrap_or(0);
        if let Some(want) = expected.get(name)
            && *want != got
        {
            return Err(tool_err(format!(
                "index {name}: the backup stream holds {got} documents but its end line says {want}: the backup is damaged"
            )));
        }
    }
    finish(client, &plan, &loaded)?;
    summary.docs = loaded.values().sum();
    summary.indices = loaded;
    tracing::info!(
        indices = summary.indices.len(),
        docs = summary.docs,
        skipped = summary.skipped.len(),
        "restore done"
    );
    Ok(summary)
}

/// What a restore writes, decided before anything is written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// Indices whose documents are loaded.
    pub load: BTreeSet<String>,
    pub skipped: Vec<String>,
    /// `index.blocks` per index, applied after loading.
    pub blocks: BTreeMap<String, Value>,
    /// The `index.refresh_interval` each created index gets back after loading (`null`: the
    /// default); loading runs without refreshes.
    pub refresh: BTreeMap<String, Value>,
}

/// Check which indices exist (failing under `existingIndex: fail` before writing anything),
/// put the templates, delete indices to overwrite and create the indices.
pub(crate) fn prepare(
    client: &Client,
    opts: &Options,
    templates: &[Template],
    indices: &[IndexDef],
) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut existing = Vec::new();
    let mut wanted = Vec::new();
    for idx in indices {
        if !opts.restore_selection.selects(&idx.name) {
            plan.skipped.push(idx.name.clone());
            continue;
        }
        if exists(client, &idx.name)? {
            existing.push(idx.name.clone());
        }
        wanted.push(idx);
    }
    if !existing.is_empty() {
        match opts.existing {
            ExistingIndex::Fail => {
                return Err(tool_err(format!(
                    "{}: {} already exist{} ({}); nothing was restored. Fix: restore into a cluster without them, delete them, or set the parameter existingIndex to skip (keep them) or overwrite (replace them)",
                    client.target,
                    if existing.len() == 1 { "index" } else { "indices" },
                    if existing.len() == 1 { "s" } else { "" },
                    existing.join(", ")
                )));
            }
            ExistingIndex::Skip => {
                tracing::warn!(indices = ?existing, "indices exist; skipped (existingIndex: skip)");
                plan.skipped.extend(existing.iter().cloned());
            }
            ExistingIndex::Overwrite => {
                for name in &existing {
                    tracing::warn!(index = %name, "index exists; deleting it (existingIndex: overwrite)");
                    client
                        .send("DELETE", &format!("/{}", encode(name)), None)
                        .map_err(|e| client.error(&format!("deleting index {name} to overwrite it"), e))?;
                }
            }
        }
    }
    for t in templates {
        let path = match t.kind.as_str() {
            "component_template" => "_component_template",
            "index_template" => "_index_template",
            _ => "_template",
        };
        client
            .send_json("PUT", &format!("/{path}/{}", encode(&t.name)), &t.body)
            .map_err(|e| client.error(&format!("creating {} {}", t.kind.replace('_', " "), t.name), e))?;
    }
    for idx in wanted {
        if opts.existing == ExistingIndex::Skip && existing.contains(&idx.name) {
            continue;
        }
        let mut settings = idx.settings.clone();
        if let Some(blocks) = settings
            .get_mut("index")
            .and_then(Value::as_object_mut)
            .and_then(|i| i.remove("blocks"))
        {
            plan.blocks.insert(idx.name.clone(), blocks);
        }
        if !settings.is_object() {
            settings = json!({});
        }
        if let Some(index) = settings
            .as_object_mut()
            .map(|m| m.entry("index").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        {
            let original = index.insert("refresh_interval".into(), json!("-1"));
            plan.refresh
                .insert(idx.name.clone(), original.unwrap_or(Value::Null));
        }
        let mut body = json!({});
        if settings.as_object().is_some_and(|m| !m.is_empty()) {
            body["settings"] = settings;
        }
        let mappings = untyped_mappings(&idx.mappings);
        if mappings.as_object().is_some_and(|m| !m.is_empty()) {
            body["mappings"] = mappings;
        }
        if idx.aliases.as_object().is_some_and(|m| !m.is_empty()) {
            body["aliases"] = idx.aliases.clone();
        }
        client
            .send_json("PUT", &format!("/{}", encode(&idx.name)), &body)
            .map_err(|e| client.error(&format!("creating index {}", idx.name), e))?;
        plan.load.insert(idx.name.clone());
    }
    tracing::info!(
        templates = templates.len(),
        created = plan.load.len(),
        skipped = plan.skipped.len(),
        "indices created"
    );
    Ok(plan)
}

/// Mappings of one type (Elasticsearch 6 and older: `{"_doc": {"properties": …}}`) as typeless
/// mappings; typeless mappings unchanged.
pub(crate) fn untyped_mappings(m: &Value) -> Value {
    const TOP: &[&str] = &[
        "properties",
        "dynamic",
        "_source",
        "_routing",
        "_meta",
        "dynamic_templates",
        "date_detection",
        "numeric_detection",
        "dynamic_date_formats",
        "_field_names",
        "runtime",
        "_all",
        "_size",
    ];
    match m.as_object() {
        Some(map) if map.len() == 1 => {
            let (k, v) = map.iter().next().expect("one entry");
            if !TOP.contains(&k.as_str()) && v.is_object() {
                v.clone()
            } else {
                m.clone()
            }
        }
        Some(_) => m.clone(),
        None => json!({}),
    }
}

fn exists(client: &Client, index: &str) -> Result<bool> {
    match client.send("HEAD", &format!("/{}", encode(index)), None) {
        Ok(_) => Ok(true),
        Err(HttpError::Status { status: 404, .. }) => Ok(false),
        Err(e) => Err(client.error(&format!("checking whether index {index} exists"), e)),
    }
}

/// Give the loaded indices their refresh interval back, refresh them, check their document
/// counts and apply their blocks.
pub(crate) fn finish(client: &Client, plan: &Plan, loaded: &BTreeMap<String, u64>) -> Result<()> {
    for name in &plan.load {
        let path = encode(name);
        if let Some(interval) = plan.refresh.get(name) {
            client
                .send_json(
                    "PUT",
                    &format!("/{path}/_settings"),
                    &json!({ "index": { "refresh_interval": interval } }),
                )
                .map_err(|e| client.error(&format!("setting the refresh interval of index {name}"), e))?;
        }
        client
            .send("POST", &format!("/{path}/_refresh"), None)
            .map_err(|e| client.error(&format!("refreshing index {name}"), e))?;
        let count: Value = client.json(
            "GET",
            &format!("/{path}/_count"),
            None,
            &format!("counting index {name}"),
        )?;
        let have = count["count"].as_u64().unwrap_or(0);
        let want = loaded.get(name).copied().unwrap_or(0);
        if have != want {
            return Err(tool_err(format!(
                "{}: index {name} holds {have} documents after the restore, but {want} were loaded",
                client.target
            )));
        }
        if let Some(blocks) = plan.blocks.get(name) {
            client
                .send_json(
                    "PUT",
                    &format!("/{path}/_settings"),
                    &json!({ "index": { "blocks": blocks } }),
                )
                .map_err(|e| client.error(&format!("setting the blocks of index {name}"), e))?;
        }
    }
    Ok(())
}

/// A `_bulk` body being filled.
pub(crate) struct Loader<'a> {
    opts: &'a Options,
    tx: Option<SyncSender<Vec<u8>>>,
    failed: &'a AtomicBool,
    body: Vec<u8>,
    docs: usize,
    counts: BTreeMap<String, u64>,
}

impl Loader<'_> {
    /// Queue one document for indexing.
    pub fn add(&mut self, index: &str, id: &str, routing: Option<&str>, source: &[u8]) -> Result<()> {
        self.body.extend_from_slice(b"{\"index\":{\"_index\":");
        let _ = serde_json::to_writer(&mut self.body, index);
        if !id.is_empty() {
            self.body.extend_from_slice(b",\"_id\":");
            let _ = serde_json::to_writer(&mut self.body, id);
        }
        if let Some(r) = routing {
            self.body.extend_from_slice(b",\"routing\":");
            let _ = serde_json::to_writer(&mut self.body, r);
        }
        self.body.extend_from_slice(b"}}\n");
        self.body.extend_from_slice(source);
        self.body.push(b'\n');
        self.docs += 1;
        match self.counts.get_mut(index) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(index.to_string(), 1);
            }
        }
        if self.docs >= self.opts.bulk_docs || self.body.len() >= self.opts.bulk_bytes {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.docs == 0 {
            return Ok(());
        }
        let body = std::mem::replace(
            &mut self.body,
            Vec::with_capacity(self.opts.bulk_bytes.min(8 << 20)),
        );
        self.docs = 0;
        let stopped = || tool_err("bulk loading stopped".into());
        if self.failed.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        self.tx
            .as_ref()
            .ok_or_else(stopped)?
            .send(body)
            .map_err(|_| stopped())
    }
}

/// Run `feed` with a [`Loader`] whose bodies `opts.parallel` threads post; returns the
/// documents loaded per index, or the first failure (a bulk error before `feed`'s own).
pub(crate) fn with_loader<F>(client: &Client, opts: &Options, feed: F) -> Result<BTreeMap<String, u64>>
where
    F: FnOnce(&mut Loader<'_>) -> Result<()>,
{
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<ExecError>> = Mutex::new(None);
    let (tx, rx) = sync_channel::<Vec<u8>>(opts.parallel);
    let rx = Mutex::new(rx);
    let (fed, counts) = std::thread::scope(|s| {
        for i in 0..opts.parallel {
            let (rx, failed, first_error) = (&rx, &failed, &first_error);
            let span = tracing::Span::current();
            let spawned = std::thread::Builder::new()
                .name(format!("kstash-es-bulk-{i}"))
                .spawn_scoped(s, move || {
                    let _entered = span.enter();
                    bulk_worker(client, rx, failed, first_error);
                });
            if let Err(e) = spawned {
                failed.store(true, Ordering::SeqCst);
                record(first_error, tool_err(format!("cannot start a bulk thread: {e}")));
            }
        }
        let mut loader = Loader {
            opts,
            tx: Some(tx),
            failed: &failed,
            body: Vec::with_capacity(opts.bulk_bytes.min(8 << 20)),
            docs: 0,
            counts: BTreeMap::new(),
        };
        let fed = feed(&mut loader).and_then(|()| loader.flush());
        loader.tx = None; // the workers end when the queue is empty
        (fed, std::mem::take(&mut loader.counts))
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    fed?;
    Ok(counts)
}

fn record(slot: &Mutex<Option<ExecError>>, e: ExecError) {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Some(e);
    }
}

fn bulk_worker(
    client: &Client,
    rx: &Mutex<Receiver<Vec<u8>>>,
    failed: &AtomicBool,
    first_error: &Mutex<Option<ExecError>>,
) {
    loop {
        let body = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            match rx.recv() {
                Ok(b) => b,
                Err(_) => return,
            }
        };
        if failed.load(Ordering::SeqCst) {
            continue; // drain so the feeder never blocks
        }
        if let Err(e) = post_bulk(client, &body) {
            failed.store(true, Ordering::SeqCst);
            record(first_error, e);
        }
    }
}

/// Post one `_bulk` body, retrying while the cluster rejects it for load (every action is an
/// `index` with an id, so repeating the body is harmless).
fn post_bulk(client: &Client, body: &[u8]) -> Result<()> {
    let mut delay = Duration::from_millis(250);
    for attempt in 1..=BULK_ATTEMPTS {
        let result = client.send(
            "POST",
            "/_bulk?filter_path=errors,items.*.error,items.*._id,items.*._index,items.*.status",
            Some(("application/x-ndjson", body)),
        );
        let bytes = match result {
            Ok(b) => b,
            Err(HttpError::Status { status: 429, .. }) if attempt < BULK_ATTEMPTS => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
                continue;
            }
            Err(e) => return Err(client.error("bulk loading documents", e)),
        };
        let resp: Value = serde_json::from_slice(&bytes).map_err(|e| {
            tool_err(format!(
                "{}: bulk loading documents: unexpected answer: {e}",
                client.target
            ))
        })?;
        if resp["errors"].as_bool() != Some(true) {
            return Ok(());
        }
        let failures: Vec<&Value> = resp["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_object().and_then(|m| m.values().next()))
            .filter(|op| op.get("error").is_some())
            .collect();
        let all_rejected =
            !failures.is_empty() && failures.iter().all(|op| op["status"].as_u64() == Some(429));
        if all_rejected && attempt < BULK_ATTEMPTS {
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(10));
            continue;
        }
        let Some(first) = failures.first() else {
            return Err(tool_err(format!(
                "{}: bulk loading documents: the cluster reported errors without saying which",
                client.target
            )));
        };
        return Err(tool_err(format!(
            "{}: bulk loading documents: {} of the request's documents failed; the first, {} of index {}: {}",
            client.target,
            failures.len(),
            first["_id"].as_str().unwrap_or("?"),
            first["_index"].as_str().unwrap_or("?"),
            describe_error(&first["error"])
        )));
    }
    Err(tool_err(format!(
        "{}: bulk loading documents: the cluster kept rejecting requests (HTTP 429) after {BULK_ATTEMPTS} attempts; fix: lower the parameters parallel or bulkSize",
        client.target
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_mappings_lose_their_type() {
        let typed = json!({"_doc": {"properties": {"a": {"type": "keyword"}}}});
        assert_eq!(
            untyped_mappings(&typed),
            json!({"properties": {"a": {"type": "keyword"}}})
        );
        let plain = json!({"properties": {"a": {"type": "keyword"}}});
        assert_eq!(untyped_mappings(&plain), plain);
        let two = json!({"dynamic": "strict", "properties": {}});
        assert_eq!(untyped_mappings(&two), two);
        assert_eq!(untyped_mappings(&Value::Null), json!({}));
    }
}
