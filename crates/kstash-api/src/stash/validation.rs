//! The admission rules of Stash v1's webhooks, per kind: what Stash refused is refused with the
//! object, the field and the fix; what Stash accepted is accepted.

use std::collections::BTreeMap;

use super::types::*;
use crate::core::HookAction;
use crate::duration::parse_go_duration;
use crate::schedule::Schedule;
use crate::validation::Errors;

const DRIVERS: &[&str] = &["Restic", "VolumeSnapshotter"];
const POST_POLICIES: &[&str] = &["Always", "OnSuccess", "OnFailure", "OnFinalRetryFailure"];
const EXECUTION_ORDERS: &[&str] = &["Parallel", "Sequential"];

pub(crate) fn repository(r: &Repository, e: &mut Errors) {
    backend(&r.spec.backend, "spec.backend", e);
    if r.spec.wipe_out {
        for (set, name) in [
            (r.spec.backend.local.is_some(), "local"),
            (r.spec.backend.b2.is_some(), "b2"),
        ] {
            if set {
                e.add(
                    "spec.wipeOut",
                    format!("wipeOut is not supported for the {name} backend (Stash refuses it)"),
                    "remove wipeOut and delete the data yourself",
                );
            }
        }
    }
}

fn backend(b: &Backend, path: &str, e: &mut Errors) {
    match b.providers().as_slice() {
        [] => e.add(
            path,
            "no backend is set",
            "set exactly one of local, s3, gcs, azure, swift, b2, rest",
        ),
        [_] => {}
        many => e.add(
            path,
            format!("more than one backend is set ({})", many.join(", ")),
            "keep exactly one backend per Repository",
        ),
    }
    // `storageSecretName` is optional in Stash's schema (a blueprint in KubeDB's docs leaves it
    // out); a restore or backup without it fails at run time, naming the field.
    if let Some(s) = &b.s3 {
        e.required(
            &format!("{path}.s3.endpoint"),
            &s.endpoint,
            "set the S3 endpoint, e.g. s3.amazonaws.com",
        );
        e.required(&format!("{path}.s3.bucket"), &s.bucket, "set the bucket");
    }
    if let Some(g) = &b.gcs {
        e.required(&format!("{path}.gcs.bucket"), &g.bucket, "set the bucket");
    }
    if let Some(a) = &b.azure {
        e.required(
            &format!("{path}.azure.container"),
            &a.container,
            "set the container",
        );
    }
    if let Some(s) = &b.swift {
        e.required(
            &format!("{path}.swift.container"),
            &s.container,
            "set the container",
        );
    }
    if let Some(b2) = &b.b2 {
        e.required(&format!("{path}.b2.bucket"), &b2.bucket, "set the bucket");
    }
    if let Some(r) = &b.rest {
        e.required(&format!("{path}.rest.url"), &r.url, "set the REST server's URL");
    }
    if let Some(l) = &b.local {
        e.required(
            &format!("{path}.local.mountPath"),
            &l.mount_path,
            "set where the volume is mounted, e.g. /safe/data",
        );
        let mp = l.mount_path.trim_end_matches('/');
        if mp == "/stash" || mp.starts_with("/stash/") {
            e.add(
                format!("{path}.local.mountPath"),
                format!("{:?} is reserved for Stash's own volumes", l.mount_path),
                "mount the backend elsewhere, e.g. /safe/data",
            );
        }
    }
}

fn schedule(s: &str, path: &str, e: &mut Errors) {
    if !s.is_empty()
        && let Err(msg) = Schedule::parse(s)
    {
        e.add(
            path,
            format!("invalid cron schedule {s:?}: {msg}"),
            "use five cron fields, e.g. \"*/5 * * * *\"",
        );
    }
}

fn one_of(value: &str, allowed: &[&str], path: &str, e: &mut Errors) {
    if !value.is_empty() && !allowed.contains(&value) {
        e.add(
            path,
            format!("unsupported value {value:?}"),
            format!("use one of {}", allowed.join(", ")),
        );
    }
}

fn time_out(value: &str, path: &str, e: &mut Errors) {
    if !value.is_empty()
        && let Err(msg) = parse_go_duration(value)
    {
        e.add(
            path,
            format!("invalid duration {value:?}: {msg}"),
            "use a Go duration such as 30s, 10m or 1h30m",
        );
    }
}

fn retention(p: Option<&RetentionPolicy>, path: &str, e: &mut Errors) {
    let Some(p) = p else {
        e.add(
            path,
            "required value is missing",
            "set a retentionPolicy with a name and keep rules, e.g. {name: keep-last-5, keepLast: 5, prune: true}",
        );
        return;
    };
    e.required(
        &format!("{path}.name"),
        &p.name,
        "name the policy, e.g. keep-last-5",
    );
    for (field, v) in [
        ("keepLast", p.keep_last),
        ("keepHourly", p.keep_hourly),
        ("keepDaily", p.keep_daily),
        ("keepWeekly", p.keep_weekly),
        ("keepMonthly", p.keep_monthly),
        ("keepYearly", p.keep_yearly),
    ] {
        if v < 0 {
            e.add(
                format!("{path}.{field}"),
                format!("{v} is negative"),
                "use 0 (unset) or a positive count",
            );
        }
    }
}

