//! HTTP-level tests of the dashboard over an in-memory resource store and a scripted runtime:
//! login, the session cookie, CSRF, read-only mode, actions and events, and a crawl that checks
//! no response carries a Secret's value.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use kstash_api::memory::MemoryResources;
use serde_json::{Value, json};

use crate::ops::{ComponentData, ComponentLocks, OpError, Operations};
use crate::{Running, UiConfig, serve};

const SECRET_VALUE: &str = "s3cr3t-ui-test-value";
/// base64 of [`SECRET_VALUE`], as it sits in `data`.
const SECRET_B64: &str = "czNjcjN0LXVpLXRlc3QtdmFsdWU=";

#[derive(Default)]
struct ScriptedOps {
    calls: Mutex<Vec<String>>,
    events: Mutex<Vec<String>>,
    /// A real (in-memory) repository and the restic snapshot of each Snapshot name.
    engine: Option<(Arc<kstash_repo::Repository>, BTreeMap<String, String>)>,
}

impl Operations for ScriptedOps {
    fn trigger(&self, ns: &str, name: &str) -> Result<Vec<String>, OpError> {
        self.calls.lock().unwrap().push(format!("trigger {ns}/{name}"));
        Ok(vec!["app-frequent-2".into()])
    }
    fn set_paused(&self, ns: &str, name: &str, paused: bool) -> Result<(), OpError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("paused={paused} {ns}/{name}"));
        Ok(())
    }
    fn unlock(&self, ns: &str, repo: &str) -> Result<usize, OpError> {
        self.calls.lock().unwrap().push(format!("unlock {ns}/{repo}"));
        Ok(1)
    }
    fn locks(&self, _: &str, _: &str) -> Result<Vec<ComponentLocks>, OpError> {
        Ok(vec![ComponentLocks {
            path: "repository/v1/frequent/dump".into(),
            locks: vec![crate::LockState {
                id: "abcd1234".into(),
                exclusive: true,
                holder: "root@host pid 1".into(),
                stale: true,
            }],
        }])
    }
    fn retention_reasons(&self, _: &str, _: &str) -> Result<BTreeMap<String, String>, OpError> {
        Ok(BTreeMap::from([("app-repo-1".to_string(), "last".to_string())]))
    }
    fn executor_log(&self, _: &str, _: &str) -> Option<String> {
        Some("line one\nline two".into())
    }
    fn open_component(&self, ns: &str, snapshot: &str, component: &str) -> Result<ComponentData, OpError> {
        match &self.engine {
            Some((repo, ids)) if ids.contains_key(snapshot) => Ok(ComponentData {
                repo: repo.clone(),
                snapshot_ids: vec![ids[snapshot].clone()],
            }),
            _ => Err(OpError(format!("no engine here: {ns}/{snapshot}/{component}"))),
        }
    }
    fn event(&self, object: &str, reason: &str, message: &str) {
        self.events
            .lock()
            .unwrap()
            .push(format!("{object} {reason} {message}"));
    }
}

