//! The overview: one row per BackupConfiguration (last success and its age, next run, last
//! result, paused, repository size), what failed or was missed in the last 24 hours, a calendar
//! of outcomes by day, and size/duration trends of the most recently active configurations.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::Html;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use kstash_api::meta;
use maud::{Markup, html};
use serde_json::Value;

use super::{all, bc_repositories, created, invoked_by, size, snapshot_time, trend_charts};
use crate::auth::Session;
use crate::charts::{Day, calendar};
use crate::error::UiError;
use crate::server::{AppState, blocking};
use crate::view::{Ctx, enc, name, namespace, page, phase, s, ts, when};

/// How many configurations get trend charts on the overview (each has them on its own page).
const TREND_CHARTS: usize = 4;
/// Days in the calendar.
const CALENDAR_DAYS: i64 = 84;

pub async fn handler(
    State(st): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Result<Html<String>, UiError> {
    let ctx = Ctx::new(&session, st.read_only);
    blocking(move || Ok(Html(render(&st, &ctx)?.into_string()))).await
}

struct Row<'a> {
    bc: &'a Value,
    last_success: Option<Timestamp>,
    last: Option<&'a Value>,
    next: Option<Timestamp>,
    size: u64,
    snaps: Vec<&'a Value>,
}

/// The overview of everything in the store.
pub fn render(st: &AppState, ctx: &Ctx) -> Result<Markup, UiError> {
    let bcs = all(st, &meta::BACKUP_CONFIGURATION)?;
    let sessions = all(st, &meta::BACKUP_SESSION)?;
    let repos = all(st, &meta::REPOSITORY)?;
    let snaps = all(st, &meta::SNAPSHOT)?;

    let mut by_invoker: HashMap<(&str, &str), Vec<&Value>> = HashMap::new();
    for sess in &sessions {
        by_invoker
            .entry((namespace(sess), s(sess, "/spec/invoker/name")))
            .or_default()
            .push(sess);
    }
    let repo_size: HashMap<(&str, &str), u64> = repos
        .iter()
        .map(|r| {
            (
                (namespace(r), name(r)),
                kstash_api::phase::parse_size(s(r, "/status/size")).unwrap_or(0),
            )
        })
        .collect();
    let mut snaps_of_repo: HashMap<(&str, &str), Vec<&Value>> = HashMap::new();
    for sn in &snaps {
        snaps_of_repo
            .entry((namespace(sn), s(sn, "/spec/repository")))
            .or_default()
            .push(sn);
    }

    let mut rows: Vec<Row> = bcs
        .iter()
        .map(|bc| {
            let ns = namespace(bc);
            let mut mine: Vec<&Value> = by_invoker
                .get(&(ns, name(bc)))
                .map(|v| v.iter().copied().filter(|x| invoked_by(x, bc)).collect())
                .unwrap_or_default();
            super::newest_first(&mut mine, created);
            let repo_names = bc_repositories(bc);
            let my_snaps: Vec<&Value> = repo_names
                .iter()
                .flat_map(|r| {
                    snaps_of_repo
                        .get(&(ns, r.as_str()))
                        .into_iter()
                        .flatten()
                        .copied()
                })
                .collect();
            let from_sessions = mine
                .iter()
                .filter(|x| s(x, "/status/phase") == "Succeeded")
                .filter_map(|x| created(x))
                .max();
            let from_snaps = my_snaps
                .iter()
                .filter(|x| s(x, "/status/phase") == "Succeeded")
                .filter_map(|x| snapshot_time(x))
                .max();
            let next = bc
                .pointer("/status/sessions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|x| ts(x, "/nextSchedule"))
                .min();
            Row {
                bc,
                last_success: from_sessions.max(from_snaps),
                last: mine.first().copied(),
                next,
                size: repo_names
                    .iter()
                    .filter_map(|r| repo_size.get(&(ns, r.as_str())))
                    .sum(),
                snaps: my_snaps,
            }
        })
        .collect();
    rows.sort_by(|a, b| (namespace(a.bc), name(a.bc)).cmp(&(namespace(b.bc), name(b.bc))));

    let day_ago = ctx.now - SignedDuration::from_hours(24);
    let mut problems: Vec<&Value> = sessions
        .iter()
        .filter(|x| matches!(s(x, "/status/phase"), "Failed" | "Skipped"))
        .filter(|x| created(x).is_some_and(|t| t >= day_ago))
        .collect();
    super::newest_first(&mut problems, created);
    let failed_snaps: Vec<&Value> = snaps
        .iter()
        .filter(|x| s(x, "/status/phase") == "Failed")
        .filter(|x| snapshot_time(x).is_some_and(|t| t >= day_ago))
        .collect();

    let days = calendar_days(ctx.now, &snaps, &sessions);
    let mut active: Vec<&Row> = rows.iter().filter(|r| r.last_success.is_some()).collect();
    active.sort_by_key(|r| std::cmp::Reverse(r.last_success));

    Ok(page(
        ctx,
        "Overview",
        false,
        html! {
            section.card {
                h2 { "Backup configurations (" (rows.len()) ")" }
                @if rows.is_empty() {
                    p.muted { "No BackupConfiguration yet: " code { "kstash apply -f examples/embedded-volume/" } }
                } @else {
                    div.scroll { table id="configurations" {
                        thead { tr {
                            th scope="col" { "Configuration" }
                            th scope="col" { "Last successful backup" }
                            th scope="col" { "Next run" }
                            th scope="col" { "Last result" }
                            th scope="col" { "State" }
                            th.num scope="col" { "Repository size" }
                        } }
                        tbody { @for r in &rows { (row(ctx, r)) } }
                    } }
                }
            }
            section.card {
                h2 { "Failed or missed in the last 24 hours" }
                @if problems.is_empty() && failed_snaps.is_empty() {
                    p.muted { "Nothing failed or was missed." }
                } @else {
                    div.scroll { table id="problems" {
                        thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Result" } th scope="col" { "Why" } } }
                        tbody {
                            @for p in &problems {
                                tr {
                                    td { (when(ctx, created(p))) }
                                    td { a href={"/sessions/" (enc(namespace(p))) "/" (enc(name(p)))} { (namespace(p)) "/" (name(p)) } }
                                    td { (phase(s(p, "/status/phase"))) }
                                    td { (failure(p)) }
                                }
                            }
                            @for sn in &failed_snaps {
                                tr {
                                    td { (when(ctx, snapshot_time(sn))) }
                                    td { a href={"/snapshots/" (enc(namespace(sn))) "/" (enc(name(sn)))} { "Snapshot " (namespace(sn)) "/" (name(sn)) } }
                                    td { (phase("Failed")) }
                                    td { (snapshot_failure(sn)) }
                                }
                            }
                        }
                    } }
                }
            }
            section.card {
                h2 { "Backups by day (last " (CALENDAR_DAYS / 7) " weeks)" }
                (crate::view::raw(calendar(&days)))
                details {
                    summary { "Data as a table" }
                    div.scroll { table {
                        thead { tr { th scope="col" { "Day" } th.num scope="col" { "Succeeded" } th.num scope="col" { "Failed" } } }
                        tbody { @for d in days.iter().filter(|d| d.succeeded + d.failed > 0) {
                            tr { td { (d.date) } td.num { (d.succeeded) } td.num { (d.failed) } }
                        } }
                    } }
                }
            }
            @if !active.is_empty() {
                h2 { "Trends" }
                @for r in active.iter().take(TREND_CHARTS) {
                    h3 { a href={"/configurations/" (enc(namespace(r.bc))) "/" (enc(name(r.bc)))} { (namespace(r.bc)) "/" (name(r.bc)) } }
                    (trend_charts(&format!("{}/{}", namespace(r.bc), name(r.bc)), &r.snaps))
                }
                @if active.len() > TREND_CHARTS {
                    p.muted { "The trends of every other configuration are on its page." }
                }
            }
        },
    ))
}

fn row(ctx: &Ctx, r: &Row) -> Markup {
    let ns = namespace(r.bc);
    let n = name(r.bc);
    let paused =
        r.bc.pointer("/spec/paused")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    html! {
        tr data-configuration={(ns) "/" (n)} {
            td { a href={"/configurations/" (enc(ns)) "/" (enc(n))} { (n) } br; span.muted { (ns) } }
            td { (when(ctx, r.last_success)) }
            td { @if paused { span.muted { "paused" } } @else { (when(ctx, r.next)) } }
            td { @match r.last {
                Some(l) => a href={"/sessions/" (enc(ns)) "/" (enc(name(l)))} { (phase(s(l, "/status/phase"))) },
                None => span.muted { "never ran" },
            } }
            td { @if paused { span.badge.warn { "Paused" } } @else { (phase(s(r.bc, "/status/phase"))) } }
            td.num { (size(r.size)) }
        }
    }
}

/// Why a BackupSession failed or was skipped, in one line.
pub(crate) fn failure(sess: &Value) -> String {
    let status: kstash_api::core::BackupSessionStatus = sess
        .get("status")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    kstash_api::phase::backup_session_failure(&status).unwrap_or_default()
}

fn snapshot_failure(sn: &Value) -> String {
    sn.pointer("/status/components")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(_, c)| s(c, "/error"))
        .find(|e| !e.is_empty())
        .unwrap_or("")
        .to_string()
}

