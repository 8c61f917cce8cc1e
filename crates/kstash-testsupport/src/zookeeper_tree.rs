//! A ZooKeeper client for tests (the `zookeeper-client` crate on a runtime of its own, so the
//! session keeps pinging while the test thread blocks), and a varied tree to back up: binary
//! data, digest/world/ip ACLs, sequential, container and ephemeral nodes.
//!
//! ```no_run
//! use kstash_testsupport::{ZooKeeper, zookeeper_tree::{ZkSession, create_varied_tree}};
//! let zk = ZooKeeper::start().unwrap();
//! let s = ZkSession::connect(&zk.connect_string(), Some(("kstash", "pw"))).unwrap();
//! let tree = create_varied_tree(&s, "kstash", "pw").unwrap();
//! assert_eq!(s.fingerprint().unwrap().len(), tree.nodes + 1);
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

pub use zookeeper_client as zk;

use crate::error::{Error, Result};

/// A session, authenticated as a digest user or anonymous.
pub struct ZkSession {
    client: zk::Client,
    rt: tokio::runtime::Runtime,
}

fn zk_error(op: &str, path: &str, e: zk::Error) -> Error {
    Error::Protocol(format!("zookeeper {op} {path}: {e}"))
}

/// The digest id ZooKeeper gives `user:password`.
pub fn digest_id(user: &str, password: &str) -> String {
    use sha1::Digest as _;
    let hash = sha1::Sha1::digest(format!("{user}:{password}").as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// An ACL entry for the digest user `user:password`.
pub fn digest_acl(user: &str, password: &str, perms: zk::Permission) -> zk::Acl {
    zk::Acl::new(perms, zk::AuthId::new("digest", &digest_id(user, password)))
}

/// `cdrwa`-letters of a permission.
pub fn perms_text(p: zk::Permission) -> String {
    [
        ('c', zk::Permission::CREATE),
        ('d', zk::Permission::DELETE),
        ('r', zk::Permission::READ),
        ('w', zk::Permission::WRITE),
        ('a', zk::Permission::ADMIN),
    ]
    .iter()
    .filter(|(_, b)| p.has(*b))
    .map(|(c, _)| *c)
    .collect()
}

/// What a node is, for comparing trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePrint {
    /// SHA-256 of the data, hex.
    pub data_sha256: String,
    pub data_len: usize,
    /// `perms scheme:id`, sorted.
    pub acl: Vec<String>,
    /// `persistent`, `container`, `ttl` or `ephemeral`.
    pub mode: &'static str,
}

fn mode_of(ephemeral_owner: i64) -> &'static str {
    let owner = ephemeral_owner as u64;
    if owner == 0 {
        "persistent"
    } else if ephemeral_owner == i64::MIN {
        "container"
    } else if owner >> 56 == 0xff {
        "ttl"
    } else {
        "ephemeral"
    }
}

