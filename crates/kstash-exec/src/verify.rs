//! The verifier job of a BackupVerificationSession (`kstash exec verify`), run once the session's
//! RestoreSession has restored the Snapshot into the verifier's target: a `Query` verifier runs
//! its queries against the target, a `Script` verifier runs its script with the target's
//! connection details in the environment, and a volume restore (`workload-addon`, `pvc-addon`)
//! is compared file by file with the snapshot's tree (content hash, mode, size) and then removed.
//! The outcome is written as the session's `BackupVerified` condition, which this job owns.

use std::path::{Path, PathBuf};
use std::process::Command;

use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::query::VerifierQuery;
use kstash_api::resolve::{self, ResolvedVerification};
use kstash_api::storage::Snapshot;
use kstash_api::verification::{
    BackupVerificationSession, VerificationType, conditions as vc, scratch_directory,
};
use kstash_repo::{CompareOptions, Difference, compare_restored_tree};
use kstash_storage::layout::component_path;

use crate::status::{k8s_time, update_status};
use crate::{ExecError, ExecOptions, Result, refs};

/// What the verifier found: passed or not, and the message recorded on the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub verified: bool,
    pub message: String,
}

/// Verify BackupVerificationSession `namespace/name` and record the outcome on it. An `Err`
/// means the verification could not be made (the outcome is recorded as a failure too).
pub fn run_verify(
    client: &dyn Resources,
    namespace: &str,
    name: &str,
    opts: &ExecOptions,
) -> Result<VerifyReport> {
    let _span = tracing::info_span!("verify", namespace, session = name).entered();
    let outcome = resolve::resolve_verification(client, namespace, name)
        .map_err(ExecError::from)
        .and_then(|r| verify(client, &r, opts));
    let report = match &outcome {
        Ok(r) => r.clone(),
        Err(e) => VerifyReport {
            verified: false,
            message: e.to_string(),
        },
    };
    let now = k8s_time(jiff::Timestamp::now());
    update_status::<BackupVerificationSession>(client, namespace, name, |bvs| {
        let st = bvs.status.get_or_insert_with(Default::default);
        let mut cond = kstash_api::common::Condition::new(
            vc::BACKUP_VERIFIED,
            report.verified,
            if report.verified {
                vc::REASON_VERIFIED
            } else {
                vc::REASON_NOT_VERIFIED
            },
            report.message.clone(),
        );
        cond.last_transition_time = Some(now.clone());
        kstash_api::phase::set_condition(&mut st.conditions, cond);
    })?;
    tracing::info!(verified = report.verified, message = %report.message, "verification recorded");
    outcome
}