fn objects() -> Vec<Value> {
    let now = jiff::Timestamp::now();
    let t = |mins: i64| (now - jiff::SignedDuration::from_mins(mins)).to_string();
    vec![
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "encrypt", "namespace": "demo"},
               "stringData": {"RESTIC_PASSWORD": SECRET_VALUE}, "data": {"RESTIC_PASSWORD": SECRET_B64}}),
        json!({"apiVersion": "addons.kubestash.com/v1alpha1", "kind": "Addon", "metadata": {"name": "workload-addon"},
               "spec": {"backupTasks": [{"name": "logical-backup", "function": "f"}],
                        "restoreTasks": [{"name": "logical-backup-restore", "function": "g"}]}}),
        json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupConfiguration",
               "metadata": {"name": "app", "namespace": "demo", "creationTimestamp": t(600)},
               "spec": {"target": {"apiGroup": "apps", "kind": "Deployment", "name": "app", "namespace": "demo"},
                        "backends": [{"name": "local", "storageRef": {"name": "local", "namespace": "demo"}}],
                        "sessions": [{"name": "frequent", "scheduler": {"schedule": "*/5 * * * *"},
                                      "repositories": [{"name": "app-repo", "backend": "local", "directory": "demo/app",
                                                        "encryptionSecret": {"name": "encrypt", "namespace": "demo"}}],
                                      "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup"}]}}]},
               "status": {"phase": "Ready", "sessions": [{"name": "frequent", "nextSchedule": t(-5)}]}}),
        json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Repository",
               "metadata": {"name": "app-repo", "namespace": "demo", "creationTimestamp": t(600)},
               "spec": {"appRef": {"apiGroup": "apps", "kind": "Deployment", "name": "app", "namespace": "demo"},
                        "storageRef": {"name": "local", "namespace": "demo"}, "path": "demo/app",
                        "encryptionSecret": {"name": "encrypt", "namespace": "demo"}},
               "status": {"phase": "Ready", "size": "1.500 MiB", "snapshotCount": 1, "integrity": true, "lastBackupTime": t(60)}}),
        json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupSession",
               "metadata": {"name": "app-frequent-1", "namespace": "demo", "creationTimestamp": t(61)},
               "spec": {"invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration", "name": "app"}, "session": "frequent"},
               "status": {"phase": "Succeeded", "duration": "3s", "snapshots": [{"name": "app-repo-1", "phase": "Succeeded"}]}}),
        json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupSession",
               "metadata": {"name": "app-frequent-0", "namespace": "demo", "creationTimestamp": t(120)},
               "spec": {"invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration", "name": "app"}, "session": "frequent"},
               "status": {"phase": "Failed", "duration": "1s"}}),
        json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Snapshot",
               "metadata": {"name": "app-repo-1", "namespace": "demo", "creationTimestamp": t(61)},
               "spec": {"repository": "app-repo", "session": "frequent", "backupSession": "app-frequent-1"},
               "status": {"phase": "Succeeded", "snapshotTime": t(60), "size": "1.500 MiB", "verificationStatus": "Verified",
                          "components": {"dump": {"phase": "Succeeded", "size": "1.500 MiB", "duration": "2.5s", "driver": "Restic",
                                                  "resticStats": [{"summary": {"id": "abc", "uploaded": "1.000 MiB"}}]}}}}),
        json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupVerificationSession",
               "metadata": {"name": "app-verify-1", "namespace": "demo", "creationTimestamp": t(30)},
               "spec": {"repository": "app-repo", "session": "frequent", "snapshot": "app-repo-1"},
               "status": {"phase": "Succeeded", "duration": "4s"}}),
        json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "RestoreSession",
               "metadata": {"name": "app-restore", "namespace": "demo", "creationTimestamp": t(10)},
               "spec": {"target": {"apiGroup": "apps", "kind": "Deployment", "name": "app", "namespace": "demo"},
                        "dataSource": {"repository": "app-repo", "snapshot": "latest", "encryptionSecret": {"name": "encrypt", "namespace": "demo"}},
                        "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup-restore"}]}},
               "status": {"phase": "Succeeded", "duration": "2s"}}),
    ]
}

struct Ui {
    running: Running,
    ops: Arc<ScriptedOps>,
    res: Arc<MemoryResources>,
    token: String,
    agent: ureq::Agent,
    _home: tempfile::TempDir,
}

fn start(read_only: bool) -> Ui {
    let home = tempfile::tempdir().unwrap();
    let res = Arc::new(MemoryResources::with(objects()).unwrap());
    let ops = Arc::new(ScriptedOps::default());
    let running = serve(
        UiConfig {
            addr: "127.0.0.1:0".into(),
            read_only,
            home: home.path().to_path_buf(),
            ..UiConfig::default()
        },
        res.clone(),
        ops.clone(),
    )
    .unwrap();
    let token = std::fs::read_to_string(home.path().join(crate::TOKEN_FILE)).unwrap();
    Ui {
        running,
        ops,
        res,
        token,
        agent: test_agent(),
        _home: home,
    }
}

