//! The ZooKeeper driver (`zookeeper-backup`, `zookeeper-restore`; spec §3.4), native: kstash
//! speaks the ZooKeeper protocol itself (the `zookeeper-client` crate on a private tokio
//! runtime) and streams the tree as one file, `zookeeper.ndjson`, instead of KubeStash's
//! zk-dump-go zip in an interim directory.
//!
//! # Backup
//! The tree is walked breadth-first from the `root` parameter (default `/`; the `/zookeeper`
//! system subtree is always left out), with up to [`IN_FLIGHT`] nodes read at once (getData,
//! getACL and getChildren pipelined on one session). Ephemeral nodes belong to a client session
//! and are skipped (`stat.ephemeralOwner != 0`). Container and TTL nodes cannot be told from
//! persistent ones by a client (ZooKeeper ≥ 3.5 reports `ephemeralOwner` 0 for them), so they
//! are backed up, and restored, as persistent nodes; the stream can carry `container` and `ttl`
//! modes, and the restore creates them, for dumps that say so. The walk is not a point-in-time
//! snapshot (ZooKeeper has none): a node deleted while the walk runs is left out.
//!
//! A node kstash may not read fails the backup with its path (there is no skip: a backup that
//! silently misses nodes would restore a different tree); back up a readable subtree with
//! `root` instead. ZooKeeper shows digest ids as `user:x` to a client without admin (`a`) on
//! the node: kstash fills its own entry back in with its digest id, and fails on anyone else's,
//! whose hash it cannot know (grant kstash admin on the node).
//!
//! # Stream format (`zookeeper.ndjson`)
//! One JSON object per line, each with a `kind`:
//! - first `{"kind":"header","format":"kstash-zookeeper-dump","version":1,"root":"/"}`;
//! - then one `{"kind":"node","path":"/a/b","data":"<base64>","acl":[{"perms":"cdrwa",
//!   "scheme":"digest","id":"user:hash"}],"mode":"persistent","children":2}` per node, parents
//!   before their children (`mode` is `persistent`, `container` or `ttl` with `"ttl":<ms>`;
//!   `children` is the number of children the node had when read, a hint for the restore);
//! - last `{"kind":"end","nodes":N,"ephemeralSkipped":M}`; a stream without it is truncated
//!   and its restore fails.
//!
//! Sequential nodes are ordinary persistent nodes with a numbered name; they are restored under
//! their exact name (not re-sequenced). Versions, zxids and times are not restored, so the
//! parent's sequence counter restarts: a new sequential child may be given a number that a
//! restored child already has.
//!
//! # Restore
//! Records are replayed in order, [`IN_FLIGHT`] creates pipelined at a time. A missing node is
//! created with its data, mode and ACL. An existing node is kept (`existingNode: keep`, the
//! default, as KubeStash's restore skips existing znodes) or gets the backed-up data and ACL
//! (`existingNode: overwrite`: data first, then ACL; a node kstash may not write is first given
//! a widened ACL, which needs admin on it). The root `/` always exists and is kept or
//! overwritten likewise. The restore never deletes nodes the dump does not have.
//! A node whose ACL would not let kstash create its children (say world read-only) is created
//! with an extra entry granting kstash's own identity (its digest id, or `world:anyone` without
//! a Secret) all rights, and set to its exact ACL once the whole stream is in. Missing ancestors
//! of the dump's root are created empty with `world:anyone:cdrwa`, like `zkCli create` would.
//!
//! # Authentication
//! With `spec.secret` on the AppBinding, the session adds the `digest` identity
//! `username:password` (Secret keys `username`/`password`, both required); without it the
//! session is anonymous. ZooKeeper accepts any digest password when it is added and checks it only
//! against each node's ACL, so a wrong password shows up as a node kstash may not read; that
//! fails the backup with the node's path and the Secret. SASL is not supported.
//!
//! # Parameters
//! KubeStash's `args` (options of zk-dump-go) has no meaning here and is ignored with a
//! warning; `interimDataDir`, `enableCache` and `scratchDir` are accepted and unused (nothing is
//! staged on disk). `waitTimeout` (seconds, default 300) bounds the wait for a session. kstash
//! extensions: `root` (backup) and `existingNode` (restore).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesOrdered;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use zookeeper_client as zk;

use crate::appbinding::Connection;
use crate::error::{ExecError, Result};
use crate::native::{ChannelReader, ChannelWriter, ThreadSink, ThreadSource};
use crate::stream::{Sink, Source, StreamDriver};
use crate::task::ResolvedTask;

