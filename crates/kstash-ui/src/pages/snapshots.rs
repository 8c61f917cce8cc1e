//! A Snapshot (its components with size, duration, restic ids, verification), the snapshot
//! browser (walk a component's tree), and downloads: a file streamed as it is decrypted, a
//! directory as a tar archive; a database component's dump is a file like any other.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use kstash_api::meta;
use kstash_repo::dump::{dump_node, find_node};
use kstash_repo::gojson::GoTime;
use kstash_repo::tree::{Node, NodeType};
use kstash_repo::{Repository, SnapshotEntry};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::{go_duration, one, size, snapshot_duration, snapshot_time, snapshot_uploaded};
use crate::auth::Session;
use crate::download::{channel_body, write_tar};
use crate::error::UiError;
use crate::server::{AppState, blocking};
use crate::view::{Ctx, enc, page, phase, s, when};

pub async fn detail(
    State(st): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path((ns, n)): Path<(String, String)>,
) -> Result<Html<String>, UiError> {
    let ctx = Ctx::new(&session, st.read_only);
    blocking(move || Ok(Html(render_detail(&st, &ctx, &ns, &n)?.into_string()))).await
}

fn render_detail(st: &AppState, ctx: &Ctx, ns: &str, n: &str) -> Result<Markup, UiError> {
    let sn = one(st, &meta::SNAPSHOT, ns, n)?;
    let repo = s(&sn, "/spec/repository");
    Ok(page(
        ctx,
        &format!("Snapshot {ns}/{n}"),
        false,
        html! {
            div.actions {
                @if !ctx.read_only && s(&sn, "/status/phase") == "Succeeded" {
                    a.button.secondary href={"/restore?namespace=" (enc(ns)) "&repository=" (enc(repo)) "&snapshot=" (enc(n))} { "Restore this snapshot…" }
                }
            }
            section.card { dl.facts {
                dt { "Phase" } dd { (phase(s(&sn, "/status/phase"))) }
                dt { "Repository" } dd { a href={"/repositories/" (enc(ns)) "/" (enc(repo))} { (repo) } }
                dt { "Session" } dd { (s(&sn, "/spec/session")) " · BackupSession " a href={"/sessions/" (enc(ns)) "/" (enc(s(&sn, "/spec/backupSession")))} { (s(&sn, "/spec/backupSession")) } }
                dt { "Time" } dd { (when(ctx, snapshot_time(&sn))) }
                dt { "Size" } dd { (s(&sn, "/status/size")) }
                dt { "Uploaded" } dd { (size(snapshot_uploaded(&sn))) }
                dt { "Duration" } dd { (snapshot_duration(&sn).map(go_duration).unwrap_or_default()) }
                dt { "Verification" } dd { (phase(s(&sn, "/status/verificationStatus"))) }
            } }
            h2 { "Components" }
            div.scroll { table id="components" {
                thead { tr { th scope="col" { "Component" } th scope="col" { "Phase" } th scope="col" { "Size" } th scope="col" { "Duration" } th scope="col" { "Driver" } th scope="col" { "Files" } } }
                tbody { @for (cname, c) in sn.pointer("/status/components").and_then(Value::as_object).into_iter().flatten() {
                    tr {
                        td { (cname) }
                        td { (phase(s(c, "/phase"))) }
                        td { (s(c, "/size")) }
                        td { (s(c, "/duration")) }
                        td { (s(c, "/driver")) }
                        td {
                            a href={"/browse/" (enc(ns)) "/" (enc(n)) "/" (enc(cname)) "?path=%2F"} { "Browse files" }
                            " · "
                            a href={"/download/" (enc(ns)) "/" (enc(n)) "/" (enc(cname)) "?path=%2F"} download
                                title="a database dump as its file, a volume as a tar archive" { "Download" }
                        }
                    }
                } }
            } }
        },
    ))
}

#[derive(Deserialize)]
pub struct PathQuery {
    path: Option<String>,
}