fn hook(h: Option<&HookAction>, path: &str, e: &mut Errors) {
    let Some(h) = h else { return };
    let set = [
        h.exec.is_some(),
        h.http_get.is_some(),
        h.http_post.is_some(),
        h.tcp_socket.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if set != 1 {
        e.add(
            path,
            format!("a hook needs exactly one handler, found {set}"),
            "set one of exec, httpGet, httpPost, tcpSocket",
        );
    }
}

fn backup_hooks(h: Option<&BackupHooks>, path: &str, e: &mut Errors) {
    let Some(h) = h else { return };
    hook(h.pre_backup.as_ref(), &format!("{path}.preBackup"), e);
    if let Some(post) = &h.post_backup {
        hook(Some(&post.handler), &format!("{path}.postBackup"), e);
        one_of(
            &post.execution_policy,
            POST_POLICIES,
            &format!("{path}.postBackup.executionPolicy"),
            e,
        );
    }
}

fn restore_hooks(h: Option<&RestoreHooks>, path: &str, e: &mut Errors) {
    let Some(h) = h else { return };
    hook(h.pre_restore.as_ref(), &format!("{path}.preRestore"), e);
    if let Some(post) = &h.post_restore {
        hook(Some(&post.handler), &format!("{path}.postRestore"), e);
        one_of(
            &post.execution_policy,
            &POST_POLICIES[..3],
            &format!("{path}.postRestore.executionPolicy"),
            e,
        );
    }
}

fn target_ref(r: &TargetRef, path: &str, e: &mut Errors) {
    e.required(&format!("{path}.name"), &r.name, "name the target object");
    if !r.name.is_empty() && r.kind.is_empty() {
        e.add(
            format!("{path}.kind"),
            "required value is missing",
            "set the target's kind, e.g. AppBinding, StatefulSet or PersistentVolumeClaim",
        );
    }
}

fn template(t: &BackupConfigurationTemplateSpec, path: &str, e: &mut Errors) {
    if let Some(target) = &t.target {
        target_ref(&target.reference, &format!("{path}target.ref"), e);
    }
    backup_hooks(t.hooks.as_ref(), &format!("{path}hooks"), e);
}

fn repository_ref(name: &str, path: &str, e: &mut Errors) {
    e.required(
        path,
        name,
        "name the Stash Repository to back up into or restore from",
    );
}

pub(crate) fn backup_configuration(b: &BackupConfiguration, e: &mut Errors) {
    let s = &b.spec;
    one_of(&s.driver, DRIVERS, "spec.driver", e);
    let snapshotter = s.driver == "VolumeSnapshotter";
    if !snapshotter {
        repository_ref(&s.repository.name, "spec.repository.name", e);
        retention(s.retention_policy.as_ref(), "spec.retentionPolicy", e);
    }
    if s.template.target.is_none() {
        e.add(
            "spec.target",
            "required value is missing",
            "set target.ref to what is backed up",
        );
    }
    template(&s.template, "spec.", e);
    schedule(&s.schedule, "spec.schedule", e);
    time_out(&s.time_out, "spec.timeOut", e);
    if s.backup_history_limit.is_some_and(|n| n < 0) {
        e.add("spec.backupHistoryLimit", "must not be negative", "use 0 or more");
    }
    if s.retry_config
        .as_ref()
        .and_then(|r| r.max_retry)
        .is_some_and(|n| n < 0)
    {
        e.add(
            "spec.retryConfig.maxRetry",
            "must not be negative",
            "use 0 or more",
        );
    }
}

pub(crate) fn backup_session(b: &BackupSession, e: &mut Errors) {
    e.required(
        "spec.invoker.name",
        &b.spec.invoker.name,
        "name the BackupConfiguration or BackupBatch",
    );
    one_of(
        &b.spec.invoker.kind,
        &["BackupConfiguration", "BackupBatch"],
        "spec.invoker.kind",
        e,
    );
    if b.spec.invoker.kind.is_empty() {
        e.add(
            "spec.invoker.kind",
            "required value is missing",
            "set BackupConfiguration or BackupBatch",
        );
    }
}

/// Stash's rule checks: at most one rule without `targetHosts`, no host in two rules, and
/// `snapshots` and `paths` not together.
fn rules(rules: &[Rule], path: &str, e: &mut Errors) {
    let catch_all = rules.iter().filter(|r| r.target_hosts.is_empty()).count();
    if catch_all > 1 {
        e.add(
            path,
            format!("{catch_all} rules have no targetHosts; at most one may"),
            "give every rule but one its targetHosts",
        );
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        for h in &r.target_hosts {
            if let Some(first) = seen.insert(h.as_str(), i) {
                e.add(
                    format!("{path}[{i}].targetHosts"),
                    format!("host {h} is also in rules[{first}]"),
                    "name each host in one rule only",
                );
            }
        }
        if !r.snapshots.is_empty() && !r.paths.is_empty() {
            e.add(
                format!("{path}[{i}]"),
                "snapshots and paths are mutually exclusive",
                "keep either snapshots (ids or latest) or paths",
            );
        }
    }
}

pub(crate) fn restore_session(r: &RestoreSession, e: &mut Errors) {
    let s = &r.spec;
    one_of(&s.driver, DRIVERS, "spec.driver", e);
    if s.driver != "VolumeSnapshotter" {
        repository_ref(&s.repository.name, "spec.repository.name", e);
    }
    match &s.target_spec.target {
        Some(t) => {
            // A restore into new PVCs (`volumeClaimTemplates`) has no existing object to name.
            if t.volume_claim_templates.is_empty() || !t.reference.name.is_empty() {
                target_ref(&t.reference, "spec.target.ref", e);
            }
            rules(&t.rules, "spec.target.rules", e);
            if !t.rules.is_empty() && !s.rules.is_empty() {
                e.add(
                    "spec.rules",
                    "rules are set both here (deprecated) and in spec.target.rules",
                    "keep only spec.target.rules",
                );
            }
        }
        None => e.add(
            "spec.target",
            "required value is missing",
            "set target.ref to what is restored",
        ),
    }
    rules(&s.rules, "spec.rules", e);
    restore_hooks(s.target_spec.hooks.as_ref(), "spec.hooks", e);
    time_out(&s.time_out, "spec.timeOut", e);
}

pub(crate) fn backup_blueprint(b: &BackupBlueprint, e: &mut Errors) {
    let s = &b.spec;
    backend(&s.repository.backend, "spec.backend", e);
    one_of(&s.driver, DRIVERS, "spec.driver", e);
    if s.driver != "VolumeSnapshotter" {
        retention(s.retention_policy.as_ref(), "spec.retentionPolicy", e);
    }
    schedule(&s.schedule, "spec.schedule", e);
    backup_hooks(s.template.hooks.as_ref(), "spec.hooks", e);
    time_out(&s.time_out, "spec.timeOut", e);
}

pub(crate) fn backup_batch(b: &BackupBatch, e: &mut Errors) {
    let s = &b.spec;
    if s.members.is_empty() {
        e.add(
            "spec.members",
            "required value is missing",
            "list the targets backed up together",
        );
    }
    let mut aliases: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, m) in s.members.iter().enumerate() {
        template(m, &format!("spec.members[{i}]."), e);
        let alias = m.target.as_ref().map(|t| t.alias.as_str()).unwrap_or("");
        if s.members.len() > 1 && alias.is_empty() {
            e.add(
                format!("spec.members[{i}].target.alias"),
                "required value is missing",
                "give each member a distinct alias (its restic host name), e.g. db and app",
            );
        } else if let Some(first) = aliases.insert(alias, i)
            && !alias.is_empty()
        {
            e.add(
                format!("spec.members[{i}].target.alias"),
                format!("alias {alias} is also used by members[{first}]"),
                "give each member a distinct alias",
            );
        }
    }
    one_of(&s.driver, DRIVERS, "spec.driver", e);
    one_of(&s.execution_order, EXECUTION_ORDERS, "spec.executionOrder", e);
    repository_ref(&s.repository.name, "spec.repository.name", e);
    retention(s.retention_policy.as_ref(), "spec.retentionPolicy", e);
    schedule(&s.schedule, "spec.schedule", e);
    backup_hooks(s.hooks.as_ref(), "spec.hooks", e);
    time_out(&s.time_out, "spec.timeOut", e);
}

