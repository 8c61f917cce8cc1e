//! Stash v1 (`stash.appscode.com`), the API KubeStash replaced: its kinds ([`types`]), their
//! validation ([`validation`]), the restore rules ([`rules`]), the conversion to KubeStash
//! ([`convert`]), and what kstash needs to reach what Stash wrote: the restic repository at the
//! backend's root ([`Backend::to_kubestash`]), the hostnames and the dump file names.

pub mod convert;
pub mod resolve;
pub mod rules;
pub mod types;
pub mod validation;

pub use types::*;

use crate::storage::{self, StorageProvider};

/// The API group of every Stash kind.
pub const GROUP: &str = "stash.appscode.com";

/// The host a Stash job wrote into its restic snapshots for a single-host target (a database
/// AppBinding, a Deployment's leader, a PVC): the target's alias, or `host-0`.
pub fn host_of(alias: &str) -> String {
    if alias.is_empty() {
        "host-0".into()
    } else {
        alias.to_string()
    }
}

/// The KubeStash addon that does the work of a Stash Task or target, by the database it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddonFor {
    /// A database addon (`postgres-addon`, …) with its Stash stream file name.
    Database {
        addon: &'static str,
        /// The file Stash streamed into restic (`dumpfile.sql`, `dumpfile.resp`); empty for
        /// Elasticsearch, whose snapshots hold the interim dump directory.
        file: &'static str,
    },
    /// Directories of a workload (`workload-addon`).
    Workload,
    /// A stand-alone PVC (`pvc-addon`).
    Pvc,
}

impl AddonFor {
    /// The KubeStash addon's name.
    pub fn addon(self) -> &'static str {
        match self {
            AddonFor::Database { addon, .. } => addon,
            AddonFor::Workload => "workload-addon",
            AddonFor::Pvc => "pvc-addon",
        }
    }
}

/// The databases whose Stash addons kstash replaces: (Stash's name for them, KubeStash addon,
/// file Stash streamed). PerconaXtraDB speaks MySQL and its Stash addon ran `mysqldump`.
const DATABASES: &[(&str, &str, &str)] = &[
    ("postgres", "postgres-addon", "dumpfile.sql"),
    ("mysql", "mysql-addon", "dumpfile.sql"),
    ("mariadb", "mariadb-addon", "dumpfile.sql"),
    ("perconaxtradb", "mysql-addon", "dumpfile.sql"),
    ("redis", "redis-addon", "dumpfile.resp"),
    ("elasticsearch", "elasticsearch-addon", ""),
    ("opensearch", "elasticsearch-addon", ""),
];

/// The database a Stash Task (`postgres-backup-16.1`, `mysql-restore-8.0.21`) or an AppBinding
/// type (`kubedb.com/postgres`, `postgres`) names.
fn database_of(name: &str) -> &str {
    let name = name.rsplit('/').next().unwrap_or(name);
    let name = name.split_once("-backup").map(|(db, _)| db).unwrap_or(name);
    name.split_once("-restore").map(|(db, _)| db).unwrap_or(name)
}

/// The KubeStash addon for a Stash Task name, else the AppBinding's type (`spec.type`), else the
/// target kind. The error says which databases kstash can restore.
pub fn addon_for(task: &str, app_type: Option<&str>, target_kind: &str) -> Result<AddonFor, String> {
    let named = if !task.is_empty() {
        Some(("task", task))
    } else {
        app_type.filter(|t| !t.is_empty()).map(|t| ("AppBinding type", t))
    };
    if let Some((what, name)) = named {
        let db = database_of(name).to_ascii_lowercase();
        if db == "pvc" {
            return Ok(AddonFor::Pvc);
        }
        if let Some((_, addon, file)) = DATABASES.iter().find(|(d, _, _)| *d == db) {
            return Ok(AddonFor::Database { addon, file });
        }
        let known: Vec<&str> = DATABASES.iter().map(|(d, _, _)| *d).collect();
        return Err(format!(
            "{what} {name}: kstash has no addon for {db}; it restores Stash backups of {}, pvc and workload volumes",
            known.join(", ")
        ));
    }
    match target_kind {
        "PersistentVolumeClaim" => Ok(AddonFor::Pvc),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "ReplicationController" | "DeploymentConfig" => {
            Ok(AddonFor::Workload)
        }
        "AppBinding" => Err(
            "the AppBinding has no spec.type and no task is named; set spec.task.name (e.g. postgres-backup-16.1 or postgres-restore-16.1)".into(),
        ),
        other => Err(format!(
            "target kind {other:?} needs a task; set spec.task.name (e.g. pvc-restore)"
        )),
    }
}

