//! Watch events (ADDED / MODIFIED / DELETED) and the in-process fan-out to watchers of one `Store`.

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
}

impl WatchEventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WatchEventType::Added => "ADDED",
            WatchEventType::Modified => "MODIFIED",
            WatchEventType::Deleted => "DELETED",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "ADDED" => Some(WatchEventType::Added),
            "MODIFIED" => Some(WatchEventType::Modified),
            "DELETED" => Some(WatchEventType::Deleted),
            _ => None,
        }
    }
}

/// One committed change. Serialises like a Kubernetes watch event (`{"type": "ADDED", "object":
/// {...}}`) plus the store revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub event_type: WatchEventType,
    /// The store revision of this change; equals `object.metadata.resourceVersion` (for a deletion,
    /// the revision at which the object was removed, and the object is its last state).
    pub revision: u64,
    pub object: Value,
}

/// Senders of the live watchers of one store; closed receivers are dropped on the next send.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    senders: Mutex<Vec<Sender<WatchEvent>>>,
}

impl Hub {
    pub(crate) fn subscribe(&self) -> Receiver<WatchEvent> {
        let (tx, rx) = channel();
        self.senders.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }

    pub(crate) fn publish(&self, events: &[WatchEvent]) {
        if events.is_empty() {
            return;
        }
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        senders.retain(|tx| events.iter().all(|e| tx.send(e.clone()).is_ok()));
    }
}
