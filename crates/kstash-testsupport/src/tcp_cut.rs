//! A loopback TCP proxy that breaks connections halfway, for tests of native drivers whose
//! export or restore must fail cleanly when the network dies mid-stream.
//!
//! [`TcpCutProxy`] listens on `127.0.0.1:<free port>` and forwards every accepted connection,
//! byte for byte in both directions, to one upstream (a real Redis, ZooKeeper, ...). Its
//! [`CutPlan`] says when to break a connection: after a number of bytes from the upstream to the
//! client (the server's answers: an export's data) or from the client to the upstream (the
//! client's requests: a restore's commands). Exactly that many bytes are forwarded, then both
//! sides are closed (FIN), or reset (RST, `SO_LINGER` 0) with [`CutPlan::reset`]. Bytes are
//! counted per connection, so a short connection (a readiness probe) passes untouched.
//! [`CutPlan::then_refuse`] makes every connection accepted after the first cut fail at once,
//! for clients that reconnect.
//!
//! Plain threads and blocking sockets: an accept thread, and two pump threads per connection
//! that poll a stop flag every [`POLL`]. A plan applies to the connections accepted after it
//! is set.
//!
//! ```no_run
//! use kstash_testsupport::{CutPlan, Redis, TcpCutProxy};
//! let redis = Redis::start().unwrap();
//! let proxy = TcpCutProxy::start(("127.0.0.1", redis.port), CutPlan::from_upstream_after(1 << 20)).unwrap();
//! // ... point the client at proxy.port() and run the export; it must fail ...
//! assert_eq!(proxy.cuts(), 1);
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, IoContext, Result};

/// How often blocked threads look at their stop flags.
const POLL: Duration = Duration::from_millis(20);
/// Bytes read at once.
const BUF: usize = 64 * 1024;

/// Which way bytes flow through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the upstream server to the client (replies, an export's data).
    FromUpstream,
    /// From the client to the upstream server (requests, a restore's commands).
    ToUpstream,
}

/// When connections are cut. Builders start from [`none`](Self::none),
/// [`from_upstream_after`](Self::from_upstream_after) or
/// [`to_upstream_after`](Self::to_upstream_after).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutPlan {
    /// `(direction, bytes)`: cut a connection once `bytes` went that way on it.
    cut: Option<(Direction, u64)>,
    reset: bool,
    then_refuse: bool,
}

impl CutPlan {
    /// Forward everything, cut nothing.
    pub fn none() -> CutPlan {
        CutPlan {
            cut: None,
            reset: false,
            then_refuse: false,
        }
    }

    /// Cut each connection once `bytes` bytes went from the upstream to the client on it.
    pub fn from_upstream_after(bytes: u64) -> CutPlan {
        CutPlan {
            cut: Some((Direction::FromUpstream, bytes)),
            ..CutPlan::none()
        }
    }

    /// Cut each connection once `bytes` bytes went from the client to the upstream on it.
    pub fn to_upstream_after(bytes: u64) -> CutPlan {
        CutPlan {
            cut: Some((Direction::ToUpstream, bytes)),
            ..CutPlan::none()
        }
    }

    /// Cut with a TCP reset (`SO_LINGER` 0, "connection reset by peer") instead of a close.
    pub fn reset(mut self) -> CutPlan {
        self.reset = true;
        self
    }

    /// After the first cut, accept new connections only to close them at once (reset with
    /// [`reset`](Self::reset)), as if the server were gone.
    pub fn then_refuse(mut self) -> CutPlan {
        self.then_refuse = true;
        self
    }

    fn limit(&self, dir: Direction) -> Option<u64> {
        self.cut.filter(|(d, _)| *d == dir).map(|(_, n)| n)
    }
}

/// Counters and settings shared with the threads.
#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    plan: Mutex<CutPlan>,
    stop: AtomicBool,
    cut_happened: AtomicBool,
    connections: AtomicU64,
    refused: AtomicU64,
    cuts: AtomicU64,
    from_upstream: AtomicU64,
    to_upstream: AtomicU64,
}

