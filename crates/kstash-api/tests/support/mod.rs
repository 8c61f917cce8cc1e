//! Shared by the tests that check manifests with independent tooling from `scripts/setup`'s
//! venv: `kubernetes-validate --strict` for Kubernetes' own kinds, the generated CRDs' OpenAPI v3
//! schemas (python `jsonschema`) for custom resources.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use kstash_testsupport::python::run_python;
use kstash_testsupport::tools::venv_dir;
use serde_json::Value;

/// The Kubernetes version manifests are validated against.
pub const KUBERNETES_VERSION: &str = "1.32.0";

/// API groups whose kinds are custom resources (validated against `deploy/crds/`).
pub const CUSTOM_GROUPS: &[&str] = &[
    "storage.kubestash.com",
    "core.kubestash.com",
    "addons.kubestash.com",
    "appcatalog.appscode.com",
];

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The group of a document's `apiVersion` (`""` for the core group).
pub fn group(doc: &Value) -> &str {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    api.rsplit_once('/').map_or("", |(g, _)| g)
}

pub fn is_custom(doc: &Value) -> bool {
    CUSTOM_GROUPS.contains(&group(doc))
}

/// `kind/name` of a document, for messages.
pub fn describe(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Every non-empty YAML document of `text`, as JSON values.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// Runs `kubernetes-validate -k KUBERNETES_VERSION --strict` on `docs` (Kubernetes' own kinds;
/// one file each) and fails unless every one of them passed with no warning (an unknown kind
/// or apiVersion is only a warning to the tool, so warnings fail here).
pub fn kubernetes_validate(docs: &[Value]) {
    let tool = venv_dir().join("bin/kubernetes-validate");
    assert!(tool.exists(), "{} is missing; run scripts/setup", tool.display());
    assert!(!docs.is_empty(), "nothing to validate");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        assert!(!is_custom(doc), "{} is a custom resource", describe(doc));
        let path = dir.path().join(format!("{i:03}.yaml"));
        std::fs::write(&path, serde_yaml_ng::to_string(doc).unwrap()).unwrap();
        files.push(path);
    }
    let out = Command::new(&tool)
        .args(["-k", KUBERNETES_VERSION, "--strict"])
        .args(&files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let listing: Vec<String> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{i:03}.yaml = {}", describe(d)))
        .collect();
    assert!(
        out.status.success(),
        "kubernetes-validate rejected a manifest:\n{text}\n{}",
        listing.join("\n")
    );
    assert!(
        !text.contains("WARN") && !text.contains("ERROR"),
        "kubernetes-validate warned:\n{text}\n{}",
        listing.join("\n")
    );
    assert_eq!(
        text.matches(" passed for resource ").count(),
        docs.len(),
        "{text}"
    );
}

const CHECK_CUSTOM: &str = r#"
import glob, json, sys, yaml, jsonschema
root, docs = sys.argv[1], json.load(open(sys.argv[2]))
schemas = {}
for f in glob.glob(root + '/deploy/crds/*.yaml'):
    c = yaml.safe_load(open(f))
    schemas[(c['spec']['group'], c['spec']['names']['kind'])] = c['spec']['versions'][0]['schema']['openAPIV3Schema']
for doc in docs:
    group = doc['apiVersion'].rsplit('/', 1)[0]
    schema = schemas.get((group, doc['kind']))
    if schema is None:
        print('NOSCHEMA', doc['kind'], doc['metadata']['name'])
        continue
    for e in jsonschema.Draft7Validator(schema).iter_errors(doc):
        print('INVALID', doc['kind'], doc['metadata']['name'], list(e.path), e.message)
"#;

/// Validates custom resources against their CRD's OpenAPI v3 schema from `deploy/crds/`.
pub fn validate_custom_resources(docs: &[Value]) {
    assert!(!docs.is_empty(), "nothing to validate");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.json");
    std::fs::write(&path, serde_json::to_string(docs).unwrap()).unwrap();
    let out = run_python(
        CHECK_CUSTOM,
        &[repo_root().to_str().unwrap(), path.to_str().unwrap()],
        &[],
    )
    .expect("run scripts/setup");
    assert!(
        out.trim().is_empty(),
        "custom resources do not match their CRDs:\n{out}"
    );
}
