//! Deterministic test data: compressible SQL-like text and incompressible noise, by seed; and the
//! listing of a directory tree a test wrote or restored.

/// `n` bytes of tab-separated rows; the same seed gives the same bytes, different seeds share
/// no content-defined chunks.
pub fn text(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(n + 64);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(format!("{}\t{}\trow-{}\n", x % 1_000_003, x >> 40, x % 977).as_bytes());
    }
    out.truncate(n);
    out
}

/// `n` incompressible bytes (xorshift) from `seed`.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every file under `root` (not directories), as paths relative to it with `/` separators,
/// sorted.
///
/// # Panics
/// If `root` or a directory below it cannot be read.
pub fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}
