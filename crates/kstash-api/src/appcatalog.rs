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

/// How to reach the application: `url`, `service`, or both (KubeDB writes both; see
/// [`ClientConfig::address`] for which is used).
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

/// Which of an AppBinding's addresses is used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Address<'a> {
    Url(&'a str),
    Service(&'a ServiceReference),
}

impl ClientConfig {
    /// The address in effect, by KubeStash's rule when both are set: inside a cluster (the
    /// operator's Jobs) the service, which resolves there; on the embedded runtime the url,
    /// which names a host this machine can reach (`<svc>.<ns>.svc` cannot resolve here). With
    /// only one set, that one; `None` without either.
    pub fn address(&self, in_cluster: bool) -> Option<Address<'_>> {
        let url = self
            .url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(Address::Url);
        let service = self
            .service
            .as_ref()
            .filter(|s| !s.name.is_empty())
            .map(Address::Service);
        if in_cluster {
            service.or(url)
        } else {
            url.or(service)
        }
    }
}

/// The parts of an AppBinding `clientConfig.url` a driver needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUrl {
    /// `https` of `https://…`; `None` without `://`.
    pub scheme: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub query: String,
}

impl ClientUrl {
    /// The value of `key` in the query string, when set and not empty.
    pub fn query_value(&self, key: &str) -> Option<String> {
        query_value(&self.query, key)
    }
}

/// The value of `key` in a `k=v&k2=v2` query string, when set and not empty.
pub fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Parse an AppBinding URL in every form KubeDB writes: `scheme://[user[:pass]@]host[:port][/path][?query]`,
/// a Go MySQL DSN address `tcp(host:port)/db`, or a bare `host:port` / `host`. The error names
/// the URL and what is wrong.
pub fn parse_client_url(url: &str) -> Result<ClientUrl, String> {
    let bad = |why: &str| format!("spec.clientConfig.url {url:?} {why}");
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
        None => (None, url),
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hostport = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let hostport = hostport
        .strip_prefix("tcp(")
        .and_then(|h| h.strip_suffix(')'))
        .unwrap_or(hostport);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("has an unclosed [ in its host"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(&format!("has an invalid port {p:?}")))?,
        ),
    };
    let database = Some(path.trim_matches('/').to_string()).filter(|d| !d.is_empty());
    Ok(ClientUrl {
        scheme,
        host,
        port,
        database,
        query: query.to_string(),
    })
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

    #[test]
    fn every_url_form_kubedb_writes_is_parsed() {
        let u = parse_client_url("postgres://u:p@db.demo.svc:6432/shop?sslmode=verify-full").unwrap();
        assert_eq!(u.host, "db.demo.svc");
        assert_eq!(u.port, Some(6432));
        assert_eq!(u.database.as_deref(), Some("shop"));
        assert_eq!(u.query_value("sslmode").as_deref(), Some("verify-full"));
        assert_eq!(u.scheme.as_deref(), Some("postgres"));
        let u = parse_client_url("127.0.0.1").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.database), ("127.0.0.1", None, None));
        // KubeDB's MariaDB/MySQL AppBindings: a Go MySQL DSN address.
        let u = parse_client_url("tcp(sample-mariadb.demo.svc:3306)/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("sample-mariadb.demo.svc", Some(3306)));
        // KubeDB's ZooKeeper AppBindings: a bare host:port.
        let u = parse_client_url("10.0.0.5:2181").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.scheme),
            ("10.0.0.5", Some(2181), None)
        );
        let u = parse_client_url("postgres://[::1]:5433/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", Some(5433)));
        assert!(parse_client_url("postgres://:5432/").is_err());
        assert!(
            parse_client_url("postgres://h:99999/")
                .unwrap_err()
                .contains("invalid port")
        );
    }

    #[test]
    fn the_service_wins_in_a_cluster_and_the_url_on_one_machine() {
        let both = ClientConfig {
            url: Some("tcp(127.0.0.1:3306)/".into()),
            service: Some(ServiceReference {
                name: "sample-mariadb".into(),
                port: Some(3306),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(both.address(true), Some(Address::Service(s)) if s.name == "sample-mariadb"));
        assert_eq!(both.address(false), Some(Address::Url("tcp(127.0.0.1:3306)/")));
        let url_only = ClientConfig {
            url: Some("10.0.0.5:2181".into()),
            ..Default::default()
        };
        assert_eq!(url_only.address(true), Some(Address::Url("10.0.0.5:2181")));
        assert_eq!(ClientConfig::default().address(false), None);
    }
}
