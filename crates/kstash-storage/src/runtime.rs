//! The bridge from the engine's threads to async clients: one shared tokio runtime, and the TLS
//! crypto provider installed once before any client is built.

use std::future::Future;
use std::sync::OnceLock;

/// Worker threads of the shared runtime. The engine's own threads do the CPU work (chunking,
/// compression, encryption); these only drive HTTP connections.
const IO_THREADS: usize = 2;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .thread_name("kstash-storage-io")
            .enable_all()
            .build()
            // Failing to start two threads at startup leaves nothing sensible to do.
            .expect("cannot start the storage I/O runtime")
    })
}

/// Install rustls' ring provider as the process default (reqwest is built without one, so the
/// slower-to-build aws-lc-rs is not compiled). Idempotent.
pub(crate) fn install_tls_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Err means another provider was installed first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Run `fut` on the shared runtime and wait for it on the calling thread. Works from any thread,
/// including one of another runtime (it then blocks that thread, so async callers should use
/// `spawn_blocking` around engine calls).
pub(crate) fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    // The task only drops the sender after sending, unless it panicked.
    rx.recv().expect("a storage I/O task panicked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_runs_on_the_shared_runtime_from_plain_and_runtime_threads() {
        assert_eq!(block_on(async { 1 + 1 }), 2);
        // From inside another runtime's worker (the controller's situation) it must not panic.
        let other = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let v = other.block_on(async {
            block_on(async {
                tokio::task::yield_now().await;
                7
            })
        });
        assert_eq!(v, 7);
    }
}
