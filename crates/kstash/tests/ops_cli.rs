//! The repository-level commands of the real `kstash` binary (`snapshots`, `download`,
//! `password`, `unlock`, `debug`) against state made the way a user makes it: manifests for a
//! local BackupStorage in a temporary directory, then `kstash trigger` without a daemon (the
//! backup runs in the foreground). Every test has its own KSTASH_HOME.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kstash_testsupport::{Restic, ResticLockHolder, lock_file_names};

const PASSWORD: &str = "changeit";

/// One test's world: `home` (KSTASH_HOME), `storage` (the BackupStorage's hostPath), `data`
/// (what is backed up).
struct Env {
    dir: tempfile::TempDir,
    home: PathBuf,
    storage: PathBuf,
    data: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let storage = dir.path().join("storage");
        let data = dir.path().join("data");
        for d in [&home, &storage, &data] {
            std::fs::create_dir_all(d).unwrap();
        }
        Env {
            dir,
            home,
            storage,
            data,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kstash"))
            .args(args)
            .env("KSTASH_HOME", &self.home)
            .env_remove("KSTASH_PUSHGATEWAY")
            .env_remove("KSTASH_LOG")
            .output()
            .unwrap()
    }

    /// Run, expect exit 0, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kstash {args:?} failed:\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Run, expect exit 1, return stdout and stderr.
    fn fails(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "kstash {args:?} should fail:\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        (stdout(&out), stderr(&out))
    }

