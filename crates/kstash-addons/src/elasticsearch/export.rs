//! Backup: the cluster's templates and selected indices as the NDJSON stream described in the
//! module documentation of [`super`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::mpsc::sync_channel;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::client::{ClusterInfo, HttpError, encode};
use super::{Client, FORMAT, FORMAT_VERSION, Options, PagingChoice, Parts, TOOL};
use crate::error::{ExecError, Result};

/// How long a point in time or scroll is kept between two pages.
const KEEP_ALIVE: &str = "5m";
/// Pages in flight between the readers and the writer.
const PAGES_IN_FLIGHT: usize = 4;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExportSummary {
    /// Documents per index.
    pub indices: BTreeMap<String, u64>,
    pub docs: u64,
    pub templates: usize,
}

fn tool_err(message: String) -> ExecError {
    ExecError::Tool {
        tool: TOOL.into(),
        message,
    }
}

fn write_line(w: &mut dyn Write, v: &Value) -> Result<()> {
    let mut line = serde_json::to_vec(v).map_err(|e| tool_err(format!("encoding a line: {e}")))?;
    line.push(b'\n');
    w.write_all(&line)
        .map_err(|e| tool_err(format!("writing the stream: {e}")))
}

/// One index to export.
#[derive(Debug, Clone)]
struct IndexInfo {
    name: String,
    docs: u64,
}

/// Export everything `opts` selects from the cluster into `w`.
pub(crate) fn export(
    client: &Client,
    info: &ClusterInfo,
    opts: &Options,
    w: &mut dyn Write,
) -> Result<ExportSummary> {
    let indices = list_indices(client, opts)?;
    tracing::info!(indices = indices.len(), "exporting");
    let mut summary = ExportSummary::default();
    write_line(
        w,
        &json!({
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "source": {
                "distribution": info.distribution,
                "version": info.version,
                "cluster": info.cluster_name,
            },
            "created": jiff::Timestamp::now().to_string(),
            "parts": opts.parts.names(),
        }),
    )?;
    if opts.parts.templates {
        for (kind, name, body) in templates(client)? {
            write_line(w, &json!({ kind: { "name": name, "body": body } }))?;
            summary.templates += 1;
        }
    }
    // Metadata of every index first, so a restore can check and create them all before any data.
    for chunk in indices.chunks(50) {
        let names: Vec<String> = chunk.iter().map(|i| encode(&i.name)).collect();
        let path = format!("/{}?expand_wildcards=all", names.join(","));
        let all: Map<String, Value> =
            client.json("GET", &path, None, "reading index settings, mappings and aliases")?;
        for index in chunk {
            let meta = all.get(&index.name).cloned().unwrap_or_default();
            write_line(
                w,
                &json!({ "index": index_line(&index.name, &meta, &opts.parts) }),
            )?;
        }
    }
    for index in &indices {
        let n = if opts.parts.data {
            export_docs(client, info, opts, index, w)?
        } else {
            0
        };
        summary.docs += n;
        summary.indices.insert(index.name.clone(), n);
    }
    write_line(
        w,
        &json!({ "end": { "indices": summary.indices, "docs": summary.docs } }),
    )?;
    tracing::info!(
        indices = summary.indices.len(),
        docs = summary.docs,
        templates = summary.templates,
        "export done"
    );
    Ok(summary)
}

