//! Every `kstash` command in the `sh` blocks of docs/migrate-from-stash.md runs, from the
//! repository root, against the manifests next to it (restores and backups they start are tested
//! against real servers in `lifecycle_stash.rs`); the converted output validates as KubeStash.

mod lifecycle;

use std::path::Path;

use lifecycle::Env;

/// The `kstash …` lines of the page's `sh` blocks (`kstash server &` is left to the e2e tests).
fn documented_commands(markdown: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in markdown.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        if in_sh && t.starts_with("kstash ") && !t.ends_with('&') {
            out.push(t.split_whitespace().skip(1).map(str::to_string).collect());
        }
    }
    out
}

#[test]
fn the_stash_migration_guide_commands_run_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let page = std::fs::read_to_string(root.join("docs/migrate-from-stash.md")).unwrap();
    let commands = documented_commands(&page);
    assert!(commands.len() >= 6, "{commands:?}");
    let env = Env::new();
    for args in &commands {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kstash"))
            .current_dir(&root)
            .args(args)
            .env("KSTASH_HOME", &env.home)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "kstash {}: {}\n{stdout}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        if args[0] == "convert" {
            assert!(
                stdout.contains("kind: BackupConfiguration") && stdout.contains("kind: RestoreSession"),
                "{stdout}"
            );
            let converted = env.dir.path().join("converted.yaml");
            std::fs::write(&converted, stdout.as_bytes()).unwrap();
            env.ok(&["validate", "-f", converted.to_str().unwrap()]);
        }
        if args[0] == "get" {
            assert!(stdout.contains("sample-postgres"), "{stdout}");
        }
    }
}
