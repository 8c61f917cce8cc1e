//! Reconcilers of the `storage.kubestash.com` kinds: BackupStorage (secret check, initialisation,
//! sync from the bucket, status, deletion), Repository (`repository.yaml`, status from its
//! Snapshots, deletion policies) and Snapshot (phase, metadata upload, WipeOut on delete).

use k8s_openapi::api::core::v1::Secret;
use kstash_api::client::ResourcesExt;
use kstash_api::phase::{self, conditions as c};
use kstash_api::resolve::{self, ResolveError};
use kstash_api::storage::{
    BackupStorage, BackupStorageStatus, DeletionPolicy, Repository, RepositoryInfo, RepositoryStatus,
    Snapshot, SnapshotInfo, SnapshotPhase,
};

use crate::platform::Platform;
use crate::tasks::TaskState;
use crate::util::{self, Requeue, Result, cond, set_cond};

/// A resolve step's answer for a reconcile: the store failing is the reconcile's error (retried),
/// a missing or wrong reference is the object's problem (the inner message, for its status).
fn split<T>(r: resolve::Result<T>) -> Result<Result<T, String>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(ResolveError::Client(e)) => Err(e.into()),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// The credentials Secret of a BackupStorage: `Ok(None)` when none is configured, `Err(message)`
/// when it is configured but missing.
pub fn storage_secret(p: &dyn Platform, bs: &BackupStorage) -> Result<Result<Option<Secret>, String>> {
    split(resolve::storage_secret(p, bs))
}

/// The BackupStorage a Repository uses and its Secret, when the storage is usable (the storage
/// rule of [`kstash_api::resolve`]).
pub fn repository_storage(
    p: &dyn Platform,
    repo: &Repository,
) -> Result<Result<(BackupStorage, Option<Secret>), String>> {
    let bs = match split(resolve::repository_storage(p, repo))? {
        Ok((bs, _)) => bs,
        Err(e) => return Ok(Err(e)),
    };
    Ok(storage_secret(p, &bs)?.map(|secret| (bs, secret)))
}

/// BackupStorage: finalizer, secret, initialise + sync once per generation, status.
pub fn reconcile_backup_storage(p: &dyn Platform, ns: &str, name: &str) -> Result<Requeue> {
    let Some(mut bs) = p.get_as::<BackupStorage>(ns, name)? else {
        return Ok(Requeue::Idle);
    };
    let secret = storage_secret(p, &bs)?;
    if util::is_deleting(&bs.metadata) {
        return delete_backup_storage(p, bs, secret.ok().flatten());
    }
    if util::add_finalizer(&mut bs.metadata) {
        bs = p.update_as(&bs)?;
    }
    let now = p.now();
    let generation = bs.metadata.generation.unwrap_or(0);
    let mut status = bs.status.clone().unwrap_or_default();
    let mut requeue = Requeue::Idle;
    match &secret {
        Err(msg) => {
            set_cond(
                &mut status.conditions,
                now,
                c::BACKEND_SECRET_FOUND,
                false,
                "SecretNotFound",
                msg.clone(),
            );
            requeue = Requeue::After(std::time::Duration::from_secs(10));
        }
        Ok(secret) => {
            if bs.spec.storage.secret_name().is_some() {
                set_cond(
                    &mut status.conditions,
                    now,
                    c::BACKEND_SECRET_FOUND,
                    true,
                    "SecretFound",
                    "",
                );
            }
            if !util::done_for_generation(&status.conditions, c::BACKEND_INITIALIZED, generation) {
                match p.storage().initialize(&bs, secret.as_ref()) {
                    Ok(()) => {
                        util::set_done_for_generation(
                            &mut status.conditions,
                            now,
                            c::BACKEND_INITIALIZED,
                            "BackendInitializationSucceeded",
                            "metadata.yaml written; storage is writable",
                            generation,
                        );
                        if let Err(e) = sync_from_bucket(p, &bs, secret.as_ref()) {
                            p.event(&format!("BackupStorage {ns}/{name}"), true, "SyncFailed", &e);
                        }
                    }
                    Err(e) => {
                        set_cond(
                            &mut status.conditions,
                            now,
                            c::BACKEND_INITIALIZED,
                            false,
                            "BackendInitializationFailed",
                            e.to_string(),
                        );
                        requeue = Requeue::After(std::time::Duration::from_secs(15));
                    }
                }
            }
        }
    }
    // Repositories using this storage.
    let mut repos = Vec::new();
    let mut total = 0u64;
    for repo in p.list_as::<Repository>(None, &[])? {
        let r = &repo.spec.storage_ref;
        let rns = util::ns_or(&r.namespace, util::namespace(&repo.metadata));
        if r.name != name || rns != ns {
            continue;
        }
        let size = repo.status.as_ref().map(|s| s.size.clone()).unwrap_or_default();
        total += phase::parse_size(&size).unwrap_or(0);
        repos.push(RepositoryInfo {
            name: util::name(&repo.metadata).to_string(),
            namespace: util::namespace(&repo.metadata).to_string(),
            path: repo.spec.path.clone(),
            size,
            synced: Some(true),
            error: None,
        });
    }
    status.repositories = repos;
    status.total_size = phase::format_size(total);
    status.phase = Some(phase::backup_storage(&status.conditions));
    write_status_bs(p, bs, status)?;
    Ok(requeue)
}

