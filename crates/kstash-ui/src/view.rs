//! The look shared by every page: the layout (navigation, logout, live refresh), the login and
//! error pages, action buttons (absent in read-only mode), and small formatters (ages, phases,
//! fields of a resource document).

use axum::http::StatusCode;
use jiff::Timestamp;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use crate::auth::{CSRF_FIELD, Session};

/// What a page needs to know about the request.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The session's CSRF token, put into every form.
    pub csrf: String,
    /// Actions are hidden.
    pub read_only: bool,
    /// When the page is made (ages are relative to it).
    pub now: Timestamp,
}

impl Ctx {
    /// The context of a logged-in request.
    pub fn new(session: &Session, read_only: bool) -> Ctx {
        Ctx {
            csrf: session.csrf.clone(),
            read_only,
            now: Timestamp::now(),
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="no-referrer";
            title { (title) " · kstash" }
            link rel="stylesheet" href="/assets/style.css";
            script src="/assets/app.js" defer {}
        }
    }
}

/// A full page. `live`: the page reloads its `<main>` every 2 s (a running session).
pub fn page(ctx: &Ctx, title: &str, live: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/" { "kstash" }
                    nav {
                        a href="/" { "Overview" }
                        a href="/repositories" { "Repositories" }
                        @if !ctx.read_only { a href="/restore" { "Restore" } }
                    }
                    @if ctx.read_only { span.badge.muted title="--ui-read-only" { "read-only" } }
                    form.logout method="post" action="/logout" {
                        input type="hidden" name=(CSRF_FIELD) value=(ctx.csrf);
                        button.link type="submit" { "Log out" }
                    }
                }
                main id="main" data-live=[live.then_some("2000")] {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The login page (also the body of every 401).
pub fn login_page(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body.login {
                main {
                    h1 { "kstash dashboard" }
                    @if let Some(e) = error { p.error role="alert" { (e) } }
                    p { "Open the link printed by " code { "kstash ui-url" } ", or paste the token from "
                        code { "$KSTASH_HOME/ui-token" } "." }
                    form method="post" action="/login" {
                        label for="token" { "Access token" }
                        input id="token" name="token" type="password" autocomplete="off" required;
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

/// A short page for an error status.
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(status.canonical_reason().unwrap_or("Error")))
            body {
                main {
                    h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                    p.error role="alert" { (message) }
                    p { a href="/" { "Back to the overview" } }
                }
            }
        }
    }
}

/// A button posting to `action` with the CSRF token; nothing in read-only mode.
pub fn action(ctx: &Ctx, url: &str, label: &str, class: &str) -> Markup {
    if ctx.read_only {
        return html! {};
    }
    html! {
        form.action method="post" action=(url) {
            input type="hidden" name=(CSRF_FIELD) value=(ctx.csrf);
            button class=(class) type="submit" data-action=(label) { (label) }
        }
    }
}

/// A string field of a document (`""` when absent).
pub fn s<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `metadata.name`.
pub fn name(v: &Value) -> &str {
    s(v, "/metadata/name")
}

/// `metadata.namespace`.
pub fn namespace(v: &Value) -> &str {
    s(v, "/metadata/namespace")
}

/// A timestamp field.
pub fn ts(v: &Value, pointer: &str) -> Option<Timestamp> {
    s(v, pointer).parse().ok()
}

/// `3m ago`, `in 45s`.
pub fn ago(now: Timestamp, t: Timestamp) -> String {
    let secs = now.as_second() - t.as_second();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let text = match n {
        0..60 => format!("{n}s"),
        60..3600 => format!("{}m", n / 60),
        3600..86400 => format!("{}h{}m", n / 3600, n % 3600 / 60),
        _ => format!("{}d{}h", n / 86400, n % 86400 / 3600),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A time as `2026-12-07 11:22:16 UTC` with its age beside it.
pub fn when(ctx: &Ctx, t: Option<Timestamp>) -> Markup {
    match t {
        None => html! { span.muted { "—" } },
        Some(t) => html! {
            time datetime=(t.to_string()) title=(t.to_string()) {
                (t.strftime("%Y-%m-%d %H:%M:%S")) " " span.muted { "(" (ago(ctx.now, t)) ")" }
            }
        },
    }
}

/// A phase as a coloured badge.
pub fn phase(p: &str) -> Markup {
    let class = match p {
        "Succeeded" | "Ready" | "Verified" | "Current" => "ok",
        "Failed" | "Invalid" | "NotReady" | "VerificationFailed" | "Unknown" => "bad",
        "Running" | "Pending" => "run",
        "Skipped" => "warn",
        _ => "muted",
    };
    let text = if p.is_empty() { "—" } else { p };
    html! { span class={"badge " (class)} { (text) } }
}

/// A percent-encoded path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Raw markup (SVG made by [`crate::charts`]).
pub fn raw(s: String) -> PreEscaped<String> {
    PreEscaped(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_a_person_says_them() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(ago(now, t("2026-12-07T11:59:30Z")), "30s ago");
        assert_eq!(ago(now, t("2026-12-07T10:30:00Z")), "1h30m ago");
        assert_eq!(ago(now, t("2026-12-07T12:01:00Z")), "in 1m");
        assert_eq!(ago(now, t("2026-12-05T11:00:00Z")), "2d1h ago");
    }

    #[test]
    fn actions_are_absent_when_read_only() {
        let mut ctx = Ctx {
            csrf: "c".into(),
            read_only: false,
            now: Timestamp::UNIX_EPOCH,
        };
        assert!(
            action(&ctx, "/x", "Go", "")
                .into_string()
                .contains("name=\"csrf\"")
        );
        ctx.read_only = true;
        assert_eq!(action(&ctx, "/x", "Go", "").into_string(), "");
    }

    #[test]
    fn encoding_keeps_unreserved_characters() {
        assert_eq!(enc("/a b/ü"), "%2Fa%20b%2F%C3%BC");
    }
}
