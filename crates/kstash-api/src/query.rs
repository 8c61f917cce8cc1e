//! The typed queries of a BackupVerifier of type `Query` (spec §1.12, KubeStash's
//! `query_types.go`): `spec.query` is kept raw on the resource (KubeStash's RawExtension) and read
//! here into a [`VerifierQuery`], with every error naming its JSON path and the fix.
//!
//! The object has one key per database kind, each a list of checks:
//!
//! | key | item |
//! |---|---|
//! | `mySQL`, `mariaDB`, `singlestore` | `{database, table, rowCount}` |
//! | `postgres`, `mssqlServer` | `{database, schema, table, rowCount}` (`schema` defaults to `public` for `postgres`, `dbo` for `mssqlServer`) |
//! | `mongoDB` | `{database, collection, documentCount}` |
//! | `elasticsearch` | `{index}` plus kstash's `documentCount` |
//! | `redis` | `{index, dbSize}` (`index` is the database number, default 0) |
//!
//! A count is a [`MatchExpression`] `{operator, value}` (`operator` defaults to `Equal`) or, as
//! KubeStash's documentation writes it (`dbSize: 100`), a bare integer meaning `Equal`. Without
//! a count, a check only asks that the table, collection, index or database exists.
//! Unknown keys, at the top or inside an item, are errors: a misspelt `rowcount` would otherwise
//! silently turn a count check into an existence check.

use serde_json::{Map, Value};

use crate::object::FieldError;

/// Where the query sits in a BackupVerifier; the prefix of every error path.
const ROOT: &str = "spec.query";

/// A database kind a query can be written for: one key of the query object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueryKind {
    MySql,
    MariaDb,
    Singlestore,
    Postgres,
    MssqlServer,
    MongoDb,
    Elasticsearch,
    Redis,
}

impl QueryKind {
    /// Every kind, in the order KubeStash's type declares them.
    pub const ALL: [QueryKind; 8] = [
        QueryKind::MySql,
        QueryKind::MariaDb,
        QueryKind::Postgres,
        QueryKind::MongoDb,
        QueryKind::Elasticsearch,
        QueryKind::Redis,
        QueryKind::Singlestore,
        QueryKind::MssqlServer,
    ];

    /// The key of the query object (`mySQL`, `postgres`, …).
    pub fn key(self) -> &'static str {
        match self {
            QueryKind::MySql => "mySQL",
            QueryKind::MariaDb => "mariaDB",
            QueryKind::Singlestore => "singlestore",
            QueryKind::Postgres => "postgres",
            QueryKind::MssqlServer => "mssqlServer",
            QueryKind::MongoDb => "mongoDB",
            QueryKind::Elasticsearch => "elasticsearch",
            QueryKind::Redis => "redis",
        }
    }

    /// The kind of a key of the query object (exact spelling).
    pub fn from_key(key: &str) -> Option<QueryKind> {
        QueryKind::ALL.into_iter().find(|k| k.key() == key)
    }
}

impl std::fmt::Display for QueryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// How a count is compared with the expected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Operator {
    #[default]
    Equal,
    NotEqual,
    LessThan,
    LessThanOrEqual,
    GreaterThan,
    GreaterThanOrEqual,
}

impl Operator {
    /// Every operator, as spelt in the API.
    pub const ALL: [Operator; 6] = [
        Operator::Equal,
        Operator::NotEqual,
        Operator::LessThan,
        Operator::LessThanOrEqual,
        Operator::GreaterThan,
        Operator::GreaterThanOrEqual,
    ];

    /// The API spelling (`GreaterThanOrEqual`).
    pub fn name(self) -> &'static str {
        match self {
            Operator::Equal => "Equal",
            Operator::NotEqual => "NotEqual",
            Operator::LessThan => "LessThan",
            Operator::LessThanOrEqual => "LessThanOrEqual",
            Operator::GreaterThan => "GreaterThan",
            Operator::GreaterThanOrEqual => "GreaterThanOrEqual",
        }
    }

    /// The mathematical symbol, for messages (`>=`).
    pub fn symbol(self) -> &'static str {
        match self {
            Operator::Equal => "=",
            Operator::NotEqual => "!=",
            Operator::LessThan => "<",
            Operator::LessThanOrEqual => "<=",
            Operator::GreaterThan => ">",
            Operator::GreaterThanOrEqual => ">=",
        }
    }

    fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|o| o.name() == name)
    }
}

