//! A bound on the files a restore holds open while it writes them pack by pack: at most `cap`
//! handles, the least recently used idle one closed to make room and reopened (never created
//! again, never truncated) when its file needs it next.
//!
//! A file stays in progress from the pack holding its first blob to the pack holding its last
//! one; packs that interleave many files would otherwise keep one descriptor per file open and
//! run into `EMFILE`.
//!
//! ```text
//!  worker ─ get(i, open) ─▶ cached? lend the handle (Arc clone), mark it used
//!                         └▶ else: room? (cap counts cached + being opened)
//!                               no: take out the least recently used handle nobody holds
//!                            open outside the lock (close the taken one first, also outside)
//!  worker ─ writes through the lent handle, drops it ─▶ forget(i) when the file is finished
//! ```
//!
//! Concurrency: one mutex over the table, held only to look up, insert and remove, never across
//! an `open` or a `close` (a close may flush, on NFS for one). A handle lent out is an `Arc`
//! clone; its strong count is raised only under the mutex, so a count of 1 seen under the mutex
//! means nobody is writing through it and closing it is safe. Each worker holds at most one
//! handle at a time, so with `cap` ≥ workers there is always one to close; should all be lent
//! (more workers than `cap`), the cap is exceeded rather than waited for, and counted.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Result;

/// Most files a restore keeps open at once when the descriptor limit allows it.
pub const MAX_OPEN_FILES: usize = 256;
/// Descriptors assumed in use when `/proc/self/fd` cannot be read.
const ASSUMED_OPEN: usize = 64;
/// Descriptors left to the rest of the restore and the process: the local backend keeps up to
/// 32 packs open, each worker may open one more, and the process has its own.
const HEADROOM: usize = 64;

/// The cap for a restore starting now: the descriptors still free under the soft
/// `RLIMIT_NOFILE` but [`HEADROOM`] (and at least a quarter of them when the limit is that
/// low), at most [`MAX_OPEN_FILES`], at least 1.
pub(crate) fn default_cap() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let open = std::fs::read_dir("/proc/self/fd").map_or(ASSUMED_OPEN, |d| d.count());
    cap_for(soft, open)
}

/// [`default_cap`] for a soft limit (`None`: unlimited) and the descriptors open now.
fn cap_for(soft: Option<u64>, open: usize) -> usize {
    let Some(soft) = soft else {
        return MAX_OPEN_FILES;
    };
    let free = usize::try_from(soft).unwrap_or(usize::MAX).saturating_sub(open);
    free.saturating_sub(HEADROOM)
        .max(free / 4)
        .clamp(1, MAX_OPEN_FILES)
}

struct Slot {
    file: Arc<File>,
    /// The table's clock at the last lookup.
    used: u64,
}

#[derive(Default)]
struct Table {
    /// Open handles by file index.
    slots: HashMap<usize, Slot>,
    /// Handles being opened (room reserved, not yet in `slots`).
    opening: usize,
    clock: u64,
    /// Most handles open (or being opened) at once.
    peak: usize,
    /// Opens, first ones and reopens.
    opens: u64,
    /// Opens that went over the cap because every handle was lent out.
    over_cap: u64,
}

impl Table {
    /// Takes out the least recently used handle nobody else holds.
    fn evict(&mut self) -> Option<Arc<File>> {
        let (&i, _) = self
            .slots
            .iter()
            .filter(|(_, s)| Arc::strong_count(&s.file) == 1)
            .min_by_key(|(_, s)| s.used)?;
        self.slots.remove(&i).map(|s| s.file)
    }
}

/// What [`OpenFiles`] did, for the restore's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenStats {
    pub(crate) cap: usize,
    pub(crate) peak: usize,
    pub(crate) opens: u64,
    pub(crate) over_cap: u64,
}

/// The open handles of the files being restored, at most `cap` of them.
pub(crate) struct OpenFiles {
    cap: usize,
    table: Mutex<Table>,
}

