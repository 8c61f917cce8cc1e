//! The restore wizard: choose a repository, then the source (the latest snapshot, a named one, or
//! a point in time), the target, the components and the task's options; the preview shows the
//! RestoreSession YAML and the equivalent CLI command; applying creates that RestoreSession (an
//! ordinary resource create, as `kstash apply`) and follows it live.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use kstash_api::meta;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{all, bc_repositories, one, snapshot_time};
use crate::auth::{CSRF_FIELD, Session};
use crate::error::UiError;
use crate::server::{AppState, blocking};
use crate::view::{Ctx, enc, name, namespace, page, s};

/// Snapshots offered by name.
const SNAPSHOT_CHOICES: usize = 100;

/// Every field of the wizard (a GET query on the first step, a form afterwards).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Wizard {
    namespace: String,
    repository: String,
    snapshot: String,
    source: String,
    pitr: String,
    name: String,
    target_api_group: String,
    target_kind: String,
    target_name: String,
    target_namespace: String,
    addon: String,
    task: String,
    target_dir: String,
    include: String,
    exclude: String,
    components: String,
}

/// The configuration that writes into `ns/repo`, and the session of it that does.
fn owner(st: &AppState, ns: &str, repo: &str) -> Result<Option<(Value, Value)>, UiError> {
    for bc in st.res.list(&meta::BACKUP_CONFIGURATION, Some(ns), &[])? {
        if !bc_repositories(&bc).iter().any(|r| r == repo) {
            continue;
        }
        let session = bc
            .pointer("/spec/sessions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|sess| {
                sess.get("repositories")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|r| s(r, "/name") == repo)
            })
            .cloned()
            .unwrap_or(Value::Null);
        return Ok(Some((bc, session)));
    }
    Ok(None)
}

/// The restore tasks of an Addon.
fn restore_tasks(st: &AppState, addon: &str) -> Vec<String> {
    st.res
        .list(&meta::ADDON, None, &[])
        .unwrap_or_default()
        .into_iter()
        .find(|a| name(a) == addon)
        .and_then(|a| a.pointer("/spec/restoreTasks").cloned())
        .and_then(|t| t.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|t| s(t, "/name").to_string())
        .collect()
}

/// Fill what the user left empty from the repository and its configuration.
fn defaults(st: &AppState, now: jiff::Timestamp, mut w: Wizard) -> Result<Wizard, UiError> {
    let repo = one(st, &meta::REPOSITORY, &w.namespace, &w.repository)?;
    let owner = owner(st, &w.namespace, &w.repository)?;
    let app = |field: &str| {
        let from_bc = owner
            .as_ref()
            .map(|(bc, _)| s(bc, &format!("/spec/target/{field}")))
            .unwrap_or("");
        if from_bc.is_empty() {
            s(&repo, &format!("/spec/appRef/{field}")).to_string()
        } else {
            from_bc.to_string()
        }
    };
    let fill = |v: &mut String, d: String| {
        if v.trim().is_empty() {
            *v = d;
        }
    };
    fill(&mut w.target_api_group, app("apiGroup"));
    fill(&mut w.target_kind, app("kind"));
    fill(&mut w.target_name, app("name"));
    fill(&mut w.target_namespace, app("namespace"));
    fill(
        &mut w.addon,
        owner
            .as_ref()
            .map(|(_, sess)| s(sess, "/addon/name").to_string())
            .unwrap_or_default(),
    );
    fill(
        &mut w.task,
        restore_tasks(st, &w.addon).first().cloned().unwrap_or_default(),
    );
    fill(
        &mut w.source,
        if w.snapshot.is_empty() {
            "latest".into()
        } else {
            "snapshot".into()
        },
    );
    fill(
        &mut w.name,
        format!("{}-restore-{}", w.repository, now.strftime("%Y%m%d%H%M%S")),
    );
    Ok(w)
}

