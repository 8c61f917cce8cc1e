//! `appcatalog.appscode.com/v1alpha1`: AppBinding, how to connect to an application (URL or service,
//! credentials secret, TLS).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::TypedObjectReference;

/// A Kubernetes service reference of an AppBinding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// How to reach the application: exactly one of `url` or `service`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceReference>,
    /// Do not verify the server's certificate.
    // KubeStash's spelling (Go's json tag), not camelCase's `insecureSkipTlsVerify` (still read).
    #[serde(
        default,
        rename = "insecureSkipTLSVerify",
        alias = "insecureSkipTlsVerify",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub insecure_skip_tls_verify: bool,
    /// PEM CA bundle, base64 in YAML (Go `[]byte`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Reference to the credentials secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppSecretReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: String,
}

/// Rename a key of the credentials secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RenameKeyTransform {
    pub from: String,
    pub to: String,
}

/// Add a key to the credentials secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddKeyTransform {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
}

/// Add every key of another secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddKeysFromTransform {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<k8s_openapi::api::core::v1::LocalObjectReference>,
}

/// Remove a key from the credentials secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RemoveKeyTransform {
    pub key: String,
}

/// One transformation of the credentials secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTransform {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename_key: Option<RenameKeyTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_key: Option<AddKeyTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_keys_from: Option<AddKeysFromTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_key: Option<RemoveKeyTransform>,
}

/// How to connect to an application.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "appcatalog.appscode.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "AppBinding",
    plural = "appbindings",
    shortname = "app",
    namespaced,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AppBindingSpec {
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_ref: Option<TypedObjectReference>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default)]
    pub client_config: ClientConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<AppSecretReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_transforms: Vec<SecretTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_nullable")]
    pub parameters: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<k8s_openapi::api::core::v1::LocalObjectReference>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_skip_tls_verify_has_kubestash_spelling() {
        let cc: ClientConfig =
            serde_json::from_value(serde_json::json!({"insecureSkipTLSVerify": true})).unwrap();
        assert!(cc.insecure_skip_tls_verify);
        let old: ClientConfig =
            serde_json::from_value(serde_json::json!({"insecureSkipTlsVerify": true})).unwrap();
        assert!(old.insecure_skip_tls_verify);
        let out = serde_json::to_value(&cc).unwrap();
        assert_eq!(out["insecureSkipTLSVerify"], true, "{out}");
    }
}