/// The tests' HTTP client: redirects and error statuses are answers to look at. Connections are
/// not reused: a connection the server closed after an answer (a refused POST whose body it did
/// not read) would otherwise be picked from the pool for the next request and fail with "Peer
/// disconnected".
fn test_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .max_idle_connections_per_host(0)
        .build()
        .into()
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn answer(r: ureq::http::Response<ureq::Body>) -> Answer {
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r.into_body().read_to_string().unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

impl Ui {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url)
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut req = self.agent.get(self.url(path));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        answer(req.call().unwrap())
    }

    fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let mut req = self.agent.post(self.url(path));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        answer(req.send_form(form.iter().copied()).unwrap())
    }

    /// Log in with the token; the cookie to send.
    fn login(&self) -> String {
        let a = self.get(&format!("/login?token={}", self.token.trim()), None);
        assert_eq!(a.status, 303, "{}", a.body);
        let set = a.header("set-cookie").expect("a session cookie").to_string();
        set.split(';').next().unwrap().to_string()
    }

    /// The CSRF token of the logged-in session, read from a page's forms.
    fn csrf(&self, cookie: &str) -> String {
        let page = self.get("/", Some(cookie)).body;
        let at = page
            .find("name=\"csrf\" value=\"")
            .expect("a form with the CSRF token");
        let rest = &page[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

#[test]
fn without_a_login_every_page_answers_401_with_the_login_page() {
    let ui = start(false);
    for path in [
        "/",
        "/repositories",
        "/configurations/demo/app",
        "/snapshots/demo/app-repo-1",
        "/restore",
    ] {
        let a = ui.get(path, None);
        assert_eq!(a.status, 401, "{path}");
        assert!(a.body.contains("name=\"token\""), "{path} shows the login form");
    }
    let a = ui.post("/configurations/demo/app/trigger", None, &[]);
    assert_eq!(a.status, 401);
    assert!(ui.ops.calls.lock().unwrap().is_empty());
    let wrong = ui.get("/login?token=wrong", None);
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert_eq!(ui.get("/", Some("kstash_session=forged")).status, 401);
}

#[test]
fn the_token_logs_in_with_an_http_only_same_site_strict_cookie() {
    let ui = start(false);
    let a = ui.get(&format!("/login?token={}", ui.token.trim()), None);
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), Some("/"));
    let set = a.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap();
    let overview = ui.get("/", Some(cookie));
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("data-configuration=\"demo/app\""));
    assert_eq!(overview.header("referrer-policy"), Some("no-referrer"));
    assert!(
        overview
            .header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    // The login form works too.
    let form = ui.post("/login", None, &[("token", ui.token.trim())]);
    assert_eq!(form.status, 303);
}

#[test]
fn a_post_without_the_csrf_token_is_refused_with_403() {
    let ui = start(false);
    let cookie = ui.login();
    for form in [vec![], vec![("csrf", "not-the-token")]] {
        let a = ui.post("/configurations/demo/app/trigger", Some(&cookie), &form);
        assert_eq!(a.status, 403, "{}", a.body);
    }
    assert!(ui.ops.calls.lock().unwrap().is_empty(), "nothing was triggered");
    let csrf = ui.csrf(&cookie);
    let a = ui.post(
        "/configurations/demo/app/trigger",
        Some(&cookie),
        &[("csrf", &csrf)],
    );
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), Some("/sessions/demo/app-frequent-2"));
    assert_eq!(
        *ui.ops.calls.lock().unwrap(),
        vec!["trigger demo/app".to_string()]
    );
    // The CSRF token of one session does not work for another.
    let other = ui.login();
    assert_eq!(
        ui.post("/configurations/demo/app/pause", Some(&other), &[("csrf", &csrf)])
            .status,
        403
    );
}

#[test]
fn every_action_leaves_an_event_naming_it() {
    let ui = start(false);
    let cookie = ui.login();
    let csrf = ui.csrf(&cookie);
    for path in [
        "/configurations/demo/app/trigger",
        "/configurations/demo/app/pause",
        "/configurations/demo/app/resume",
        "/repositories/demo/app-repo/unlock",
    ] {
        assert_eq!(
            ui.post(path, Some(&cookie), &[("csrf", &csrf)]).status,
            303,
            "{path}"
        );
    }
    assert_eq!(
        *ui.ops.calls.lock().unwrap(),
        vec![
            "trigger demo/app",
            "paused=true demo/app",
            "paused=false demo/app",
            "unlock demo/app-repo"
        ]
    );
    let events = ui.ops.events.lock().unwrap().clone();
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(
        events[0]
            .starts_with("BackupConfiguration demo/app DashboardAction dashboard user triggered a backup")
    );
    assert!(events[1].contains("paused") && events[2].contains("resumed"));
    assert!(events[3].starts_with("Repository demo/app-repo DashboardAction"));
}

