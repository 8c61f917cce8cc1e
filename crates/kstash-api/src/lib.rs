//! KubeStash-compatible resource API: every kind kstash understands, with defaults, validation
//! (the admission-webhook rules), phase calculators and CRD generation. Pure: no I/O.

pub mod meta;
