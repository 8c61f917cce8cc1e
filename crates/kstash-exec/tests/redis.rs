//! The native Redis driver end to end against a real Redis 7.0 (testsupport): over 12,000 keys
//! of every type (binary strings and key names, hashes, lists, sets, sorted sets, streams with a
//! consumer group, keys with TTLs) in three logical databases are backed up through
//! `run_backup`, flushed, and restored through `run_restore`; every key's DUMP payload must be
//! identical, every TTL within a tolerance, and the key counts per database equal. The backup
//! stream also replays through `redis-cli --pipe`. Failures (wrong password, no credentials for a
//! server that needs them, server down, keys that exist in the target, the connection cut
//! halfway through the dump or the restore by a `TcpCutProxy`) fail clearly.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{AUTH_SECRET, NS, Target, World};
use kstash_api::core::RestorePhase;
use kstash_api::storage::ComponentPhase;
use kstash_exec::{run_backup, run_restore};
use kstash_testsupport::{CutPlan, Redis, TcpCutProxy};
use serde_json::{Value, json};

const CATALOG: &[(&str, &str)] = &[(
    "catalog/redis-addon.yaml",
    include_str!("../../../catalog/redis-addon.yaml"),
)];
const USER: &str = "kstash";
const USER_PASSWORD: &str = "s3cret pass";
/// An hour: TTLs that do not run out during the test.
const HOUR_MS: i64 = 3_600_000;
/// How much a TTL may shrink between the fingerprint before and after (dump → restore lag).
const TTL_TOLERANCE_MS: i64 = 120_000;

/// A RESP2 value, as far as the test needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum V {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<V>),
}

impl V {
    fn bytes(self) -> Vec<u8> {
        match self {
            V::Bulk(Some(b)) => b,
            other => panic!("expected a bulk string, got {other:?}"),
        }
    }

    fn int(&self) -> i64 {
        match self {
            V::Int(i) => *i,
            other => panic!("expected an integer, got {other:?}"),
        }
    }
}

/// A pipelining test client.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(port: u16, auth: Option<(&str, &str)>) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut c = Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        if let Some((user, pass)) = auth {
            let reply = if user.is_empty() {
                c.cmd(&[b"AUTH", pass.as_bytes()])
            } else {
                c.cmd(&[b"AUTH", user.as_bytes(), pass.as_bytes()])
            };
            assert_eq!(reply, V::Simple("OK".into()));
        }
        c
    }

    fn cmd(&mut self, args: &[&[u8]]) -> V {
        self.pipeline(&[args.iter().map(|a| a.to_vec()).collect()])
            .pop()
            .unwrap()
    }

    fn ok(&mut self, args: &[&[u8]]) {
        if let V::Error(e) = self.cmd(args) {
            panic!("{:?}: {e}", String::from_utf8_lossy(args[0]));
        }
    }

    fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> Vec<V> {
        let mut buf = Vec::new();
        for c in cmds {
            buf.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
            for a in c {
                buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                buf.extend_from_slice(a);
                buf.extend_from_slice(b"\r\n");
            }
        }
        self.w.write_all(&buf).unwrap();
        cmds.iter().map(|_| self.read()).collect()
    }

    /// Run `cmds` in pipelines of 1000, every reply must not be an error.
    fn load(&mut self, cmds: Vec<Vec<Vec<u8>>>) {
        for chunk in cmds.chunks(1000) {
            for v in self.pipeline(chunk) {
                assert!(!matches!(v, V::Error(_)), "{v:?}");
            }
        }
    }

    fn read(&mut self) -> V {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line).unwrap();
        line.truncate(line.len() - 2);
        let rest = String::from_utf8_lossy(&line[1..]).into_owned();
        match line[0] {
            b'+' => V::Simple(rest),
            b'-' => V::Error(rest),
            b':' => V::Int(rest.parse().unwrap()),
            b'$' => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return V::Bulk(None);
                }
                let mut b = vec![0; n as usize + 2];
                self.r.read_exact(&mut b).unwrap();
                b.truncate(n as usize);
                V::Bulk(Some(b))
            }
            b'*' => {
                let n: i64 = rest.parse().unwrap();
                V::Array((0..n.max(0)).map(|_| self.read()).collect())
            }
            other => panic!("unknown reply type {other}"),
        }
    }

    fn select(&mut self, db: u32) {
        self.ok(&[b"SELECT", db.to_string().as_bytes()]);
    }
}

