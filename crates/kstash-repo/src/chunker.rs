//! Content-defined chunking compatible with restic (Rabin fingerprints over a 64-byte window with
//! the repository's polynomial). Placeholder: being written.
