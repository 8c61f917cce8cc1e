//! The resolve step as tables of situations: a world of objects, one change, the expected
//! resolution or the one error (category and what its message names).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::memory::MemoryResources;

const NS: &str = "demo";

/// A consistent world: a BackupConfiguration `pg` (session `daily`, repository `repo` on backend
/// `s3`), its Repository, storage, Secrets, Addon and Function, a BackupSession `bs`, a Snapshot
/// `snap` and a RestoreSession `rs`.
fn world() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        (
            "enc",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "enc", "namespace": NS},
                   "stringData": {"RESTIC_PASSWORD": "repo-password"}}),
        ),
        (
            "other-enc",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other-enc", "namespace": "vault"},
                   "data": {"RESTIC_PASSWORD": "b3RoZXIK"}}),
        ),
        (
            "creds",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "stash"},
                   "stringData": {"AWS_ACCESS_KEY_ID": "a"}}),
        ),
        (
            "storage",
            json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage",
                   "metadata": {"name": "s3-storage", "namespace": "stash"},
                   "spec": {"storage": {"provider": "s3", "s3": {"bucket": "b", "endpoint": "http://x", "secretName": "creds"}}}}),
        ),
        (
            "addon",
            json!({"apiVersion": "addons.kubestash.com/v1alpha1", "kind": "Addon", "metadata": {"name": "workload-addon"},
                   "spec": {"backupTasks": [{"name": "logical-backup", "function": "workload-backup"}],
                            "restoreTasks": [{"name": "logical-backup-restore", "function": "workload-restore"}]}}),
        ),
        (
            "function",
            json!({"apiVersion": "addons.kubestash.com/v1alpha1", "kind": "Function", "metadata": {"name": "workload-backup"},
                   "spec": {"image": "kstash:latest"}}),
        ),
        (
            "bc",
            json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupConfiguration",
            "metadata": {"name": "pg", "namespace": NS},
            "spec": {
                "target": {"apiGroup": "apps", "kind": "Deployment", "name": "app"},
                "backends": [{"name": "s3", "storageRef": {"name": "s3-storage", "namespace": "stash"}}],
                "sessions": [{
                    "name": "daily",
                    "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup"}]},
                    "repositories": [{"name": "repo", "backend": "s3", "directory": "demo/pg",
                                      "encryptionSecret": {"name": "enc"}}]
                }]
            }}),
        ),
        (
            "repo",
            json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Repository",
                   "metadata": {"name": "repo", "namespace": NS},
                   "spec": {"storageRef": {"name": "s3-storage", "namespace": "stash"}, "path": "demo/pg",
                            "encryptionSecret": {"name": "enc", "namespace": NS}}}),
        ),
        (
            "bs",
            json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupSession",
                   "metadata": {"name": "bs", "namespace": NS},
                   "spec": {"invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration", "name": "pg"},
                            "session": "daily"}}),
        ),
        (
            "snap",
            json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Snapshot",
                   "metadata": {"name": "snap", "namespace": NS},
                   "spec": {"repository": "repo", "session": "daily", "backupSession": "bs"}}),
        ),
        (
            "rs",
            json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "RestoreSession",
                   "metadata": {"name": "rs", "namespace": NS},
                   "spec": {"dataSource": {"repository": "repo", "snapshot": "snap"},
                            "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup-restore"}]}}}),
        ),
    ])
}

fn store(world: BTreeMap<&'static str, Value>) -> MemoryResources {
    MemoryResources::with(world.into_values().filter(|v| !v.is_null())).unwrap()
}

/// An expected failure: its category and words its message must contain.
type Expect = Option<(ErrorCategory, &'static [&'static str])>;

fn check<T>(situation: &str, got: Result<T>, expect: Expect, ok: impl Fn(&T)) {
    match (got, expect) {
        (Ok(v), None) => ok(&v),
        (Err(e), Some((category, words))) => {
            let text = e.to_string();
            assert_eq!(e.category(), category, "{situation}: {text}");
            for w in words {
                assert!(text.contains(w), "{situation}: {text:?} lacks {w:?}");
            }
            assert!(
                text.contains("; fix: ") || matches!(e, ResolveError::Client(_)),
                "{situation}: {text}"
            );
        }
        (Ok(_), Some(_)) => panic!("{situation}: resolved, expected an error"),
        (Err(e), None) => panic!("{situation}: {e}"),
    }
}