fn child(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

impl ZkSession {
    /// Connect to `127.0.0.1:PORT`, adding the digest identity `user:password` if given.
    pub fn connect(connect_string: &str, auth: Option<(&str, &str)>) -> Result<ZkSession> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::Protocol(format!("tokio runtime: {e}")))?;
        let mut connector = zk::Client::connector().with_session_timeout(Duration::from_secs(30));
        if let Some((u, p)) = auth {
            connector = connector.with_auth("digest", format!("{u}:{p}").as_bytes());
        }
        let client = rt
            .block_on(connector.connect(connect_string))
            .map_err(|e| zk_error("connect", connect_string, e))?;
        Ok(ZkSession { client, rt })
    }

    /// The client, for calls this type does not wrap (use with [`ZkSession::run`]).
    pub fn client(&self) -> &zk::Client {
        &self.client
    }

    /// Run a future on the session's runtime.
    pub fn run<T>(&self, f: impl Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// Create one node; returns its path (the numbered one for sequential modes).
    pub fn create(&self, path: &str, data: &[u8], acl: &[zk::Acl], mode: zk::CreateMode) -> Result<String> {
        let options = mode.with_acls(zk::Acls::new(acl));
        let (_, seq) = self
            .run(self.client.create(path, data, &options))
            .map_err(|e| zk_error("create", path, e))?;
        let sequential = matches!(
            mode,
            zk::CreateMode::PersistentSequential | zk::CreateMode::EphemeralSequential
        );
        Ok(if sequential {
            format!("{path}{seq}")
        } else {
            path.to_string()
        })
    }

    /// Create many nodes at once (pipelined, in order: parents before children).
    pub fn create_many(&self, nodes: &[(String, Vec<u8>, Vec<zk::Acl>)], mode: zk::CreateMode) -> Result<()> {
        for chunk in nodes.chunks(64) {
            let options: Vec<_> = chunk
                .iter()
                .map(|(_, _, acl)| mode.with_acls(zk::Acls::new(acl)))
                .collect();
            let futs: Vec<_> = chunk
                .iter()
                .zip(&options)
                .map(|((p, d, _), o)| self.client.create(p, d, o))
                .collect();
            let results = self.run(futures::future::join_all(futs));
            for ((p, _, _), r) in chunk.iter().zip(results) {
                r.map_err(|e| zk_error("create", p, e))?;
            }
        }
        Ok(())
    }

    pub fn get_data(&self, path: &str) -> Result<Vec<u8>> {
        self.run(self.client.get_data(path))
            .map(|(d, _)| d)
            .map_err(|e| zk_error("get", path, e))
    }

    pub fn set_data(&self, path: &str, data: &[u8]) -> Result<()> {
        self.run(self.client.set_data(path, data, None))
            .map(|_| ())
            .map_err(|e| zk_error("set", path, e))
    }

    pub fn get_acl(&self, path: &str) -> Result<Vec<zk::Acl>> {
        self.run(self.client.get_acl(path))
            .map(|(a, _)| a)
            .map_err(|e| zk_error("getAcl", path, e))
    }

    pub fn set_acl(&self, path: &str, acl: &[zk::Acl]) -> Result<()> {
        self.run(self.client.set_acl(path, acl, None))
            .map(|_| ())
            .map_err(|e| zk_error("setAcl", path, e))
    }

    pub fn exists(&self, path: &str) -> Result<bool> {
        self.run(self.client.check_stat(path))
            .map(|s| s.is_some())
            .map_err(|e| zk_error("stat", path, e))
    }

    pub fn delete(&self, path: &str) -> Result<()> {
        self.run(self.client.delete(path, None))
            .map_err(|e| zk_error("delete", path, e))
    }

    /// Every path under `/` but `/zookeeper…`, parents first (`/` included).
    pub fn paths(&self) -> Result<Vec<String>> {
        let mut out = vec!["/".to_string()];
        let mut i = 0;
        while i < out.len() {
            let path = out[i].clone();
            let mut names = self
                .run(self.client.list_children(&path))
                .map_err(|e| zk_error("ls", &path, e))?;
            names.sort();
            out.extend(
                names
                    .iter()
                    .map(|n| child(&path, n))
                    .filter(|p| p != "/zookeeper"),
            );
            i += 1;
        }
        Ok(out)
    }

    /// Every node but ephemeral ones and `/zookeeper…`: path → data hash, ACL, mode.
    pub fn fingerprint(&self) -> Result<BTreeMap<String, NodePrint>> {
        let paths = self.paths()?;
        let mut out = BTreeMap::new();
        for chunk in paths.chunks(64) {
            let futs: Vec<_> = chunk
                .iter()
                .map(|p| {
                    let data = self.client.get_data(p);
                    let acl = self.client.get_acl(p);
                    async move { (data.await, acl.await) }
                })
                .collect();
            for (p, (data, acl)) in chunk.iter().zip(self.run(futures::future::join_all(futs))) {
                let (data, stat) = data.map_err(|e| zk_error("get", p, e))?;
                let (acl, _) = acl.map_err(|e| zk_error("getAcl", p, e))?;
                let mode = mode_of(stat.ephemeral_owner);
                if mode == "ephemeral" {
                    continue;
                }
                let mut acl: Vec<String> = acl
                    .iter()
                    .map(|a| format!("{} {}:{}", perms_text(a.permission()), a.scheme(), a.id()))
                    .collect();
                acl.sort();
                let hash = Sha256::digest(&data);
                out.insert(
                    p.clone(),
                    NodePrint {
                        data_sha256: hash.iter().map(|b| format!("{b:02x}")).collect(),
                        data_len: data.len(),
                        acl,
                        mode,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Delete every node but `/` and `/zookeeper…`; ACLs are opened first where the session
    /// may (nodes it cannot administer must be leaves or under open parents). Returns the
    /// number deleted.
    pub fn wipe(&self) -> Result<usize> {
        let mut paths = self.paths()?;
        paths.remove(0);
        let open = zk::Acls::anyone_all();
        let futs: Vec<_> = paths
            .iter()
            .map(|p| self.client.set_acl(p, &open, None))
            .collect();
        let _ = self.run(futures::future::join_all(futs));
        paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
        let futs: Vec<_> = paths.iter().map(|p| self.client.delete(p, None)).collect();
        for (p, r) in paths.iter().zip(self.run(futures::future::join_all(futs))) {
            r.map_err(|e| zk_error("delete", p, e))?;
        }
        Ok(paths.len())
    }
}

/// What [`create_varied_tree`] made.
#[derive(Debug, Clone)]
pub struct VariedTree {
    /// Persistent and container nodes created (`/` not counted).
    pub nodes: usize,
    /// Ephemeral nodes (held by the creating session).
    pub ephemeral: Vec<String>,
    /// The numbered names of the sequential nodes.
    pub sequential: Vec<String>,
}

/// Deterministic bytes (xorshift) of `len`.
pub fn binary(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Over 1,000 nodes under `/app` and `/other`, created through `s` (authenticated as
/// `user:password`, which every ACL lets read and administer):
/// - `/app/configs/cfg-NNNN` ×600, binary data of 0–4 KiB (one of 200 KiB), ACLs cycling
///   through world-all, digest-all, digest-read-only and a mix of digest, world-read and ip;
/// - `/app/secure` (digest only) with 100 children and 100 grandchildren;
/// - `/app/public` (world read + digest admin, so nobody may create in it) with 50
///   world-read-only leaves;
/// - `/app/queue/job-…` ×50 sequential, `/app/containers` a container node with 20 children,
///   `/app/deep/l1/…/l30`, `/other/g-N/n-N` ×110;
/// - ephemeral `/app/eph` and `/app/configs/live-session`.
pub fn create_varied_tree(s: &ZkSession, user: &str, password: &str) -> Result<VariedTree> {
    use zk::Permission as P;
    let open = zk::Acls::anyone_all().to_vec();
    let all = vec![digest_acl(user, password, P::ALL)];
    let read_only = vec![digest_acl(user, password, P::READ)];
    let mixed = vec![
        digest_acl(user, password, P::ALL),
        digest_acl("auditor", "audit-pw", P::READ | P::WRITE),
        zk::Acl::new(P::READ, zk::AuthId::anyone()),
        zk::Acl::new(P::READ, zk::AuthId::new("ip", "127.0.0.1")),
    ];
    let world_read_admin = vec![
        zk::Acl::new(P::READ, zk::AuthId::anyone()),
        digest_acl(user, password, P::ADMIN),
    ];
    let world_read = vec![zk::Acl::new(P::READ, zk::AuthId::anyone())];
    let mut nodes: Vec<(String, Vec<u8>, Vec<zk::Acl>)> = vec![
        ("/app".into(), b"application root".to_vec(), open.clone()),
        ("/app/configs".into(), vec![], open.clone()),
    ];
    for i in 0..600u64 {
        let len = match i {
            0 => 0,
            599 => 200 * 1024,
            _ => (i as usize * 37) % 4096,
        };
        let acl = match i % 4 {
            0 => all.clone(),
            1 => open.clone(),
            2 => mixed.clone(),
            _ => read_only.clone(),
        };
        nodes.push((format!("/app/configs/cfg-{i:04}"), binary(i, len), acl));
    }
    nodes.push(("/app/secure".into(), b"secret parent".to_vec(), all.clone()));
    for i in 0..100u64 {
        let p = format!("/app/secure/s-{i:03}");
        nodes.push((p.clone(), binary(1000 + i, 64), all.clone()));
        nodes.push((format!("{p}/key"), binary(2000 + i, 32), all.clone()));
    }
    // Created open, closed once its children are in.
    nodes.push(("/app/public".into(), b"read me".to_vec(), open.clone()));
    for i in 0..50u64 {
        nodes.push((
            format!("/app/public/p-{i:02}"),
            format!("public {i}").into_bytes(),
            world_read.clone(),
        ));
    }
    nodes.push(("/app/queue".into(), vec![], open.clone()));
    nodes.push(("/app/deep".into(), vec![], open.clone()));
    let mut deep = "/app/deep".to_string();
    for i in 1..=30 {
        deep = format!("{deep}/l{i}");
        nodes.push((deep.clone(), vec![i as u8; i], open.clone()));
    }
    nodes.push(("/other".into(), b"\x00\x01\x02".to_vec(), open.clone()));
    for g in 0..10 {
        nodes.push((format!("/other/g-{g}"), vec![], open.clone()));
        for n in 0..10 {
            nodes.push((
                format!("/other/g-{g}/n-{n}"),
                binary(g * 10 + n, 100),
                open.clone(),
            ));
        }
    }
    s.create_many(&nodes, zk::CreateMode::Persistent)?;
    s.set_acl("/app/public", &world_read_admin)?;
    let mut count = nodes.len();

    s.create("/app/containers", b"c", &open, zk::CreateMode::Container)?;
    count += 1;
    let kids: Vec<_> = (0..20)
        .map(|i| (format!("/app/containers/c-{i:02}"), vec![i as u8], open.clone()))
        .collect();
    s.create_many(&kids, zk::CreateMode::Persistent)?;
    count += kids.len();

    let mut sequential = Vec::new();
    for i in 0..50 {
        sequential.push(s.create(
            "/app/queue/job-",
            format!("job {i}").as_bytes(),
            &open,
            zk::CreateMode::PersistentSequential,
        )?);
    }
    count += sequential.len();

    let ephemeral = vec![
        s.create("/app/eph", b"session bound", &open, zk::CreateMode::Ephemeral)?,
        s.create(
            "/app/configs/live-session",
            b"me",
            &open,
            zk::CreateMode::Ephemeral,
        )?,
    ];
    Ok(VariedTree {
        nodes: count,
        ephemeral,
        sequential,
    })
}
