//! Where a storage is and how to talk to it: [`StorageConfig`], built from a BackupStorage and
//! its credentials Secret (pure; every refusal names the object, the field and the fix).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kstash_api::storage::{Backend, StorageProvider};

use crate::error::{Result, StorageError};

/// A storage location plus connection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// Where the objects live.
    pub location: Location,
    /// Concurrency, retries, limits, multipart.
    pub tuning: Tuning,
}

/// One storage location (a bucket/container and a prefix, a directory, a REST server).
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// A directory on this machine (or a mounted volume in a Job).
    Local {
        /// The directory.
        root: PathBuf,
    },
    /// S3 or an S3-compatible server.
    S3(S3Location),
    /// Google Cloud Storage (or an emulator).
    Gcs(GcsLocation),
    /// Azure Blob Storage (or Azurite).
    Azure(AzureLocation),
    /// Backblaze B2.
    B2(B2Location),
    /// OpenStack Swift.
    Swift(SwiftLocation),
    /// A restic REST server (v2 protocol).
    Rest(RestLocation),
}

/// An S3 bucket and prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Location {
    /// `https://s3.amazonaws.com`, `http://127.0.0.1:9000` (scheme always present).
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// Path inside the bucket, no leading or trailing `/`.
    pub prefix: String,
    /// The region (`us-east-1` when not given).
    pub region: String,
    /// Static credentials; `None`: the environment, profile or instance credentials.
    pub credentials: Option<S3Credentials>,
    /// Address the bucket as `<bucket>.<host>` (AWS) instead of `<host>/<bucket>` (S3-compatible
    /// servers such as MinIO or SeaweedFS).
    pub virtual_host_style: bool,
    /// Accept any TLS certificate.
    pub insecure_tls: bool,
    /// Extra CA certificates (PEM) to trust.
    pub ca_cert_pem: Option<Vec<u8>>,
}

/// Static S3 credentials.
#[derive(Clone, PartialEq)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A GCS bucket and prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct GcsLocation {
    /// The bucket.
    pub bucket: String,
    /// Path inside the bucket.
    pub prefix: String,
    /// The service account key (JSON); `None`: application default credentials, or anonymous
    /// access when `endpoint` points at an emulator.
    pub service_account_json: Option<String>,
    /// `GOOGLE_PROJECT_ID` (informational; object operations do not need it).
    pub project_id: Option<String>,
    /// A custom endpoint (`http://127.0.0.1:4443` for fake-gcs-server); `None`: Google's.
    pub endpoint: Option<String>,
}

/// An Azure Blob container and prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureLocation {
    /// The storage account.
    pub account: String,
    /// The container.
    pub container: String,
    /// Path inside the container.
    pub prefix: String,
    /// `AZURE_ACCOUNT_KEY`; `None`: workload identity / environment credentials.
    pub account_key: Option<String>,
    /// A custom blob endpoint (Azurite); `None`: `https://<account>.blob.core.windows.net`.
    pub endpoint: Option<String>,
}

/// A B2 bucket and prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct B2Location {
    /// The bucket name.
    pub bucket: String,
    /// The bucket id (B2's API addresses buckets by id): `B2_BUCKET_ID`.
    pub bucket_id: String,
    /// Path inside the bucket.
    pub prefix: String,
    /// `B2_ACCOUNT_ID` (application key id).
    pub account_id: String,
    /// `B2_ACCOUNT_KEY` (application key).
    pub account_key: String,
}

/// A Swift container and prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct SwiftLocation {
    /// The container.
    pub container: String,
    /// Path inside the container.
    pub prefix: String,
    /// The storage URL (`OS_STORAGE_URL`, e.g. `https://swift.example.com/v1/AUTH_acct`).
    pub storage_url: String,
    /// The auth token (`OS_AUTH_TOKEN`).
    pub token: String,
}

/// A restic REST server repository URL.
#[derive(Debug, Clone, PartialEq)]
pub struct RestLocation {
    /// `http://host:port/path` without credentials and without a trailing `/`.
    pub url: String,
    /// Basic-auth user.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// Accept any TLS certificate.
    pub insecure_tls: bool,
    /// Extra CA certificates (PEM) to trust.
    pub ca_cert_pem: Option<Vec<u8>>,
}

