//! The SQLite schema and its migrations, versioned with `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: objects, owner index, global revision counter, change log.
    "
    CREATE TABLE IF NOT EXISTS meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0), ('compacted', 0);

    CREATE TABLE IF NOT EXISTS objects (
        grp       TEXT NOT NULL,
        kind      TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name      TEXT NOT NULL,
        uid       TEXT NOT NULL UNIQUE,
        revision  INTEGER NOT NULL,
        body      TEXT NOT NULL,
        PRIMARY KEY (grp, kind, namespace, name)
    );

    CREATE TABLE IF NOT EXISTS owner_refs (
        owner_uid TEXT NOT NULL,
        child_uid TEXT NOT NULL,
        PRIMARY KEY (owner_uid, child_uid)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS owner_refs_by_child ON owner_refs (child_uid);

    CREATE TABLE IF NOT EXISTS changes (
        revision   INTEGER PRIMARY KEY,
        event_type TEXT NOT NULL,
        body       TEXT NOT NULL
    );
    ",
    // 2: a label index, so a list by label reads only the objects that carry the label.
    "
    CREATE TABLE IF NOT EXISTS labels (
        grp       TEXT NOT NULL,
        kind      TEXT NOT NULL,
        lkey      TEXT NOT NULL,
        lvalue    TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name      TEXT NOT NULL,
        PRIMARY KEY (grp, kind, lkey, lvalue, namespace, name)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS labels_by_object ON labels (grp, kind, namespace, name);
    INSERT OR IGNORE INTO labels (grp, kind, lkey, lvalue, namespace, name)
        SELECT o.grp, o.kind, j.key, j.value, o.namespace, o.name
        FROM objects o, json_each(o.body, '$.metadata.labels') j
        WHERE j.type = 'text';
    ",
    // 3: the status fields that aggregate other objects (a BackupStorage's `status.repositories`)
    // kept apart, so the frequent reads that do not need them do not parse them. Rows written
    // before keep them in `body` until their next write; reads merge both.
    "
    ALTER TABLE objects ADD COLUMN bulk TEXT;
    ",
];

/// Schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Outcome of [`migrate`].
pub(crate) enum Migrated {
    /// The schema is at [`VERSION`]; carries the version found before.
    Current(i64),
    /// The file was written by a newer build.
    TooNew(i64),
}

/// Bring the schema to [`VERSION`] inside one `BEGIN IMMEDIATE` transaction, so two processes
/// opening a fresh file at once migrate it exactly once. A current schema is only read: opening
/// the store (every CLI command) does not wait for the daemon's write lock.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<Migrated> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found == VERSION {
        return Ok(Migrated::Current(found));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > VERSION {
        return Ok(Migrated::TooNew(found));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tracing::debug!(to = i + 1, "migrating kstash store schema");
        tx.execute_batch(sql)?;
    }
    if found < VERSION {
        tx.pragma_update(None, "user_version", VERSION)?;
    }
    tx.commit()?;
    Ok(Migrated::Current(found))
}
