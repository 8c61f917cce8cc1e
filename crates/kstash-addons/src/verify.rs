//! Backup verification by query (a BackupVerifier of `type: Query`, spec §1.12): runs the checks
//! of a [`VerifierQuery`] against the live target a backup was restored into, and returns a
//! [`VerificationReport`] naming, per check, what was expected and what was found.
//!
//! Each kind runs through its driver, connected the way the stream drivers connect (an
//! AppBinding, or a [`DirectTarget`]), with the same tools:
//!
//! | key | how | found |
//! |---|---|---|
//! | `postgres` | `psql` on `database`: the relation `schema.table` in `pg_class`, then `count(*)` | rowCount |
//! | `mySQL`, `mariaDB` | `mysql`/`mariadb`: the schema and table in `information_schema`, then `COUNT(*)` | rowCount |
//! | `redis` | native: `SELECT index`, `DBSIZE` | dbSize |
//! | `elasticsearch` | native: `GET /<index>/_count` (a 404 is a missing index) | documentCount |
//!
//! Without an expected count a check only asks that the table, database or index exists, and
//! nothing is counted. A missing table, database or index is a failed check, not an error; an
//! error (the server unreachable, a refused login, a tool failing) means the checks could not
//! be run. `mongoDB`, `singlestore` and `mssqlServer` have no driver in kstash: a query with
//! them is refused before anything connects ([`ExecError::UnsupportedQuery`]).
//!
//! Names come from users and never become SQL text unquoted: PostgreSQL names reach `psql` as
//! variables interpolated with `:'name'` (a literal) and `:"name"` (an identifier), both quoted
//! by libpq; MySQL names are compared as hex literals and quoted as identifiers with doubled
//! backticks; index names are validated when the query is read and percent-encoded in the path.

use std::collections::BTreeMap;

use kstash_api::client::Resources;
use kstash_api::common::TypedObjectReference;
use kstash_api::query::{
    MatchExpression, QueryKind, RedisQuery, SchemaTableQuery, TableQuery, VerifierQuery,
};
use kstash_storage::LocalMode;

use crate::appbinding::Connection;
use crate::direct::DirectTarget;
use crate::elasticsearch;
use crate::error::{ExecError, Result};
use crate::mysql::MySql;
use crate::postgres::Postgres;
use crate::redis::Redis;
use crate::task::{DriverKind, ResolvedTask};

/// The query keys kstash runs, with the driver and the function name its task is given.
const SUPPORTED: &[(QueryKind, DriverKind, &str)] = &[
    (QueryKind::MySql, DriverKind::MySql, "mysql-verify"),
    (QueryKind::MariaDb, DriverKind::MySql, "mariadb-verify"),
    (QueryKind::Postgres, DriverKind::Postgres, "postgres-verify"),
    (
        QueryKind::Elasticsearch,
        DriverKind::Elasticsearch,
        "elasticsearch-verify",
    ),
    (QueryKind::Redis, DriverKind::Redis, "redis-verify"),
];

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The count (rows, keys, documents).
    Count(i64),
    /// The thing exists; nothing was counted because no count was expected.
    Present,
    /// The thing (or what holds it) does not exist: why, e.g. `the table does not exist`.
    Missing(String),
}

/// One check of a query and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The query key the check came from.
    pub kind: QueryKind,
    /// What was checked: `postgres table "public.users" in database "shop"`.
    pub subject: String,
    /// The count's field: `rowCount`, `dbSize`, `documentCount`.
    pub field: &'static str,
    /// The expected count; `None` when the thing must only exist.
    pub expected: Option<MatchExpression>,
    pub found: Found,
}

impl Check {
    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        match (&self.found, &self.expected) {
            (Found::Missing(_), _) => false,
            (Found::Count(n), Some(e)) => e.matches(*n),
            (Found::Present, Some(_)) => false,
            (_, None) => true,
        }
    }
}

/// `postgres table "public.users" in database "shop": expected rowCount = 1000, found 998`.
impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subject = &self.subject;
        let field = self.field;
        match (&self.found, &self.expected) {
            (Found::Missing(why), _) => write!(f, "{subject}: {why}"),
            (Found::Count(n), Some(e)) if e.matches(*n) => {
                write!(f, "{subject}: {field} {n} (expected {e})")
            }
            (Found::Count(n), Some(e)) => write!(f, "{subject}: expected {field} {e}, found {n}"),
            (Found::Present, Some(e)) => write!(f, "{subject}: expected {field} {e}, but it was not counted"),
            (Found::Count(n), None) => write!(f, "{subject} exists ({field} {n})"),
            (Found::Present, None) => write!(f, "{subject} exists"),
        }
    }
}