type Change = fn(&mut BTreeMap<&'static str, Value>);

#[test]
fn backup_sessions_resolve_or_name_the_one_wrong_reference() {
    let table: &[(&str, Change, Expect)] = &[
        ("everything in place", |_| {}, None),
        (
            "the Repository does not exist yet",
            |w| {
                w.remove("repo");
            },
            None,
        ),
        (
            "the Function object is not installed",
            |w| {
                w.remove("function");
            },
            None,
        ),
        (
            "the BackupSession names no invoker",
            |w| {
                w.get_mut("bs").unwrap()["spec"]["invoker"] = Value::Null;
            },
            Some((
                ErrorCategory::Invalid,
                &["BackupSession demo/bs: spec.invoker: not set"],
            )),
        ),
        (
            "the invoker is not a BackupConfiguration",
            |w| {
                w.get_mut("bs").unwrap()["spec"]["invoker"]["kind"] = json!("BackupBatch");
            },
            Some((ErrorCategory::Invalid, &["spec.invoker.kind", "BackupBatch"])),
        ),
        (
            "the BackupConfiguration is gone",
            |w| {
                w.remove("bc");
            },
            Some((
                ErrorCategory::NotFound,
                &["BackupSession demo/bs: spec.invoker.name: BackupConfiguration demo/pg not found"],
            )),
        ),
        (
            "the session is not in the configuration",
            |w| {
                w.get_mut("bs").unwrap()["spec"]["session"] = json!("nightly");
            },
            Some((
                ErrorCategory::Invalid,
                &[
                    "BackupConfiguration demo/pg: spec.sessions: has no session \"nightly\"",
                    "use one of: daily",
                ],
            )),
        ),
        (
            "the session has no addon",
            |w| {
                w.get_mut("bc").unwrap()["spec"]["sessions"][0]["addon"] = Value::Null;
            },
            Some((ErrorCategory::Invalid, &["spec.sessions[0].addon.name: not set"])),
        ),
        (
            "the Addon is not installed",
            |w| {
                w.remove("addon");
            },
            Some((
                ErrorCategory::NotFound,
                &[
                    "BackupConfiguration demo/pg: spec.sessions[0].addon.name: Addon \"workload-addon\" not found; fix: install it",
                ],
            )),
        ),
        (
            "the addon names no task",
            |w| {
                w.get_mut("bc").unwrap()["spec"]["sessions"][0]["addon"]["tasks"] = json!([]);
            },
            Some((
                ErrorCategory::Invalid,
                &["spec.sessions[0].addon.tasks: empty", "logical-backup"],
            )),
        ),
        (
            "a task the Addon does not have",
            |w| {
                w.get_mut("bc").unwrap()["spec"]["sessions"][0]["addon"]["tasks"][0]["name"] =
                    json!("manifest-backup");
            },
            Some((
                ErrorCategory::Invalid,
                &[
                    "spec.sessions[0].addon.tasks[0].name: Addon \"workload-addon\" has no backup task \"manifest-backup\"",
                    "use one of: logical-backup",
                ],
            )),
        ),
        (
            "the session names no repository",
            |w| {
                w.get_mut("bc").unwrap()["spec"]["sessions"][0]["repositories"] = json!([]);
            },
            Some((ErrorCategory::Invalid, &["spec.sessions[0].repositories: empty"])),
        ),
        (
            "the Repository's storage is gone",
            |w| {
                w.remove("storage");
            },
            Some((
                ErrorCategory::NotFound,
                &["Repository demo/repo: spec.storageRef: BackupStorage stash/s3-storage not found"],
            )),
        ),
        (
            "no Repository yet and the entry names an unknown backend",
            |w| {
                w.remove("repo");
                w.get_mut("bc").unwrap()["spec"]["sessions"][0]["repositories"][0]["backend"] = json!("gcs");
            },
            Some((
                ErrorCategory::Invalid,
                &[
                    "spec.sessions[0].repositories[0].backend: no backend \"gcs\"",
                    "use one of: s3",
                ],
            )),
        ),
        (
            "no Repository yet and the backend has no storageRef",
            |w| {
                w.remove("repo");
                w.get_mut("bc").unwrap()["spec"]["backends"][0]["storageRef"] = Value::Null;
            },
            Some((ErrorCategory::Invalid, &["spec.backends[0].storageRef: not set"])),
        ),
        (
            "no Repository yet and no encryption Secret anywhere",
            |w| {
                w.remove("repo");
                w.get_mut("bc").unwrap()["spec"]["sessions"][0]["repositories"][0]["encryptionSecret"] =
                    Value::Null;
            },
            Some((
                ErrorCategory::Invalid,
                &[
                    "spec.sessions[0].repositories[0].encryptionSecret: not set",
                    "RESTIC_PASSWORD",
                ],
            )),
        ),
        (
            "neither the Repository nor the entry names an encryption Secret",
            |w| {
                w.get_mut("repo").unwrap()["spec"]["encryptionSecret"] = Value::Null;
                w.get_mut("bc").unwrap()["spec"]["sessions"][0]["repositories"][0]["encryptionSecret"] =
                    Value::Null;
            },
            Some((
                ErrorCategory::Invalid,
                &["Repository demo/repo: spec.encryptionSecret: not set"],
            )),
        ),
    ];
    for (situation, change, expect) in table {
        let mut w = world();
        change(&mut w);
        let res = store(w);
        check(situation, resolve_backup(&res, NS, "bs"), *expect, |r| {
            assert_eq!(r.configuration_name(), "pg", "{situation}");
            assert_eq!(r.session_spec.name, "daily", "{situation}");
            assert_eq!(r.addon.tasks[0].task.function, "workload-backup", "{situation}");
            let repo = r.repository("repo").unwrap();
            assert_eq!(repo.directory, "demo/pg", "{situation}");
            assert_eq!(repo.backend, "s3", "{situation}");
            assert_eq!(
                repo.describe_storage(),
                "BackupStorage stash/s3-storage",
                "{situation}"
            );
            assert_eq!(
                repo.storage_secret.as_ref().unwrap().to_string(),
                "Secret stash/creds",
                "{situation}"
            );
            assert_eq!(
                repo.password.to_string(),
                "key RESTIC_PASSWORD of Secret demo/enc",
                "{situation}"
            );
            assert_eq!(
                r.target.as_ref().unwrap().namespace.as_deref(),
                Some(NS),
                "{situation}"
            );
        });
    }
}

#[test]
fn the_password_fallback_is_data_source_then_repository_then_session_entry() {
    // (situation, change, expected Secret, expected source)
    let table: &[(&str, Change, &str, PasswordSource)] = &[
        (
            "the Repository names its Secret",
            |_| {},
            "demo/enc",
            PasswordSource::Repository,
        ),
        (
            "the Repository names none: the session entry's",
            |w| {
                w.get_mut("repo").unwrap()["spec"]["encryptionSecret"] = Value::Null;
                w.get_mut("bc").unwrap()["spec"]["sessions"][0]["repositories"][0]["encryptionSecret"] =
                    json!({"name": "other-enc", "namespace": "vault"});
            },
            "vault/other-enc",
            PasswordSource::SessionRepository,
        ),
        (
            "the Repository wins over the session entry",
            |w| {
                w.get_mut("bc").unwrap()["spec"]["sessions"][0]["repositories"][0]["encryptionSecret"] =
                    json!({"name": "other-enc", "namespace": "vault"});
            },
            "demo/enc",
            PasswordSource::Repository,
        ),
        (
            "the restore's data source wins over both",
            |w| {
                w.get_mut("rs").unwrap()["spec"]["dataSource"]["encryptionSecret"] =
                    json!({"name": "other-enc", "namespace": "vault"});
            },
            "vault/other-enc",
            PasswordSource::RestoreDataSource,
        ),
    ];
    for (situation, change, secret, source) in table {
        let mut w = world();
        change(&mut w);
        let res = store(w);
        let backup = resolve_backup(&res, NS, "bs").unwrap();
        let restore = resolve_restore(&res, NS, "rs", "snap").unwrap();
        let bare = repository_named(&res, NS, "repo").unwrap();
        let (for_backup, for_restore) = (&backup.repositories[0].password, &restore.repository.password);
        let expected = format!("key RESTIC_PASSWORD of Secret {secret}");
        if *source != PasswordSource::RestoreDataSource {
            for (who, p) in [
                ("backup", for_backup),
                ("restore", for_restore),
                ("bare Repository", &bare.password),
            ] {
                assert_eq!(p.to_string(), expected, "{situation}: {who}");
                assert_eq!(p.source, *source, "{situation}: {who}");
            }
        } else {
            assert_eq!(for_restore.to_string(), expected, "{situation}");
            assert_eq!(for_restore.source, *source, "{situation}");
            assert_eq!(for_backup.source, PasswordSource::Repository, "{situation}");
        }
        let value = password(&res, for_restore).unwrap();
        assert!(
            value == "repo-password" || value == "other",
            "{situation}: {value:?}"
        );
    }
}

#[test]
fn restore_sessions_resolve_or_name_the_one_wrong_reference() {
    let table: &[(&str, &str, Change, Expect)] = &[
        ("everything in place", "snap", |_| {}, None),
        (
            "no data source",
            "snap",
            |w| {
                w.get_mut("rs").unwrap()["spec"]["dataSource"] = Value::Null;
            },
            Some((
                ErrorCategory::Invalid,
                &["RestoreSession demo/rs: spec.dataSource: not set"],
            )),
        ),
        (
            "no addon",
            "snap",
            |w| {
                w.get_mut("rs").unwrap()["spec"]["addon"] = Value::Null;
            },
            Some((
                ErrorCategory::Invalid,
                &["RestoreSession demo/rs: spec.addon.name: not set"],
            )),
        ),
        (
            "a backup task named as the restore task",
            "snap",
            |w| {
                w.get_mut("rs").unwrap()["spec"]["addon"]["tasks"][0]["name"] = json!("logical-backup");
            },
            Some((
                ErrorCategory::Invalid,
                &[
                    "spec.addon.tasks[0].name: Addon \"workload-addon\" has no restore task \"logical-backup\"",
                ],
            )),
        ),
        (
            "the Snapshot is gone",
            "gone",
            |_| {},
            Some((
                ErrorCategory::NotFound,
                &["RestoreSession demo/rs: spec.dataSource.snapshot: Snapshot demo/gone not found"],
            )),
        ),
        (
            "the Snapshot belongs to another repository",
            "snap",
            |w| {
                w.get_mut("rs").unwrap()["spec"]["dataSource"]["repository"] = json!("elsewhere");
            },
            Some((
                ErrorCategory::Invalid,
                &[
                    "spec.dataSource.repository",
                    "belongs to Repository repo, not to elsewhere",
                ],
            )),
        ),
        (
            "the Snapshot's Repository is gone",
            "snap",
            |w| {
                w.remove("repo");
            },
            Some((
                ErrorCategory::NotFound,
                &["Snapshot demo/snap: spec.repository: Repository demo/repo not found"],
            )),
        ),
    ];
    for (situation, snapshot, change, expect) in table {
        let mut w = world();
        change(&mut w);
        let res = store(w);
        check(
            situation,
            resolve_restore(&res, NS, "rs", snapshot),
            *expect,
            |r| {
                assert_eq!(r.snapshot_name(), "snap");
                assert_eq!(r.repository.describe(), "Repository demo/repo");
                assert_eq!(r.addon.tasks[0].task.name, "logical-backup-restore");
                assert!(
                    r.addon.tasks[0].function.is_none(),
                    "workload-restore is not installed here"
                );
                assert_eq!(
                    r.repository.namespaces().into_iter().collect::<Vec<_>>(),
                    ["demo", "stash"]
                );
            },
        );
    }
}

#[test]
fn passwords_and_storage_secrets_are_read_or_named_with_the_fix() {
    let table: &[(&str, Change, Expect)] = &[
        ("present", |_| {}, None),
        (
            "the password Secret is gone",
            |w| {
                w.remove("enc");
            },
            Some((
                ErrorCategory::NotFound,
                &[
                    "Repository demo/repo: spec.encryptionSecret: Secret demo/enc not found",
                    "RESTIC_PASSWORD",
                ],
            )),
        ),
        (
            "the key is empty",
            |w| {
                w.get_mut("enc").unwrap()["stringData"]["RESTIC_PASSWORD"] = json!("\n");
            },
            Some((
                ErrorCategory::Invalid,
                &["Secret demo/enc has no key RESTIC_PASSWORD (or it is empty)"],
            )),
        ),
        (
            "the storage Secret is gone",
            |w| {
                w.remove("creds");
            },
            Some((
                ErrorCategory::NotFound,
                &["BackupStorage stash/s3-storage: spec.storage.*.secretName: Secret stash/creds not found"],
            )),
        ),
    ];
    for (situation, change, expect) in table {
        let mut w = world();
        change(&mut w);
        let res = store(w);
        let repo = repository_named(&res, NS, "repo").unwrap();
        let read =
            password(&res, &repo.password).and_then(|p| storage_secret(&res, &repo.storage).map(|s| (p, s)));
        check(situation, read, *expect, |(p, s)| {
            assert_eq!(p, "repo-password");
            assert!(s.is_some());
        });
    }
}

#[test]
fn secret_values_prefer_string_data_and_drop_one_trailing_newline() {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "data": {"A": "b2xkCg==", "B": "eAoK"},
        "stringData": {"A": "new"},
    }))
    .unwrap();
    assert_eq!(secret_value(&secret, "A").as_deref(), Some("new"));
    assert_eq!(secret_value(&secret, "B").as_deref(), Some("x\n"));
    assert_eq!(secret_value(&secret, "C"), None);
}

