//! The examples under `examples/` must all be valid (together, as one store would hold them),
//! every manifest of the invalid corpus under `tests/invalid/` (what KubeStash refuses too) must be
//! rejected at the field its header names, and only there, and every manifest of `tests/warned/`
//! (what KubeStash accepts and kstash cannot use as written) admitted with warnings there only.

use std::path::{Path, PathBuf};

use kstash_api::Object;
use kstash_api::admission::admit;
use kstash_api::manifest::{parse_documents, sort_for_apply};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml")
            && !p.to_string_lossy().ends_with(".k8s.yaml")
        {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn every_example_is_valid_and_has_no_unknown_fields() {
    let mut docs = Vec::new();
    for file in yaml_files(&repo_root().join("examples")) {
        let text = std::fs::read_to_string(&file).unwrap();
        docs.extend(parse_documents(&file.display().to_string(), &text).unwrap());
    }
    assert!(
        docs.len() >= 30,
        "expected the examples to cover every kind, found {} documents",
        docs.len()
    );
    sort_for_apply(&mut docs);
    let mut stored: Vec<Object> = Vec::new();
    let mut problems = Vec::new();
    for doc in &docs {
        match admit(doc, &stored, None) {
            Ok(admitted) => {
                problems.extend(admitted.warnings.iter().map(ToString::to_string));
                stored.push(admitted.object);
            }
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
    assert!(
        problems.is_empty(),
        "examples have problems:\n{}",
        problems.join("\n")
    );
    let kinds: std::collections::BTreeSet<_> = stored.iter().map(|o| o.resource_type().kind).collect();
    for kind in kstash_api::meta::ALL
        .iter()
        .map(|t| t.kind)
        .filter(|k| *k != "Namespace")
        // Built-in workloads: their examples are `*.k8s.yaml` (checked by kubernetes_schemas.rs).
        .filter(|k| kstash_api::meta::WORKLOADS.iter().all(|w| w.kind != *k))
    {
        assert!(kinds.contains(kind), "no example of {kind}");
    }
}

struct Case {
    file: PathBuf,
    rule: String,
    expect_path: String,
    update: bool,
    docs: Vec<serde_json::Value>,
}

fn read_case(file: PathBuf) -> Case {
    let text = std::fs::read_to_string(&file).unwrap();
    let header = |key: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("# {key}:"))
                    .map(|v| v.split(" #").next().unwrap().trim().to_string())
            })
            .unwrap_or_else(|| panic!("{} has no '# {key}:' header", file.display()))
    };
    Case {
        rule: header("rule"),
        expect_path: header("expect-path"),
        update: header("mode") == "update",
        docs: parse_documents(&file.display().to_string(), &text).unwrap(),
        file,
    }
}

/// Admit the setup documents of `case` (the store, and the old object of an update), then the
/// last one.
fn admit_case(case: &Case) -> Result<kstash_api::admission::Admitted, Vec<kstash_api::object::FieldError>> {
    let (setup, subject) = case.docs.split_at(case.docs.len() - 1);
    let mut stored = Vec::new();
    let mut old = None;
    for (i, doc) in setup.iter().enumerate() {
        let obj = admit(doc, &stored, None)
            .unwrap_or_else(|e| panic!("{}: setup document {i} is invalid: {e:?}", case.file.display()))
            .object;
        if case.update && i == setup.len() - 1 {
            old = Some(obj);
        } else {
            stored.push(obj);
        }
    }
    admit(&subject[0], &stored, old.as_ref())
}