/// An expected count: `found <operator> value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatchExpression {
    pub operator: Operator,
    pub value: i64,
}

impl MatchExpression {
    /// `found == value`.
    pub fn equal(value: i64) -> MatchExpression {
        MatchExpression {
            operator: Operator::Equal,
            value,
        }
    }

    /// Whether `found` satisfies the expression.
    pub fn matches(&self, found: i64) -> bool {
        match self.operator {
            Operator::Equal => found == self.value,
            Operator::NotEqual => found != self.value,
            Operator::LessThan => found < self.value,
            Operator::LessThanOrEqual => found <= self.value,
            Operator::GreaterThan => found > self.value,
            Operator::GreaterThanOrEqual => found >= self.value,
        }
    }
}

/// `= 1000`, `>= 5`: reads as the right-hand side of a comparison in messages.
impl std::fmt::Display for MatchExpression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.operator.symbol(), self.value)
    }
}

/// A table of a MySQL, MariaDB or SingleStore database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableQuery {
    pub database: String,
    pub table: String,
    /// `None`: the table must only exist.
    pub row_count: Option<MatchExpression>,
}

/// A table in a schema of a PostgreSQL or SQL Server database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaTableQuery {
    pub database: String,
    /// `public` (PostgreSQL) or `dbo` (SQL Server) when not given.
    pub schema: String,
    pub table: String,
    /// `None`: the table must only exist.
    pub row_count: Option<MatchExpression>,
}

/// A collection of a MongoDB database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionQuery {
    pub database: String,
    pub collection: String,
    /// `None`: the collection must only exist.
    pub document_count: Option<MatchExpression>,
}

/// An Elasticsearch/OpenSearch index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexQuery {
    pub index: String,
    /// kstash's extension: the documents the index must hold. `None`: it must only exist.
    pub document_count: Option<MatchExpression>,
}

/// A logical Redis database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisQuery {
    /// The database number (`SELECT n`).
    pub index: u32,
    /// The keys it must hold (`DBSIZE`). `None`: the database must only exist.
    pub db_size: Option<MatchExpression>,
}

/// `spec.query` of a BackupVerifier, typed. Lists of kinds not given are empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifierQuery {
    pub my_sql: Vec<TableQuery>,
    pub maria_db: Vec<TableQuery>,
    pub singlestore: Vec<TableQuery>,
    pub postgres: Vec<SchemaTableQuery>,
    pub mssql_server: Vec<SchemaTableQuery>,
    pub mongo_db: Vec<CollectionQuery>,
    pub elasticsearch: Vec<IndexQuery>,
    pub redis: Vec<RedisQuery>,
}

impl VerifierQuery {
    /// Read `spec.query` of a BackupVerifier; errors name the object `BackupVerifier`
    /// (see [`VerifierQuery::from_raw_in`] to name the actual object).
    pub fn from_raw(raw: &Value) -> Result<VerifierQuery, Vec<FieldError>> {
        VerifierQuery::from_raw_in("BackupVerifier", raw)
    }

    /// [`VerifierQuery::from_raw`], errors naming `object` (`BackupVerifier demo/mysql-check`).
    /// Every error found is returned, not only the first.
    pub fn from_raw_in(object: &str, raw: &Value) -> Result<VerifierQuery, Vec<FieldError>> {
        let mut r = Reader {
            object,
            errors: Vec::new(),
        };
        let query = r.query(raw);
        if r.errors.is_empty() {
            Ok(query)
        } else {
            Err(r.errors)
        }
    }