/// The world plus a verifier `check` (restoring into Deployment `scratch`) linked from the
/// repository entry, and a BackupVerificationSession `bvs` of it.
fn verification_world() -> BTreeMap<&'static str, Value> {
    let mut w = world();
    w.get_mut("bc").unwrap()["spec"]["sessions"][0]["repositories"][0]["backupVerifier"] =
        json!({"name": "check"});
    w.insert(
        "verifier",
        json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupVerifier",
               "metadata": {"name": "check", "namespace": NS},
               "spec": {"restoreOption": {"target": {"apiGroup": "apps", "kind": "Deployment", "name": "scratch"},
                                          "addonInfo": {"name": "workload-addon", "tasks": [{"name": "logical-backup-restore",
                                                                            "params": {"target": "/scratch"}}]}},
                        "type": "RestoreOnly"}}),
    );
    w.insert(
        "bvs",
        json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupVerificationSession",
               "metadata": {"name": "bvs", "namespace": NS},
               "spec": {"invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration", "name": "pg"},
                        "session": "daily", "repository": "repo"}}),
    );
    w
}

#[test]
fn verification_sessions_resolve_or_name_the_one_wrong_reference() {
    let table: &[(&str, Change, Expect)] = &[
        ("everything in place", |_| {}, None),
        (
            "the configuration is gone",
            |w| {
                w.remove("bc");
            },
            Some((
                ErrorCategory::NotFound,
                &[
                    "BackupVerificationSession demo/bvs: spec.invoker.name: BackupConfiguration demo/pg not found",
                ],
            )),
        ),
        (
            "the repository is not in the session",
            |w| {
                w.get_mut("bvs").unwrap()["spec"]["repository"] = json!("other");
            },
            Some((
                ErrorCategory::Invalid,
                &[
                    "spec.repository",
                    "has no repository \"other\"",
                    "use one of: repo",
                ],
            )),
        ),
        (
            "the repository names no verifier",
            |w| {
                w.get_mut("bc").unwrap()["spec"]["sessions"][0]["repositories"][0]["backupVerifier"] =
                    Value::Null;
            },
            Some((
                ErrorCategory::Invalid,
                &[
                    "spec.sessions[0].repositories[0].backupVerifier",
                    "has no backupVerifier",
                ],
            )),
        ),
        (
            "the verifier does not exist",
            |w| {
                w.remove("verifier");
            },
            Some((ErrorCategory::NotFound, &["BackupVerifier demo/check not found"])),
        ),
        (
            "the verifier has no target",
            |w| {
                w.get_mut("verifier").unwrap()["spec"]["restoreOption"]["target"] = Value::Null;
            },
            Some((
                ErrorCategory::Invalid,
                &["BackupVerifier demo/check: spec.restoreOption.target: not set"],
            )),
        ),
        (
            "a volume verifier without a scratch directory",
            |w| {
                w.get_mut("verifier").unwrap()["spec"]["restoreOption"]["addonInfo"]["tasks"][0]["params"] =
                    Value::Null;
            },
            Some((
                ErrorCategory::Invalid,
                &["params.target", "would restore over the backed-up directories"],
            )),
        ),
        (
            "the verifier restores into the configuration's own target",
            |w| {
                w.get_mut("verifier").unwrap()["spec"]["restoreOption"]["target"]["name"] = json!("app");
            },
            Some((
                ErrorCategory::Invalid,
                &["Deployment demo/app is the backup target of BackupConfiguration demo/pg"],
            )),
        ),
    ];
    for (situation, change, expect) in table {
        let mut w = verification_world();
        change(&mut w);
        let res = store(w);
        check(situation, resolve_verification(&res, NS, "bvs"), *expect, |r| {
            assert_eq!(r.target.name, "scratch");
            assert_eq!(r.target.namespace.as_deref(), Some(NS));
            assert_eq!(r.repository.name, "repo");
            assert_eq!(r.addon.name, "workload-addon");
        });
    }
}
