//! The Elasticsearch/OpenSearch driver (`elasticsearch-backup`, `elasticsearch-restore`; spec
//! §3.3), native: it speaks the REST API itself (no elasticdump, no Node, no interim volume).
//!
//! **Backup** ([`export`]): waits for the cluster (`GET /`, cluster health not red; the flavour
//! comes from `version.distribution`), selects the indices (see *Selection*), reads their
//! settings, mappings and aliases (`GET /<index>`), the composable index templates, component
//! templates and legacy templates, then every document, in batches of `batchSize`: by default
//! (`paging: auto`) through a point in time (`POST /<index>/_pit`) and `search_after` sorted by
//! `_shard_doc` on Elasticsearch 7.12+, and through a scroll sorted by `_doc` on OpenSearch
//! (whose `_shard_doc` exists only from 3.3) and older Elasticsearch. `paging: pit` asks for a
//! point in time everywhere (OpenSearch: `POST /<index>/_search/point_in_time`), `scroll` for a
//! scroll; a cluster that refuses the point in time or its sort falls back to a scroll. Indices
//! with many documents are read in `parallel` slices (one point in time shared by all). Everything goes out as one NDJSON stream, stored as
//! [`STREAM_FILE`] in the restic snapshot.
//!
//! **Restore** ([`import`]): reads the stream; creates the component templates, index templates
//! and legacy templates (overwriting ones of the same name), then the indices with their
//! settings, mappings and aliases, then loads the documents with `parallel` threads posting
//! `_bulk` requests of `bulkSize`; any item error fails the restore with the first item's
//! error. Each index is refreshed and its document count checked against the stream at the
//! end. Indices that already exist follow `existingIndex`: `fail` (default; checked for every
//! index before anything is written), `skip` (the index and its documents are left alone) or
//! `overwrite` (the index is deleted and restored).
//!
//! **KubeStash snapshots** ([`legacy`]): a snapshot taken by KubeStash holds a directory (the
//! interim dir `/kubestash-interim/data`) of multielasticdump files — `<index>.json` (one
//! elasticdump hit per line: `{"_index","_id","_source","_routing"?}`), `<index>.mapping.json`,
//! `<index>.settings.json`, `<index>.alias.json`, `<index>.analyzer.json` and
//! `<index>.template.json` (legacy templates), some of them JSON-encoded twice. A restore
//! whose snapshot path is a directory reads those files straight out of the repository and
//! restores them the same way, so users can move from KubeStash.
//!
//! # The stream (`elasticsearch.ndjson`, format `kstash-elasticsearch` version 1)
//!
//! One JSON object per line, in this order:
//!
//! ```text
//! {"format":"kstash-elasticsearch","version":1,"source":{"distribution":"opensearch","version":"3.8.0","cluster":"c"},"created":"2026-…Z","parts":[…]}
//! {"component_template":{"name":"ct1","body":{"template":{…},"_meta":{…}}}}
//! {"index_template":{"name":"it1","body":{"index_patterns":[…],"composed_of":[…],…}}}
//! {"legacy_template":{"name":"lt1","body":{"index_patterns":[…],"order":0,…}}}
//! {"index":{"name":"logs-1","settings":{"index":{…}},"mappings":{…},"aliases":{"logs":{}}}}
//! {"doc":{"_index":"logs-1","_id":"1","routing":"r1","_source":{…}}}
//! …
//! {"end":{"indices":{"logs-1":1234,…},"docs":1234}}
//! ```
//!
//! - `settings` lose the values a cluster assigns itself (`index.uuid`, `creation_date`,
//!   `version`, `provided_name`, `history.uuid`, `resize`, …); `index.blocks` are applied after
//!   the documents are loaded.
//! - Every `index` line comes before any `doc` line; documents of different indices may
//!   interleave (parallel readers). `routing` is present only when the document has one.
//! - The `end` line holds the documents written per index: a stream without it is truncated and
//!   its restore fails; the restore checks each index's count against it.
//!
//! # Selection
//! An index is backed up when it matches `--match=<regex>` of `args` (KubeStash's parameter;
//! default `^(?![.])(?!apm-agent-configuration)(?!kubedb-system).+`: no dot-, APM- or KubeDB
//! system indices) and the kstash parameter `indices` (comma-separated names with `*`/`?`
//! wildcards, `-pattern` excludes; default all). Rust's `regex` has no look-around, so leading
//! negative lookaheads right after `^` (`^(?!a)(?!b)rest`) are translated here into "does not
//! start with `a` or `b`, and matches `^rest`"; other look-around is refused with a message.
//! `--ignoreType=data,mapping,settings,template,alias,analyzer` and `--includeType=…` leave parts
//! out, `--limit=N` sets the batch size unless `batchSize` is given; other multielasticdump
//! options are ignored with a warning.
//!
//! # Limits
//! Closed indices are skipped (logged); data streams' backing indices are dot-prefixed and so
//! left out by default. Templates named with a leading dot or marked `_meta.managed` (built-in)
//! are not backed up. HTTPS trusts the AppBinding's caBundle (only it) when there is one, the
//! web PKI roots otherwise; `insecureSkipTLSVerify` turns verification off. A certificate the
//! client does not trust is retried like an unreachable server until `waitTimeout`, then
//! reported with the TLS error.

