//! The HTTP side: the routes, the login and logout handlers, the static assets, and listening on
//! plain HTTP or HTTPS (rustls) on a thread of its own.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kstash_api::client::Resources;
use serde::Deserialize;

use crate::auth::{self, Auth};
use crate::config::{ADDRESS_FILE, UiConfig};
use crate::error::UiError;
use crate::ops::Operations;
use crate::pages;

/// What every handler shares.
pub struct AppState {
    /// The resource client (the same the CLI uses).
    pub res: Arc<dyn Resources>,
    /// The runtime's actions and repository access.
    pub ops: Arc<dyn Operations>,
    /// The token and the login sessions.
    pub auth: Auth,
    /// Actions hidden and refused.
    pub read_only: bool,
    /// Cookies get `Secure` (served over TLS).
    pub secure: bool,
}

/// Run blocking work (the resource client and the engine are synchronous) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, UiError> + Send + 'static,
) -> Result<T, UiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UiError::Internal(e.to_string()))?
}

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600")),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

fn login_with(st: &AppState, token: &str) -> Result<Response, UiError> {
    if !st.auth.token_matches(token) {
        tracing::warn!("dashboard login with a wrong token refused");
        return Ok((
            StatusCode::UNAUTHORIZED,
            Html(crate::view::login_page(Some("That token is not the dashboard's token.")).into_string()),
        )
            .into_response());
    }
    let id = st.auth.start_session()?;
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::session_cookie(&id, st.secure))
            .map_err(|e| UiError::Internal(e.to_string()))?,
    );
    Ok(r)
}

async fn login_get(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, UiError> {
    match q.token {
        Some(t) => login_with(&st, &t),
        None if st.auth.session(&headers).is_some() => Ok(Redirect::to("/").into_response()),
        None => Ok(Html(crate::view::login_page(None).into_string()).into_response()),
    }
}

async fn login_post(State(st): State<Arc<AppState>>, Form(q): Form<LoginQuery>) -> Result<Response, UiError> {
    login_with(&st, q.token.as_deref().unwrap_or(""))
}

async fn logout(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    st.auth.end_session(&headers);
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::cleared_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Every route of the dashboard behind the guard.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/login", get(login_get).post(login_post))
        .route("/logout", post(logout))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/assets/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .merge(pages::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .with_state(state)
}

/// A dashboard listening in the background; dropping it stops the listener.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// `http(s)://host:port` to reach it from this machine.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// `$KSTASH_HOME/ui-address`, removed when the dashboard stops (so `kstash ui-url` never
    /// prints a link to a stopped dashboard).
    address_file: std::path::PathBuf,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if std::fs::read_to_string(&self.address_file).is_ok_and(|s| s.trim() == self.url) {
            let _ = std::fs::remove_file(&self.address_file);
        }
    }
}

fn bind(config: &UiConfig) -> Result<std::net::TcpListener, UiError> {
    let addr = config.socket_addr()?;
    match std::net::TcpListener::bind(addr) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && config.fall_back_to_free_port => {
            let free = SocketAddr::new(addr.ip(), 0);
            tracing::warn!(%addr, "the dashboard's port is taken; listening on a free port instead (kstash ui-url prints it)");
            std::net::TcpListener::bind(free).map_err(|e| UiError::io(format!("listening on {free}"), e))
        }
        Err(e) => Err(UiError::io(format!("listening on {addr} for the dashboard"), e)),
    }
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, UiError> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| UiError::Config(format!("--ui-tls-cert {}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| UiError::Config(format!("--ui-tls-key {}: {e}", key.display())))?;
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|e| UiError::Config(format!("TLS certificate and key: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Start the dashboard on a background thread: the token is loaded (or created) in
/// `config.home`, the listener bound, and the reachable URL recorded in `$KSTASH_HOME/ui-address`.
pub fn serve(
    config: UiConfig,
    res: Arc<dyn Resources>,
    ops: Arc<dyn Operations>,
) -> Result<Running, UiError> {
    let token = auth::load_or_create_token(&config.home)?;
    let acceptor = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let listener = bind(&config)?;
    listener
        .set_nonblocking(true)
        .map_err(|e| UiError::io("configuring the dashboard listener", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| UiError::io("reading the dashboard address", e))?;
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{host}:{}", addr.port());
    let addr_file = config.home.join(ADDRESS_FILE);
    std::fs::write(&addr_file, format!("{url}\n"))
        .map_err(|e| UiError::io(format!("writing {}", addr_file.display()), e))?;
    let state = Arc::new(AppState {
        res,
        ops,
        auth: Auth::new(token),
        read_only: config.read_only,
        secure: acceptor.is_some(),
    });
    let app = router(state);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("dashboard")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the dashboard runtime");
                    return;
                }
            };
            rt.block_on(run(listener, app, acceptor, stop_rx));
        })
        .map_err(|e| UiError::io("starting the dashboard thread", e))?;
    Ok(Running {
        addr,
        url,
        stop: Some(stop_tx),
        address_file: addr_file,
    })
}

async fn run(
    listener: std::net::TcpListener,
    app: Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the dashboard listener");
            return;
        }
    };
    let Some(acceptor) = acceptor else {
        let stopped = async {
            let _ = stop.await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            tracing::error!(error = %e, "the dashboard stopped");
        }
        return;
    };
    tokio::pin!(stop);
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        // One task per connection; a failed handshake ends only that connection.
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(error = %e, "dashboard TLS handshake failed");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(error = %e, "dashboard connection ended");
            }
        });
    }
}
