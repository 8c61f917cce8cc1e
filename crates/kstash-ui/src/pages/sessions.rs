//! Live pages of a BackupSession and a RestoreSession: phase, progress per component (bytes,
//! files, percent, speed, ETA from the executor's recorded progress), hook outcomes and the tail
//! of the executor's log; the page refreshes itself until the session ends.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Html;
use kstash_api::meta;
use maud::{Markup, html};
use serde_json::Value;

use super::{created, one};
use crate::auth::Session;
use crate::error::UiError;
use crate::server::{AppState, blocking};
use crate::view::{Ctx, enc, page, phase, s, when};

/// Lines of the executor log shown.
const LOG_TAIL: usize = 60;

pub async fn backup_session(
    State(st): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path((ns, n)): Path<(String, String)>,
) -> Result<Html<String>, UiError> {
    let ctx = Ctx::new(&session, st.read_only);
    blocking(move || Ok(Html(render_backup(&st, &ctx, &ns, &n)?.into_string()))).await
}

pub async fn restore_session(
    State(st): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path((ns, n)): Path<(String, String)>,
) -> Result<Html<String>, UiError> {
    let ctx = Ctx::new(&session, st.read_only);
    blocking(move || Ok(Html(render_restore(&st, &ctx, &ns, &n)?.into_string()))).await
}

fn finished(p: &str) -> bool {
    matches!(p, "Succeeded" | "Failed" | "Skipped" | "Invalid")
}

/// One progress line: a bar when the percent is known, and KubeStash's summary.
fn progress(p: &Value, done_field: &str) -> Markup {
    let percent: Option<f64> = s(p, "/percentDone").trim_end_matches('%').parse().ok();
    let line = kstash_api::progress::summary(
        s(p, "/percentDone"),
        s(p, done_field),
        s(p, "/total"),
        (
            p.get("filesDone").and_then(Value::as_i64).unwrap_or(0),
            p.get("totalFiles").and_then(Value::as_i64).unwrap_or(0),
        ),
        s(p, "/speed"),
        p.get("secondsElapsed").and_then(Value::as_i64).unwrap_or(0),
    );
    html! {
        @if let Some(pc) = percent {
            svg.progressbar viewBox="0 0 100 4" preserveAspectRatio="none" width="100%" height="10" role="progressbar" aria-valuenow=(format!("{pc:.0}")) aria-valuemin="0" aria-valuemax="100" {
                rect width="100" height="4" fill="#e6e9ef" {}
                rect width=(format!("{:.2}", pc.clamp(0.0, 100.0))) height="4" fill="#1f5fbf" {}
            }
        }
        span.progress-line { (line) }
    }
}