/// The outcome of every check of a query, in the query's order (kinds in
/// [`QueryKind::ALL`] order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerificationReport {
    pub checks: Vec<Check>,
}

impl VerificationReport {
    /// The checks that failed.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed()).collect()
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(Check::passed)
    }
}

/// One line per check, failures marked.
impl std::fmt::Display for VerificationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.checks {
            writeln!(f, "{} {c}", if c.passed() { "ok  " } else { "FAIL" })?;
        }
        Ok(())
    }
}

/// Run `query` against a target given by URL and credentials (as [`crate::dump_stream`] takes
/// it). `params` are the drivers' parameters (`waitTimeout`, `user` with a client certificate).
pub fn run_queries(
    target: &DirectTarget,
    params: &BTreeMap<String, String>,
    query: &VerifierQuery,
) -> Result<VerificationReport> {
    run(query, params, &|_| crate::direct::connection(target))
}

/// Run `query` against the AppBinding `target` of `owner` (its namespace defaulting to
/// `namespace`), read through `client` as the stream drivers read it.
pub fn run_queries_at(
    client: &dyn Resources,
    target: Option<&TypedObjectReference>,
    namespace: &str,
    owner: &str,
    mode: LocalMode,
    params: &BTreeMap<String, String>,
    query: &VerifierQuery,
) -> Result<VerificationReport> {
    run(query, params, &|driver| {
        crate::stream::target_connection(client, driver, target, namespace, owner, mode)
    })
}

