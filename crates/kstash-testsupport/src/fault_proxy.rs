//! A fault-injecting HTTP/1.1 reverse proxy for backend tests: forwards each request unchanged
//! (method, path, query, every header including `Host`, streamed body) to one upstream on loopback
//! and fails the requests a [`FaultPlan`] picks with a [`Fault`].
//!
//! Signed requests (S3 SigV4, Azure SharedKey) keep working through the proxy: the client signs for
//! the proxy's `host:port`, and the upstream receives exactly that `Host` header, the same path
//! bytes and the same header names (even their case).
//!
//! ```no_run
//! use kstash_testsupport::{Fault, FaultPlan, FaultProxy};
//! // In front of e.g. SeaweedFS' S3 endpoint; every third PUT gets a 503.
//! let plan = FaultPlan::every_nth(3, Fault::ServiceUnavailable).only_method("PUT");
//! let proxy = FaultProxy::start("http://127.0.0.1:8333", plan).unwrap();
//! // ... point the backend at proxy.url() and run it ...
//! assert!(proxy.faults_injected() > 0);
//! proxy.set_plan(FaultPlan::none());
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, TRANSFER_ENCODING};
use hyper::http::uri::{Authority, Scheme};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{Error, Result};

/// What the proxy does to a request its [`FaultPlan`] picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Answers `503 Service Unavailable` with an S3-style `SlowDown` XML body, without forwarding.
    /// The request body is read and discarded first, so the client sees the status (not a broken
    /// pipe) and the connection stays usable.
    ServiceUnavailable,
    /// Forwards the request (the upstream applies it), discards the upstream's response and answers
    /// `500 Internal Server Error` with an S3-style `InternalError` XML body.
    InternalErrorAfterForward,
    /// Closes the client connection with a TCP reset before forwarding, without any response.
    ResetConnection,
    /// Forwards, then sends the upstream's status and headers with `Content-Length` of the whole
    /// body (a chunked upstream body is converted) but only the first half of the body, and closes
    /// the connection. A response that has no body (to `HEAD`, `204`, `304`, or empty) cannot be cut
    /// short: the connection is reset instead, without a response.
    TruncateResponse,
}

/// Which requests fail, and how.
///
/// The schedule counts the requests that pass the filters ([`only_method`](Self::only_method),
/// [`only_path_containing`](Self::only_path_containing)); requests filtered out are forwarded and
/// not counted. Without filters every request counts. [`FaultProxy::set_plan`] starts a new count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    schedule: Schedule,
    method: Option<String>,
    path_contains: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schedule {
    Never,
    Always(Fault),
    EveryNth(u64, Fault),
    FirstN(u64, Fault),
}

impl FaultPlan {
    /// Forward everything.
    pub fn none() -> Self {
        Self::with(Schedule::Never)
    }

    /// Every counted request fails (a permanently broken server).
    pub fn always(fault: Fault) -> Self {
        Self::with(Schedule::Always(fault))
    }

    /// The n-th, 2n-th, 3n-th, ... counted request fails (failed requests count too).
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn every_nth(n: u64, fault: Fault) -> Self {
        assert!(n > 0, "FaultPlan::every_nth needs n >= 1");
        Self::with(Schedule::EveryNth(n, fault))
    }

    /// The first `n` counted requests fail, later ones are forwarded.
    pub fn first_n(n: u64, fault: Fault) -> Self {
        Self::with(Schedule::FirstN(n, fault))
    }

    /// Only requests with this method (case-insensitive, e.g. `"PUT"`) are counted and can fail.
    pub fn only_method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    /// Only requests whose path (without the query) contains `part` are counted and can fail.
    pub fn only_path_containing(mut self, part: &str) -> Self {
        self.path_contains = Some(part.to_owned());
        self
    }

    fn with(schedule: Schedule) -> Self {
        Self {
            schedule,
            method: None,
            path_contains: None,
        }
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method
            .as_ref()
            .is_none_or(|m| method.as_str().eq_ignore_ascii_case(m))
            && self
                .path_contains
                .as_ref()
                .is_none_or(|part| path.contains(part.as_str()))
    }
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self::none()
    }
}

/// A plan and how many requests it has counted so far.
#[derive(Debug)]
struct PlanState {
    plan: FaultPlan,
    counted: u64,
}

impl PlanState {
    fn decide(&mut self, method: &Method, path: &str) -> Option<Fault> {
        if !self.plan.matches(method, path) {
            return None;
        }
        self.counted += 1;
        match self.plan.schedule {
            Schedule::Never => None,
            Schedule::Always(fault) => Some(fault),
            Schedule::EveryNth(n, fault) => self.counted.is_multiple_of(n).then_some(fault),
            Schedule::FirstN(n, fault) => (self.counted <= n).then_some(fault),
        }
    }
}

