//! End to end: metrics of the daemon — session metrics pushed to a real Prometheus Pushgateway,
//! KubeStash state metrics at the daemon's `/metrics` — and graceful shutdown on SIGTERM.
mod lifecycle;

use std::collections::BTreeMap;
use std::time::Duration;

use kstash_testsupport::Pushgateway;
use lifecycle::*;

/// One sample of a text exposition: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse the samples of a Prometheus text exposition (comments skipped; label values without
/// escaped quotes, which is all these tests need).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once("=\"") {
                map.insert(
                    k.trim_start_matches(',').to_string(),
                    v.trim_end_matches('"').to_string(),
                );
            }
        }
        out.push(Sample {
            name: name.to_string(),
            labels: map,
            value,
        });
    }
    out
}

/// The value of the series `name` whose labels include every pair of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn scrape(url: &str) -> Vec<Sample> {
    let resp = kstash_testsupport::http::get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(resp.is_success(), "GET {url}: {} {}", resp.status, resp.text());
    parse(&resp.text())
}

#[test]
fn backup_metrics_are_pushed_and_served_and_sigterm_stops_cleanly() {
    let gateway = Pushgateway::start().expect("start a Pushgateway (Debian package prometheus-pushgateway)");
    let env = Env::new();
    write_tree(&env.data, 8192);
    let port = kstash_testsupport::ports::free_port().unwrap();
    let metrics_addr = format!("127.0.0.1:{port}");
    let mut daemon = env.start_daemon_args(&["--metrics-addr", &metrics_addr, "--pushgateway", &gateway.url]);

    env.apply(&env.storage_manifests(5));
    env.apply(&env.backup_configuration("measured", "0 0 1 1 *", &env.data.display().to_string(), ""));
    let session = env.wait_sessions_done("measured", 1).remove(0);
    assert_eq!(phase(&session), "Succeeded", "{session:#}");
    let session_name = name(&session).to_string();

    // The session's outcome reached the Pushgateway.
    let pushed = wait_some(Duration::from_secs(60), "the pushed backup metrics", || {
        let samples = scrape(&format!("{}/metrics", gateway.url));
        value(
            &samples,
            "stash_appscode_com_backupsession_success",
            &[("invoker_name", "measured")],
        )
        .map(|v| (v, samples))
    });
    assert_eq!(pushed.0, 1.0, "backupsession_success");
    assert_eq!(
        value(
            &pushed.1,
            "stash_appscode_com_backupsession_target_count_total",
            &[("invoker_name", "measured")]
        ),
        Some(1.0)
    );

    // The daemon serves the state of its objects.
    let state = wait_some(Duration::from_secs(60), "the repository snapshot count", || {
        let samples = scrape(&format!("http://{metrics_addr}/metrics"));
        value(
            &samples,
            "storage_kubestash_com_repository_snapshot_count_total",
            &[],
        )
        .filter(|v| *v >= 1.0)
        .map(|_| samples)
    });
    let bc = [("backup_invoker_name", "measured")];
    let bc_phase = |p: &str| {
        let mut labels = bc.to_vec();
        labels.push(("phase", p));
        value(&state, "core_kubestash_com_backupconfiguration_phase", &labels)
    };
    assert_eq!(bc_phase("Ready"), Some(1.0));
    assert_eq!(bc_phase("NotReady"), Some(0.0));
    assert_eq!(
        value(
            &state,
            "core_kubestash_com_backupsession_phase",
            &[("invoker_name", &session_name), ("phase", "Succeeded")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &state,
            "core_kubestash_com_backupsession_phase",
            &[("invoker_name", &session_name), ("phase", "Failed")]
        ),
        Some(0.0)
    );

    // SIGTERM stops the daemon cleanly.
    let status = daemon.terminate();
    assert!(
        status.success(),
        "daemon exit: {status:?}; log:\n{}",
        daemon.log_text()
    );
    assert!(daemon.log_text().contains("stopped"), "{}", daemon.log_text());
}
