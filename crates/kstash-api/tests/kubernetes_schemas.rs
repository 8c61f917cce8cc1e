//! Independent checks of what the types generate, with Kubernetes' own tooling (installed by
//! `scripts/setup`): every CRD under `deploy/crds/` passes `kubernetes-validate --strict`, every
//! example custom resource validates against its CRD's OpenAPI v3 schema (python `jsonschema`),
//! and every plain Kubernetes object of the examples (Secrets, and the workloads in `*.k8s.yaml`)
//! passes `kubernetes-validate --strict`.

mod support;

use std::path::PathBuf;
use std::process::Command;

use kstash_testsupport::python::run_python;
use kstash_testsupport::tools::venv_dir;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn generated_crds_pass_kubernetes_validate_strict() {
    let tool = venv_dir().join("bin/kubernetes-validate");
    assert!(tool.exists(), "{} is missing; run scripts/setup", tool.display());
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("deploy/crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 14);
    let out = Command::new(&tool)
        .args(["-k", "1.32.0", "--strict"])
        .args(&files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubernetes-validate rejected a CRD:\n{text}"
    );
    assert_eq!(
        text.matches(" passed for resource customresourcedefinition/")
            .count(),
        files.len(),
        "{text}"
    );
}

const CHECK_EXAMPLES: &str = r#"
import glob, sys, yaml, jsonschema
root = sys.argv[1]
schemas = {}
for f in glob.glob(root + '/deploy/crds/*.yaml'):
    c = yaml.safe_load(open(f))
    schemas[(c['spec']['group'], c['spec']['names']['kind'])] = c['spec']['versions'][0]['schema']['openAPIV3Schema']
checked = 0
for f in sorted(glob.glob(root + '/examples/**/*.yaml', recursive=True)):
    if f.endswith('.k8s.yaml'):
        continue
    for doc in yaml.safe_load_all(open(f)):
        if not doc:
            continue
        group = doc['apiVersion'].rsplit('/', 1)[0] if '/' in doc['apiVersion'] else ''
        schema = schemas.get((group, doc['kind']))
        if schema is None:
            continue
        checked += 1
        for e in jsonschema.Draft7Validator(schema).iter_errors(doc):
            print('INVALID', f, doc['kind'], doc['metadata']['name'], list(e.path), e.message)
print('checked', checked)
"#;

#[test]
fn example_custom_resources_match_their_crd_schema() {
    let out = run_python(CHECK_EXAMPLES, &[repo_root().to_str().unwrap()], &[]).expect("run scripts/setup");
    assert!(!out.contains("INVALID"), "{out}");
    let checked: usize = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(checked >= 30, "only {checked} custom resources checked: {out}");
}

#[test]
fn example_kubernetes_objects_pass_kubernetes_validate_strict() {
    let mut files = Vec::new();
    let mut dirs = vec![repo_root().join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut docs = Vec::new();
    let mut k8s_files = 0;
    for f in &files {
        let all = support::yaml_docs(&std::fs::read_to_string(f).unwrap());
        let plain: Vec<_> = all.iter().filter(|d| !support::is_custom(d)).cloned().collect();
        // `*.k8s.yaml` holds only Kubernetes' own kinds (the embedded runtime skips them).
        if f.to_string_lossy().ends_with(".k8s.yaml") {
            k8s_files += 1;
            assert_eq!(
                plain.len(),
                all.len(),
                "{}: custom resources in a .k8s.yaml file",
                f.display()
            );
        }
        docs.extend(plain);
    }
    assert!(k8s_files >= 4, "{k8s_files} .k8s.yaml files");
    let kinds: std::collections::BTreeSet<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for kind in ["Secret", "Deployment", "StatefulSet", "Service", "Namespace"] {
        assert!(kinds.contains(kind), "no example {kind}: {kinds:?}");
    }
    support::kubernetes_validate(&docs);
}
