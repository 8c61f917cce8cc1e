//! Who may use the dashboard: the access token (random, kept 0600 in `$KSTASH_HOME`), the login
//! that trades it for a session cookie (HttpOnly, SameSite=Strict), the CSRF token every
//! state-changing request carries, read-only mode, and the security headers of every response.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::config::ADDRESS_FILE;
use crate::error::UiError;
use crate::server::AppState;

/// The token file in `$KSTASH_HOME`.
pub const TOKEN_FILE: &str = "ui-token";
/// The session cookie.
pub const COOKIE: &str = "kstash_session";
/// The form field (or `x-csrf-token` header) carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// How long a login lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The largest form a state-changing request may send.
const MAX_FORM: usize = 256 * 1024;

/// 32 random bytes as hex.
pub fn random_token() -> Result<String, UiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| UiError::Internal(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The access token of `home`, created (0600) when missing; a token file others can read is
/// narrowed to 0600.
pub fn load_or_create_token(home: &Path) -> Result<String, UiError> {
    let path = home.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            let mode = std::fs::metadata(&path)
                .map_err(|e| UiError::io(format!("reading {}", path.display()), e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(file = %path.display(), "the dashboard token was readable by others; narrowing it to 0600");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| UiError::io(format!("chmod 600 {}", path.display()), e))?;
            }
            Ok(text.trim().to_string())
        }
        Ok(_) | Err(_) => {
            std::fs::create_dir_all(home)
                .map_err(|e| UiError::io(format!("creating {}", home.display()), e))?;
            let token = random_token()?;
            let tmp = home.join(format!("{TOKEN_FILE}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| UiError::io(format!("creating {}", tmp.display()), e))?;
            f.write_all(token.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| UiError::io(format!("writing {}", tmp.display()), e))?;
            std::fs::rename(&tmp, &path)
                .map_err(|e| UiError::io(format!("writing {}", path.display()), e))?;
            Ok(token)
        }
    }
}

/// The login link of the dashboard that last ran on `home`: `<base>/login?token=<token>`.
pub fn login_url(home: &Path) -> Result<String, UiError> {
    let addr_file = home.join(ADDRESS_FILE);
    let base = std::fs::read_to_string(&addr_file).map_err(|e| {
        UiError::io(
            format!(
                "no dashboard has run on {} ({} is missing; start `kstash server`)",
                home.display(),
                addr_file.display()
            ),
            e,
        )
    })?;
    let token = std::fs::read_to_string(home.join(TOKEN_FILE))
        .map_err(|e| UiError::io(format!("reading the dashboard token in {}", home.display()), e))?;
    Ok(format!("{}/login?token={}", base.trim(), token.trim()))
}

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token every form and state-changing request must carry.
    pub csrf: String,
    started: Instant,
}

/// The access token and the logged-in sessions (in memory: a restart logs everyone out).
pub struct Auth {
    token: String,
    sessions: Mutex<HashMap<String, Session>>,
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Auth {
    /// Access guarded by `token`.
    pub fn new(token: String) -> Auth {
        Auth {
            token,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `candidate` is the access token.
    pub fn token_matches(&self, candidate: &str) -> bool {
        !candidate.is_empty() && same(candidate.trim(), &self.token)
    }

    /// A new session: its cookie value.
    pub fn start_session(&self) -> Result<String, UiError> {
        let id = random_token()?;
        let session = Session {
            csrf: random_token()?,
            started: Instant::now(),
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.started.elapsed() < SESSION_LIFETIME);
        sessions.insert(id.clone(), session);
        Ok(id)
    }

    /// The session a request's cookie names, when it is current.
    pub fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .iter()
            .find(|(k, s)| same(k, &id) && s.started.elapsed() < SESSION_LIFETIME)
            .map(|(_, s)| s.clone())
    }

    /// Forget the session of a request's cookie.
    pub fn end_session(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that ends a session.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Paths anyone may fetch: the login page and the static assets.
fn public(path: &str) -> bool {
    path == "/login" || path == "/healthz" || path.starts_with("/assets/")
}

fn refused(status: StatusCode, message: &str) -> Response {
    (
        status,
        Html(crate::view::error_page(status, message).into_string()),
    )
        .into_response()
}

/// The guard in front of every route: login, CSRF and read-only; security headers on every answer.
pub async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let mut response = check(st, req, next).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn check(st: Arc<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if public(&path) {
        return next.run(req).await;
    }
    let Some(session) = st.auth.session(req.headers()) else {
        return (
            StatusCode::UNAUTHORIZED,
            Html(crate::view::login_page(None).into_string()),
        )
            .into_response();
    };
    let mut req = req;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if st.read_only && path != "/logout" {
            return refused(
                StatusCode::FORBIDDEN,
                "this dashboard is read-only (--ui-read-only): actions are refused",
            );
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return refused(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large");
        };
        let from_header = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let from_form = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .ok()
            .and_then(|fields| fields.into_iter().find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v));
        let ok = from_header.or(from_form).is_some_and(|t| same(&t, &session.csrf));
        if !ok {
            tracing::warn!(path, "dashboard request without a valid CSRF token refused");
            return refused(
                StatusCode::FORBIDDEN,
                "this request carries no valid CSRF token; reload the page and try again",
            );
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_created_0600_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let t1 = load_or_create_token(dir.path()).unwrap();
        assert_eq!(t1.len(), 64);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_token(dir.path()).unwrap(), t1);
    }

    #[test]
    fn a_token_file_readable_by_others_is_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        std::fs::write(&path, "abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load_or_create_token(dir.path()).unwrap(), "abc");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn the_login_link_joins_the_recorded_address_and_the_token() {
        let dir = tempfile::tempdir().unwrap();
        assert!(login_url(dir.path()).is_err());
        let token = load_or_create_token(dir.path()).unwrap();
        std::fs::write(dir.path().join(ADDRESS_FILE), "http://127.0.0.1:4567\n").unwrap();
        assert_eq!(
            login_url(dir.path()).unwrap(),
            format!("http://127.0.0.1:4567/login?token={token}")
        );
    }

    #[test]
    fn the_session_cookie_is_http_only_and_same_site_strict() {
        let c = session_cookie("abc", false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
        assert!(session_cookie("abc", true).contains("; Secure"));
    }

    #[test]
    fn sessions_are_found_by_cookie_only_when_started() {
        let auth = Auth::new("t".into());
        let id = auth.start_session().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("other=1; {COOKIE}={id}").parse().unwrap());
        assert!(auth.session(&h).is_some());
        let mut wrong = HeaderMap::new();
        wrong.insert(header::COOKIE, format!("{COOKIE}=nope").parse().unwrap());
        assert!(auth.session(&wrong).is_none());
        auth.end_session(&h);
        assert!(auth.session(&h).is_none());
    }
}