#[test]
fn read_only_hides_and_refuses_every_action() {
    let ui = start(true);
    let cookie = ui.login();
    let pages = [
        "/",
        "/configurations/demo/app",
        "/repositories/demo/app-repo",
        "/snapshots/demo/app-repo-1",
    ];
    for path in pages {
        let a = ui.get(path, Some(&cookie));
        assert_eq!(a.status, 200, "{path}");
        assert!(!a.body.contains("data-action="), "{path} shows no action button");
        assert!(!a.body.contains("href=\"/restore"), "{path} offers no restore");
    }
    let csrf = {
        let page = ui.get("/", Some(&cookie)).body;
        let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
        page[at..at + 64].to_string()
    };
    for path in [
        "/configurations/demo/app/trigger",
        "/configurations/demo/app/pause",
        "/repositories/demo/app-repo/unlock",
        "/restore/apply",
    ] {
        let a = ui.post(path, Some(&cookie), &[("csrf", &csrf)]);
        assert_eq!(a.status, 403, "{path}");
        assert!(a.body.contains("read-only"));
    }
    assert!(ui.ops.calls.lock().unwrap().is_empty());
    assert_ne!(
        ui.get("/restore?namespace=demo&repository=app-repo", Some(&cookie))
            .status,
        200
    );
}

#[test]
fn the_restore_wizard_previews_yaml_and_the_cli_then_creates_the_restore_session() {
    let ui = start(false);
    let cookie = ui.login();
    let csrf = ui.csrf(&cookie);
    let form = ui.get("/restore?namespace=demo&repository=app-repo", Some(&cookie));
    assert_eq!(form.status, 200);
    assert!(form.body.contains("logical-backup-restore") && form.body.contains("app-repo-1"));
    let fields = [
        ("csrf", csrf.as_str()),
        ("namespace", "demo"),
        ("repository", "app-repo"),
        ("source", "snapshot"),
        ("snapshot", "app-repo-1"),
        ("name", "from-ui"),
        ("addon", "workload-addon"),
        ("task", "logical-backup-restore"),
        ("target_kind", "Deployment"),
        ("target_name", "app"),
        ("target_namespace", "demo"),
        ("target_dir", "/tmp/restored"),
    ];
    let preview = ui.post("/restore/preview", Some(&cookie), &fields);
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(preview.body.contains("kind: RestoreSession"));
    assert!(preview.body.contains("snapshot: app-repo-1"));
    assert!(
        preview.body.contains("kstash apply -f - &lt;&lt;&#39;EOF&#39;")
            || preview.body.contains("kstash apply -f - &lt;&lt;'EOF'")
    );
    let mut pitr = fields.to_vec();
    pitr.retain(|(k, _)| *k != "source");
    pitr.extend([("source", "pitr"), ("pitr", "2026-12-07T11:22")]);
    let at = ui.post("/restore/preview", Some(&cookie), &pitr);
    assert!(
        at.body.contains("targetTime: 2026-12-07T11:22:00Z"),
        "{}",
        at.body
    );
    assert!(!at.body.contains("snapshot: app-repo-1"));
    let applied = ui.post("/restore/apply", Some(&cookie), &fields);
    assert_eq!(applied.status, 303, "{}", applied.body);
    assert_eq!(applied.header("location"), Some("/restores/demo/from-ui"));
    let rs =
        kstash_api::client::Resources::get(&*ui.res, &kstash_api::meta::RESTORE_SESSION, "demo", "from-ui")
            .unwrap()
            .expect("the RestoreSession was created");
    assert_eq!(
        rs.pointer("/spec/dataSource/snapshot"),
        Some(&json!("app-repo-1"))
    );
    assert_eq!(
        rs.pointer("/spec/addon/tasks/0/params/target"),
        Some(&json!("/tmp/restored"))
    );
    assert_eq!(
        rs.pointer("/spec/dataSource/encryptionSecret/name"),
        Some(&json!("encrypt"))
    );
    assert!(
        ui.ops
            .events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("RestoreSession demo/from-ui"))
    );
}

/// Same-origin links of a page.
fn links(body: &str) -> Vec<String> {
    body.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|l| l.starts_with('/') && !l.starts_with("//"))
        .map(|l| l.replace("&amp;", "&"))
        .collect()
}

