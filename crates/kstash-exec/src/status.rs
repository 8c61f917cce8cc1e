//! Status writes the executor owns — `Snapshot.status.components[<name>]` and
//! `RestoreSession.status.components[<name>]` — as read-modify-write of the status subresource,
//! retried on resourceVersion conflicts (the controller writes the same objects), plus the
//! Kubernetes time format used in them (Go durations: [`kstash_addons::go_duration`]).

use std::time::Duration;

pub(crate) use kstash_addons::go_duration;
use kstash_api::client::{Kind, Resources, ResourcesExt};
use kstash_api::common::Timestamp;

use crate::Result;

/// Attempts of one status update before a conflict is reported.
const CONFLICT_RETRIES: u32 = 20;

/// Read the object, apply `change` to it and write its status; on a conflict (someone else wrote
/// in between) read it again and re-apply. Returns the stored object.
pub(crate) fn update_status<T: Kind>(
    client: &dyn Resources,
    namespace: &str,
    name: &str,
    mut change: impl FnMut(&mut T),
) -> Result<T> {
    let mut attempt = 0;
    loop {
        let mut obj: T = client.must_get(namespace, name)?;
        change(&mut obj);
        match client.update_status_as(&obj) {
            Ok(stored) => return Ok(stored),
            Err(e) if e.is_conflict() && attempt + 1 < CONFLICT_RETRIES => {
                attempt += 1;
                tracing::debug!(
                    kind = T::RT.kind,
                    namespace,
                    name,
                    attempt,
                    "status conflict; retrying"
                );
                std::thread::sleep(Duration::from_millis(5 * u64::from(attempt)));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A Kubernetes time.
pub(crate) fn k8s_time(t: jiff::Timestamp) -> Timestamp {
    Timestamp::from(t)
}
