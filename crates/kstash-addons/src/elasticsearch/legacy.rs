//! Restore of snapshots taken by KubeStash: a directory of multielasticdump files, read straight
//! out of the repository (no interim volume). Per index `<index>.json` holds the documents (one
//! elasticdump hit per line), `<index>.settings.json`, `<index>.mapping.json`,
//! `<index>.alias.json`, `<index>.analyzer.json` the index's metadata as `GET` returned it
//! (`{"<index>":{"settings":…}}`, some files JSON-encoded twice), and `<index>.template.json`
//! every legacy template of the cluster (`{"<name>":{…}}`).

use std::collections::BTreeMap;
use std::io::{self, Write};

use kstash_repo::Repository;
use kstash_repo::dump::dump_node;
use kstash_repo::tree::{Node, NodeType};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::export::clean_settings;
use super::import::{IndexDef, Loader, Template, finish, prepare, with_loader};
use super::{Client, ExistingIndex, Options, TOOL};
use crate::error::{ExecError, Result};

fn tool_err(message: String) -> ExecError {
    ExecError::Tool {
        tool: TOOL.into(),
        message,
    }
}

/// The multielasticdump files of one index.
#[derive(Default)]
struct Files {
    data: Option<Node>,
    settings: Option<Node>,
    mapping: Option<Node>,
    alias: Option<Node>,
    analyzer: Option<Node>,
    template: Option<Node>,
}

/// `(index, kind)` of a multielasticdump file name.
fn classify(name: &str) -> Option<(&str, &'static str)> {
    for (suffix, kind) in [
        (".settings.json", "settings"),
        (".mapping.json", "mapping"),
        (".alias.json", "alias"),
        (".analyzer.json", "analyzer"),
        (".template.json", "template"),
        (".json", "data"),
    ] {
        if let Some(index) = name.strip_suffix(suffix)
            && !index.is_empty()
        {
            return Some((index, kind));
        }
    }
    None
}

/// Restore the multielasticdump directory `dir` of a KubeStash snapshot; returns the bytes read.
pub(crate) fn restore(client: &Client, opts: &Options, repo: &Repository, dir: &Node) -> Result<u64> {
    let repo_err = |e: kstash_repo::Error| ExecError::Repo {
        repo: repo.location(),
        source: Box::new(e),
    };
    let subtree = dir
        .subtree
        .ok_or_else(|| tool_err(format!("the snapshot's directory {} has no tree", dir.name)))?;
    let tree = repo.load_tree(&subtree).map_err(repo_err)?;
    let mut by_index: BTreeMap<String, Files> = BTreeMap::new();
    for node in &tree.nodes {
        if node.node_type != NodeType::File {
            tracing::warn!(name = %node.name, "not a file; ignored");
            continue;
        }
        let Some((index, kind)) = classify(&node.name) else {
            tracing::warn!(name = %node.name, "not a multielasticdump file; ignored");
            continue;
        };
        let files = by_index.entry(index.to_string()).or_default();
        let slot = match kind {
            "settings" => &mut files.settings,
            "mapping" => &mut files.mapping,
            "alias" => &mut files.alias,
            "analyzer" => &mut files.analyzer,
            "template" => &mut files.template,
            _ => &mut files.data,
        };
        *slot = Some(node.clone());
    }
    if by_index.is_empty() {
        return Err(tool_err(format!(
            "the snapshot's directory {} holds no multielasticdump files (<index>.json, <index>.mapping.json, …); it is not an Elasticsearch backup of KubeStash",
            dir.name
        )));
    }
    tracing::info!(
        indices = by_index.len(),
        "restoring a KubeStash (multielasticdump) snapshot"
    );
    let mut bytes = 0u64;
    let mut read_json = |node: &Option<Node>| -> Result<Option<Value>> {
        let Some(node) = node else { return Ok(None) };
        let mut buf = Vec::new();
        bytes += dump_node(repo, node, &mut buf).map_err(repo_err)?;
        parse_dump_json(&buf)
            .map(Some)
            .map_err(|m| tool_err(format!("file {} of the snapshot: {m}", node.name)))
    };
    let mut templates: BTreeMap<String, Value> = BTreeMap::new();
    let mut indices = Vec::new();
    for (index, files) in &by_index {
        if let Some(Value::Object(all)) = read_json(&files.template)?
            && opts.parts.templates
        {
            for (name, body) in all {
                if !name.starts_with('.') {
                    templates.entry(name).or_insert(body);
                }
            }
        }
        let entry = |v: Option<Value>| -> Value {
            match v {
                Some(Value::Object(m)) => m
                    .get(index.as_str())
                    .cloned()
                    .or_else(|| m.values().next().cloned())
                    .unwrap_or_default(),
                _ => Value::Null,
            }
        };
        let settings_entry = entry(read_json(&files.settings)?);
        let mapping_entry = entry(read_json(&files.mapping)?);
        let alias_entry = entry(read_json(&files.alias)?);
        let analyzer_entry = entry(read_json(&files.analyzer)?);
        let mut settings = settings_entry
            .get("settings")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(analysis) = find_analysis(&analyzer_entry) {
            let index_obj = settings
                .as_object_mut()
                .map(|m| m.entry("index").or_insert_with(|| json!({})));
            if let Some(Value::Object(i)) = index_obj {
                i.entry("analysis").or_insert(analysis);
            }
        }
        let mut meta = Map::new();
        meta.insert("settings".into(), settings);
        meta.insert(
            "mappings".into(),
            mapping_entry
                .get("mappings")
                .cloned()
                .unwrap_or_else(|| json!({})),
        );
        meta.insert(
            "aliases".into(),
            alias_entry.get("aliases").cloned().unwrap_or_else(|| json!({})),
        );
        let meta = Value::Object(meta);
        indices.push(IndexDef {
            name: index.clone(),
            settings: clean_settings(meta["settings"].clone(), &opts.parts),
            mappings: if opts.parts.mappings {
                meta["mappings"].clone()
            } else {
                json!({})
            },
            aliases: if opts.parts.aliases {
                meta["aliases"].clone()
            } else {
                json!({})
            },
        });
    }
    let templates: Vec<Template> = templates
        .into_iter()
        .map(|(name, body)| Template {
            kind: "legacy_template".into(),
            name,
            body,
        })
        .collect();
    let plan = prepare(client, opts, &templates, &indices)?;
    let loaded = with_loader(client, opts, |loader| -> Result<()> {
        for (index, files) in &by_index {
            let Some(node) = &files.data else { continue };
            if !plan.load.contains(index) || !opts.parts.data {
                continue;
            }
            let mut sink = LineSink {
                index,
                file: &node.name,
                loader,
                partial: Vec::new(),
                error: None,
                line: 0,
            };
            let dumped = dump_node(repo, node, &mut sink);
            if let Some(e) = sink.error.take() {
                return Err(e);
            }
            bytes += dumped.map_err(repo_err)?;
            sink.end()?;
        }
        Ok(())
    })?;
    if opts.existing == ExistingIndex::Skip && !plan.skipped.is_empty() {
        tracing::warn!(indices = ?plan.skipped, "indices skipped");
    }
    finish(client, &plan, &loaded)?;
    tracing::info!(
        indices = loaded.len(),
        docs = loaded.values().sum::<u64>(),
        "KubeStash snapshot restored"
    );
    Ok(bytes)
}