mod client;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod legacy;

use std::time::Duration;

use regex::Regex;

use crate::appbinding::Connection;
use crate::error::{ExecError, Result};
use crate::native::{ThreadSink, ThreadSource};
use crate::stream::{Sink, Source, StreamDriver};
use crate::task::ResolvedTask;

pub(crate) use client::{Client, HttpError, TOOL, encode};

/// The file name of the stream inside the restic snapshot.
pub(crate) const STREAM_FILE: &str = "elasticsearch.ndjson";
/// The stream's format name (header line).
pub(crate) const FORMAT: &str = "kstash-elasticsearch";
/// The stream's format version.
pub(crate) const FORMAT_VERSION: u64 = 1;
/// Secret keys holding the user name, in order of preference (KubeStash's).
pub(crate) const USER_KEYS: &[&str] = &["username", "ADMIN_USERNAME"];
/// Secret keys holding the password, in order of preference (KubeStash's).
pub(crate) const PASSWORD_KEYS: &[&str] = &["password", "ADMIN_PASSWORD"];
/// KubeStash's default `--match`.
pub(crate) const DEFAULT_MATCH: &str = "^(?![.])(?!apm-agent-configuration)(?!kubedb-system).+";

const DEFAULT_BATCH: usize = 5000;
const DEFAULT_BULK_DOCS: usize = 1000;
const DEFAULT_BULK_BYTES: usize = 5 << 20;
const DEFAULT_PARALLEL: usize = 2;

/// What an index that already exists in the target gets on restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExistingIndex {
    Fail,
    Skip,
    Overwrite,
}

/// How documents are paged through on backup (parameter `paging`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PagingChoice {
    /// A point in time on Elasticsearch 7.12+, a scroll elsewhere.
    Auto,
    Pit,
    Scroll,
}

/// Which parts of the data are backed up or restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts {
    pub data: bool,
    pub mappings: bool,
    pub settings: bool,
    pub analyzers: bool,
    pub aliases: bool,
    pub templates: bool,
}

impl Parts {
    const ALL: Parts = Parts {
        data: true,
        mappings: true,
        settings: true,
        analyzers: true,
        aliases: true,
        templates: true,
    };

    fn set(&mut self, kind: &str, on: bool) -> bool {
        match kind {
            "data" => self.data = on,
            "mapping" | "mappings" => self.mappings = on,
            "settings" => self.settings = on,
            "analyzer" | "analyzers" => self.analyzers = on,
            "alias" | "aliases" => self.aliases = on,
            "template" | "templates" => self.templates = on,
            _ => return false,
        }
        true
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.data, "data"),
            (self.mappings, "mappings"),
            (self.settings, "settings"),
            (self.analyzers, "analyzers"),
            (self.aliases, "aliases"),
            (self.templates, "templates"),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }
}

