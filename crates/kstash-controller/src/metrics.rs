//! Session metrics pushed to a Prometheus Pushgateway and KubeStash state metrics.