fn hooks(status: Option<&Value>) -> Markup {
    let list = |key: &str| -> Vec<Value> {
        status
            .and_then(|h| h.get(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (pre, post) = (list("preHooks"), list("postHooks"));
    html! {
        @if pre.is_empty() && post.is_empty() { p.muted { "No hooks." } } @else {
            div.scroll { table id="hooks" {
                thead { tr { th scope="col" { "When" } th scope="col" { "Hook" } th scope="col" { "Outcome" } } }
                tbody {
                    @for (when, h) in pre.iter().map(|h| ("before", h)).chain(post.iter().map(|h| ("after", h))) {
                        tr { td { (when) } td { (s(h, "/name")) } td { (phase(s(h, "/phase"))) } }
                    }
                }
            } }
        }
    }
}

fn log_tail(st: &AppState, ns: &str, session: &str) -> Markup {
    match st.ops.executor_log(ns, session) {
        None => html! { p.muted { "No executor log (yet)." } },
        Some(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
            html! { pre id="log" { (tail) } }
        }
    }
}

fn render_backup(st: &AppState, ctx: &Ctx, ns: &str, n: &str) -> Result<Markup, UiError> {
    let bs = one(st, &meta::BACKUP_SESSION, ns, n)?;
    let ph = s(&bs, "/status/phase");
    let invoker = s(&bs, "/spec/invoker/name");
    let snaps: Vec<Value> = bs
        .pointer("/status/snapshots")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| st.res.get(&meta::SNAPSHOT, ns, s(x, "/name")).ok().flatten())
        .collect();
    Ok(page(
        ctx,
        &format!("BackupSession {ns}/{n}"),
        !finished(ph),
        html! {
            section.card {
                dl.facts {
                    dt { "Phase" } dd id="phase" data-phase=(ph) { (phase(ph)) }
                    dt { "Configuration" } dd { a href={"/configurations/" (enc(ns)) "/" (enc(invoker))} { (invoker) } " (session " (s(&bs, "/spec/session")) ")" }
                    dt { "Started" } dd { (when(ctx, created(&bs))) }
                    dt { "Duration" } dd { (s(&bs, "/status/duration")) }
                    @let why = super::overview::failure(&bs);
                    @if !why.is_empty() { dt { "Why" } dd.error { (why) } }
                }
            }
            h2 { "Progress" }
            @if snaps.is_empty() { p.muted { "Waiting for the snapshots to be created." } }
            @for sn in &snaps {
                section.card {
                    h3 { "Snapshot " a href={"/snapshots/" (enc(ns)) "/" (enc(crate::view::name(sn)))} { (crate::view::name(sn)) } " " (phase(s(sn, "/status/phase"))) }
                    div.scroll { table {
                        thead { tr { th scope="col" { "Component" } th scope="col" { "Phase" } th scope="col" { "Progress" } th scope="col" { "Size" } th scope="col" { "Duration" } } }
                        tbody { @for (cname, c) in sn.pointer("/status/components").and_then(Value::as_object).into_iter().flatten() {
                            tr {
                                td { (cname) }
                                td { (phase(s(c, "/phase"))) }
                                td { @for stat in c.get("resticStats").and_then(Value::as_array).into_iter().flatten() {
                                    @if let Some(p) = stat.get("progress") { (progress(p, "/backupDone")) }
                                    @else if let Some(sum) = stat.get("summary") { span.muted { "uploaded " (s(sum, "/uploaded")) } }
                                } }
                                td { (s(c, "/size")) }
                                td { (s(c, "/duration")) }
                            }
                        } }
                    } }
                }
            }
            h2 { "Hooks" }
            (hooks(bs.pointer("/status/hooks")))
            h2 { "Executor log" }
            (log_tail(st, ns, n))
        },
    ))
}

fn render_restore(st: &AppState, ctx: &Ctx, ns: &str, n: &str) -> Result<Markup, UiError> {
    let rs = one(st, &meta::RESTORE_SESSION, ns, n)?;
    let ph = s(&rs, "/status/phase");
    let repo = s(&rs, "/spec/dataSource/repository");
    let snapshot = s(&rs, "/spec/dataSource/snapshot");
    Ok(page(
        ctx,
        &format!("RestoreSession {ns}/{n}"),
        !finished(ph),
        html! {
            section.card {
                dl.facts {
                    dt { "Phase" } dd id="phase" data-phase=(ph) { (phase(ph)) }
                    dt { "Repository" } dd { a href={"/repositories/" (enc(ns)) "/" (enc(repo))} { (repo) } }
                    dt { "Snapshot" } dd { (if snapshot.is_empty() { "point in time" } else { snapshot }) }
                    dt { "Target" } dd { (s(&rs, "/spec/target/kind")) " " (s(&rs, "/spec/target/namespace")) "/" (s(&rs, "/spec/target/name")) }
                    dt { "Started" } dd { (when(ctx, created(&rs))) }
                    dt { "Duration" } dd { (s(&rs, "/status/duration")) }
                    @for c in rs.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten().filter(|c| s(c, "/status") == "False") {
                        dt { (s(c, "/type")) } dd.error { (s(c, "/message")) }
                    }
                }
            }
            h2 { "Progress" }
            div.scroll { table {
                thead { tr { th scope="col" { "Component" } th scope="col" { "Phase" } th scope="col" { "Progress" } th scope="col" { "Duration" } } }
                tbody { @for (cname, c) in rs.pointer("/status/components").and_then(Value::as_object).into_iter().flatten() {
                    tr {
                        td { (cname) }
                        td { (phase(s(c, "/phase"))) }
                        td { @if let Some(p) = c.get("progress") { (progress(p, "/restoreDone")) } }
                        td { (s(c, "/duration")) }
                    }
                } }
            } }
            h2 { "Hooks" }
            (hooks(rs.pointer("/status/hooks")))
            h2 { "Executor log" }
            (log_tail(st, ns, n))
        },
    ))
}
