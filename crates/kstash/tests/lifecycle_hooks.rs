//! End to end: backup hooks (HookTemplate exec and httpPost actions run by the embedded daemon) —
//! order, executionPolicy, Summary templating, status.hooks, and failing pre/post hooks.
mod lifecycle;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifecycle::*;
use serde_json::Value;

/// A HookTemplate `append-line` whose exec action appends `${LINE}` to `file`.
fn append_line_template(file: &Path) -> String {
    r#"
apiVersion: core.kubestash.com/v1alpha1
kind: HookTemplate
metadata: {name: append-line, namespace: demo}
spec:
  usagePolicy: {allowedNamespaces: {from: Same}}
  params:
    - {name: LINE, usage: the line to append, required: true}
  action:
    exec:
      command: ["sh", "-c", "echo ${LINE} >> @FILE@"]
  executor: {type: Operator}
"#
    .replace("@FILE@", &file.display().to_string())
}

/// A HookTemplate `fail` whose command writes "boom" to stderr and exits 3. The word is split in
/// the command so that finding it in a message proves the command's output was captured.
const FAIL_TEMPLATE: &str = r#"
apiVersion: core.kubestash.com/v1alpha1
kind: HookTemplate
metadata: {name: fail, namespace: demo}
spec:
  usagePolicy: {allowedNamespaces: {from: Same}}
  action:
    exec:
      command: ["sh", "-c", "echo bo''om >&2; exit 3"]
  executor: {type: Operator}
"#;

/// A HookTemplate `notify` posting the Summary as JSON to 127.0.0.1:`port`/hook.
fn notify_template(port: u16) -> String {
    r#"
apiVersion: core.kubestash.com/v1alpha1
kind: HookTemplate
metadata: {name: notify, namespace: demo}
spec:
  usagePolicy: {allowedNamespaces: {from: Same}}
  action:
    httpPost:
      host: 127.0.0.1
      port: @PORT@
      path: /hook
      body: '{"phase": "{{ .Status.Phase }}", "target": "{{ .Target.Name }}", "namespace": "{{ .Namespace }}"}'
  executor: {type: Operator}
"#
    .replace("@PORT@", &port.to_string())
}

/// A hook entry of a session (indented for `hooks.preBackup`/`postBackup` lists).
fn hook(name: &str, template: &str, line: Option<&str>, policy: Option<&str>) -> String {
    let mut s = format!(
        "          - name: {name}\n            hookTemplate: {{name: {template}, namespace: demo}}\n"
    );
    if let Some(l) = line {
        s += &format!("            params: {{LINE: {l}}}\n");
    }
    if let Some(p) = policy {
        s += &format!("            executionPolicy: {p}\n");
    }
    s
}

/// The `hooks:` block of a session.
fn hooks_block(pre: &[String], post: &[String]) -> String {
    let mut s = String::from("      hooks:\n");
    if !pre.is_empty() {
        s += "        preBackup:\n";
        s += &pre.concat();
    }
    if !post.is_empty() {
        s += "        postBackup:\n";
        s += &post.concat();
    }
    s
}

/// An HTTP server on 127.0.0.1 that answers 200 to everything and records request bodies.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let sink = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(body) = read_request_body(stream) {
                    sink.lock().unwrap().push(body);
                }
            }
        });
        Receiver { port, bodies }
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

