//! The installation files under `deploy/`: the Helm chart `deploy/helm/kstash` and the image's
//! `deploy/Dockerfile`.
//!
//! The chart is rendered and linted by Helm's own engine: the `helm` CLI is not installable
//! here (no apt, PyPI, npm or crates.io package ships it), but PyPI `helm-python-sdk` bundles
//! Helm v4's Go SDK as a shared library (`libhelm_c`), which `scripts/setup` installs into the
//! venv. So templates may use anything Helm supports (`include`, `required`, `fail`, sprig), and
//! what is checked here is what `helm install` would send. Every rendered object then passes
//! `kubernetes-validate --strict` (Kubernetes' kinds) or its CRD's schema (Addons, Functions).
//!
//! No container runtime exists here, so the image is not built; its Dockerfile is checked
//! against the addons crate's drivers instead (every catalog Function's tools are installed).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kstash_testsupport::python::run_python;
use serde_json::{Value, json};
use support::{describe, is_custom, kubernetes_validate, repo_root, validate_custom_resources, yaml_docs};

const CHART: &str = "deploy/helm/kstash";
const RELEASE: &str = "kstash";
const NAMESPACE: &str = "kstash";

/// The executor ClusterRoles (KubeStash's names) and the catalog reader, which the operator
/// binds and may `bind` without holding their rights.
const EXECUTOR_ROLES: &[&str] = &[
    "kubestash-backup-job",
    "kubestash-restore-job",
    "kubestash-cron-job",
    "kubestash-storage-initializer-job",
    "kubestash-retention-policy-job",
    "kubestash-backend-job",
];
const CATALOG_READER: &str = "kstash-catalog-reader";

const RENDER: &str = r#"
import json, sys
import helm_python as helm
chart, values, name, namespace = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
try:
    with helm.Chart.load(chart) as c:
        out['manifests'] = c.render(values, name=name, namespace=namespace, is_install=True)
    out['lint'] = helm.lint(chart, values, strict=True, namespace=namespace, kube_version='1.32.0')
except helm.HelmError as e:
    out['error'] = str(e)
print(json.dumps(out))
"#;

/// One rendered object and the template it came from.
#[derive(Debug, Clone)]
struct Doc {
    template: String,
    value: Value,
}