/// A running proxy; stopped (and every connection dropped) on `Drop`.
#[derive(Debug)]
pub struct TcpCutProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl TcpCutProxy {
    /// Listen on `127.0.0.1:<free port>` and forward to `upstream` (e.g. `("127.0.0.1", port)`
    /// or `"127.0.0.1:6379"`) under `plan`.
    pub fn start(upstream: impl ToSocketAddrs, plan: CutPlan) -> Result<TcpCutProxy> {
        let upstream = upstream
            .to_socket_addrs()
            .context(|| "tcp cut proxy: resolving the upstream".into())?
            .next()
            .ok_or_else(|| Error::Protocol("tcp cut proxy: the upstream has no address".into()))?;
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).context(|| "tcp cut proxy: binding 127.0.0.1:0".into())?;
        let addr = listener
            .local_addr()
            .context(|| "tcp cut proxy: local_addr".into())?;
        listener
            .set_nonblocking(true)
            .context(|| "tcp cut proxy: non-blocking listener".into())?;
        let shared = Arc::new(Shared {
            upstream,
            plan: Mutex::new(plan),
            stop: AtomicBool::new(false),
            cut_happened: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            from_upstream: AtomicU64::new(0),
            to_upstream: AtomicU64::new(0),
        });
        let accept = std::thread::Builder::new()
            .name("tcp-cut-accept".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(&listener, &shared)
            })
            .context(|| "tcp cut proxy: spawning the accept thread".into())?;
        Ok(TcpCutProxy {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The proxy's address (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Replace the plan for connections accepted from now on; a new plan also forgets that a
    /// cut happened (for [`CutPlan::then_refuse`]).
    pub fn set_plan(&self, plan: CutPlan) {
        *self.shared.plan.lock().unwrap_or_else(PoisonError::into_inner) = plan;
        self.shared.cut_happened.store(false, Ordering::SeqCst);
    }

    /// Bytes forwarded so far, both directions.
    pub fn bytes_forwarded(&self) -> u64 {
        self.bytes_from_upstream() + self.bytes_to_upstream()
    }

    /// Bytes forwarded from the upstream to clients so far.
    pub fn bytes_from_upstream(&self) -> u64 {
        self.shared.from_upstream.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from clients to the upstream so far.
    pub fn bytes_to_upstream(&self) -> u64 {
        self.shared.to_upstream.load(Ordering::SeqCst)
    }

    /// Connections cut by the plan so far.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (forwarded or refused).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections closed at once because of [`CutPlan::then_refuse`], or because the
    /// upstream could not be reached.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TcpCutProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // The pump threads see the flag within POLL and drop their sockets.
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let plan = shared.plan.lock().unwrap_or_else(PoisonError::into_inner).clone();
                if let Err(e) = serve(client, plan, shared) {
                    log(&format!("tcp cut proxy: connection not served: {e}"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL / 4),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log(&format!("tcp cut proxy: accept failed: {e}"));
                std::thread::sleep(POLL);
            }
        }
    }
}

/// The crate has no logging dependency; proxy trouble goes to stderr, which tests show.
fn log(message: &str) {
    eprintln!("{message}");
}

/// One forwarded connection: both sockets, shared by its two pump threads.
struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    /// Set once the plan cut it (or the proxy stops): both pumps end.
    done: AtomicBool,
    reset: bool,
}

impl Conn {
    fn cut(&self, shared: &Shared) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        shared.cuts.fetch_add(1, Ordering::SeqCst);
        shared.cut_happened.store(true, Ordering::SeqCst);
        if self.reset {
            // close() sends RST once the last descriptor goes (both pumps drop the Arc within
            // POLL); a shutdown would send FIN first, so there is none.
            zero_linger(&self.client);
            zero_linger(&self.upstream);
        } else {
            let _ = self.client.shutdown(Shutdown::Both);
            let _ = self.upstream.shutdown(Shutdown::Both);
        }
    }
}

/// `SO_LINGER` 0 on the socket (through tokio's safe wrapper of a duplicated descriptor).
fn zero_linger(s: &TcpStream) {
    if let Ok(dup) = s.try_clone() {
        let _ = tokio::net::TcpSocket::from_std_stream(dup).set_zero_linger();
    }
}

fn serve(client: TcpStream, plan: CutPlan, shared: &Arc<Shared>) -> io::Result<()> {
    client.set_nonblocking(false)?;
    if plan.then_refuse && shared.cut_happened.load(Ordering::SeqCst) {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        if plan.reset {
            zero_linger(&client);
        }
        return Ok(());
    }
    let upstream = match TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5)) {
        Ok(u) => u,
        Err(e) => {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            zero_linger(&client);
            return Err(e);
        }
    };
    for s in [&client, &upstream] {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(POLL))?;
    }
    let conn = Arc::new(Conn {
        client,
        upstream,
        done: AtomicBool::new(false),
        reset: plan.reset,
    });
    for dir in [Direction::FromUpstream, Direction::ToUpstream] {
        let conn = Arc::clone(&conn);
        let shared = Arc::clone(shared);
        let limit = plan.limit(dir);
        std::thread::Builder::new()
            .name(format!("tcp-cut-{dir:?}"))
            .spawn(move || pump(&conn, &shared, dir, limit))?;
    }
    Ok(())
}

