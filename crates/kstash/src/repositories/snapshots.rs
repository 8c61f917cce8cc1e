//! `kstash snapshots`: the Snapshots of the store, newest first, with their repository, session,
//! phase and size.

use std::process::ExitCode;

use anyhow::Result;
use kstash_api::client::ResourcesExt;
use kstash_api::storage::Snapshot;
use kstash_embedded::Store;

use super::get_repository;
use crate::cli::SnapshotsArgs;
use crate::print::{age, rfc3339, row, rows_table};

fn snapshot_time(s: &Snapshot) -> Option<jiff::Timestamp> {
    s.status
        .as_ref()
        .and_then(|st| st.snapshot_time.as_ref())
        .or(s.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// The restic snapshots of a Stash Repository as Stash's Snapshot view lists them
/// (`<repository>-<short id>`, by host, then newest first): read from the repository itself,
/// since Stash kept no Snapshot objects.
fn stash_snapshots(store: &Store, ns: &str, repository: &str) -> Result<ExitCode> {
    let mut list = kstash_exec::stash_repository_snapshots(
        store,
        ns,
        repository,
        &kstash_exec::ExecOptions::embedded(),
    )?;
    list.sort_by(|x, y| x.hostname.cmp(&y.hostname).then_with(|| y.time.cmp(&x.time)));
    if list.is_empty() {
        eprintln!("No snapshots found in Stash Repository {ns}/{repository}.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![row([
        "NAME",
        "ID",
        "REPOSITORY",
        "HOSTNAME",
        "PATHS",
        "CREATED AT",
    ])];
    for s in &list {
        rows.push(vec![
            format!("{repository}-{}", &s.id[..8]),
            s.id[..8].to_string(),
            repository.to_string(),
            s.hostname.clone(),
            s.paths.join(","),
            rfc3339(s.time),
        ]);
    }
    print!("{}", rows_table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// `kstash snapshots`: Snapshots newest first.
pub fn snapshots(store: &Store, a: SnapshotsArgs) -> Result<ExitCode> {
    let ns = a.namespace.as_str();
    let scope = (!a.all_namespaces).then_some(ns);
    if let (Some(r), false) = (&a.repository, a.all_namespaces) {
        // A Stash Repository (and no KubeStash one of that name): Stash's Snapshot view.
        if store.get_as::<kstash_api::storage::Repository>(ns, r)?.is_none()
            && store.get_as::<kstash_api::stash::Repository>(ns, r)?.is_some()
        {
            return stash_snapshots(store, ns, r);
        }
        get_repository(store, ns, r)?;
    }
    let mut list: Vec<Snapshot> = store.list_as(scope, &[])?;
    list.retain(|s| {
        a.repository.as_ref().is_none_or(|r| &s.spec.repository == r)
            && a.session
                .as_ref()
                .is_none_or(|x| &s.spec.session == x || &s.spec.backup_session == x)
    });
    list.sort_by(|x, y| {
        snapshot_time(y)
            .cmp(&snapshot_time(x))
            .then_with(|| y.metadata.name.cmp(&x.metadata.name))
    });
    if list.is_empty() {
        if a.all_namespaces {
            eprintln!("No snapshots found");
        } else {
            eprintln!("No snapshots found in {ns} namespace.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec![];
    if a.all_namespaces {
        header.push("NAMESPACE".to_string());
    }
    header.extend(row([
        "NAME",
        "REPOSITORY",
        "SESSION",
        "PHASE",
        "SNAPSHOT-TIME",
        "SIZE",
        "INTEGRITY",
        "AGE",
    ]));
    let mut rows = vec![header];
    for s in &list {
        let st = s.status.clone().unwrap_or_default();
        let mut r = vec![];
        if a.all_namespaces {
            r.push(s.metadata.namespace.clone().unwrap_or_default());
        }
        r.push(s.metadata.name.clone().unwrap_or_default());
        r.push(s.spec.repository.clone());
        r.push(s.spec.session.clone());
        r.push(st.phase.map(|p| format!("{p:?}")).unwrap_or_default());
        r.push(
            st.snapshot_time
                .as_ref()
                .map(|t| rfc3339(t.0))
                .unwrap_or_default(),
        );
        r.push(st.size.clone());
        r.push(st.integrity.map(|i| i.to_string()).unwrap_or_default());
        r.push(
            s.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| age(t.0))
                .unwrap_or_default(),
        );
        rows.push(r);
    }
    out!("{}", rows_table(&rows));
    Ok(ExitCode::SUCCESS)
}