    /// The kinds that have at least one check, in [`QueryKind::ALL`] order.
    pub fn kinds(&self) -> Vec<QueryKind> {
        QueryKind::ALL
            .into_iter()
            .filter(|k| self.len_of(*k) > 0)
            .collect()
    }

    /// Whether no check is asked for at all.
    pub fn is_empty(&self) -> bool {
        self.kinds().is_empty()
    }

    fn len_of(&self, kind: QueryKind) -> usize {
        match kind {
            QueryKind::MySql => self.my_sql.len(),
            QueryKind::MariaDb => self.maria_db.len(),
            QueryKind::Singlestore => self.singlestore.len(),
            QueryKind::Postgres => self.postgres.len(),
            QueryKind::MssqlServer => self.mssql_server.len(),
            QueryKind::MongoDb => self.mongo_db.len(),
            QueryKind::Elasticsearch => self.elasticsearch.len(),
            QueryKind::Redis => self.redis.len(),
        }
    }
}

/// Reads a raw query, collecting every error.
struct Reader<'a> {
    object: &'a str,
    errors: Vec<FieldError>,
}

impl Reader<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.errors.push(FieldError {
            object: self.object.to_string(),
            path: path.to_string(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    fn query(&mut self, raw: &Value) -> VerifierQuery {
        let mut q = VerifierQuery::default();
        let Some(map) = raw.as_object() else {
            self.error(
                ROOT,
                format!("must be an object, not {}", type_name(raw)),
                format!("write one list of checks per database kind, e.g. `postgres: [{{database: shop, table: users, rowCount: 10}}]` (keys: {})", known_keys()),
            );
            return q;
        };
        for (key, value) in map {
            let path = format!("{ROOT}.{key}");
            let Some(kind) = QueryKind::from_key(key) else {
                let hint = QueryKind::ALL
                    .iter()
                    .find(|k| k.key().eq_ignore_ascii_case(key))
                    .map(|k| format!("write `{}` (keys are case-sensitive)", k.key()))
                    .unwrap_or_else(|| format!("use one of: {}", known_keys()));
                self.error(&path, format!("unknown query key {key:?}"), hint);
                continue;
            };
            let Some(items) = self.items(&path, value) else {
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                let Some(obj) = self.object_at(&path, item, kind) else {
                    continue;
                };
                match kind {
                    QueryKind::MySql | QueryKind::MariaDb | QueryKind::Singlestore => {
                        if let Some(t) = self.table(&path, obj) {
                            match kind {
                                QueryKind::MySql => q.my_sql.push(t),
                                QueryKind::MariaDb => q.maria_db.push(t),
                                _ => q.singlestore.push(t),
                            }
                        }
                    }
                    QueryKind::Postgres => q.postgres.extend(self.schema_table(&path, obj, "public")),
                    QueryKind::MssqlServer => q.mssql_server.extend(self.schema_table(&path, obj, "dbo")),
                    QueryKind::MongoDb => q.mongo_db.extend(self.collection(&path, obj)),
                    QueryKind::Elasticsearch => q.elasticsearch.extend(self.index(&path, obj)),
                    QueryKind::Redis => q.redis.extend(self.redis(&path, obj)),
                }
            }
        }
        q
    }

    /// The list under a key (`null` counts as empty).
    fn items<'v>(&mut self, path: &str, value: &'v Value) -> Option<&'v [Value]> {
        match value {
            Value::Array(items) => Some(items),
            Value::Null => Some(&[]),
            other => {
                self.error(
                    path,
                    format!("must be a list of checks, not {}", type_name(other)),
                    "write the checks as a YAML list (`- database: …`)",
                );
                None
            }
        }
    }

    fn object_at<'v>(
        &mut self,
        path: &str,
        item: &'v Value,
        kind: QueryKind,
    ) -> Option<&'v Map<String, Value>> {
        match item.as_object() {
            Some(obj) => Some(obj),
            None => {
                self.error(
                    path,
                    format!("must be an object, not {}", type_name(item)),
                    format!("write the check as `{{{}}}`", fields_of(kind).join(", ")),
                );
                None
            }
        }
    }

    /// Errors for keys of `obj` not in `known`.
    fn no_unknown(&mut self, path: &str, obj: &Map<String, Value>, known: &[&str]) {
        for key in obj.keys().filter(|k| !known.contains(&k.as_str())) {
            let hint = known
                .iter()
                .find(|k| k.eq_ignore_ascii_case(key))
                .map(|k| format!("write `{k}` (field names are case-sensitive)"))
                .unwrap_or_else(|| format!("use only {}", known.join(", ")));
            self.error(&format!("{path}.{key}"), format!("unknown field {key:?}"), hint);
        }
    }

    /// A required, non-empty name (database, table, …) without NUL characters.
    fn name(&mut self, path: &str, obj: &Map<String, Value>, key: &str) -> Option<String> {
        self.optional_name(path, obj, key).or_else(|| {
            if obj.get(key).is_none_or(Value::is_null) {
                self.error(
                    &format!("{path}.{key}"),
                    "required value is missing",
                    format!("set {key}"),
                );
            }
            None
        })
    }

    fn optional_name(&mut self, path: &str, obj: &Map<String, Value>, key: &str) -> Option<String> {
        let path = format!("{path}.{key}");
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => {
                self.error(&path, "must not be empty", format!("set {key} to a name"));
                None
            }
            Some(Value::String(s)) if s.contains('\0') => {
                self.error(&path, "contains a NUL character", "remove it");
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.error(
                    &path,
                    format!("must be a string, not {}", type_name(other)),
                    format!("write {key} as a name"),
                );
                None
            }
        }
    }

    /// An optional count: an integer (Equal) or `{operator, value}`.
    fn count(&mut self, path: &str, obj: &Map<String, Value>, key: &str) -> Option<MatchExpression> {
        let path = format!("{path}.{key}");
        let fix = format!("write `{key}: 100` or `{key}: {{operator: GreaterThanOrEqual, value: 100}}`");
        match obj.get(key)? {
            Value::Null => None,
            Value::Number(n) => match n.as_i64() {
                Some(v) => Some(MatchExpression::equal(v)),
                None => {
                    self.error(&path, format!("{n} is not a whole number"), fix);
                    None
                }
            },
            Value::Object(m) => {
                self.no_unknown(&path, m, &["operator", "value"]);
                let operator = match m.get("operator") {
                    None | Some(Value::Null) => Some(Operator::Equal),
                    Some(Value::String(s)) => Operator::from_name(s).or_else(|| {
                        let names: Vec<_> = Operator::ALL.iter().map(|o| o.name()).collect();
                        self.error(
                            &format!("{path}.operator"),
                            format!("unknown operator {s:?}"),
                            format!("use one of: {}", names.join(", ")),
                        );
                        None
                    }),
                    Some(other) => {
                        self.error(
                            &format!("{path}.operator"),
                            format!("must be a string, not {}", type_name(other)),
                            "write an operator like GreaterThanOrEqual",
                        );
                        None
                    }
                };
                let value = match m.get("value") {
                    None | Some(Value::Null) => {
                        self.error(
                            &format!("{path}.value"),
                            "required value is missing",
                            "set value to the count to compare with",
                        );
                        None
                    }
                    Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
                    Some(other) => {
                        self.error(
                            &format!("{path}.value"),
                            format!("{other} is not a whole number"),
                            "write value as an integer, e.g. `value: 100`",
                        );
                        None
                    }
                };
                Some(MatchExpression {
                    operator: operator?,
                    value: value?,
                })
            }
            other => {
                self.error(
                    &path,
                    format!("must be a number or an object, not {}", type_name(other)),
                    fix,
                );
                None
            }
        }
    }

    fn table(&mut self, path: &str, obj: &Map<String, Value>) -> Option<TableQuery> {
        self.no_unknown(path, obj, &["database", "table", "rowCount"]);
        let database = self.name(path, obj, "database");
        let table = self.name(path, obj, "table");
        let row_count = self.count(path, obj, "rowCount");
        Some(TableQuery {
            database: database?,
            table: table?,
            row_count,
        })
    }

    fn schema_table(
        &mut self,
        path: &str,
        obj: &Map<String, Value>,
        default_schema: &str,
    ) -> Option<SchemaTableQuery> {
        self.no_unknown(path, obj, &["database", "schema", "table", "rowCount"]);
        let database = self.name(path, obj, "database");
        let schema = self
            .optional_name(path, obj, "schema")
            .unwrap_or_else(|| default_schema.to_string());
        let table = self.name(path, obj, "table");
        let row_count = self.count(path, obj, "rowCount");
        Some(SchemaTableQuery {
            database: database?,
            schema,
            table: table?,
            row_count,
        })
    }

    fn collection(&mut self, path: &str, obj: &Map<String, Value>) -> Option<CollectionQuery> {
        self.no_unknown(path, obj, &["database", "collection", "documentCount"]);
        let database = self.name(path, obj, "database");
        let collection = self.name(path, obj, "collection");
        let document_count = self.count(path, obj, "documentCount");
        Some(CollectionQuery {
            database: database?,
            collection: collection?,
            document_count,
        })
    }

    fn index(&mut self, path: &str, obj: &Map<String, Value>) -> Option<IndexQuery> {
        self.no_unknown(path, obj, &["index", "documentCount"]);
        let index = self.name(path, obj, "index").filter(|i| {
            let bad = index_name_problem(i);
            if let Some(problem) = &bad {
                self.error(
                    &format!("{path}.index"),
                    format!("{i:?} is not an index name: {problem}"),
                    "name one index exactly (no wildcards, no lists)",
                );
            }
            bad.is_none()
        });
        let document_count = self.count(path, obj, "documentCount");
        Some(IndexQuery {
            index: index?,
            document_count,
        })
    }

    fn redis(&mut self, path: &str, obj: &Map<String, Value>) -> Option<RedisQuery> {
        self.no_unknown(path, obj, &["index", "dbSize"]);
        let index = match obj.get("index") {
            None | Some(Value::Null) => Some(0),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)) => {
                n.as_u64().map(|n| n as u32)
            }
            Some(other) => {
                self.error(
                    &format!("{path}.index"),
                    format!("{other} is not a database number"),
                    "write the number of the logical database, e.g. `index: 0`",
                );
                None
            }
        };
        let db_size = self.count(path, obj, "dbSize");
        Some(RedisQuery {
            index: index?,
            db_size,
        })
    }
}

