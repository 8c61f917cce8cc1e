//! Backup verification by query against real servers (testsupport): for PostgreSQL, MariaDB
//! (as `mariaDB` and `mySQL`), Redis and the Elasticsearch API, a query whose checks pass, one
//! whose count is wrong (the message names the table and both numbers), and ones naming a
//! table, database or index that does not exist. Hostile names (quotes, backticks, a
//! `; DROP TABLE`) are counted as names, and the data survives them. The AppBinding path is
//! exercised once, for PostgreSQL, through an in-memory store.

use std::collections::BTreeMap;

use kstash_addons::{DirectTarget, Found, VerificationReport, run_queries, run_queries_at};
use kstash_api::common::TypedObjectReference;
use kstash_api::memory::MemoryResources;
use kstash_api::query::VerifierQuery;
use kstash_storage::LocalMode;
use kstash_testsupport::{Elasticsearch, MariaDb, Postgres, Redis, Resp};
use serde_json::{Value, json};

/// Short waits: the servers are up when the test starts.
fn params() -> BTreeMap<String, String> {
    BTreeMap::from([("waitTimeout".to_string(), "20".to_string())])
}

fn query(raw: Value) -> VerifierQuery {
    VerifierQuery::from_raw(&raw).unwrap_or_else(|e| panic!("query {raw}: {e:?}"))
}

/// Each check's message, with whether it passed.
fn outcomes(report: &VerificationReport) -> Vec<(bool, String)> {
    report
        .checks
        .iter()
        .map(|c| (c.passed(), c.to_string()))
        .collect()
}

fn target(url: String, user: &str, password: &str) -> DirectTarget {
    DirectTarget {
        url,
        user: user.into(),
        password: password.into(),
        ca_bundle: None,
    }
}

const HOSTILE: &str = "we\"ird`; DROP TABLE users; --";

