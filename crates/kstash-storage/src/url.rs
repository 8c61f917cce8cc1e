//! restic-style repository URLs (`s3:…`, `gs:…`, `azure:…`, `rest:…`, `b2:…`, `swift:…`, local
//! paths) with credentials from the usual environment variables, so kstash and restic can be
//! pointed at the same repository.

use std::path::PathBuf;

use crate::config::{
    AzureLocation, B2Location, GcsLocation, Location, RestLocation, S3Credentials, S3Location, StorageConfig,
    SwiftLocation, clean_prefix,
};
use crate::error::{Result, StorageError};

/// Parse `url`, reading credentials through `env` (pass `|k| std::env::var(k).ok()`).
///
/// | URL | credentials |
/// |---|---|
/// | `/path`, `local:/path` | — |
/// | `s3:http://host:port/bucket/prefix`, `s3:host/bucket/prefix` (https) | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_DEFAULT_REGION`; none: profile/instance credentials |
/// | `gs:bucket:/prefix` | `GOOGLE_APPLICATION_CREDENTIALS` (a key file), `GOOGLE_PROJECT_ID`; `STORAGE_EMULATOR_HOST` for an emulator |
/// | `azure:container:/prefix` | `AZURE_ACCOUNT_NAME`, `AZURE_ACCOUNT_KEY`; `AZURE_ENDPOINT` (kstash) for Azurite |
/// | `rest:http://[user:pass@]host:port/path` | `RESTIC_REST_USERNAME`, `RESTIC_REST_PASSWORD` |
/// | `b2:bucket:prefix` | `B2_ACCOUNT_ID`, `B2_ACCOUNT_KEY`, `B2_BUCKET_ID` |
/// | `swift:container:/prefix` | `OS_STORAGE_URL`, `OS_AUTH_TOKEN` |
pub fn parse_repository_url(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<StorageConfig> {
    let object = format!("repository {url:?}");
    let bad = |field: &str, reason: String, fix: &str| StorageError::config(&object, field, reason, fix);
    let env = |k: &str| env(k).filter(|v| !v.is_empty());
    let need = |k: &str, what: &str| {
        env(k).ok_or_else(|| {
            StorageError::config(
                &object,
                format!("environment variable {k}"),
                format!("not set ({what})"),
                format!("export {k}"),
            )
        })
    };
    let (scheme, rest) = match url.split_once(':') {
        Some((s, r)) if ["s3", "gs", "azure", "rest", "b2", "swift", "local"].contains(&s) => (s, r),
        _ if url.contains("://") || (url.contains(':') && !url.starts_with('/') && !url.starts_with('.')) => {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(bad(
                "scheme",
                format!("unknown backend {scheme:?}"),
                "use a local path or one of s3:, gs:, azure:, rest:, b2:, swift:",
            ));
        }
        _ => ("local", url),
    };
    let location = match scheme {
        "local" => {
            if rest.is_empty() {
                return Err(bad("path", "empty".into(), "give a directory"));
            }
            Location::Local {
                root: PathBuf::from(rest),
            }
        }
        "s3" => {
            // s3:http://host:port/bucket/prefix or s3:host/bucket/prefix (https).
            let (endpoint, path) = match rest.split_once("://") {
                Some((sch, r)) => {
                    let (host, path) = r.split_once('/').unwrap_or((r, ""));
                    (format!("{sch}://{host}"), path)
                }
                None => {
                    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                    (format!("https://{host}"), path)
                }
            };
            let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
            if bucket.is_empty() {
                return Err(bad(
                    "bucket",
                    "missing".into(),
                    "use s3:http://host:port/bucket/prefix",
                ));
            }
            let credentials = match env("AWS_ACCESS_KEY_ID") {
                Some(id) => Some(S3Credentials {
                    access_key_id: id,
                    secret_access_key: need("AWS_SECRET_ACCESS_KEY", "the S3 secret key")?,
                    session_token: env("AWS_SESSION_TOKEN"),
                }),
                None => None,
            };
            Location::S3(S3Location::new(
                &endpoint,
                bucket,
                prefix,
                &env("AWS_DEFAULT_REGION")
                    .or_else(|| env("AWS_REGION"))
                    .unwrap_or_default(),
                credentials,
                false,
                None,
            ))
        }
        "gs" => {
            let (bucket, prefix) = rest.split_once(':').ok_or_else(|| {
                bad(
                    "bucket",
                    "no `:` after the bucket".into(),
                    "use gs:bucket:/prefix",
                )
            })?;
            let json = match env("GOOGLE_APPLICATION_CREDENTIALS") {
                Some(file) => Some(std::fs::read_to_string(&file).map_err(|e| {
                    bad(
                        "environment variable GOOGLE_APPLICATION_CREDENTIALS",
                        format!("cannot read {file}: {e}"),
                        "point it at a service account key file",
                    )
                })?),
                None => None,
            };
            let endpoint = env("STORAGE_EMULATOR_HOST").map(|h| {
                if h.contains("://") {
                    h
                } else {
                    format!("http://{h}")
                }
            });
            Location::Gcs(GcsLocation {
                bucket: bucket.to_string(),
                prefix: clean_prefix(prefix),
                service_account_json: json,
                project_id: env("GOOGLE_PROJECT_ID"),
                endpoint,
            })
        }
        "azure" => {
            let (container, prefix) = rest.split_once(':').ok_or_else(|| {
                bad(
                    "container",
                    "no `:` after the container".into(),
                    "use azure:container:/prefix",
                )
            })?;
            Location::Azure(AzureLocation {
                account: need("AZURE_ACCOUNT_NAME", "the storage account")?,
                container: container.to_string(),
                prefix: clean_prefix(prefix),
                account_key: env("AZURE_ACCOUNT_KEY"),
                endpoint: env("AZURE_ENDPOINT"),
            })
        }
        "rest" => {
            let mut l = RestLocation::parse(&object, "url", rest)?;
            if l.username.is_none()
                && let Some(u) = env("RESTIC_REST_USERNAME")
            {
                l.username = Some(u);
                l.password = env("RESTIC_REST_PASSWORD");
            }
            Location::Rest(l)
        }
        "b2" => {
            let (bucket, prefix) = rest.split_once(':').unwrap_or((rest, ""));
            Location::B2(B2Location {
                bucket: bucket.to_string(),
                bucket_id: need("B2_BUCKET_ID", "the bucket's id")?,
                prefix: clean_prefix(prefix),
                account_id: need("B2_ACCOUNT_ID", "the application key id")?,
                account_key: need("B2_ACCOUNT_KEY", "the application key")?,
            })
        }
        "swift" => {
            let (container, prefix) = rest.split_once(':').unwrap_or((rest, ""));
            Location::Swift(SwiftLocation {
                container: container.to_string(),
                prefix: clean_prefix(prefix),
                storage_url: need("OS_STORAGE_URL", "the Swift storage URL")?,
                token: need("OS_AUTH_TOKEN", "a Swift auth token")?,
            })
        }
        _ => unreachable!("schemes are checked above"),
    };
    Ok(StorageConfig::new(location))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn s3_urls_with_and_without_scheme() {
        let e = env_of(&[("AWS_ACCESS_KEY_ID", "ak"), ("AWS_SECRET_ACCESS_KEY", "sk")]);
        let c = parse_repository_url("s3:http://127.0.0.1:8333/bucket/a/b", &e).unwrap();
        let Location::S3(l) = &c.location else { panic!() };
        assert_eq!(
            (l.endpoint.as_str(), l.bucket.as_str(), l.prefix.as_str()),
            ("http://127.0.0.1:8333", "bucket", "a/b")
        );
        assert_eq!(l.credentials.as_ref().unwrap().access_key_id, "ak");
        assert_eq!(c.display(), "s3:http://127.0.0.1:8333/bucket/a/b");

        let c = parse_repository_url("s3:s3.amazonaws.com/bucket", env_of(&[])).unwrap();
        let Location::S3(l) = &c.location else { panic!() };
        assert_eq!(l.endpoint, "https://s3.amazonaws.com");
        assert!(l.virtual_host_style && l.credentials.is_none() && l.prefix.is_empty());

        let err = parse_repository_url("s3:http://h:1/b", env_of(&[("AWS_ACCESS_KEY_ID", "x")])).unwrap_err();
        assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        assert!(parse_repository_url("s3:http://h:1/", env_of(&[])).is_err());
    }

    #[test]
    fn gs_azure_rest_local_urls() {
        let c = parse_repository_url(
            "gs:bkt:/some/prefix",
            env_of(&[("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")]),
        )
        .unwrap();
        let Location::Gcs(g) = &c.location else { panic!() };
        assert_eq!((g.bucket.as_str(), g.prefix.as_str()), ("bkt", "some/prefix"));
        assert_eq!(g.endpoint.as_deref(), Some("http://127.0.0.1:4443"));

        let err = parse_repository_url("azure:c:/p", env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AZURE_ACCOUNT_NAME") && err.contains("export AZURE_ACCOUNT_NAME"),
            "{err}"
        );
        let c = parse_repository_url(
            "azure:c:/p",
            env_of(&[("AZURE_ACCOUNT_NAME", "acct"), ("AZURE_ACCOUNT_KEY", "k")]),
        )
        .unwrap();
        assert_eq!(c.display(), "azure:c:/p");

        let c = parse_repository_url(
            "rest:http://127.0.0.1:8000/repo",
            env_of(&[("RESTIC_REST_USERNAME", "u"), ("RESTIC_REST_PASSWORD", "p")]),
        )
        .unwrap();
        let Location::Rest(r) = &c.location else { panic!() };
        assert_eq!(
            (r.username.as_deref(), r.password.as_deref()),
            (Some("u"), Some("p"))
        );

        assert_eq!(
            parse_repository_url("/srv/repo", env_of(&[])).unwrap().location,
            Location::Local {
                root: "/srv/repo".into()
            }
        );
        assert_eq!(
            parse_repository_url("local:rel/dir", env_of(&[]))
                .unwrap()
                .location,
            Location::Local {
                root: "rel/dir".into()
            }
        );
        let err = parse_repository_url("sftp:host:/x", env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown backend \"sftp\""), "{err}");
    }
}
