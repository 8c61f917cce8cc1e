//! `kstash download`: restore a Snapshot's components into a local directory, as KubeStash's
//! `kubectl kubestash download` does.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use kstash_api::client::ResourcesExt;
use kstash_api::storage::{Snapshot, SnapshotPhase};
use kstash_embedded::Store;
use kstash_exec::ExecOptions;
use kstash_exec::access::download_snapshot;

use crate::cli::DownloadArgs;
use crate::print::show;

/// `kstash download <snapshot>`: restore a Snapshot's components into `--destination`.
pub fn download(store: &Store, a: DownloadArgs) -> Result<ExitCode> {
    let ns = a.namespace.as_str();
    let snap: Snapshot = store.get_as(ns, &a.snapshot)?.with_context(|| {
        format!(
            "Snapshot {ns}/{} not found (kstash snapshots -n {ns})",
            a.snapshot
        )
    })?;
    let st = snap.status.clone().unwrap_or_default();
    if st.phase != Some(SnapshotPhase::Succeeded) {
        eprintln!(
            "warning: Snapshot {ns}/{} is {}; downloading what its components recorded",
            a.snapshot,
            show(st.phase)
        );
    }
    let names: Vec<String> = if a.components.is_empty() {
        st.components.keys().cloned().collect()
    } else {
        a.components.clone()
    };
    download_snapshot(
        store,
        ns,
        &a.snapshot,
        &a.components,
        &a.destination,
        &ExecOptions::embedded(),
    )
    .with_context(|| format!("downloading Snapshot {ns}/{}", a.snapshot))?;
    let base = std::path::absolute(&a.destination).unwrap_or_else(|_| a.destination.clone());
    for n in &names {
        outln!(
            "component {n} of Snapshot {ns}/{} downloaded to {}",
            a.snapshot,
            base.join(&a.snapshot).join(n).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
