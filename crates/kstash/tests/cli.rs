//! End-to-end tests of the resource commands: each test runs the real `kstash` binary against its
//! own data directory, the way a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `kstash` with its own empty `KSTASH_HOME`.
struct Kstash {
    home: tempfile::TempDir,
}

impl Kstash {
    fn new() -> Self {
        Kstash {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kstash"))
            .args(args)
            .env("KSTASH_HOME", self.home.path())
            .output()
            .unwrap()
    }

    /// Run, expect success, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kstash {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
}

fn examples() -> String {
    repo_root().join("examples").display().to_string()
}

fn resource_versions(k: &Kstash) -> Vec<(String, String)> {
    let list = k.json(&["get", "bc", "-A"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap().to_string(),
                o["metadata"]["resourceVersion"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn apply_get_and_reapply_keeps_resource_versions() {
    let k = Kstash::new();
    let first = k.ok(&["apply", "-f", &examples()]);
    assert!(first.lines().all(|l| l.ends_with(" created")), "{first}");
    let before = resource_versions(&k);
    assert_eq!(
        before.len(),
        7,
        "one BackupConfiguration per example scenario: {before:?}"
    );

    let again = k.ok(&["apply", "-f", &examples()]);
    assert!(again.lines().all(|l| l.ends_with(" unchanged")), "{again}");
    assert_eq!(resource_versions(&k), before);

    let table = k.ok(&["get", "backupconfigurations", "-n", "demo"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("NAME")
            && header.contains("PHASE")
            && header.contains("PAUSED")
            && header.ends_with("AGE"),
        "{header}"
    );
    assert!(table.contains("sample-postgres-backup"));
}

#[test]
fn a_spec_change_is_configured_and_bumps_generation() {
    let k = Kstash::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rp.yaml");
    let write = |period: &str| {
        std::fs::write(&file, format!("apiVersion: storage.kubestash.com/v1alpha1\nkind: RetentionPolicy\nmetadata:\n  name: keep\n  namespace: demo\nspec:\n  maxRetentionPeriod: {period}\n")).unwrap()
    };
    write("30d");
    assert_eq!(
        k.ok(&["apply", "-f", file.to_str().unwrap()]).trim(),
        "retentionpolicy.storage.kubestash.com/keep created"
    );
    let v1 = k.json(&["get", "retentionpolicy", "keep", "-n", "demo"]);
    write("60d");
    assert_eq!(
        k.ok(&["apply", "-f", file.to_str().unwrap()]).trim(),
        "retentionpolicy.storage.kubestash.com/keep configured"
    );
    let v2 = k.json(&["get", "retentionpolicy", "keep", "-n", "demo"]);
    assert_eq!(v1["metadata"]["generation"], 1);
    assert_eq!(v2["metadata"]["generation"], 2);
    assert_eq!(v2["spec"]["maxRetentionPeriod"], "60d");
    assert_eq!(
        v2["spec"]["failedSnapshots"]["last"], 1,
        "defaults are stored like a mutating webhook sets them"
    );
    assert_eq!(v1["metadata"]["uid"], v2["metadata"]["uid"]);
}

#[test]
fn invalid_documents_are_rejected_with_path_and_fix_and_not_stored() {
    let k = Kstash::new();
    let bad = repo_root().join("crates/kstash-api/tests/invalid/38-bc-missing-schedule.yaml");
    let out = k.run(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.sessions[0].scheduler.schedule") && stderr.contains("fix:"),
        "{stderr}"
    );
    let out = k.run(&["get", "bc", "-A"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("No resources found"));
}

#[test]
fn validate_is_offline_and_reports_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("two-bad.yaml");
    std::fs::write(&f, "apiVersion: storage.kubestash.com/v1alpha1\nkind: RetentionPolicy\nmetadata: {name: a, namespace: demo}\nspec: {maxRetentionPeriod: 30x}\n---\napiVersion: addons.kubestash.com/v1alpha1\nkind: Function\nmetadata: {name: f}\nspec: {args: [x]}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kstash"))
        .args(["validate", "-f", f.to_str().unwrap()])
        .env("KSTASH_HOME", "/nonexistent/never-created")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RetentionPolicy demo/a: spec.maxRetentionPeriod"),
        "{stderr}"
    );
    assert!(stderr.contains("Function f: spec.image"), "{stderr}");
    assert!(!Path::new("/nonexistent/never-created").exists());
    let ok = Command::new(env!("CARGO_BIN_EXE_kstash"))
        .args(["validate", "-f", &examples()])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn secrets_are_never_printed_in_clear() {
    let k = Kstash::new();
    k.ok(&[
        "apply",
        "-f",
        &repo_root()
            .join("examples/postgres-s3/secrets.yaml")
            .display()
            .to_string(),
    ]);
    let yaml = k.ok(&["get", "secret", "-n", "demo", "-o", "yaml"]);
    let described = k.ok(&["describe", "secret", "encrypt-secret", "-n", "demo"]);
    for text in [&yaml, &described] {
        assert!(text.contains("RESTIC_PASSWORD: <redacted>"), "{text}");
    }
    let raw = std::fs::read_to_string(repo_root().join("examples/postgres-s3/secrets.yaml")).unwrap();
    let password = raw
        .lines()
        .find_map(|l| l.trim().strip_prefix("RESTIC_PASSWORD:"))
        .unwrap()
        .trim()
        .trim_matches('"');
    assert!(!yaml.contains(password) && !described.contains(password));
}

#[test]
fn delete_by_name_and_by_file_and_unknown_kinds_are_explained() {
    let k = Kstash::new();
    let file = repo_root()
        .join("examples/postgres-s3/retentionpolicy.yaml")
        .display()
        .to_string();
    k.ok(&["apply", "-f", &file]);
    let out = k.ok(&["delete", "-f", &file]);
    assert!(out.contains("deleted"), "{out}");
    let gone = k.run(&["get", "retentionpolicy", "demo-retention", "-n", "demo"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"));
    let unknown = k.run(&["get", "pods"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown resource type 'pods'; kstash knows:"));
}

#[test]
fn crd_prints_every_custom_resource_definition() {
    let out = Kstash::new().ok(&["crd"]);
    assert_eq!(
        out.matches("kind: CustomResourceDefinition").count(),
        kstash_api::crd::all().len()
    );
    let one = Kstash::new().ok(&["crd", "bc"]);
    assert!(one.contains("name: backupconfigurations.core.kubestash.com"));
}

#[test]
fn the_data_directory_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let k = Kstash::new();
    k.ok(&["get", "bc"]);
    let mode = std::fs::metadata(k.home.path().join("kstash.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