#[test]
fn no_page_or_response_carries_a_secret_value() {
    let ui = start(false);
    let cookie = ui.login();
    let csrf = ui.csrf(&cookie);
    let mut seen = BTreeSet::new();
    let mut queue = vec!["/".to_string()];
    let mut responses = Vec::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) || seen.len() > 400 {
            continue;
        }
        let a = ui.get(&path, Some(&cookie));
        queue.extend(links(&a.body));
        responses.push((path, a));
    }
    let preview = ui.post(
        "/restore/preview",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("namespace", "demo"),
            ("repository", "app-repo"),
            ("source", "latest"),
            ("name", "x"),
        ],
    );
    assert_eq!(preview.status, 200, "{}", preview.body);
    responses.push(("/restore/preview".into(), preview));
    let crawled: Vec<&str> = responses.iter().map(|(p, _)| p.as_str()).collect();
    for must in [
        "/configurations/demo/app",
        "/repositories/demo/app-repo",
        "/snapshots/demo/app-repo-1",
        "/sessions/demo/app-frequent-1",
    ] {
        assert!(crawled.contains(&must), "the crawl reached {must}: {crawled:?}");
    }
    for (path, a) in &responses {
        for (k, v) in &a.headers {
            assert!(
                !v.contains(SECRET_VALUE) && !v.contains(SECRET_B64),
                "{path}: header {k}"
            );
        }
        assert!(!a.body.contains(SECRET_VALUE), "{path} shows the secret value");
        assert!(!a.body.contains(SECRET_B64), "{path} shows the secret's data");
    }
}

#[test]
fn the_address_file_holds_the_url_for_ui_url() {
    let ui = start(false);
    let link = crate::login_url(ui._home.path()).unwrap();
    assert_eq!(
        link,
        format!("{}/login?token={}", ui.running.url, ui.token.trim())
    );
    assert_eq!(ui.get(&link[ui.running.url.len()..], None).status, 303);
    let home = ui._home.path().to_path_buf();
    drop(ui.running);
    assert!(
        crate::login_url(&home).is_err(),
        "a stopped dashboard leaves no link behind"
    );
}

