//! Real servers for tests: one struct per server, each started on 127.0.0.1 on free ports in its own
//! temp dir, ready when `start()` returns, and killed (process group) and cleaned up on `Drop`.
//!
//! The binaries come from `scripts/setup` (apt packages, a Python venv and an npm dir under
//! `$KSTASH_INFRA_DIR`, default `~/.cache/kstash-infra`); see [`tools`]. PostgreSQL and MariaDB
//! need root: they are started as the `postgres` and `mysql` users.
//!
//! [`FakeKubeApi`] is the exception: no real Kubernetes API server can run here, so it is an
//! in-process fake (over real HTTP on loopback) that enforces the semantics the operator uses.
//!
//! Cleanup relies on `Drop` (also during a panic). A test process killed with SIGKILL leaves its
//! servers running, because they live in their own process groups.
//!
//! ```no_run
//! let pg = kstash_testsupport::Postgres::start().unwrap();
//! assert_eq!(pg.psql("select 1 + 1"), "2");
//! ```

mod azurite;
pub mod data;
mod elasticsearch;
mod error;
mod fault_proxy;
mod gcs;
pub mod http;
mod kube_api;
mod loopback;
mod mariadb;
pub mod ports;
mod postgres;
mod process;
mod pushgateway;
pub mod python;
mod redis;
mod rest;
mod restic;
mod s3;
mod sigv4;
mod tcp_cut;
pub mod tls;
pub mod tools;
mod zookeeper;
pub mod zookeeper_tree;

pub use azurite::Azurite;
pub use elasticsearch::Elasticsearch;
pub use elasticsearch::data as es_data;
pub use error::{Error, Result};
pub use fault_proxy::{Fault, FaultPlan, FaultProxy};
pub use gcs::FakeGcs;
pub use kube_api::FakeKubeApi;
pub use mariadb::MariaDb;
pub use postgres::Postgres;
pub use pushgateway::Pushgateway;
pub use redis::{Redis, Resp};
pub use rest::ResticRest;
pub use restic::{Restic, ResticLockHolder, lock_file_names, restic_binary, restic_or_skip, under_ci};
pub use s3::SeaweedS3;
pub use tcp_cut::{CutPlan, Direction, TcpCutProxy};
pub use zookeeper::ZooKeeper;

use std::time::Duration;

/// How long `start()` waits for a server's readiness check before giving up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
