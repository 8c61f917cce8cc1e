//! `kstash convert`: Stash v1 manifests as their KubeStash equivalents.
