//! Leader election on a coordination.k8s.io/v1 Lease: one operator replica holds the Lease and
//! renews it; the others wait until it expires. Every write carries the Lease's resourceVersion,
//! so two replicas racing for an expired Lease cannot both win.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use crate::error::{KubeError, Result};

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration: Duration,
}

impl LeaseConfig {
    /// How often the holder renews (a third of the duration, like client-go's defaults).
    pub fn renew_every(&self) -> Duration {
        self.duration / 3
    }
}

/// What one election round decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Election {
    /// This replica holds the Lease (acquired or renewed).
    Leader,
    /// Someone else holds a valid Lease.
    Follower { holder: String },
}

fn micro(t: Timestamp) -> MicroTime {
    MicroTime(t)
}

/// Whether a Lease held by someone else has expired at `now`.
pub fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renew) = spec.renew_time.as_ref().map(|t| t.0) else {
        return true;
    };
    let secs = spec.lease_duration_seconds.unwrap_or(15).max(1);
    now.duration_since(renew).as_secs() >= i64::from(secs)
}

/// The Lease spec after this replica takes or renews it.
pub fn claimed(old: Option<&LeaseSpec>, cfg: &LeaseConfig, now: Timestamp) -> LeaseSpec {
    let same_holder = old.and_then(|s| s.holder_identity.as_deref()) == Some(cfg.identity.as_str());
    let transitions = old.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs().max(1) as i32),
        acquire_time: if same_holder {
            old.and_then(|s| s.acquire_time.clone())
        } else {
            Some(micro(now))
        },
        renew_time: Some(micro(now)),
        lease_transitions: Some(if same_holder || old.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..Default::default()
    }
}

/// One round: create, renew or take over the Lease when allowed.
pub async fn try_acquire(client: &kube::Client, cfg: &LeaseConfig) -> Result<Election> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let object = format!("Lease {}/{}", cfg.namespace, cfg.name);
    let api_err = |e: kube::Error| KubeError::Api {
        object: object.clone(),
        message: e.to_string(),
    };
    let now = Timestamp::now();
    match api.get_opt(&cfg.name).await.map_err(api_err)? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(claimed(None, cfg, now)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Election::Leader),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Election::Follower {
                    holder: "another replica (lost the race to create the Lease)".into(),
                }),
                Err(e) => Err(api_err(e)),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let holder = spec.holder_identity.clone().unwrap_or_default();
            if !holder.is_empty() && holder != cfg.identity && !expired(&spec, now) {
                return Ok(Election::Follower { holder });
            }
            lease.spec = Some(claimed(Some(&spec), cfg, now));
            // replace() sends the resourceVersion we read: a concurrent writer makes this fail.
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(Election::Leader),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Election::Follower {
                    holder: "another replica (lost the race to renew the Lease)".into(),
                }),
                Err(e) => Err(api_err(e)),
            }
        }
    }
}

/// Give the Lease up on shutdown so another replica takes over at once.
pub async fn release(client: &kube::Client, cfg: &LeaseConfig) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let Some(mut lease) = api
        .get_opt(&cfg.name)
        .await
        .map_err(|e| KubeError::Other(e.to_string()))?
    else {
        return Ok(());
    };
    let mut spec = lease.spec.clone().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    lease.spec = Some(spec);
    api.replace(&cfg.name, &PostParams::default(), &lease)
        .await
        .map_err(|e| KubeError::Other(format!("releasing Lease {}/{}: {e}", cfg.namespace, cfg.name)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(id: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: "kstash".into(),
            name: "kstash-operator".into(),
            identity: id.into(),
            duration: Duration::from_secs(15),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_lease_expires_after_its_duration_without_renewal() {
        let spec = claimed(None, &cfg("a"), at("2026-01-01T00:00:00Z"));
        assert!(!expired(&spec, at("2026-01-01T00:00:14Z")));
        assert!(expired(&spec, at("2026-01-01T00:00:15Z")));
        assert!(expired(&LeaseSpec::default(), at("2026-01-01T00:00:00Z")));
    }

    #[test]
    fn renewing_keeps_the_acquire_time_and_a_takeover_counts_a_transition() {
        let first = claimed(None, &cfg("a"), at("2026-01-01T00:00:00Z"));
        assert_eq!(first.lease_transitions, Some(0));
        let renewed = claimed(Some(&first), &cfg("a"), at("2026-01-01T00:00:05Z"));
        assert_eq!(renewed.acquire_time, first.acquire_time);
        assert_eq!(renewed.renew_time, Some(micro(at("2026-01-01T00:00:05Z"))));
        assert_eq!(renewed.lease_transitions, Some(0));
        let taken = claimed(Some(&renewed), &cfg("b"), at("2026-01-01T00:01:00Z"));
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.acquire_time, Some(micro(at("2026-01-01T00:01:00Z"))));
        assert_eq!(taken.lease_transitions, Some(1));
    }
}
