//! Creating a missing bucket or container, as `restic init` does: S3 (`CreateBucket`), GCS (the
//! JSON API's bucket insert) and Azure Blob (`Create Container`). OpenDAL has no bucket-level
//! operations, so each is one request signed by reqsign — the signers, credential chains and
//! HTTP client OpenDAL itself uses for that storage, so whatever credentials work for the
//! objects work here.
//!
//! Only `kstash repo init` calls this. A BackupStorage keeps KubeStash's behaviour: its bucket
//! must exist, and initialising it into a missing one fails with [`RemoteKind::BucketMissing`].

use std::sync::Arc;

use bytes::Bytes;
use opendal::HttpTransporter;
use opendal_http_transport_reqwest::ReqwestTransport;
use reqsign_core::{Context, OsEnv, ProvideCredentialChain, Signer};
use reqsign_file_read_tokio::TokioFileRead;

use crate::config::{AzureLocation, GcsLocation, Location, S3Location, StorageConfig};
use crate::error::{RemoteKind, Result, StorageError};
use crate::object::http_client;
use crate::runtime::block_on;

/// The scope OpenDAL asks Google for: objects and buckets, read and write.
const GCS_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// The Blob service version OpenDAL sends (Azurite 3 knows it).
const AZURE_VERSION: &str = "2022-11-02";

/// Create the bucket or container of `config` (S3, GCS, Azure Blob) and say which (`bucket b`,
/// `container c`). A bucket that already exists and is ours is no error (two inits racing);
/// other storages answer [`StorageError::Unsupported`].
pub fn create_bucket(config: &StorageConfig) -> Result<String> {
    let display = config.display();
    let request = match &config.location {
        Location::S3(l) => s3_request(l, &display)?,
        Location::Gcs(l) => gcs_request(l, &display)?,
        Location::Azure(l) => azure_request(l, &display)?,
        _ => {
            return Err(StorageError::Unsupported {
                storage: display,
                what: "creating the bucket or container (create it with the provider's tools)".into(),
            });
        }
    };
    let what = request.what.clone();
    block_on(send(request, display))?;
    Ok(what)
}

/// One unsigned request and how to sign it.
struct Request {
    /// What the request creates, for messages (`bucket b`, `container c`).
    what: String,
    http: http::Request<Bytes>,
    client: reqwest::Client,
    signer: Sign,
}

enum Sign {
    /// An emulator without credentials.
    Nothing,
    Aws(Signer<reqsign_aws_v4::Credential>),
    Google(Signer<reqsign_google::Credential>),
    Azure(Signer<reqsign_azure_storage::Credential>),
}

/// The context a signer loads credentials with (files, environment, token endpoints).
fn context(client: &reqwest::Client) -> Context {
    Context::new()
        .with_file_read(TokioFileRead)
        .with_env(OsEnv)
        .with_http_send(HttpTransporter::new(ReqwestTransport::new(client.clone())))
}

fn s3_request(l: &S3Location, display: &str) -> Result<Request> {
    use reqsign_aws_v4::{DefaultCredentialProvider, RequestSigner, StaticCredentialProvider};
    let client = http_client(l.insecure_tls, l.ca_cert_pem.as_deref(), None, display)?;
    // As the object operator is built (object.rs): static keys alone when given, else the
    // environment, the profile and the instance metadata.
    let provider = match &l.credentials {
        Some(c) => {
            let p = StaticCredentialProvider::new(&c.access_key_id, &c.secret_access_key);
            let p = match &c.session_token {
                Some(t) => p.with_session_token(t),
                None => p,
            };
            ProvideCredentialChain::new().push(p)
        }
        None => ProvideCredentialChain::new().push(DefaultCredentialProvider::builder().build()),
    };
    let signer = Signer::new(context(&client), provider, RequestSigner::new("s3", &l.region));
    let url = if l.virtual_host_style {
        let (scheme, host) = l.endpoint.split_once("://").unwrap_or(("https", &l.endpoint));
        format!("{scheme}://{}.{}/", l.bucket, host.trim_end_matches('/'))
    } else {
        format!("{}/{}", l.endpoint.trim_end_matches('/'), l.bucket)
    };
    // us-east-1 is the default location and must not be named; every other region must be.
    let body = if l.region.is_empty() || l.region == "us-east-1" {
        Bytes::new()
    } else {
        Bytes::from(format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
            l.region
        ))
    };
    Ok(Request {
        what: format!("bucket {}", l.bucket),
        http: build(http::Method::PUT, &url, &[], body, display)?,
        client,
        signer: Sign::Aws(signer),
    })
}