    fn apply(&self, yaml: &str) {
        let path = self.dir.path().join("manifest.yaml");
        std::fs::write(&path, yaml).unwrap();
        self.ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    /// BackupStorage `local-storage`, RetentionPolicy and encryption Secret in namespace `demo`.
    fn apply_storage(&self) {
        self.apply(&format!(
            r#"
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {{name: local-storage, namespace: demo}}
spec:
  storage:
    provider: local
    local:
      mountPath: /safe/data
      hostPath: {{path: {storage}}}
  usagePolicy: {{allowedNamespaces: {{from: Same}}}}
  default: true
  deletionPolicy: WipeOut
---
apiVersion: storage.kubestash.com/v1alpha1
kind: RetentionPolicy
metadata: {{name: keep-last, namespace: demo}}
spec:
  default: true
  successfulSnapshots: {{last: 5}}
  failedSnapshots: {{last: 2}}
---
apiVersion: v1
kind: Secret
metadata: {{name: encrypt, namespace: demo}}
stringData: {{RESTIC_PASSWORD: {PASSWORD}}}
"#,
            storage = self.storage.display()
        ));
    }

    /// A BackupConfiguration `name` (Repository `<name>-repo`, directory `demo/<name>`) backing
    /// up `paths` with the workload addon, scheduled once a year.
    fn apply_backup_configuration(&self, name: &str, paths: &Path) {
        self.apply(&format!(
            r#"
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: {name}, namespace: demo}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: {name}-app, namespace: demo}}
  backends:
    - name: local
      storageRef: {{name: local-storage, namespace: demo}}
      retentionPolicy: {{name: keep-last, namespace: demo}}
  sessions:
    - name: frequent
      scheduler: {{schedule: "0 0 1 1 *"}}
      repositories:
        - name: {name}-repo
          backend: local
          directory: demo/{name}
          encryptionSecret: {{name: encrypt, namespace: demo}}
      addon:
        name: workload-addon
        tasks:
          - name: logical-backup
            params: {{paths: "{paths}"}}
"#,
            paths = paths.display()
        ));
    }

    /// Files to back up: a small text file and 300 KiB of binary data in a subdirectory.
    fn write_data(&self) {
        std::fs::write(self.data.join("hello.txt"), "hello, kstash\n").unwrap();
        std::fs::create_dir_all(self.data.join("sub")).unwrap();
        let bytes: Vec<u8> = (0..300 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(self.data.join("sub/blob.bin"), bytes).unwrap();
    }

    /// Storage, data, BackupConfiguration `app`, and one successful backup in the foreground.
    fn backed_up() -> Env {
        let env = Env::new();
        env.apply_storage();
        env.write_data();
        env.apply_backup_configuration("app", &env.data.clone());
        let out = env.ok(&["trigger", "app", "-n", "demo"]);
        assert!(out.contains("Succeeded"), "{out}");
        env
    }

    /// The component restic repository of BackupConfiguration `bc`'s session `frequent`.
    fn component_repo(&self, bc: &str) -> PathBuf {
        self.storage
            .join("demo")
            .join(bc)
            .join("repository/v1/frequent/dump")
    }

    /// Names of the Snapshots in `demo`.
    fn snapshot_names(&self) -> Vec<String> {
        let out = self.ok(&["get", "snapshots", "-n", "demo", "-o", "name"]);
        out.lines()
            .map(|l| l.rsplit('/').next().unwrap_or("").to_string())
            .filter(|n| !n.is_empty())
            .collect()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Key ids listed by `kstash password list` for one component path (`*` marks the current one).
fn listed_keys(list_output: &str, path: &str) -> Vec<(String, bool)> {
    let mut keys = Vec::new();
    let mut inside = false;
    for line in list_output.lines() {
        if !line.starts_with(' ') {
            inside = line.trim_end_matches(':') == path;
            continue;
        }
        let cells: Vec<&str> = line.split_whitespace().collect();
        if inside && cells.first().is_some_and(|c| *c != "ID") {
            keys.push((cells[0].to_string(), cells.get(1) == Some(&"*")));
        }
    }
    keys
}

#[test]
fn snapshots_lists_the_backup_newest_first_with_filters() {
    let env = Env::backed_up();
    let names = env.snapshot_names();
    assert_eq!(names.len(), 1, "{names:?}");
    let out = env.ok(&["snapshots", "-n", "demo"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "REPOSITORY",
            "SESSION",
            "PHASE",
            "SNAPSHOT-TIME",
            "SIZE",
            "INTEGRITY",
            "AGE"
        ]
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cells[0], names[0]);
    assert_eq!(cells[1], "app-repo");
    assert_eq!(cells[2], "frequent");
    assert_eq!(cells[3], "Succeeded");
    assert!(cells[4].ends_with('Z'), "{out}");

    // A second backup lists first.
    env.ok(&["trigger", "app", "-n", "demo"]);
    let out = env.ok(&["snapshots", "-n", "demo", "--repository", "app-repo"]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    let first = rows[0].split_whitespace().next().unwrap();
    assert_ne!(first, names[0], "the newest snapshot must come first:\n{out}");

    // -A adds the namespace; filters that match nothing list nothing.
    let all = env.ok(&["snapshots", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert_eq!(all.lines().filter(|l| l.starts_with("demo ")).count(), 2, "{all}");
    let none = env.run(&["snapshots", "-n", "demo", "--session", "nightly"]);
    assert!(none.status.success());
    assert_eq!(stdout(&none), "");
    assert!(stderr(&none).contains("No snapshots found"), "{}", stderr(&none));
    let (_, err) = env.fails(&["snapshots", "-n", "demo", "--repository", "nope"]);
    assert!(
        err.contains("Repository demo/nope not found"),
        "the error must name the repository: {err}"
    );
}

#[test]
fn download_restores_the_files_byte_for_byte() {
    let env = Env::backed_up();
    let snapshot = env.snapshot_names().remove(0);
    let dest = env.dir.path().join("downloads");
    let out = env.ok(&[
        "download",
        &snapshot,
        "-n",
        "demo",
        "--destination",
        dest.to_str().unwrap(),
    ]);
    let component_dir = dest.join(&snapshot).join("dump");
    assert!(
        out.contains(&component_dir.display().to_string()),
        "download must say where the files went: {out}"
    );
    // Files come back at their original absolute path below <destination>/<snapshot>/<component>.
    let restored = component_dir.join(env.data.strip_prefix("/").unwrap());
    for f in ["hello.txt", "sub/blob.bin"] {
        let original = std::fs::read(env.data.join(f)).unwrap();
        let back = std::fs::read(restored.join(f))
            .unwrap_or_else(|e| panic!("{} not downloaded: {e}", restored.join(f).display()));
        assert!(back == original, "{f} differs after download");
    }

    let (_, err) = env.fails(&[
        "download",
        &snapshot,
        "-n",
        "demo",
        "--destination",
        dest.to_str().unwrap(),
        "--components",
        "nope",
    ]);
    assert!(err.contains("nope"), "{err}");
    let (_, err) = env.fails(&["download", "missing-snapshot", "-n", "demo"]);
    assert!(err.contains("Snapshot demo/missing-snapshot not found"), "{err}");
}

#[test]
fn password_add_list_remove_and_update() {
    let env = Env::backed_up();
    let path = "repository/v1/frequent/dump";
    let repo_dir = env.component_repo("app");

    let before = env.ok(&["password", "list", "app-repo", "-n", "demo"]);
    let keys = listed_keys(&before, path);
    assert_eq!(keys.len(), 1, "{before}");
    let (original, current) = keys[0].clone();
    assert!(current, "the key the Secret opens is current: {before}");

    // add: needs the new password file.
    let (_, err) = env.fails(&["password", "add", "app-repo", "-n", "demo"]);
    assert!(err.contains("--new-password-file"), "{err}");
    let pw_file = env.dir.path().join("new-password");
    std::fs::write(&pw_file, "s3cond-secret\n").unwrap();
    let run = env.run(&[
        "password",
        "add",
        "app-repo",
        "-n",
        "demo",
        "--new-password-file",
        pw_file.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stdout(&run).contains(path), "{}", stdout(&run));
    assert!(
        stderr(&run).contains("Secret demo/encrypt") && stderr(&run).contains("old password"),
        "add must remind that the Secret still holds the old password: {}",
        stderr(&run)
    );

    let after = env.ok(&["password", "list", "app-repo", "-n", "demo"]);
    let keys = listed_keys(&after, path);
    assert_eq!(keys.len(), 2, "{after}");
    let added = keys.iter().find(|(id, _)| *id != original).unwrap().0.clone();

    // restic opens the repository with the new password (and still with the old one).
    let with_new = Restic::new(repo_dir.display().to_string(), "s3cond-secret").unwrap();
    with_new
        .run(&["snapshots"])
        .expect("restic opens the repository with the added key");
    let wrong = Restic::new(repo_dir.display().to_string(), "not-a-key").unwrap();
    assert!(!wrong.output(&["snapshots"]).unwrap().status.success());

    // remove: the key in use is refused, the added one goes.
    let (_, err) = env.fails(&[
        "password",
        "remove",
        "app-repo",
        "-n",
        "demo",
        "--id-paths",
        &format!("{original}:{path}"),
    ]);
    assert!(err.contains("in use") || err.contains("lock kstash out"), "{err}");
    assert!(err.contains(&original), "{err}");
    let (_, err) = env.fails(&[
        "password",
        "remove",
        "app-repo",
        "-n",
        "demo",
        "--id-paths",
        &format!("{added}:nope"),
    ]);
    assert!(err.contains("no component path nope"), "{err}");
    env.ok(&[
        "password",
        "remove",
        "app-repo",
        "-n",
        "demo",
        "--id-paths",
        &format!("{}:{path}", &added[..5]),
    ]);
    let keys = listed_keys(&env.ok(&["password", "list", "app-repo", "-n", "demo"]), path);
    assert_eq!(keys, vec![(original.clone(), true)]);
    assert!(!with_new.output(&["snapshots"]).unwrap().status.success());

    // update: the key in use changes; the Secret must follow.
    let run = env.run(&[
        "password",
        "update",
        "app-repo",
        "-n",
        "demo",
        "--paths",
        path,
        "--new-password-file",
        pw_file.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("Secret demo/encrypt") && stderr(&run).contains("new password"),
        "update must say to put the new password into the Secret: {}",
        stderr(&run)
    );
    with_new
        .run(&["snapshots"])
        .expect("restic opens with the updated password");
    let old = Restic::new(repo_dir.display().to_string(), PASSWORD).unwrap();
    assert!(!old.output(&["snapshots"]).unwrap().status.success());
}

#[test]
fn unlock_removes_stale_locks_only_unless_told() {
    let env = Env::backed_up();
    let repo_dir = env.component_repo("app");
    let path = "repository/v1/frequent/dump";

    // A live restic process holds a lock: not stale, kept.
    let holder = ResticLockHolder::start(&repo_dir, PASSWORD).unwrap();
    let live = holder.lock_id().to_string();
    let out = env.ok(&["unlock", "app-repo", "-n", "demo"]);
    assert!(out.contains(&format!("{path}: removed 0 locks")), "{out}");
    assert_eq!(lock_file_names(&repo_dir), vec![live.clone()]);

    // Killed: its lock stays behind, stale, and unlock removes it.
    holder.kill();
    assert_eq!(lock_file_names(&repo_dir), vec![live.clone()]);
    let out = env.ok(&["unlock", "app-repo", "-n", "demo", "--paths", path]);
    assert!(out.contains(&format!("{path}: removed 1 locks")), "{out}");
    assert!(out.contains(&live[..8]), "{out}");
    assert!(lock_file_names(&repo_dir).is_empty());

    // --remove-all takes a live lock too.
    let holder = ResticLockHolder::start(&repo_dir, PASSWORD).unwrap();
    let out = env.ok(&["unlock", "app-repo", "-n", "demo", "--remove-all"]);
    assert!(out.contains(&format!("{path}: removed 1 locks")), "{out}");
    assert!(lock_file_names(&repo_dir).is_empty());
    drop(holder);

    let (_, err) = env.fails(&[
        "unlock",
        "app-repo",
        "-n",
        "demo",
        "--paths",
        "repository/v1/nightly/dump",
    ]);
    assert!(
        err.contains("no component path repository/v1/nightly/dump") && err.contains(path),
        "{err}"
    );
    let (_, err) = env.fails(&["unlock", "nope", "-n", "demo"]);
    assert!(err.contains("Repository demo/nope not found"), "{err}");
    let (_, err) = env.fails(&["password", "list", "nope", "-n", "demo"]);
    assert!(err.contains("Repository demo/nope not found"), "{err}");
}

#[test]
fn debug_backup_shows_the_failed_component_and_the_executor_log() {
    let env = Env::new();
    env.apply_storage();
    let missing = env.dir.path().join("no-such-dir");
    env.apply_backup_configuration("broken", &missing);
    let (out, _) = env.fails(&["trigger", "broken", "-n", "demo"]);
    assert!(out.contains("Failed"), "{out}");

    let report = env.ok(&["debug", "backup", "broken", "-n", "demo"]);
    let missing = missing.display().to_string();
    assert!(report.contains("BackupConfiguration demo/broken"), "{report}");
    assert!(report.contains("Failed"), "{report}");
    let component_line = report
        .lines()
        .find(|l| l.trim_start().starts_with("dump ") && l.contains("Failed"))
        .unwrap_or_else(|| panic!("no failed component row:\n{report}"));
    assert!(
        component_line.contains(&missing),
        "the component error must name the missing path: {component_line}"
    );
    let log_start = report
        .find("Executor log (last")
        .unwrap_or_else(|| panic!("no executor log tail:\n{report}"));
    let log = &report[log_start..];
    assert!(log.contains(&missing), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes left in the log tail: {log}"
    );

    // Unknown sessions and configurations are named.
    let (_, err) = env.fails(&["debug", "backup", "broken", "-n", "demo", "--sessions", "nightly"]);
    assert!(err.contains("no session \"nightly\""), "{err}");
    let (_, err) = env.fails(&["debug", "backup", "nope", "-n", "demo"]);
    assert!(err.contains("BackupConfiguration demo/nope not found"), "{err}");
}

#[test]
fn debug_backupstorage_probes_writes() {
    let env = Env::new();
    env.apply_storage();
    let report = env.ok(&["debug", "backupstorage", "local-storage", "-n", "demo"]);
    assert!(report.contains("Write probe: OK"), "{report}");
    assert!(env.storage.join("metadata.yaml").is_file());

    // A hostPath below a regular file cannot be written.
    let file = env.dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let bad = file.join("storage");
    env.apply(&format!(
        r#"
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {{name: broken, namespace: demo}}
spec:
  storage:
    provider: local
    local:
      mountPath: /safe/data
      hostPath: {{path: {bad}}}
  usagePolicy: {{allowedNamespaces: {{from: Same}}}}
  deletionPolicy: WipeOut
"#,
        bad = bad.display()
    ));
    let (report, _) = env.fails(&["debug", "backupstorage", "broken", "-n", "demo"]);
    let line = report
        .lines()
        .find(|l| l.contains("Write probe:"))
        .unwrap_or_else(|| panic!("no probe result:\n{report}"));
    assert!(line.contains("FAILED"), "{line}");
    assert!(line.contains("BackupStorage demo/broken"), "{line}");
    assert!(
        line.contains("Not a directory"),
        "the cause must be readable: {line}"
    );

    let (_, err) = env.fails(&["debug", "backupstorage", "nope", "-n", "demo"]);
    assert!(err.contains("BackupStorage demo/nope not found"), "{err}");
}