/// Which indices are selected.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    /// Names starting with a match of one of these are left out (translated lookaheads).
    not_prefixes: Vec<Regex>,
    /// The rest of `--match`.
    matcher: Regex,
    /// `indices`: (exclude, pattern).
    patterns: Vec<(bool, Regex)>,
}

impl Selection {
    pub fn new(matcher: &str, indices: &[String]) -> std::result::Result<Selection, String> {
        let (not_prefixes, matcher) = translate_lookaheads(matcher)?;
        let patterns = indices
            .iter()
            .map(|p| {
                let (exclude, p) = match p.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, p.as_str()),
                };
                (exclude, wildcard(p))
            })
            .collect();
        Ok(Selection {
            not_prefixes,
            matcher,
            patterns,
        })
    }

    /// Whether index `name` is selected.
    pub fn selects(&self, name: &str) -> bool {
        if self.not_prefixes.iter().any(|r| r.is_match(name)) || !self.matcher.is_match(name) {
            return false;
        }
        let includes: Vec<&Regex> = self
            .patterns
            .iter()
            .filter(|(ex, _)| !ex)
            .map(|(_, r)| r)
            .collect();
        (includes.is_empty() || includes.iter().any(|r| r.is_match(name)))
            && !self.patterns.iter().any(|(ex, r)| *ex && r.is_match(name))
    }
}

/// `^(?!a)(?!b)rest` → (`[^(?:a), ^(?:b)]`, `^(?:rest)`); anything else compiled as it is.
fn translate_lookaheads(pattern: &str) -> std::result::Result<(Vec<Regex>, Regex), String> {
    let compile = |p: &str| {
        Regex::new(p).map_err(|e| {
            let hint = if p.contains("(?!") || p.contains("(?=") || p.contains("(?<!") || p.contains("(?<=") {
                " (look-around is supported only as leading (?!…) groups right after ^)"
            } else {
                ""
            };
            format!("--match {pattern:?} is not a valid regular expression{hint}: {e}")
        })
    };
    let Some(mut rest) = pattern.strip_prefix('^') else {
        return Ok((Vec::new(), compile(pattern)?));
    };
    let mut not_prefixes = Vec::new();
    while let Some(after) = rest.strip_prefix("(?!") {
        let end = group_end(after).ok_or_else(|| format!("--match {pattern:?} has an unclosed (?! group"))?;
        not_prefixes.push(compile(&format!("^(?:{})", &after[..end]))?);
        rest = &after[end + 1..];
    }
    Ok((not_prefixes, compile(&format!("^(?:{rest})"))?))
}

/// The index of the `)` closing a group whose body starts at `s[0]`.
fn group_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_class = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    None
}

/// An index-name wildcard (`*`, `?`) as an anchored regex.
fn wildcard(p: &str) -> Regex {
    let mut re = String::from("^");
    for c in p.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).expect("an escaped wildcard is a valid regex")
}

/// The task's parameters, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The indices a backup reads.
    pub selection: Selection,
    /// The indices a restore writes: `indices`, and `--match` only when `args` sets it.
    pub restore_selection: Selection,
    pub parts: Parts,
    /// Documents per search page.
    pub batch_size: usize,
    /// Documents per `_bulk` request.
    pub bulk_docs: usize,
    /// Bytes per `_bulk` request.
    pub bulk_bytes: usize,
    /// Threads reading or loading.
    pub parallel: usize,
    pub existing: ExistingIndex,
    pub paging: PagingChoice,
    pub wait: Duration,
}