fn gcs_request(l: &GcsLocation, display: &str) -> Result<Request> {
    use reqsign_google::{DefaultCredentialProvider, RequestSigner, StaticCredentialProvider};
    let client = http_client(false, None, None, display)?;
    let key_project = l.service_account_json.as_deref().and_then(|json| {
        serde_json::from_str::<serde_json::Value>(json).ok()?["project_id"]
            .as_str()
            .map(str::to_string)
    });
    let project = match (l.project_id.clone().or(key_project), &l.endpoint) {
        (Some(p), _) => p,
        // An emulator does not care which project owns the bucket.
        (None, Some(_)) => "kstash".into(),
        (None, None) => {
            return Err(StorageError::config(
                display,
                "environment variable GOOGLE_PROJECT_ID",
                "creating a bucket needs the project it belongs to",
                "set GOOGLE_PROJECT_ID, or create the bucket first",
            ));
        }
    };
    let signer = match (&l.service_account_json, &l.endpoint) {
        (Some(json), _) => Sign::Google(Signer::new(
            context(&client),
            ProvideCredentialChain::new().push(StaticCredentialProvider::new(json).with_scope(GCS_SCOPE)),
            RequestSigner::new("storage").with_scope(GCS_SCOPE),
        )),
        // An emulator without a key: no credentials at all (as object.rs).
        (None, Some(_)) => Sign::Nothing,
        (None, None) => Sign::Google(Signer::new(
            context(&client),
            ProvideCredentialChain::new().push(DefaultCredentialProvider::builder().build()),
            RequestSigner::new("storage").with_scope(GCS_SCOPE),
        )),
    };
    let endpoint = l
        .endpoint
        .as_deref()
        .unwrap_or("https://storage.googleapis.com")
        .trim_end_matches('/');
    let url = format!("{endpoint}/storage/v1/b?project={}", query_escape(&project));
    let body = Bytes::from(serde_json::json!({ "name": l.bucket }).to_string());
    Ok(Request {
        what: format!("bucket {}", l.bucket),
        http: build(
            http::Method::POST,
            &url,
            &[("content-type", "application/json")],
            body,
            display,
        )?,
        client,
        signer,
    })
}

fn azure_request(l: &AzureLocation, display: &str) -> Result<Request> {
    use reqsign_azure_storage::{DefaultCredentialProvider, RequestSigner, StaticCredentialProvider};
    let client = http_client(false, None, None, display)?;
    let mut provider = ProvideCredentialChain::new().push(DefaultCredentialProvider::new());
    if let Some(key) = &l.account_key {
        provider = provider.push_front(StaticCredentialProvider::new_shared_key(&l.account, key));
    }
    let signer = Signer::new(context(&client), provider, RequestSigner::new());
    let endpoint = l
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("https://{}.blob.core.windows.net", l.account));
    let url = format!(
        "{}/{}?restype=container",
        endpoint.trim_end_matches('/'),
        l.container
    );
    Ok(Request {
        what: format!("container {}", l.container),
        http: build(
            http::Method::PUT,
            &url,
            &[("x-ms-version", AZURE_VERSION)],
            Bytes::new(),
            display,
        )?,
        client,
        signer: Sign::Azure(signer),
    })
}

fn build(
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    display: &str,
) -> Result<http::Request<Bytes>> {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b = b.header("content-length", body.len().to_string());
    b.body(body).map_err(|e| {
        StorageError::config(
            display,
            "endpoint",
            format!("cannot build a request for {url}: {e}"),
            "check the endpoint and the bucket name",
        )
    })
}

/// Percent-encode a query value (project ids are letters, digits and `-`, but be safe).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sign and send the request; 2xx, or "you already own it", is success.
async fn send(req: Request, display: String) -> Result<()> {
    let Request {
        what,
        http,
        client,
        signer,
    } = req;
    let remote = |kind, detail: String| StorageError::Remote {
        storage: display.clone(),
        op: "create",
        object: what.clone(),
        kind,
        detail,
    };
    let (mut parts, body) = http.into_parts();
    let signed = match &signer {
        Sign::Nothing => Ok(()),
        Sign::Aws(s) => s.sign(&mut parts, None).await,
        Sign::Google(s) => s.sign(&mut parts, None).await,
        Sign::Azure(s) => s.sign(&mut parts, None).await,
    };
    signed.map_err(|e| remote(RemoteKind::Auth, format!("cannot sign the request: {e}")))?;
    // reqwest sets the host header itself (OpenDAL removes the signer's for the same reason).
    parts.headers.remove(http::header::HOST);
    let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
        .map_err(|e| remote(RemoteKind::Other, e.to_string()))?;
    let response = client.execute(request).await.map_err(|e| {
        let kind = if e.is_connect() || e.is_timeout() || e.is_request() {
            RemoteKind::Network
        } else {
            RemoteKind::Other
        };
        let mut detail = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            detail = format!("{detail}: {s}");
            src = s.source();
        }
        remote(kind, detail)
    })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() || already_ours(status.as_u16(), &text) {
        return Ok(());
    }
    let kind = match status.as_u16() {
        401 | 403 => RemoteKind::Auth,
        500..=599 => RemoteKind::Unavailable,
        _ => RemoteKind::Other,
    };
    Err(remote(kind, format!("status: {status}: {}", text.trim())))
}

/// Whether a refusal means the bucket is there and ours: S3's `BucketAlreadyOwnedByYou`,
/// Azure's `ContainerAlreadyExists`, GCS's 409 ("you already own it" or a name taken; a name
/// taken by someone else fails at the next request with "access denied").
fn already_ours(status: u16, body: &str) -> bool {
    status == 409
        && (body.contains("BucketAlreadyOwnedByYou")
            || body.contains("ContainerAlreadyExists")
            || body.contains("\"code\": 409")
            || body.contains("\"code\":409"))
}

/// The engine backend for `kstash repo init` at `config`: as [`crate::open_backend`], except
/// that a missing bucket or container is created first. Returns what was created, if anything.
pub fn open_backend_creating_bucket(
    config: &StorageConfig,
) -> Result<(Arc<dyn kstash_repo::Backend>, Option<String>)> {
    match crate::open_backend(config) {
        Err(e) if e.remote_kind() == Some(RemoteKind::BucketMissing) => {
            let what = create_bucket(config)?;
            Ok((crate::open_backend(config)?, Some(what)))
        }
        other => other.map(|b| (b, None)),
    }
}