fn calendar_days(now: Timestamp, snaps: &[Value], sessions: &[Value]) -> Vec<Day> {
    let today = now.to_zoned(TimeZone::UTC).date();
    let first = today
        .checked_sub(jiff::Span::new().days(CALENDAR_DAYS - 1))
        .unwrap_or(today);
    let mut counts: BTreeMap<jiff::civil::Date, (u32, u32)> = BTreeMap::new();
    let mut add = |t: Option<Timestamp>, ok: bool| {
        if let Some(t) = t {
            let d = t.to_zoned(TimeZone::UTC).date();
            if d >= first {
                let e = counts.entry(d).or_default();
                if ok { e.0 += 1 } else { e.1 += 1 }
            }
        }
    };
    for sn in snaps {
        match s(sn, "/status/phase") {
            "Succeeded" => add(snapshot_time(sn), true),
            "Failed" => add(snapshot_time(sn), false),
            _ => {}
        }
    }
    // A skipped session left no snapshot: it counts as a failure of its day.
    for sess in sessions.iter().filter(|x| s(x, "/status/phase") == "Skipped") {
        add(created(sess), false);
    }
    let mut out = Vec::new();
    let mut d = first;
    while d <= today {
        let (succeeded, failed) = counts.get(&d).copied().unwrap_or_default();
        out.push(Day {
            date: d,
            succeeded,
            failed,
        });
        match d.tomorrow() {
            Ok(next) => d = next,
            Err(_) => break,
        }
    }
    out
}