fn verify(client: &dyn Resources, r: &ResolvedVerification, opts: &ExecOptions) -> Result<VerifyReport> {
    let object = format!(
        "BackupVerificationSession {}/{}",
        r.namespace,
        r.session.metadata.name.as_deref().unwrap_or("")
    );
    match r.verifier.spec.verification_type() {
        VerificationType::Query => {
            let v_object = format!(
                "BackupVerifier {}/{}",
                r.verifier.metadata.namespace.as_deref().unwrap_or(""),
                r.verifier.metadata.name.as_deref().unwrap_or("")
            );
            let raw = r.verifier.spec.query.clone().unwrap_or_default();
            let query = VerifierQuery::from_raw_in(&v_object, &raw).map_err(|errors| {
                ExecError::invalid(
                    &v_object,
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
            let report = kstash_addons::run_queries_at(
                client,
                Some(&r.target),
                &r.namespace,
                &object,
                opts.local_mode,
                &Default::default(),
                &query,
            )?;
            let verified = report.passed();
            let message = if verified {
                report
                    .checks
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            } else {
                report
                    .failures()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            Ok(VerifyReport { verified, message })
        }
        VerificationType::Script => run_script(client, r, &object, opts),
        VerificationType::RestoreOnly => compare_volume(client, r, &object, opts),
    }
}

/// Run the verifier's script with the session and the target in its environment; exit 0 is a
/// pass.
fn run_script(
    client: &dyn Resources,
    r: &ResolvedVerification,
    object: &str,
    opts: &ExecOptions,
) -> Result<VerifyReport> {
    let script = r.verifier.spec.script.clone().unwrap_or_default();
    let mut cmd = Command::new(&script.location);
    cmd.args(&script.args)
        .env("KSTASH_NAMESPACE", &r.namespace)
        .env(
            "KSTASH_BACKUPVERIFICATIONSESSION",
            r.session.metadata.name.as_deref().unwrap_or(""),
        )
        .env("KSTASH_REPOSITORY", &r.session.spec.repository)
        .env("KSTASH_SNAPSHOT", &r.session.spec.snapshot)
        .env("KSTASH_TARGET_KIND", r.target.kind.as_deref().unwrap_or(""))
        .env("KSTASH_TARGET_NAME", &r.target.name)
        .env(
            "KSTASH_TARGET_NAMESPACE",
            r.target.namespace.as_deref().unwrap_or(""),
        );
    if r.target.kind.as_deref() == Some("AppBinding") {
        let env =
            kstash_addons::target_environment(client, &r.target, &r.namespace, object, opts.local_mode)?;
        cmd.envs(env);
    }
    if let Some(dir) = scratch_directory(&r.addon) {
        cmd.env("KSTASH_RESTORE_DIR", dir);
    }
    let out = cmd.output().map_err(|e| {
        ExecError::invalid(
            object,
            format!("cannot run the verifier script {}: {e}; fix: spec.script.location must name an executable file", script.location),
        )
    })?;
    let tail = |b: &[u8]| {
        let text = String::from_utf8_lossy(b);
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    };
    let verified = out.status.success();
    let message = if verified {
        format!("script {} passed: {}", script.location, tail(&out.stdout))
    } else {
        format!(
            "script {} failed ({}): {}",
            script.location,
            out.status,
            [tail(&out.stderr), tail(&out.stdout)]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" | ")
        )
    };
    Ok(VerifyReport { verified, message })
}

/// Compare every restic snapshot of the verified Snapshot's components with its restored copy
/// under the scratch directory, then remove the copy.
fn compare_volume(
    client: &dyn Resources,
    r: &ResolvedVerification,
    object: &str,
    opts: &ExecOptions,
) -> Result<VerifyReport> {
    let scratch = scratch_directory(&r.addon).ok_or_else(|| {
        ExecError::invalid(
            object,
            "the verifier's restoreOption.addonInfo.tasks[0].params.target is not set; fix: name a scratch directory to restore into",
        )
    })?;
    let scratch = PathBuf::from(scratch);
    let bc_ns = r
        .configuration
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(&r.namespace);
    let snap: Snapshot = client.must_get(bc_ns, &r.session.spec.snapshot)?;
    let repo = resolve::repository_named(client, bc_ns, &snap.spec.repository)?;
    let repo_object = repo.describe();
    let password = resolve::password(client, &repo.password)?;
    let password_from = repo.password.to_string();
    let layout = refs::repository_layout(client, &repo, opts.local_mode)?;
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut problems = Vec::new();
    let mut restored_paths = Vec::new();
    for (name, comp) in snap.status.iter().flat_map(|s| &s.components) {
        let path = if comp.path.is_empty() {
            component_path(&snap.spec.session, name)
        } else {
            comp.path.clone()
        };
        let config = refs::component_config(&layout, &repo_object, &repo.directory, &path)?;
        let engine = refs::open_repository(&config, &password, &password_from)?;
        for id in comp
            .restic_stats
            .iter()
            .filter_map(|s| s.summary.as_ref())
            .map(|s| s.id.as_str())
        {
            if id.is_empty() {
                continue;
            }
            let entry = engine.find_snapshot(id).map_err(|e| ExecError::Repo {
                repo: engine.location(),
                source: Box::new(e),
            })?;
            let cmp = compare_restored_tree(&engine, &entry, "", &scratch, &CompareOptions::default())
                .map_err(|e| ExecError::Repo {
                    repo: engine.location(),
                    source: Box::new(e),
                })?;
            files += cmp.files_checked;
            bytes += cmp.bytes_checked;
            // Files of earlier runs or other snapshots in the scratch directory are not the
            // snapshot's problem: only what it holds must match.
            problems.extend(
                cmp.mismatches
                    .iter()
                    .filter(|m| !matches!(m.difference, Difference::Extra { .. }))
                    .map(|m| format!("component {name}, snapshot {}: {m}", short(id))),
            );
            restored_paths.extend(
                entry
                    .snapshot
                    .paths
                    .iter()
                    .map(|p| scratch.join(p.trim_start_matches('/'))),
            );
        }
    }
    for p in &restored_paths {
        remove_copy(p);
    }
    if files == 0 && problems.is_empty() {
        return Err(ExecError::invalid(
            object,
            format!(
                "Snapshot {bc_ns}/{} records no restic snapshot to compare",
                snap.metadata.name.as_deref().unwrap_or("")
            ),
        ));
    }
    Ok(if problems.is_empty() {
        VerifyReport {
            verified: true,
            message: format!(
                "{files} files ({bytes} bytes) under {} match the snapshot (content, mode, size)",
                scratch.display()
            ),
        }
    } else {
        let shown: Vec<String> = problems.iter().take(5).cloned().collect();
        VerifyReport {
            verified: false,
            message: format!(
                "{} difference(s) between the restored copy and the snapshot: {}{}",
                problems.len(),
                shown.join("; "),
                if problems.len() > 5 { "; …" } else { "" }
            ),
        }
    })
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// Remove a verified copy; a failure is only logged (the verification's outcome stands).
fn remove_copy(path: &Path) {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else if path.exists() {
        std::fs::remove_file(path)
    } else {
        Ok(())
    };
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the verified copy");
    }
}
