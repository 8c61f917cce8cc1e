//! Progress counters an operation updates as it goes and a front end (a progress bar, a
//! status field) reads from another thread. Lock-free; a total of 0 means "not known".

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes and items done so far, and the totals when known.
#[derive(Debug, Default)]
pub struct Progress {
    bytes: AtomicU64,
    items: AtomicU64,
    total_bytes: AtomicU64,
    total_items: AtomicU64,
}

impl Progress {
    /// Fresh counters.
    pub fn new() -> Progress {
        Progress::default()
    }

    /// Count `n` more bytes done.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Count one more item (file) done.
    pub fn add_item(&self) {
        self.add_items(1);
    }

    /// Count `n` more items done.
    pub fn add_items(&self, n: u64) {
        self.items.fetch_add(n, Ordering::Relaxed);
    }

    /// Set the expected totals (bytes, items), once known.
    pub fn set_totals(&self, bytes: u64, items: u64) {
        self.total_bytes.store(bytes, Ordering::Relaxed);
        self.total_items.store(items, Ordering::Relaxed);
    }

    /// Bytes done.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Items done.
    pub fn items(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }

    /// Expected bytes (0: unknown).
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes.load(Ordering::Relaxed)
    }

    /// Expected items (0: unknown).
    pub fn total_items(&self) -> u64 {
        self.total_items.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads() {
        let p = Progress::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        p.add_bytes(3);
                        p.add_item();
                    }
                });
            }
        });
        p.set_totals(12_000, 4000);
        assert_eq!(
            (p.bytes(), p.items(), p.total_bytes(), p.total_items()),
            (12_000, 4000, 12_000, 4000)
        );
    }
}