fn cmd(args: &[&[u8]]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.to_vec()).collect()
}

/// Binary bytes that differ per `i`, with NUL, CR/LF and high bytes.
fn binary(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| ((i * 31 + j * 7) % 256) as u8)
        .chain([0, b'\r', b'\n', 0xff])
        .collect()
}

/// Strings (binary values, a binary key name), keys with TTLs, hashes (small and big), lists
/// (small and big), sets (intset, small, big), sorted sets (small and big), a stream with a
/// consumer group and pending entries; spread over databases 0, 1 and 5.
fn create_varied_data(c: &mut Client) {
    c.select(0);
    let mut cmds = Vec::new();
    for i in 0..10_000 {
        let key = format!("str:{i}");
        let value = binary(i, 40 + i % 200);
        if i % 10 == 0 {
            let ttl = (HOUR_MS + i as i64).to_string();
            cmds.push(cmd(&[b"SET", key.as_bytes(), &value, b"PX", ttl.as_bytes()]));
        } else {
            cmds.push(cmd(&[b"SET", key.as_bytes(), &value]));
        }
    }
    cmds.push(cmd(&[b"SET", b"\x00bin\r\nkey\xff", b"binary key"]));
    cmds.push(cmd(&[b"SET", b"counter", b"12345"]));
    cmds.push(cmd(&[b"SET", b"big", &vec![b'x'; 3 << 20]]));
    for i in 0..100 {
        let key = format!("hash:{i}");
        let mut hset = cmd(&[b"HSET", key.as_bytes()]);
        for f in 0..20 {
            hset.push(format!("field{f}").into_bytes());
            hset.push(binary(i + f, 10));
        }
        cmds.push(hset);
    }
    let mut big_hash = cmd(&[b"HSET", b"hash:big"]);
    for f in 0..2000 {
        big_hash.push(format!("f{f}").into_bytes());
        big_hash.push(format!("value {f}").into_bytes());
    }
    cmds.push(big_hash);
    for i in 0..50 {
        let key = format!("list:{i}");
        let mut rpush = cmd(&[b"RPUSH", key.as_bytes()]);
        rpush.extend((0..10).map(|e| binary(i * 10 + e, 8)));
        cmds.push(rpush);
    }
    let mut big_list = cmd(&[b"RPUSH", b"list:big"]);
    big_list.extend((0..5000).map(|e| format!("element {e}").into_bytes()));
    cmds.push(big_list);
    let mut ints = cmd(&[b"SADD", b"set:ints"]);
    ints.extend((0..100).map(|e| e.to_string().into_bytes()));
    cmds.push(ints);
    cmds.push(cmd(&[b"SADD", b"set:small", b"a", b"b", b"\xffc"]));
    let mut big_set = cmd(&[b"SADD", b"set:big"]);
    big_set.extend((0..1000).map(|e| format!("member {e}").into_bytes()));
    cmds.push(big_set);
    cmds.push(cmd(&[
        b"ZADD",
        b"zset:small",
        b"1",
        b"one",
        b"2.5",
        b"two",
        b"-3",
        b"three",
    ]));
    let mut big_zset = cmd(&[b"ZADD", b"zset:big"]);
    for m in 0..1000 {
        big_zset.push(format!("{}", m as f64 / 3.0).into_bytes());
        big_zset.push(format!("m{m}").into_bytes());
    }
    cmds.push(big_zset);
    for e in 0..300 {
        cmds.push(cmd(&[
            b"XADD",
            b"stream:events",
            b"*",
            b"n",
            e.to_string().as_bytes(),
            b"payload",
            &binary(e, 16),
        ]));
    }
    cmds.push(cmd(&[b"XGROUP", b"CREATE", b"stream:events", b"workers", b"0"]));
    cmds.push(cmd(&[
        b"XREADGROUP",
        b"GROUP",
        b"workers",
        b"alice",
        b"COUNT",
        b"25",
        b"STREAMS",
        b"stream:events",
        b">",
    ]));
    cmds.push(cmd(&[b"HSET", b"ttl:hash", b"a", b"1"]));
    cmds.push(cmd(&[b"PEXPIRE", b"ttl:hash", HOUR_MS.to_string().as_bytes()]));
    c.load(cmds);

    c.select(1);
    c.load(
        (0..2000)
            .map(|i| cmd(&[b"SET", format!("db1:{i}").as_bytes(), &binary(i, 30)]))
            .collect(),
    );
    c.select(5);
    let mut cmds: Vec<_> = (0..100)
        .map(|i| {
            cmd(&[
                b"SET",
                format!("db5:{i}").as_bytes(),
                b"v",
                b"PX",
                (HOUR_MS * 2).to_string().as_bytes(),
            ])
        })
        .collect();
    cmds.push(cmd(&[b"RPUSH", b"db5:list", b"x", b"y"]));
    c.load(cmds);
    c.select(0);
}

