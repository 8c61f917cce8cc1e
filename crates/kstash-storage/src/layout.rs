//! The KubeStash bucket layout (being written).
