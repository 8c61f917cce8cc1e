//! Shared by the kstash-kube tests: the repository root and a client of a fake API server.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kstash_kube::operator;
use kstash_kube::resources::KubeResources;
use kstash_testsupport::FakeKubeApi;

/// The repository's root (CRDs and catalog are read from it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A client of `api` through a kubeconfig written under `dir` (default namespace `namespace`),
/// and the runtime it runs on.
pub fn connect(api: &FakeKubeApi, dir: &Path, namespace: &str) -> (tokio::runtime::Runtime, KubeResources) {
    let kubeconfig = dir.join(format!("kubeconfig-{}", api.url().rsplit(':').next().unwrap()));
    api.write_kubeconfig(&kubeconfig, namespace).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (client, _) = rt.block_on(operator::connect(Some(&kubeconfig))).unwrap();
    let res = KubeResources::new(client, rt.handle().clone());
    (rt, res)
}
