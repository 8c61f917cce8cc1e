//! The Redis driver (`redis-backup`, `redis-restore`; spec §3.5), native: no `redis-dump-go`
//! or `redis-cli` is needed.
//!
//! - Backup: for every logical database with keys (`INFO keyspace`), `SELECT n`, then `SCAN`
//!   the keys in batches of `batchSize` and pipeline `DUMP key` + `PTTL key` for each batch. The
//!   stream (`dumpfile.resp`, KubeStash's file name) is a RESP command stream, as
//!   `redis-cli --pipe` takes it: `SELECT n`, then `RESTORE key ttl payload` per key. The TTL
//!   is the remaining time at the dump (PTTL; 0 = none), so a restored key lives as long as it
//!   had left; a key that expired or was deleted between `SCAN` and `DUMP`/`PTTL` is left out.
//!   `SCAN` may return a key twice; each key is written once (a set of the keys seen per
//!   database). Like redis-dump-go, this is not a point-in-time snapshot of the whole server:
//!   every key is dumped atomically, but writes during the dump may or may not be seen.
//! - Restore: the stream is parsed and its commands are pipelined, `batchSize` at a time; every
//!   reply is read, and the first error fails the restore naming the command and key. `RESTORE`
//!   fails on a key that exists (`BUSYKEY`) unless `replace` is `true` (then `REPLACE` is added).
//!   Any RESP command stream is accepted, so dumps that hold other commands restore too.
//! - Credentials: `AUTH [username] password` from the AppBinding's Secret (`password`; `username`
//!   optional, Redis 6 ACL); without `spec.secret` no AUTH is sent.
//! - `args` (KubeStash passes them to redis-dump-go): `-db N` dumps one database and
//!   `-filter PATTERN` only matching keys (SCAN MATCH); nothing else is accepted.
//!
//! The RESP codec is our own (~150 lines over `TcpStream`) rather than the `redis` crate: the
//! restore forwards commands parsed from the backup stream and must match each reply to its
//! command to name the failing key, where the crate's pipelines report only the first error
//! without its position, and its parser is built for replies; owning the codec keeps binary
//! keys and payloads as bytes end to end and adds no dependency tree.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::appbinding::Connection;
use crate::error::{ExecError, Result};
use crate::native::{ThreadSink, ThreadSource};
use crate::stream::{Sink, Source, StreamDriver};
use crate::task::ResolvedTask;
use crate::tool::split_args;

/// The file name of the dump inside the restic snapshot (KubeStash's).
pub(crate) const DUMP_FILE: &str = "dumpfile.resp";
/// Secret keys holding the (optional) ACL user name.
pub(crate) const USER_KEYS: &[&str] = &["username"];
/// Secret keys holding the password.
pub(crate) const PASSWORD_KEYS: &[&str] = &["password"];
const DEFAULT_PORT: u16 = 6379;
const DEFAULT_BATCH: usize = 1000;
/// Socket read/write timeout: one pipelined batch must be answered within it.
const IO_TIMEOUT: Duration = Duration::from_secs(120);
/// Redis's own limit for a bulk string; larger lengths in a stream mean it is corrupt.
const MAX_BULK: usize = 512 << 20;

/// A Redis target and one of its tasks.
pub(crate) struct Redis {
    conn: Connection,
    task: ResolvedTask,
}

/// What a backup dumps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DumpScope {
    db: Option<u32>,
    pattern: Option<String>,
}

impl Redis {
    pub fn new(conn: Connection, task: ResolvedTask) -> Redis {
        Redis { conn, task }
    }

    fn port(&self) -> u16 {
        self.conn.port.unwrap_or(DEFAULT_PORT)
    }

    fn context(&self) -> String {
        let who = if self.conn.secret.is_empty() {
            "without credentials (the AppBinding names no Secret)".to_string()
        } else if self.conn.user.is_empty() {
            format!("password from Secret {}", self.conn.secret)
        } else {
            format!("user {} from Secret {}", self.conn.user, self.conn.secret)
        };
        format!(
            "against {} ({}:{}, {who})",
            self.conn.object,
            self.conn.host,
            self.port()
        )
    }

