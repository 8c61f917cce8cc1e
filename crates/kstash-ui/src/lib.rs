//! The kstash web dashboard: server-rendered HTML pages over the same resource client the CLI
//! uses (overview, configurations, repositories, snapshots, a snapshot browser with streamed
//! downloads, a restore wizard, live sessions), token login with an HttpOnly session cookie and
//! CSRF tokens, and actions that go through the runtime's [`Operations`].
//!
//! ```text
//!  browser ──HTTP(S)──▶ guard (login cookie, CSRF on POST, read-only) ──▶ page handler
//!                                                   │ spawn_blocking
//!                                                   ▼
//!                        Resources (embedded store | Kubernetes API)   Operations (trigger, pause,
//!                                                                       unlock, logs, open a component)
//! ```
//! The crate owns no state besides login sessions: every page is computed from the resources
//! when it is requested. Secret values are never read: no page asks the client for a Secret.

mod auth;
mod charts;
mod config;
mod download;
mod error;
mod ops;
mod pages;
mod server;
mod view;

pub use auth::{TOKEN_FILE, load_or_create_token, login_url};
pub use config::{ADDRESS_FILE, UiConfig};
pub use error::UiError;
pub use ops::{ComponentData, ComponentLocks, LockState, OpError, Operations};
pub use server::{Running, serve};

#[cfg(test)]
mod tests;