/// A key as compared: its DUMP payload, PTTL, and for hashes and sets their sorted contents.
/// (A hashtable-encoded hash or set dumps in the dict's iteration order, which depends on the
/// insertion history, so the restored key's payload may list the same members in another order.)
#[derive(Debug)]
struct Entry {
    payload: Vec<u8>,
    ttl: i64,
    members: Option<Vec<Vec<u8>>>,
}

/// Per database: every key.
type Fingerprint = BTreeMap<u32, BTreeMap<Vec<u8>, Entry>>;

fn fingerprint(c: &mut Client) -> Fingerprint {
    let mut out = Fingerprint::new();
    for db in [0u32, 1, 2, 5] {
        c.select(db);
        let mut keys = Vec::new();
        let mut cursor = b"0".to_vec();
        loop {
            let V::Array(mut parts) = c.cmd(&[b"SCAN", &cursor, b"COUNT", b"1000"]) else {
                panic!("SCAN");
            };
            let V::Array(batch) = parts.pop().unwrap() else {
                panic!("SCAN keys");
            };
            keys.extend(batch.into_iter().map(V::bytes));
            cursor = parts.pop().unwrap().bytes();
            if cursor == b"0" {
                break;
            }
        }
        keys.sort();
        keys.dedup();
        let mut entries = BTreeMap::new();
        for chunk in keys.chunks(1000) {
            let cmds: Vec<_> = chunk
                .iter()
                .flat_map(|k| [cmd(&[b"DUMP", k]), cmd(&[b"PTTL", k]), cmd(&[b"TYPE", k])])
                .collect();
            let replies = c.pipeline(&cmds);
            for (k, r) in chunk.iter().zip(replies.chunks(3)) {
                let members = match &r[2] {
                    V::Simple(t) if t == "hash" => Some(members(c, b"HGETALL", k)),
                    V::Simple(t) if t == "set" => Some(members(c, b"SMEMBERS", k)),
                    _ => None,
                };
                let entry = Entry {
                    payload: r[0].clone().bytes(),
                    ttl: r[1].int(),
                    members,
                };
                entries.insert(k.clone(), entry);
            }
        }
        if !entries.is_empty() {
            out.insert(db, entries);
        }
    }
    c.select(0);
    out
}

/// The sorted elements of `command key` (field/value pairs kept together for HGETALL).
fn members(c: &mut Client, command: &[u8], key: &[u8]) -> Vec<Vec<u8>> {
    let V::Array(items) = c.cmd(&[command, key]) else {
        panic!("{}", String::from_utf8_lossy(command));
    };
    let items: Vec<Vec<u8>> = items.into_iter().map(V::bytes).collect();
    let mut out: Vec<Vec<u8>> = if command == b"HGETALL" {
        items
            .chunks(2)
            .map(|p| [p[0].as_slice(), b"\0=", p[1].as_slice()].concat())
            .collect()
    } else {
        items
    };
    out.sort();
    out
}

fn assert_same(before: &Fingerprint, after: &Fingerprint) {
    let counts = |f: &Fingerprint| f.iter().map(|(db, k)| (*db, k.len())).collect::<Vec<_>>();
    assert_eq!(counts(before), counts(after), "key counts per database differ");
    let mut by_members = 0;
    for (db, keys) in before {
        for (key, b) in keys {
            let a = &after[db][key];
            let name = key.escape_ascii();
            let (t, ttl) = (&a.ttl, &b.ttl);
            by_members += usize::from(a.payload != b.payload);
            assert!(
                a.payload == b.payload || (b.members.is_some() && a.members == b.members),
                "db {db} key {name}: DUMP payload differs"
            );
            if *ttl < 0 {
                assert_eq!(t, ttl, "db {db} key {name}: TTL");
            } else {
                assert!(
                    *t <= *ttl && ttl - t < TTL_TOLERANCE_MS,
                    "db {db} key {name}: TTL {t} ms after, {ttl} ms before"
                );
            }
        }
    }
    eprintln!(
        "{} keys equal: {by_members} hashes/sets by their members (another dict order), the rest by DUMP payload",
        total_keys(before)
    );
}

