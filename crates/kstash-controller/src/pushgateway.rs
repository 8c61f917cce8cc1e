//! The bounded queue in front of the Pushgateway: a finished session hands its metrics to
//! [`Pusher::enqueue`] and goes on; one sender thread pushes them in order. A slow or unreachable
//! Pushgateway then delays no reconcile; when the queue is full the push is dropped and said so.

use std::sync::mpsc::{self, SyncSender, TrySendError};

/// Pushes waiting at most; a full queue means the Pushgateway has been unreachable for a while.
pub const QUEUE_DEPTH: usize = 1024;

#[derive(Debug)]
struct Push {
    job: String,
    grouping: Vec<(String, String)>,
    body: String,
    /// The session the metrics are of, for log lines.
    object: String,
}

/// Why a push was not queued.
#[derive(Debug, thiserror::Error)]
#[error(
    "metrics of {object} not pushed: the queue to the Pushgateway at {url} is full ({QUEUE_DEPTH} pushes waiting; is it reachable?)"
)]
pub struct QueueFull {
    pub object: String,
    pub url: String,
}

/// A Pushgateway client with a bounded queue and its own sender thread (which ends when the
/// `Pusher` is dropped and the queue drained).
#[derive(Debug)]
pub struct Pusher {
    url: String,
    tx: SyncSender<Push>,
}

impl Pusher {
    /// Start the sender thread for the Pushgateway at `url`.
    pub fn start(url: impl Into<String>) -> Pusher {
        let url = url.into();
        let (tx, rx) = mpsc::sync_channel::<Push>(QUEUE_DEPTH);
        let target = url.clone();
        let spawned = std::thread::Builder::new()
            .name("pushgateway".into())
            .spawn(move || {
                for push in rx {
                    let grouping: Vec<(&str, &str)> = push
                        .grouping
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    match crate::metrics::push(&target, &push.job, &grouping, &push.body) {
                        Ok(()) => tracing::debug!(object = %push.object, "session metrics pushed"),
                        Err(e) => tracing::warn!(object = %push.object, error = %e, "MetricsPushFailed"),
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the Pushgateway sender; metrics will not be pushed");
        }
        Pusher { url, tx }
    }

    /// The Pushgateway's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queue a push of `body` to group `job` + `grouping`; `object` names the session.
    pub fn enqueue(
        &self,
        object: &str,
        job: &str,
        grouping: &[(&str, &str)],
        body: String,
    ) -> Result<(), QueueFull> {
        let push = Push {
            job: job.to_string(),
            grouping: grouping
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            body,
            object: object.to_string(),
        };
        match self.tx.try_send(push) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(QueueFull {
                object: object.to_string(),
                url: self.url.clone(),
            }),
        }
    }
}