/// An `analysis` object anywhere in an analyzer file's entry.
fn find_analysis(v: &Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if let Some(a) = m.get("analysis") {
                return Some(a.clone());
            }
            m.values().find_map(find_analysis)
        }
        _ => None,
    }
}

/// A multielasticdump metadata file: one JSON value per line (objects merged), each possibly a
/// JSON string holding the JSON.
fn parse_dump_json(buf: &[u8]) -> std::result::Result<Value, String> {
    let mut merged: Option<Value> = None;
    for line in buf.split(|b| *b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let mut v: Value = serde_json::from_slice(line).map_err(|e| format!("is not JSON: {e}"))?;
        if let Value::String(s) = &v {
            v = serde_json::from_str(s).map_err(|e| format!("holds a string that is not JSON: {e}"))?;
        }
        merged = Some(match (merged, v) {
            (Some(Value::Object(mut a)), Value::Object(b)) => {
                a.extend(b);
                Value::Object(a)
            }
            (_, v) => v,
        });
    }
    Ok(merged.unwrap_or(Value::Null))
}

#[derive(Deserialize)]
struct DumpHit<'a> {
    #[serde(default, rename = "_id")]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, rename = "_routing")]
    routing: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, rename = "_source")]
    source: &'a RawValue,
}

/// Feeds the lines of a data file into the loader.
struct LineSink<'a, 'b> {
    index: &'a str,
    file: &'a str,
    loader: &'a mut Loader<'b>,
    partial: Vec<u8>,
    error: Option<ExecError>,
    line: u64,
}

impl LineSink<'_, '_> {
    fn line(&mut self, line: &[u8]) -> Result<()> {
        self.line += 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(());
        }
        let hit: DumpHit<'_> = serde_json::from_slice(line).map_err(|e| {
            tool_err(format!(
                "file {} of the snapshot, line {}: not an elasticdump document: {e}",
                self.file, self.line
            ))
        })?;
        self.loader.add(
            self.index,
            hit.id.as_deref().unwrap_or_default(),
            hit.routing.as_deref(),
            hit.source.get().as_bytes(),
        )
    }

    fn end(&mut self) -> Result<()> {
        let rest = std::mem::take(&mut self.partial);
        self.line(&rest)
    }
}

impl Write for LineSink<'_, '_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut start = 0;
        for (i, b) in data.iter().enumerate() {
            if *b != b'\n' {
                continue;
            }
            let result = if self.partial.is_empty() {
                self.line(&data[start..i])
            } else {
                self.partial.extend_from_slice(&data[start..i]);
                let whole = std::mem::take(&mut self.partial);
                self.line(&whole)
            };
            start = i + 1;
            if let Err(e) = result {
                let message = e.to_string();
                self.error = Some(e);
                return Err(io::Error::other(message));
            }
        }
        self.partial.extend_from_slice(&data[start..]);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_classified() {
        assert_eq!(classify("logs-1.json"), Some(("logs-1", "data")));
        assert_eq!(classify("logs-1.mapping.json"), Some(("logs-1", "mapping")));
        assert_eq!(classify("a.b.settings.json"), Some(("a.b", "settings")));
        assert_eq!(classify("x.template.json"), Some(("x", "template")));
        assert_eq!(classify(".json"), None);
        assert_eq!(classify("metadata.yaml"), None);
    }

    #[test]
    fn double_encoded_files_parse() {
        let v =
            parse_dump_json(br#""{\"a\":{\"settings\":{\"index\":{\"number_of_shards\":\"1\"}}}}""#).unwrap();
        assert_eq!(v["a"]["settings"]["index"]["number_of_shards"], "1");
        let v = parse_dump_json(b"{\"a\":1}\n{\"b\":2}\n").unwrap();
        assert_eq!(v, json!({"a": 1, "b": 2}));
        assert!(parse_dump_json(b"{nope").is_err());
    }
}
