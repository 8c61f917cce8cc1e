//! The pages and actions of the dashboard, one module per page, and what several pages derive
//! from resource documents (a configuration's repositories, a snapshot's time, size and duration).

mod configuration;
mod overview;
mod repositories;
mod restore;
mod sessions;
mod snapshots;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use jiff::Timestamp;
use kstash_api::meta::ResourceType;
use maud::{Markup, html};
use serde_json::Value;

use crate::error::UiError;
use crate::server::AppState;
use crate::view::{name, namespace, s, ts};

/// The routes of every page and action (behind the guard).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(overview::handler))
        .route("/configurations/{ns}/{name}", get(configuration::handler))
        .route(
            "/configurations/{ns}/{name}/trigger",
            post(configuration::trigger),
        )
        .route("/configurations/{ns}/{name}/pause", post(configuration::pause))
        .route("/configurations/{ns}/{name}/resume", post(configuration::resume))
        .route("/sessions/{ns}/{name}", get(sessions::backup_session))
        .route("/restores/{ns}/{name}", get(sessions::restore_session))
        .route("/repositories", get(repositories::list))
        .route("/repositories/{ns}/{name}", get(repositories::detail))
        .route("/repositories/{ns}/{name}/unlock", post(repositories::unlock))
        .route("/snapshots/{ns}/{name}", get(snapshots::detail))
        .route("/browse/{ns}/{snapshot}/{component}", get(snapshots::browse))
        .route("/download/{ns}/{snapshot}/{component}", get(snapshots::download))
        .route("/restore", get(restore::form))
        .route("/restore/preview", post(restore::preview))
        .route("/restore/apply", post(restore::apply))
}

/// Every object of a kind, in every namespace.
pub(crate) fn all(st: &AppState, rt: &'static ResourceType) -> Result<Vec<Value>, UiError> {
    Ok(st.res.list(rt, None, &[])?)
}

/// One object, or `NotFound` naming it.
pub(crate) fn one(st: &AppState, rt: &'static ResourceType, ns: &str, n: &str) -> Result<Value, UiError> {
    st.res
        .get(rt, ns, n)?
        .ok_or_else(|| UiError::NotFound(format!("{} {ns}/{n}", rt.kind)))
}

/// The Repository names of a BackupConfiguration (every session).
pub(crate) fn bc_repositories(bc: &Value) -> Vec<String> {
    let mut out: Vec<String> = bc
        .pointer("/spec/sessions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|sess| {
            sess.get("repositories")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .map(|r| s(r, "/name").to_string())
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether a BackupSession or BackupVerificationSession was made for BackupConfiguration `bc`.
pub(crate) fn invoked_by(session: &Value, bc: &Value) -> bool {
    namespace(session) == namespace(bc)
        && s(session, "/spec/invoker/name") == name(bc)
        && matches!(s(session, "/spec/invoker/kind"), "BackupConfiguration" | "")
}

/// When a snapshot was taken (`status.snapshotTime`, else its creation).
pub(crate) fn snapshot_time(snap: &Value) -> Option<Timestamp> {
    ts(snap, "/status/snapshotTime").or_else(|| ts(snap, "/metadata/creationTimestamp"))
}

/// A snapshot's size in bytes.
pub(crate) fn snapshot_size(snap: &Value) -> Option<u64> {
    kstash_api::phase::parse_size(s(snap, "/status/size"))
}

fn components(snap: &Value) -> impl Iterator<Item = (&String, &Value)> {
    snap.pointer("/status/components")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

/// The longest component duration of a snapshot.
pub(crate) fn snapshot_duration(snap: &Value) -> Option<Duration> {
    components(snap)
        .filter_map(|(_, c)| kstash_api::duration::parse_go_duration(s(c, "/duration")).ok())
        .max()
}

/// Bytes a snapshot uploaded (every component and repository stat).
pub(crate) fn snapshot_uploaded(snap: &Value) -> u64 {
    components(snap)
        .flat_map(|(_, c)| {
            c.get("resticStats")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|st| kstash_api::phase::parse_size(s(st, "/summary/uploaded")))
        .sum()
}

/// Component names of a snapshot.
pub(crate) fn component_names(snap: &Value) -> Vec<String> {
    components(snap).map(|(k, _)| k.clone()).collect()
}

/// Newest first by `key`.
pub(crate) fn newest_first(items: &mut [&Value], key: fn(&Value) -> Option<Timestamp>) {
    items.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| name(b).cmp(name(a))));
}

/// Creation time of a document.
pub(crate) fn created(v: &Value) -> Option<Timestamp> {
    ts(v, "/metadata/creationTimestamp")
}

/// A byte count for people.
pub(crate) fn size(bytes: u64) -> String {
    kstash_api::phase::format_size(bytes)
}

/// A duration as Go prints it.
pub(crate) fn go_duration(d: Duration) -> String {
    kstash_api::duration::format_go_duration(d)
}

/// An SVG chart with its data as a table under a disclosure.
pub(crate) fn chart_with_table(
    title: &str,
    points: &[(Timestamp, f64)],
    fmt: &dyn Fn(f64) -> String,
) -> Markup {
    html! {
        figure.card {
            figcaption { strong { (title) } }
            (crate::view::raw(crate::charts::line_chart(title, points, fmt)))
            details {
                summary { "Data as a table" }
                div.scroll { table {
                    caption.muted { (title) }
                    thead { tr { th scope="col" { "Time" } th.num scope="col" { "Value" } } }
                    tbody {
                        @for (t, v) in points {
                            tr { td { (t.strftime("%Y-%m-%d %H:%M:%S")) } td.num { (fmt(*v)) } }
                        }
                    }
                } }
            }
        }
    }
}

/// Size and duration charts of the succeeded snapshots of `repositories` in `ns`.
pub(crate) fn trend_charts(label: &str, snaps: &[&Value]) -> Markup {
    let mut ok: Vec<&Value> = snaps
        .iter()
        .copied()
        .filter(|v| s(v, "/status/phase") == "Succeeded")
        .collect();
    ok.sort_by_key(|v| snapshot_time(v));
    let sizes: Vec<(Timestamp, f64)> = ok
        .iter()
        .filter_map(|v| Some((snapshot_time(v)?, snapshot_size(v)? as f64)))
        .collect();
    let durations: Vec<(Timestamp, f64)> = ok
        .iter()
        .filter_map(|v| Some((snapshot_time(v)?, snapshot_duration(v)?.as_secs_f64())))
        .collect();
    html! {
        div.grid {
            (chart_with_table(&format!("Backup size of {label}"), &sizes, &|v| size(v as u64)))
            (chart_with_table(&format!("Backup duration of {label}"), &durations, &|v| go_duration(Duration::from_secs_f64(v))))
        }
    }
}