/// Render the chart with `values` (merged over values.yaml): the objects, or Helm's error.
fn try_render(values: Value) -> Result<Vec<Doc>, String> {
    let chart = repo_root().join(CHART);
    let out = run_python(
        RENDER,
        &[chart.to_str().unwrap(), &values.to_string(), RELEASE, NAMESPACE],
        &[],
    )
    .expect("helm-python-sdk missing? run scripts/setup");
    let out: Value = serde_json::from_str(&out).unwrap();
    if let Some(e) = out["error"].as_str() {
        return Err(e.to_string());
    }
    // helm lint --strict: errors, and warnings (severity 2+), fail; INFO ("icon is recommended") not.
    let lint = &out["lint"];
    let bad: Vec<&Value> = lint["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["severity"].as_i64().unwrap() >= 2)
        .collect();
    assert!(
        bad.is_empty() && lint["errors"].as_array().is_none_or(|e| e.is_empty()),
        "helm lint with {values}: {lint:#}"
    );
    let mut docs = Vec::new();
    for (template, text) in out["manifests"].as_object().unwrap() {
        if template.ends_with("NOTES.txt") {
            continue;
        }
        for value in yaml_docs(text.as_str().unwrap()) {
            docs.push(Doc {
                template: template.clone(),
                value,
            });
        }
    }
    Ok(docs)
}

fn render(values: Value) -> Vec<Doc> {
    try_render(values.clone()).unwrap_or_else(|e| panic!("rendering with {values}: {e}"))
}

/// `kind -> count`.
fn kinds(docs: &[Doc]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for d in docs {
        *out.entry(d.value["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .map(|d| &d.value)
        .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
}

fn the<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Value {
    find(docs, kind, name).unwrap_or_else(|| panic!("no {kind}/{name} rendered"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Every rendered object passes Kubernetes' schemas or its CRD's.
fn validate(docs: &[Doc]) {
    let (custom, native): (Vec<Value>, Vec<Value>) =
        docs.iter().map(|d| d.value.clone()).partition(is_custom);
    kubernetes_validate(&native);
    if !custom.is_empty() {
        validate_custom_resources(&custom);
    }
}

fn operator_args(docs: &[Doc]) -> Vec<String> {
    let dep = the(docs, "Deployment", "kstash");
    strings(&dep["spec"]["template"]["spec"]["containers"][0]["args"])
}

/// How many objects of `kind` `catalog/*.yaml` holds (at least the 8 Addons and 16 Functions of
/// PostgreSQL, MySQL, MariaDB, Redis, ZooKeeper, Elasticsearch, workloads and PVCs).
fn catalog_count(kind: &str) -> usize {
    let n = yaml_files(&repo_root().join("catalog"))
        .iter()
        .flat_map(|f| yaml_docs(&std::fs::read_to_string(f).unwrap()))
        .filter(|d| d["kind"] == kind)
        .count();
    assert!(
        n >= if kind == "Function" { 16 } else { 8 },
        "{n} {kind}s in catalog/"
    );
    n
}

fn app_version() -> String {
    let chart: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo_root().join(CHART).join("Chart.yaml")).unwrap(),
    )
    .unwrap();
    chart["appVersion"].as_str().unwrap().to_string()
}

#[test]
fn default_values_render_the_operator_rbac_and_catalog_and_pass_kubernetes_validate() {
    let docs = render(json!({}));
    let expected: BTreeMap<String, usize> = [
        ("Addon", catalog_count("Addon")),
        ("ClusterRole", 1 + EXECUTOR_ROLES.len() + 1),
        ("ClusterRoleBinding", 1),
        ("Deployment", 1),
        ("Function", catalog_count("Function")),
        ("Role", 1),
        ("RoleBinding", 1),
        ("Service", 1),
        ("ServiceAccount", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(kinds(&docs), expected);
    // Namespaced objects go to the release namespace, cluster-scoped ones have none.
    for d in &docs {
        let cluster_scoped = matches!(
            d.value["kind"].as_str().unwrap(),
            "ClusterRole" | "ClusterRoleBinding" | "Addon" | "Function"
        );
        let ns = &d.value["metadata"]["namespace"];
        if cluster_scoped {
            assert!(ns.is_null(), "{} has a namespace", describe(&d.value));
        } else {
            assert_eq!(ns, NAMESPACE, "{} in {}", describe(&d.value), d.template);
        }
    }
    validate(&docs);
}

#[test]
fn deployment_runs_the_operator_command_line_with_probes_and_requests() {
    let docs = render(json!({}));
    let image = format!("ghcr.io/kstash/kstash:{}", app_version());
    assert_eq!(
        operator_args(&docs),
        [
            "operator",
            "--leader-elect=true",
            "--health-addr=0.0.0.0:8081",
            "--metrics-addr=0.0.0.0:9464",
            &format!("--image={image}"),
            "--service-account=kstash",
        ]
    );
    let pod = &the(&docs, "Deployment", "kstash")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "kstash");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], image.as_str());
    assert!(
        c["command"].is_null(),
        "the image's entrypoint (tini -- kstash) runs the args"
    );
    let env: BTreeMap<&str, &Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    assert_eq!(
        env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(env["KSTASH_LOG"]["value"], "info");
    assert_eq!(env.len(), 3);
    // Probes on the health port, 8081 as in --health-addr.
    let ports: BTreeMap<&str, i64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["containerPort"].as_i64().unwrap()))
        .collect();
    assert_eq!(ports, BTreeMap::from([("health", 8081), ("metrics", 9464)]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "health");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "health");
    assert_eq!(c["resources"]["requests"]["cpu"], "100m");
    assert_eq!(c["resources"]["requests"]["memory"], "128Mi");
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    // Hardened: non-root, read-only root with a writable /tmp, no capabilities.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["volumeMounts"], json!([{"name": "tmp", "mountPath": "/tmp"}]));
    assert_eq!(pod["volumes"], json!([{"name": "tmp", "emptyDir": {}}]));
    // The metrics Service selects the operator pod.
    let svc = the(&docs, "Service", "kstash-metrics");
    let labels = &the(&docs, "Deployment", "kstash")["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "selector {k}");
    }
    assert_eq!(svc["spec"]["ports"][0]["port"], 9464);
}

#[test]
fn overrides_change_exactly_what_they_name_and_still_validate() {
    let mut all = Vec::new();

    // Leader election off: the flag says so and the Lease Role is gone.
    let docs = render(json!({"leaderElection": {"enabled": false}}));
    assert!(operator_args(&docs).contains(&"--leader-elect=false".to_string()));
    assert!(!kinds(&docs).contains_key("Role") && !kinds(&docs).contains_key("RoleBinding"));
    all.extend(docs);

    // A Pushgateway, a log level, an image tag, two replicas, scheduling and pull secrets.
    let docs = render(json!({
        "pushgateway": {"url": "http://prometheus-pushgateway.monitoring.svc:9091"},
        "logLevel": "debug,kstash_kube=trace",
        "image": {"tag": "0.2.0-rc.1", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "replicaCount": 2,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "backup", "effect": "NoSchedule"}],
        "metrics": {"service": {"annotations": {"prometheus.io/scrape": "true"}}},
    }));
    let args = operator_args(&docs);
    assert_eq!(
        args.last().unwrap(),
        "--pushgateway=http://prometheus-pushgateway.monitoring.svc:9091"
    );
    assert!(args.contains(&"--image=ghcr.io/kstash/kstash:0.2.0-rc.1".to_string()));
    let dep = the(&docs, "Deployment", "kstash");
    assert_eq!(dep["spec"]["replicas"], 2);
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], "ghcr.io/kstash/kstash:0.2.0-rc.1");
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["tolerations"][0]["value"], "backup");
    let log = pod["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "KSTASH_LOG")
        .unwrap();
    assert_eq!(log["value"], "debug,kstash_kube=trace");
    // The catalog's Functions run the same image as the operator.
    let functions: Vec<&Doc> = docs.iter().filter(|d| d.value["kind"] == "Function").collect();
    assert_eq!(functions.len(), catalog_count("Function"));
    for f in functions {
        assert_eq!(
            f.value["spec"]["image"],
            "ghcr.io/kstash/kstash:0.2.0-rc.1",
            "{}",
            describe(&f.value)
        );
    }
    all.extend(docs);

    // No catalog, no metrics Service.
    let docs = render(json!({"installCatalog": false, "metrics": {"service": {"enabled": false}}}));
    let k = kinds(&docs);
    assert!(
        !k.contains_key("Addon") && !k.contains_key("Function") && !k.contains_key("Service"),
        "{k:?}"
    );
    all.extend(docs);

    // An existing ServiceAccount: not created, but named by the flag and every binding.
    let docs = render(json!({"serviceAccount": {"create": false, "name": "backup-operator"}}));
    assert!(!kinds(&docs).contains_key("ServiceAccount"));
    assert!(operator_args(&docs).contains(&"--service-account=backup-operator".to_string()));
    assert_eq!(
        the(&docs, "Deployment", "kstash")["spec"]["template"]["spec"]["serviceAccountName"],
        "backup-operator"
    );
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        for d in docs.iter().filter(|d| d.value["kind"] == kind) {
            assert_eq!(
                d.value["subjects"],
                json!([{"kind": "ServiceAccount", "name": "backup-operator", "namespace": NAMESPACE}])
            );
        }
    }
    all.extend(docs);

    // The chart's own and the overridden renders, all at once.
    validate(&all);
}