/// The selected open indices, by name.
fn list_indices(client: &Client, opts: &Options) -> Result<Vec<IndexInfo>> {
    #[derive(Deserialize)]
    struct Row {
        index: String,
        #[serde(default)]
        status: Option<String>,
        #[serde(default, rename = "docs.count")]
        docs: Option<String>,
    }
    let rows: Vec<Row> = client.json(
        "GET",
        "/_cat/indices?format=json&h=index,status,docs.count&expand_wildcards=all",
        None,
        "listing the indices",
    )?;
    let mut out = Vec::new();
    for row in rows {
        if !opts.selection.selects(&row.index) {
            continue;
        }
        if row.status.as_deref() == Some("close") {
            tracing::warn!(index = %row.index, "index is closed; skipped (open it to back it up)");
            continue;
        }
        out.push(IndexInfo {
            docs: row.docs.and_then(|d| d.parse().ok()).unwrap_or(0),
            name: row.index,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The `index` line of index `name` from `GET /<name>`'s entry.
pub(crate) fn index_line(name: &str, meta: &Value, parts: &Parts) -> Value {
    let settings = clean_settings(meta.get("settings").cloned().unwrap_or_default(), parts);
    let mappings = if parts.mappings {
        meta.get("mappings").cloned().unwrap_or_else(|| json!({}))
    } else {
        json!({})
    };
    let aliases = if parts.aliases {
        meta.get("aliases").cloned().unwrap_or_else(|| json!({}))
    } else {
        json!({})
    };
    json!({ "name": name, "settings": settings, "mappings": mappings, "aliases": aliases })
}

/// Settings a cluster sets itself, which a new index must not (or cannot) be given.
const PRIVATE_SETTINGS: &[&str] = &[
    "uuid",
    "creation_date",
    "creation_date_string",
    "version",
    "provided_name",
    "history",
    "resize",
    "verified_before_close",
    "shrink",
];

/// Settings as an index can be created with them: nested under `index`, without what the
/// cluster assigns, and without what `parts` leaves out.
pub(crate) fn clean_settings(settings: Value, parts: &Parts) -> Value {
    let mut settings = nest_flat(settings);
    if let Some(index) = settings.get_mut("index").and_then(Value::as_object_mut) {
        for key in PRIVATE_SETTINGS {
            index.remove(*key);
        }
        if let Some(alloc) = index
            .get_mut("routing")
            .and_then(|r| r.get_mut("allocation"))
            .and_then(Value::as_object_mut)
        {
            alloc.remove("initial_recovery");
        }
        if !parts.settings {
            let analysis = index.remove("analysis");
            index.clear();
            if let Some(a) = analysis {
                index.insert("analysis".into(), a);
            }
        }
        if !parts.analyzers {
            index.remove("analysis");
        }
    }
    settings
}

/// `{"index.a.b": 1}` → `{"index": {"a": {"b": 1}}}` (nested input is returned unchanged).
fn nest_flat(settings: Value) -> Value {
    let Value::Object(map) = settings else {
        return json!({});
    };
    let mut out = Map::new();
    for (k, v) in map {
        let mut parts: Vec<&str> = k.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut cur = &mut out;
        for p in parts {
            let entry = cur.entry(p.to_string()).or_insert_with(|| json!({}));
            if !entry.is_object() {
                *entry = json!({});
            }
            cur = entry.as_object_mut().expect("just made an object");
        }
        match (cur.get_mut(last), v) {
            (Some(Value::Object(existing)), Value::Object(add)) => existing.extend(add),
            (_, v) => {
                cur.insert(last.to_string(), v);
            }
        }
    }
    Value::Object(out)
}

/// Keys the template APIs report but do not accept back.
const TEMPLATE_READ_ONLY: &[&str] = &[
    "created_date",
    "created_date_millis",
    "modified_date",
    "modified_date_millis",
];

fn user_template(name: &str, body: &Value) -> bool {
    !name.starts_with('.') && body["_meta"]["managed"].as_bool() != Some(true)
}

fn strip_template(mut body: Value) -> Value {
    if let Some(obj) = body.as_object_mut() {
        for k in TEMPLATE_READ_ONLY {
            obj.remove(*k);
        }
    }
    body
}

/// Component templates, composable index templates and legacy templates, in the order they
/// must be created. APIs the cluster lacks (older versions) are skipped.
fn templates(client: &Client) -> Result<Vec<(&'static str, String, Value)>> {
    let get = |path: &str, what: &str| -> Result<Option<Value>> {
        match client.send("GET", path, None) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                tool_err(format!(
                    "{}: reading {what}: unexpected answer: {e}",
                    client.target
                ))
            }),
            Err(HttpError::Status {
                status: 400 | 404 | 405,
                reason,
            }) => {
                tracing::info!(what, reason = %reason, "not available on this cluster; skipped");
                Ok(None)
            }
            Err(e) => Err(client.error(&format!("reading {what}"), e)),
        }
    };
    let mut out = Vec::new();
    if let Some(v) = get("/_component_template", "component templates")? {
        for t in v["component_templates"].as_array().into_iter().flatten() {
            let name = t["name"].as_str().unwrap_or_default();
            let body = &t["component_template"];
            if !name.is_empty() && user_template(name, body) {
                out.push((
                    "component_template",
                    name.to_string(),
                    strip_template(body.clone()),
                ));
            }
        }
    }
    if let Some(v) = get("/_index_template", "index templates")? {
        for t in v["index_templates"].as_array().into_iter().flatten() {
            let name = t["name"].as_str().unwrap_or_default();
            let body = &t["index_template"];
            if !name.is_empty() && user_template(name, body) {
                out.push(("index_template", name.to_string(), strip_template(body.clone())));
            }
        }
    }
    if let Some(Value::Object(map)) = get("/_template", "legacy templates")? {
        for (name, body) in map {
            if user_template(&name, &body) {
                out.push(("legacy_template", name, strip_template(body)));
            }
        }
    }
    Ok(out)
}

/// How documents are paged through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paging {
    /// OpenSearch `_search/point_in_time`.
    OpenSearchPit,
    /// Elasticsearch `_pit`.
    ElasticPit,
    Scroll,
}