/// A reverse proxy on `127.0.0.1:<free port>` in front of one upstream, injecting faults.
///
/// Runs on its own thread (a single-threaded tokio runtime) until dropped; `Drop` stops it, closes
/// the listening socket and all connections, and waits for the thread. Only plain `http://`
/// upstreams and HTTP/1.x clients are supported.
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    /// Stops the server when the handle is dropped.
    _server: crate::loopback::LoopbackServer,
}

/// State shared by the proxy handle and its connection tasks.
struct Shared {
    scheme: Scheme,
    authority: Authority,
    client: Client<HttpConnector, Incoming>,
    plan: Mutex<PlanState>,
    /// `Basic …` every request must carry, when set.
    basic_auth: Mutex<Option<String>>,
    requests: AtomicU64,
    faults: AtomicU64,
    connections: AtomicU64,
}

impl Shared {
    fn plan(&self) -> MutexGuard<'_, PlanState> {
        // The lock is never held across code that can panic, so poisoning cannot happen.
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FaultProxy {
    /// Starts the proxy in front of `upstream` (`"http://127.0.0.1:PORT"`) with `plan`.
    pub fn start(upstream: &str, plan: FaultPlan) -> Result<FaultProxy> {
        let authority = parse_upstream(upstream)?;
        let bound = crate::loopback::Bound::new("fault proxy")?;
        let addr = bound.addr();

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // Keep the client's Host header; never invent one from the upstream address.
            .set_host(false)
            .http1_preserve_header_case(true)
            .build(connector);
        let shared = Arc::new(Shared {
            scheme: Scheme::HTTP,
            authority,
            client,
            plan: Mutex::new(PlanState { plan, counted: 0 }),
            basic_auth: Mutex::new(None),
            requests: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });

        let server = bound.serve({
            let shared = Arc::clone(&shared);
            move |listener| accept_loop(listener, shared)
        })?;

        Ok(FaultProxy {
            url: format!("http://{addr}"),
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:<port>` of the proxy; clients use this instead of the upstream's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests received so far (forwarded or failed).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests that got a fault so far.
    pub fn faults_injected(&self) -> u64 {
        self.shared.faults.load(Ordering::SeqCst)
    }

    /// Client connections accepted so far (for keep-alive checks).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// From now on, requests without HTTP basic auth for `user`/`password` get `401` with an
    /// Elasticsearch-style `security_exception` body, without forwarding (a secured server in
    /// front of one that has no authentication).
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        *self
            .shared
            .basic_auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(format!("Basic {token}"));
    }

    /// Replaces the plan for the following requests; the new plan counts from zero.
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.shared.plan() = PlanState { plan, counted: 0 };
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("url", &self.url)
            .field("upstream", &self.shared.authority)
            .field("plan", &self.shared.plan().plan)
            .field("requests", &self.requests())
            .field("faults_injected", &self.faults_injected())
            .finish()
    }
}

/// `http://host:port` (optionally with a trailing `/`) → `host:port`.
fn parse_upstream(upstream: &str) -> Result<Authority> {
    let bad = |why: String| {
        Error::Protocol(format!(
            "fault proxy upstream {upstream:?}: {why} (expected http://HOST:PORT)"
        ))
    };
    let uri: Uri = upstream.parse().map_err(|e| bad(format!("{e}")))?;
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(bad("only plain http is supported".into()));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("must not have a path or query".into()));
    }
    uri.authority().cloned().ok_or_else(|| bad("no host:port".into()))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut server = http1::Builder::new();
    server
        .preserve_header_case(true)
        .auto_date_header(false)
        .header_read_timeout(None);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let state = Arc::new(ConnState::default());
        let io = TokioIo::new(ClientConn {
            stream,
            state: Arc::clone(&state),
        });
        let shared = Arc::clone(&shared);
        let service = service_fn(move |req| handle(Arc::clone(&shared), Arc::clone(&state), req));
        let connection = server.serve_connection(io, service);
        tokio::spawn(async move {
            // Errors are client disconnects or injected faults; nothing to report.
            let _ = connection.await;
        });
    }
}

/// Handles one request. An `Err` makes hyper drop the connection without a response.
async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, io::Error> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let wanted = shared
        .basic_auth
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(wanted) = wanted {
        let given = req.headers().get(hyper::header::AUTHORIZATION);
        if given.and_then(|v| v.to_str().ok()) != Some(wanted.as_str()) {
            drain(req.into_body()).await;
            let body = r#"{"error":{"type":"security_exception","reason":"unable to authenticate user for REST request"},"status":401}"#;
            let mut response = Response::new(ProxyBody::Full(Some(Bytes::from(body))));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"security\""),
            );
            return Ok(response);
        }
    }
    let fault = shared.plan().decide(req.method(), req.uri().path());
    if fault.is_some() {
        shared.faults.fetch_add(1, Ordering::SeqCst);
    }
    match fault {
        Some(Fault::ResetConnection) => return Err(conn.reset()),
        Some(Fault::ServiceUnavailable) => {
            drain(req.into_body()).await;
            return Ok(fault_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
                "service-unavailable",
            ));
        }
        _ => {}
    }

    let head_request = req.method() == Method::HEAD;
    let (mut parts, body) = req.into_parts();
    let target = Uri::builder()
        .scheme(shared.scheme.clone())
        .authority(shared.authority.clone())
        .path_and_query(parts.uri.path_and_query().map_or("/", |pq| pq.as_str()))
        .build();
    parts.uri = match target {
        Ok(uri) => uri,
        Err(e) => {
            return Ok(text_response(
                StatusCode::BAD_REQUEST,
                format!("fault proxy: cannot forward {}: {e}", parts.uri),
            ));
        }
    };
    let response = match shared.client.request(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(e) => {
            return Ok(text_response(
                StatusCode::BAD_GATEWAY,
                format!(
                    "fault proxy: upstream http://{}: {}",
                    shared.authority,
                    error_chain(&e)
                ),
            ));
        }
    };

    match fault {
        Some(Fault::InternalErrorAfterForward) => {
            drain(response.into_body()).await;
            Ok(fault_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
                "internal-error-after-forward",
            ))
        }
        Some(Fault::TruncateResponse) => truncate(response, head_request, conn).await,
        _ => Ok(response.map(ProxyBody::Upstream)),
    }
}