fn write_status_bs(p: &dyn Platform, mut bs: BackupStorage, status: BackupStorageStatus) -> Result<()> {
    if bs.status.as_ref() != Some(&status) {
        bs.status = Some(status);
        p.update_status_as(&bs)?;
    }
    Ok(())
}

/// Recreate Repository and Snapshot resources found in the bucket but missing here.
fn sync_from_bucket(p: &dyn Platform, bs: &BackupStorage, secret: Option<&Secret>) -> Result<(), String> {
    let listed = p
        .storage()
        .list_repositories(bs, secret)
        .map_err(|e| e.to_string())?;
    for (mut repo, snapshots) in listed {
        let rns = util::namespace(&repo.metadata).to_string();
        let rname = util::name(&repo.metadata).to_string();
        let exists = p
            .get_as::<Repository>(&rns, &rname)
            .map_err(|e| e.to_string())?
            .is_some();
        if exists {
            continue;
        }
        tracing::info!(repository = %format!("{rns}/{rname}"), "recreating Repository found in the bucket");
        repo.metadata.resource_version = None;
        repo.metadata.uid = None;
        repo.status = None;
        let created = p.create_as(&repo).map_err(|e| e.to_string())?;
        for mut snap in snapshots {
            let status = snap.status.take();
            snap.metadata.resource_version = None;
            snap.metadata.uid = None;
            snap.metadata.owner_references = Some(vec![util::owner_ref(
                kstash_api::meta::REPOSITORY.api_version(),
                "Repository",
                &created.metadata,
            )]);
            match p.create_as(&snap) {
                Ok(mut s) => {
                    s.status = status;
                    let _ = p.update_status_as(&s);
                }
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(())
}

fn delete_backup_storage(p: &dyn Platform, mut bs: BackupStorage, secret: Option<Secret>) -> Result<Requeue> {
    if !util::has_finalizer(&bs.metadata) {
        return Ok(Requeue::Idle);
    }
    let (ns, name) = (
        util::namespace(&bs.metadata).to_string(),
        util::name(&bs.metadata).to_string(),
    );
    // Delete the Repository resources on this storage; their data stays unless WipeOut (below).
    let mut pending = false;
    for repo in p.list_as::<Repository>(None, &[])? {
        let r = &repo.spec.storage_ref;
        let rns = util::ns_or(&r.namespace, util::namespace(&repo.metadata));
        if r.name == name && rns == ns {
            p.delete(
                &kstash_api::meta::REPOSITORY,
                util::namespace(&repo.metadata),
                util::name(&repo.metadata),
            )?;
            pending = true;
        }
    }
    if pending {
        return Ok(Requeue::After(std::time::Duration::from_millis(500)));
    }
    if bs.spec.deletion_policy == Some(DeletionPolicy::WipeOut)
        && let Err(e) = p.storage().wipe_storage(&bs, secret.as_ref())
    {
        p.event(
            &format!("BackupStorage {ns}/{name}"),
            true,
            "WipeOutFailed",
            &e.to_string(),
        );
        return Ok(Requeue::After(std::time::Duration::from_secs(15)));
    }
    util::remove_finalizer(&mut bs.metadata);
    p.update_as(&bs)?;
    Ok(Requeue::Idle)
}

/// Repository: finalizer, `repository.yaml`, status from its Snapshots.
pub fn reconcile_repository(p: &dyn Platform, ns: &str, name: &str) -> Result<Requeue> {
    let Some(mut repo) = p.get_as::<Repository>(ns, name)? else {
        return Ok(Requeue::Idle);
    };
    if util::is_deleting(&repo.metadata) {
        return delete_repository(p, repo);
    }
    if util::add_finalizer(&mut repo.metadata) {
        repo = p.update_as(&repo)?;
    }
    let now = p.now();
    let generation = repo.metadata.generation.unwrap_or(0);
    let mut status = repo.status.clone().unwrap_or_default();
    let mut requeue = Requeue::Idle;
    let storage = repository_storage(p, &repo)?;
    let snapshots = p.list_as::<Snapshot>(Some(ns), &[(util::LABEL_REPO_NAME, name)])?;
    match &storage {
        Err(msg) => {
            set_cond(
                &mut status.conditions,
                now,
                c::REPOSITORY_INITIALIZED,
                false,
                "RepositoryInitializationFailed",
                msg.clone(),
            );
            requeue = Requeue::After(std::time::Duration::from_secs(10));
        }
        Ok((bs, secret)) => {
            let ready = bs.status.as_ref().and_then(|s| s.phase)
                == Some(kstash_api::storage::BackupStoragePhase::Ready);
            if !ready {
                set_cond(
                    &mut status.conditions,
                    now,
                    c::REPOSITORY_INITIALIZED,
                    false,
                    "RepositoryInitializationFailed",
                    format!(
                        "BackupStorage {}/{} is not Ready yet",
                        util::namespace(&bs.metadata),
                        util::name(&bs.metadata)
                    ),
                );
                requeue = Requeue::After(std::time::Duration::from_secs(2));
            } else if !util::done_for_generation(&status.conditions, c::REPOSITORY_INITIALIZED, generation) {
                match p.storage().write_repository(bs, secret.as_ref(), &repo) {
                    Ok(()) => {
                        util::set_done_for_generation(
                            &mut status.conditions,
                            now,
                            c::REPOSITORY_INITIALIZED,
                            "RepositoryInitializationSucceeded",
                            "repository.yaml written",
                            generation,
                        );
                    }
                    Err(e) => {
                        set_cond(
                            &mut status.conditions,
                            now,
                            c::REPOSITORY_INITIALIZED,
                            false,
                            "RepositoryInitializationFailed",
                            e.to_string(),
                        );
                        requeue = Requeue::After(std::time::Duration::from_secs(15));
                    }
                }
            }
            // Size from the bucket when the set of finished snapshots changed.
            let finished: Vec<&Snapshot> = snapshots
                .iter()
                .filter(|s| {
                    matches!(
                        snapshot_phase(s),
                        SnapshotPhase::Succeeded | SnapshotPhase::Failed
                    )
                })
                .collect();
            let count = Some(finished.len() as i32);
            if (status.snapshot_count != count || status.size.is_empty())
                && let Ok(size) = p.storage().repository_size(bs, secret.as_ref(), &repo)
            {
                status.size = phase::format_size(size);
            }
        }
    }
    repository_status_from_snapshots(&mut status, &snapshots);
    status.phase = Some(phase::repository(&status.conditions));
    if repo.status.as_ref() != Some(&status) {
        repo.status = Some(status);
        p.update_status_as(&repo)?;
    }
    Ok(requeue)
}

fn snapshot_phase(s: &Snapshot) -> SnapshotPhase {
    s.status
        .as_ref()
        .and_then(|x| x.phase)
        .unwrap_or(SnapshotPhase::Pending)
}

/// snapshotCount, recentSnapshots (5 newest), lastBackupTime, integrity, componentPaths. Pure.
pub fn repository_status_from_snapshots(status: &mut RepositoryStatus, snapshots: &[Snapshot]) {
    let mut finished: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|s| !util::is_deleting(&s.metadata))
        .collect();
    finished.sort_by_key(|s| {
        std::cmp::Reverse(
            s.status
                .as_ref()
                .and_then(|x| x.snapshot_time.clone())
                .map(|t| t.0),
        )
    });
    let done: Vec<&&Snapshot> = finished
        .iter()
        .filter(|s| {
            matches!(
                snapshot_phase(s),
                SnapshotPhase::Succeeded | SnapshotPhase::Failed
            )
        })
        .collect();
    status.snapshot_count = Some(done.len() as i32);
    status.recent_snapshots = finished
        .iter()
        .take(5)
        .map(|s| SnapshotInfo {
            name: util::name(&s.metadata).to_string(),
            phase: s.status.as_ref().and_then(|x| x.phase),
            session: s.spec.session.clone(),
            size: s.status.as_ref().map(|x| x.size.clone()).unwrap_or_default(),
            snapshot_time: s.status.as_ref().and_then(|x| x.snapshot_time.clone()),
        })
        .collect();
    status.last_backup_time = finished
        .iter()
        .find(|s| snapshot_phase(s) == SnapshotPhase::Succeeded)
        .and_then(|s| s.status.as_ref().and_then(|x| x.snapshot_time.clone()));
    let integrities: Vec<Option<bool>> = done
        .iter()
        .filter(|s| snapshot_phase(s) == SnapshotPhase::Succeeded)
        .map(|s| s.status.as_ref().and_then(|x| x.integrity))
        .collect();
    status.integrity = if integrities.is_empty() || integrities.iter().any(Option::is_none) {
        None
    } else {
        Some(integrities.iter().all(|x| *x == Some(true)))
    };
    let mut paths: Vec<String> = Vec::new();
    for s in &finished {
        for (_, comp) in s.status.iter().flat_map(|x| x.components.iter()) {
            if !comp.path.is_empty() && !paths.contains(&comp.path) {
                paths.push(comp.path.clone());
            }
        }
    }
    paths.sort();
    status.component_paths = paths;
}

fn delete_repository(p: &dyn Platform, mut repo: Repository) -> Result<Requeue> {
    if !util::has_finalizer(&repo.metadata) {
        return Ok(Requeue::Idle);
    }
    let (ns, name) = (
        util::namespace(&repo.metadata).to_string(),
        util::name(&repo.metadata).to_string(),
    );
    let snapshots = p.list_as::<Snapshot>(Some(&ns), &[(util::LABEL_REPO_NAME, &name)])?;
    if !snapshots.is_empty() {
        // Their data goes with the repository when WipeOut; the Snapshot resources only need removing.
        for s in snapshots {
            if !util::is_deleting(&s.metadata) {
                p.delete(&kstash_api::meta::SNAPSHOT, &ns, util::name(&s.metadata))?;
            }
        }
        return Ok(Requeue::After(std::time::Duration::from_millis(300)));
    }
    if repo.spec.deletion_policy == Some(DeletionPolicy::WipeOut)
        && let Ok((bs, secret)) = repository_storage(p, &repo)?
        && !util::is_deleting(&bs.metadata)
        && let Err(e) = p.storage().wipe_repository(&bs, secret.as_ref(), &repo)
    {
        p.event(
            &format!("Repository {ns}/{name}"),
            true,
            "WipeOutFailed",
            &e.to_string(),
        );
        return Ok(Requeue::After(std::time::Duration::from_secs(15)));
    }
    util::remove_finalizer(&mut repo.metadata);
    p.update_as(&repo)?;
    Ok(Requeue::Idle)
}

/// Snapshot: phase, size, integrity; upload the YAML once final; WipeOut on delete.
pub fn reconcile_snapshot(p: &dyn Platform, ns: &str, name: &str) -> Result<Requeue> {
    let Some(mut snap) = p.get_as::<Snapshot>(ns, name)? else {
        return Ok(Requeue::Idle);
    };
    let repo = p.get_as::<Repository>(ns, &snap.spec.repository)?;
    if util::is_deleting(&snap.metadata) {
        if !util::has_finalizer(&snap.metadata) {
            return Ok(Requeue::Idle);
        }
        let repo_deleting = repo.as_ref().is_none_or(|r| util::is_deleting(&r.metadata));
        let wipe_task = format!("Snapshot/{}/wipe-out", util::uid(&snap.metadata));
        if snap.spec.deletion_policy == Some(DeletionPolicy::WipeOut)
            && !repo_deleting
            && let Some(repo) = &repo
        {
            // Forget + prune can take minutes: it runs as a tracked task, not on this worker.
            // After a restart the task is unknown and simply runs again (forgetting snapshots
            // that are gone already is a no-op).
            match p.tasks().state(&wipe_task) {
                TaskState::Running => return Ok(Requeue::After(WIPE_POLL)),
                TaskState::Finished(Ok(_)) => {}
                TaskState::Finished(Err(e)) => {
                    p.event(&format!("Snapshot {ns}/{name}"), true, "WipeOutFailed", &e);
                    p.tasks().forget(&wipe_task);
                    return Ok(Requeue::After(std::time::Duration::from_secs(15)));
                }
                TaskState::Unknown => {
                    start_wipe(p, repo, &snap, &wipe_task)?;
                    return Ok(Requeue::After(WIPE_POLL));
                }
            }
        }
        util::remove_finalizer(&mut snap.metadata);
        p.update_as(&snap)?;
        p.tasks().forget(&wipe_task);
        return Ok(Requeue::Idle);
    }
    if util::add_finalizer(&mut snap.metadata) {
        snap = p.update_as(&snap)?;
    }
    let now = p.now();
    let mut status = snap.status.clone().unwrap_or_default();
    if cond(&status.conditions, c::RECENT_SNAPSHOT_LIST_UPDATED).is_none() {
        set_cond(
            &mut status.conditions,
            now,
            c::RECENT_SNAPSHOT_LIST_UPDATED,
            true,
            "SuccessfullyUpdatedRecentSnapshotList",
            "",
        );
    }
    let components_phase = phase::snapshot_components(&status);
    let terminal = matches!(components_phase, SnapshotPhase::Succeeded | SnapshotPhase::Failed)
        || cond(&status.conditions, c::BACKUP_INCOMPLETE) == Some(true);
    let mut requeue = Requeue::Idle;
    if terminal && cond(&status.conditions, c::SNAPSHOT_METADATA_UPLOADED) != Some(true) {
        // Compute the final fields before uploading, so the YAML in the bucket is complete.
        finalize_snapshot_fields(&mut status, now);
        let mut to_upload = snap.clone();
        to_upload.status = Some(status.clone());
        if let Some(s) = to_upload.status.as_mut() {
            s.phase = Some(phase::snapshot(s));
        }
        let uploaded = match repo.as_ref().map(|r| (r, repository_storage(p, r))) {
            Some((r, Ok(Ok((bs, secret))))) => p
                .storage()
                .write_snapshot(&bs, secret.as_ref(), r, &to_upload)
                .map_err(|e| e.to_string()),
            Some((_, Ok(Err(e)))) => Err(e),
            Some((_, Err(e))) => Err(e.to_string()),
            None => Err(format!("Repository {ns}/{} does not exist", snap.spec.repository)),
        };
        match uploaded {
            Ok(()) => set_cond(
                &mut status.conditions,
                now,
                c::SNAPSHOT_METADATA_UPLOADED,
                true,
                "SuccessfullyUploadedSnapshotMetadata",
                "",
            ),
            Err(e) => {
                set_cond(
                    &mut status.conditions,
                    now,
                    c::SNAPSHOT_METADATA_UPLOADED,
                    false,
                    "FailedToUploadSnapshotMetadata",
                    e,
                );
                requeue = Requeue::After(std::time::Duration::from_secs(15));
            }
        }
    }
    if status.size.is_empty() || terminal {
        finalize_snapshot_fields(&mut status, now);
    }
    status.phase = Some(phase::snapshot(&status));
    if snap.status.as_ref() != Some(&status) {
        // lastUpdateTime only moves when something else changed.
        status.last_update_time = Some(util::time(now));
        snap.status = Some(status);
        p.update_status_as(&snap)?;
    }
    Ok(requeue)
}

fn finalize_snapshot_fields(status: &mut kstash_api::storage::SnapshotStatus, _now: jiff::Timestamp) {
    let total: u64 = status
        .components
        .values()
        .map(|c| phase::parse_size(&c.size).unwrap_or(0))
        .sum();
    status.size = phase::format_size(total);
    status.integrity = phase::snapshot_integrity(status);
}

/// How soon a Snapshot being wiped out looks at its task again.
const WIPE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Read what the wipe-out needs (quick reads, here) and start forget + prune as task `id`; a
/// reference that cannot be resolved finishes the task failed at once, so it is reported the same
/// way as a failed prune.
fn start_wipe(p: &dyn Platform, repo: &Repository, snap: &Snapshot, id: &str) -> Result<()> {
    // The password by the one rule (Repository, else the session entry that declares it).
    let password =
        split(resolve::repository(p, repo.clone()).and_then(|r| resolve::password(p, &r.password)))?;
    let prepared = match (repository_storage(p, repo)?, password) {
        (Ok(storage), Ok(password)) => Ok((storage, password)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let ops = p.storage();
    let (repo, snap) = (repo.clone(), snap.clone());
    p.tasks().start(id, move || {
        let ((bs, secret), password) = prepared?;
        ops.wipe_snapshot(&bs, secret.as_ref(), &repo, &snap, &password)
            .map(|()| String::new())
            .map_err(|e| e.to_string())
    });
    Ok(())
}