fn run(
    query: &VerifierQuery,
    params: &BTreeMap<String, String>,
    connect: &dyn Fn(DriverKind) -> Result<Connection>,
) -> Result<VerificationReport> {
    let kinds = query.kinds();
    if let Some(kind) = kinds.iter().find(|k| !SUPPORTED.iter().any(|(s, _, _)| s == *k)) {
        return Err(ExecError::UnsupportedQuery {
            key: kind.key().to_string(),
            supported: SUPPORTED
                .iter()
                .map(|(k, _, _)| k.key())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut report = VerificationReport::default();
    for kind in kinds {
        let Some((_, driver, function)) = SUPPORTED.iter().find(|(k, _, _)| *k == kind) else {
            continue;
        };
        let task = ResolvedTask {
            addon: "(verifier)".into(),
            task: kind.key().into(),
            function: (*function).into(),
            driver: *driver,
            params: params.clone(),
            required: Vec::new(),
        };
        let conn = connect(*driver)?;
        let checks = match kind {
            QueryKind::Postgres => postgres(&Postgres::new(conn, task)?, &query.postgres)?,
            QueryKind::MySql => mysql(&MySql::new(conn, task)?, kind, &query.my_sql)?,
            QueryKind::MariaDb => mysql(&MySql::new(conn, task)?, kind, &query.maria_db)?,
            QueryKind::Redis => redis(&Redis::new(conn, task), &query.redis)?,
            QueryKind::Elasticsearch => elasticsearch(&conn, &task, query)?,
            _ => continue,
        };
        report.checks.extend(checks);
    }
    for c in &report.checks {
        if c.passed() {
            tracing::info!(check = %c, "verification check passed");
        } else {
            tracing::warn!(check = %c, "verification check failed");
        }
    }
    Ok(report)
}

/// A check of `found` against `expected`.
fn check(
    kind: QueryKind,
    subject: String,
    field: &'static str,
    expected: Option<MatchExpression>,
    found: Found,
) -> Check {
    Check {
        kind,
        subject,
        field,
        expected,
        found,
    }
}

/// Whether a relation (table, partitioned table, view, materialized view, foreign table) named
/// exactly `:schema.:table` exists; its row count (or `present`) if so, else `missing`.
const PG_COUNT: &str = r#"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :'schema' AND c.relname = :'table' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) AS present \gset
\if :present
SELECT count(*) FROM :"schema".:"table";
\else
SELECT 'missing';
\endif
"#;
const PG_EXISTS: &str = r#"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :'schema' AND c.relname = :'table' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) AS present \gset
\if :present
SELECT 'present';
\else
SELECT 'missing';
\endif
"#;
const PG_DATABASE: &str = "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = :'database';\n";

fn postgres(pg: &Postgres, queries: &[SchemaTableQuery]) -> Result<Vec<Check>> {
    let bin = pg.ready_tools()?;
    let mut out = Vec::new();
    for q in queries {
        let subject = format!(
            "postgres table {:?} in database {:?}",
            format!("{}.{}", q.schema, q.table),
            q.database
        );
        let script = if q.row_count.is_some() {
            PG_COUNT
        } else {
            PG_EXISTS
        };
        let vars = [("schema", q.schema.as_str()), ("table", q.table.as_str())];
        let found = match pg.script(&bin, Some(&q.database), &vars, script) {
            Ok(text) => match text.trim() {
                "missing" => Found::Missing("the table does not exist".into()),
                "present" => Found::Present,
                n => Found::Count(n.parse().map_err(|_| ExecError::Tool {
                    tool: "psql".into(),
                    message: format!("psql: counting the rows of {subject}: unexpected answer {n:?}"),
                })?),
            },
            Err(e) => {
                // A database that does not exist fails the connection; say so plainly.
                let exists = pg.script(&bin, None, &[("database", q.database.as_str())], PG_DATABASE)?;
                if exists.trim() == "0" {
                    Found::Missing("the database does not exist".into())
                } else {
                    return Err(e);
                }
            }
        };
        out.push(check(
            QueryKind::Postgres,
            subject,
            "rowCount",
            q.row_count,
            found,
        ));
    }
    Ok(out)
}

fn mysql(db: &MySql, kind: QueryKind, queries: &[TableQuery]) -> Result<Vec<Check>> {
    let client = db.ready_client()?;
    let mut out = Vec::new();
    for q in queries {
        let subject = format!("{kind} table {:?} in database {:?}", q.table, q.database);
        let (database, table) = (hex_literal(&q.database), hex_literal(&q.table));
        // `= CONVERT(…)` lets the server look in one schema only; the binary comparison makes
        // the match exact (information_schema compares case-insensitively).
        let exists = format!(
            "SELECT \
             (SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = CONVERT({database} USING utf8mb4) AND CAST(schema_name AS BINARY) = {database}), \
             (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = CONVERT({database} USING utf8mb4) AND CAST(table_schema AS BINARY) = {database} \
             AND table_name = CONVERT({table} USING utf8mb4) AND CAST(table_name AS BINARY) = {table})"
        );
        let answer = db.sql(&client, &exists)?;
        let found = match answer.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["0", _] => Found::Missing("the database does not exist".into()),
            [_, "0"] => Found::Missing("the table does not exist".into()),
            [_, _] if q.row_count.is_none() => Found::Present,
            [_, _] => {
                let count = format!(
                    "SELECT COUNT(*) FROM {}.{}",
                    mysql_ident(&q.database),
                    mysql_ident(&q.table)
                );
                let n = db.sql(&client, &count)?;
                Found::Count(n.trim().parse().map_err(|_| ExecError::Tool {
                    tool: kind.key().into(),
                    message: format!("counting the rows of {subject}: unexpected answer {n:?}"),
                })?)
            }
            _ => {
                return Err(ExecError::Tool {
                    tool: kind.key().into(),
                    message: format!("looking up {subject}: unexpected answer {answer:?}"),
                });
            }
        };
        out.push(check(kind, subject, "rowCount", q.row_count, found));
    }
    Ok(out)
}

fn redis(r: &Redis, queries: &[RedisQuery]) -> Result<Vec<Check>> {
    let dbs: Vec<u32> = queries.iter().map(|q| q.index).collect();
    let sizes = r.db_sizes(&dbs)?;
    Ok(queries
        .iter()
        .zip(sizes)
        .map(|(q, size)| {
            let found = match size {
                Ok(n) if q.db_size.is_some() => Found::Count(n),
                Ok(_) => Found::Present,
                Err(why) => Found::Missing(format!("the database does not exist ({why})")),
            };
            check(
                QueryKind::Redis,
                format!("redis database {}", q.index),
                "dbSize",
                q.db_size,
                found,
            )
        })
        .collect())
}

fn elasticsearch(conn: &Connection, task: &ResolvedTask, query: &VerifierQuery) -> Result<Vec<Check>> {
    let client = elasticsearch::Client::new(conn)?;
    client.wait_ready(task.wait_timeout()?)?;
    let mut out = Vec::new();
    for q in &query.elasticsearch {
        let subject = format!("elasticsearch index {:?}", q.index);
        let path = format!("/{}/_count", elasticsearch::encode(&q.index));
        let found = match client.send("GET", &path, None) {
            Ok(bytes) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                match (v["count"].as_i64(), q.document_count) {
                    (Some(_), None) => Found::Present,
                    (Some(n), Some(_)) => Found::Count(n),
                    (None, _) => {
                        return Err(ExecError::Tool {
                            tool: elasticsearch::TOOL.into(),
                            message: format!(
                                "{}: counting the documents of index {:?}: unexpected answer {}",
                                client.target,
                                q.index,
                                String::from_utf8_lossy(&bytes)
                                    .chars()
                                    .take(300)
                                    .collect::<String>()
                            ),
                        });
                    }
                }
            }
            Err(elasticsearch::HttpError::Status { status: 404, .. }) => {
                Found::Missing("the index does not exist".into())
            }
            Err(e) => {
                return Err(client.error(&format!("counting the documents of index {:?}", q.index), e));
            }
        };
        out.push(check(
            QueryKind::Elasticsearch,
            subject,
            "documentCount",
            q.document_count,
            found,
        ));
    }
    Ok(out)
}

/// `X'…'`: a name as a hex string literal, which needs no escaping.
fn hex_literal(name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("X'{hex}'")
}

/// `` `name` ``, backticks inside doubled: a MySQL identifier that is always read as `name`.
fn mysql_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kstash_api::query::Operator;

    fn expr(operator: Operator, value: i64) -> Option<MatchExpression> {
        Some(MatchExpression { operator, value })
    }

    #[test]
    fn checks_pass_fail_and_read_as_sentences() {
        let subject = r#"postgres table "public.users" in database "shop""#;
        // (expected, found, passed, message)
        let cases = [
            (
                expr(Operator::Equal, 1000),
                Found::Count(1000),
                true,
                format!("{subject}: rowCount 1000 (expected = 1000)"),
            ),
            (
                expr(Operator::Equal, 1000),
                Found::Count(998),
                false,
                format!("{subject}: expected rowCount = 1000, found 998"),
            ),
            (
                expr(Operator::GreaterThan, 5),
                Found::Count(5),
                false,
                format!("{subject}: expected rowCount > 5, found 5"),
            ),
            (None, Found::Present, true, format!("{subject} exists")),
            (
                None,
                Found::Missing("the table does not exist".into()),
                false,
                format!("{subject}: the table does not exist"),
            ),
            (
                expr(Operator::Equal, 1),
                Found::Missing("the database does not exist".into()),
                false,
                format!("{subject}: the database does not exist"),
            ),
        ];
        for (expected, found, passed, message) in cases {
            let c = check(QueryKind::Postgres, subject.into(), "rowCount", expected, found);
            assert_eq!(c.passed(), passed, "{c}");
            assert_eq!(c.to_string(), message);
        }
    }

    #[test]
    fn the_report_lists_its_failures() {
        let ok = check(
            QueryKind::Redis,
            "redis database 0".into(),
            "dbSize",
            expr(Operator::Equal, 3),
            Found::Count(3),
        );
        let bad = check(
            QueryKind::Redis,
            "redis database 1".into(),
            "dbSize",
            expr(Operator::Equal, 3),
            Found::Count(2),
        );
        let report = VerificationReport {
            checks: vec![ok, bad.clone()],
        };
        assert_eq!(report.failures(), vec![&bad]);
        assert!(!report.passed());
        assert_eq!(
            report.to_string(),
            "ok   redis database 0: dbSize 3 (expected = 3)\nFAIL redis database 1: expected dbSize = 3, found 2\n"
        );
        assert!(VerificationReport::default().passed());
    }

    #[test]
    fn kinds_without_a_driver_are_refused_before_connecting() {
        for key in ["mongoDB", "singlestore", "mssqlServer"] {
            let item = match key {
                "mongoDB" => serde_json::json!({"database": "shop", "collection": "c"}),
                _ => serde_json::json!({"database": "shop", "table": "t"}),
            };
            let query = VerifierQuery::from_raw(
                &serde_json::json!({"postgres": [{"database": "d", "table": "t"}], key: [item]}),
            )
            .unwrap();
            // Nothing listens there: an attempt to connect would fail differently.
            let target = DirectTarget {
                url: "postgres://127.0.0.1:1/".into(),
                user: "u".into(),
                password: "p".into(),
                ca_bundle: None,
            };
            let e = run_queries(&target, &BTreeMap::new(), &query).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(key) && text.contains("not supported"), "{text}");
            assert!(
                text.contains("mySQL, mariaDB, postgres, elasticsearch, redis"),
                "{text}"
            );
            assert_eq!(e.category(), kstash_api::ErrorCategory::Invalid);
        }
    }

    #[test]
    fn names_are_quoted_for_mysql() {
        assert_eq!(hex_literal("shop"), "X'73686f70'");
        assert_eq!(hex_literal("a'b"), "X'612762'");
        assert_eq!(mysql_ident("we`ird"), "`we``ird`");
        assert_eq!(mysql_ident("users"), "`users`");
    }
}
