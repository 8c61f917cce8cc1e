//! KubeStash-compatible resource API: every kind kstash understands, with defaults, validation
//! (the admission-webhook rules), phase calculators and CRD generation. Pure: no I/O.

pub mod addons;
pub mod admission;
pub mod appcatalog;
pub mod category;
pub mod client;
pub mod common;
pub mod core;
pub mod crd;
pub mod defaults;
pub mod duration;
pub mod dynamic;
pub mod manifest;
pub mod memory;
pub mod meta;
pub mod names;
pub mod object;
pub mod phase;
pub mod progress;
pub mod query;
pub mod resolve;
pub mod schedule;
pub mod stash;
pub mod storage;
pub mod storage_ops;
pub mod usage;
pub mod validation;
pub mod verification;

pub use category::ErrorCategory;
pub use object::{FieldError, Object};
