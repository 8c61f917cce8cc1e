//! Free TCP ports on 127.0.0.1 for test servers (never a server's default port).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;

use crate::error::{Error, Result};

/// A port that is free right now, drawn from 20000..30000: below the kernel's ephemeral range, so
/// a client socket of another test process is unlikely to take it between this check and the
/// server's bind (a port the kernel picked for 127.0.0.1:0 is exactly the kind it hands out next).
pub fn free_port() -> Result<u16> {
    Ok(free_ports_with_offset(1, 0)?[0])
}

/// `count` distinct ports `p` in 20000..30000 such that both `p` and `p + offset` are free.
///
/// For servers that derive a second port from the first (SeaweedFS: gRPC = HTTP + 10000). The range
/// stays below the kernel's ephemeral range (32768+) so client sockets are unlikely to take them.
pub fn free_ports_with_offset(count: usize, offset: u16) -> Result<Vec<u16>> {
    let mut chosen: Vec<u16> = Vec::with_capacity(count);
    let mut attempts = 0;
    while chosen.len() < count {
        attempts += 1;
        if attempts > 5000 {
            return Err(Error::Protocol(format!(
                "no {count} free port pairs (+{offset}) in 20000..30000"
            )));
        }
        let port = 20000 + (random_u64() % 10000) as u16;
        let clashes = chosen
            .iter()
            .any(|&c| [c, c + offset].iter().any(|&x| x == port || x == port + offset));
        if !clashes && is_free(port) && is_free(port + offset) {
            chosen.push(port);
        }
    }
    Ok(chosen)
}

fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A random number from std's per-process random hash keys (no `rand` dependency needed).
pub(crate) fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_ports_are_distinct_and_free() {
        let ports = free_ports_with_offset(5, 10000).unwrap();

        let mut all: Vec<u16> = ports.iter().flat_map(|&p| [p, p + 10000]).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 10, "{ports:?}");
        assert!(ports.iter().all(|&p| (20000..30000).contains(&p)), "{ports:?}");
        assert!(all.iter().all(|&p| is_free(p)), "{ports:?}");
    }
}
