//! Retention selection: which Snapshots a RetentionPolicy keeps and which it removes.
