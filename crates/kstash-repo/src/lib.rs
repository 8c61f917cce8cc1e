//! The kstash engine: restic-compatible repositories (format v2) written and read by our own code,
//! built for streaming database dumps with bounded memory. Knows nothing of Kubernetes.

pub mod chunker;