/// Read one HTTP/1.1 request (Content-Length or chunked body), answer 200, return the body.
fn read_request_body(stream: TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut content_length = 0usize;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().ok()?;
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(content_length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    let mut out = stream;
    let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    Some(String::from_utf8_lossy(&body).into_owned())
}

fn hook_phases(session: &Value, list: &str) -> Vec<(String, String)> {
    session
        .pointer(&format!("/status/hooks/{list}"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|h| {
                    (
                        h["name"].as_str().unwrap_or("").to_string(),
                        h["phase"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn hooks_run_in_order_with_their_execution_policy() {
    let env = Env::new();
    write_tree(&env.data, 4096);
    let lines = env.dir.path().join("hook-lines.txt");
    let receiver = Receiver::start();
    let _daemon = env.start_daemon(&[]);

    // A successful backup with a pre hook and post hooks for success, failure and always.
    let hooks = hooks_block(
        &[hook("pre", "append-line", Some("pre"), None)],
        &[
            hook(
                "post-success",
                "append-line",
                Some("post-success"),
                Some("OnSuccess"),
            ),
            hook(
                "post-failure",
                "append-line",
                Some("post-failure"),
                Some("OnFailure"),
            ),
            hook("notify", "notify", None, Some("Always")),
        ],
    );
    env.apply(&env.storage_manifests(5));
    env.apply(&append_line_template(&lines));
    env.apply(&notify_template(receiver.port));
    env.apply(&env.backup_configuration("hooked", "0 0 1 1 *", &env.data.display().to_string(), &hooks));

    // The instant first backup runs the hooks.
    let session = env.wait_sessions_done("hooked", 1).remove(0);
    assert_eq!(phase(&session), "Succeeded", "session: {session:#}");

    // Exec hooks ran in order; the OnFailure hook did not run.
    assert_eq!(read(&lines), "pre\npost-success\n");

    // The Always hook posted the Summary, rendered.
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "notify hook posts: {bodies:?}");
    let body: Value =
        serde_json::from_str(&bodies[0]).unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", bodies[0]));
    assert_eq!(body["phase"], "Succeeded");
    assert_eq!(body["target"], "hooked-app");
    assert_eq!(body["namespace"], "demo");

    // status.hooks lists the hooks that ran, each Succeeded.
    assert_eq!(
        hook_phases(&session, "preHooks"),
        vec![("pre".into(), "Succeeded".into())]
    );
    assert_eq!(
        hook_phases(&session, "postHooks"),
        vec![
            ("post-success".into(), "Succeeded".into()),
            ("notify".into(), "Succeeded".into())
        ]
    );
    for cond in [
        "PreBackupHooksExecutionSucceeded",
        "PostBackupHooksExecutionSucceeded",
    ] {
        let c = condition(&session, cond).unwrap_or_else(|| panic!("no {cond}: {session:#}"));
        assert_eq!(condition_status_message(c).0, "True", "{cond}: {c}");
    }
}

#[test]
fn failing_pre_backup_hook_fails_the_session_without_a_snapshot() {
    let env = Env::new();
    write_tree(&env.data, 1024);
    let lines = env.dir.path().join("hook-lines.txt");
    let _daemon = env.start_daemon(&[]);

    let hooks = hooks_block(
        &[hook("pre", "fail", None, None)],
        &[
            hook(
                "post-success",
                "append-line",
                Some("post-success"),
                Some("OnSuccess"),
            ),
            hook(
                "post-failure",
                "append-line",
                Some("post-failure"),
                Some("OnFailure"),
            ),
        ],
    );
    env.apply(&env.storage_manifests(5));
    env.apply(&append_line_template(&lines));
    env.apply(FAIL_TEMPLATE);
    env.apply(&env.backup_configuration("prefail", "0 0 1 1 *", &env.data.display().to_string(), &hooks));

    let session = env.wait_sessions_done("prefail", 1).remove(0);
    assert_eq!(phase(&session), "Failed", "session: {session:#}");

    // The condition carries the command's stderr.
    let c = condition(&session, "PreBackupHooksExecutionSucceeded").unwrap_or_else(|| panic!("{session:#}"));
    let (status, message) = condition_status_message(c);
    assert_eq!(status, "False", "{c}");
    assert!(
        message.contains("boom"),
        "message does not show the hook's stderr: {message}"
    );
    assert_eq!(
        hook_phases(&session, "preHooks"),
        vec![("pre".into(), "Failed".into())]
    );

    // No backup was attempted.
    assert!(
        env.list("snapshots", "demo").is_empty(),
        "snapshots: {:#?}",
        env.list("snapshots", "demo")
    );
    assert!(
        session
            .pointer("/status/snapshots")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    );

    // Only the OnFailure post hook ran.
    assert_eq!(read(&lines), "post-failure\n");
    assert_eq!(
        hook_phases(&session, "postHooks"),
        vec![("post-failure".into(), "Succeeded".into())]
    );
}

#[test]
fn failing_post_backup_hook_fails_an_otherwise_successful_session() {
    let env = Env::new();
    write_tree(&env.data, 1024);
    let _daemon = env.start_daemon(&[]);

    let hooks = hooks_block(&[], &[hook("post", "fail", None, Some("OnSuccess"))]);
    env.apply(&env.storage_manifests(5));
    env.apply(FAIL_TEMPLATE);
    env.apply(&env.backup_configuration("postfail", "0 0 1 1 *", &env.data.display().to_string(), &hooks));

    let session = env.wait_sessions_done("postfail", 1).remove(0);
    assert_eq!(phase(&session), "Failed", "session: {session:#}");

    // The data was backed up…
    let snapshots = env.list("snapshots", "demo");
    assert_eq!(snapshots.len(), 1, "{snapshots:#?}");
    assert_eq!(phase(&snapshots[0]), "Succeeded", "{:#}", snapshots[0]);

    // …but the post hook's failure fails the session.
    let c = condition(&session, "PostBackupHooksExecutionSucceeded").unwrap_or_else(|| panic!("{session:#}"));
    let (status, message) = condition_status_message(c);
    assert_eq!(status, "False", "{c}");
    assert!(message.contains("boom"), "{message}");
    assert_eq!(
        hook_phases(&session, "postHooks"),
        vec![("post".into(), "Failed".into())]
    );
}
