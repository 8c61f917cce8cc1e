//! The dashboard's errors, and how each one answers a browser (status code and a short page).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::ops::OpError;

/// Why a dashboard request or the dashboard itself failed.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The object a page is about does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request is malformed (a form field, a path).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request is not allowed here (an action of a read-only dashboard).
    #[error("{0}")]
    Forbidden(String),
    /// The resource client failed.
    #[error(transparent)]
    Resource(#[from] kstash_api::client::ClientError),
    /// An action or a repository access of the runtime failed.
    #[error(transparent)]
    Operation(#[from] OpError),
    /// The repository engine failed (reading a snapshot's tree or data).
    #[error("repository: {0}")]
    Engine(#[from] kstash_repo::Error),
    /// The dashboard cannot listen where it was asked to.
    #[error("dashboard: {0}")]
    Config(String),
    /// Listening, TLS or a token file failed.
    #[error("dashboard: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A blocking task panicked or was cancelled.
    #[error("dashboard: internal error: {0}")]
    Internal(String),
}

impl UiError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> UiError {
        UiError::Io {
            what: what.into(),
            source,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::Resource(e) if e.is_not_found() => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::Resource(e) if e.is_conflict() => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "dashboard request failed");
        }
        let body = crate::view::error_page(status, &self.to_string());
        (status, Html(body.into_string())).into_response()
    }
}