/// The file name of the dump inside the restic snapshot.
pub(crate) const DUMP_FILE: &str = "zookeeper.ndjson";
/// Secret keys holding the digest user name.
pub(crate) const USER_KEYS: &[&str] = &["username"];
/// Secret keys holding the digest password.
pub(crate) const PASSWORD_KEYS: &[&str] = &["password"];
/// The `format` of the header line.
const FORMAT: &str = "kstash-zookeeper-dump";
const VERSION: u32 = 1;
const DEFAULT_PORT: u16 = 2181;
/// Nodes read, or created, at once on the session.
pub(crate) const IN_FLIGHT: usize = 32;
/// The subtree ZooKeeper keeps for itself (quotas, the ensemble config).
const SYSTEM: &str = "/zookeeper";
/// One connection attempt is given up after this long.
const ATTEMPT: Duration = Duration::from_secs(10);
/// The session timeout asked for (the server clamps it to 2–20 ticks).
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
const TOOL: &str = "zookeeper";

/// What a restore does with a node that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExistingNode {
    Keep,
    Overwrite,
}

/// One line of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Line {
    Header {
        format: String,
        version: u32,
        root: String,
    },
    Node(Node),
    #[serde(rename_all = "camelCase")]
    End {
        nodes: u64,
        ephemeral_skipped: u64,
    },
}

/// A znode as streamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Node {
    path: String,
    /// The data, base64 (standard alphabet, padded).
    data: String,
    acl: Vec<AclEntry>,
    mode: Mode,
    /// Milliseconds, for `mode: ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
    /// Children when the node was read (ephemeral ones included).
    #[serde(default)]
    children: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct AclEntry {
    /// Letters of `cdrwa`, as zkCli prints them.
    perms: String,
    scheme: String,
    id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Persistent,
    Container,
    Ttl,
}

/// How a node was created, from its stat's `ephemeralOwner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Persistent,
    Container,
    Ttl(u64),
    Ephemeral,
}

/// ZooKeeper encodes container and TTL nodes in `ephemeralOwner`: `i64::MIN` for a container,
/// `0xff` in the top byte, extended type 0 in the next two and the TTL (ms) in the low five for
/// a TTL node; any other non-zero value is the owning session of an ephemeral node. (Servers
/// hide the first two from clients, answering 0; they are decoded should one not.)
fn kind_of(ephemeral_owner: i64) -> Kind {
    let owner = ephemeral_owner as u64;
    if owner == 0 {
        Kind::Persistent
    } else if ephemeral_owner == i64::MIN {
        Kind::Container
    } else if owner >> 56 == 0xff && (owner >> 40) & 0xffff == 0 {
        Kind::Ttl(owner & 0xff_ffff_ffff)
    } else {
        Kind::Ephemeral
    }
}

const PERMS: [(char, zk::Permission); 5] = [
    ('c', zk::Permission::CREATE),
    ('d', zk::Permission::DELETE),
    ('r', zk::Permission::READ),
    ('w', zk::Permission::WRITE),
    ('a', zk::Permission::ADMIN),
];

fn perms_text(p: zk::Permission) -> String {
    PERMS
        .iter()
        .filter(|(_, bit)| p.has(*bit))
        .map(|(c, _)| *c)
        .collect()
}

fn perms_of(text: &str) -> std::result::Result<zk::Permission, String> {
    text.chars().try_fold(zk::Permission::NONE, |acc, c| {
        PERMS
            .iter()
            .find(|(l, _)| *l == c)
            .map(|(_, bit)| acc | *bit)
            .ok_or_else(|| format!("unknown permission {c:?} in {text:?} (use letters of cdrwa)"))
    })
}

impl AclEntry {
    fn from_acl(a: &zk::Acl) -> AclEntry {
        AclEntry {
            perms: perms_text(a.permission()),
            scheme: a.scheme().to_string(),
            id: a.id().to_string(),
        }
    }

    fn to_acl(&self) -> std::result::Result<zk::Acl, String> {
        Ok(zk::Acl::new(
            perms_of(&self.perms)?,
            zk::AuthId::new(&self.scheme, &self.id),
        ))
    }

    fn grants(&self, me: Option<&str>, perm: char) -> bool {
        self.perms.contains(perm)
            && match self.scheme.as_str() {
                "world" => self.id == "anyone",
                "digest" => me == Some(self.id.as_str()),
                _ => false,
            }
    }
}

/// The digest id ZooKeeper gives `user:password`: `user:base64(sha1(user:password))`.
fn digest_id(user: &str, password: &str) -> String {
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    format!("{user}:{}", BASE64.encode(hash))
}