#[test]
fn values_that_would_break_the_operator_are_refused() {
    let e = try_render(json!({"replicaCount": 2, "leaderElection": {"enabled": false}})).unwrap_err();
    assert!(
        e.contains("replicaCount > 1 needs leaderElection.enabled=true"),
        "{e}"
    );
    let e = try_render(json!({"serviceAccount": {"create": false}})).unwrap_err();
    assert!(
        e.contains("serviceAccount.name must name an existing ServiceAccount"),
        "{e}"
    );
}

/// `(group, resource) -> verbs` of a role's rules (resourceNames-scoped rules under
/// `resource#name`).
fn grants(role: &Value) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().unwrap() {
        let names = rule["resourceNames"]
            .as_array()
            .map(|_| strings(&rule["resourceNames"]));
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                let keys: Vec<String> = match &names {
                    Some(ns) => ns.iter().map(|n| format!("{r}#{n}")).collect(),
                    None => vec![r.clone()],
                };
                for key in keys {
                    out.entry((g.clone(), key))
                        .or_default()
                        .extend(strings(&rule["verbs"]));
                }
            }
        }
    }
    out
}

fn verbs(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(ToString::to_string).collect()
}

/// Every `- apiGroups:` rule of a template is directly preceded by a `#` comment line saying
/// why the role needs it.
fn assert_rules_commented(template: &str) {
    let text = std::fs::read_to_string(repo_root().join(CHART).join("templates").join(template)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut rules = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("- apiGroups:") {
            rules += 1;
            assert!(
                lines[i - 1].trim_start().starts_with('#'),
                "{template}:{}: rule without a comment saying why it is needed",
                i + 1
            );
        }
    }
    assert!(rules > 5, "{template}: {rules} rules");
}

fn assert_no_wildcards(role: &Value) {
    for rule in role["rules"].as_array().unwrap() {
        for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
            if rule[field].is_array() {
                assert!(
                    !strings(&rule[field]).iter().any(|s| s.contains('*')),
                    "{}: wildcard in {field}: {rule}",
                    describe(role)
                );
            }
        }
        assert!(rule["nonResourceURLs"].is_null(), "{}: {rule}", describe(role));
    }
}

