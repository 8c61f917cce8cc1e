//! A BackupConfiguration: its sessions (schedule, repositories, addon tasks, hooks), recent
//! BackupSessions with duration and result, trends, and the actions trigger now, pause, resume.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use kstash_api::meta;
use maud::{Markup, html};
use serde_json::Value;

use super::{bc_repositories, created, invoked_by, one, trend_charts};
use crate::auth::Session;
use crate::error::UiError;
use crate::server::{AppState, blocking};
use crate::view::{Ctx, action, enc, name, page, phase, s, when};

/// Recent BackupSessions shown.
const RECENT: usize = 20;

pub async fn handler(
    State(st): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path((ns, n)): Path<(String, String)>,
) -> Result<Html<String>, UiError> {
    let ctx = Ctx::new(&session, st.read_only);
    blocking(move || Ok(Html(render(&st, &ctx, &ns, &n)?.into_string()))).await
}

fn names(list: Option<&Value>, field: &str) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| s(v, field).to_string())
        .collect()
}

fn render(st: &AppState, ctx: &Ctx, ns: &str, n: &str) -> Result<Markup, UiError> {
    let bc = one(st, &meta::BACKUP_CONFIGURATION, ns, n)?;
    let mut sessions: Vec<Value> = st
        .res
        .list(&meta::BACKUP_SESSION, Some(ns), &[])?
        .into_iter()
        .filter(|x| invoked_by(x, &bc))
        .collect();
    sessions.sort_by_key(|x| std::cmp::Reverse((created(x), name(x).to_string())));
    let repos = bc_repositories(&bc);
    let snaps = st.res.list(&meta::SNAPSHOT, Some(ns), &[])?;
    let my_snaps: Vec<&Value> = snaps
        .iter()
        .filter(|x| repos.iter().any(|r| r == s(x, "/spec/repository")))
        .collect();
    let paused = bc
        .pointer("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let base = format!("/configurations/{}/{}", enc(ns), enc(n));
    let statuses = bc
        .pointer("/status/sessions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(page(
        ctx,
        &format!("BackupConfiguration {ns}/{n}"),
        false,
        html! {
            div.actions {
                (action(ctx, &format!("{base}/trigger"), "Back up now", ""))
                @if paused {
                    (action(ctx, &format!("{base}/resume"), "Resume", "secondary"))
                } @else {
                    (action(ctx, &format!("{base}/pause"), "Pause", "secondary"))
                }
            }
            section.card {
                dl.facts {
                    dt { "Phase" } dd { (phase(s(&bc, "/status/phase"))) }
                    dt { "Paused" } dd { @if paused { span.badge.warn { "Paused" } } @else { "no" } }
                    dt { "Target" } dd { (s(&bc, "/spec/target/kind")) " " (s(&bc, "/spec/target/namespace")) "/" (s(&bc, "/spec/target/name")) }
                    dt { "Backends" } dd { (names(bc.pointer("/spec/backends"), "/name").join(", ")) }
                }
            }
            h2 { "Sessions" }
            div.scroll { table id="sessions-config" {
                thead { tr {
                    th scope="col" { "Session" } th scope="col" { "Schedule" } th scope="col" { "Next run" }
                    th scope="col" { "Repositories" } th scope="col" { "Addon and tasks" } th scope="col" { "Hooks" }
                } }
                tbody {
                    @for sess in bc.pointer("/spec/sessions").and_then(Value::as_array).into_iter().flatten() {
                        @let sname = s(sess, "/name");
                        @let next = statuses.iter().find(|x| s(x, "/name") == sname).and_then(|x| crate::view::ts(x, "/nextSchedule"));
                        tr {
                            td { (sname) }
                            td { code { (s(sess, "/scheduler/schedule")) } }
                            td { @if paused { span.muted { "paused" } } @else { (when(ctx, next)) } }
                            td { @for r in names(sess.get("repositories"), "/name") {
                                a href={"/repositories/" (enc(ns)) "/" (enc(&r))} { (r) } " "
                            } }
                            td { (s(sess, "/addon/name")) ": " (names(sess.pointer("/addon/tasks"), "/name").join(", ")) }
                            td {
                                @let pre = names(sess.pointer("/hooks/preBackup"), "/name");
                                @let post = names(sess.pointer("/hooks/postBackup"), "/name");
                                @if pre.is_empty() && post.is_empty() { span.muted { "none" } }
                                @if !pre.is_empty() { "before: " (pre.join(", ")) br; }
                                @if !post.is_empty() { "after: " (post.join(", ")) }
                            }
                        }
                    }
                }
            } }
            h2 { "Recent backups" }
            @if sessions.is_empty() { p.muted { "No BackupSession yet." } } @else {
                div.scroll { table id="backupsessions" {
                    thead { tr { th scope="col" { "BackupSession" } th scope="col" { "Started" } th scope="col" { "Duration" } th scope="col" { "Result" } th.hide-narrow scope="col" { "Why" } } }
                    tbody { @for x in sessions.iter().take(RECENT) {
                        tr {
                            td { a href={"/sessions/" (enc(ns)) "/" (enc(name(x)))} { (name(x)) } }
                            td { (when(ctx, created(x))) }
                            td { (s(x, "/status/duration")) }
                            td { (phase(s(x, "/status/phase"))) }
                            td.hide-narrow { (super::overview::failure(x)) }
                        }
                    } }
                } }
            }
            h2 { "Trends" }
            (trend_charts(&format!("{ns}/{n}"), &my_snaps))
        },
    ))
}

async fn act(st: Arc<AppState>, ns: String, n: String, what: &'static str) -> Result<Response, UiError> {
    let target = format!("/configurations/{}/{}", enc(&ns), enc(&n));
    let created = blocking(move || {
        let object = format!("BackupConfiguration {ns}/{n}");
        let created = match what {
            "trigger" => st.ops.trigger(&ns, &n)?,
            "pause" => {
                st.ops.set_paused(&ns, &n, true)?;
                Vec::new()
            }
            _ => {
                st.ops.set_paused(&ns, &n, false)?;
                Vec::new()
            }
        };
        let message = match what {
            "trigger" => format!(
                "dashboard user triggered a backup: BackupSession {}",
                created.join(", ")
            ),
            "pause" => "dashboard user paused the backups".to_string(),
            _ => "dashboard user resumed the backups".to_string(),
        };
        st.ops.event(&object, "DashboardAction", &message);
        tracing::info!(object, action = what, "dashboard action");
        Ok(created)
    })
    .await?;
    // A single new session: follow it live.
    if let [one] = created.as_slice() {
        let ns = target.split('/').nth(2).unwrap_or_default().to_string();
        return Ok(Redirect::to(&format!("/sessions/{ns}/{}", enc(one))).into_response());
    }
    Ok(Redirect::to(&target).into_response())
}

pub async fn trigger(
    State(st): State<Arc<AppState>>,
    Path((ns, n)): Path<(String, String)>,
) -> Result<Response, UiError> {
    act(st, ns, n, "trigger").await
}

pub async fn pause(
    State(st): State<Arc<AppState>>,
    Path((ns, n)): Path<(String, String)>,
) -> Result<Response, UiError> {
    act(st, ns, n, "pause").await
}

pub async fn resume(
    State(st): State<Arc<AppState>>,
    Path((ns, n)): Path<(String, String)>,
) -> Result<Response, UiError> {
    act(st, ns, n, "resume").await
}