/// The upstream's response with `Content-Length` of the whole body but only its first half.
async fn truncate(
    response: Response<Incoming>,
    head_request: bool,
    conn: Arc<ConnState>,
) -> Result<Response<ProxyBody>, io::Error> {
    let (mut parts, body) = response.into_parts();
    let Ok(body) = collect(body).await else {
        return Err(conn.reset());
    };
    let bodyless =
        head_request || parts.status == StatusCode::NO_CONTENT || parts.status == StatusCode::NOT_MODIFIED;
    if bodyless || body.is_empty() {
        return Err(conn.reset());
    }
    parts.headers.remove(TRANSFER_ENCODING);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    Ok(Response::from_parts(
        parts,
        ProxyBody::Truncated {
            head: Some(body.slice(..body.len() / 2)),
            total: body.len() as u64,
            conn,
        },
    ))
}

fn fault_response(status: StatusCode, code: &str, message: &str, fault: &'static str) -> Response<ProxyBody> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message} \
         (injected by kstash FaultProxy)</Message></Error>\n"
    );
    let mut response = Response::new(ProxyBody::Full(Some(Bytes::from(xml))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    headers.insert("x-kstash-fault", HeaderValue::from_static(fault));
    response
}

fn text_response(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::Full(Some(Bytes::from(text))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `error: source: source ...` (hyper's own messages are terse).
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads a body to its end, ignoring its content and errors.
async fn drain<B: Body + Unpin>(mut body: B) {
    while let Some(Ok(_)) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {}
}

/// Reads a body's data to its end.
async fn collect<B: Body<Data = Bytes> + Unpin>(mut body: B) -> Result<Bytes, B::Error> {
    let mut data = Vec::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(chunk) = frame?.into_data() {
            data.extend_from_slice(&chunk);
        }
    }
    Ok(Bytes::from(data))
}

/// Response bodies the proxy sends to its clients.
enum ProxyBody {
    /// The upstream's body, streamed.
    Upstream(Incoming),
    /// A body of our own.
    Full(Option<Bytes>),
    /// Sends `head`, waits until it reached the socket, then fails so hyper closes the connection
    /// short of the announced `total` length.
    Truncated {
        head: Option<Bytes>,
        total: u64,
        conn: Arc<ConnState>,
    },
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ProxyBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ProxyBody::Truncated { head, conn, .. } => {
                if let Some(head) = head.take().filter(|h| !h.is_empty()) {
                    return Poll::Ready(Some(Ok(Frame::data(head))));
                }
                // Failing right away would make hyper drop its unflushed buffer (headers and the
                // half body) with the connection: wait until everything was written.
                if conn.poll_flushed(cx) {
                    let error = io::Error::other("response truncated by FaultProxy");
                    Poll::Ready(Some(Err(error.into())))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream(body) => body.is_end_stream(),
            ProxyBody::Full(data) => data.is_none(),
            ProxyBody::Truncated { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream(body) => body.size_hint(),
            ProxyBody::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            ProxyBody::Truncated { total, .. } => SizeHint::with_exact(*total),
        }
    }
}

/// Per client connection: whether to reset it, and flush tracking for truncated responses.
#[derive(Default)]
struct ConnState {
    reset: AtomicBool,
    flush: Mutex<FlushWatch>,
}

#[derive(Default)]
struct FlushWatch {
    armed: bool,
    flushed: bool,
    waker: Option<Waker>,
}

impl ConnState {
    /// Marks the connection for an abortive close (RST) and returns the error that makes hyper
    /// drop it.
    fn reset(&self) -> io::Error {
        self.reset.store(true, Ordering::SeqCst);
        io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by FaultProxy")
    }

    fn watch(&self) -> MutexGuard<'_, FlushWatch> {
        // Never held across code that can panic.
        self.flush.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True once hyper flushed the connection after the first call (then its write buffer, which
    /// held everything produced before the call, is on the socket).
    fn poll_flushed(&self, cx: &mut Context<'_>) -> bool {
        let mut watch = self.watch();
        if watch.flushed {
            return true;
        }
        watch.armed = true;
        watch.waker = Some(cx.waker().clone());
        false
    }

    /// hyper calls the transport's `poll_flush` only after writing out its whole buffer.
    fn flushed(&self) {
        let mut watch = self.watch();
        if watch.armed && !watch.flushed {
            watch.flushed = true;
            if let Some(waker) = watch.waker.take() {
                waker.wake();
            }
        }
    }
}

/// The client's TCP stream, with hooks for [`ConnState`].
struct ClientConn {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for ClientConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = ready!(Pin::new(&mut this.stream).poll_flush(cx));
        if result.is_ok() {
            this.state.flushed();
        }
        Poll::Ready(result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Drop for ClientConn {
    fn drop(&mut self) {
        if self.state.reset.load(Ordering::SeqCst) {
            // SO_LINGER 0: close() sends RST instead of FIN (and does not block).
            let _ = self.stream.set_zero_linger();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::VecDeque;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener as StdTcpListener;
    use std::net::TcpStream as StdTcpStream;
    use std::sync::mpsc;

    use crate::http;

    /// What the test upstream received.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        target: String,
        host: Option<String>,
        content_length: Option<String>,
        transfer_encoding: Option<String>,
        body: Vec<u8>,
    }

    /// A hyper server that records requests and answers with `?respond=N` pattern bytes or the
    /// echoed request body, chunked with `chunked=1` in the query.
    struct Upstream {
        url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
        _server: crate::loopback::LoopbackServer,
    }

    impl Upstream {
        fn start() -> Upstream {
            let bound = crate::loopback::Bound::new("upstream").unwrap();
            let url = format!("http://{}", bound.addr());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let server = bound
                .serve({
                    let seen = Arc::clone(&seen);
                    move |listener| async move {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                continue;
                            };
                            let seen = Arc::clone(&seen);
                            let service = service_fn(move |req| echo(Arc::clone(&seen), req));
                            tokio::spawn(
                                http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                            );
                        }
                    }
                })
                .unwrap();
            Upstream {
                url,
                seen,
                _server: server,
            }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    async fn echo(
        seen: Arc<Mutex<Vec<Seen>>>,
        req: Request<Incoming>,
    ) -> Result<Response<Chunks>, hyper::Error> {
        let (parts, body) = req.into_parts();
        let body = collect(body).await?;
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        };
        seen.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            target: parts.uri.to_string(),
            host: header("host"),
            content_length: header("content-length"),
            transfer_encoding: header("transfer-encoding"),
            body: body.to_vec(),
        });
        let query = parts.uri.query().unwrap_or("");
        let payload = match query.split('&').find_map(|kv| kv.strip_prefix("respond=")) {
            Some(n) => pattern(n.parse().unwrap()),
            None => body,
        };
        let chunked = query.split('&').any(|kv| kv == "chunked=1");
        let mut response = Response::builder().header("x-upstream", "echo");
        let chunks = if chunked {
            payload.chunks(64 * 1024).map(Bytes::copy_from_slice).collect()
        } else {
            response = response.header("content-length", payload.len());
            VecDeque::from([payload])
        };
        Ok(response.body(Chunks(chunks)).unwrap())
    }

    /// A body of unknown length (chunked unless a content-length header is set).
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Box<dyn StdError + Send + Sync>;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let chunks = &mut self.get_mut().0;
            chunks.retain(|c| !c.is_empty());
            Poll::Ready(chunks.pop_front().map(|c| Ok(Frame::data(c))))
        }
    }

    fn pattern(len: usize) -> Bytes {
        (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
    }

    fn port_of(url: &str) -> u16 {
        url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// A hand-driven HTTP/1.1 client connection.
    struct Raw {
        reader: BufReader<StdTcpStream>,
    }

    #[derive(Debug)]
    struct RawResponse {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        /// False if the connection ended before the whole body arrived.
        complete: bool,
    }

    impl RawResponse {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    impl Raw {
        fn connect(url: &str) -> Raw {
            let stream = StdTcpStream::connect(("127.0.0.1", port_of(url))).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            Raw {
                reader: BufReader::new(stream),
            }
        }

        /// Sends a request with `Content-Length` (if `body` is not empty or the method sends one).
        fn send(&mut self, method: &str, target: &str, host: &str, body: &[u8]) -> io::Result<()> {
            let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
            if !body.is_empty() || method == "PUT" || method == "POST" {
                head.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            head.push_str("\r\n");
            // One write: a small request reaches the proxy whole even if it resets right after the head.
            let mut data = head.into_bytes();
            data.extend_from_slice(body);
            self.reader.get_mut().write_all(&data)
        }

        fn send_chunked(
            &mut self,
            method: &str,
            target: &str,
            host: &str,
            chunks: &[&[u8]],
        ) -> io::Result<()> {
            let mut data =
                format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .into_bytes();
            for chunk in chunks {
                data.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                data.extend_from_slice(chunk);
                data.extend_from_slice(b"\r\n");
            }
            data.extend_from_slice(b"0\r\n\r\n");
            self.reader.get_mut().write_all(&data)
        }

        /// Reads one response; `Err` if the connection ends (or is reset) before the status line.
        fn response(&mut self, head_request: bool) -> io::Result<RawResponse> {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let status = line.split(' ').nth(1).unwrap().parse().unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line)?;
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.to_owned(), value.trim().to_owned()));
            }
            let mut response = RawResponse {
                status,
                headers,
                body: Vec::new(),
                complete: true,
            };
            if head_request {
                return Ok(response);
            }
            if response.header("transfer-encoding") == Some("chunked") {
                response.complete = self.read_chunked(&mut response.body).is_ok();
            } else if let Some(len) = response.header("content-length") {
                let len: u64 = len.parse().unwrap();
                // A reset during the body counts as an incomplete body, like an early EOF.
                let _ = (&mut self.reader).take(len).read_to_end(&mut response.body);
                response.complete = response.body.len() as u64 == len;
            }
            Ok(response)
        }

        fn read_chunked(&mut self, body: &mut Vec<u8>) -> io::Result<()> {
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..])?;
                let mut crlf = [0; 2];
                self.reader.read_exact(&mut crlf)?;
                if size == 0 {
                    return Ok(());
                }
            }
        }
    }

    fn host_of(proxy: &FaultProxy) -> String {
        proxy.url().trim_start_matches("http://").to_owned()
    }

    fn statuses(proxy: &FaultProxy, requests: &[(&str, &str)]) -> Vec<u16> {
        requests
            .iter()
            .map(|(method, path)| {
                let url = format!("{}{path}", proxy.url());
                let body: &[u8] = b"payload";
                let body = (*method == "PUT").then_some(body);
                http::request(method, &url, &[], body).unwrap().status
            })
            .collect()
    }

    #[test]
    fn forwards_a_5mib_body_with_content_length_and_the_host_header() {
        let upstream = Upstream::start();
        let proxy = FaultProxy::start(&upstream.url, FaultPlan::none()).unwrap();
        let body = pattern(5 << 20);
        let url = format!("{}/bucket/data/ab/cdef?partNumber=1&uploadId=xyz", proxy.url());

        let response = http::request("PUT", &url, &[("x-amz-meta-a", "b")], Some(&body)).unwrap();

        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-upstream"), Some("echo"));
        assert!(response.body == body, "echoed body differs");
        let seen = upstream.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "PUT");
        assert_eq!(seen[0].target, "/bucket/data/ab/cdef?partNumber=1&uploadId=xyz");
        assert_eq!(seen[0].host.as_deref(), Some(host_of(&proxy).as_str()));
        assert_eq!(seen[0].content_length.as_deref(), Some("5242880"));
        assert_eq!(seen[0].transfer_encoding, None);
        assert!(seen[0].body == body, "forwarded body differs");
        assert_eq!((proxy.requests(), proxy.faults_injected()), (1, 0));
    }

    #[test]
    fn forwards_chunked_requests_and_chunked_responses() {
        let upstream = Upstream::start();
        let proxy = FaultProxy::start(&upstream.url, FaultPlan::none()).unwrap();
        let big = pattern(3 << 20);
        let chunks: [&[u8]; 4] = [b"a", &[7; 1000], &big, b"seventeen bytes!!"];
        let expected = chunks.concat();
        let mut client = Raw::connect(proxy.url());

        client
            .send_chunked("PUT", "/c?chunked=1", "bucket.example.com:9000", &chunks)
            .unwrap();
        let response = client.response(false).unwrap();

        assert_eq!(response.status, 200);
        assert_eq!(response.header("transfer-encoding"), Some("chunked"));
        assert!(response.complete);
        assert!(response.body == expected, "echoed body differs");
        let seen = upstream.seen();
        assert_eq!(seen[0].host.as_deref(), Some("bucket.example.com:9000"));
        assert_eq!(seen[0].transfer_encoding.as_deref(), Some("chunked"));
        assert_eq!(seen[0].content_length, None);
        assert!(seen[0].body == expected, "forwarded body differs");
    }

    #[test]
    fn keeps_the_request_head_byte_for_byte() {
        let listener = StdTcpListener::bind(("127.0.0.1", 0)).unwrap();
        let upstream_url = format!("http://{}", listener.local_addr().unwrap());
        let (heads, head) = mpsc::channel();
        let upstream = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut data = Vec::new();
            let mut byte = [0];
            while !data.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).unwrap();
                data.push(byte[0]);
            }
            heads.send(String::from_utf8(data).unwrap()).unwrap();
            let response = "HTTP/1.1 200 OK\r\nX-Custom-Case: yes\r\nContent-Length: 2\r\n\r\nok";
            stream.write_all(response.as_bytes()).unwrap();
        });
        let proxy = FaultProxy::start(&upstream_url, FaultPlan::none()).unwrap();
        let mut client = Raw::connect(proxy.url());
        let request = "GET /b/a%2Fb%20c?x=1&y=%2F HTTP/1.1\r\nHost: weird.example:9\r\n\
                       X-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\n\
                       Authorization: AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/s3/aws4_request\r\n\r\n";
        client.reader.get_mut().write_all(request.as_bytes()).unwrap();

        let response = client.response(false).unwrap();
        let head = head.recv().unwrap();
        upstream.join().unwrap();

        assert!(
            head.starts_with("GET /b/a%2Fb%20c?x=1&y=%2F HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nHost: weird.example:9\r\n"), "{head}");
        assert!(
            head.contains("\r\nX-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\nAuthorization: AWS4-HMAC-SHA256 Credential=k/"),
            "{head}"
        );
        assert_eq!(head.matches("\r\nHost:").count(), 1, "{head}");
        assert_eq!(response.status, 200);
        assert!(
            response
                .headers
                .iter()
                .any(|(k, v)| k == "X-Custom-Case" && v == "yes")
        );
        assert_eq!(response.body, b"ok");
    }

    #[test]
    fn serves_many_requests_on_one_keep_alive_connection() {
        let upstream = Upstream::start();
        let proxy = FaultProxy::start(&upstream.url, FaultPlan::none()).unwrap();
        let mut client = Raw::connect(proxy.url());
        let host = host_of(&proxy);

        for i in 0..20_usize {
            if i % 2 == 0 {
                let body = pattern(i * 50_000 + 1);
                client.send("PUT", &format!("/put/{i}"), &host, &body).unwrap();
                let response = client.response(false).unwrap();
                assert_eq!(response.status, 200);
                assert!(response.body == body, "request {i}");
            } else {
                let len = i * 70_001;
                let chunked = if i % 4 == 1 { "&chunked=1" } else { "" };
                client
                    .send("GET", &format!("/get/{i}?respond={len}{chunked}"), &host, &[])
                    .unwrap();
                let response = client.response(false).unwrap();
                assert_eq!(response.status, 200);
                assert!(response.body == pattern(len), "request {i}");
            }
        }
        client.send("HEAD", "/head?respond=10", &host, &[]).unwrap();
        let head = client.response(true).unwrap();
        assert_eq!(head.header("content-length"), Some("10"));
        client.send("GET", "/after-head?respond=3", &host, &[]).unwrap();
        assert_eq!(client.response(false).unwrap().body, [0, 1, 2]);

        assert_eq!(proxy.connections(), 1);
        assert_eq!(proxy.requests(), 22);
        assert_eq!(upstream.seen().len(), 22);
    }

    #[test]
    fn service_unavailable_is_not_forwarded_and_keeps_the_connection() {
        let upstream = Upstream::start();
        let plan = FaultPlan::first_n(1, Fault::ServiceUnavailable);
        let proxy = FaultProxy::start(&upstream.url, plan).unwrap();
        let mut client = Raw::connect(proxy.url());
        let host = host_of(&proxy);

        client.send("PUT", "/data/x", &host, &pattern(100_000)).unwrap();
        let failed = client.response(false).unwrap();
        assert_eq!(failed.status, 503);
        assert!(String::from_utf8_lossy(&failed.body).contains("<Code>SlowDown</Code>"));
        assert_eq!(failed.header("x-kstash-fault"), Some("service-unavailable"));
        assert!(upstream.seen().is_empty());

        client.send("PUT", "/data/x", &host, b"again").unwrap();
        let retried = client.response(false).unwrap();
        assert_eq!(retried.status, 200);
        assert_eq!(retried.body, b"again");
        assert_eq!(upstream.seen().len(), 1);
        assert_eq!(proxy.connections(), 1);
        assert_eq!((proxy.requests(), proxy.faults_injected()), (2, 1));
    }

    #[test]
    fn internal_error_after_forward_reaches_the_upstream() {
        let upstream = Upstream::start();
        let plan = FaultPlan::first_n(1, Fault::InternalErrorAfterForward);
        let proxy = FaultProxy::start(&upstream.url, plan).unwrap();
        let mut client = Raw::connect(proxy.url());
        let host = host_of(&proxy);
        let body = pattern(1 << 20);

        client.send("PUT", "/data/y", &host, &body).unwrap();
        let failed = client.response(false).unwrap();
        assert_eq!(failed.status, 500);
        assert!(String::from_utf8_lossy(&failed.body).contains("<Code>InternalError</Code>"));
        let seen = upstream.seen();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].body == body, "upstream got the whole body");

        client.send("GET", "/data/y?respond=5", &host, &[]).unwrap();
        assert_eq!(client.response(false).unwrap().status, 200);
        assert_eq!((proxy.requests(), proxy.faults_injected()), (2, 1));
    }

    #[test]
    fn reset_connection_drops_the_client_without_a_response() {
        let upstream = Upstream::start();
        let plan = FaultPlan::always(Fault::ResetConnection).only_method("PUT");
        let proxy = FaultProxy::start(&upstream.url, plan).unwrap();
        let host = host_of(&proxy);

        let mut client = Raw::connect(proxy.url());
        // Writing the body may already fail with a broken pipe.
        let _ = client.send("PUT", "/data/z", &host, &pattern(1 << 20));
        assert!(client.response(false).is_err());

        let mut client = Raw::connect(proxy.url());
        client.send("PUT", "/data/small", &host, b"x").unwrap();
        let error = client.response(false).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");

        assert!(http::request("PUT", &format!("{}/p", proxy.url()), &[], Some(b"x")).is_err());
        assert!(upstream.seen().is_empty());
        assert_eq!(http::get(&format!("{}/get", proxy.url())).unwrap().status, 200);
        assert_eq!(proxy.faults_injected(), proxy.requests() - 1);
    }

    #[test]
    fn truncate_response_sends_half_the_body_and_closes() {
        let upstream = Upstream::start();
        let proxy = FaultProxy::start(&upstream.url, FaultPlan::always(Fault::TruncateResponse)).unwrap();
        let host = host_of(&proxy);

        for (target, chunked) in [
            ("/t?respond=100000", false),
            ("/t?respond=100000&chunked=1", true),
            ("/t?respond=9000000", false),
        ] {
            let mut client = Raw::connect(proxy.url());
            client.send("GET", target, &host, &[]).unwrap();
            let response = client.response(false).unwrap();
            let total: usize = target
                .split('=')
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(response.status, 200, "{target}");
            assert_eq!(
                response.header("content-length"),
                Some(total.to_string().as_str())
            );
            assert_eq!(response.header("transfer-encoding"), None, "chunked {chunked}");
            assert!(!response.complete);
            assert_eq!(response.body.len(), total / 2, "{target}");
            assert!(response.body[..] == pattern(total)[..total / 2]);
        }

        assert!(http::get(&format!("{}/t?respond=10", proxy.url())).is_err());

        let mut client = Raw::connect(proxy.url());
        client.send("HEAD", "/t?respond=10", &host, &[]).unwrap();
        assert!(client.response(true).is_err());

        assert_eq!(upstream.seen().len(), 5);
        assert_eq!((proxy.requests(), proxy.faults_injected()), (5, 5));
    }

    #[test]
    fn every_nth_counts_all_requests() {
        let upstream = Upstream::start();
        let plan = FaultPlan::every_nth(3, Fault::ServiceUnavailable);
        let proxy = FaultProxy::start(&upstream.url, plan).unwrap();

        let got = statuses(&proxy, &[("GET", "/a"), ("PUT", "/b"), ("GET", "/c")].repeat(3));

        assert_eq!(got, [200, 200, 503, 200, 200, 503, 200, 200, 503]);
        assert_eq!((proxy.requests(), proxy.faults_injected()), (9, 3));
        assert_eq!(upstream.seen().len(), 6);
    }

    #[test]
    fn first_n_fails_only_the_first_requests() {
        let upstream = Upstream::start();
        let plan = FaultPlan::first_n(2, Fault::InternalErrorAfterForward);
        let proxy = FaultProxy::start(&upstream.url, plan).unwrap();

        let got = statuses(&proxy, &[("GET", "/a"); 4]);

        assert_eq!(got, [500, 500, 200, 200]);
        assert_eq!((proxy.requests(), proxy.faults_injected()), (4, 2));
        assert_eq!(upstream.seen().len(), 4);
    }

    #[test]
    fn filters_select_and_count_only_matching_requests() {
        let upstream = Upstream::start();
        let plan = FaultPlan::every_nth(2, Fault::ServiceUnavailable)
            .only_method("put")
            .only_path_containing("/data/");
        let proxy = FaultProxy::start(&upstream.url, plan).unwrap();

        let got = statuses(
            &proxy,
            &[
                ("PUT", "/r/data/1"),
                ("GET", "/r/data/1"),
                ("PUT", "/r/index/1"),
                ("PUT", "/r/keys?x=/data/"),
                ("PUT", "/r/data/2"),
                ("PUT", "/r/data/3"),
                ("PUT", "/r/data/4"),
            ],
        );

        assert_eq!(got, [200, 200, 200, 200, 503, 200, 503]);
        assert_eq!((proxy.requests(), proxy.faults_injected()), (7, 2));
    }

    #[test]
    fn set_plan_changes_behaviour_at_runtime() {
        let upstream = Upstream::start();
        let proxy = FaultProxy::start(&upstream.url, FaultPlan::default()).unwrap();
        let get = [("GET", "/x")];

        assert_eq!(statuses(&proxy, &get), [200]);
        proxy.set_plan(FaultPlan::always(Fault::ServiceUnavailable));
        assert_eq!(statuses(&proxy, &get.repeat(2)), [503, 503]);
        proxy.set_plan(FaultPlan::none());
        assert_eq!(statuses(&proxy, &get), [200]);
        proxy.set_plan(FaultPlan::every_nth(2, Fault::ServiceUnavailable));
        assert_eq!(statuses(&proxy, &get.repeat(3)), [200, 503, 200]);
        assert_eq!((proxy.requests(), proxy.faults_injected()), (7, 3));
    }

    #[test]
    fn passes_expect_100_continue_through() {
        let upstream = Upstream::start();
        let proxy = FaultProxy::start(&upstream.url, FaultPlan::none()).unwrap();
        let mut client = Raw::connect(proxy.url());
        let body = pattern(200_000);
        let head = format!(
            "PUT /e HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            host_of(&proxy),
            body.len()
        );

        client.reader.get_mut().write_all(head.as_bytes()).unwrap();
        assert_eq!(client.response(true).unwrap().status, 100);
        client.reader.get_mut().write_all(&body).unwrap();
        let response = client.response(false).unwrap();

        assert_eq!(response.status, 200);
        assert!(response.body == body, "echoed body differs");
        assert!(upstream.seen()[0].body == body, "forwarded body differs");
    }

    #[test]
    fn counts_parallel_requests_exactly() {
        let upstream = Upstream::start();
        let plan = FaultPlan::every_nth(4, Fault::ServiceUnavailable);
        let proxy = FaultProxy::start(&upstream.url, plan).unwrap();

        let unavailable: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| statuses(&proxy, &[("GET", "/p"); 25])))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap().iter().filter(|&&s| s == 503).count())
                .sum()
        });

        assert_eq!(unavailable, 50);
        assert_eq!((proxy.requests(), proxy.faults_injected()), (200, 50));
        assert_eq!(upstream.seen().len(), 150);
    }

    #[test]
    fn starts_and_drops_inside_an_async_runtime() {
        let upstream = Upstream::start();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let proxy = FaultProxy::start(&upstream.url, FaultPlan::none()).unwrap();
            let response = http::get(&format!("{}/x?respond=3", proxy.url())).unwrap();
            assert_eq!(response.body, [0, 1, 2]);
            drop(proxy);
        });
    }

    #[test]
    fn broken_upstream_gives_bad_gateway() {
        // An upstream that hangs up on every connection. (A "free" port is no dead upstream: test
        // processes running in parallel may bind it meanwhile.)
        let listener = StdTcpListener::bind(("127.0.0.1", 0)).unwrap();
        let broken = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                drop(stream);
            }
        });
        let proxy = FaultProxy::start(&broken, FaultPlan::none()).unwrap();

        let response = http::get(&format!("{}/x", proxy.url())).unwrap();

        assert_eq!(response.status, 502);
        assert!(response.text().contains("upstream"), "{}", response.text());
        assert_eq!((proxy.requests(), proxy.faults_injected()), (1, 0));
    }

    #[test]
    fn drop_closes_the_listener_and_connections() {
        let upstream = Upstream::start();
        let proxy = FaultProxy::start(&upstream.url, FaultPlan::none()).unwrap();
        let port = port_of(proxy.url());
        let mut client = Raw::connect(proxy.url());
        client.send("GET", "/x?respond=1", &host_of(&proxy), &[]).unwrap();
        assert_eq!(client.response(false).unwrap().status, 200);

        drop(proxy);

        assert!(StdTcpStream::connect(("127.0.0.1", port)).is_err());
        let mut byte = [0];
        assert!(matches!(client.reader.read(&mut byte), Ok(0) | Err(_)));
    }

    #[test]
    fn rejects_upstreams_that_are_not_plain_http_host_port() {
        for bad in [
            "https://127.0.0.1:1",
            "127.0.0.1:1",
            "http://127.0.0.1:1/prefix",
            "http://127.0.0.1:1/?q",
            "not a url",
        ] {
            assert!(FaultProxy::start(bad, FaultPlan::none()).is_err(), "{bad}");
        }
        assert!(FaultProxy::start("http://127.0.0.1:1/", FaultPlan::none()).is_ok());
    }
}
