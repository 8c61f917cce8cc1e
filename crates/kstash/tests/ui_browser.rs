//! The web dashboard end to end in a real browser: headless Chromium driven through WebDriver
//! (`chromedriver`, installed by `scripts/setup`) against `kstash server` running the example
//! configuration `examples/embedded-volume/`. Log in with the token, see the configuration on the
//! overview, trigger a backup and watch its live page reach Succeeded, browse the snapshot and
//! download a file (compared byte for byte with the source), restore through the wizard (the
//! restored tree compared with the source), pause and resume. Every page is saved as a PNG under
//! `<target>/ui-screenshots/`. A second test crawls a read-only daemon over HTTP: actions absent
//! and refused, no response carrying the example Secret's value.

mod lifecycle;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use lifecycle::{Daemon, Env, phase, tree_listing, wait_for, write_tree};
use serde_json::json;

/// The repository password of the example (`examples/embedded-volume/storage.yaml`).
const EXAMPLE_SECRET: &str = "change-me";

/// `examples/embedded-volume/` with its demo directory replaced by this test's, and its
/// every-minute schedule moved to 03:00: a scheduled run at a minute boundary would skip the
/// backup the test triggers (KubeStash skips a session while another of the configuration runs).
fn example_manifests(env: &Env) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/embedded-volume");
    let base = env.dir.path();
    ["storage.yaml", "backupverifier.yaml", "backupconfiguration.yaml"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(root.join(f)).unwrap();
            let out = base.join(f);
            let text = text
                .replace("/var/lib/kstash-demo", &base.display().to_string())
                .replace("schedule: \"* * * * *\"", "schedule: \"0 3 * * *\"");
            assert!(!text.contains("* * * * *"), "the example's schedule moved");
            std::fs::write(&out, text).unwrap();
            out
        })
        .collect()
}

