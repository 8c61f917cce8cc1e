//! Connection details of a database target from its AppBinding (spec §1.13): host and port from
//! `spec.clientConfig.url` or `spec.clientConfig.service`, credentials from the Secret named by
//! `spec.secret` (`username`/`password`, or the legacy `POSTGRES_USER`/`POSTGRES_PASSWORD`).

use k8s_openapi::api::core::v1::Secret;
use kstash_api::appcatalog::{Address, AppBinding, parse_client_url, query_value};
use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::common::TypedObjectReference;
use kstash_storage::LocalMode;

use crate::error::{ExecError, Result};
use crate::secret::secret_data;
use crate::tls::{self, Tls};

/// Where and as whom to connect to a database.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Connection {
    /// `AppBinding ns/name`, for messages.
    pub object: String,
    /// `ns/name` of the credentials Secret.
    pub secret: String,
    /// The AppBinding's `spec.version` (may be empty).
    pub version: String,
    pub host: String,
    pub port: Option<u16>,
    /// The database named by the URL path, if any.
    pub database: Option<String>,
    /// `sslmode` from the URL or service query.
    pub sslmode: Option<String>,
    /// The URL's or service's scheme (`http`, `https`, `postgres`), if any.
    pub scheme: Option<String>,
    /// `spec.clientConfig.caBundle` (PEM, base64 as in YAML), if any.
    pub ca_bundle: Option<String>,
    /// `spec.clientConfig.insecureSkipTLSVerify`.
    pub insecure_skip_tls_verify: bool,
    pub user: String,
    pub password: String,
    /// TLS material (`caBundle`, `tlsSecret`), when the AppBinding has any.
    pub tls: Option<Tls>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("object", &self.object)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("tls", &self.tls)
            .finish()
    }
}

/// Read the AppBinding a session targets (`target`, its namespace defaulting to `namespace`)
/// and its credentials. `user_keys`/`password_keys` are the Secret keys tried in order.
/// In the embedded runtime ([`LocalMode::Host`]) a service name is used as the host name
/// itself (`127.0.0.1`, `db.example`); in Kubernetes it becomes `<name>.<ns>.svc`.
pub(crate) fn connection(
    client: &dyn Resources,
    target: Option<&TypedObjectReference>,
    namespace: &str,
    owner: &str,
    mode: LocalMode,
    user_keys: &[&str],
    password_keys: &[&str],
) -> Result<Connection> {
    connect(
        client,
        target,
        namespace,
        owner,
        mode,
        user_keys,
        password_keys,
        false,
    )
}

/// [`connection`] for targets whose credentials are optional (Redis): an AppBinding without
/// `spec.secret` gives an empty user and password; with a Secret the password is required and
/// the user is optional (empty when none of `user_keys` is set).
pub(crate) fn connection_optional_auth(
    client: &dyn Resources,
    target: Option<&TypedObjectReference>,
    namespace: &str,
    owner: &str,
    mode: LocalMode,
    user_keys: &[&str],
    password_keys: &[&str],
) -> Result<Connection> {
    connect(
        client,
        target,
        namespace,
        owner,
        mode,
        user_keys,
        password_keys,
        true,
    )
}