#[test]
fn operator_cluster_role_is_minimal_and_documented() {
    let docs = render(json!({}));
    let role = the(&docs, "ClusterRole", "kstash");
    assert_no_wildcards(role);
    assert_rules_commented("clusterrole.yaml");
    let g = grants(role);
    let get = |group: &str, resource: &str| -> BTreeSet<String> {
        g.get(&(group.to_string(), resource.to_string()))
            .cloned()
            .unwrap_or_default()
    };
    let all = verbs(&["get", "list", "watch", "create", "update", "patch", "delete"]);
    // Every kstash resource of the storage and core groups, with its status and finalizers.
    for crd in crd_files() {
        let c: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&crd).unwrap()).unwrap();
        let group = c["spec"]["group"].as_str().unwrap();
        let plural = c["spec"]["names"]["plural"].as_str().unwrap();
        match group {
            "storage.kubestash.com" | "core.kubestash.com" => {
                assert_eq!(get(group, plural), all, "{group} {plural}");
                if !c["spec"]["versions"][0]["subresources"]["status"].is_null() {
                    assert_eq!(
                        get(group, &format!("{plural}/status")),
                        verbs(&["get", "update", "patch"])
                    );
                    assert_eq!(
                        get(group, &format!("{plural}/finalizers")),
                        verbs(&["get", "update", "patch"])
                    );
                }
            }
            "addons.kubestash.com" => assert_eq!(
                get(group, plural),
                verbs(&["get", "list", "watch", "create", "update", "patch"]),
                "{plural}"
            ),
            "appcatalog.appscode.com" => assert_eq!(get(group, plural), verbs(&["get", "list", "watch"])),
            other => panic!("unexpected group {other}"),
        }
    }
    // Secrets: read only. Leases: not cluster-wide (a Role in the release namespace).
    assert_eq!(get("", "secrets"), verbs(&["get", "list", "watch"]));
    assert!(get("coordination.k8s.io", "leases").is_empty());
    assert_eq!(get("", "pods/exec"), verbs(&["create"]));
    assert_eq!(get("batch", "jobs"), all);
    assert_eq!(get("batch", "cronjobs"), all);
    assert_eq!(get("rbac.authorization.k8s.io", "rolebindings"), all);
    assert_eq!(
        get("rbac.authorization.k8s.io", "clusterrolebindings"),
        verbs(&["get", "list", "create", "update", "patch", "delete"])
    );
    // `bind` only on the executor roles, by name; no other RBAC rights (no escalate, no roles).
    let bindable: BTreeSet<String> = g
        .iter()
        .filter(|((grp, r), _)| grp == "rbac.authorization.k8s.io" && r.starts_with("clusterroles#"))
        .map(|((_, r), v)| {
            assert_eq!(v, &verbs(&["bind"]), "{r}");
            r.trim_start_matches("clusterroles#").to_string()
        })
        .collect();
    let mut expected: BTreeSet<String> = EXECUTOR_ROLES.iter().map(ToString::to_string).collect();
    expected.insert(CATALOG_READER.to_string());
    assert_eq!(bindable, expected);
    for ((grp, r), v) in &g {
        assert!(
            !v.contains("escalate") && !v.contains("impersonate"),
            "{grp} {r}: {v:?}"
        );
        if grp == "rbac.authorization.k8s.io" {
            assert!(
                ["rolebindings", "clusterrolebindings"].contains(&r.as_str())
                    || r.starts_with("clusterroles#"),
                "{r}"
            );
        }
    }
    // The exact set of (group, resource) pairs: a new one must be added here on purpose.
    let granted: BTreeSet<String> = g.keys().map(|(grp, r)| format!("{grp}:{r}")).collect();
    let extra: Vec<&String> = granted
        .iter()
        .filter(|k| {
            !k.starts_with("storage.kubestash.com:")
                && !k.starts_with("core.kubestash.com:")
                && !k.starts_with("rbac.authorization.k8s.io:clusterroles#")
        })
        .collect();
    assert_eq!(
        extra,
        [
            ":events",
            ":namespaces",
            ":nodes",
            ":persistentvolumeclaims",
            ":pods",
            ":pods/exec",
            ":secrets",
            ":serviceaccounts",
            "addons.kubestash.com:addons",
            "addons.kubestash.com:functions",
            "apiextensions.k8s.io:customresourcedefinitions",
            "appcatalog.appscode.com:appbindings",
            "apps:daemonsets",
            "apps:deployments",
            "apps:replicasets",
            "apps:statefulsets",
            "batch:cronjobs",
            "batch:jobs",
            "events.k8s.io:events",
            "rbac.authorization.k8s.io:clusterrolebindings",
            "rbac.authorization.k8s.io:rolebindings",
        ]
    );
    // Bound to the operator's ServiceAccount.
    let crb = the(&docs, "ClusterRoleBinding", "kstash");
    assert_eq!(crb["roleRef"]["name"], "kstash");
    assert_eq!(
        crb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "kstash", "namespace": NAMESPACE}])
    );
    // Leader election: Leases in the release namespace only.
    let lease = the(&docs, "Role", "kstash-leader-election");
    assert_eq!(
        grants(lease),
        BTreeMap::from([(
            ("coordination.k8s.io".to_string(), "leases".to_string()),
            verbs(&["get", "create", "update"])
        )])
    );
    assert_eq!(
        the(&docs, "RoleBinding", "kstash-leader-election")["roleRef"]["name"],
        "kstash-leader-election"
    );
}

