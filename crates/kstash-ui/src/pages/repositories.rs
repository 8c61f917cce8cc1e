//! Repositories: the list (size, snapshot count, integrity, last backup), and one Repository with
//! its lock state (unlock of stale locks), its Snapshots (time, size, uploaded bytes, duration,
//! components, verification, why retention keeps it) and its verification history.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use kstash_api::meta;
use maud::{Markup, html};
use serde_json::Value;

use super::{
    all, component_names, created, go_duration, one, size, snapshot_duration, snapshot_size, snapshot_time,
    snapshot_uploaded,
};
use crate::auth::Session;
use crate::error::UiError;
use crate::server::{AppState, blocking};
use crate::view::{Ctx, action, enc, name, namespace, page, phase, s, ts, when};

/// Snapshots listed on a repository's page (newest first).
const SNAPSHOTS_SHOWN: usize = 200;

pub async fn list(
    State(st): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Result<Html<String>, UiError> {
    let ctx = Ctx::new(&session, st.read_only);
    blocking(move || Ok(Html(render_list(&st, &ctx)?.into_string()))).await
}

fn integrity(v: Option<&Value>) -> Markup {
    match v.and_then(Value::as_bool) {
        Some(true) => html! { span.badge.ok { "intact" } },
        Some(false) => html! { span.badge.bad { "damaged" } },
        None => html! { span.muted { "unknown" } },
    }
}

fn render_list(st: &AppState, ctx: &Ctx) -> Result<Markup, UiError> {
    let mut repos = all(st, &meta::REPOSITORY)?;
    repos.sort_by(|a, b| (namespace(a), name(a)).cmp(&(namespace(b), name(b))));
    Ok(page(
        ctx,
        "Repositories",
        false,
        html! {
            div.scroll { table id="repositories" {
                thead { tr {
                    th scope="col" { "Repository" } th scope="col" { "Phase" } th.num scope="col" { "Size" }
                    th.num scope="col" { "Snapshots" } th scope="col" { "Integrity" } th scope="col" { "Last backup" }
                } }
                tbody { @for r in &repos {
                    tr {
                        td { a href={"/repositories/" (enc(namespace(r))) "/" (enc(name(r)))} { (name(r)) } br; span.muted { (namespace(r)) } }
                        td { (phase(s(r, "/status/phase"))) }
                        td.num { (s(r, "/status/size")) }
                        td.num { (r.pointer("/status/snapshotCount").and_then(Value::as_i64).unwrap_or(0)) }
                        td { (integrity(r.pointer("/status/integrity"))) }
                        td { (when(ctx, ts(r, "/status/lastBackupTime"))) }
                    }
                } }
            } }
        },
    ))
}

pub async fn detail(
    State(st): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path((ns, n)): Path<(String, String)>,
) -> Result<Html<String>, UiError> {
    let ctx = Ctx::new(&session, st.read_only);
    blocking(move || Ok(Html(render_detail(&st, &ctx, &ns, &n)?.into_string()))).await
}

fn locks(st: &AppState, ctx: &Ctx, ns: &str, n: &str) -> Markup {
    match st.ops.locks(ns, n) {
        Err(e) => html! { p.muted { "Lock state unavailable: " (e.to_string()) } },
        Ok(comps) => {
            let stale = comps.iter().flat_map(|c| &c.locks).any(|l| l.stale);
            let held = comps.iter().map(|c| c.locks.len()).sum::<usize>();
            html! {
                p id="lock-state" {
                    @if held == 0 { span.badge.ok { "unlocked" } }
                    @else if stale { span.badge.bad { (held) " lock(s), stale" } }
                    @else { span.badge.run { (held) " lock(s) held" } }
                }
                @if held > 0 {
                    div.scroll { table {
                        thead { tr { th scope="col" { "Component" } th scope="col" { "Lock" } th scope="col" { "Kind" } th scope="col" { "Holder" } th scope="col" { "State" } } }
                        tbody { @for c in &comps { @for l in &c.locks {
                            tr { td { (c.path) } td { code { (l.id) } } td { (if l.exclusive { "exclusive" } else { "shared" }) } td { (l.holder) }
                                 td { @if l.stale { span.badge.bad { "stale" } } @else { span.badge.run { "held" } } } }
                        } } }
                    } }
                }
                @if stale {
                    (action(ctx, &format!("/repositories/{}/{}/unlock", enc(ns), enc(n)), "Remove stale locks", "danger"))
                }
            }
        }
    }
}

fn render_detail(st: &AppState, ctx: &Ctx, ns: &str, n: &str) -> Result<Markup, UiError> {
    let repo = one(st, &meta::REPOSITORY, ns, n)?;
    let snaps_all = st.res.list(&meta::SNAPSHOT, Some(ns), &[])?;
    let mut snaps: Vec<&Value> = snaps_all
        .iter()
        .filter(|x| s(x, "/spec/repository") == n)
        .collect();
    super::newest_first(&mut snaps, snapshot_time);
    let reasons = st.ops.retention_reasons(ns, n).unwrap_or_default();
    let mut verifications: Vec<Value> = st
        .res
        .list(&meta::BACKUP_VERIFICATION_SESSION, Some(ns), &[])?
        .into_iter()
        .filter(|x| s(x, "/spec/repository") == n)
        .collect();
    verifications.sort_by_key(|x| std::cmp::Reverse(created(x)));
    Ok(page(
        ctx,
        &format!("Repository {ns}/{n}"),
        false,
        html! {
            div.actions {
                @if !ctx.read_only { a.button.secondary href={"/restore?namespace=" (enc(ns)) "&repository=" (enc(n))} { "Restore…" } }
            }
            section.card {
                dl.facts {
                    dt { "Phase" } dd { (phase(s(&repo, "/status/phase"))) }
                    dt { "Storage" } dd { (s(&repo, "/spec/storageRef/namespace")) "/" (s(&repo, "/spec/storageRef/name")) }
                    dt { "Directory" } dd { code { (s(&repo, "/spec/path")) } }
                    dt { "Size" } dd { (s(&repo, "/status/size")) }
                    dt { "Snapshots" } dd { (repo.pointer("/status/snapshotCount").and_then(Value::as_i64).unwrap_or(0)) }
                    dt { "Integrity" } dd { (integrity(repo.pointer("/status/integrity"))) }
                    dt { "Last backup" } dd { (when(ctx, ts(&repo, "/status/lastBackupTime"))) }
                    dt { "Locks" } dd { (locks(st, ctx, ns, n)) }
                }
            }
            h2 { "Snapshots (" (snaps.len()) ")" }
            div.scroll { table id="snapshots" {
                thead { tr {
                    th scope="col" { "Snapshot" } th scope="col" { "Time" } th.num scope="col" { "Size" } th.num scope="col" { "Uploaded" }
                    th scope="col" { "Duration" } th scope="col" { "Components" } th scope="col" { "Phase" } th scope="col" { "Verification" } th scope="col" { "Kept because" }
                } }
                tbody { @for sn in snaps.iter().take(SNAPSHOTS_SHOWN) {
                    tr {
                        td { a href={"/snapshots/" (enc(ns)) "/" (enc(name(sn)))} { (name(sn)) } }
                        td { (when(ctx, snapshot_time(sn))) }
                        td.num { (snapshot_size(sn).map(size).unwrap_or_default()) }
                        td.num { (size(snapshot_uploaded(sn))) }
                        td { (snapshot_duration(sn).map(go_duration).unwrap_or_default()) }
                        td { (component_names(sn).join(", ")) }
                        td { (phase(s(sn, "/status/phase"))) }
                        td { (phase(s(sn, "/status/verificationStatus"))) }
                        td { (reasons.get(name(sn)).map(String::as_str).unwrap_or("")) }
                    }
                } }
            } }
            @if snaps.len() > SNAPSHOTS_SHOWN { p.muted { "The newest " (SNAPSHOTS_SHOWN) " are shown." } }
            h2 { "Verification history" }
            @if verifications.is_empty() { p.muted { "No verification has run for this repository." } } @else {
                div.scroll { table id="verifications" {
                    thead { tr { th scope="col" { "Verification" } th scope="col" { "Started" } th scope="col" { "Snapshot" } th scope="col" { "Duration" } th scope="col" { "Result" } } }
                    tbody { @for v in &verifications {
                        tr {
                            td { (name(v)) }
                            td { (when(ctx, created(v))) }
                            td { a href={"/snapshots/" (enc(ns)) "/" (enc(s(v, "/spec/snapshot")))} { (s(v, "/spec/snapshot")) } }
                            td { (s(v, "/status/duration")) }
                            td { (phase(s(v, "/status/phase"))) }
                        }
                    } }
                } }
            }
        },
    ))
}

pub async fn unlock(
    State(st): State<Arc<AppState>>,
    Path((ns, n)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let target = format!("/repositories/{}/{}", enc(&ns), enc(&n));
    blocking(move || {
        let removed = st.ops.unlock(&ns, &n)?;
        st.ops.event(
            &format!("Repository {ns}/{n}"),
            "DashboardAction",
            &format!("dashboard user removed {removed} stale lock(s)"),
        );
        tracing::info!(repository = %format!("{ns}/{n}"), removed, "dashboard action: unlock");
        Ok(())
    })
    .await?;
    Ok(Redirect::to(&target).into_response())
}
