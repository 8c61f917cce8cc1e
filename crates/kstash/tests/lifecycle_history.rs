//! End to end: `sessionHistoryLimit` keeps the newest completed BackupSessions of a session and
//! deletes older ones together with their executor jobs, and retention finishes its wipe-out,
//! while triggers run in the foreground (no daemon).

mod lifecycle;

use lifecycle::{Env, name, phase};

#[test]
fn session_history_limit_keeps_the_newest_sessions_and_their_logs() {
    let env = Env::new();
    lifecycle::write_tree(&env.data, 64 << 10);
    env.apply(&env.storage_manifests(2));
    let bc = env
        .backup_configuration("hist", "0 0 1 1 *", &env.data.display().to_string(), "")
        .replace("sessionHistoryLimit: 10", "sessionHistoryLimit: 2");
    env.apply(&bc);
    let mut created = Vec::new();
    for _ in 0..3 {
        let out = env.ok(&["trigger", "hist", "-n", "demo"]);
        let session = out
            .lines()
            .find_map(|l| l.strip_prefix("backupsession.core.kubestash.com/"))
            .and_then(|l| l.strip_suffix(" created"))
            .unwrap_or_else(|| panic!("no session in {out}"))
            .to_string();
        created.push(session);
    }
    let sessions = env.sessions_of("hist");
    let names: Vec<&str> = sessions.iter().map(name).collect();
    assert_eq!(
        names,
        vec![created[1].as_str(), created[2].as_str()],
        "the two newest stay"
    );
    assert!(sessions.iter().all(|s| phase(s) == "Succeeded"));
    assert!(
        !env.home.join("jobs/demo").join(&created[0]).exists(),
        "the dropped session's job is gone"
    );
    assert!(env.home.join("jobs/demo").join(&created[2]).join("log").exists());
    // Retention (last 2) removed the oldest snapshot, resource and restic data, before trigger returned.
    assert_eq!(env.list("snapshots", "demo").len(), 2);
    let restic = kstash_testsupport::Restic::new(
        env.component_repo("demo/hist", "frequent").display().to_string(),
        "changeit",
    )
    .unwrap();
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&restic.run(&["snapshots", "--json", "--no-lock"]).unwrap()).unwrap();
    assert_eq!(listed.len(), 2, "restic snapshots after retention");
}