impl Options {
    pub fn from_task(task: &ResolvedTask) -> Result<Options> {
        let bad = |m: String| ExecError::invalid(task.describe(), m);
        let args = task.args()?;
        let mut matcher: Option<String> = None;
        let mut parts = Parts::ALL;
        let mut limit: Option<usize> = None;
        let mut parallel_arg: Option<usize> = None;
        let mut iter = args.iter().peekable();
        while let Some(arg) = iter.next() {
            let (key, value) = match arg.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None if arg.starts_with("--") && iter.peek().is_some_and(|n| !n.starts_with("--")) => {
                    (arg.clone(), iter.next().cloned().unwrap_or_default())
                }
                None => (arg.clone(), String::new()),
            };
            match key.as_str() {
                "--match" | "--matchType" => matcher = Some(value),
                "--ignoreType" => {
                    for kind in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                        if !parts.set(kind, false) {
                            tracing::warn!(kind, "args --ignoreType: unknown type ignored");
                        }
                    }
                }
                "--includeType" => {
                    let mut only = Parts {
                        data: false,
                        mappings: false,
                        settings: false,
                        analyzers: false,
                        aliases: false,
                        templates: false,
                    };
                    for kind in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                        if !only.set(kind, true) {
                            tracing::warn!(kind, "args --includeType: unknown type ignored");
                        }
                    }
                    parts = only;
                }
                "--limit" => {
                    limit = Some(value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        bad(format!(
                            "parameter args: --limit={value:?} is not a positive number"
                        ))
                    })?)
                }
                "--parallel" => parallel_arg = value.parse().ok().filter(|n| *n > 0),
                other => tracing::warn!(
                    arg = other,
                    "args: multielasticdump option not used by kstash, ignored"
                ),
            }
        }
        let indices = task.list_param("indices");
        let selection = Selection::new(matcher.as_deref().unwrap_or(DEFAULT_MATCH), &indices)
            .map_err(|m| bad(format!("parameter args: {m}")))?;
        let restore_selection = Selection::new(matcher.as_deref().unwrap_or(""), &indices)
            .map_err(|m| bad(format!("parameter args: {m}")))?;
        let number = |name: &str, default: usize| -> Result<usize> {
            match task.param(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(format!("parameter {name} {v:?} is not a positive number"))),
            }
        };
        let batch_size = match task.param("batchSize") {
            Some(_) => number("batchSize", DEFAULT_BATCH)?,
            None => limit.unwrap_or(DEFAULT_BATCH),
        }
        .min(10_000);
        let (bulk_docs, bulk_bytes) = match task.param("bulkSize") {
            None => (DEFAULT_BULK_DOCS, DEFAULT_BULK_BYTES),
            Some(v) => match parse_size(v) {
                Some(Size::Docs(n)) => (n, 64 << 20),
                Some(Size::Bytes(b)) => (usize::MAX, b),
                None => {
                    return Err(bad(format!(
                        "parameter bulkSize {v:?} is neither a number of documents (1000) nor a size (5MiB)"
                    )));
                }
            },
        };
        let parallel = match task.param("parallel") {
            Some(_) => number("parallel", DEFAULT_PARALLEL)?,
            None => parallel_arg.unwrap_or(DEFAULT_PARALLEL),
        }
        .min(32);
        let existing = match task.param("existingIndex").unwrap_or("fail") {
            "fail" => ExistingIndex::Fail,
            "skip" => ExistingIndex::Skip,
            "overwrite" => ExistingIndex::Overwrite,
            other => {
                return Err(bad(format!(
                    "parameter existingIndex is {other:?}; use fail, skip or overwrite"
                )));
            }
        };
        let paging = match task.param("paging").unwrap_or("auto") {
            "auto" => PagingChoice::Auto,
            "pit" => PagingChoice::Pit,
            "scroll" => PagingChoice::Scroll,
            other => {
                return Err(bad(format!(
                    "parameter paging is {other:?}; use auto, pit or scroll"
                )));
            }
        };
        let wait = task.wait_timeout()?;
        Ok(Options {
            selection,
            restore_selection,
            parts,
            batch_size,
            bulk_docs,
            bulk_bytes,
            parallel,
            existing,
            paging,
            wait,
        })
    }
}

enum Size {
    Docs(usize),
    Bytes(usize),
}

/// `1000` (documents) or `5MiB`, `512KiB`, `8MB` (bytes).
fn parse_size(v: &str) -> Option<Size> {
    let v = v.trim();
    if let Ok(n) = v.parse::<usize>() {
        return (n > 0).then_some(Size::Docs(n));
    }
    let split = v.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = v.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    (n > 0).then(|| Size::Bytes(n * mult))
}