#[derive(Deserialize)]
struct SearchResponse<'a> {
    #[serde(borrow)]
    hits: Hits<'a>,
    #[serde(default)]
    pit_id: Option<String>,
    #[serde(default, rename = "_scroll_id")]
    scroll_id: Option<String>,
}

#[derive(Deserialize)]
struct Hits<'a> {
    #[serde(borrow)]
    hits: Vec<Hit<'a>>,
}

#[derive(Deserialize)]
struct Hit<'a> {
    #[serde(borrow, rename = "_id")]
    id: Cow<'a, str>,
    #[serde(borrow, default, rename = "_routing")]
    routing: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "_source")]
    source: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sort: Option<&'a RawValue>,
}

/// A page turned into stream lines.
struct Page {
    lines: Vec<u8>,
    docs: u64,
}

/// Export the documents of one index; returns how many.
fn export_docs(
    client: &Client,
    info: &ClusterInfo,
    opts: &Options,
    index: &IndexInfo,
    w: &mut dyn Write,
) -> Result<u64> {
    let slices = if opts.parallel > 1 && index.docs > 4 * opts.batch_size as u64 {
        opts.parallel
    } else {
        1
    };
    let pit_kind = if info.is_opensearch() {
        Paging::OpenSearchPit
    } else {
        Paging::ElasticPit
    };
    // `_shard_doc`, the tiebreaker of a point in time, exists from Elasticsearch 7.12 and
    // OpenSearch 3.3; `auto` uses a point in time on Elasticsearch and a scroll on OpenSearch.
    let elastic_pit = info.major() >= 8 || (info.major() == 7 && minor(&info.version) >= 12);
    let paging = match opts.paging {
        PagingChoice::Scroll => Paging::Scroll,
        PagingChoice::Pit => pit_kind,
        PagingChoice::Auto if !info.is_opensearch() && elastic_pit => pit_kind,
        PagingChoice::Auto => Paging::Scroll,
    };
    let pit = match paging {
        Paging::Scroll => None,
        p => open_pit(client, p, &index.name)?,
    };
    let paging = if pit.is_some() { paging } else { Paging::Scroll };
    tracing::info!(index = %index.name, docs = index.docs, slices, ?paging, "exporting documents");
    let (tx, rx) = sync_channel::<Result<Page>>(PAGES_IN_FLIGHT);
    let written = std::thread::scope(|s| -> Result<u64> {
        for slice in 0..slices {
            let tx = tx.clone();
            let pit = pit.clone();
            let name = index.name.clone();
            let span = tracing::Span::current();
            std::thread::Builder::new()
                .name(format!("kstash-es-read-{slice}"))
                .spawn_scoped(s, move || {
                    let _entered = span.enter();
                    let slice = (slices > 1).then_some((slice, slices));
                    let result = read_slice(client, opts, paging, pit.as_deref(), &name, slice, &tx);
                    if let Err(e) = result {
                        let _ = tx.send(Err(e));
                    }
                })
                .map_err(|e| tool_err(format!("cannot start a reader thread: {e}")))?;
        }
        drop(tx);
        let mut written = 0u64;
        let mut failure = None;
        for page in rx.iter() {
            match page {
                Ok(p) => {
                    if let Err(e) = w.write_all(&p.lines) {
                        failure = Some(tool_err(format!("writing the stream: {e}")));
                        break;
                    }
                    written += p.docs;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Dropping the receiver ends the readers at their next page.
        drop(rx);
        match failure {
            Some(e) => Err(e),
            None => Ok(written),
        }
    });
    if let Some(id) = &pit {
        close_pit(client, paging, id);
    }
    let written = written?;
    if written < index.docs {
        tracing::warn!(index = %index.name, listed = index.docs, written, "fewer documents than listed (deleted while exporting?)");
    }
    Ok(written)
}

fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// A point in time on `index`, or `None` when the cluster has none (then a scroll is used).
fn open_pit(client: &Client, paging: Paging, index: &str) -> Result<Option<String>> {
    let (path, key) = match paging {
        Paging::OpenSearchPit => (
            format!("/{}/_search/point_in_time?keep_alive={KEEP_ALIVE}", encode(index)),
            "pit_id",
        ),
        _ => (format!("/{}/_pit?keep_alive={KEEP_ALIVE}", encode(index)), "id"),
    };
    match client.send("POST", &path, None) {
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            Ok(v[key].as_str().map(str::to_string))
        }
        Err(HttpError::Status {
            status: 400 | 404 | 405,
            reason,
        }) => {
            tracing::info!(index, reason = %reason, "no point in time on this cluster; using a scroll");
            Ok(None)
        }
        Err(e) => Err(client.error(&format!("opening a point in time on index {index}"), e)),
    }
}

fn close_pit(client: &Client, paging: Paging, id: &str) {
    let result = match paging {
        Paging::OpenSearchPit => {
            client.send_json("DELETE", "/_search/point_in_time", &json!({ "pit_id": [id] }))
        }
        _ => client.send_json("DELETE", "/_pit", &json!({ "id": id })),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not close the point in time (it expires by itself)");
    }
}

/// Read one slice (or all) of an index page by page, sending each page's lines to `tx`.
fn read_slice(
    client: &Client,
    opts: &Options,
    mut paging: Paging,
    pit: Option<&str>,
    index: &str,
    slice: Option<(usize, usize)>,
    tx: &std::sync::mpsc::SyncSender<Result<Page>>,
) -> Result<()> {
    let doing = || match slice {
        Some((i, n)) => format!("reading documents of index {index} (slice {i} of {n})"),
        None => format!("reading documents of index {index}"),
    };
    let mut body = json!({
        "size": opts.batch_size,
        "track_total_hits": false,
    });
    if let Some((id, max)) = slice {
        body["slice"] = json!({ "id": id, "max": max });
    }
    let mut pit_id = pit.map(str::to_string);
    let mut scroll_id: Option<String> = None;
    let mut search_after: Option<Box<RawValue>> = None;
    let result = (|| -> Result<()> {
        loop {
            let bytes = match paging {
                Paging::Scroll => match &scroll_id {
                    None => {
                        body["sort"] = json!(["_doc"]);
                        // A scroll always counts its hits (disabling it is refused).
                        if let Some(b) = body.as_object_mut() {
                            b.remove("track_total_hits");
                        }
                        client.send_json(
                            "POST",
                            &format!("/{}/_search?scroll={KEEP_ALIVE}", encode(index)),
                            &body,
                        )
                    }
                    Some(id) => client.send_json(
                        "POST",
                        "/_search/scroll",
                        &json!({ "scroll": KEEP_ALIVE, "scroll_id": id }),
                    ),
                },
                _ => {
                    body["pit"] = json!({ "id": pit_id, "keep_alive": KEEP_ALIVE });
                    body["sort"] = json!([{ "_shard_doc": "asc" }]);
                    if let Some(after) = &search_after {
                        body["search_after"] = serde_json::from_str(after.get()).unwrap_or(Value::Null);
                    }
                    client.send_json("POST", "/_search", &body)
                }
            };
            let bytes = match bytes {
                Ok(b) => b,
                // The cluster cannot page a point in time this way (no `_shard_doc`): scroll.
                Err(HttpError::Status { status: 400, reason })
                    if paging != Paging::Scroll && search_after.is_none() =>
                {
                    tracing::warn!(index, reason = %reason, "paging through a point in time failed; using a scroll");
                    paging = Paging::Scroll;
                    if let Some(b) = body.as_object_mut() {
                        b.remove("pit");
                        b.remove("search_after");
                    }
                    continue;
                }
                Err(e) => return Err(client.error(&doing(), e)),
            };
            let resp: SearchResponse<'_> = serde_json::from_slice(&bytes)
                .map_err(|e| tool_err(format!("{}: {}: unexpected answer: {e}", client.target, doing())))?;
            if let Some(id) = resp.pit_id {
                pit_id = Some(id);
            }
            if let Some(id) = resp.scroll_id {
                scroll_id = Some(id);
            }
            let hits = resp.hits.hits;
            if hits.is_empty() {
                return Ok(());
            }
            let mut lines = Vec::with_capacity(bytes.len() + hits.len() * (index.len() + 32));
            for hit in &hits {
                let Some(source) = hit.source else {
                    return Err(tool_err(format!(
                        "{}: index {index}: document {} has no _source (the index stores none), so it cannot be backed up; leave the index out with the indices parameter",
                        client.target, hit.id
                    )));
                };
                doc_line(&mut lines, index, &hit.id, hit.routing.as_deref(), source.get());
            }
            search_after = hits.last().and_then(|h| h.sort).map(|s| s.to_owned());
            if paging != Paging::Scroll && search_after.is_none() {
                return Err(tool_err(format!(
                    "{}: {}: the answer has no sort values to continue from",
                    client.target,
                    doing()
                )));
            }
            let docs = hits.len() as u64;
            if tx.send(Ok(Page { lines, docs })).is_err() {
                return Ok(()); // the writer stopped; its error is reported
            }
        }
    })();
    if let Some(id) = scroll_id {
        let _ = client.send_json("DELETE", "/_search/scroll", &json!({ "scroll_id": [id] }));
    }
    result
}

/// Append `{"doc":{"_index":…,"_id":…,"routing":…,"_source":…}}\n`.
pub(crate) fn doc_line(out: &mut Vec<u8>, index: &str, id: &str, routing: Option<&str>, source: &str) {
    out.extend_from_slice(b"{\"doc\":{\"_index\":");
    json_string(out, index);
    out.extend_from_slice(b",\"_id\":");
    json_string(out, id);
    if let Some(r) = routing {
        out.extend_from_slice(b",\"routing\":");
        json_string(out, r);
    }
    out.extend_from_slice(b",\"_source\":");
    out.extend_from_slice(source.as_bytes());
    out.extend_from_slice(b"}}\n");
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_lose_what_the_cluster_assigns() {
        let s = json!({"index": {"uuid": "u", "creation_date": "1", "provided_name": "x",
            "version": {"created": "1"}, "number_of_shards": "2", "analysis": {"a": 1},
            "routing": {"allocation": {"initial_recovery": {"_id": "n"}, "include": {"z": "1"}}}}});
        let c = clean_settings(s.clone(), &Parts::ALL);
        assert_eq!(
            c,
            json!({"index": {"number_of_shards": "2", "analysis": {"a": 1},
                "routing": {"allocation": {"include": {"z": "1"}}}}})
        );
        let mut p = Parts::ALL;
        p.settings = false;
        assert_eq!(
            clean_settings(s.clone(), &p),
            json!({"index": {"analysis": {"a": 1}}})
        );
        p.analyzers = false;
        assert_eq!(clean_settings(s, &p), json!({"index": {}}));
        let flat = json!({"index.number_of_shards": "1", "index.analysis.analyzer.my.type": "custom", "index.uuid": "x"});
        assert_eq!(
            clean_settings(flat, &Parts::ALL),
            json!({"index": {"number_of_shards": "1", "analysis": {"analyzer": {"my": {"type": "custom"}}}}})
        );
    }

    #[test]
    fn doc_lines_are_json() {
        let mut out = Vec::new();
        doc_line(&mut out, "a\"b", "1\n", Some("r"), r#"{"x":[1,2]}"#);
        doc_line(&mut out, "a", "2", None, r#"{}"#);
        let lines: Vec<Value> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            json!({"doc": {"_index": "a\"b", "_id": "1\n", "routing": "r", "_source": {"x": [1, 2]}}})
        );
        assert_eq!(
            lines[1],
            json!({"doc": {"_index": "a", "_id": "2", "_source": {}}})
        );
    }
}