impl OpenFiles {
    pub(crate) fn new(cap: usize) -> OpenFiles {
        OpenFiles {
            cap: cap.max(1),
            table: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handle of file `i`, opened with `open` if it is not open now (closing another to
    /// make room). The caller must not call `get` for the same `i` from two threads at once
    /// (restore holds the file's own lock around it), and holds the handle only while it writes.
    pub(crate) fn get(&self, i: usize, open: impl FnOnce() -> Result<File>) -> Result<Arc<File>> {
        let victim = {
            let mut t = self.lock();
            t.clock += 1;
            let now = t.clock;
            if let Some(slot) = t.slots.get_mut(&i) {
                slot.used = now;
                return Ok(Arc::clone(&slot.file));
            }
            let mut victim = None;
            if t.slots.len() + t.opening >= self.cap {
                victim = t.evict();
                if victim.is_none() {
                    t.over_cap += 1;
                }
            }
            t.opening += 1;
            victim
        };
        // Closed before the new one is opened, so the count never goes over.
        drop(victim);
        let opened = open();
        let mut t = self.lock();
        t.opening -= 1;
        let file = Arc::new(opened?);
        let used = t.clock;
        t.slots.insert(
            i,
            Slot {
                file: Arc::clone(&file),
                used,
            },
        );
        t.opens += 1;
        t.peak = t.peak.max(t.slots.len() + t.opening);
        Ok(file)
    }

    /// Closes the handle of file `i` if it is open (its file is finished or given up).
    pub(crate) fn forget(&self, i: usize) {
        let slot = self.lock().slots.remove(&i);
        drop(slot);
    }

    pub(crate) fn stats(&self) -> OpenStats {
        let t = self.lock();
        OpenStats {
            cap: self.cap,
            peak: t.peak,
            opens: t.opens,
            over_cap: t.over_cap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    /// Descriptors of this process open on files under `dir`.
    fn open_under(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|p| p.starts_with(dir))
            .count()
    }

    fn io(e: std::io::Error) -> crate::error::Error {
        crate::error::Error::Internal(e.to_string())
    }

    fn create(path: &Path) -> Result<File> {
        File::create_new(path).map_err(io)
    }

    fn reopen(path: &Path) -> Result<File> {
        std::fs::OpenOptions::new().write(true).open(path).map_err(io)
    }

    #[test]
    fn the_cap_leaves_headroom_under_the_descriptor_limit() {
        assert_eq!(cap_for(None, 10), MAX_OPEN_FILES);
        assert_eq!(cap_for(Some(1024), 24), MAX_OPEN_FILES);
        assert_eq!(cap_for(Some(200), 8), 128);
        assert_eq!(cap_for(Some(64), 24), 10, "a quarter of what is free");
        assert_eq!(
            cap_for(Some(20), 24),
            1,
            "even with none free, one file at a time"
        );
        assert_eq!(cap_for(Some(u64::MAX), 3), MAX_OPEN_FILES);
        assert!(default_cap() >= 1);
    }

    #[test]
    fn at_most_cap_files_are_open_and_the_least_recently_used_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = |i: usize| dir.path().join(format!("f{i}"));
        let files = OpenFiles::new(4);
        for round in 0..3u8 {
            for i in 0..10 {
                let f = files
                    .get(i, || {
                        if round == 0 {
                            create(&path(i))
                        } else {
                            reopen(&path(i))
                        }
                    })
                    .unwrap();
                f.write_all_at(&[b'a' + round], u64::from(round)).unwrap();
                drop(f);
                assert!(open_under(dir.path()) <= 4, "round {round}, file {i}");
            }
        }
        // 0..10 in order with room for 4: every lookup missed.
        assert_eq!(files.stats().opens, 30);
        // Recently used ones stay: 6..10 are open; touching them opens nothing.
        for i in 6..10 {
            files.get(i, || panic!("file {i} is open")).unwrap();
        }
        assert_eq!(files.stats().opens, 30);
        // Using 9 then opening 0 closes 6, the least recently used.
        files.get(9, || panic!()).unwrap();
        files.get(0, || reopen(&path(0))).unwrap();
        files.get(7, || panic!("7 is still open")).unwrap();
        for i in 0..10 {
            files.forget(i);
        }
        assert_eq!(open_under(dir.path()), 0);
        // Reopening never truncated: each file holds what every round wrote.
        for i in 0..10 {
            assert_eq!(std::fs::read(path(i)).unwrap(), b"abc", "file {i}");
        }
        let s = files.stats();
        assert_eq!((s.cap, s.peak, s.over_cap), (4, 4, 0));
    }

    #[test]
    fn a_handle_being_written_through_is_never_closed() {
        let dir = tempfile::tempdir().unwrap();
        let files = OpenFiles::new(2);
        let held = files.get(0, || create(&dir.path().join("held"))).unwrap();
        for i in 1..6 {
            let f = files
                .get(i, || create(&dir.path().join(format!("f{i}"))))
                .unwrap();
            drop(f);
        }
        // `held` was the least recently used all along, but lent out.
        (&*held).write_all(b"still open").unwrap();
        files.get(0, || panic!("the lent handle stays")).unwrap();
        drop(held);
        // Every handle lent out: the cap is exceeded (and counted) rather than waited for.
        let a = files.get(0, || panic!()).unwrap();
        let b = files.get(5, || panic!()).unwrap();
        let c = files.get(9, || create(&dir.path().join("f9"))).unwrap();
        assert_eq!(files.stats().over_cap, 1);
        drop((a, b, c));
        assert_eq!(std::fs::read(dir.path().join("held")).unwrap(), b"still open");
    }

    #[test]
    fn many_threads_never_hold_more_than_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let files = OpenFiles::new(4);
        let n = 64usize;
        let locks: Vec<Mutex<bool>> = (0..n).map(|_| Mutex::new(false)).collect();
        let peak_seen = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..4usize {
                let (files, locks, dir, peak_seen) = (&files, &locks, dir.path(), &peak_seen);
                s.spawn(move || {
                    for k in 0..400usize {
                        let i = (k * 7 + t * 13) % n;
                        let f = {
                            let mut created = locks[i].lock().unwrap();
                            files
                                .get(i, || {
                                    let p = dir.join(format!("f{i}"));
                                    if *created {
                                        reopen(&p)
                                    } else {
                                        *created = true;
                                        create(&p)
                                    }
                                })
                                .unwrap()
                        };
                        f.write_all_at(&[t as u8 + 1], t as u64).unwrap();
                        drop(f);
                        peak_seen.fetch_max(open_under(dir), std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        let s = files.stats();
        assert!(s.peak <= 4 && s.over_cap == 0, "{s:?}");
        assert!(
            peak_seen.into_inner() <= 4,
            "descriptors under the directory went over the cap"
        );
        for i in 0..n {
            files.forget(i);
            let data = std::fs::read(dir.path().join(format!("f{i}"))).unwrap();
            assert_eq!(data, [1, 2, 3, 4], "file {i}: no write was lost to a reopen");
        }
    }
}