/// Why `name` cannot be one Elasticsearch/OpenSearch index (the server's own rules, plus no
/// wildcards or lists, which would count several indices as one).
fn index_name_problem(name: &str) -> Option<String> {
    if let Some(c) = name.chars().find(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
        )
    }) {
        return Some(format!("it contains {c:?}"));
    }
    if name.starts_with(['-', '_', '+']) {
        return Some("it starts with '-', '_' or '+'".into());
    }
    if name == "." || name == ".." {
        return Some("it is . or ..".into());
    }
    None
}

fn known_keys() -> String {
    QueryKind::ALL.map(QueryKind::key).join(", ")
}

fn fields_of(kind: QueryKind) -> &'static [&'static str] {
    match kind {
        QueryKind::MySql | QueryKind::MariaDb | QueryKind::Singlestore => &["database", "table", "rowCount"],
        QueryKind::Postgres | QueryKind::MssqlServer => &["database", "schema", "table", "rowCount"],
        QueryKind::MongoDb => &["database", "collection", "documentCount"],
        QueryKind::Elasticsearch => &["index", "documentCount"],
        QueryKind::Redis => &["index", "dbSize"],
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<VerifierQuery, Vec<FieldError>> {
        let raw: Value = serde_yaml_ng::from_str(yaml).expect("test YAML");
        VerifierQuery::from_raw(&raw)
    }

    fn table(database: &str, table: &str, row_count: Option<MatchExpression>) -> TableQuery {
        TableQuery {
            database: database.into(),
            table: table.into(),
            row_count,
        }
    }

    fn expr(operator: Operator, value: i64) -> MatchExpression {
        MatchExpression { operator, value }
    }

    #[test]
    fn kubestash_documentation_examples_parse() {
        use Operator::*;
        // (the `query:` block of each example in KubeStash's configuring-backup-verification
        // guide and the v2024.12.9 release post, what it must parse to)
        let cases: Vec<(&str, VerifierQuery)> = vec![
            (
                "mySQL:\n- database: shop\n  table: employee\n  rowCount:\n    operator: GreaterThanOrEqual\n    value: 100\n- database: playground\n  table: equipment\n  rowCount:\n    operator: GreaterThan\n    value: 200\n",
                VerifierQuery {
                    my_sql: vec![
                        table("shop", "employee", Some(expr(GreaterThanOrEqual, 100))),
                        table("playground", "equipment", Some(expr(GreaterThan, 200))),
                    ],
                    ..Default::default()
                },
            ),
            (
                "mySQL:\n- database: auth\n  table: user\n  rowCount:\n    operator: Equal\n    value: 100\n- database: store\n  table: order\n",
                VerifierQuery {
                    my_sql: vec![
                        table("auth", "user", Some(expr(Equal, 100))),
                        table("store", "order", None),
                    ],
                    ..Default::default()
                },
            ),
            (
                "mariaDB:\n- database: shop\n  table: employee\n  rowCount:\n    operator: GreaterThanOrEqual\n    value: 100\n",
                VerifierQuery {
                    maria_db: vec![table("shop", "employee", Some(expr(GreaterThanOrEqual, 100)))],
                    ..Default::default()
                },
            ),
            (
                "postgres:\n- database: shop\n  schema: primary\n  table: employee\n  rowCount:\n    operator: GreaterThanOrEqual\n    value: 100\n",
                VerifierQuery {
                    postgres: vec![SchemaTableQuery {
                        database: "shop".into(),
                        schema: "primary".into(),
                        table: "employee".into(),
                        row_count: Some(expr(GreaterThanOrEqual, 100)),
                    }],
                    ..Default::default()
                },
            ),
            (
                "mongoDB:\n- database: shop\n  collection: employee\n  documentCount:\n    operator: GreaterThanOrEqual\n    value: 100\n",
                VerifierQuery {
                    mongo_db: vec![CollectionQuery {
                        database: "shop".into(),
                        collection: "employee".into(),
                        document_count: Some(expr(GreaterThanOrEqual, 100)),
                    }],
                    ..Default::default()
                },
            ),
            (
                "elasticsearch:\n- index: shop\n",
                VerifierQuery {
                    elasticsearch: vec![IndexQuery {
                        index: "shop".into(),
                        document_count: None,
                    }],
                    ..Default::default()
                },
            ),
            (
                "redis:\n- index: 0\n  dbSize: 100\n",
                VerifierQuery {
                    redis: vec![RedisQuery {
                        index: 0,
                        db_size: Some(expr(Equal, 100)),
                    }],
                    ..Default::default()
                },
            ),
            (
                "singlestore:\n- database: shop\n  table: employee\n  rowCount:\n    operator: GreaterThanOrEqual\n    value: 100\n",
                VerifierQuery {
                    singlestore: vec![table("shop", "employee", Some(expr(GreaterThanOrEqual, 100)))],
                    ..Default::default()
                },
            ),
            (
                "mssqlServer:\n- database: shop\n  schema: dob\n  table: employee\n  rowCount:\n    operator: GreaterThanOrEqual\n    value: 100\n",
                VerifierQuery {
                    mssql_server: vec![SchemaTableQuery {
                        database: "shop".into(),
                        schema: "dob".into(),
                        table: "employee".into(),
                        row_count: Some(expr(GreaterThanOrEqual, 100)),
                    }],
                    ..Default::default()
                },
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(parse(yaml).unwrap(), want, "{yaml}");
        }
    }

    #[test]
    fn scalar_typed_and_default_forms_parse() {
        use Operator::*;
        // (query, what the one check's count and names come out as)
        let cases: Vec<(&str, Option<MatchExpression>, &str)> = vec![
            (
                "postgres: [{database: shop, table: users, rowCount: 5}]",
                Some(expr(Equal, 5)),
                "public",
            ),
            (
                "postgres: [{database: shop, table: users, rowCount: {value: 5}}]",
                Some(expr(Equal, 5)),
                "public",
            ),
            (
                "postgres: [{database: shop, table: users, rowCount: {operator: NotEqual, value: 0}}]",
                Some(expr(NotEqual, 0)),
                "public",
            ),
            (
                "postgres: [{database: shop, table: users, rowCount: {operator: LessThan, value: -1}}]",
                Some(expr(LessThan, -1)),
                "public",
            ),
            (
                "postgres: [{database: shop, schema: sales, table: users, rowCount: {operator: LessThanOrEqual, value: 9}}]",
                Some(expr(LessThanOrEqual, 9)),
                "sales",
            ),
            ("postgres: [{database: shop, table: users}]", None, "public"),
            (
                "postgres: [{database: shop, table: users, rowCount: null, schema: null}]",
                None,
                "public",
            ),
        ];
        for (yaml, count, schema) in cases {
            let q = parse(yaml).unwrap();
            assert_eq!(q.postgres[0].row_count, count, "{yaml}");
            assert_eq!(q.postgres[0].schema, schema, "{yaml}");
            assert_eq!(q.kinds(), vec![QueryKind::Postgres]);
        }
        let q = parse("redis: [{dbSize: {operator: GreaterThan, value: 3}}, {index: 7}]\nelasticsearch: [{index: logs-1, documentCount: 12}]").unwrap();
        assert_eq!(
            q.redis,
            vec![
                RedisQuery {
                    index: 0,
                    db_size: Some(expr(GreaterThan, 3))
                },
                RedisQuery {
                    index: 7,
                    db_size: None
                },
            ]
        );
        assert_eq!(q.elasticsearch[0].document_count, Some(expr(Equal, 12)));
        assert_eq!(q.kinds(), vec![QueryKind::Elasticsearch, QueryKind::Redis]);
        assert!(parse("{}").unwrap().is_empty());
        assert!(parse("mySQL: []\npostgres: null").unwrap().is_empty());
    }

    #[test]
    fn mistakes_are_reported_with_their_path_and_fix() {
        // (query, path of the (first) error, words its message and fix must hold)
        let cases: Vec<(&str, &str, &[&str])> = vec![
            (
                "mongo: []",
                "spec.query.mongo",
                &[
                    "unknown query key \"mongo\"",
                    "mySQL, mariaDB, postgres, mongoDB, elasticsearch, redis, singlestore, mssqlServer",
                ],
            ),
            ("mysql: []", "spec.query.mysql", &["write `mySQL`"]),
            ("[1]", "spec.query", &["must be an object, not a list"]),
            (
                "postgres: {database: shop}",
                "spec.query.postgres",
                &["must be a list"],
            ),
            (
                "postgres: [shop]",
                "spec.query.postgres[0]",
                &["must be an object", "database, schema, table, rowCount"],
            ),
            (
                "postgres: [{table: users}]",
                "spec.query.postgres[0].database",
                &["required value is missing"],
            ),
            (
                "postgres: [{database: shop, table: ''}]",
                "spec.query.postgres[0].table",
                &["must not be empty"],
            ),
            (
                "postgres: [{database: 5, table: users}]",
                "spec.query.postgres[0].database",
                &["must be a string, not a number"],
            ),
            (
                "postgres: [{database: shop, table: users, rowCount: {operator: Equals, value: 1}}]",
                "spec.query.postgres[0].rowCount.operator",
                &["unknown operator \"Equals\"", "GreaterThanOrEqual"],
            ),
            (
                "postgres: [{database: shop, table: users, rowCount: {operator: Equal}}]",
                "spec.query.postgres[0].rowCount.value",
                &["required value is missing"],
            ),
            (
                "postgres: [{database: shop, table: users, rowCount: {value: '5'}}]",
                "spec.query.postgres[0].rowCount.value",
                &["is not a whole number"],
            ),
            (
                "postgres: [{database: shop, table: users, rowCount: 1.5}]",
                "spec.query.postgres[0].rowCount",
                &["1.5 is not a whole number", "rowCount: 100"],
            ),
            (
                "postgres: [{database: shop, table: users, rowCount: five}]",
                "spec.query.postgres[0].rowCount",
                &["must be a number or an object, not a string"],
            ),
            (
                "postgres: [{database: shop, table: users, rowcount: 5}]",
                "spec.query.postgres[0].rowcount",
                &["unknown field \"rowcount\"", "write `rowCount`"],
            ),
            (
                "postgres: [{database: shop, table: users, rowCount: {value: 5, op: Equal}}]",
                "spec.query.postgres[0].rowCount.op",
                &["unknown field", "operator, value"],
            ),
            (
                "mySQL: [{database: shop, table: users, schema: x}]",
                "spec.query.mySQL[0].schema",
                &["unknown field", "database, table, rowCount"],
            ),
            (
                "redis: [{index: -1}]",
                "spec.query.redis[0].index",
                &["-1 is not a database number"],
            ),
            (
                "elasticsearch: [{index: 'logs-*'}]",
                "spec.query.elasticsearch[0].index",
                &["contains '*'", "no wildcards"],
            ),
            (
                "elasticsearch: [{index: 'a,b'}]",
                "spec.query.elasticsearch[0].index",
                &["contains ','"],
            ),
            (
                "elasticsearch: [{index: _all}]",
                "spec.query.elasticsearch[0].index",
                &["starts with"],
            ),
        ];
        for (yaml, path, words) in cases {
            let errors = parse(yaml).expect_err(yaml);
            let e = &errors[0];
            assert_eq!(e.path, path, "{yaml}: {errors:?}");
            assert_eq!(e.object, "BackupVerifier");
            let text = e.to_string();
            for w in words {
                assert!(text.contains(w), "{yaml}: {text:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn every_error_is_collected_and_names_the_object() {
        let raw: Value = serde_yaml_ng::from_str(
            "postgres: [{table: a}, {database: b, table: c, rowCount: {operator: Bigger, value: x}}]\nfoo: 1",
        )
        .unwrap();
        let errors = VerifierQuery::from_raw_in("BackupVerifier demo/pg-check", &raw).unwrap_err();
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.query.postgres[0].database",
                "spec.query.postgres[1].rowCount.operator",
                "spec.query.postgres[1].rowCount.value",
                "spec.query.foo",
            ]
        );
        assert!(errors.iter().all(|e| e.object == "BackupVerifier demo/pg-check"));
    }

    #[test]
    fn match_expressions_compare_and_read_as_comparisons() {
        use Operator::*;
        // (operator, value, found, matches, display)
        let cases = [
            (Equal, 1000, 1000, true, "= 1000"),
            (Equal, 1000, 998, false, "= 1000"),
            (NotEqual, 0, 0, false, "!= 0"),
            (NotEqual, 0, 3, true, "!= 0"),
            (LessThan, 5, 4, true, "< 5"),
            (LessThan, 5, 5, false, "< 5"),
            (LessThanOrEqual, 5, 5, true, "<= 5"),
            (LessThanOrEqual, 5, 6, false, "<= 5"),
            (GreaterThan, 5, 6, true, "> 5"),
            (GreaterThan, 5, 5, false, "> 5"),
            (GreaterThanOrEqual, 5, 5, true, ">= 5"),
            (GreaterThanOrEqual, 5, 4, false, ">= 5"),
            (GreaterThan, -1, 0, true, "> -1"),
        ];
        for (operator, value, found, matches, display) in cases {
            let e = expr(operator, value);
            assert_eq!(e.matches(found), matches, "{e} vs {found}");
            assert_eq!(e.to_string(), display);
        }
        assert_eq!(Operator::default(), Equal);
    }
}
