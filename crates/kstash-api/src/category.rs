//! Error categories: the one vocabulary every crate's errors map to, so callers (the work
//! queue's backoff, events, metrics, exit codes) decide what to do next without reading text.

/// What kind of failure an error is, and so what a caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCategory {
    /// Someone else wrote first (a stale resourceVersion, a name taken): retry at once.
    Conflict,
    /// May go away by itself (storage unreachable, a lock held, a timeout): retry with backoff.
    Transient,
    /// The input is wrong (a bad field, a bad reference): retrying will not help until a user
    /// changes something; retry slowly.
    Invalid,
    /// Something referenced does not exist (yet): retry slowly, it may be created.
    NotFound,
    /// Will never succeed (a corrupted repository, a failed tool): do not retry.
    Permanent,
}

impl ErrorCategory {
    /// The lower-case name, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::Conflict => "conflict",
            ErrorCategory::Transient => "transient",
            ErrorCategory::Invalid => "invalid",
            ErrorCategory::NotFound => "not_found",
            ErrorCategory::Permanent => "permanent",
        }
    }
}

impl std::fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