/// An Elasticsearch/OpenSearch target and one of its tasks.
pub(crate) struct Elasticsearch {
    conn: Connection,
    task: ResolvedTask,
}

impl Elasticsearch {
    pub fn new(conn: Connection, task: ResolvedTask) -> Elasticsearch {
        Elasticsearch { conn, task }
    }

    fn context(&self) -> String {
        format!(
            "against {} ({}:{}, user {} from Secret {})",
            self.conn.object,
            self.conn.host,
            self.conn.port.unwrap_or(9200),
            self.conn.user,
            self.conn.secret
        )
    }

    /// The client and options, after the cluster answered.
    fn ready(&self) -> Result<(Client, client::ClusterInfo, Options)> {
        let options = Options::from_task(&self.task)?;
        let client = Client::new(&self.conn)?;
        let info = client.wait_ready(options.wait)?;
        Ok((client, info, options))
    }
}

impl StreamDriver for Elasticsearch {
    fn file_name(&self) -> &str {
        STREAM_FILE
    }

    fn produce(&self) -> Result<Box<dyn Source>> {
        let (client, info, options) = self.ready()?;
        Ok(Box::new(ThreadSource::spawn(TOOL, &self.context(), move |w| {
            export::export(&client, &info, &options, w).map(|_| ())
        })?))
    }

    fn consume(&self) -> Result<Box<dyn Sink>> {
        let (client, _info, options) = self.ready()?;
        Ok(Box::new(ThreadSink::spawn(TOOL, &self.context(), move |r| {
            import::import(&client, &options, r).map(|_| ())
        })?))
    }

    fn restore_dir(
        &self,
        repo: &kstash_repo::Repository,
        dir: &kstash_repo::tree::Node,
    ) -> Option<Result<u64>> {
        Some(
            self.ready()
                .and_then(|(client, _info, options)| legacy::restore(&client, &options, repo, dir)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubestash_default_match_excludes_dot_and_system_indices() {
        let s = Selection::new(DEFAULT_MATCH, &[]).unwrap();
        for yes in ["logs-1", "users", "a.b", "kubedb", "apm"] {
            assert!(s.selects(yes), "{yes}");
        }
        for no in [
            ".kibana",
            ".ds-logs",
            "apm-agent-configuration",
            "kubedb-system",
            "kubedb-system-x",
            "",
        ] {
            assert!(!s.selects(no), "{no}");
        }
    }

    #[test]
    fn index_patterns_include_and_exclude() {
        let s = Selection::new(
            DEFAULT_MATCH,
            &["logs-*".into(), "users".into(), "-logs-old*".into()],
        )
        .unwrap();
        assert!(s.selects("logs-1") && s.selects("users"));
        assert!(!s.selects("logs-old-1") && !s.selects("users2") && !s.selects(".logs-1"));
        let s = Selection::new(".*", &["-tmp?".into()]).unwrap();
        assert!(s.selects(".kibana") && s.selects("tmp") && !s.selects("tmp1"));
        let s = Selection::new("^(app-logs|users)$", &[]).unwrap();
        assert!(s.selects("users") && !s.selects("users-2"));
        let s = Selection::new("^(?![.])(?!a(b|c))x.*", &[]).unwrap();
        assert!(s.selects("xa") && !s.selects(".x") && !s.selects("abx"));
        let e = Selection::new("^a(?!b)", &[]).unwrap_err();
        assert!(e.contains("look-around"), "{e}");
        assert!(Selection::new("^(?!a", &[]).unwrap_err().contains("unclosed"));
    }

    #[test]
    fn sizes_parse() {
        assert!(matches!(parse_size("1000"), Some(Size::Docs(1000))));
        assert!(matches!(parse_size("5MiB"), Some(Size::Bytes(b)) if b == 5 << 20));
        assert!(matches!(parse_size("512 kb"), Some(Size::Bytes(b)) if b == 512 << 10));
        assert!(parse_size("0").is_none() && parse_size("5x").is_none() && parse_size("").is_none());
    }
}