/// Connection settings shared by every remote storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// Requests in flight at most (`maxConnections`).
    pub max_connections: usize,
    /// Upload limit in bytes per second.
    pub upload_limit: Option<u64>,
    /// Download limit in bytes per second.
    pub download_limit: Option<u64>,
    /// Files at least this large are uploaded in parts (multipart upload / block list).
    pub multipart_threshold: u64,
    /// Part size of multipart uploads.
    pub part_size: u64,
    /// Retries of a failed request (transient errors only: network, 5xx, throttling).
    pub retries: usize,
}

/// restic's default number of S3/GCS/Azure connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 5;

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            upload_limit: None,
            download_limit: None,
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            retries: 6,
        }
    }
}

/// The keys of a credentials Secret (`data`, decoded).
#[derive(Debug, Clone, Default)]
pub struct SecretData {
    /// `namespace/name`, for messages.
    pub name: String,
    /// Key to value.
    pub data: BTreeMap<String, Vec<u8>>,
}

impl SecretData {
    /// A value as text (trimmed of a trailing newline, as `kubectl create secret --from-file` leaves one).
    pub fn get(&self, key: &str) -> Option<String> {
        let v = self.data.get(key)?;
        let s = String::from_utf8_lossy(v);
        let s = s.strip_suffix('\n').unwrap_or(&s);
        (!s.is_empty()).then(|| s.to_string())
    }

    fn require(&self, object: &str, key: &str, what: &str) -> Result<String> {
        self.get(key).ok_or_else(|| {
            StorageError::config(
                object,
                format!("Secret {} key {key}", self.name),
                format!("missing ({what})"),
                format!("add `{key}` to Secret {}", self.name),
            )
        })
    }
}

/// How a `local` storage maps to a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalMode {
    /// In a Job: the volume is mounted at `mountPath`, data under `mountPath/subPath`.
    Mounted,
    /// Embedded on one machine: a `hostPath` volume's own path (else `mountPath`), plus `subPath`.
    Host,
}

impl StorageConfig {
    /// A config with default tuning.
    pub fn new(location: Location) -> StorageConfig {
        StorageConfig {
            location,
            tuning: Tuning::default(),
        }
    }

