//! The daemon's local HTTP endpoint: KubeStash state metrics at `/metrics` (computed from the
//! store on every scrape) and `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kstash_controller::metrics::{StateObjects, state_metrics};

use crate::store::Store;

/// Every object the state metrics are derived from.
pub fn collect_state(store: &Store) -> Result<StateObjects, String> {
    StateObjects::collect(store).map_err(|e| e.to_string())
}

async fn metrics(State(store): State<Arc<Store>>) -> impl IntoResponse {
    let res = tokio::task::spawn_blocking(move || collect_state(&store).map(|o| state_metrics(&o))).await;
    match res {
        Ok(Ok(body)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            body,
        ),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

/// Bind `addr` and serve on a background thread; returns the bound address (port 0 picks one).
pub fn serve(store: Arc<Store>, addr: &str) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on {addr} for /metrics: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(store);
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the HTTP runtime");
                    return;
                }
            };
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, app).await {
                            tracing::error!(error = %e, "HTTP server stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot use the metrics listener"),
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(bound)
}