    fn invalid(&self, message: String) -> ExecError {
        ExecError::invalid(self.task.describe(), message)
    }

    /// `batchSize` (default 1000): keys per SCAN and pipeline on backup, commands per
    /// pipeline on restore.
    fn batch_size(&self) -> Result<usize> {
        match self.task.param("batchSize") {
            None => Ok(DEFAULT_BATCH),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    self.invalid(format!(
                        "parameter batchSize {v:?} is not a number from 1 to 100000"
                    ))
                }),
        }
    }

    /// `replace` (default false).
    fn replace(&self) -> Result<bool> {
        self.task.bool_param("replace", false)
    }

    /// The backup's `args`: `-db N`, `-filter PATTERN` (also `--db`, `-db=N`).
    fn dump_scope(&self) -> Result<DumpScope> {
        let args = split_args(self.task.param("args").unwrap_or_default())
            .map_err(|m| self.invalid(format!("parameter args: {m}")))?;
        parse_dump_args(&args).map_err(|m| self.invalid(format!("parameter args: {m}")))
    }

    fn tool_error(&self, tool: &str, message: impl std::fmt::Display) -> ExecError {
        ExecError::Tool {
            tool: tool.to_string(),
            message: format!("{tool} {}: {message}", self.context()),
        }
    }

    /// Wait until the server answers PING (`NOAUTH` counts as an answer; `LOADING` does not).
    fn wait_ready(&self) -> Result<()> {
        let timeout = self.task.wait_timeout()?;
        let started = Instant::now();
        let mut last;
        loop {
            match Conn::open(&self.conn.host, self.port()).and_then(|mut c| c.call(&[b"PING"])) {
                Ok(Reply::Error(e)) if e.starts_with("LOADING") => last = e,
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            if started.elapsed() >= timeout {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(ExecError::NotReady {
            target: format!("Redis {}", self.context()),
            waited: crate::duration::go_duration(started.elapsed()),
            detail: last,
        })
    }

    /// The number of keys of each logical database of `dbs` (`SELECT n`, `DBSIZE`), on one
    /// connection once the server answers; `Err(reason)` for a database the server refuses
    /// (an index out of range).
    pub(crate) fn db_sizes(&self, dbs: &[u32]) -> Result<Vec<std::result::Result<i64, String>>> {
        const TOOL: &str = "redis-verify";
        self.wait_ready()?;
        let mut conn = self.login(TOOL)?;
        let mut out = Vec::with_capacity(dbs.len());
        for db in dbs {
            let n = db.to_string();
            if let Reply::Error(e) = conn
                .call(&[b"SELECT", n.as_bytes()])
                .map_err(|e| self.tool_error(TOOL, format!("SELECT {n}: {e}")))?
            {
                out.push(Err(e));
                continue;
            }
            match conn
                .call(&[b"DBSIZE"])
                .map_err(|e| self.tool_error(TOOL, format!("DBSIZE of database {n}: {e}")))?
            {
                Reply::Integer(size) => out.push(Ok(size)),
                other => {
                    return Err(self.tool_error(
                        TOOL,
                        format!("DBSIZE of database {n} answered {}", other.describe()),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// A connection, authenticated when the AppBinding has credentials.
    fn login(&self, tool: &str) -> Result<Conn> {
        let mut conn = Conn::open(&self.conn.host, self.port())
            .map_err(|e| self.tool_error(tool, format!("cannot connect: {e}")))?;
        if !self.conn.password.is_empty() {
            let pass = self.conn.password.as_bytes();
            let reply = if self.conn.user.is_empty() {
                conn.call(&[b"AUTH", pass])
            } else {
                conn.call(&[b"AUTH", self.conn.user.as_bytes(), pass])
            }
            .map_err(|e| self.tool_error(tool, format!("AUTH failed: {e}")))?;
            match reply {
                Reply::Error(e) if e.contains("without any password configured") => {
                    tracing::warn!(context = %self.context(), "the server has no password; the Secret's password is not needed");
                }
                Reply::Error(e) => {
                    return Err(self.tool_error(
                        tool,
                        format!(
                            "AUTH failed: {}; check the credentials in the Secret",
                            e.trim_end_matches('.')
                        ),
                    ));
                }
                _ => {}
            }
        }
        match conn.call(&[b"PING"]) {
            Ok(Reply::Error(e)) if e.starts_with("NOAUTH") => Err(self.tool_error(
                tool,
                format!(
                    "{}: the server requires a password; name a Secret with key `password` in \
                     the AppBinding's spec.secret",
                    e.trim_end_matches('.')
                ),
            )),
            Ok(Reply::Error(e)) => Err(self.tool_error(tool, format!("PING failed: {e}"))),
            Ok(_) => Ok(conn),
            Err(e) => Err(self.tool_error(tool, format!("PING failed: {e}"))),
        }
    }
}

impl StreamDriver for Redis {
    fn file_name(&self) -> &str {
        DUMP_FILE
    }

    fn produce(&self) -> Result<Box<dyn Source>> {
        const TOOL: &str = "redis-dump";
        let scope = self.dump_scope()?;
        let batch = self.batch_size()?;
        self.wait_ready()?;
        let mut conn = self.login(TOOL)?;
        tracing::info!(host = %self.conn.host, port = self.port(), ?scope, batch, "starting the Redis dump");
        let source = ThreadSource::spawn(TOOL, &self.context(), move |w| {
            export(&mut conn, w, &scope, batch).map_err(|m| ExecError::Tool {
                tool: TOOL.into(),
                message: m,
            })
        })?;
        Ok(Box::new(source))
    }

    fn consume(&self) -> Result<Box<dyn Sink>> {
        const TOOL: &str = "redis-restore";
        let args = self.task.param("args").unwrap_or_default();
        if !args.is_empty() {
            return Err(self.invalid(format!(
                "parameter args {args:?} is not supported by kstash's Redis restore (it takes \
                 none; use replace and batchSize)"
            )));
        }
        let batch = self.batch_size()?;
        let replace = self.replace()?;
        self.wait_ready()?;
        let mut conn = self.login(TOOL)?;
        tracing::info!(host = %self.conn.host, port = self.port(), replace, batch, "starting the Redis restore");
        let sink = ThreadSink::spawn(TOOL, &self.context(), move |r| {
            import(&mut conn, r, replace, batch).map_err(|m| ExecError::Tool {
                tool: TOOL.into(),
                message: m,
            })
        })?;
        Ok(Box::new(sink))
    }
}

fn parse_dump_args(args: &[String]) -> std::result::Result<DumpScope, String> {
    let mut scope = DumpScope {
        db: None,
        pattern: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        let mut value = |what: &str| -> std::result::Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a {what}"))
        };
        match name.trim_start_matches('-') {
            "db" => {
                let v = value("database number")?;
                scope.db = Some(
                    v.parse()
                        .map_err(|_| format!("{name} {v:?} is not a database number"))?,
                );
            }
            "filter" => scope.pattern = Some(value("key pattern")?),
            _ => {
                return Err(format!(
                    "{a} is not supported by kstash's native Redis dump (supported: -db N, \
                     -filter PATTERN)"
                ));
            }
        }
    }
    Ok(scope)
}

/// Bytes as text for messages (binary keys escaped).
fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Write the whole server (or `scope`) to `w` as a RESP command stream.
fn export(
    conn: &mut Conn,
    w: &mut impl Write,
    scope: &DumpScope,
    batch: usize,
) -> std::result::Result<(), String> {
    let io = |what: &str, e: io::Error| format!("{what}: {e}");
    let info = match conn
        .call(&[b"INFO", b"keyspace"])
        .map_err(|e| io("INFO keyspace", e))?
    {
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
        other => return Err(format!("INFO keyspace answered {}", other.describe())),
    };
    let dbs: Vec<(u32, u64)> = keyspace(&info)
        .into_iter()
        .filter(|(db, _)| scope.db.is_none_or(|d| d == *db))
        .collect();
    let count = batch.to_string();
    let mut total = 0u64;
    let mut skipped = 0u64;
    for (db, expected) in &dbs {
        let n = db.to_string();
        expect_ok(conn.call(&[b"SELECT", n.as_bytes()]), &format!("SELECT {n}"))?;
        write_command(w, &[b"SELECT", n.as_bytes()]).map_err(|e| io("writing the stream", e))?;
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut cursor = b"0".to_vec();
        loop {
            let mut scan: Vec<&[u8]> = vec![b"SCAN", &cursor];
            if let Some(p) = &scope.pattern {
                scan.extend([b"MATCH".as_slice(), p.as_bytes()]);
            }
            scan.extend([b"COUNT".as_slice(), count.as_bytes()]);
            let (next, keys) = match conn.call(&scan).map_err(|e| io("SCAN", e))? {
                Reply::Array(Some(mut parts)) if parts.len() == 2 => {
                    let keys = parts.pop().and_then(Reply::into_bulks);
                    let next = parts.pop().and_then(Reply::into_bytes);
                    match (next, keys) {
                        (Some(n), Some(k)) => (n, k),
                        _ => return Err("SCAN answered an unexpected reply".into()),
                    }
                }
                other => return Err(format!("SCAN answered {}", other.describe())),
            };
            let fresh: Vec<Vec<u8>> = keys.into_iter().filter(|k| seen.insert(k.clone())).collect();
            let (written, gone) = dump_keys(conn, w, &fresh)?;
            total += written;
            skipped += gone;
            cursor = next;
            if cursor == b"0" {
                break;
            }
        }
        tracing::info!(db, keys = seen.len(), expected, "database dumped");
    }
    if dbs.is_empty() {
        // An empty server: the stream still says where it would restore.
        write_command(w, &[b"SELECT", b"0"]).map_err(|e| io("writing the stream", e))?;
    }
    tracing::info!(
        keys = total,
        expired_or_deleted = skipped,
        databases = dbs.len(),
        "Redis dump finished"
    );
    Ok(())
}

/// Pipeline `DUMP`/`PTTL` for `keys` and write a `RESTORE` for each key that still exists.
/// Returns (keys written, keys gone meanwhile).
fn dump_keys(
    conn: &mut Conn,
    w: &mut impl Write,
    keys: &[Vec<u8>],
) -> std::result::Result<(u64, u64), String> {
    if keys.is_empty() {
        return Ok((0, 0));
    }
    let io = |what: &str, e: io::Error| format!("{what}: {e}");
    for k in keys {
        conn.send(&[b"DUMP", k]).map_err(|e| io("DUMP", e))?;
        conn.send(&[b"PTTL", k]).map_err(|e| io("PTTL", e))?;
    }
    conn.flush().map_err(|e| io("DUMP", e))?;
    let (mut written, mut gone) = (0, 0);
    for k in keys {
        let dump = conn.reply().map_err(|e| io("DUMP", e))?;
        let ttl = conn.reply().map_err(|e| io("PTTL", e))?;
        let payload = match dump {
            Reply::Bulk(Some(p)) => p,
            Reply::Bulk(None) => {
                gone += 1;
                continue;
            }
            other => return Err(format!("DUMP {} answered {}", show(k), other.describe())),
        };
        let ttl = match ttl {
            Reply::Integer(-1) => 0,
            Reply::Integer(t) if t > 0 => t,
            // -2: the key expired (or was deleted) after its DUMP; 0: it expires now (and
            // RESTORE would read a TTL of 0 as none).
            Reply::Integer(_) => {
                gone += 1;
                continue;
            }
            other => return Err(format!("PTTL {} answered {}", show(k), other.describe())),
        };
        write_command(w, &[b"RESTORE", k, ttl.to_string().as_bytes(), &payload])
            .map_err(|e| io("writing the stream", e))?;
        written += 1;
    }
    Ok((written, gone))
}

/// `(db, keys)` of every `dbN:keys=…` line of `INFO keyspace`.
fn keyspace(info: &str) -> Vec<(u32, u64)> {
    info.lines()
        .filter_map(|l| {
            let (db, rest) = l.trim().strip_prefix("db")?.split_once(':')?;
            let keys = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("keys="))?
                .parse()
                .ok()?;
            Some((db.parse().ok()?, keys))
        })
        .collect()
}

/// What a pipelined command was, for messages.
struct Sent {
    db: String,
    name: String,
    key: Option<Vec<u8>>,
    restore: bool,
}

/// Replay the RESP command stream `r` on `conn`.
fn import(
    conn: &mut Conn,
    r: &mut impl Read,
    replace: bool,
    batch: usize,
) -> std::result::Result<(), String> {
    let mut r = BufReader::with_capacity(1 << 20, r);
    let mut db = "0".to_string();
    let mut pending: Vec<Sent> = Vec::with_capacity(batch);
    let mut commands = 0u64;
    let mut offset = 0u64;
    while let Some(mut cmd) = read_command(&mut r, &mut offset)
        .map_err(|e| format!("the backup stream is not a RESP command stream: {e}"))?
    {
        let name = String::from_utf8_lossy(&cmd[0]).to_ascii_uppercase();
        if name == "SELECT" {
            settle(conn, &mut pending, replace)?;
            db = cmd
                .get(1)
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .unwrap_or_default();
            let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            expect_ok(conn.call(&refs), &format!("SELECT {db}"))?;
            continue;
        }
        let restore = name == "RESTORE";
        if restore && replace && !cmd[1..].iter().any(|a| a.eq_ignore_ascii_case(b"REPLACE")) {
            cmd.push(b"REPLACE".to_vec());
        }
        let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
        conn.send(&refs).map_err(|e| format!("sending {name}: {e}"))?;
        pending.push(Sent {
            db: db.clone(),
            key: cmd.get(1).cloned(),
            name,
            restore,
        });
        commands += 1;
        if pending.len() >= batch {
            settle(conn, &mut pending, replace)?;
        }
    }
    settle(conn, &mut pending, replace)?;
    tracing::info!(commands, bytes = offset, "Redis restore finished");
    Ok(())
}

/// Send what is buffered and read a reply per pending command; the first error fails.
fn settle(conn: &mut Conn, pending: &mut Vec<Sent>, replace: bool) -> std::result::Result<(), String> {
    if pending.is_empty() {
        return Ok(());
    }
    conn.flush().map_err(|e| format!("sending commands: {e}"))?;
    for sent in pending.drain(..) {
        let key = sent.key.as_deref().map(show).unwrap_or_default();
        match conn.reply() {
            Err(e) => return Err(format!("reading the reply to {} {key}: {e}", sent.name)),
            Ok(Reply::Error(e)) if sent.restore && e.starts_with("BUSYKEY") && !replace => {
                return Err(format!(
                    "key {key} (db {}) already exists in the target ({e}); set the restore \
                     parameter replace to \"true\" to overwrite existing keys, or restore into an \
                     empty database",
                    sent.db
                ));
            }
            Ok(Reply::Error(e)) => {
                return Err(format!("{} {key} (db {}) failed: {e}", sent.name, sent.db));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

fn expect_ok(reply: io::Result<Reply>, what: &str) -> std::result::Result<(), String> {
    match reply {
        Ok(Reply::Simple(s)) if s == "OK" => Ok(()),
        Ok(other) => Err(format!("{what} answered {}", other.describe())),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Reply::Bulk(Some(b)) => Some(b),
            Reply::Simple(s) => Some(s.into_bytes()),
            _ => None,
        }
    }

    fn into_bulks(self) -> Option<Vec<Vec<u8>>> {
        match self {
            Reply::Array(Some(items)) => items.into_iter().map(Reply::into_bytes).collect(),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Reply::Simple(s) => format!("+{s}"),
            Reply::Error(e) => format!("error {e}"),
            Reply::Integer(i) => format!("integer {i}"),
            Reply::Bulk(None) => "nil".into(),
            Reply::Bulk(Some(b)) => format!("a {}-byte string", b.len()),
            Reply::Array(None) => "a nil array".into(),
            Reply::Array(Some(a)) => format!("an array of {}", a.len()),
        }
    }
}

/// A connection to a Redis server.
struct Conn {
    w: BufWriter<TcpStream>,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(host: &str, port: u16) -> io::Result<Conn> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"));
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(IO_TIMEOUT))?;
                    s.set_write_timeout(Some(IO_TIMEOUT))?;
                    return Ok(Conn {
                        w: BufWriter::with_capacity(1 << 16, s.try_clone()?),
                        r: BufReader::with_capacity(1 << 16, s),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        write_command(&mut self.w, args).map_err(broken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush().map_err(broken)
    }

    fn reply(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.r).map_err(broken)
    }

    fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.send(args)?;
        self.flush()?;
        self.reply()
    }
}

/// A socket error said plainly: the connection ended (closed or reset by the server or the
/// network, maybe halfway through a reply) or the server did not answer in time.
fn broken(e: io::Error) -> io::Error {
    use io::ErrorKind as K;
    let message = match e.kind() {
        K::UnexpectedEof => "the connection broke: it was closed before the whole reply arrived".to_string(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::NotConnected => {
            format!("the connection broke: {e}")
        }
        K::TimedOut | K::WouldBlock => {
            format!("the server did not answer within {}s ({e})", IO_TIMEOUT.as_secs())
        }
        _ => return e,
    };
    io::Error::new(e.kind(), message)
}

/// Write one command as a RESP array of bulk strings.
fn write_command(w: &mut impl Write, args: &[&[u8]]) -> io::Result<()> {
    let mut head = Vec::with_capacity(16);
    write!(head, "*{}\r\n", args.len())?;
    w.write_all(&head)?;
    for a in args {
        head.clear();
        write!(head, "${}\r\n", a.len())?;
        w.write_all(&head)?;
        w.write_all(a)?;
        w.write_all(b"\r\n")?;
    }
    Ok(())
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// One `\r\n`-terminated line, without the terminator; `None` at a clean end of input.
fn read_line(r: &mut impl BufRead, offset: &mut u64) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    *offset += n as u64;
    if !line.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the input ends in the middle of a line at byte {offset}"),
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad(format!(
            "truncated line {:?} ending at byte {offset}",
            show(&line)
        )));
    }
    line.truncate(line.len() - 2);
    Ok(Some(line))
}

fn number(line: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad number {:?}", show(line))))
}

/// A bulk string's body of `len` bytes and its `\r\n`.
fn read_bulk(r: &mut impl BufRead, len: i64, offset: &mut u64) -> io::Result<Option<Vec<u8>>> {
    let Ok(len) = usize::try_from(len) else {
        return Ok(None);
    };
    if len > MAX_BULK {
        return Err(bad(format!(
            "a bulk string of {len} bytes is over Redis's 512 MiB"
        )));
    }
    let mut buf = vec![0; len + 2];
    r.read_exact(&mut buf)?;
    *offset += buf.len() as u64;
    if !buf.ends_with(b"\r\n") {
        return Err(bad(format!(
            "a bulk string ending at byte {offset} lacks its \\r\\n"
        )));
    }
    buf.truncate(len);
    Ok(Some(buf))
}

fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let mut offset = 0;
    read_reply_at(r, &mut offset)
}

fn read_reply_at(r: &mut impl BufRead, offset: &mut u64) -> io::Result<Reply> {
    let line = read_line(r, offset)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"))?;
    let (kind, rest) = line
        .split_first()
        .ok_or_else(|| bad("an empty reply line".into()))?;
    Ok(match kind {
        b'+' => Reply::Simple(String::from_utf8_lossy(rest).into_owned()),
        b'-' => Reply::Error(String::from_utf8_lossy(rest).into_owned()),
        b':' => Reply::Integer(number(rest)?),
        b'$' => Reply::Bulk(read_bulk(r, number(rest)?, offset)?),
        b'*' => match usize::try_from(number(rest)?) {
            Err(_) => Reply::Array(None),
            Ok(n) => Reply::Array(Some(
                (0..n)
                    .map(|_| read_reply_at(r, offset))
                    .collect::<io::Result<_>>()?,
            )),
        },
        _ => return Err(bad(format!("unknown reply {:?}", show(&line)))),
    })
}

/// One command (a non-empty array of bulk strings) of a RESP command stream; `None` at its
/// clean end. `offset` counts the bytes read, for messages.
fn read_command(r: &mut impl BufRead, offset: &mut u64) -> io::Result<Option<Vec<Vec<u8>>>> {
    let at = *offset;
    let Some(line) = read_line(r, offset)? else {
        return Ok(None);
    };
    let n = match line.split_first() {
        Some((b'*', rest)) => number(rest)?,
        _ => {
            return Err(bad(format!(
                "expected a command (*N) at byte {at}, found {:?}",
                show(&line[..line.len().min(40)])
            )));
        }
    };
    if n < 1 {
        return Err(bad(format!("an empty command at byte {at}")));
    }
    let mut args = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let head = read_line(r, offset)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the command at byte {at} is cut off"),
            )
        })?;
        match head.split_first() {
            Some((b'$', len)) => {
                let body = read_bulk(r, number(len)?, offset)?
                    .ok_or_else(|| bad(format!("a nil argument in the command at byte {at}")))?;
                args.push(body);
            }
            _ => {
                return Err(bad(format!(
                    "expected a bulk string ($N) in the command at byte {at}"
                )));
            }
        }
    }
    Ok(Some(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_with_binary_arguments() {
        let payload: Vec<u8> = (0..=255u8).chain(*b"\r\n*3\r\n$").collect();
        let mut buf = Vec::new();
        write_command(&mut buf, &[b"SELECT", b"3"]).unwrap();
        write_command(&mut buf, &[b"RESTORE", b"k\r\ney", b"0", &payload]).unwrap();
        let mut r = &buf[..];
        let mut offset = 0;
        assert_eq!(
            read_command(&mut r, &mut offset).unwrap().unwrap(),
            [b"SELECT".to_vec(), b"3".to_vec()]
        );
        let cmd = read_command(&mut r, &mut offset).unwrap().unwrap();
        assert_eq!(cmd[1], b"k\r\ney");
        assert_eq!(cmd[3], payload);
        assert!(read_command(&mut r, &mut offset).unwrap().is_none());
        assert_eq!(offset, buf.len() as u64);
    }

    #[test]
    fn broken_streams_are_refused_with_their_offset() {
        let e = read_command(&mut &b"SET x\r\n"[..], &mut 14).unwrap_err();
        assert!(e.to_string().contains("at byte 14"), "{e}");
        let e = read_command(&mut &b"*2\r\n$3\r\nGET\r\n"[..], &mut 0).unwrap_err();
        assert!(e.to_string().contains("cut off"), "{e}");
        let e = read_command(&mut &b"*1\r\n$10\r\nPING\r\n"[..], &mut 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn replies_are_parsed() {
        let mut r = &b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$-1\r\n:-2\r\n-BUSYKEY x\r\n+OK\r\n"[..];
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"0".to_vec())),
                Reply::Array(Some(vec![Reply::Bulk(Some(b"a".to_vec())), Reply::Bulk(None)])),
            ]))
        );
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Integer(-2));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Error("BUSYKEY x".into()));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Simple("OK".into()));
    }

    #[test]
    fn keyspace_lines_are_read() {
        let info = "# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=100\r\ndb3:keys=1,expires=0,avg_ttl=0\r\n";
        assert_eq!(keyspace(info), [(0, 10), (3, 1)]);
        assert_eq!(keyspace("# Keyspace\r\n"), []);
    }

    #[test]
    fn dump_args_follow_redis_dump_go() {
        let s = |a: &[&str]| parse_dump_args(&a.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(
            s(&["-db", "2", "-filter", "user:*"]).unwrap(),
            DumpScope {
                db: Some(2),
                pattern: Some("user:*".into())
            }
        );
        assert_eq!(s(&["--db=1"]).unwrap().db, Some(1));
        assert!(s(&["-db", "x"]).unwrap_err().contains("not a database number"));
        assert!(s(&["-n", "4"]).unwrap_err().contains("-n is not supported"));
        assert!(s(&["-db"]).unwrap_err().contains("needs a database number"));
    }
}