/// Stash task parameters under the names KubeStash's addons use (`backupCMD` → `backupCmd`);
/// parameters with no KubeStash counterpart are returned separately so they can be reported.
pub fn task_params(params: &[Param]) -> (Vec<(String, String)>, Vec<String>) {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for p in params {
        let name = match p.name.as_str() {
            "backupCMD" => "backupCmd",
            "args" | "user" | "authenticationDatabase" => p.name.as_str(),
            _ => {
                dropped.push(p.name.clone());
                continue;
            }
        };
        kept.push((name.to_string(), p.value.clone()));
    }
    (kept, dropped)
}

impl Backend {
    /// The same location as a KubeStash storage backend: the Stash repository's restic
    /// repository is the root of this storage (Stash wrote nothing else there). `azure_account`:
    /// Stash reads the account from the Secret's `AZURE_ACCOUNT_NAME`; KubeStash names it in
    /// `storageAccount`.
    pub fn to_kubestash(&self, azure_account: Option<&str>) -> storage::Backend {
        let secret = self.storage_secret_name.clone();
        let mut out = storage::Backend::default();
        if let Some(s) = &self.s3 {
            out.provider = Some(StorageProvider::S3);
            out.s3 = Some(storage::S3Spec {
                endpoint: if s.endpoint.starts_with("http") || s.endpoint.is_empty() {
                    s.endpoint.clone()
                } else {
                    format!("https://{}", s.endpoint)
                },
                bucket: s.bucket.clone(),
                prefix: s.prefix.clone(),
                region: s.region.clone(),
                secret_name: secret,
                max_connections: 0,
                insecure_tls: s.insecure_tls,
            });
        } else if let Some(g) = &self.gcs {
            out.provider = Some(StorageProvider::Gcs);
            out.gcs = Some(storage::GcsSpec {
                bucket: g.bucket.clone(),
                prefix: g.prefix.clone(),
                max_connections: g.max_connections,
                secret_name: secret,
                ..Default::default()
            });
        } else if let Some(a) = &self.azure {
            out.provider = Some(StorageProvider::Azure);
            out.azure = Some(storage::AzureSpec {
                storage_account: azure_account.unwrap_or_default().to_string(),
                container: a.container.clone(),
                prefix: a.prefix.clone(),
                max_connections: a.max_connections,
                secret_name: secret,
                ..Default::default()
            });
        } else if let Some(s) = &self.swift {
            out.provider = Some(StorageProvider::Swift);
            out.swift = Some(storage::SwiftSpec {
                container: s.container.clone(),
                prefix: s.prefix.clone(),
                secret_name: secret,
            });
        } else if let Some(b) = &self.b2 {
            out.provider = Some(StorageProvider::B2);
            out.b2 = Some(storage::B2Spec {
                bucket: b.bucket.clone(),
                prefix: b.prefix.clone(),
                max_connections: b.max_connections,
                secret_name: secret,
            });
        } else if let Some(r) = &self.rest {
            out.provider = Some(StorageProvider::Rest);
            out.rest = Some(storage::RestServerSpec {
                url: r.url.clone(),
                secret_name: secret,
            });
        } else if let Some(l) = &self.local {
            out.provider = Some(StorageProvider::Local);
            // The volume sources kstash reaches (hostPath, nfs, …); others are for a cluster.
            let volume =
                serde_json::from_value(serde_json::Value::Object(l.volume.clone())).unwrap_or_default();
            out.local = Some(storage::LocalSpec {
                volume,
                max_connections: 0,
                mount_path: l.mount_path.clone(),
                sub_path: l.sub_path.clone(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_and_app_types_name_the_kubestash_addon() {
        let db = |addon, file| Ok(AddonFor::Database { addon, file });
        type Case<'a> = (&'a str, Option<&'a str>, &'a str, Result<AddonFor, &'a str>);
        let cases: &[Case] = &[
            (
                "postgres-restore-16.1",
                None,
                "AppBinding",
                db("postgres-addon", "dumpfile.sql"),
            ),
            (
                "postgres-backup-11.9.0-v4",
                None,
                "AppBinding",
                db("postgres-addon", "dumpfile.sql"),
            ),
            (
                "mysql-restore-8.0.21",
                None,
                "AppBinding",
                db("mysql-addon", "dumpfile.sql"),
            ),
            (
                "mariadb-backup-10.6.23",
                None,
                "AppBinding",
                db("mariadb-addon", "dumpfile.sql"),
            ),
            (
                "redis-restore-7.0.5",
                None,
                "AppBinding",
                db("redis-addon", "dumpfile.resp"),
            ),
            (
                "elasticsearch-restore-7.14.0",
                None,
                "AppBinding",
                db("elasticsearch-addon", ""),
            ),
            (
                "",
                Some("kubedb.com/postgres"),
                "AppBinding",
                db("postgres-addon", "dumpfile.sql"),
            ),
            (
                "",
                Some("kubedb.com/redis"),
                "AppBinding",
                db("redis-addon", "dumpfile.resp"),
            ),
            ("pvc-restore", None, "PersistentVolumeClaim", Ok(AddonFor::Pvc)),
            ("", None, "PersistentVolumeClaim", Ok(AddonFor::Pvc)),
            ("", None, "StatefulSet", Ok(AddonFor::Workload)),
            (
                "mongodb-restore-4.4.6",
                None,
                "AppBinding",
                Err("kstash has no addon for mongodb"),
            ),
            ("", None, "AppBinding", Err("set spec.task.name")),
        ];
        for (task, app, kind, want) in cases {
            let got = addon_for(task, *app, kind);
            match (got, want) {
                (Ok(a), Ok(b)) => assert_eq!(a, *b, "{task} {app:?} {kind}"),
                (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{task}: {e}"),
                (got, want) => panic!("{task} {app:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn stash_params_keep_their_kubestash_names() {
        let p = |n: &str, v: &str| Param {
            name: n.into(),
            value: v.into(),
        };
        let (kept, dropped) = task_params(&[
            p("args", "--clean"),
            p("backupCMD", "pg_dump"),
            p("outputDir", "/x"),
        ]);
        assert_eq!(
            kept,
            vec![
                ("args".to_string(), "--clean".to_string()),
                ("backupCmd".into(), "pg_dump".into())
            ]
        );
        assert_eq!(dropped, vec!["outputDir"]);
    }

    #[test]
    fn backends_map_to_the_same_location() {
        let b = Backend {
            storage_secret_name: "s3-secret".into(),
            s3: Some(S3Spec {
                endpoint: "s3.amazonaws.com".into(),
                bucket: "stash-testing".into(),
                prefix: "/demo/postgres/sample-postgres".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let k = b.to_kubestash(None);
        assert_eq!(k.provider, Some(StorageProvider::S3));
        let s3 = k.s3.unwrap();
        assert_eq!(s3.endpoint, "https://s3.amazonaws.com");
        assert_eq!(s3.prefix, "/demo/postgres/sample-postgres");
        assert_eq!(s3.secret_name, "s3-secret");

        let a = Backend {
            storage_secret_name: "az".into(),
            azure: Some(AzureSpec {
                container: "c".into(),
                prefix: "p".into(),
                max_connections: 4,
            }),
            ..Default::default()
        }
        .to_kubestash(Some("acct"));
        assert_eq!(a.azure.unwrap().storage_account, "acct");
    }
}