#[test]
fn executor_cluster_roles_exist_with_least_privilege() {
    let docs = render(json!({}));
    assert_rules_commented("executor-clusterroles.yaml");
    let read_only_secrets = verbs(&["get"]);
    for name in EXECUTOR_ROLES.iter().copied().chain([CATALOG_READER]) {
        let role = the(&docs, "ClusterRole", name);
        assert_no_wildcards(role);
        for ((grp, r), v) in grants(role) {
            let writes: BTreeSet<&str> = v
                .iter()
                .map(String::as_str)
                .filter(|v| !["get", "list", "watch"].contains(v))
                .collect();
            // What an executor may change: events, the status it owns, Snapshots (the backup
            // records restic ids; retention deletes stale ones), BackupSessions (the trigger).
            let allowed = r == "events"
                || r.ends_with("/status")
                || (grp == "storage.kubestash.com" && r == "snapshots")
                || (grp == "core.kubestash.com" && r == "backupsessions" && name == "kubestash-cron-job");
            assert!(writes.is_empty() || allowed, "{name}: {grp} {r} {v:?}");
            if r == "secrets" {
                assert_eq!(v, read_only_secrets, "{name}: secrets are read by name only");
            }
            // Backup and restore executors read the pod a conflicting repository lock names
            // (by name, to remove a killed executor's lock); no other pod rights.
            let lock_holder = grp.is_empty()
                && r == "pods"
                && ["kubestash-backup-job", "kubestash-restore-job"].contains(&name);
            if lock_holder {
                assert_eq!(v, verbs(&["get"]), "{name}: pods are read by name only");
            }
            assert!(
                !grp.starts_with("rbac") && (!r.starts_with("pods") || lock_holder),
                "{name}: {grp} {r}"
            );
        }
    }
    let g = |name: &str, grp: &str, r: &str| {
        grants(the(&docs, "ClusterRole", name))
            .get(&(grp.to_string(), r.to_string()))
            .cloned()
            .unwrap_or_default()
    };
    // What `kstash exec backup` does through the API.
    let backup = "kubestash-backup-job";
    for r in ["backupsessions", "backupconfigurations", "hooktemplates"] {
        assert_eq!(g(backup, "core.kubestash.com", r), verbs(&["get"]), "{r}");
    }
    for r in ["repositories", "backupstorages", "retentionpolicies"] {
        assert_eq!(g(backup, "storage.kubestash.com", r), verbs(&["get"]), "{r}");
    }
    assert_eq!(
        g(backup, "storage.kubestash.com", "snapshots"),
        verbs(&["get", "update", "patch"])
    );
    assert_eq!(
        g(backup, "storage.kubestash.com", "snapshots/status"),
        verbs(&["get", "update", "patch"])
    );
    assert_eq!(
        g(backup, "appcatalog.appscode.com", "appbindings"),
        verbs(&["get"])
    );
    assert_eq!(g(backup, "", "secrets"), verbs(&["get"]));
    assert_eq!(g(backup, "", "events"), verbs(&["create", "patch"]));
    // `kstash exec restore`.
    let restore = "kubestash-restore-job";
    assert_eq!(
        g(restore, "core.kubestash.com", "restoresessions"),
        verbs(&["get"])
    );
    assert_eq!(
        g(restore, "core.kubestash.com", "restoresessions/status"),
        verbs(&["get", "update", "patch"])
    );
    for r in ["snapshots", "repositories", "backupstorages"] {
        assert_eq!(g(restore, "storage.kubestash.com", r), verbs(&["get"]), "{r}");
    }
    assert!(g(restore, "storage.kubestash.com", "snapshots/status").is_empty());
    assert_eq!(
        g(restore, "appcatalog.appscode.com", "appbindings"),
        verbs(&["get"])
    );
    // `kstash trigger`.
    let cron = "kubestash-cron-job";
    assert_eq!(
        g(cron, "core.kubestash.com", "backupconfigurations"),
        verbs(&["get"])
    );
    assert!(g(cron, "core.kubestash.com", "backupsessions").contains("create"));
    assert!(g(cron, "", "secrets").is_empty(), "the trigger needs no Secret");
    // The catalog is read, never written, by executors.
    assert_eq!(
        grants(the(&docs, "ClusterRole", CATALOG_READER)),
        BTreeMap::from([
            (
                ("addons.kubestash.com".to_string(), "addons".to_string()),
                verbs(&["get", "list"])
            ),
            (
                ("addons.kubestash.com".to_string(), "functions".to_string()),
                verbs(&["get", "list"])
            ),
        ])
    );
}

fn crd_files() -> Vec<std::path::PathBuf> {
    yaml_files(&repo_root().join("deploy/crds"))
}

fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Where the chart keeps the CRDs: a subchart, so that they stay out of the release Secret.
const CHART_CRDS: &str = "deploy/helm/kstash/charts/kstash-crds/crds";

const CHART_FACTS: &str = r#"
import base64, gzip, json, sys
import helm_python as helm
chart = sys.argv[1]
kubeconfig = sys.argv[2]
with helm.Chart.load(chart) as c:
    crds = sorted([d['filename'], d['data'] if isinstance(d['data'], str) else d['data'].decode()] for d in c.crds)
    enc = lambda fs: [{'name': f['name'], 'data': base64.b64encode(f['data'] if isinstance(f['data'], bytes) else f['data'].encode()).decode()} for f in fs]
    top = {'metadata': c.metadata, 'templates': enc(c.templates), 'values': c.values, 'files': enc(c.files)}
    top_files = [f['name'] for f in c.files]
with helm.Config(kubeconfig_path=kubeconfig, namespace='kstash', storage_driver='memory') as cfg:
    r = cfg.install(chart, 'kstash', dry_run='client')
release = {'name': 'kstash', 'chart': top, 'config': {}, 'manifest': r['manifest'], 'info': {'notes': r['notes']}}
size = len(base64.b64encode(gzip.compress(json.dumps(release).encode(), 9)))
print(json.dumps({'crds': crds, 'top_files': top_files, 'release_secret_bytes': size}))
"#;

/// What `helm install` would do with the chart beyond rendering: the CRDs it installs (Helm's
/// `CRDObjects`: `crds/` of the chart and its subcharts), the files of the top chart, and the
/// size of the release Secret.
fn chart_facts() -> Value {
    let dir = tempfile::tempdir().unwrap();
    // A client-side dry run needs a kubeconfig but never contacts the server.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n\
         current-context: c\n",
    )
    .unwrap();
    let out = run_python(
        CHART_FACTS,
        &[
            repo_root().join(CHART).to_str().unwrap(),
            kubeconfig.to_str().unwrap(),
        ],
        &[],
    )
    .expect("helm-python-sdk missing? run scripts/setup");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn chart_crds_are_the_generated_crds() {
    let generated = crd_files();
    let chart = yaml_files(&repo_root().join(CHART_CRDS));
    let names = |v: &[std::path::PathBuf]| -> Vec<String> {
        v.iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let fix = format!("fix: cp deploy/crds/*.yaml {CHART_CRDS}/");
    assert_eq!(names(&chart), names(&generated), "{fix}");
    assert_eq!(generated.len(), 14);
    for (a, b) in generated.iter().zip(&chart) {
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{} differs from {}; {fix}",
            b.display(),
            a.display()
        );
    }
    // And Helm installs exactly those.
    let facts = chart_facts();
    // Keyed by file name (Helm names them by their path inside the chart tree).
    let installed: Vec<(String, String)> = facts["crds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let path = c[0].as_str().unwrap();
            let name = path.rsplit('/').next().unwrap().to_string();
            (name, c[1].as_str().unwrap().to_string())
        })
        .collect();
    let expected: Vec<(String, String)> = generated
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    assert_eq!(installed.len(), expected.len());
    for (i, e) in installed.iter().zip(&expected) {
        assert!(i == e, "Helm would install {} differently from deploy/crds", i.0);
    }
}

#[test]
fn release_secret_stays_far_below_the_one_mib_limit() {
    // Helm stores the release (the top chart's files, not its subcharts', plus the rendered
    // manifest) gzipped and base64-encoded in a Secret of at most 1 MiB. With the 4.7 MB of CRDs
    // in the top chart that is about 1.5 MB and `helm install` fails; hence the subchart. The
    // size is computed as Helm encodes a release, from the chart Helm loaded.
    let facts = chart_facts();
    let top_files = strings(&facts["top_files"]);
    assert!(
        !top_files.iter().any(|f| f.starts_with("crds/")),
        "CRDs in the top chart: {top_files:?}"
    );
    let size = facts["release_secret_bytes"].as_u64().unwrap();
    assert!(size < 256 * 1024, "release Secret of about {size} bytes");
}

#[test]
fn chart_catalog_is_catalog_dir() {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/gen-chart-catalog"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The same objects, semantically: every Addon and Function of catalog/*.yaml, the Functions'
    // image replaced by the chart's.
    let docs = render(json!({"image": {"repository": "registry.example/kstash", "tag": "t1"}}));
    let rendered: BTreeMap<String, Value> = docs
        .iter()
        .filter(|d| d.template.ends_with("templates/catalog.yaml"))
        .map(|d| (describe(&d.value), d.value.clone()))
        .collect();
    let mut expected = BTreeMap::new();
    for f in yaml_files(&repo_root().join("catalog")) {
        for mut doc in yaml_docs(&std::fs::read_to_string(&f).unwrap()) {
            if doc["kind"] == "Function" {
                doc["spec"]["image"] = json!("registry.example/kstash:t1");
            }
            expected.insert(describe(&doc), doc);
        }
    }
    assert_eq!(expected.len(), catalog_count("Addon") + catalog_count("Function"));
    assert_eq!(
        rendered.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "run scripts/gen-chart-catalog"
    );
    for (k, v) in &expected {
        assert_eq!(&rendered[k], v, "{k}: run scripts/gen-chart-catalog");
    }
}