#[test]
fn every_invalid_manifest_is_rejected_at_the_named_field() {
    let files = yaml_files(&repo_root().join("crates/kstash-api/tests/invalid"));
    assert!(
        files.len() >= 40,
        "the corpus must hold at least 40 cases, has {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in files {
        let case = read_case(file);
        match admit_case(&case) {
            Ok(_) => failures.push(format!(
                "{}: accepted, but should break rule: {}",
                case.file.display(),
                case.rule
            )),
            Err(errors) => {
                let off_target: Vec<_> = errors.iter().filter(|e| e.path != case.expect_path).collect();
                if off_target.len() == errors.len() || !off_target.is_empty() {
                    failures.push(format!(
                        "{}: expected only {} ({}), got:\n    {}",
                        case.file.display(),
                        case.expect_path,
                        case.rule,
                        errors
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("\n    ")
                    ));
                }
                for e in &errors {
                    assert!(
                        e.to_string().contains(&e.path) && !e.fix.is_empty(),
                        "error without path or fix: {e:?}"
                    );
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_warned_manifest_is_admitted_with_warnings_at_the_named_field_only() {
    let files = yaml_files(&repo_root().join("crates/kstash-api/tests/warned"));
    assert!(files.len() >= 15, "the corpus holds {} cases", files.len());
    let mut failures = Vec::new();
    for file in files {
        let case = read_case(file);
        match admit_case(&case) {
            Err(errors) => failures.push(format!(
                "{}: refused, but KubeStash accepts it ({}):\n    {}",
                case.file.display(),
                case.rule,
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n    ")
            )),
            Ok(a) => {
                if a.warnings.is_empty() || a.warnings.iter().any(|w| w.path != case.expect_path) {
                    failures.push(format!(
                        "{}: expected warnings at {} only ({}), got:\n    {}",
                        case.file.display(),
                        case.expect_path,
                        case.rule,
                        a.warnings
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("\n    ")
                    ));
                }
                for w in &a.warnings {
                    assert!(!w.fix.is_empty(), "warning without a fix: {w:?}");
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn workload_examples_are_stored_kinds_and_round_trip_without_unknown_fields() {
    let mut seen = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for file in std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).into_iter().flatten())
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".k8s.yaml"))
    {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in parse_documents(&file.display().to_string(), &text).unwrap() {
            let kind = doc["kind"].as_str().unwrap_or("").to_string();
            if kstash_api::meta::WORKLOADS.iter().all(|w| w.kind != kind) {
                continue;
            }
            match admit(&doc, &[], None) {
                Ok(a) => {
                    problems.extend(a.warnings.iter().map(ToString::to_string));
                    seen.insert(kind);
                }
                Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        seen.contains("Deployment") && seen.contains("PersistentVolumeClaim"),
        "{seen:?}"
    );
}

/// Every BackupVerifier and BackupVerificationSession of KubeStash's documentation is admitted
/// without errors or unknown-field warnings (the legacy `schedule:` string and the scalar
/// `dbSize: 100` included).
#[test]
fn kubestash_documented_verifiers_are_admitted() {
    let path = repo_root().join("crates/kstash-api/tests/kubestash-docs/backupverifiers.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = parse_documents(&path.display().to_string(), &text).unwrap();
    assert_eq!(docs.len(), 6);
    for doc in &docs {
        match admit(doc, &[], None) {
            Ok(admitted) => assert!(
                admitted.warnings.is_empty(),
                "{}: {:?}",
                doc["metadata"]["name"],
                admitted.warnings
            ),
            Err(errors) => panic!("{}: {errors:?}", doc["metadata"]["name"]),
        }
    }
}

/// The Stash v1 documentation corpus (`tests/stash-docs/`), file by file.
fn stash_documentation_corpus() -> Vec<(&'static str, Vec<serde_json::Value>)> {
    let dir = repo_root().join("crates/kstash-api/tests/stash-docs");
    [
        "postgres",
        "mysql",
        "mariadb",
        "redis",
        "elasticsearch",
        "workloads",
        "batch-blueprint",
    ]
    .into_iter()
    .map(|file| {
        let path = dir.join(format!("{file}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        (file, parse_documents(&path.display().to_string(), &text).unwrap())
    })
    .collect()
}

/// Every complete Stash v1 manifest of Stash's and KubeDB's documentation (see
/// `tests/stash-docs/README.md`) is admitted with no error and no unknown field.
#[test]
fn stash_documented_manifests_are_admitted() {
    let mut admitted_count = 0;
    let mut failures = Vec::new();
    for (file, docs) in stash_documentation_corpus() {
        assert!(!docs.is_empty(), "{file}.yaml is empty");
        for doc in &docs {
            assert!(
                doc["apiVersion"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("stash.appscode.com/"),
                "{file}: {}",
                doc["metadata"]["name"]
            );
            match admit(doc, &[], None) {
                Ok(a) if a.warnings.is_empty() => admitted_count += 1,
                Ok(a) => failures.push(format!(
                    "{file}: {} {}: warnings {:?}",
                    doc["kind"], doc["metadata"]["name"], a.warnings
                )),
                Err(errors) => failures.push(format!(
                    "{file}: {} {}: {errors:?}",
                    doc["kind"], doc["metadata"]["name"]
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} refused or warned:\n{}",
        failures.len(),
        failures.len() + admitted_count,
        failures.join("\n")
    );
    assert!(admitted_count >= 200, "only {admitted_count} documents");
}

/// `kstash convert` of every Stash BackupConfiguration, BackupBlueprint and RestoreSession in the
/// documentation corpus gives KubeStash objects that validate, with no unknown fields.
#[test]
fn converted_stash_documentation_validates_as_kubestash() {
    use kstash_api::stash::convert::{Offline, convert};
    let mut converted = 0;
    let mut failures = Vec::new();
    for (_, docs) in stash_documentation_corpus() {
        for doc in docs {
            if !matches!(
                doc["kind"].as_str(),
                Some("BackupConfiguration" | "BackupBlueprint" | "RestoreSession")
            ) {
                continue;
            }
            let stash = admit(&doc, &[], None).unwrap().object;
            let conversion = convert(&stash, &Offline);
            if conversion.objects.is_empty() {
                // Only VolumeSnapshotter sessions have no KubeStash form; the note says so.
                assert_eq!(
                    doc["spec"]["driver"], "VolumeSnapshotter",
                    "{}",
                    conversion.source
                );
                assert!(conversion.notes.iter().any(|n| n.contains("VolumeSnapshotter")));
                continue;
            }
            for o in &conversion.objects {
                converted += 1;
                match admit(&o.object, &[], None) {
                    Ok(a) if a.warnings.is_empty() => {}
                    Ok(a) => failures.push(format!(
                        "{} → {}: warnings {:?}",
                        conversion.source, o.object["kind"], a.warnings
                    )),
                    Err(e) => failures.push(format!(
                        "{} → {} {}: {e:?}",
                        conversion.source, o.object["kind"], o.object["metadata"]["name"]
                    )),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(converted >= 150, "only {converted} objects converted");
}