#[test]
fn postgres_tables_are_counted_and_missing_tables_and_databases_fail_the_check() {
    let pg = Postgres::start().unwrap();
    pg.psql("CREATE DATABASE shop");
    let shop = |sql: &str| {
        let mut cmd = std::process::Command::new(pg.bin_dir().join("psql"));
        let out = cmd
            .env("PGPASSWORD", &pg.password)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", &pg.host])
            .args([
                "-p",
                &pg.port.to_string(),
                "-U",
                &pg.user,
                "-d",
                "shop",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    shop("CREATE TABLE users (id int); INSERT INTO users SELECT generate_series(1, 1000)");
    shop(&format!(
        "CREATE SCHEMA \"Sales\"; CREATE TABLE \"Sales\".\"{}\" (id int); INSERT INTO \"Sales\".\"{}\" VALUES (1), (2)",
        HOSTILE.replace('"', "\"\""),
        HOSTILE.replace('"', "\"\"")
    ));

    let q = query(json!({"postgres": [
        {"database": "shop", "table": "users", "rowCount": 1000},
        {"database": "shop", "table": "users", "rowCount": {"operator": "Equal", "value": 998}},
        {"database": "shop", "schema": "Sales", "table": HOSTILE, "rowCount": {"operator": "GreaterThanOrEqual", "value": 2}},
        {"database": "shop", "table": "users"},
        {"database": "shop", "table": "nope", "rowCount": 1},
        {"database": "shop", "table": "USERS"},
        {"database": "nowhere", "table": "users", "rowCount": 1},
    ]}));
    let report = run_queries(&target(pg.url(), &pg.user, &pg.password), &params(), &q).unwrap();
    let hostile = format!("{:?}", format!("Sales.{HOSTILE}"));
    assert_eq!(
        outcomes(&report),
        vec![
            (
                true,
                r#"postgres table "public.users" in database "shop": rowCount 1000 (expected = 1000)"#
                    .to_string()
            ),
            (
                false,
                r#"postgres table "public.users" in database "shop": expected rowCount = 998, found 1000"#
                    .to_string()
            ),
            (
                true,
                format!(r#"postgres table {hostile} in database "shop": rowCount 2 (expected >= 2)"#)
            ),
            (
                true,
                r#"postgres table "public.users" in database "shop" exists"#.to_string()
            ),
            (
                false,
                r#"postgres table "public.nope" in database "shop": the table does not exist"#.to_string()
            ),
            (
                false,
                r#"postgres table "public.USERS" in database "shop": the table does not exist"#.to_string()
            ),
            (
                false,
                r#"postgres table "public.users" in database "nowhere": the database does not exist"#
                    .to_string()
            ),
        ]
    );
    assert_eq!(report.failures().len(), 4);
    assert_eq!(
        shop("SELECT count(*) FROM users"),
        "1000",
        "the data is untouched"
    );
}

#[test]
fn postgres_is_reached_through_its_appbinding() {
    let pg = Postgres::start().unwrap();
    pg.psql("CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2), (3)");
    let store = MemoryResources::with([
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "pg-auth", "namespace": "demo"},
            "stringData": {"username": pg.user, "password": pg.password}
        }),
        json!({
            "apiVersion": "appcatalog.appscode.com/v1alpha1", "kind": "AppBinding",
            "metadata": {"name": "pg", "namespace": "demo"},
            "spec": {
                "clientConfig": {"url": format!("postgres://{}:{}/postgres", pg.host, pg.port)},
                "secret": {"name": "pg-auth"}
            }
        }),
    ])
    .unwrap();
    let app = TypedObjectReference {
        name: "pg".into(),
        ..Default::default()
    };
    let q = query(json!({"postgres": [
        {"database": "postgres", "table": "items", "rowCount": {"operator": "GreaterThan", "value": 5}},
    ]}));
    let report = run_queries_at(
        &store,
        Some(&app),
        "demo",
        "BackupVerificationSession demo/v1",
        LocalMode::Host,
        &params(),
        &q,
    )
    .unwrap();
    assert_eq!(
        outcomes(&report),
        vec![(
            false,
            r#"postgres table "public.items" in database "postgres": expected rowCount > 5, found 3"#
                .to_string()
        )]
    );

    let missing = TypedObjectReference {
        name: "gone".into(),
        ..Default::default()
    };
    let e = run_queries_at(
        &store,
        Some(&missing),
        "demo",
        "x",
        LocalMode::Host,
        &params(),
        &q,
    )
    .unwrap_err();
    assert!(e.to_string().contains("gone"), "{e}");
}

#[test]
fn mariadb_tables_are_counted_for_mysql_and_mariadb_queries() {
    let db = MariaDb::start().unwrap();
    db.sql(&format!(
        "CREATE DATABASE shop; CREATE TABLE shop.users (id int); \
         INSERT INTO shop.users VALUES (1), (2), (3), (4), (5); \
         CREATE TABLE shop.`{}` (id int); INSERT INTO shop.`{}` VALUES (1);",
        HOSTILE.replace('`', "``"),
        HOSTILE.replace('`', "``")
    ));
    let t = target(
        format!("mysql://{}:{}/", db.host, db.port),
        &db.user,
        &db.password,
    );
    let q = query(json!({"mariaDB": [
        {"database": "shop", "table": "users", "rowCount": 5},
        {"database": "shop", "table": "users", "rowCount": {"operator": "LessThan", "value": 3}},
        {"database": "shop", "table": HOSTILE, "rowCount": 1},
        {"database": "shop", "table": "nope", "rowCount": 1},
        {"database": "shop", "table": "USERS"},
        {"database": "nowhere", "table": "users"},
    ], "mySQL": [
        {"database": "shop", "table": "users"},
    ]}));
    let report = run_queries(&t, &params(), &q).unwrap();
    let hostile = format!("{HOSTILE:?}");
    assert_eq!(
        outcomes(&report),
        vec![
            (
                true,
                r#"mySQL table "users" in database "shop" exists"#.to_string()
            ),
            (
                true,
                r#"mariaDB table "users" in database "shop": rowCount 5 (expected = 5)"#.to_string()
            ),
            (
                false,
                r#"mariaDB table "users" in database "shop": expected rowCount < 3, found 5"#.to_string()
            ),
            (
                true,
                format!(r#"mariaDB table {hostile} in database "shop": rowCount 1 (expected = 1)"#)
            ),
            (
                false,
                r#"mariaDB table "nope" in database "shop": the table does not exist"#.to_string()
            ),
            (
                false,
                r#"mariaDB table "USERS" in database "shop": the table does not exist"#.to_string()
            ),
            (
                false,
                r#"mariaDB table "users" in database "nowhere": the database does not exist"#.to_string()
            ),
        ]
    );
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM shop.users"),
        "5",
        "the data is untouched"
    );
}

#[test]
fn redis_databases_are_sized_and_a_database_out_of_range_fails_the_check() {
    let r = Redis::start().unwrap();
    for (db, keys) in [("0", 3), ("5", 2)] {
        for i in 0..keys {
            let key = format!("k{i}");
            // One connection per command, so SELECT would not carry over: a script selects
            // the database itself.
            let script = format!("redis.call('SELECT', {db}); return redis.call('SET', KEYS[1], 'v')");
            let set = r.command(&["EVAL", &script, "1", &key]).unwrap();
            assert!(matches!(set, Resp::Simple(_)), "{set:?}");
        }
    }
    let q = query(json!({"redis": [
        {"index": 0, "dbSize": 3},
        {"index": 5, "dbSize": {"operator": "GreaterThan", "value": 2}},
        {"index": 7},
        {"index": 99, "dbSize": 1},
    ]}));
    let report = run_queries(&target(r.url(), "", ""), &params(), &q).unwrap();
    let o = outcomes(&report);
    assert_eq!(
        o[..3],
        [
            (true, "redis database 0: dbSize 3 (expected = 3)".to_string()),
            (
                false,
                "redis database 5: expected dbSize > 2, found 2".to_string()
            ),
            (true, "redis database 7 exists".to_string()),
        ]
    );
    assert!(!o[3].0);
    assert!(
        o[3].1
            .starts_with("redis database 99: the database does not exist (")
            && o[3].1.contains("out of range"),
        "{}",
        o[3].1
    );
    assert!(matches!(report.checks[3].found, Found::Missing(_)));
}

#[test]
fn elasticsearch_indices_are_counted_and_a_missing_index_fails_the_check() {
    let es = Elasticsearch::start().unwrap();
    es.call("PUT", "/shop", Some(&json!({}))).unwrap();
    for id in 1..=3 {
        es.call("PUT", &format!("/shop/_doc/{id}"), Some(&json!({"n": id})))
            .unwrap();
    }
    es.call("POST", "/shop/_refresh", None).unwrap();
    let q = query(json!({"elasticsearch": [
        {"index": "shop", "documentCount": 3},
        {"index": "shop", "documentCount": {"operator": "GreaterThanOrEqual", "value": 5}},
        {"index": "shop"},
        {"index": "nope"},
    ]}));
    let report = run_queries(&target(es.url.clone(), "", ""), &params(), &q).unwrap();
    assert_eq!(
        outcomes(&report),
        vec![
            (
                true,
                r#"elasticsearch index "shop": documentCount 3 (expected = 3)"#.to_string()
            ),
            (
                false,
                r#"elasticsearch index "shop": expected documentCount >= 5, found 3"#.to_string()
            ),
            (true, r#"elasticsearch index "shop" exists"#.to_string()),
            (
                false,
                r#"elasticsearch index "nope": the index does not exist"#.to_string()
            ),
        ]
    );
}