// --- Dockerfile ------------------------------------------------------------------------------

/// What a driver of the addons crate needs in the image.
struct Driver {
    /// `DriverKind::<name>` in the addons crate.
    name: &'static str,
    /// The sources that implement it, under `crates/kstash-addons/src/` (files or directories).
    sources: &'static [&'static str],
    /// The external programs it runs (none: native).
    tools: &'static [&'static str],
    /// The Debian packages that carry them.
    packages: &'static [&'static str],
}

/// Every driver of the addons crate. A driver added there fails the test until it is listed here.
const DRIVERS: &[Driver] = &[
    Driver {
        name: "Volume",
        sources: &["volume.rs"],
        tools: &[],
        packages: &[],
    },
    Driver {
        name: "Postgres",
        sources: &["postgres.rs"],
        tools: &["pg_dump", "pg_dumpall", "psql"],
        packages: &[
            "postgresql-client-14",
            "postgresql-client-15",
            "postgresql-client-16",
            "postgresql-client-17",
            "postgresql-client-18",
        ],
    },
    Driver {
        name: "MySql",
        sources: &["mysql.rs"],
        tools: &[
            "mysqldump",
            "mariadb-dump",
            "mysql",
            "mariadb",
            "mysqladmin",
            "mariadb-admin",
        ],
        packages: &["mariadb-client"],
    },
    Driver {
        name: "Redis",
        sources: &["redis.rs"],
        tools: &[],
        packages: &[],
    },
    Driver {
        name: "ZooKeeper",
        sources: &["zookeeper.rs"],
        tools: &[],
        packages: &[],
    },
    Driver {
        name: "Elasticsearch",
        sources: &["elasticsearch"],
        tools: &[],
        packages: &[],
    },
    Driver {
        name: "Manifest",
        sources: &["manifest.rs"],
        tools: &[],
        packages: &[],
    },
];

fn addons_src() -> std::path::PathBuf {
    repo_root().join("crates/kstash-addons/src")
}

/// `function -> driver` from the addons crate's `BACKUP_FUNCTIONS` / `RESTORE_FUNCTIONS` tables.
fn driver_functions() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(addons_src().join("task.rs")).unwrap();
    let mut out = BTreeMap::new();
    for table in ["const BACKUP_FUNCTIONS", "const RESTORE_FUNCTIONS"] {
        let start = text
            .find(table)
            .unwrap_or_else(|| panic!("task.rs has no {table}"));
        let body = &text[start..start + text[start..].find("];").unwrap()];
        for line in body.lines().map(str::trim).filter(|l| l.starts_with("(\"")) {
            // ("postgres-backup", DriverKind::Postgres),
            let (name, rest) = line[2..].split_once('"').unwrap();
            let driver = rest
                .split("DriverKind::")
                .nth(1)
                .unwrap()
                .trim_end_matches([')', ',']);
            out.insert(name.to_string(), driver.to_string());
        }
    }
    assert!(out.len() >= 18, "parsed {out:?} from task.rs");
    out
}

/// The text of a driver's sources (a file, or every file of a directory).
fn sources(rel: &str) -> String {
    let path = addons_src().join(rel);
    if path.is_dir() {
        yaml_or_rs(&path)
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    } else {
        std::fs::read_to_string(path).unwrap()
    }
}

fn yaml_or_rs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    v.sort();
    v
}

/// Whether source text starts external programs (directly, or through tool.rs's `Producer` /
/// `Consumer`).
fn spawns_processes(text: &str) -> bool {
    ["Command::new", "process::Command", "Producer", "Consumer"]
        .iter()
        .any(|s| text.contains(s))
}

/// The runtime stage of the Dockerfile, continuation lines joined.
fn runtime_stage() -> String {
    let text = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).unwrap();
    let start = text
        .find("FROM debian:bookworm-slim AS runtime")
        .expect("runtime stage FROM debian:bookworm-slim AS runtime");
    text[start..].replace("\\\n", " ")
}

/// Packages the runtime stage installs with `apt-get install`.
fn installed_packages() -> BTreeSet<String> {
    let stage = runtime_stage();
    let mut out = BTreeSet::new();
    for line in stage.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for cmd in line.split([';', '&']) {
            if let Some((_, rest)) = cmd.split_once("apt-get install") {
                out.extend(
                    rest.split_whitespace()
                        .filter(|t| !t.starts_with('-'))
                        .map(ToString::to_string),
                );
            }
        }
    }
    out
}

