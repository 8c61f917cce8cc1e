//! CRD generation: one CustomResourceDefinition per kind, with the OpenAPI v3 schema derived from
//! the Rust types, checked in under `deploy/crds/` and compared against the types by a test.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{addons, appcatalog, core, storage, verification};

/// Every CRD kstash installs, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        storage::BackupStorage::crd(),
        storage::Repository::crd(),
        storage::RetentionPolicy::crd(),
        storage::Snapshot::crd(),
        core::BackupConfiguration::crd(),
        core::BackupSession::crd(),
        core::RestoreSession::crd(),
        core::HookTemplate::crd(),
        core::BackupBlueprint::crd(),
        verification::BackupVerifier::crd(),
        verification::BackupVerificationSession::crd(),
        addons::Addon::crd(),
        addons::Function::crd(),
        appcatalog::AppBinding::crd(),
    ]
}

/// File name of a CRD under `deploy/crds/` (`<group>_<plural>.yaml`, as KubeStash names them).
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// A CRD rendered as YAML, with a header saying it is generated.
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    let body = serde_yaml_ng::to_string(crd).expect("a CRD always serialises");
    format!("# Generated from crates/kstash-api by `kstash crd`; do not edit.\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn checked_in_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds")
    }

    /// `deploy/crds/` must equal what the types generate. Run with `KSTASH_BLESS=1` to rewrite it.
    #[test]
    fn checked_in_crds_match_the_types() {
        let dir = checked_in_dir();
        let bless = std::env::var_os("KSTASH_BLESS").is_some();
        let mut stale = Vec::new();
        for crd in all() {
            let path = dir.join(file_name(&crd));
            let want = to_yaml(&crd);
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(have) if have == want => {}
                _ => stale.push(path.display().to_string()),
            }
        }
        assert!(
            stale.is_empty(),
            "generated CRDs differ from the checked-in files {stale:?}; run `KSTASH_BLESS=1 cargo test -p kstash-api crd` and commit deploy/crds/"
        );
    }

    #[test]
    fn static_print_columns_equal_the_crd_columns() {
        for crd in all() {
            let from_crd: Vec<(String, String, String)> = crd.spec.versions[0]
                .additional_printer_columns
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.name, c.json_path, c.type_))
                .collect();
            let table: Vec<(String, String, String)> = crate::meta::print_columns(&crd.spec.names.kind)
                .iter()
                .map(|(n, p, t)| (n.to_string(), p.to_string(), t.to_string()))
                .collect();
            assert_eq!(table, from_crd, "print columns of {}", crd.spec.names.kind);
        }
    }

    #[test]
    fn crds_have_kubestash_names_scopes_and_columns() {
        let crds = all();
        let by_name = |n: &str| {
            crds.iter()
                .find(|c| c.metadata.name.as_deref() == Some(n))
                .unwrap()
        };
        let bc = by_name("backupconfigurations.core.kubestash.com");
        assert_eq!(
            bc.spec.names.short_names.as_deref(),
            Some(&["bc".to_string()][..])
        );
        assert_eq!(bc.spec.scope, "Namespaced");
        let func = by_name("functions.addons.kubestash.com");
        assert_eq!(func.spec.scope, "Cluster");
        let repo = by_name("repositories.storage.kubestash.com");
        let cols: Vec<_> = repo.spec.versions[0]
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(
            cols,
            [
                "Integrity",
                "Snapshot-Count",
                "Size",
                "Phase",
                "Last-Successful-Backup",
                "Age"
            ]
        );
        assert!(
            repo.spec.versions[0]
                .subresources
                .as_ref()
                .unwrap()
                .status
                .is_some()
        );
    }
}