/// A `root` parameter: absolute, no empty or relative segments, not under `/zookeeper`.
fn check_root(root: &str) -> std::result::Result<String, String> {
    let root = if root.len() > 1 {
        root.trim_end_matches('/')
    } else {
        root
    };
    if !root.starts_with('/') {
        return Err(format!(
            "parameter root {root:?} must be an absolute znode path like /app"
        ));
    }
    if root != "/"
        && root[1..]
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "parameter root {root:?} has an empty or relative segment"
        ));
    }
    if root == SYSTEM || root.starts_with("/zookeeper/") {
        return Err(format!(
            "parameter root {root:?} is ZooKeeper's own subtree, which is never backed up"
        ));
    }
    Ok(root.to_string())
}

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// A request's error for messages: one that means the connection is gone (closed or reset by
/// the server or the network, the session lost) says so. The client reconnects by itself, but
/// a request in flight when the connection broke has failed, and a walk or a restore with a
/// hole is no good, so the task fails (nothing is retried node by node).
fn said(e: &zk::Error) -> String {
    match e {
        zk::Error::ConnectionLoss
        | zk::Error::SessionExpired
        | zk::Error::ClientClosed
        | zk::Error::Timeout
        | zk::Error::NoHosts
        | zk::Error::Custom(_) => format!("the connection broke: {e}"),
        _ => e.to_string(),
    }
}

fn tool_error(message: impl std::fmt::Display) -> ExecError {
    ExecError::Tool {
        tool: TOOL.into(),
        message: format!("{TOOL} {message}"),
    }
}

/// Everything the export or import thread needs, owned.
#[derive(Clone)]
struct Settings {
    /// `host:port`.
    endpoint: String,
    /// `against AppBinding ns/name (host:port, digest user u from Secret ns/s)`.
    context: String,
    /// `digest user u from Secret ns/s` or `an unauthenticated session`.
    who: String,
    /// The Secret, for messages (empty without one).
    secret: String,
    /// `(user, password)` of the digest identity.
    auth: Option<(String, String)>,
    wait: Duration,
    root: String,
    existing: ExistingNode,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("who", &self.who)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Settings {
    fn me(&self) -> Option<String> {
        self.auth.as_ref().map(|(u, p)| digest_id(u, p))
    }

    /// A fix that names the Secret, or the AppBinding when there is none.
    fn access_hint(&self, path: &str, need: &str) -> String {
        match &self.auth {
            Some((user, _)) => format!(
                "ZooKeeper takes any digest password at login and checks it against each node's \
                 ACL, so either the password in Secret {} is wrong or the ACL of {path} does not \
                 grant user {user} {need}; fix the password or the ACL",
                self.secret
            ),
            None => format!(
                "the AppBinding names no Secret, so kstash connects without credentials; add \
                 spec.secret with username and password of a digest user that the ACL of {path} \
                 grants {need}"
            ),
        }
    }
}

/// A ZooKeeper target and one of its tasks.
pub(crate) struct ZooKeeper {
    conn: Connection,
    task: ResolvedTask,
}

impl ZooKeeper {
    pub fn new(conn: Connection, task: ResolvedTask) -> ZooKeeper {
        ZooKeeper { conn, task }
    }

    fn settings(&self) -> Result<Settings> {
        let invalid = |m: String| ExecError::invalid(self.task.describe(), m);
        let wait = self.task.wait_timeout()?;
        let root = check_root(self.task.param("root").unwrap_or("/")).map_err(invalid)?;
        let existing = match self.task.param("existingNode").unwrap_or("keep") {
            "keep" => ExistingNode::Keep,
            "overwrite" => ExistingNode::Overwrite,
            other => {
                return Err(invalid(format!(
                    "parameter existingNode is {other:?}; use keep or overwrite"
                )));
            }
        };
        if let Some(args) = self.task.param("args") {
            tracing::warn!(
                args,
                "parameter args (options of KubeStash's zk-dump-go) is ignored: kstash reads ZooKeeper natively; use root"
            );
        }
        let port = self.conn.port.unwrap_or(DEFAULT_PORT);
        let host = if self.conn.host.contains(':') {
            format!("[{}]", self.conn.host)
        } else {
            self.conn.host.clone()
        };
        let endpoint = format!("{host}:{port}");
        // Digest auth needs both keys; a Secret with a password and no user name would
        // otherwise quietly become an unauthenticated session.
        if !self.conn.secret.is_empty() && self.conn.user.is_empty() {
            return Err(ExecError::SecretKeyMissing {
                secret: self.conn.secret.clone(),
                key: USER_KEYS.join(" or "),
                purpose: format!(
                    "the digest user of {} (ZooKeeper's digest authentication needs both \
                     username and password; remove spec.secret for an unauthenticated session)",
                    self.conn.object
                ),
            });
        }
        let (who, auth) = if self.conn.user.is_empty() {
            ("an unauthenticated session".to_string(), None)
        } else {
            (
                format!("digest user {} from Secret {}", self.conn.user, self.conn.secret),
                Some((self.conn.user.clone(), self.conn.password.clone())),
            )
        };
        Ok(Settings {
            context: format!("against {} ({endpoint}, {who})", self.conn.object),
            endpoint,
            who,
            secret: self.conn.secret.clone(),
            auth,
            wait,
            root,
            existing,
        })
    }
}

/// A runtime for one export or import: one worker runs the session (pings, replies) while the
/// calling thread blocks on the stream's channel inside `block_on`.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kstash-zookeeper-io")
        .enable_all()
        .build()
        .map_err(|e| tool_error(format!("cannot start its runtime: {e}")))
}