#[test]
fn runtime_image_installs_the_tools_of_every_catalog_function() {
    let functions = driver_functions();
    let drivers: BTreeMap<&str, &Driver> = DRIVERS.iter().map(|d| (d.name, d)).collect();
    // Every driver of the addons crate is described above.
    for (f, d) in &functions {
        assert!(
            drivers.contains_key(d.as_str()),
            "function {f} has driver {d}, unknown to this test: add it to DRIVERS with its tools and packages"
        );
    }
    // Every Function of the catalog has a driver.
    let mut catalog_functions = BTreeSet::new();
    for f in yaml_files(&repo_root().join("catalog")) {
        for doc in yaml_docs(&std::fs::read_to_string(&f).unwrap()) {
            if doc["kind"] == "Function" {
                let name = doc["metadata"]["name"].as_str().unwrap().to_string();
                assert!(
                    functions.contains_key(&name),
                    "catalog Function {name} has no driver in kstash-addons"
                );
                catalog_functions.insert(name);
            }
        }
    }
    assert_eq!(catalog_functions.len(), catalog_count("Function"));
    // The tables above are right: native drivers spawn nothing, tool drivers name their tools.
    let mut driver_files = BTreeSet::new();
    for d in DRIVERS {
        let (driver, srcs) = (d.name, d.sources);
        let text: String = srcs.iter().map(|s| sources(s)).collect();
        driver_files.extend(srcs.iter().map(|s| s.to_string()));
        if d.tools.is_empty() {
            assert!(
                !spawns_processes(&text),
                "{driver} runs a process: list its tools in DRIVERS"
            );
        }
        for t in d.tools {
            assert!(
                text.contains(&format!("\"{t}\"")),
                "{driver}: {srcs:?} never names {t}"
            );
        }
    }
    // No other source of the drivers or the job programs starts tools (tool.rs and stream.rs are
    // the generic plumbing the tool drivers use).
    let job_programs = repo_root().join("crates/kstash-exec/src");
    for p in yaml_or_rs(&addons_src())
        .into_iter()
        .chain(yaml_or_rs(&job_programs))
    {
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        // The verifier job runs the user's own script (a BackupVerifier's spec.script.location,
        // mounted from the user's ConfigMap): not a tool the image must carry.
        let user_script = p.starts_with(&job_programs) && file == "verify.rs";
        if !["tool.rs", "stream.rs"].contains(&file.as_str()) && !driver_files.contains(&file) && !user_script
        {
            assert!(
                !spawns_processes(&std::fs::read_to_string(&p).unwrap()),
                "{file} runs a process: which tool, and is it in the image?"
            );
        }
    }
    // The PostgreSQL driver looks for the versions where Debian installs them side by side.
    assert!(sources("postgres.rs").contains("\"/usr/lib/postgresql\""));
    // The image installs every package of every driver a catalog Function uses.
    let installed = installed_packages();
    for f in &catalog_functions {
        for p in drivers[functions[f].as_str()].packages {
            assert!(installed.contains(*p), "{f} needs {p}; installed: {installed:?}");
        }
    }
    for p in ["ca-certificates", "tini"] {
        assert!(installed.contains(p), "{p}; installed: {installed:?}");
    }
}

#[test]
fn dockerfile_builds_with_the_pinned_toolchain_and_runs_as_non_root() {
    let text = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).unwrap();
    let toolchain = std::fs::read_to_string(repo_root().join("rust-toolchain.toml")).unwrap();
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        text.contains(&format!("FROM rust:{channel}-bookworm AS builder")),
        "the builder image must be rust:{channel}-bookworm (rust-toolchain.toml)"
    );
    assert!(text.contains(&format!("RUSTUP_TOOLCHAIN={channel}")));
    let cargo = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let rust_version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        channel.starts_with(rust_version),
        "{channel} vs rust-version {rust_version}"
    );
    assert!(text.contains("cargo build --release --locked -p kstash"));
    let runtime = runtime_stage();
    assert!(runtime.contains("COPY --from=builder /usr/local/bin/kstash /usr/local/bin/kstash"));
    assert!(runtime.contains("USER 65532:65532"));
    assert!(runtime.contains(r#"ENTRYPOINT ["tini", "--", "kstash"]"#));
    // The build context keeps what `cargo build -p kstash` reads (catalog/ is include_str!'d).
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    let ignored: BTreeSet<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in [
        "crates",
        "catalog",
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
    ] {
        assert!(
            !ignored.iter().any(|i| i.trim_matches('/') == needed || *i == "*"),
            ".dockerignore drops {needed}"
        );
    }
    assert!(ignored.contains("target") && ignored.contains(".git"));
}