/// The RestoreSession the wizard describes.
fn restore_session(st: &AppState, w: &Wizard) -> Result<Value, UiError> {
    let repo = one(st, &meta::REPOSITORY, &w.namespace, &w.repository)?;
    let mut data_source = Map::new();
    data_source.insert("repository".into(), json!(w.repository));
    match w.source.as_str() {
        "latest" => {
            data_source.insert("snapshot".into(), json!("latest"));
        }
        "snapshot" if !w.snapshot.trim().is_empty() => {
            data_source.insert("snapshot".into(), json!(w.snapshot.trim()));
        }
        "pitr" => {
            let t = parse_local_time(&w.pitr)?;
            data_source.insert("pitr".into(), json!({ "targetTime": t.to_string() }));
        }
        _ => {
            return Err(UiError::BadRequest(
                "choose the latest snapshot, a snapshot by name, or a point in time".into(),
            ));
        }
    }
    let components: Vec<&str> = w
        .components
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if !components.is_empty() {
        data_source.insert("components".into(), json!(components));
    }
    if let Some(secret) = repo.pointer("/spec/encryptionSecret").filter(|v| v.is_object()) {
        // A reference (name and namespace), never the Secret's data.
        data_source.insert(
            "encryptionSecret".into(),
            json!({ "name": s(secret, "/name"), "namespace": s(secret, "/namespace") }),
        );
    }
    let mut params = Map::new();
    for (k, v) in [
        ("target", &w.target_dir),
        ("include", &w.include),
        ("exclude", &w.exclude),
    ] {
        if !v.trim().is_empty() {
            params.insert(k.into(), json!(v.trim()));
        }
    }
    if w.addon.trim().is_empty() || w.task.trim().is_empty() {
        return Err(UiError::BadRequest("name the addon and its restore task".into()));
    }
    let mut task = json!({ "name": w.task.trim() });
    if !params.is_empty() {
        task["params"] = Value::Object(params);
    }
    let mut target = Map::new();
    for (k, v) in [
        ("apiGroup", &w.target_api_group),
        ("kind", &w.target_kind),
        ("name", &w.target_name),
        ("namespace", &w.target_namespace),
    ] {
        if !v.trim().is_empty() {
            target.insert(k.into(), json!(v.trim()));
        }
    }
    Ok(json!({
        "apiVersion": meta::RESTORE_SESSION.api_version(),
        "kind": "RestoreSession",
        "metadata": { "name": w.name.trim(), "namespace": w.namespace },
        "spec": {
            "target": Value::Object(target),
            "dataSource": Value::Object(data_source),
            "addon": { "name": w.addon.trim(), "tasks": [task] },
        }
    }))
}

/// `2026-12-07T11:22` (a datetime-local input, read as UTC) or an RFC 3339 time.
fn parse_local_time(text: &str) -> Result<jiff::Timestamp, UiError> {
    let text = text.trim();
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| UiError::BadRequest(format!("{text:?} is not a time like 2026-12-07T11:22 (UTC)")))
}

fn text_field(label: &str, field: &str, value: &str, hint: &str) -> Markup {
    html! {
        label for=(field) { (label) }
        input type="text" id=(field) name=(field) value=(value);
        @if !hint.is_empty() { br; small.muted { (hint) } }
    }
}

pub async fn form(
    State(st): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Query(w): Query<Wizard>,
) -> Result<Html<String>, UiError> {
    let ctx = Ctx::new(&session, st.read_only);
    if st.read_only {
        return Err(UiError::BadRequest(
            "this dashboard is read-only: restores are started with the CLI".into(),
        ));
    }
    blocking(move || Ok(Html(render_form(&st, &ctx, w)?.into_string()))).await
}

fn render_form(st: &AppState, ctx: &Ctx, w: Wizard) -> Result<Markup, UiError> {
    if w.repository.is_empty() {
        let mut repos = all(st, &meta::REPOSITORY)?;
        repos.sort_by(|a, b| (namespace(a), name(a)).cmp(&(namespace(b), name(b))));
        return Ok(page(
            ctx,
            "Restore: choose a repository",
            false,
            html! {
                @if repos.is_empty() { p.muted { "No repository yet." } }
                @for r in &repos {
                    p { a.button.secondary href={"/restore?namespace=" (enc(namespace(r))) "&repository=" (enc(name(r)))} { (namespace(r)) "/" (name(r)) } }
                }
            },
        ));
    }
    let w = defaults(st, ctx.now, w)?;
    let mut snaps: Vec<Value> = st
        .res
        .list(&meta::SNAPSHOT, Some(&w.namespace), &[])?
        .into_iter()
        .filter(|x| s(x, "/spec/repository") == w.repository && s(x, "/status/phase") == "Succeeded")
        .collect();
    snaps.sort_by_key(|x| std::cmp::Reverse(snapshot_time(x)));
    let tasks = restore_tasks(st, &w.addon);
    let checked = |v: &str| w.source == v;
    Ok(page(
        ctx,
        &format!("Restore from {}/{}", w.namespace, w.repository),
        false,
        html! {
            form.wizard method="post" action="/restore/preview" {
                input type="hidden" name=(CSRF_FIELD) value=(ctx.csrf);
                input type="hidden" name="namespace" value=(w.namespace);
                input type="hidden" name="repository" value=(w.repository);
                fieldset {
                    legend { "1. What to restore" }
                    label.inline { input type="radio" name="source" value="latest" checked[checked("latest")]; "the latest snapshot" }
                    label.inline { input type="radio" name="source" value="snapshot" checked[checked("snapshot")]; "a snapshot by name" }
                    label.inline { input type="radio" name="source" value="pitr" checked[checked("pitr")]; "a point in time" }
                    div id="field-snapshot" {
                        label for="snapshot" { "Snapshot" }
                        select id="snapshot" name="snapshot" {
                            @for sn in snaps.iter().take(SNAPSHOT_CHOICES) {
                                option value=(name(sn)) selected[name(sn) == w.snapshot] {
                                    (name(sn)) " — " (snapshot_time(sn).map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()) " — " (s(sn, "/status/size"))
                                }
                            }
                        }
                    }
                    div id="field-pitr" {
                        label for="pitr" { "Point in time (UTC): the newest snapshot at or before it" }
                        input type="datetime-local" id="pitr" name="pitr" step="1" value=(w.pitr);
                    }
                    (text_field("Components (comma-separated; empty: all)", "components", &w.components, ""))
                }
                fieldset {
                    legend { "2. Where to" }
                    input type="hidden" name="target_api_group" value=(w.target_api_group);
                    (text_field("Target kind", "target_kind", &w.target_kind, ""))
                    (text_field("Target name", "target_name", &w.target_name, ""))
                    (text_field("Target namespace", "target_namespace", &w.target_namespace, ""))
                }
                fieldset {
                    legend { "3. How" }
                    (text_field("Addon", "addon", &w.addon, ""))
                    label for="task" { "Restore task" }
                    select id="task" name="task" {
                        @for t in &tasks { option value=(t) selected[*t == w.task] { (t) } }
                        @if tasks.is_empty() { option value=(w.task) { (w.task) } }
                    }
                    (text_field("Restore into directory (param target)", "target_dir", &w.target_dir, "volumes only; empty: the original paths"))
                    (text_field("Include (param include)", "include", &w.include, "patterns, comma-separated"))
                    (text_field("Exclude (param exclude)", "exclude", &w.exclude, "patterns, comma-separated"))
                    (text_field("RestoreSession name", "name", &w.name, ""))
                }
                button type="submit" id="preview" { "Preview" }
            }
        },
    ))
}