/// Start the daemon with the example applied; returns it with the dashboard's base URL once the
/// instant first backup succeeded.
fn start(env: &Env, extra: &[&str]) -> (Daemon, String) {
    write_tree(&env.dir.path().join("data"), 300_000);
    // The example excludes *.tmp.
    std::fs::write(env.dir.path().join("data/scratch.tmp"), "not backed up\n").unwrap();
    let mut args = vec!["--ui-addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let daemon = env.start_daemon(&args);
    let files = example_manifests(env);
    let mut apply = vec!["apply"];
    for f in &files {
        apply.extend(["-f", f.to_str().unwrap()]);
    }
    env.ok(&apply);
    wait_for(Duration::from_secs(90), "the instant first backup", || {
        env.list("backupsessions", "edge")
            .iter()
            .any(|s| phase(s) == "Succeeded")
    });
    let link = env.ok(&["ui-url"]);
    let base = link.trim().split("/login").next().unwrap().to_string();
    (daemon, base)
}

fn login_link(env: &Env) -> String {
    env.ok(&["ui-url"]).trim().to_string()
}

/// `chromedriver` on a free port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let port = kstash_testsupport::ports::free_port().unwrap();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed by scripts/setup (apt: chromium chromium-driver)");
    let url = format!("http://127.0.0.1:{port}");
    wait_for(Duration::from_secs(20), "chromedriver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Driver { child, url }
}

async fn browser(driver: &Driver, downloads: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver")
}

/// Where the screenshots go: `<target>/ui-screenshots/`.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Wait (polling the live DOM, which the page's script updates) until `#phase` reads a final phase.
async fn final_phase(c: &Client, what: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(el) = c.find(Locator::Css("#phase")).await
            && let Ok(Some(p)) = el.attr("data-phase").await
            && matches!(p.as_str(), "Succeeded" | "Failed" | "Skipped" | "Invalid")
        {
            return p;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{what} did not end");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn walk_through(env: &Env, base: &str) {
    let driver = chromedriver();
    let downloads = env.dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let c = browser(&driver, &downloads).await;

    // Without the token: the login page.
    c.goto(&format!("{base}/")).await.unwrap();
    c.find(Locator::Css("input#token")).await.expect("the login form");
    shot(&c, "login").await;

    // Log in by pasting the token.
    let token = std::fs::read_to_string(env.home.join("ui-token")).unwrap();
    c.find(Locator::Css("input#token"))
        .await
        .unwrap()
        .send_keys(token.trim())
        .await
        .unwrap();
    click(&c, "form[action='/login'] button").await;
    let row = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("tr[data-configuration='edge/app-data']"))
        .await
        .expect("the overview lists the example configuration");
    assert!(row.text().await.unwrap().contains("app-data"));
    shot(&c, "overview").await;

    // Trigger a backup; the action leads to the session's live page, which updates itself.
    c.goto(&format!("{base}/configurations/edge/app-data"))
        .await
        .unwrap();
    shot(&c, "configuration").await;
    click(&c, "button[data-action='Back up now']").await;
    let first = c
        .wait()
        .for_element(Locator::Css("#phase"))
        .await
        .unwrap()
        .attr("data-phase")
        .await
        .unwrap();
    // The page opens before the backup ends; it reaches Succeeded by updating itself.
    assert!(
        !matches!(first.as_deref(), Some("Succeeded" | "Failed")),
        "{first:?}"
    );
    let url = c.current_url().await.unwrap();
    assert!(url.path().starts_with("/sessions/edge/"), "{url}");
    let session = url.path().rsplit('/').next().unwrap().to_string();
    assert_eq!(final_phase(&c, "the triggered backup").await, "Succeeded");
    shot(&c, "live-session").await;
    let logs = env.ok(&["logs", &session, "-n", "edge"]);
    assert!(!logs.is_empty());

    // The snapshot of that session: browse to the data directory and download a file.
    let bs = env.get("backupsession", "edge", &session).unwrap();
    let snapshot = bs
        .pointer("/status/snapshots/0/name")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_string();
    c.goto(&format!("{base}/snapshots/edge/{snapshot}"))
        .await
        .unwrap();
    shot(&c, "snapshot").await;
    click(&c, "#components a").await;
    c.wait().for_element(Locator::Css("#tree")).await.unwrap();
    let data = env.dir.path().join("data");
    c.goto(&format!(
        "{base}/browse/edge/{snapshot}/dump?path={}",
        percent(&data.join("sub").display().to_string())
    ))
    .await
    .unwrap();
    shot(&c, "snapshot-browser").await;
    let file = data.join("sub/big.bin");
    click(&c, &format!("a[data-file='{}']", file.display())).await;
    let downloaded = downloads.join("big.bin");
    let start = Instant::now();
    while !(downloaded.exists()
        && std::fs::metadata(&downloaded).unwrap().len() == std::fs::metadata(&file).unwrap().len())
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the browser did not download big.bin"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        std::fs::read(&downloaded).unwrap() == std::fs::read(&file).unwrap(),
        "the download differs from the source"
    );

    // A verification (the example's BackupVerifier) shows in the repository's history.
    env.ok(&["verify", "app-data", "-n", "edge", "--wait"]);

    // Restore through the wizard into another directory.
    let restored = env.dir.path().join("restored");
    c.goto(&format!("{base}/repositories/edge/app-data-repo"))
        .await
        .unwrap();
    let history = c
        .find(Locator::Css("#verifications"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(history.contains("Succeeded"), "{history}");
    shot(&c, "repository").await;
    click(&c, "a[href^='/restore?']").await;
    c.wait().for_element(Locator::Css("form.wizard")).await.unwrap();
    c.find(Locator::Css("input#target_dir"))
        .await
        .unwrap()
        .send_keys(&restored.display().to_string())
        .await
        .unwrap();
    let name_input = c.find(Locator::Css("input#name")).await.unwrap();
    name_input.clear().await.unwrap();
    name_input.send_keys("from-the-dashboard").await.unwrap();
    shot(&c, "restore-wizard").await;
    click(&c, "button#preview").await;
    let yaml = c
        .wait()
        .for_element(Locator::Css("#yaml"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        yaml.contains("kind: RestoreSession") && yaml.contains("snapshot: latest"),
        "{yaml}"
    );
    let cli = c.find(Locator::Css("#cli")).await.unwrap().text().await.unwrap();
    assert!(cli.starts_with("kstash apply -f -"), "{cli}");
    assert!(!yaml.contains(EXAMPLE_SECRET));
    shot(&c, "restore-preview").await;
    click(&c, "button#apply").await;
    c.wait().for_element(Locator::Css("#phase")).await.unwrap();
    assert_eq!(final_phase(&c, "the restore").await, "Succeeded");
    shot(&c, "live-restore").await;
    std::fs::remove_file(data.join("scratch.tmp")).unwrap();
    let restored_data = restored.join(data.strip_prefix("/").unwrap());
    assert_eq!(
        tree_listing(&restored_data),
        tree_listing(&data),
        "the restored tree differs"
    );

    // A lock left behind by a killed process is shown stale and removed from the repository page.
    let component = env
        .dir
        .path()
        .join("storage/demo/app-data/repository/v1/every-minute/dump");
    let holder = kstash_testsupport::ResticLockHolder::start(&component, EXAMPLE_SECRET)
        .expect("restic (installed by scripts/setup) holds a lock");
    let stale = holder.lock_id().to_string();
    holder.kill();
    c.goto(&format!("{base}/repositories/edge/app-data-repo"))
        .await
        .unwrap();
    let state = c
        .find(Locator::Css("#lock-state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(state.contains("stale"), "{state}");
    shot(&c, "repository-stale-lock").await;
    click(&c, "button[data-action='Remove stale locks']").await;
    // The action answers with the repository page again, without that lock.
    let start = Instant::now();
    while kstash_testsupport::lock_file_names(&component).contains(&stale) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the stale lock was not removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.wait().for_element(Locator::Css("#lock-state")).await.unwrap();

    // Pause and resume.
    c.goto(&format!("{base}/configurations/edge/app-data"))
        .await
        .unwrap();
    click(&c, "button[data-action='Pause']").await;
    c.wait()
        .for_element(Locator::Css("button[data-action='Resume']"))
        .await
        .unwrap();
    assert_eq!(paused(env), Some(true));
    shot(&c, "configuration-paused").await;
    click(&c, "button[data-action='Resume']").await;
    c.wait()
        .for_element(Locator::Css("button[data-action='Pause']"))
        .await
        .unwrap();
    assert_eq!(paused(env), Some(false));

    // The overview at phone width.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/")).await.unwrap();
    shot(&c, "overview-phone").await;
    c.close().await.unwrap();
}

fn paused(env: &Env) -> Option<bool> {
    env.get("backupconfiguration", "edge", "app-data")?
        .pointer("/spec/paused")
        .and_then(|v| v.as_bool())
        .or(Some(false))
}

#[test]
fn the_dashboard_logs_in_triggers_browses_downloads_restores_and_pauses_in_a_real_browser() {
    let env = Env::new();
    let (daemon, base) = start(&env, &[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(walk_through(&env, &base));
    let log = daemon.log_text();
    for action in [
        "triggered a backup",
        "paused the backups",
        "resumed the backups",
        "started a restore",
        "removed 1 stale lock",
    ] {
        assert!(
            log.contains(action),
            "the daemon's log records the event `{action}`"
        );
    }
}

/// An HTTP client that keeps redirects and error statuses for the test to see.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn a_read_only_dashboard_shows_no_action_refuses_them_and_never_sends_a_secret_value() {
    let env = Env::new();
    let (_daemon, base) = start(&env, &["--ui-read-only"]);
    let a = agent();
    let anonymous = a.get(format!("{base}/")).call().unwrap();
    assert_eq!(anonymous.status(), 401);
    let login = a.get(login_link(&env)).call().unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let get = |path: &str| {
        let r = a
            .get(format!("{base}{path}"))
            .header("Cookie", &cookie)
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let headers = format!("{:?}", r.headers());
        (
            status,
            headers,
            r.into_body().read_to_string().unwrap_or_default(),
        )
    };
    // Crawl every same-origin link (downloads included) from the overview.
    let mut seen = std::collections::BTreeSet::new();
    let mut queue = vec!["/".to_string()];
    let mut csrf = String::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) || seen.len() > 300 {
            continue;
        }
        let (status, headers, body) = get(&path);
        assert!(status < 500, "{path}: {status}");
        assert!(
            !body.contains(EXAMPLE_SECRET) && !headers.contains(EXAMPLE_SECRET),
            "{path} carries the Secret's value"
        );
        assert!(
            !body.contains("data-action="),
            "{path} shows an action in read-only mode"
        );
        if let Some(at) = body.find("name=\"csrf\" value=\"") {
            csrf = body[at + 19..at + 19 + 64].to_string();
        }
        for link in body.split("href=\"").skip(1).filter_map(|r| r.split('"').next()) {
            if link.starts_with('/') {
                queue.push(link.replace("&amp;", "&"));
            }
        }
    }
    for must in [
        "/configurations/edge/app-data",
        "/repositories/edge/app-data-repo",
    ] {
        assert!(seen.contains(must), "the crawl reached {must}");
    }
    assert!(
        seen.iter().any(|p| p.starts_with("/download/")),
        "the crawl downloaded files"
    );
    assert!(!csrf.is_empty());
    for path in [
        "/configurations/edge/app-data/trigger",
        "/configurations/edge/app-data/pause",
        "/repositories/edge/app-data-repo/unlock",
    ] {
        let r = a
            .post(format!("{base}{path}"))
            .header("Cookie", &cookie)
            .send_form([("csrf", csrf.as_str())])
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    // Without the CSRF token a POST is refused too (and would be in a writable dashboard).
    let r = a
        .post(format!("{base}/logout"))
        .header("Cookie", &cookie)
        .send_form([("x", "y")])
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        env.get("backupconfiguration", "edge", "app-data")
            .unwrap()
            .pointer("/spec/paused"),
        None,
        "nothing was paused"
    );
}