    /// The storage of a BackupStorage's `spec.storage`, with the keys of its credentials Secret
    /// (`None` when the spec names no secret, or it was not found: then credentials come from the
    /// environment where the provider allows it). `object` names the resource in messages.
    pub fn from_backend(
        object: &str,
        backend: &Backend,
        secret: Option<&SecretData>,
        local: LocalMode,
    ) -> Result<StorageConfig> {
        let provider = backend.provider.ok_or_else(|| {
            StorageError::config(
                object,
                "spec.storage.provider",
                "not set",
                "set it to one of local, s3, gcs, azure, b2, swift, rest",
            )
        })?;
        let section = |name: &str| {
            StorageError::config(
                object,
                format!("spec.storage.{name}"),
                format!("missing for provider {name}"),
                format!("add a `{name}:` section"),
            )
        };
        let secret_needed = |field: &str, name: &str| -> Result<&SecretData> {
            match secret {
                Some(s) if !name.is_empty() => Ok(s),
                _ if name.is_empty() => Err(StorageError::config(
                    object,
                    field,
                    "no credentials Secret named",
                    format!("set {field} to a Secret with the provider's keys"),
                )),
                _ => Err(StorageError::config(
                    object,
                    field,
                    format!("Secret {name} not found"),
                    format!("create Secret {name} in the BackupStorage's namespace"),
                )),
            }
        };
        let mut tuning = Tuning::default();
        let set_connections = |tuning: &mut Tuning, n: i64| {
            if n > 0 {
                tuning.max_connections = n as usize;
            }
        };
        let location = match provider {
            StorageProvider::Local => {
                let l = backend.local.as_ref().ok_or_else(|| section("local"))?;
                set_connections(&mut tuning, l.max_connections);
                let base = match (local, &l.volume.host_path) {
                    (LocalMode::Host, Some(hp)) => hp.path.clone(),
                    _ => l.mount_path.clone(),
                };
                if base.is_empty() {
                    return Err(StorageError::config(
                        object,
                        "spec.storage.local.mountPath",
                        "empty",
                        "set mountPath (an absolute directory)",
                    ));
                }
                let mut root = PathBuf::from(base);
                let sub = l.sub_path.trim_matches('/');
                if !sub.is_empty() {
                    root.push(sub);
                }
                Location::Local { root }
            }
            StorageProvider::S3 => {
                let s = backend.s3.as_ref().ok_or_else(|| section("s3"))?;
                set_connections(&mut tuning, s.max_connections);
                non_empty(object, "spec.storage.s3.bucket", &s.bucket)?;
                let credentials = if s.secret_name.is_empty() {
                    None
                } else {
                    let sd = secret_needed("spec.storage.s3.secretName", &s.secret_name)?;
                    Some(S3Credentials {
                        access_key_id: sd.require(object, "AWS_ACCESS_KEY_ID", "the S3 access key")?,
                        secret_access_key: sd.require(
                            object,
                            "AWS_SECRET_ACCESS_KEY",
                            "the S3 secret key",
                        )?,
                        session_token: sd.get("AWS_SESSION_TOKEN"),
                    })
                };
                let ca = match (s.secret_name.is_empty(), secret) {
                    (false, Some(sd)) => sd.data.get("CA_CERT_DATA").cloned(),
                    _ => None,
                };
                Location::S3(S3Location::new(
                    &s.endpoint,
                    &s.bucket,
                    &s.prefix,
                    &s.region,
                    credentials,
                    s.insecure_tls,
                    ca,
                ))
            }
            StorageProvider::Gcs => {
                let g = backend.gcs.as_ref().ok_or_else(|| section("gcs"))?;
                set_connections(&mut tuning, g.max_connections);
                non_empty(object, "spec.storage.gcs.bucket", &g.bucket)?;
                let (json, project) = if g.secret_name.is_empty() {
                    (None, None)
                } else {
                    let sd = secret_needed("spec.storage.gcs.secretName", &g.secret_name)?;
                    (
                        Some(sd.require(
                            object,
                            "GOOGLE_SERVICE_ACCOUNT_JSON_KEY",
                            "the service account key JSON",
                        )?),
                        sd.get("GOOGLE_PROJECT_ID"),
                    )
                };
                Location::Gcs(GcsLocation {
                    bucket: g.bucket.trim_matches('/').into(),
                    prefix: clean_prefix(&g.prefix),
                    service_account_json: json,
                    project_id: project,
                    endpoint: (!g.endpoint.is_empty()).then(|| g.endpoint.trim_end_matches('/').into()),
                })
            }
            StorageProvider::Azure => {
                let a = backend.azure.as_ref().ok_or_else(|| section("azure"))?;
                set_connections(&mut tuning, a.max_connections);
                non_empty(object, "spec.storage.azure.storageAccount", &a.storage_account)?;
                non_empty(object, "spec.storage.azure.container", &a.container)?;
                let key = if a.secret_name.is_empty() {
                    None
                } else {
                    let sd = secret_needed("spec.storage.azure.secretName", &a.secret_name)?;
                    Some(sd.require(object, "AZURE_ACCOUNT_KEY", "the storage account key")?)
                };
                Location::Azure(AzureLocation {
                    account: a.storage_account.clone(),
                    container: a.container.clone(),
                    prefix: clean_prefix(&a.prefix),
                    account_key: key,
                    endpoint: (!a.endpoint.is_empty()).then(|| a.endpoint.trim_end_matches('/').into()),
                })
            }
            StorageProvider::B2 => {
                let b = backend.b2.as_ref().ok_or_else(|| section("b2"))?;
                set_connections(&mut tuning, b.max_connections);
                non_empty(object, "spec.storage.b2.bucket", &b.bucket)?;
                let sd = secret_needed("spec.storage.b2.secretName", &b.secret_name)?;
                Location::B2(B2Location {
                    bucket: b.bucket.clone(),
                    bucket_id: sd.require(
                        object,
                        "B2_BUCKET_ID",
                        "the bucket's id, shown by `b2 bucket list`",
                    )?,
                    prefix: clean_prefix(&b.prefix),
                    account_id: sd.require(object, "B2_ACCOUNT_ID", "the application key id")?,
                    account_key: sd.require(object, "B2_ACCOUNT_KEY", "the application key")?,
                })
            }
            StorageProvider::Swift => {
                let s = backend.swift.as_ref().ok_or_else(|| section("swift"))?;
                non_empty(object, "spec.storage.swift.container", &s.container)?;
                let sd = secret_needed("spec.storage.swift.secretName", &s.secret_name)?;
                Location::Swift(SwiftLocation {
                    container: s.container.clone(),
                    prefix: clean_prefix(&s.prefix),
                    storage_url: sd.require(object, "OS_STORAGE_URL", "the Swift storage URL")?,
                    token: sd.require(object, "OS_AUTH_TOKEN", "a Swift auth token")?,
                })
            }
            StorageProvider::Rest => {
                let r = backend.rest.as_ref().ok_or_else(|| section("rest"))?;
                non_empty(object, "spec.storage.rest.url", &r.url)?;
                let (user, pass) = match (r.secret_name.is_empty(), secret) {
                    (false, _) => {
                        let sd = secret_needed("spec.storage.rest.secretName", &r.secret_name)?;
                        (sd.get("REST_SERVER_USERNAME"), sd.get("REST_SERVER_PASSWORD"))
                    }
                    _ => (None, None),
                };
                let mut rest = RestLocation::parse(object, "spec.storage.rest.url", &r.url)?;
                if user.is_some() {
                    rest.username = user;
                    rest.password = pass;
                }
                Location::Rest(rest)
            }
        };
        Ok(StorageConfig { location, tuning })
    }