pub(crate) fn restore_batch(b: &RestoreBatch, e: &mut Errors) {
    let s = &b.spec;
    if s.members.is_empty() {
        e.add(
            "spec.members",
            "required value is missing",
            "list the targets restored together",
        );
    }
    for (i, m) in s.members.iter().enumerate() {
        if let Some(t) = &m.target {
            target_ref(&t.reference, &format!("spec.members[{i}].target.ref"), e);
            rules(&t.rules, &format!("spec.members[{i}].target.rules"), e);
        }
        restore_hooks(m.hooks.as_ref(), &format!("spec.members[{i}].hooks"), e);
    }
    one_of(&s.driver, DRIVERS, "spec.driver", e);
    one_of(&s.execution_order, EXECUTION_ORDERS, "spec.executionOrder", e);
    repository_ref(&s.repository.name, "spec.repository.name", e);
    restore_hooks(s.hooks.as_ref(), "spec.hooks", e);
    time_out(&s.time_out, "spec.timeOut", e);
}

pub(crate) fn task(t: &Task, e: &mut Errors) {
    if t.spec.steps.is_empty() {
        e.add(
            "spec.steps",
            "required value is missing",
            "list the Functions the Task runs",
        );
    }
    for (i, s) in t.spec.steps.iter().enumerate() {
        e.required(&format!("spec.steps[{i}].name"), &s.name, "name a Function");
    }
}

pub(crate) fn function(f: &Function, e: &mut Errors) {
    e.required(
        "spec.image",
        &f.spec.image,
        "set the container image the Function runs",
    );
}
