//! Elasticsearch/OpenSearch API from `osmem-server` (PyPI; in-memory, OpenSearch 3.x API).
//! No real Elasticsearch can be installed on the test machines.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use crate::error::Result;
use crate::process::{ServerProcess, Stop, retry_on_port_clash, temp_dir};
use crate::tools::osmem_server;

/// An in-memory search server on 127.0.0.1 speaking the Elasticsearch/OpenSearch REST API.
pub struct Elasticsearch {
    /// `http://127.0.0.1:PORT` (the authenticating proxy's with [`Elasticsearch::start_secured`]).
    pub url: String,
    /// The server itself, without authentication.
    pub direct_url: String,
    proxy: Option<crate::FaultProxy>,
    process: ServerProcess,
    dir: TempDir,
}

impl Elasticsearch {
    /// Starts `osmem-server -addr 127.0.0.1:PORT -no-stdin-watch` and returns when
    /// `GET /_cluster/health` answers 200.
    pub fn start() -> Result<Self> {
        retry_on_port_clash(Self::try_start)
    }

    /// [`Elasticsearch::start`] behind a proxy that requires HTTP basic auth `user`/`password`
    /// (osmem has no security): [`Elasticsearch::url`] is the proxy's, answering 401 with an
    /// Elasticsearch-style `security_exception` to other credentials.
    pub fn start_secured(user: &str, password: &str) -> Result<Self> {
        let mut es = Self::start()?;
        let proxy = crate::FaultProxy::start(&es.direct_url, crate::FaultPlan::none())?;
        proxy.require_basic_auth(user, password);
        es.url = proxy.url().to_string();
        es.proxy = Some(proxy);
        Ok(es)
    }

    /// The port of [`Elasticsearch::url`].
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_default()
    }

    fn try_start() -> Result<Self> {
        let binary = osmem_server()?;
        let dir = temp_dir("osmem")?;
        let port = crate::ports::free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(binary);
        cmd.args(["-addr", &format!("127.0.0.1:{port}"), "-no-stdin-watch"])
            .current_dir(dir.path());
        let mut process =
            ServerProcess::spawn("osmem-server", cmd, &dir.path().join("osmem.log"), Stop::Kill)?;
        process.wait_ready(crate::READY_TIMEOUT, || {
            crate::http::answers_ok(&format!("{url}/_cluster/health"))
        })?;
        Ok(Self {
            direct_url: url.clone(),
            url,
            proxy: None,
            process,
            dir,
        })
    }

    /// The server log.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Test data and equality checks for Elasticsearch/OpenSearch backups, shared by the executor