    /// The same storage, one path level deeper (`prefix/sub`).
    pub fn join(&self, sub: &str) -> StorageConfig {
        let sub = sub.trim_matches('/');
        let mut out = self.clone();
        if sub.is_empty() {
            return out;
        }
        let push = |p: &mut String| {
            if p.is_empty() {
                *p = sub.to_string();
            } else {
                p.push('/');
                p.push_str(sub);
            }
        };
        match &mut out.location {
            Location::Local { root } => root.push(sub),
            Location::S3(l) => push(&mut l.prefix),
            Location::Gcs(l) => push(&mut l.prefix),
            Location::Azure(l) => push(&mut l.prefix),
            Location::B2(l) => push(&mut l.prefix),
            Location::Swift(l) => push(&mut l.prefix),
            Location::Rest(l) => {
                l.url.push('/');
                l.url.push_str(sub);
            }
        }
        out
    }

    /// The location as a restic-style repository URL (no credentials), for messages.
    pub fn display(&self) -> String {
        fn slash(p: &str) -> String {
            if p.is_empty() {
                String::new()
            } else {
                format!("/{p}")
            }
        }
        match &self.location {
            Location::Local { root } => root.display().to_string(),
            Location::S3(l) => format!("s3:{}/{}{}", l.endpoint, l.bucket, slash(&l.prefix)),
            Location::Gcs(l) => format!("gs:{}:/{}", l.bucket, l.prefix),
            Location::Azure(l) => format!("azure:{}:/{}", l.container, l.prefix),
            Location::B2(l) => format!("b2:{}:{}", l.bucket, l.prefix),
            Location::Swift(l) => format!("swift:{}:/{}", l.container, l.prefix),
            Location::Rest(l) => format!("rest:{}", l.url),
        }
    }
}

impl S3Location {
    /// An S3 location from KubeStash-style fields: the endpoint may lack a scheme (https is
    /// assumed) or be empty (AWS); AWS endpoints use virtual-host addressing, others path-style.
    pub fn new(
        endpoint: &str,
        bucket: &str,
        prefix: &str,
        region: &str,
        credentials: Option<S3Credentials>,
        insecure_tls: bool,
        ca_cert_pem: Option<Vec<u8>>,
    ) -> S3Location {
        let endpoint = endpoint.trim().trim_end_matches('/');
        let endpoint = if endpoint.is_empty() {
            "https://s3.amazonaws.com".to_string()
        } else if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("https://{endpoint}")
        };
        let host = endpoint
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        S3Location {
            virtual_host_style: host.ends_with("amazonaws.com"),
            endpoint,
            bucket: bucket.trim_matches('/').to_string(),
            prefix: clean_prefix(prefix),
            region: if region.is_empty() {
                "us-east-1".into()
            } else {
                region.to_string()
            },
            credentials,
            insecure_tls,
            ca_cert_pem,
        }
    }
}

