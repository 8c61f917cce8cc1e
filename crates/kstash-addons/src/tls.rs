//! TLS material of a database target, from its AppBinding (spec §1.13): the CA bundle of
//! `spec.clientConfig.caBundle` (or `ca.crt` of the TLS Secret), the client certificate and key of
//! `spec.tlsSecret` (`tls.crt`, `tls.key`), `insecureSkipTLSVerify` and `serverName`. Drivers of
//! external tools get the material as files in a private temporary directory ([`TlsFiles`]),
//! removed when the driver is done.

use std::path::PathBuf;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kstash_api::appcatalog::AppBinding;
use kstash_api::client::{Resources, ResourcesExt};

use crate::error::{ExecError, Result};
use crate::secret::secret_data;

/// Client certificate key of a TLS Secret.
pub(crate) const CERT_KEY: &str = "tls.crt";
/// Private key of a TLS Secret.
pub(crate) const KEY_KEY: &str = "tls.key";
/// CA key of a TLS Secret.
pub(crate) const CA_KEY: &str = "ca.crt";

/// TLS settings of a connection.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Tls {
    /// PEM CA certificates to verify the server with.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate and key (both or neither).
    pub client: Option<(Vec<u8>, Vec<u8>)>,
    /// `ns/name` of the TLS Secret, for messages.
    pub secret: Option<String>,
    /// `spec.clientConfig.insecureSkipTLSVerify`.
    pub insecure_skip_verify: bool,
    /// `spec.clientConfig.serverName`.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_cert", &self.client.is_some())
            .field("secret", &self.secret)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// The material written out for a tool; the directory is removed on drop.
#[derive(Debug)]
pub(crate) struct TlsFiles {
    _dir: tempfile::TempDir,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Tls {
    /// Write the material into a new private directory (mode 0700, the key 0600).
    pub fn write_files(&self) -> Result<TlsFiles> {
        let io = |what: &str, e: std::io::Error| ExecError::Tool {
            tool: "tls".into(),
            message: format!("cannot write the TLS {what} for the client tools: {e}"),
        };
        let dir = tempfile::Builder::new()
            .prefix("kstash-tls-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| io("directory", e))?;
        let write = |name: &str, data: &[u8]| -> Result<PathBuf> {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let path = dir.path().join(name);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io(name, e))?;
            f.write_all(data).map_err(|e| io(name, e))?;
            Ok(path)
        };
        let ca = self.ca_pem.as_deref().map(|d| write("ca.crt", d)).transpose()?;
        let (cert, key) = match &self.client {
            Some((c, k)) => (Some(write("tls.crt", c)?), Some(write("tls.key", k)?)),
            None => (None, None),
        };
        Ok(TlsFiles {
            _dir: dir,
            ca,
            cert,
            key,
        })
    }
}

/// The TLS settings of `ab` (in namespace `ns`; `object` names it in messages); `None` when it
/// has no CA bundle, no TLS Secret and does not skip verification.
pub(crate) fn from_appbinding(
    client: &dyn Resources,
    ab: &AppBinding,
    ns: &str,
    object: &str,
) -> Result<Option<Tls>> {
    let cc = &ab.spec.client_config;
    let mut tls = Tls {
        insecure_skip_verify: cc.insecure_skip_tls_verify,
        server_name: cc.server_name.clone().filter(|s| !s.is_empty()),
        ..Tls::default()
    };
    if let Some(bundle) = cc.ca_bundle.as_deref().filter(|b| !b.trim().is_empty()) {
        tls.ca_pem = Some(decode_pem(bundle).ok_or_else(|| {
            ExecError::invalid(
                object,
                "spec.clientConfig.caBundle is neither base64 of PEM certificates nor PEM; \
                 set it to the base64 of the CA's PEM file",
            )
        })?);
    }
    if let Some(name) = ab
        .spec
        .tls_secret
        .as_ref()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
    {
        let secret_ref = format!("{ns}/{name}");
        let purpose = format!("the TLS client certificate of {object} (spec.tlsSecret)");
        let Some(secret) = client.get_as::<Secret>(ns, &name)? else {
            return Err(ExecError::SecretNotFound {
                secret: secret_ref,
                key: format!("{CERT_KEY} and {KEY_KEY}"),
                purpose,
            });
        };
        let data = secret_data(&secret);
        let take = |key: &str| -> Result<Vec<u8>> {
            data.data
                .get(key)
                .filter(|v| !v.trim_ascii().is_empty())
                .cloned()
                .ok_or_else(|| ExecError::SecretKeyMissing {
                    secret: secret_ref.clone(),
                    key: key.to_string(),
                    purpose: purpose.clone(),
                })
        };
        tls.client = Some((take(CERT_KEY)?, take(KEY_KEY)?));
        if tls.ca_pem.is_none() {
            tls.ca_pem = data
                .data
                .get(CA_KEY)
                .filter(|v| !v.trim_ascii().is_empty())
                .cloned();
        }
        tls.secret = Some(secret_ref);
    }
    if tls.ca_pem.is_none() && tls.client.is_none() && !tls.insecure_skip_verify {
        return Ok(None);
    }
    Ok(Some(tls))
}

/// PEM from a caBundle: base64 of PEM (Go `[]byte` in YAML), or PEM text itself.
fn decode_pem(bundle: &str) -> Option<Vec<u8>> {
    let trimmed = bundle.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Some(trimmed.as_bytes().to_vec());
    }
    let compact: String = trimmed.split_whitespace().collect();
    let pem = base64::engine::general_purpose::STANDARD.decode(compact).ok()?;
    pem.starts_with(b"-----BEGIN").then_some(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_bundles_are_base64_or_pem() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(decode_pem(&b64).unwrap(), pem.as_bytes());
        assert_eq!(decode_pem(pem).unwrap(), pem.trim().as_bytes());
        assert_eq!(decode_pem("bm90IGEgY2VydA=="), None);
        assert_eq!(decode_pem("%%%"), None);
    }

    #[test]
    fn files_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt as _;
        let tls = Tls {
            ca_pem: Some(b"ca".to_vec()),
            client: Some((b"cert".to_vec(), b"key".to_vec())),
            ..Tls::default()
        };
        let files = tls.write_files().unwrap();
        let key = files.key.clone().unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(key.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        drop(files);
        assert!(!key.exists());
    }
}