/// One HTTPS request with the test CA trusted; the raw response.
async fn https_get(port: u16, ca: &std::path::Path, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn with_a_certificate_it_serves_https_on_any_address_and_the_cookie_is_secure() {
    let pki = kstash_testsupport::tls::Pki::new().unwrap();
    let home = tempfile::tempdir().unwrap();
    let running = serve(
        UiConfig {
            addr: "0.0.0.0:0".into(),
            tls: Some((pki.server_cert.clone(), pki.server_key.clone())),
            home: home.path().to_path_buf(),
            ..UiConfig::default()
        },
        Arc::new(MemoryResources::with(objects()).unwrap()),
        Arc::new(ScriptedOps::default()),
    )
    .unwrap();
    assert!(running.url.starts_with("https://127.0.0.1:"), "{}", running.url);
    let token = std::fs::read_to_string(home.path().join(crate::TOKEN_FILE)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = running.addr.port();
    let page = rt.block_on(https_get(port, &pki.ca, "/"));
    assert!(page.starts_with("HTTP/1.1 401"), "{page}");
    let login = rt.block_on(https_get(
        port,
        &pki.ca,
        &format!("/login?token={}", token.trim()),
    ));
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

#[test]
fn plain_http_on_another_address_than_loopback_is_refused_without_insecure() {
    let home = tempfile::tempdir().unwrap();
    let config = UiConfig {
        addr: "0.0.0.0:0".into(),
        home: home.path().to_path_buf(),
        ..UiConfig::default()
    };
    let err = serve(
        config.clone(),
        Arc::new(MemoryResources::new()),
        Arc::new(ScriptedOps::default()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--ui-insecure"), "{err}");
    let insecure = serve(
        UiConfig {
            insecure: true,
            ..config
        },
        Arc::new(MemoryResources::new()),
        Arc::new(ScriptedOps::default()),
    )
    .unwrap();
    assert!(insecure.url.starts_with("http://127.0.0.1:"));
}

/// Pseudo-random bytes (xorshift), for data that does not compress away.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A dashboard whose runtime opens a real repository holding a database-like stream snapshot
/// (`db-1`) and a directory snapshot (`vol-1`) of `data`.
fn start_with_engine(data: &std::path::Path, dump: &[u8]) -> Ui {
    use kstash_repo::{InitOptions, MemoryBackend, Repository, keys::KdfParams};
    let repo = Repository::init(
        Arc::new(MemoryBackend::new()),
        "pw",
        InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..InitOptions::default()
        },
    )
    .unwrap();
    let db = kstash_repo::backup_stream(
        &repo,
        std::io::Cursor::new(dump.to_vec()),
        &kstash_repo::StreamBackupOptions::named("dumpfile.sql"),
    )
    .unwrap();
    let vol = kstash_repo::archiver::backup_tree(
        &repo,
        &[data.to_path_buf()],
        &kstash_repo::archiver::TreeBackupOptions::default(),
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut objects = objects();
    for name in ["db-1", "vol-1"] {
        objects.push(
            json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Snapshot",
            "metadata": {"name": name, "namespace": "demo"},
            "spec": {"repository": "app-repo", "session": "frequent", "backupSession": "x"},
            "status": {"phase": "Succeeded", "components": {"dump": {"phase": "Succeeded"}}}}),
        );
    }
    let res = Arc::new(MemoryResources::with(objects).unwrap());
    let ops = Arc::new(ScriptedOps {
        engine: Some((
            Arc::new(repo),
            BTreeMap::from([
                ("db-1".to_string(), db.snapshot_id.to_string()),
                ("vol-1".to_string(), vol.snapshot_id.to_string()),
            ]),
        )),
        ..ScriptedOps::default()
    });
    let running = serve(
        UiConfig {
            addr: "127.0.0.1:0".into(),
            home: home.path().to_path_buf(),
            ..UiConfig::default()
        },
        res.clone(),
        ops.clone(),
    )
    .unwrap();
    let token = std::fs::read_to_string(home.path().join(crate::TOKEN_FILE)).unwrap();
    Ui {
        running,
        ops,
        res,
        token,
        agent: test_agent(),
        _home: home,
    }
}

impl Ui {
    fn bytes(&self, path: &str, cookie: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let r = self
            .agent
            .get(self.url(path))
            .header("Cookie", cookie)
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = r.into_body().with_config().limit(u64::MAX).read_to_vec().unwrap();
        (status, headers, body)
    }
}

#[test]
fn a_database_snapshot_downloads_as_its_dump_file_and_a_volume_as_files_or_a_tar() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let big = noise(3 << 20, 7);
    std::fs::write(data.join("sub/big.bin"), &big).unwrap();
    std::fs::write(data.join("hello.txt"), "hello\n").unwrap();
    let dump = noise(5 << 20, 11);
    let ui = start_with_engine(&data, &dump);
    let cookie = ui.login();

    // The database component: its one file, streamed.
    let (status, headers, body) = ui.bytes("/download/demo/db-1/dump?path=%2F", &cookie);
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-disposition" && v.contains("dumpfile.sql"))
    );
    assert!(
        body == dump,
        "the dump differs ({} bytes, expected {})",
        body.len(),
        dump.len()
    );

    // The volume: browse to a directory, download a file and the directory as a tar.
    let enc = |p: &std::path::Path| crate::view::enc(&p.display().to_string());
    let listing = ui.get(
        &format!("/browse/demo/vol-1/dump?path={}", enc(&data)),
        Some(&cookie),
    );
    assert_eq!(listing.status, 200, "{}", listing.body);
    assert!(listing.body.contains("hello.txt") && listing.body.contains("sub/"));
    let (_, _, file) = ui.bytes(
        &format!(
            "/download/demo/vol-1/dump?path={}",
            enc(&data.join("sub/big.bin"))
        ),
        &cookie,
    );
    assert!(file == big, "the file differs");
    let (status, headers, tar_bytes) =
        ui.bytes(&format!("/download/demo/vol-1/dump?path={}", enc(&data)), &cookie);
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/x-tar")
    );
    let mut archive = tar::Archive::new(std::io::Cursor::new(tar_bytes));
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        files.insert(path, content);
    }
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        vec!["data/", "data/hello.txt", "data/sub/", "data/sub/big.bin"]
    );
    assert!(files["data/sub/big.bin"] == big);
    assert_eq!(files["data/hello.txt"], b"hello\n");
    // No way out of the snapshot.
    assert_eq!(
        ui.get("/browse/demo/vol-1/dump?path=%2F..%2Fetc", Some(&cookie))
            .status,
        400
    );
}