/// and end-to-end tests. Every request goes to the server directly (no authentication).
pub mod data {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};

    use super::Elasticsearch;
    use crate::error::{Error, Result};

    /// Write a directory as KubeStash's and Stash's multielasticdump leave it (formats as
    /// elasticdump 6 writes them: settings, alias and template files JSON-encoded twice): index
    /// `products` (1,500 documents, every 7th routed `shelf-a`, two aliases, a legacy template) and
    /// an empty index `orders` with typed (Elasticsearch 6) mappings.
    pub fn write_multielasticdump_dir(dir: &std::path::Path) {
        std::fs::create_dir_all(dir).unwrap();
        let twice = |v: Value| serde_json::to_string(&v.to_string()).unwrap();
        let mut products = String::new();
        for i in 0..1500 {
            let mut hit = json!({"_index": "products", "_type": "_doc", "_id": format!("p{i}"), "_score": 1,
                "_source": {"name": format!("Product {i} \"special\" ü"), "price": i as f64 / 4.0, "sku": format!("SKU-{i:05}")}});
            if i % 7 == 0 {
                hit["_routing"] = json!("shelf-a");
            }
            products.push_str(&hit.to_string());
            products.push('\n');
        }
        std::fs::write(dir.join("products.json"), products).unwrap();
        std::fs::write(
            dir.join("products.mapping.json"),
            json!({"products": {"mappings": {"properties": {
                "name": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
                "price": {"type": "double"}, "sku": {"type": "keyword"}}}}})
            .to_string()
                + "\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("products.settings.json"),
            twice(json!({"products": {"settings": {"index": {
                "number_of_shards": "2", "number_of_replicas": "1", "uuid": "old-uuid",
                "creation_date": "1700000000000", "provided_name": "products",
                "version": {"created": "136327827"}}}}}))
                + "\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("products.alias.json"),
            twice(json!({"products": {"aliases": {"catalog": {}, "cheap": {"filter": {"range": {"price": {"lt": 10}}}}}}})) + "\n",
        )
        .unwrap();
        let templates = twice(
            json!({"kubestash-legacy": {"order": 0, "index_patterns": ["legacy-*"],
            "settings": {"index": {"number_of_shards": "1"}}, "mappings": {}, "aliases": {}}}),
        );
        std::fs::write(dir.join("products.template.json"), templates.clone() + "\n").unwrap();
        // An index with typed (Elasticsearch 6) mappings and no documents file.
        std::fs::write(
            dir.join("orders.mapping.json"),
            json!({"orders": {"mappings": {"_doc": {"properties": {"total": {"type": "long"}}}}}})
                .to_string()
                + "\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("orders.settings.json"),
            twice(json!({"orders": {"settings": {"index": {"number_of_shards": "1"}}}})) + "\n",
        )
        .unwrap();
        std::fs::write(dir.join("orders.template.json"), templates + "\n").unwrap();
        std::fs::write(dir.join("orders.json"), "").unwrap();
    }

    impl Elasticsearch {
        /// `METHOD path` with a JSON body on the server itself; the decoded answer. Non-2xx is
        /// an error showing the answer.
        pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
            let bytes = body.map(|b| b.to_string().into_bytes());
            let resp = crate::http::request(
                method,
                &format!("{}{path}", self.direct_url),
                &[("content-type", "application/json")],
                bytes.as_deref(),
            )?
            .ensure_success(&format!("{method} {path}"))?;
            if resp.body.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(&resp.body)
                .map_err(|e| Error::Protocol(format!("{method} {path}: not JSON: {e}")))
        }

        /// `_bulk` index `docs` (`(index, id, routing, source)`) and fail on any item error.
        pub fn bulk(&self, docs: &[(String, String, Option<String>, Value)]) -> Result<()> {
            for chunk in docs.chunks(2000) {
                let mut body = String::new();
                for (index, id, routing, source) in chunk {
                    let mut action = json!({"_index": index, "_id": id});
                    if let Some(r) = routing {
                        action["routing"] = json!(r);
                    }
                    body.push_str(&json!({ "index": action }).to_string());
                    body.push('\n');
                    body.push_str(&source.to_string());
                    body.push('\n');
                }
                let resp = crate::http::post(
                    &format!("{}/_bulk", self.direct_url),
                    "application/x-ndjson",
                    body.as_bytes(),
                )?
                .ensure_success("_bulk")?;
                let v: Value = serde_json::from_slice(&resp.body)
                    .map_err(|e| Error::Protocol(format!("_bulk: not JSON: {e}")))?;
                if v["errors"].as_bool() == Some(true) {
                    return Err(Error::Protocol(format!("_bulk item errors: {}", resp.text())));
                }
            }
            Ok(())
        }
    }

    /// Documents in [`seed_varied`] with `docs` documents, per index.
    pub fn varied_counts(docs: usize) -> BTreeMap<String, usize> {
        let users = docs * 3 / 10;
        let metrics = docs / 20;
        let archive = 40.min(docs / 100);
        BTreeMap::from([
            ("logs-2024.01".to_string(), docs - users - metrics - archive),
            ("users".to_string(), users),
            ("metrics-cpu".to_string(), metrics),
            ("empty".to_string(), 0),
            ("archive".to_string(), archive),
        ])
    }

    /// Several indices (custom analyzer, 2 shards, strict mappings, multi-fields, disabled
    /// objects, a write-blocked archive), aliases (plain, filtered with routing, write index), a component template, an
    /// index template that shapes `metrics-*`, a legacy template, `docs` documents in all (ids
    /// with slashes, spaces and non-ASCII, some with routing, escaped and Unicode text), an
    /// empty index and a dot index (`.internal-audit`) that default backups leave out.
    pub fn seed_varied(es: &Elasticsearch, docs: usize) -> Result<()> {
        let counts = varied_counts(docs);
        es.call(
            "PUT",
            "/_component_template/metrics-base",
            Some(&json!({
                "template": {
                    "settings": {"number_of_shards": 1},
                    "mappings": {"properties": {"host": {"type": "keyword"}, "at": {"type": "date"}}}
                },
                "_meta": {"owner": "kstash-tests"}
            })),
        )?;
        es.call(
            "PUT",
            "/_index_template/metrics",
            Some(&json!({
                "index_patterns": ["metrics-*"],
                "composed_of": ["metrics-base"],
                "priority": 50,
                "template": {
                    "mappings": {"properties": {"value": {"type": "double"}}},
                    "aliases": {"metrics": {}}
                },
                "_meta": {"purpose": "metrics"}
            })),
        )?;
        es.call(
            "PUT",
            "/_template/legacy-old",
            Some(&json!({
                "index_patterns": ["old-*"],
                "order": 3,
                "settings": {"number_of_shards": 1},
                "mappings": {"properties": {"legacy": {"type": "keyword"}}},
                "aliases": {"old": {}}
            })),
        )?;
        es.call(
            "PUT",
            "/logs-2024.01",
            Some(&json!({
                "settings": {
                    "number_of_shards": 2,
                    "number_of_replicas": 0,
                    "refresh_interval": "5s",
                    "analysis": {"analyzer": {"folding": {
                        "type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]
                    }}}
                },
                "mappings": {"properties": {
                    "message": {"type": "text", "analyzer": "folding", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}},
                    "level": {"type": "keyword"},
                    "ts": {"type": "date"},
                    "bytes": {"type": "long"},
                    "tags": {"type": "keyword"},
                    "meta": {"type": "object", "enabled": false}
                }},
                "aliases": {
                    "logs": {},
                    "logs-errors": {"filter": {"term": {"level": "error"}}, "routing": "1"},
                    "logs-write": {"is_write_index": true}
                }
            })),
        )?;
        es.call(
            "PUT",
            "/users",
            Some(&json!({
                "settings": {"number_of_shards": 1},
                "mappings": {"dynamic": "strict", "properties": {
                    "name": {"type": "text"},
                    "email": {"type": "keyword"},
                    "age": {"type": "integer"},
                    "score": {"type": "float"},
                    "active": {"type": "boolean"},
                    "address": {"properties": {"city": {"type": "keyword"}, "zip": {"type": "keyword"}}},
                    "created": {"type": "date"}
                }},
                "aliases": {"people": {}}
            })),
        )?;
        es.call("PUT", "/metrics-cpu", Some(&json!({})))?;
        es.call("PUT", "/empty", Some(&json!({"aliases": {"empty-alias": {}}})))?;
        es.call(
            "PUT",
            "/archive",
            Some(&json!({"settings": {"number_of_shards": 1}})),
        )?;
        es.call(
            "PUT",
            "/.internal-audit",
            Some(&json!({"settings": {"number_of_shards": 1}})),
        )?;

        let levels = ["info", "warn", "error", "debug"];
        let words = [
            "zürich",
            "naïve",
            "café",
            "timeout",
            "disk",
            "\"quoted\"",
            "tab\there",
            "line\nbreak",
            "日本",
            "emoji 🎉",
        ];
        let mut all = Vec::new();
        for i in 0..counts["logs-2024.01"] {
            let message = format!(
                "{} request {i} {} {}",
                words[i % words.len()],
                words[(i * 7) % words.len()],
                "x".repeat(i % 17)
            );
            all.push((
                "logs-2024.01".to_string(),
                format!("log-{i}"),
                (i % 10 == 0).then(|| format!("r{}", i % 3)),
                json!({
                    "message": message,
                    "level": levels[i % levels.len()],
                    "ts": format!("2024-01-{:02}T{:02}:{:02}:{:02}Z", 1 + i % 28, i % 24, i % 60, (i * 13) % 60),
                    "bytes": (i as i64) * 7919 - 100_000,
                    "tags": [format!("t{}", i % 5), format!("u{}", i % 11)],
                    "meta": {"nested": {"deep": [i, i * 2, null]}, "flag": i % 2 == 0}
                }),
            ));
        }
        for i in 0..counts["users"] {
            let id = match i % 4 {
                0 => format!("user/{i}"),
                1 => format!("user {i} ü"),
                2 => format!("u-{i}"),
                _ => format!("{i}"),
            };
            all.push((
                "users".to_string(),
                id,
                None,
                json!({
                    "name": format!("Ünïcode Nämé {i} \\ back\"slash"),
                    "email": format!("user{i}@example.org"),
                    "age": 18 + i % 70,
                    "score": (i % 1000) as f64 / 7.0,
                    "active": i % 3 != 0,
                    "address": {"city": format!("city-{}", i % 97), "zip": format!("{:05}", i)},
                    "created": format!("2023-{:02}-{:02}", 1 + i % 12, 1 + i % 28)
                }),
            ));
        }
        for i in 0..counts["metrics-cpu"] {
            all.push((
                "metrics-cpu".to_string(),
                format!("m{i}"),
                None,
                json!({"host": format!("h{}", i % 9), "at": format!("2024-02-01T00:{:02}:00Z", i % 60), "value": i as f64 * 0.5}),
            ));
        }
        for i in 0..counts["archive"] {
            all.push((
                "archive".to_string(),
                format!("old-{i}"),
                None,
                json!({"year": 2000 + i, "note": format!("archived {i}")}),
            ));
        }
        for i in 0..50 {
            all.push((
                ".internal-audit".to_string(),
                format!("a{i}"),
                None,
                json!({"event": format!("login {i}")}),
            ));
        }
        es.bulk(&all)?;
        // A read-only archive: a restore must load it first and block it afterwards.
        es.call(
            "PUT",
            "/archive/_settings",
            Some(&json!({"index": {"blocks": {"write": true}}})),
        )?;
        es.call("POST", "/_refresh", None)?;
        Ok(())
    }

    /// Everything a backup must preserve, per index and template.
    #[derive(Debug, Clone, PartialEq)]
    pub struct IndexPrint {
        pub settings: Value,
        pub mappings: Value,
        pub aliases: Value,
        pub count: usize,
        /// SHA-256 over the sorted `(id, routing, _source)` lines.
        pub checksum: String,
        /// Those lines.
        pub docs: Vec<String>,
    }

    /// The state of a cluster as a backup sees it.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Fingerprint {
        pub indices: BTreeMap<String, IndexPrint>,
        /// `kind/name` → body.
        pub templates: BTreeMap<String, Value>,
    }

    impl Fingerprint {
        /// Panics naming the first difference (without dumping every document).
        pub fn assert_same(&self, other: &Fingerprint) {
            assert_eq!(
                self.indices.keys().collect::<Vec<_>>(),
                other.indices.keys().collect::<Vec<_>>(),
                "indices differ"
            );
            for (name, a) in &self.indices {
                let b = &other.indices[name];
                assert_eq!(a.settings, b.settings, "settings of {name} differ");
                assert_eq!(a.mappings, b.mappings, "mappings of {name} differ");
                assert_eq!(a.aliases, b.aliases, "aliases of {name} differ");
                assert_eq!(a.count, b.count, "document count of {name} differs");
                if a.checksum != b.checksum {
                    let first = a.docs.iter().zip(&b.docs).find(|(x, y)| x != y);
                    panic!("documents of {name} differ; first difference: {first:?}");
                }
            }
            assert_eq!(self.templates, other.templates, "templates differ");
        }
    }

    /// Settings, mappings, aliases, count and document checksum of every index not starting
    /// with a dot, and every template not starting with a dot.
    pub fn fingerprint(es: &Elasticsearch) -> Result<Fingerprint> {
        es.call("POST", "/_refresh", None)?;
        let all = es.call("GET", "/_all", None)?;
        let mut indices = BTreeMap::new();
        for (name, meta) in all.as_object().into_iter().flatten() {
            if name.starts_with('.') {
                continue;
            }
            let mut settings = meta["settings"].clone();
            if let Some(index) = settings.get_mut("index").and_then(Value::as_object_mut) {
                for k in ["uuid", "creation_date", "provided_name", "version", "history"] {
                    index.remove(k);
                }
            }
            let docs = documents(es, name)?;
            let mut hash = Sha256::new();
            for d in &docs {
                hash.update(d.as_bytes());
                hash.update(b"\n");
            }
            let checksum = hash
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            let count = es.call(
                "GET",
                &format!("/{}/_count", crate::http::percent_encode(name, false)),
                None,
            )?["count"]
                .as_u64()
                .unwrap_or(0) as usize;
            assert_eq!(count, docs.len(), "_count of {name} disagrees with a full read");
            indices.insert(
                name.clone(),
                IndexPrint {
                    settings,
                    mappings: meta["mappings"].clone(),
                    aliases: meta["aliases"].clone(),
                    count,
                    checksum,
                    docs,
                },
            );
        }
        let mut templates = BTreeMap::new();
        for t in es.call("GET", "/_component_template", None)?["component_templates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = t["name"].as_str().unwrap_or_default();
            if !name.starts_with('.') {
                templates.insert(format!("component/{name}"), t["component_template"].clone());
            }
        }
        for t in es.call("GET", "/_index_template", None)?["index_templates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = t["name"].as_str().unwrap_or_default();
            if !name.starts_with('.') {
                templates.insert(format!("index/{name}"), t["index_template"].clone());
            }
        }
        for (name, body) in es
            .call("GET", "/_template", None)?
            .as_object()
            .into_iter()
            .flatten()
        {
            if !name.starts_with('.') {
                templates.insert(format!("legacy/{name}"), body.clone());
            }
        }
        Ok(Fingerprint { indices, templates })
    }

    /// Every document of `index` as sorted `id \t routing \t _source` lines (scroll).
    pub fn documents(es: &Elasticsearch, index: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let path = crate::http::percent_encode(index, false);
        let mut page = es.call(
            "POST",
            &format!("/{path}/_search?scroll=1m"),
            Some(&json!({"size": 5000, "sort": ["_doc"]})),
        )?;
        loop {
            let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
            if hits.is_empty() {
                break;
            }
            for h in hits {
                out.push(format!(
                    "{}\t{}\t{}",
                    h["_id"].as_str().unwrap_or_default(),
                    h["_routing"].as_str().unwrap_or_default(),
                    h["_source"]
                ));
            }
            let id = page["_scroll_id"].as_str().unwrap_or_default().to_string();
            page = es.call(
                "POST",
                "/_search/scroll",
                Some(&json!({"scroll": "1m", "scroll_id": id})),
            )?;
        }
        out.sort();
        Ok(out)
    }

    /// Delete every index not starting with a dot and every template this module creates.
    pub fn destroy(es: &Elasticsearch) -> Result<()> {
        let all = es.call("GET", "/_all", None)?;
        for name in all.as_object().into_iter().flatten().map(|(k, _)| k) {
            if !name.starts_with('.') {
                es.call(
                    "DELETE",
                    &format!("/{}", crate::http::percent_encode(name, false)),
                    None,
                )?;
            }
        }
        es.call("DELETE", "/_index_template/metrics", None)?;
        es.call("DELETE", "/_component_template/metrics-base", None)?;
        es.call("DELETE", "/_template/legacy-old", None)?;
        Ok(())
    }
}
