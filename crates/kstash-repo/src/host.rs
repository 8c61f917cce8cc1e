//! Facts about this process and machine that restic records in keys and snapshots: host name,
//! user name, uid and gid.

use std::os::unix::fs::MetadataExt;

/// The machine's host name (empty if unknown).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// The effective uid and gid of this process (from the owner of `/proc/self`).
pub fn uid_gid() -> (u32, u32) {
    std::fs::metadata("/proc/self")
        .map(|m| (m.uid(), m.gid()))
        .unwrap_or((0, 0))
}

/// The user name of this process: the `/etc/passwd` entry of its uid, else `$USER`.
pub fn username() -> String {
    let (uid, _) = uid_gid();
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let mut f = line.split(':');
            let (Some(name), _, Some(id)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if id.parse::<u32>().ok() == Some(uid) {
                return name.to_string();
            }
        }
    }
    std::env::var("USER").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn facts_are_available() {
        assert!(!super::hostname().is_empty());
        let _ = super::uid_gid();
        let _ = super::username();
    }
}