impl RestLocation {
    /// `http(s)://[user:pass@]host[:port][/path]`; credentials in the URL are taken out.
    pub fn parse(object: &str, field: &str, url: &str) -> Result<RestLocation> {
        let bad = |reason: &str| {
            StorageError::config(
                object,
                field,
                format!("{reason} in {url:?}"),
                "use http(s)://[user:password@]host:port/path",
            )
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad("scheme is not http or https"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (creds, host) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let (username, password) = match creds {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (Some(percent_decode(u)), Some(percent_decode(p))),
                None => (Some(percent_decode(c)), None),
            },
            None => (None, None),
        };
        Ok(RestLocation {
            url: format!("{scheme}://{host}{}", path.trim_end_matches('/')),
            username,
            password,
            insecure_tls: false,
            ca_cert_pem: None,
        })
    }
}

/// `%XX` decoding for credentials in URLs.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn non_empty(object: &str, field: &str, v: &str) -> Result<()> {
    if v.trim_matches('/').is_empty() {
        return Err(StorageError::config(object, field, "empty", "set it"));
    }
    Ok(())
}

/// A prefix without leading/trailing slashes (KubeStash's webhook trims them too).
pub(crate) fn clean_prefix(p: &str) -> String {
    p.trim_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kstash_api::storage::{AzureSpec, GcsSpec, LocalSpec, RestServerSpec, S3Spec};

    fn secret(pairs: &[(&str, &str)]) -> SecretData {
        SecretData {
            name: "demo/creds".into(),
            data: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn s3_backend(secret_name: &str) -> Backend {
        Backend {
            provider: Some(StorageProvider::S3),
            s3: Some(S3Spec {
                endpoint: "http://127.0.0.1:9000/".into(),
                bucket: "kstash".into(),
                prefix: "/demo/".into(),
                secret_name: secret_name.into(),
                max_connections: 3,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn s3_from_backup_storage_with_secret() {
        let sd = secret(&[
            ("AWS_ACCESS_KEY_ID", "AK\n"),
            ("AWS_SECRET_ACCESS_KEY", "SK"),
            ("CA_CERT_DATA", "PEM"),
        ]);
        let c = StorageConfig::from_backend(
            "BackupStorage demo/s3",
            &s3_backend("creds"),
            Some(&sd),
            LocalMode::Host,
        )
        .unwrap();
        let Location::S3(l) = &c.location else { panic!() };
        assert_eq!(l.endpoint, "http://127.0.0.1:9000");
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str(), l.region.as_str()),
            ("kstash", "demo", "us-east-1")
        );
        assert!(!l.virtual_host_style);
        let cr = l.credentials.as_ref().unwrap();
        assert_eq!(
            (cr.access_key_id.as_str(), cr.secret_access_key.as_str()),
            ("AK", "SK")
        );
        assert_eq!(l.ca_cert_pem.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(c.tuning.max_connections, 3);
        assert_eq!(c.display(), "s3:http://127.0.0.1:9000/kstash/demo");
        assert_eq!(
            c.join("/repo/x/").display(),
            "s3:http://127.0.0.1:9000/kstash/demo/repo/x"
        );
        assert!(
            !format!("{cr:?}").contains("SK"),
            "debug output must not show the secret key"
        );
    }

    #[test]
    fn s3_refusals_name_the_object_field_and_fix() {
        let e = StorageConfig::from_backend(
            "BackupStorage demo/s3",
            &s3_backend("creds"),
            None,
            LocalMode::Host,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("BackupStorage demo/s3") && e.contains("spec.storage.s3.secretName"),
            "{e}"
        );
        assert!(
            e.contains("Secret creds not found") && e.contains("create Secret creds"),
            "{e}"
        );

        let sd = secret(&[("AWS_ACCESS_KEY_ID", "AK")]);
        let e = StorageConfig::from_backend(
            "BackupStorage demo/s3",
            &s3_backend("creds"),
            Some(&sd),
            LocalMode::Host,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("AWS_SECRET_ACCESS_KEY")
                && e.contains("add `AWS_SECRET_ACCESS_KEY` to Secret demo/creds"),
            "{e}"
        );

        let mut b = s3_backend("");
        b.s3.as_mut().unwrap().bucket = "/".into();
        let e = StorageConfig::from_backend("BackupStorage demo/s3", &b, None, LocalMode::Host).unwrap_err();
        assert!(e.to_string().contains("spec.storage.s3.bucket: empty"), "{e}");

        let e = StorageConfig::from_backend(
            "BackupStorage demo/x",
            &Backend {
                provider: Some(StorageProvider::Gcs),
                ..Default::default()
            },
            None,
            LocalMode::Host,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("spec.storage.gcs: missing for provider gcs"),
            "{e}"
        );
    }

    #[test]
    fn s3_without_secret_uses_ambient_credentials_and_aws_uses_virtual_hosts() {
        let mut b = s3_backend("");
        b.s3.as_mut().unwrap().endpoint = "s3.eu-west-1.amazonaws.com".into();
        let c = StorageConfig::from_backend("bs", &b, None, LocalMode::Host).unwrap();
        let Location::S3(l) = &c.location else { panic!() };
        assert!(l.credentials.is_none() && l.virtual_host_style);
        assert_eq!(l.endpoint, "https://s3.eu-west-1.amazonaws.com");
    }

    #[test]
    fn local_gcs_azure_rest_mappings() {
        let local = Backend {
            provider: Some(StorageProvider::Local),
            local: Some(LocalSpec {
                volume: kstash_api::common::InlineVolumeSource {
                    host_path: Some(k8s_openapi::api::core::v1::HostPathVolumeSource {
                        path: "/srv/backups".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                mount_path: "/kubestash".into(),
                sub_path: "team-a".into(),
                max_connections: 0,
            }),
            ..Default::default()
        };
        let host = StorageConfig::from_backend("bs", &local, None, LocalMode::Host).unwrap();
        assert_eq!(
            host.location,
            Location::Local {
                root: "/srv/backups/team-a".into()
            }
        );
        let job = StorageConfig::from_backend("bs", &local, None, LocalMode::Mounted).unwrap();
        assert_eq!(
            job.location,
            Location::Local {
                root: "/kubestash/team-a".into()
            }
        );

        let gcs = Backend {
            provider: Some(StorageProvider::Gcs),
            gcs: Some(GcsSpec {
                bucket: "b".into(),
                prefix: "p/".into(),
                secret_name: "g".into(),
                endpoint: "http://127.0.0.1:4443/".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sd = secret(&[
            ("GOOGLE_SERVICE_ACCOUNT_JSON_KEY", "{}"),
            ("GOOGLE_PROJECT_ID", "proj"),
        ]);
        let c = StorageConfig::from_backend("bs", &gcs, Some(&sd), LocalMode::Host).unwrap();
        assert_eq!(c.display(), "gs:b:/p");
        let Location::Gcs(g) = c.location else { panic!() };
        assert_eq!(g.endpoint.as_deref(), Some("http://127.0.0.1:4443"));
        assert_eq!(g.project_id.as_deref(), Some("proj"));

        let az = Backend {
            provider: Some(StorageProvider::Azure),
            azure: Some(AzureSpec {
                storage_account: "acct".into(),
                container: "c".into(),
                secret_name: "a".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = StorageConfig::from_backend("bs", &az, Some(&secret(&[])), LocalMode::Host).unwrap_err();
        assert!(e.to_string().contains("AZURE_ACCOUNT_KEY"), "{e}");

        let rest = Backend {
            provider: Some(StorageProvider::Rest),
            rest: Some(RestServerSpec {
                url: "http://u:p%40ss@127.0.0.1:8000/repo/".into(),
                secret_name: String::new(),
            }),
            ..Default::default()
        };
        let c = StorageConfig::from_backend("bs", &rest, None, LocalMode::Host).unwrap();
        let Location::Rest(r) = &c.location else { panic!() };
        assert_eq!(r.url, "http://127.0.0.1:8000/repo");
        assert_eq!(
            (r.username.as_deref(), r.password.as_deref()),
            (Some("u"), Some("p@ss"))
        );
        assert!(RestLocation::parse("x", "url", "ftp://h/").is_err());
    }
}
