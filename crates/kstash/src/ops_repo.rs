//! Repository-level operations of the CLI (kubectl-kubestash habits): `snapshots`, `unlock`,
//! `password`, `download`, `debug`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use kstash_embedded::Store;

use crate::cli::{DebugArgs, DownloadArgs, PasswordArgs, SnapshotsArgs, UnlockArgs};

pub fn snapshots(_store: &Store, _a: SnapshotsArgs) -> Result<ExitCode> {
    bail!("kstash snapshots: not implemented yet")
}

pub fn unlock(_store: &Store, _a: UnlockArgs) -> Result<ExitCode> {
    bail!("kstash unlock: not implemented yet")
}

pub fn password(_store: &Store, _a: PasswordArgs) -> Result<ExitCode> {
    bail!("kstash password: not implemented yet")
}

pub fn download(_store: &Store, _a: DownloadArgs) -> Result<ExitCode> {
    bail!("kstash download: not implemented yet")
}

pub fn debug(_home: Option<&Path>, _store: &Store, _a: DebugArgs) -> Result<ExitCode> {
    bail!("kstash debug: not implemented yet")
}