#[allow(clippy::too_many_arguments)]
fn connect(
    client: &dyn Resources,
    target: Option<&TypedObjectReference>,
    namespace: &str,
    owner: &str,
    mode: LocalMode,
    user_keys: &[&str],
    password_keys: &[&str],
    optional_auth: bool,
) -> Result<Connection> {
    let target = target.filter(|t| !t.name.is_empty()).ok_or_else(|| {
        ExecError::invalid(
            owner,
            "spec.target is not set; name the AppBinding of the database",
        )
    })?;
    if let Some(kind) = target
        .kind
        .as_deref()
        .filter(|k| !k.is_empty() && *k != "AppBinding")
    {
        return Err(ExecError::invalid(
            owner,
            format!("spec.target.kind is {kind}; a database target must be an AppBinding"),
        ));
    }
    let ns = target
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace);
    let object = format!("AppBinding {ns}/{}", target.name);
    let ab: AppBinding = client.must_get(ns, &target.name)?;
    let cc = &ab.spec.client_config;
    let in_cluster = !matches!(mode, LocalMode::Host);
    let (host, port, database, sslmode, scheme) = match cc.address(in_cluster) {
        Some(Address::Url(url)) => {
            let u = parse_client_url(url).map_err(|m| ExecError::invalid(&object, m))?;
            let sslmode = u.query_value("sslmode");
            (u.host, u.port, u.database, sslmode, u.scheme)
        }
        Some(Address::Service(svc)) => {
            let host = if in_cluster {
                let svc_ns = if svc.namespace.is_empty() {
                    ns
                } else {
                    svc.namespace.as_str()
                };
                format!("{}.{svc_ns}.svc", svc.name)
            } else {
                svc.name.clone()
            };
            let port = match svc.port {
                None => None,
                Some(p) => Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                    ExecError::invalid(
                        &object,
                        format!("spec.clientConfig.service.port {p} is not a port"),
                    )
                })?),
            };
            let sslmode = svc.query.as_deref().and_then(|q| query_value(q, "sslmode"));
            let scheme = Some(svc.scheme.clone()).filter(|s| !s.is_empty());
            (host, port, None, sslmode, scheme)
        }
        None => {
            return Err(ExecError::invalid(
                &object,
                "spec.clientConfig has neither url nor service; set one of them",
            ));
        }
    };
    let tls = tls::from_appbinding(client, &ab, ns, &object)?;
    let client_cert = tls.as_ref().is_some_and(|t| t.client.is_some());
    let secret_name = ab
        .spec
        .secret
        .as_ref()
        .map(|s| s.name.clone())
        .filter(|n| !n.is_empty());
    // With a client certificate the Secret is optional: the certificate authenticates. Targets
    // whose credentials are optional (Redis, ZooKeeper) connect without any.
    let (secret_ref, user, password) = match secret_name {
        None if client_cert || optional_auth => (String::new(), String::new(), String::new()),
        None => {
            return Err(ExecError::invalid(
                &object,
                "spec.secret.name is not set; name the Secret with the credentials",
            ));
        }
        Some(secret_name) => {
            let secret_ref = format!("{ns}/{secret_name}");
            let purpose = format!("the credentials of {object}");
            let Some(secret) = client.get_as::<Secret>(ns, &secret_name)? else {
                return Err(ExecError::SecretNotFound {
                    secret: secret_ref,
                    key: password_keys.join(" or "),
                    purpose,
                });
            };
            let data = secret_data(&secret);
            let pick = |keys: &[&str]| -> Result<String> {
                keys.iter()
                    .find_map(|k| data.get(k).filter(|v| !v.is_empty()))
                    .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
                    .ok_or_else(|| ExecError::SecretKeyMissing {
                        secret: secret_ref.clone(),
                        key: keys.join(" or "),
                        purpose: purpose.clone(),
                    })
            };
            let user = match pick(user_keys) {
                Err(_) if client_cert || optional_auth => String::new(),
                other => other?,
            };
            // A client certificate may stand in for the password.
            let password = match pick(password_keys) {
                Err(_) if client_cert => String::new(),
                other => other?,
            };
            (secret_ref, user, password)
        }
    };
    Ok(Connection {
        object,
        secret: secret_ref,
        version: ab.spec.version.clone(),
        host,
        port,
        database,
        sslmode,
        scheme,
        ca_bundle: cc.ca_bundle.clone().filter(|c| !c.trim().is_empty()),
        insecure_skip_tls_verify: cc.insecure_skip_tls_verify,
        user,
        password,
        tls,
    })
}

/// The connection details of an AppBinding target as environment variables for a verification
/// script: `KSTASH_TARGET_HOST`, `KSTASH_TARGET_PORT` (when known), `KSTASH_TARGET_DATABASE`
/// (when the URL names one), `KSTASH_TARGET_USERNAME`, `KSTASH_TARGET_PASSWORD` (empty when the
/// AppBinding has no Secret) and `KSTASH_TARGET_SCHEME` (when known).
pub fn target_environment(
    client: &dyn Resources,
    target: &TypedObjectReference,
    namespace: &str,
    owner: &str,
    mode: LocalMode,
) -> Result<Vec<(String, String)>> {
    let c = connection_optional_auth(
        client,
        Some(target),
        namespace,
        owner,
        mode,
        &["username", "POSTGRES_USER", "ADMIN_USERNAME"],
        &["password", "POSTGRES_PASSWORD", "ADMIN_PASSWORD"],
    )?;
    let mut env = vec![("KSTASH_TARGET_HOST".to_string(), c.host.clone())];
    if let Some(port) = c.port {
        env.push(("KSTASH_TARGET_PORT".into(), port.to_string()));
    }
    if let Some(db) = &c.database {
        env.push(("KSTASH_TARGET_DATABASE".into(), db.clone()));
    }
    if let Some(scheme) = &c.scheme {
        env.push(("KSTASH_TARGET_SCHEME".into(), scheme.clone()));
    }
    env.push(("KSTASH_TARGET_USERNAME".into(), c.user.clone()));
    env.push(("KSTASH_TARGET_PASSWORD".into(), c.password.clone()));
    Ok(env)
}
