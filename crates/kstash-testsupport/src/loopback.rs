//! A test server's plumbing: a listener on a free loopback port, served on its own thread by a
//! current-thread tokio runtime, stopped (listener and every connection closed) when dropped.

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::error::{IoContext, Result};

/// A bound listener, not yet served (its address is known, so the server's state can name it).
pub(crate) struct Bound {
    what: String,
    addr: SocketAddr,
    listener: TcpListener,
    runtime: tokio::runtime::Runtime,
}

/// A running server thread; dropping it stops the server.
pub(crate) struct LoopbackServer {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Bound {
    /// Bind `127.0.0.1:0`; `what` names the server in errors and its thread.
    pub(crate) fn new(what: &str) -> Result<Bound> {
        let listener =
            StdTcpListener::bind(("127.0.0.1", 0)).context(|| format!("{what}: binding 127.0.0.1:0"))?;
        let addr = listener.local_addr().context(|| format!("{what}: local_addr"))?;
        listener
            .set_nonblocking(true)
            .context(|| format!("{what}: non-blocking listener"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context(|| format!("{what}: building the tokio runtime"))?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener).context(|| format!("{what}: registering the listener"))?
        };
        Ok(Bound {
            what: what.to_string(),
            addr,
            listener,
            runtime,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Run `serve(listener)` on the server's thread until the returned handle is dropped.
    pub(crate) fn serve<F, Fut>(self, serve: F) -> Result<LoopbackServer>
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Bound {
            what,
            addr,
            listener,
            runtime,
        } = self;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("{}-{}", what.replace(' ', "-"), addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(serve(listener));
                    // Also returns when the handle is gone (sender dropped).
                    let _ = stopped.await;
                });
                // Dropping the runtime drops every task: the listener and all connections close.
                drop(runtime);
            })
            .context(|| format!("{what}: spawning its thread"))?;
        Ok(LoopbackServer {
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
