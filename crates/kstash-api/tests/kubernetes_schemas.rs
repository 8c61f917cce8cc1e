//! Independent checks of what the types generate, with Kubernetes' own tooling (installed by
//! `scripts/setup`): every CRD under `deploy/crds/` passes `kubernetes-validate --strict`, and every
//! example custom resource validates against its CRD's OpenAPI v3 schema (python `jsonschema`).

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
    assert_eq!(files.len(), 12);
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
        12,
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