fn hidden_fields(w: &Wizard) -> Markup {
    let fields = [
        ("namespace", &w.namespace),
        ("repository", &w.repository),
        ("snapshot", &w.snapshot),
        ("source", &w.source),
        ("pitr", &w.pitr),
        ("name", &w.name),
        ("target_api_group", &w.target_api_group),
        ("target_kind", &w.target_kind),
        ("target_name", &w.target_name),
        ("target_namespace", &w.target_namespace),
        ("addon", &w.addon),
        ("task", &w.task),
        ("target_dir", &w.target_dir),
        ("include", &w.include),
        ("exclude", &w.exclude),
        ("components", &w.components),
    ];
    html! { @for (k, v) in fields { input type="hidden" name=(k) value=(v); } }
}

pub async fn preview(
    State(st): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Form(w): Form<Wizard>,
) -> Result<Html<String>, UiError> {
    let ctx = Ctx::new(&session, st.read_only);
    blocking(move || {
        let w = defaults(&st, ctx.now, w)?;
        let obj = restore_session(&st, &w)?;
        let yaml = serde_yaml_ng::to_string(&obj).map_err(|e| UiError::Internal(e.to_string()))?;
        let cli = format!("kstash apply -f - <<'EOF'\n{yaml}EOF");
        Ok(Html(page(&ctx, "Restore: review", false, html! {
            p { "This creates the RestoreSession below, exactly as the CLI command under it would." }
            h2 { "RestoreSession" }
            pre id="yaml" { (yaml) }
            h2 { "Equivalent CLI command" }
            pre id="cli" { (cli) }
            div.actions {
                form method="post" action="/restore/apply" {
                    input type="hidden" name=(CSRF_FIELD) value=(ctx.csrf);
                    (hidden_fields(&w))
                    button type="submit" id="apply" { "Apply: start the restore" }
                }
                a.button.secondary href={"/restore?namespace=" (enc(&w.namespace)) "&repository=" (enc(&w.repository))} { "Start over" }
            }
        }).into_string()))
    })
    .await
}

pub async fn apply(State(st): State<Arc<AppState>>, Form(w): Form<Wizard>) -> Result<Response, UiError> {
    let (ns, n) = blocking(move || {
        let w = defaults(&st, jiff::Timestamp::now(), w)?;
        let obj = restore_session(&st, &w)?;
        let created = st.res.create(obj)?;
        let (ns, n) = (namespace(&created).to_string(), name(&created).to_string());
        st.ops.event(
            &format!("RestoreSession {ns}/{n}"),
            "DashboardAction",
            &format!(
                "dashboard user started a restore from Repository {ns}/{}",
                w.repository
            ),
        );
        tracing::info!(restoresession = %format!("{ns}/{n}"), "dashboard action: restore");
        Ok((ns, n))
    })
    .await?;
    Ok(Redirect::to(&format!("/restores/{}/{}", enc(&ns), enc(&n))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_in_time_is_read_as_utc() {
        assert_eq!(
            parse_local_time("2026-12-07T11:22").unwrap().to_string(),
            "2026-12-07T11:22:00Z"
        );
        assert_eq!(
            parse_local_time("2026-12-07T11:22:05Z").unwrap().to_string(),
            "2026-12-07T11:22:05Z"
        );
        assert!(parse_local_time("yesterday").is_err());
    }
}