/// Open a session, retrying until `waitTimeout` passes.
async fn connect(s: &Settings) -> Result<zk::Client> {
    let started = Instant::now();
    let mut last;
    loop {
        let mut connector = zk::Client::connector()
            .with_session_timeout(SESSION_TIMEOUT)
            .with_connection_timeout(ATTEMPT)
            .with_fail_eagerly();
        if let Some((user, password)) = &s.auth {
            connector = connector.with_auth("digest", format!("{user}:{password}").as_bytes());
        }
        let left = s.wait.saturating_sub(started.elapsed());
        let attempt = tokio::time::timeout(
            ATTEMPT.min(left.max(Duration::from_secs(1))),
            connector.connect(&s.endpoint),
        )
        .await;
        last = match attempt {
            Ok(Ok(client)) => match client.check_stat("/").await {
                Ok(_) => return Ok(client),
                Err(e) => format!("the session failed its first request: {e}"),
            },
            Ok(Err(zk::Error::NoHosts)) => format!("cannot connect to {}", s.endpoint),
            Ok(Err(e)) => format!("no session: {e}"),
            Err(_) => format!("no session within {}s", ATTEMPT.as_secs()),
        };
        if started.elapsed() >= s.wait {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(ExecError::NotReady {
        target: format!("ZooKeeper {}", s.context),
        waited: crate::duration::go_duration(started.elapsed()),
        detail: last,
    })
}

fn write_line(w: &mut ChannelWriter, line: &Line) -> Result<()> {
    let mut buf = serde_json::to_vec(line).map_err(|e| tool_error(format!("encoding: {e}")))?;
    buf.push(b'\n');
    w.write_all(&buf)
        .map_err(|e| tool_error(format!("writing the stream: {e}")))
}

/// What reading one node gave.
struct Read {
    data: Vec<u8>,
    stat: zk::Stat,
    acl: Vec<zk::Acl>,
    children: Vec<String>,
}

/// Walk the tree from `s.root` and write the stream.
async fn export(client: &zk::Client, s: &Settings, w: &mut ChannelWriter) -> Result<()> {
    let started = Instant::now();
    write_line(
        w,
        &Line::Header {
            format: FORMAT.into(),
            version: VERSION,
            root: s.root.clone(),
        },
    )?;
    let me = s.me();
    let (mut nodes, mut ephemeral, mut vanished, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut queue = VecDeque::from([s.root.clone()]);
    let mut in_flight = FuturesOrdered::new();
    loop {
        while in_flight.len() < IN_FLIGHT {
            let Some(path) = queue.pop_front() else { break };
            // The requests go out now, in this order; the replies are awaited below.
            let data = client.get_data(&path);
            let acl = client.get_acl(&path);
            let children = client.list_children(&path);
            in_flight.push_back(async move {
                let read = async {
                    let (data, stat) = data.await?;
                    let (acl, _) = acl.await?;
                    let children = children.await?;
                    Ok::<_, zk::Error>(Read {
                        data,
                        stat,
                        acl,
                        children,
                    })
                }
                .await;
                (path, read)
            });
        }
        let Some((path, read)) = in_flight.next().await else {
            break;
        };
        let read = match read {
            Ok(r) => r,
            Err(zk::Error::NoNode) if path != s.root => {
                tracing::debug!(path, "node deleted during the walk; left out");
                vanished += 1;
                continue;
            }
            Err(zk::Error::NoNode) => {
                return Err(tool_error(format!(
                    "the root {path} does not exist; fix the root parameter"
                )));
            }
            Err(zk::Error::NoAuth) => {
                return Err(tool_error(format!(
                    "reading znode {path} was refused (NoAuth) for {}: {}",
                    s.who,
                    s.access_hint(&path, "read (r)")
                )));
            }
            Err(e) => {
                return Err(tool_error(format!("reading znode {path}: {}", said(&e))));
            }
        };
        let (mode, ttl) = match kind_of(read.stat.ephemeral_owner) {
            Kind::Ephemeral => {
                ephemeral += 1;
                continue;
            }
            Kind::Persistent => (Mode::Persistent, None),
            Kind::Container => (Mode::Container, None),
            Kind::Ttl(ms) => (Mode::Ttl, Some(ms)),
        };
        let mut children = read.children;
        children.sort();
        for name in &children {
            let child = child_path(&path, name);
            if child != SYSTEM {
                queue.push_back(child);
            }
        }
        let acl = unmask_acl(&read.acl, &path, s, me.as_deref())?;
        bytes += read.data.len() as u64;
        nodes += 1;
        write_line(
            w,
            &Line::Node(Node {
                data: BASE64.encode(&read.data),
                acl,
                mode,
                ttl,
                children: children.len() as u32,
                path,
            }),
        )?;
    }
    write_line(
        w,
        &Line::End {
            nodes,
            ephemeral_skipped: ephemeral,
        },
    )?;
    let elapsed = crate::duration::go_duration(started.elapsed());
    tracing::info!(root = %s.root, nodes, ephemeral_skipped = ephemeral, vanished, data_bytes = bytes, %elapsed, "zookeeper tree exported");
    Ok(())
}

/// The ACL of `path` as streamed. ZooKeeper shows digest ids as `user:x` to a client without
/// ADMIN on the node; kstash's own entry is filled back in with its digest id (it was readable,
/// so that is the hash ZooKeeper holds unless the password changed since), anyone else's hash
/// cannot be recovered and fails the backup.
fn unmask_acl(acl: &[zk::Acl], path: &str, s: &Settings, me: Option<&str>) -> Result<Vec<AclEntry>> {
    acl.iter()
        .map(|a| {
            let mut e = AclEntry::from_acl(a);
            if e.scheme == "digest"
                && let Some(user) = e.id.strip_suffix(":x")
            {
                match (me, &s.auth) {
                    (Some(id), Some((me_user, _))) if me_user == user => e.id = id.to_string(),
                    _ => {
                        return Err(tool_error(format!(
                            "the ACL of znode {path} grants digest user {user}, whose password hash \
                             ZooKeeper shows only to a client with admin (a) on the node; grant {} \
                             admin on {path} (setAcl), or back up as a user that has it",
                            match &s.auth {
                                Some((u, _)) => format!("digest user {u} (Secret {})", s.secret),
                                None => "the backup's user (add spec.secret to the AppBinding)".into(),
                            }
                        )));
                    }
                }
            }
            Ok(e)
        })
        .collect()
}

/// Whether two ACLs are the same entries, a digest id hidden as `user:x` matching any hash of
/// that user.
fn same_acl(current: &[zk::Acl], wanted: &[zk::Acl]) -> bool {
    let key = |a: &zk::Acl| {
        let id = match a.scheme() {
            "digest" => a.id().split(':').next().unwrap_or_default().to_string(),
            _ => a.id().to_string(),
        };
        (perms_text(a.permission()), a.scheme().to_string(), id)
    };
    let mut c: Vec<_> = current.iter().map(key).collect();
    let mut w: Vec<_> = wanted.iter().map(key).collect();
    c.sort();
    w.sort();
    c == w
}

/// A node to create, with everything `create` borrows.
struct Pending {
    node: Node,
    data: Vec<u8>,
    /// The ACL it ends with.
    acl: Vec<zk::Acl>,
    /// The ACL it is created with: `acl`, or `acl` plus an entry for kstash when `acl` would
    /// keep kstash from creating its children.
    create_acl: Vec<zk::Acl>,
}

/// Counts of a restore.
#[derive(Debug, Default)]
struct Counts {
    created: u64,
    kept: u64,
    overwritten: u64,
    acl_fixed: u64,
}

struct Importer<'a> {
    client: &'a zk::Client,
    s: &'a Settings,
    me: Option<String>,
    counts: Counts,
    /// Nodes whose exact ACL is set once the stream is in.
    acl_later: Vec<(String, Vec<zk::Acl>)>,
}

impl Importer<'_> {
    fn err(&self, m: String) -> ExecError {
        tool_error(m)
    }

    fn prepare(&self, node: Node) -> Result<Pending> {
        let data = BASE64
            .decode(&node.data)
            .map_err(|e| self.err(format!("the dump's data of {} is not base64: {e}", node.path)))?;
        let acl = node
            .acl
            .iter()
            .map(AclEntry::to_acl)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|m| self.err(format!("the dump's ACL of {}: {m}", node.path)))?;
        if acl.is_empty() {
            return Err(self.err(format!("the dump's ACL of {} is empty", node.path)));
        }
        let create_acl = if node.children > 0 && !self.lets_me(&node.acl, 'c') {
            self.widened(&acl)
        } else {
            acl.clone()
        };
        Ok(Pending {
            node,
            data,
            acl,
            create_acl,
        })
    }

    fn lets_me(&self, acl: &[AclEntry], perm: char) -> bool {
        acl.iter().any(|a| a.grants(self.me.as_deref(), perm))
    }

    /// Make sure the ancestors of the dump's root exist.
    async fn ancestors(&self, root: &str) -> Result<()> {
        let parent = parent_of(root);
        if parent == "/" {
            return Ok(());
        }
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        self.client
            .mkdir(parent, &options)
            .await
            .map_err(|e| self.err(format!("creating the ancestors of {root}: {}", said(&e))))
    }

    /// Create (or keep, or overwrite) a batch of nodes; the creates are pipelined in order, so
    /// a parent is created before its children in the same batch.
    async fn batch(&mut self, batch: Vec<Pending>) -> Result<()> {
        let options: Vec<zk::CreateOptions<'_>> = batch
            .iter()
            .map(|p| {
                let mode = match p.node.mode {
                    Mode::Persistent | Mode::Ttl => zk::CreateMode::Persistent,
                    Mode::Container => zk::CreateMode::Container,
                };
                let o = mode.with_acls(zk::Acls::new(&p.create_acl));
                match p.node.ttl {
                    Some(ms) if p.node.mode == Mode::Ttl => o.with_ttl(Duration::from_millis(ms)),
                    _ => o,
                }
            })
            .collect();
        let creates = batch.iter().zip(&options).map(|(p, o)| {
            let fut = (p.node.path != "/").then(|| self.client.create(&p.node.path, &p.data, o));
            async move {
                match fut {
                    Some(f) => f.await.map(|_| ()),
                    None => Err(zk::Error::NodeExists),
                }
            }
        });
        let mut results = join_all(creates.collect::<Vec<_>>()).await;
        // ZooKeeper checks the parent's ACL before whether the node exists: an existing node
        // under a parent kstash may not create in answers NoAuth.
        for (p, r) in batch.iter().zip(results.iter_mut()) {
            if matches!(r, Err(zk::Error::NoAuth))
                && let Ok(Some(_)) = self.client.check_stat(&p.node.path).await
            {
                *r = Err(zk::Error::NodeExists);
            }
        }
        let mut overwrite = Vec::new();
        for (p, r) in batch.iter().zip(results) {
            match r {
                Ok(()) => {
                    self.counts.created += 1;
                    if p.create_acl.len() != p.acl.len() {
                        self.acl_later.push((p.node.path.clone(), p.acl.clone()));
                    }
                }
                Err(zk::Error::NodeExists) => match self.s.existing {
                    ExistingNode::Keep => self.counts.kept += 1,
                    ExistingNode::Overwrite => overwrite.push(p),
                },
                Err(zk::Error::NoAuth) => {
                    let parent = parent_of(&p.node.path);
                    return Err(self.err(format!(
                        "creating znode {} was refused (NoAuth) for {}: {}",
                        p.node.path,
                        self.s.who,
                        self.s.access_hint(parent, "create (c)")
                    )));
                }
                Err(zk::Error::NoNode) => {
                    return Err(self.err(format!(
                        "creating znode {}: its parent {} does not exist",
                        p.node.path,
                        parent_of(&p.node.path)
                    )));
                }
                Err(e) => {
                    return Err(self.err(format!("creating znode {}: {}", p.node.path, said(&e))));
                }
            }
        }
        if overwrite.is_empty() {
            return Ok(());
        }
        self.overwrite(&overwrite).await
    }

    /// The backed-up ACL plus an entry granting kstash everything.
    fn widened(&self, acl: &[zk::Acl]) -> Vec<zk::Acl> {
        let me = match &self.me {
            Some(id) => zk::AuthId::new("digest", id),
            None => zk::AuthId::anyone(),
        };
        let mut out = acl.to_vec();
        out.push(zk::Acl::new(zk::Permission::ALL, me));
        out
    }

    fn refused(&self, what: &str, path: &str, need: &str) -> ExecError {
        self.err(format!(
            "overwriting the {what} of existing znode {path} was refused (NoAuth) for {}: {}",
            self.s.who,
            self.s.access_hint(path, need)
        ))
    }

    /// Give existing nodes the backed-up data and ACL: the data first (pipelined), then the
    /// ACL. A node whose data kstash may not write is first given a widened ACL (which needs
    /// admin on it); a node that keeps kstash from creating its children gets its exact ACL at
    /// the end.
    async fn overwrite(&mut self, nodes: &[&Pending]) -> Result<()> {
        let writes = nodes
            .iter()
            .map(|p| self.client.set_data(&p.node.path, &p.data, None));
        let written = join_all(writes.collect::<Vec<_>>()).await;
        let mut widened = vec![false; nodes.len()];
        for (i, (p, r)) in nodes.iter().zip(written).enumerate() {
            let path = &p.node.path;
            match r {
                Ok(_) => {}
                Err(zk::Error::NoAuth)
                    if self.client.get_data(path).await.is_ok_and(|(d, _)| d == p.data) => {}
                Err(zk::Error::NoAuth) => {
                    let wide = self.widened(&p.acl);
                    match self.client.set_acl(path, &wide, None).await {
                        Ok(_) => {}
                        Err(zk::Error::NoAuth) => {
                            return Err(self.refused("data", path, "write (w), or admin (a)"));
                        }
                        Err(e) => return Err(self.err(format!("setting the ACL of {path}: {}", said(&e)))),
                    }
                    self.client
                        .set_data(path, &p.data, None)
                        .await
                        .map_err(|e| self.err(format!("overwriting the data of {path}: {}", said(&e))))?;
                    self.acl_later.push((path.clone(), p.acl.clone()));
                    widened[i] = true;
                }
                Err(e) => {
                    return Err(self.err(format!("overwriting the data of {path}: {}", said(&e))));
                }
            }
        }
        let acls: Vec<_> = nodes
            .iter()
            .zip(&widened)
            .filter(|(_, w)| !**w)
            .map(|(p, _)| *p)
            .collect();
        let sets = acls
            .iter()
            .map(|p| self.client.set_acl(&p.node.path, &p.create_acl, None));
        let set = join_all(sets.collect::<Vec<_>>()).await;
        for (p, r) in acls.iter().zip(set) {
            let path = &p.node.path;
            match r {
                Ok(_) => {
                    if p.create_acl.len() != p.acl.len() {
                        self.acl_later.push((path.clone(), p.acl.clone()));
                    }
                }
                // Without admin the ACL cannot change; fine when it is the backed-up one.
                Err(zk::Error::NoAuth) => {
                    let current = self.client.get_acl(path).await.map(|(a, _)| a);
                    if !current.is_ok_and(|c| same_acl(&c, &p.acl)) {
                        return Err(self.refused("ACL", path, "admin (a)"));
                    }
                }
                Err(e) => return Err(self.err(format!("setting the ACL of {path}: {}", said(&e)))),
            }
        }
        self.counts.overwritten += nodes.len() as u64;
        Ok(())
    }

    /// Set the exact ACLs that were widened for the restore.
    async fn finish_acls(&mut self) -> Result<()> {
        let later = std::mem::take(&mut self.acl_later);
        for chunk in later.chunks(IN_FLIGHT) {
            let sets = chunk
                .iter()
                .map(|(path, acl)| self.client.set_acl(path, acl, None));
            let results = join_all(sets.collect::<Vec<_>>()).await;
            for ((path, _), r) in chunk.iter().zip(results) {
                r.map_err(|e| self.err(format!("setting the ACL of znode {path}: {}", said(&e))))?;
                self.counts.acl_fixed += 1;
            }
        }
        Ok(())
    }
}