fn clean(path: Option<&str>) -> Result<String, UiError> {
    let parts: Vec<&str> = path
        .unwrap_or("/")
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(UiError::BadRequest("a path in a snapshot has no '..'".into()));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The component's repository and its (first) restic snapshot.
fn open(
    st: &AppState,
    ns: &str,
    snapshot: &str,
    component: &str,
) -> Result<(Arc<Repository>, SnapshotEntry), UiError> {
    one(st, &meta::SNAPSHOT, ns, snapshot)?;
    let data = st.ops.open_component(ns, snapshot, component)?;
    let id = data.snapshot_ids.first().ok_or_else(|| {
        UiError::NotFound(format!(
            "a restic snapshot of component {component} of Snapshot {ns}/{snapshot}"
        ))
    })?;
    let entry = data.repo.find_snapshot(id)?;
    Ok((data.repo, entry))
}

/// What a download of the whole component is: the one file of a stream snapshot (a database
/// dump such as `/dumpfile.sql`), else the snapshot's tree.
fn download_root(repo: &Repository, entry: &SnapshotEntry) -> Result<Node, UiError> {
    if let [only] = entry.snapshot.paths.as_slice()
        && let Ok(node) = find_node(repo, entry, only)
        && node.node_type == NodeType::File
    {
        return Ok(node);
    }
    node_at(repo, entry, "/")
}

/// The node at `path`; the root is a directory standing for the snapshot's tree.
fn node_at(repo: &Repository, entry: &SnapshotEntry, path: &str) -> Result<Node, UiError> {
    if path == "/" {
        let mut root = Node::file("snapshot", 0o755, GoTime::default(), 0, 0);
        root.node_type = NodeType::Dir;
        root.subtree = Some(entry.snapshot.tree);
        return Ok(root);
    }
    Ok(find_node(repo, entry, path)?)
}

pub async fn browse(
    State(st): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path((ns, snapshot, component)): Path<(String, String, String)>,
    Query(q): Query<PathQuery>,
) -> Result<Html<String>, UiError> {
    let ctx = Ctx::new(&session, st.read_only);
    let path = clean(q.path.as_deref())?;
    blocking(move || {
        let (repo, entry) = open(&st, &ns, &snapshot, &component)?;
        let node = node_at(&repo, &entry, &path)?;
        let Some(sub) = node.subtree.filter(|_| node.node_type == NodeType::Dir) else {
            return Err(UiError::BadRequest(format!("{path} is not a directory; download it instead")));
        };
        let tree = repo.load_tree(&sub)?;
        let base = format!("{}/{}/{}", enc(&ns), enc(&snapshot), enc(&component));
        let child = |name: &str| {
            if path == "/" { format!("/{name}") } else { format!("{path}/{name}") }
        };
        let parent = path.rsplit_once('/').map(|(p, _)| if p.is_empty() { "/" } else { p }).unwrap_or("/");
        let body = html! {
            p { "Component " strong { (component) } " of " a href={"/snapshots/" (enc(&ns)) "/" (enc(&snapshot))} { "Snapshot " (snapshot) }
                " · restic snapshot " code { (entry.id.short()) } " · paths " code { (entry.snapshot.paths.join(" ")) } }
            p id="path" { "Path: " code { (path) } }
            div.actions {
                @if path != "/" { a.button.secondary href={"/browse/" (base) "?path=" (enc(parent))} { "Up" } }
                a.button.secondary href={"/download/" (base) "?path=" (enc(&path))} download { "Download this directory (tar)" }
            }
            div.scroll { table id="tree" {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th.num scope="col" { "Size" } th.hide-narrow scope="col" { "Modified" } th scope="col" { "Download" } } }
                tbody { @for nd in &tree.nodes {
                    @let p = child(&nd.name);
                    tr {
                        td { @if nd.node_type == NodeType::Dir {
                            a href={"/browse/" (base) "?path=" (enc(&p))} { (nd.name) "/" }
                        } @else { (nd.name) } }
                        td { (nd.node_type.as_str()) }
                        td.num { @if nd.node_type == NodeType::File { (size(nd.size)) } }
                        td.hide-narrow { (nd.mtime.timestamp.strftime("%Y-%m-%d %H:%M:%S")) }
                        td { @match nd.node_type {
                            NodeType::File => a href={"/download/" (base) "?path=" (enc(&p))} download data-file=(p) { "file" },
                            NodeType::Dir => a href={"/download/" (base) "?path=" (enc(&p))} download { "tar" },
                            _ => span.muted { "—" },
                        } }
                    }
                } }
            } }
        };
        Ok(Html(page(&ctx, &format!("Browse {snapshot}/{component}"), false, body).into_string()))
    })
    .await
}

fn attachment(name: &str) -> HeaderValue {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{safe}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

pub async fn download(
    State(st): State<Arc<AppState>>,
    Path((ns, snapshot, component)): Path<(String, String, String)>,
    Query(q): Query<PathQuery>,
) -> Result<Response, UiError> {
    let path = clean(q.path.as_deref())?;
    let (repo, node) = {
        let st = st.clone();
        let (ns, snapshot, component, path) = (ns.clone(), snapshot.clone(), component.clone(), path.clone());
        blocking(move || {
            let (repo, entry) = open(&st, &ns, &snapshot, &component)?;
            let node = if path == "/" {
                download_root(&repo, &entry)?
            } else {
                node_at(&repo, &entry, &path)?
            };
            Ok((repo, node))
        })
        .await?
    };
    let (mut writer, body) = channel_body();
    let object = format!("Snapshot {ns}/{snapshot}");
    let (content_type, filename, length) = match node.node_type {
        NodeType::File => ("application/octet-stream", node.name.clone(), Some(node.size)),
        NodeType::Dir => {
            let base = if path == "/" {
                format!("{snapshot}-{component}")
            } else {
                node.name.clone()
            };
            ("application/x-tar", format!("{base}.tar"), None)
        }
        other => {
            return Err(UiError::BadRequest(format!(
                "{path} is a {}: nothing to download",
                other.as_str()
            )));
        }
    };
    tracing::info!(object, component, path, "dashboard download");
    let is_file = node.node_type == NodeType::File;
    let prefix = filename.trim_end_matches(".tar").to_string();
    // The writer thread ends when the archive is written or the client went away.
    tokio::task::spawn_blocking(move || {
        let result = if is_file {
            dump_node(&repo, &node, &mut writer)
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            write_tar(&repo, &node, &prefix, &mut writer).map(|_| ())
        };
        match result {
            Ok(()) => drop(writer),
            Err(e) => {
                tracing::warn!(error = %e, "dashboard download failed");
                writer.fail(e);
            }
        }
    });
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_DISPOSITION, attachment(&filename));
    if let Some(len) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(r.into_response())
}