fn total_keys(f: &Fingerprint) -> usize {
    f.values().map(BTreeMap::len).sum()
}

fn world(port: u16, credentials: Value) -> World {
    World::new(Target {
        catalog: CATALOG,
        addon: "redis-addon",
        app_type: "kubedb.com/redis",
        scheme: "redis",
        port,
        credentials,
    })
}

/// An ACL user for kstash; the default user stays password-less for the test's own checks.
fn add_acl_user(c: &mut Client) {
    let pass = format!(">{USER_PASSWORD}");
    c.ok(&[
        b"ACL",
        b"SETUSER",
        USER.as_bytes(),
        b"on",
        pass.as_bytes(),
        b"~*",
        b"&*",
        b"+@all",
    ]);
}

#[test]
fn dump_restore_round_trip_of_every_type_in_several_databases() {
    let redis = Redis::start().unwrap();
    let mut c = Client::connect(redis.port, None);
    create_varied_data(&mut c);
    add_acl_user(&mut c);
    // A key that has expired is not part of the backup.
    c.ok(&[b"SET", b"expired", b"x", b"PX", b"1"]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let before = fingerprint(&mut c);
    assert!(total_keys(&before) > 12_000, "{}", total_keys(&before));

    let world = world(redis.port, json!({"username": USER, "password": USER_PASSWORD}));
    world.create_backup_configuration(json!({"batchSize": "500"}));
    let snapshot = world.trigger_backup_session("redis-backup-1");
    let started = Instant::now();
    run_backup(world.client(), NS, "redis-backup-1", &world.opts()).unwrap();
    eprintln!("backup took {:?}", started.elapsed());
    let snap = world.snapshot(&snapshot);
    let dump = &snap.status.as_ref().unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Succeeded), "{dump:?}");
    let summary = dump.restic_stats[0].summary.as_ref().unwrap();
    assert_eq!(summary.host_path, "dumpfile.resp");

    // The stream is a RESP command stream: SELECT and RESTORE, which redis-cli --pipe replays
    // into another server with the same result.
    let stream = world
        .restic()
        .output(&["dump", "latest", "/dumpfile.resp"])
        .unwrap()
        .stdout;
    assert!(stream.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*4\r\n$7\r\nRESTORE\r\n"));
    assert!(!stream.windows(7).any(|w| w == b"expired"));
    let other = Redis::start().unwrap();
    let mut pipe = Command::new("redis-cli")
        .args(["-p", &other.port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    pipe.stdin.take().unwrap().write_all(&stream).unwrap();
    let out = pipe.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("errors: 0"), "{text}");
    assert_same(&before, &fingerprint(&mut Client::connect(other.port, None)));
    drop(other);

    c.ok(&[b"FLUSHALL"]);
    world.create_restore_session("redis-restore-1", json!({}));
    let started = Instant::now();
    run_restore(world.client(), NS, "redis-restore-1", &snapshot, &world.opts()).unwrap();
    eprintln!("restore took {:?}", started.elapsed());
    assert_eq!(
        world.restore_phase("redis-restore-1"),
        Some(RestorePhase::Succeeded)
    );
    assert_same(&before, &fingerprint(&mut c));

    // Into a non-empty target: the first existing key stops the restore, naming it and `replace`.
    world.create_restore_session("redis-restore-2", json!({}));
    let e = run_restore(world.client(), NS, "redis-restore-2", &snapshot, &world.opts())
        .unwrap_err()
        .to_string();
    eprintln!("{e}");
    assert!(
        e.contains("redis-restore")
            && e.contains("already exists")
            && e.contains("BUSYKEY")
            && e.contains("replace")
            && e.contains("(db 0)"),
        "{e}"
    );
    assert_eq!(world.restore_phase("redis-restore-2"), Some(RestorePhase::Failed));

    // With replace, existing keys are overwritten and keys that are not in the backup are kept.
    c.ok(&[b"SET", b"str:1", b"changed"]);
    c.ok(&[b"DEL", b"hash:big"]);
    c.ok(&[b"SET", b"local-only", b"kept"]);
    world.create_restore_session("redis-restore-3", json!({"replace": "true"}));
    run_restore(world.client(), NS, "redis-restore-3", &snapshot, &world.opts()).unwrap();
    assert_eq!(c.cmd(&[b"GET", b"local-only"]), V::Bulk(Some(b"kept".to_vec())));
    c.ok(&[b"DEL", b"local-only"]);
    assert_same(&before, &fingerprint(&mut c));
}

#[test]
fn one_database_by_args_and_password_only_auth() {
    let redis = Redis::start().unwrap();
    let mut c = Client::connect(redis.port, None);
    create_varied_data(&mut c);
    let before = fingerprint(&mut c);
    c.ok(&[b"CONFIG", b"SET", b"requirepass", b"only-a-password"]);
    let mut c = Client::connect(redis.port, Some(("", "only-a-password")));

    let world = world(redis.port, json!({"password": "only-a-password"}));
    world.create_backup_configuration(json!({"args": "-db 1"}));
    let snapshot = world.trigger_backup_session("redis-backup-1");
    run_backup(world.client(), NS, "redis-backup-1", &world.opts()).unwrap();
    let stream = world
        .restic()
        .output(&["dump", "latest", "/dumpfile.resp"])
        .unwrap()
        .stdout;
    assert!(stream.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n"));
    assert!(!stream.windows(4).any(|w| w == b"str:" || w == b"db5:"));

    c.select(1);
    c.ok(&[b"FLUSHDB"]);
    world.create_restore_session("redis-restore-1", json!({}));
    run_restore(world.client(), NS, "redis-restore-1", &snapshot, &world.opts()).unwrap();
    assert_same(&before, &fingerprint(&mut c));

    // The same server through an AppBinding without credentials: NOAUTH, explained.
    let anonymous = world_without_secret(redis.port);
    anonymous.create_backup_configuration(json!({}));
    let snapshot = anonymous.trigger_backup_session("redis-backup-1");
    let e = run_backup(anonymous.client(), NS, "redis-backup-1", &anonymous.opts())
        .unwrap_err()
        .to_string();
    eprintln!("{e}");
    assert!(
        e.contains("NOAUTH") && e.contains("spec.secret") && e.contains("without credentials"),
        "{e}"
    );
    assert_eq!(
        anonymous.dump_component(&snapshot).0,
        Some(ComponentPhase::Failed)
    );
}

fn world_without_secret(port: u16) -> World {
    world(port, Value::Null)
}

#[test]
fn an_empty_server_without_credentials_backs_up_and_restores() {
    let redis = Redis::start().unwrap();
    let world = world_without_secret(redis.port);
    world.create_backup_configuration(json!({}));
    let snapshot = world.trigger_backup_session("redis-backup-1");
    run_backup(world.client(), NS, "redis-backup-1", &world.opts()).unwrap();
    let stream = world
        .restic()
        .output(&["dump", "latest", "/dumpfile.resp"])
        .unwrap()
        .stdout;
    assert_eq!(stream, b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n");
    world.create_restore_session("redis-restore-1", json!({}));
    run_restore(world.client(), NS, "redis-restore-1", &snapshot, &world.opts()).unwrap();
    assert_eq!(Client::connect(redis.port, None).cmd(&[b"DBSIZE"]), V::Int(0));
}

#[test]
fn wrong_password_fails_the_component_naming_the_secret() {
    let redis = Redis::start().unwrap();
    add_acl_user(&mut Client::connect(redis.port, None));
    let world = world(
        redis.port,
        json!({"username": USER, "password": "not-the-password"}),
    );
    world.create_backup_configuration(json!({}));
    let snapshot = world.trigger_backup_session("redis-backup-1");
    let e = run_backup(world.client(), NS, "redis-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    eprintln!("{e}");
    assert!(
        e.contains("redis-dump")
            && e.contains(&format!("user {USER} from Secret {NS}/{AUTH_SECRET}"))
            && e.contains("WRONGPASS"),
        "{e}"
    );
    assert!(!e.contains("not-the-password"), "{e}");
    let (phase, error) = world.dump_component(&snapshot);
    assert_eq!(phase, Some(ComponentPhase::Failed));
    assert!(error.contains("WRONGPASS"), "{error}");
    assert_eq!(world.restic_snapshot_count(), 0);
}

#[test]
fn server_down_fails_after_the_wait_timeout_without_a_snapshot() {
    let port = kstash_testsupport::ports::free_port().unwrap();
    let world = world(port, json!({"password": "whatever"}));
    world.create_backup_configuration(json!({"waitTimeout": "2"}));
    let snapshot = world.trigger_backup_session("redis-backup-1");
    let e = run_backup(world.client(), NS, "redis-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    eprintln!("{e}");
    assert!(
        e.contains("Redis")
            && e.contains("is not ready after")
            && e.contains(&format!("127.0.0.1:{port}"))
            && e.contains("AppBinding demo/db"),
        "{e}"
    );
    assert_eq!(world.dump_component(&snapshot).0, Some(ComponentPhase::Failed));
    assert_eq!(world.restic_snapshot_count(), 0);
}

/// `n` string keys of about 200 bytes each in database 0: a dump of about 5 MiB.
fn create_many_keys(c: &mut Client, n: usize) {
    c.select(0);
    c.load(
        (0..n)
            .map(|i| cmd(&[b"SET", format!("cut:{i:05}").as_bytes(), &binary(i, 200)]))
            .collect(),
    );
}

#[test]
fn a_connection_cut_halfway_fails_the_backup_and_the_restore_without_a_snapshot() {
    const KEYS: usize = 20_000;
    let redis = Redis::start().unwrap();
    let mut c = Client::connect(redis.port, None);
    create_many_keys(&mut c, KEYS);
    // The dump's DUMP/PTTL replies break after 1 MiB (about a fifth of them).
    let proxy = TcpCutProxy::start(("127.0.0.1", redis.port), CutPlan::from_upstream_after(1 << 20)).unwrap();
    let world = world_without_secret(proxy.port());
    world.create_backup_configuration(json!({}));
    let snapshot = world.trigger_backup_session("redis-backup-1");
    let e = run_backup(world.client(), NS, "redis-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    eprintln!("{e}");
    assert_eq!(proxy.cuts(), 1);
    // The cut connection's MiB, and the readiness probe's +PONG.
    assert_eq!(proxy.bytes_from_upstream(), (1 << 20) + 7, "{e}");
    let appbinding = format!("AppBinding {NS}/{}", common::APPBINDING);
    assert!(
        e.contains("redis-dump")
            && e.contains(&appbinding)
            && e.contains(&format!("127.0.0.1:{}", proxy.port()))
            && e.contains("the connection broke"),
        "{e}"
    );
    let (phase, error) = world.dump_component(&snapshot);
    assert_eq!(phase, Some(ComponentPhase::Failed));
    assert!(
        error.contains("redis-dump") && error.contains("the connection broke"),
        "{error}"
    );
    assert_eq!(world.restic_snapshot_count(), 0);

    // Unbroken, the same target backs up; then the restore's commands break after 1 MiB.
    proxy.set_plan(CutPlan::none());
    let snapshot = world.trigger_backup_session("redis-backup-2");
    run_backup(world.client(), NS, "redis-backup-2", &world.opts()).unwrap();
    assert_eq!(world.restic_snapshot_count(), 1);
    c.ok(&[b"FLUSHALL"]);
    proxy.set_plan(CutPlan::to_upstream_after(1 << 20).reset());
    world.create_restore_session("redis-restore-1", json!({}));
    let e = run_restore(world.client(), NS, "redis-restore-1", &snapshot, &world.opts())
        .unwrap_err()
        .to_string();
    eprintln!("{e}");
    assert_eq!(proxy.cuts(), 2);
    assert!(
        e.contains("redis-restore") && e.contains(&appbinding) && e.contains("the connection broke"),
        "{e}"
    );
    assert_eq!(world.restore_phase("redis-restore-1"), Some(RestorePhase::Failed));
    // Part of the keys made it: the restore stopped in the middle.
    let V::Int(restored) = c.cmd(&[b"DBSIZE"]) else {
        panic!("DBSIZE");
    };
    eprintln!("{restored} of {KEYS} keys restored before the cut");
    assert!(restored < KEYS as i64, "{restored}");
}
