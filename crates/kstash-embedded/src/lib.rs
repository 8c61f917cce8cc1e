//! The embedded runtime of kstash: a SQLite-backed resource store with Kubernetes API-server
//! semantics, shared by the CLI and the daemon.

pub mod client;
pub mod error;
pub mod http;
pub mod object;
pub mod platform;
pub mod pruned;
pub mod runner;
pub mod scheduler;
mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod watch;

pub use error::StoreError;
pub use selector::{LabelSelector, Operator, Requirement, SelectorError};
pub use store::{ApplyOutcome, DeleteOutcome, Store, StoreOptions};
pub use watch::{WatchEvent, WatchEventType};
