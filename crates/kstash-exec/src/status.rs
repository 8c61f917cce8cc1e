//! Status writes the executor owns — `Snapshot.status.components[<name>]` and
//! `RestoreSession.status.components[<name>]` — as read-modify-write of the status subresource,
//! retried on resourceVersion conflicts (the controller writes the same objects), plus the Go
//! duration and Kubernetes time formats used in them.

use std::time::Duration;

use kstash_api::client::{Kind, Resources, ResourcesExt};
use kstash_api::common::Timestamp;

use crate::error::Result;

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

/// A duration as Go's `time.Duration.String()` prints it, to the millisecond (`850ms`, `12.3s`,
/// `1m5s`, `2h0m1.25s`).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
    let (s, frac) = ((ms / 1000) % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if frac == 0 {
        out.push_str(&format!("{s}s"));
    } else {
        let frac = format!("{frac:03}");
        out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0')));
    }
    out
}

/// A Kubernetes time.
pub(crate) fn k8s_time(t: jiff::Timestamp) -> Timestamp {
    Timestamp::from(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_micros(850_400)), "850ms");
        assert_eq!(go_duration(Duration::from_millis(12_300)), "12.3s");
        assert_eq!(go_duration(Duration::from_millis(1_250)), "1.25s");
        assert_eq!(go_duration(Duration::from_secs(65)), "1m5s");
        assert_eq!(go_duration(Duration::from_millis(7_201_250)), "2h0m1.25s");
    }
}