/// Copy one direction until EOF, an error, a cut or the proxy's stop.
fn pump(conn: &Conn, shared: &Shared, dir: Direction, limit: Option<u64>) {
    let (mut src, mut dst, counter) = match dir {
        Direction::FromUpstream => (&conn.upstream, &conn.client, &shared.from_upstream),
        Direction::ToUpstream => (&conn.client, &conn.upstream, &shared.to_upstream),
    };
    let mut buf = vec![0; BUF];
    let mut sent = 0u64;
    if limit == Some(0) {
        conn.cut(shared);
        return;
    }
    loop {
        if conn.done.load(Ordering::SeqCst) || shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let n = match src.read(&mut buf) {
            Ok(0) => {
                // A half close passes through; the other direction may go on.
                let _ = dst.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => {
                // The peer reset: pass the break on to the other side.
                conn.done.store(true, Ordering::SeqCst);
                let _ = dst.shutdown(Shutdown::Both);
                return;
            }
        };
        let allowed = match limit {
            Some(l) => usize::try_from(l - sent).unwrap_or(usize::MAX).min(n),
            None => n,
        };
        if dst.write_all(&buf[..allowed]).is_err() {
            conn.done.store(true, Ordering::SeqCst);
            let _ = src.shutdown(Shutdown::Both);
            return;
        }
        sent += allowed as u64;
        counter.fetch_add(allowed as u64, Ordering::SeqCst);
        if limit == Some(sent) {
            conn.cut(shared);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server: every connection gets back what it sends.
    fn echo_server() -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&received);
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                let count = Arc::clone(&count);
                std::thread::spawn(move || {
                    let mut buf = [0; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                        count.fetch_add(n as u64, Ordering::SeqCst);
                    }
                });
            }
        });
        (addr, received)
    }

    fn connect(proxy: &TcpCutProxy) -> TcpStream {
        let s = TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }

    /// Send `data` (then half-close) and read back until EOF or an error: what came back, and
    /// the error of the read or else of the write. (After a reset, the kernel reports
    /// ECONNRESET to whichever call comes first; the other sees EOF or EPIPE.)
    fn round_trip(s: &mut TcpStream, data: &[u8]) -> (Vec<u8>, Option<io::Error>) {
        let mut writer = s.try_clone().unwrap();
        let data = data.to_vec();
        let sender = std::thread::spawn(move || {
            writer.write_all(&data)?;
            writer.shutdown(Shutdown::Write)
        });
        let mut back = Vec::new();
        let mut buf = [0; 8192];
        let err = loop {
            match s.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => back.extend_from_slice(&buf[..n]),
                Err(e) => break Some(e),
            }
        };
        let sent = sender.join().unwrap();
        (back, err.or(sent.err()))
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn forwards_everything_without_a_cut() {
        let (echo, _) = echo_server();
        let proxy = TcpCutProxy::start(echo, CutPlan::none()).unwrap();
        let data = pattern(300_000);
        let (back, err) = round_trip(&mut connect(&proxy), &data);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(back, data);
        assert_eq!(proxy.bytes_from_upstream(), 300_000);
        assert_eq!(proxy.bytes_to_upstream(), 300_000);
        assert_eq!(proxy.bytes_forwarded(), 600_000);
        assert_eq!(proxy.cuts(), 0);
        assert_eq!(proxy.connections(), 1);
    }

    #[test]
    fn cuts_after_exactly_n_bytes_from_the_upstream() {
        let (echo, _) = echo_server();
        let proxy = TcpCutProxy::start(echo, CutPlan::from_upstream_after(100_000)).unwrap();
        let data = pattern(300_000);
        let (back, _) = round_trip(&mut connect(&proxy), &data);
        assert_eq!(back.len(), 100_000);
        assert_eq!(back, data[..100_000]);
        assert_eq!(proxy.bytes_from_upstream(), 100_000);
        assert_eq!(proxy.cuts(), 1);
        // Each connection has its own count: a short one passes.
        let (back, err) = round_trip(&mut connect(&proxy), b"ping");
        assert_eq!((back.as_slice(), err.is_none()), (&b"ping"[..], true));
        assert_eq!(proxy.cuts(), 1);
    }

    #[test]
    fn cuts_after_n_bytes_to_the_upstream_with_a_reset_then_refuses() {
        let (echo, received) = echo_server();
        let proxy =
            TcpCutProxy::start(echo, CutPlan::to_upstream_after(50_000).reset().then_refuse()).unwrap();
        let (back, err) = round_trip(&mut connect(&proxy), &pattern(200_000));
        assert!(back.len() <= 50_000, "{}", back.len());
        assert_eq!(back, pattern(back.len()));
        assert_eq!(
            err.map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionReset),
            "a reset, not a clean end"
        );
        assert_eq!(proxy.bytes_to_upstream(), 50_000);
        assert_eq!(proxy.cuts(), 1);
        // The upstream got no more than the budget.
        assert!(received.load(Ordering::SeqCst) <= 50_000);
        // Later connections are dropped at once, without reaching the upstream.
        let mut refused = connect(&proxy);
        let e = refused.read(&mut [0; 16]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(proxy.refused(), 1);
        assert_eq!(proxy.bytes_to_upstream(), 50_000);
        // A new plan serves them again.
        proxy.set_plan(CutPlan::none());
        let (back, err) = round_trip(&mut connect(&proxy), b"hello");
        assert_eq!((back.as_slice(), err.is_none()), (&b"hello"[..], true));
    }
}