/// Read the stream and replay it.
async fn import(client: &zk::Client, s: &Settings, r: &mut ChannelReader) -> Result<()> {
    let started = Instant::now();
    let mut reader = BufReader::with_capacity(1 << 20, r);
    let mut im = Importer {
        client,
        s,
        me: s.me(),
        counts: Counts::default(),
        acl_later: Vec::new(),
    };
    let mut line = String::new();
    let mut number = 0u64;
    let mut next = |line: &mut String| -> Result<Option<Line>> {
        line.clear();
        number += 1;
        let n = reader
            .read_line(line)
            .map_err(|e| tool_error(format!("reading the dump: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(line)
            .map(Some)
            .map_err(|e| tool_error(format!("line {number} of {DUMP_FILE} is not a dump record: {e}")))
    };
    let root = match next(&mut line)? {
        Some(Line::Header {
            format,
            version,
            root,
        }) if format == FORMAT => {
            if version != VERSION {
                return Err(im.err(format!(
                    "{DUMP_FILE} has format version {version}; this kstash reads version {VERSION}"
                )));
            }
            root
        }
        _ => {
            return Err(im.err(format!(
                "{DUMP_FILE} does not start with a {FORMAT} header; is this a ZooKeeper dump of kstash?"
            )));
        }
    };
    im.ancestors(&root).await?;
    let mut batch = Vec::with_capacity(IN_FLIGHT);
    let mut nodes = 0u64;
    let end = loop {
        match next(&mut line)? {
            Some(Line::Node(node)) => {
                nodes += 1;
                if node.path == SYSTEM || node.path.starts_with("/zookeeper/") {
                    continue;
                }
                batch.push(im.prepare(node)?);
                if batch.len() >= IN_FLIGHT {
                    im.batch(std::mem::take(&mut batch)).await?;
                }
            }
            Some(Line::End { nodes: expected, .. }) => break expected,
            Some(Line::Header { .. }) => {
                return Err(im.err(format!("{DUMP_FILE} has a second header at line {number}")));
            }
            None => {
                return Err(im.err(format!(
                    "{DUMP_FILE} ends after {nodes} nodes without its end record: the dump is truncated"
                )));
            }
        }
    };
    im.batch(batch).await?;
    if end != nodes {
        return Err(im.err(format!(
            "{DUMP_FILE} holds {nodes} nodes but its end record says {end}"
        )));
    }
    im.finish_acls().await?;
    let c = &im.counts;
    tracing::info!(
        root,
        nodes,
        created = c.created,
        kept = c.kept,
        overwritten = c.overwritten,
        acl_fixed = c.acl_fixed,
        elapsed = %crate::duration::go_duration(started.elapsed()),
        "zookeeper tree restored"
    );
    Ok(())
}

impl StreamDriver for ZooKeeper {
    fn file_name(&self) -> &str {
        DUMP_FILE
    }

    fn produce(&self) -> Result<Box<dyn Source>> {
        let s = self.settings()?;
        let rt = runtime()?;
        let client = rt.block_on(connect(&s))?;
        tracing::info!(endpoint = %s.endpoint, root = %s.root, "exporting the zookeeper tree");
        let context = s.context.clone();
        let source = ThreadSource::spawn(TOOL, &context, move |w| {
            let out = rt.block_on(export(&client, &s, w));
            drop(client);
            out
        })?;
        Ok(Box::new(source))
    }

    fn consume(&self) -> Result<Box<dyn Sink>> {
        let s = self.settings()?;
        let rt = runtime()?;
        let client = rt.block_on(connect(&s))?;
        tracing::info!(endpoint = %s.endpoint, existing = ?s.existing, "importing the zookeeper tree");
        let context = s.context.clone();
        let sink = ThreadSink::spawn(TOOL, &context, move |r| {
            let out = rt.block_on(import(&client, &s, r));
            drop(client);
            out
        })?;
        Ok(Box::new(sink))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_read_from_the_ephemeral_owner() {
        assert_eq!(kind_of(0), Kind::Persistent);
        assert_eq!(kind_of(i64::MIN), Kind::Container);
        assert_eq!(kind_of(0xff00_0000_0000_2710u64 as i64), Kind::Ttl(10_000));
        assert_eq!(kind_of(0x0100_0183_2a4b_0000), Kind::Ephemeral);
        assert_eq!(kind_of(0x7200_0001_0000_0001), Kind::Ephemeral);
        // An extended type other than TTL is not mistaken for one.
        assert_eq!(kind_of(0xff00_0100_0000_0001u64 as i64), Kind::Ephemeral);
    }

    #[test]
    fn permissions_round_trip_as_letters() {
        let all = zk::Permission::ALL;
        assert_eq!(perms_text(all), "cdrwa");
        assert_eq!(perms_text(zk::Permission::READ), "r");
        assert_eq!(
            perms_of("rw").unwrap(),
            zk::Permission::READ | zk::Permission::WRITE
        );
        assert_eq!(perms_of("").unwrap(), zk::Permission::NONE);
        assert!(perms_of("rx").unwrap_err().contains("'x'"));
    }

    #[test]
    fn digest_ids_match_zookeeper() {
        // DigestAuthenticationProvider.generateDigest("super:secret"): base64(sha1(id)).
        assert_eq!(digest_id("super", "secret"), "super:lK75jTNcA+U9vtVEw5vB51mj/w4=");
    }

    #[test]
    fn roots_are_checked() {
        assert_eq!(check_root("/").unwrap(), "/");
        assert_eq!(check_root("/app/").unwrap(), "/app");
        assert!(check_root("app").is_err());
        assert!(check_root("/a//b").is_err());
        assert!(check_root("/a/../b").is_err());
        assert!(check_root("/zookeeper/quota").is_err());
        assert_eq!(check_root("/zookeeperish").unwrap(), "/zookeeperish");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
    }

    #[test]
    fn lines_have_a_stable_shape() {
        let node = Line::Node(Node {
            path: "/a".into(),
            data: BASE64.encode([0u8, 255]),
            acl: vec![AclEntry {
                perms: "r".into(),
                scheme: "world".into(),
                id: "anyone".into(),
            }],
            mode: Mode::Ttl,
            ttl: Some(5000),
            children: 0,
        });
        let text = serde_json::to_string(&node).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"node","path":"/a","data":"AP8=","acl":[{"perms":"r","scheme":"world","id":"anyone"}],"mode":"ttl","ttl":5000,"children":0}"#
        );
        assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), node);
        let end = serde_json::to_string(&Line::End {
            nodes: 3,
            ephemeral_skipped: 1,
        })
        .unwrap();
        assert_eq!(end, r#"{"kind":"end","nodes":3,"ephemeralSkipped":1}"#);
    }

    #[test]
    fn acl_grants_are_judged_for_kstash_identity() {
        let e = |perms: &str, scheme: &str, id: &str| AclEntry {
            perms: perms.into(),
            scheme: scheme.into(),
            id: id.into(),
        };
        assert!(e("cr", "world", "anyone").grants(None, 'c'));
        assert!(!e("r", "world", "anyone").grants(None, 'c'));
        assert!(e("cdrwa", "digest", "u:h").grants(Some("u:h"), 'c'));
        assert!(!e("cdrwa", "digest", "u:x").grants(Some("u:h"), 'c'));
        assert!(!e("cdrwa", "ip", "127.0.0.1").grants(Some("u:h"), 'c'));
    }
}
