//! In-process ends of a stream for native drivers (Elasticsearch, ZooKeeper, Redis): the
//! driver's export runs on a thread and writes into a bounded channel the engine reads as the
//! backup stream ([`ThreadSource`]); on restore the engine writes into a channel whose other end
//! the driver's import reads on a thread ([`ThreadSink`]). The thread's result decides success,
//! just as a dump tool's exit status does for [`crate::tool`].

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::error::{ExecError, Result};
use crate::stream::{Sink, Source};

/// Bytes per message on the channel.
const CHUNK: usize = 1 << 20;
/// Messages in flight: bounds the memory between the driver and the engine to a few MiB.
const DEPTH: usize = 4;

/// The writing half handed to an export: buffers into [`CHUNK`]-sized messages.
pub(crate) struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the backup stopped reading the stream"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The reading half handed to an import.
pub(crate) struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn thread_error(tool: &str, context: &str, message: String) -> ExecError {
    ExecError::Tool {
        tool: tool.to_string(),
        message: format!("{tool} {context}: {message}"),
    }
}

/// A backup stream produced by a function running on its own thread.
pub(crate) struct ThreadSource {
    tool: String,
    context: String,
    rx: Option<ChannelReader>,
    thread: Option<JoinHandle<Result<()>>>,
    bytes: u64,
    outcome: Option<std::result::Result<(), String>>,
}

impl ThreadSource {
    /// Run `export` on a thread named after `tool`; what it writes is the stream. Its error
    /// (or a panic) fails the stream; `context` is added to messages.
    pub fn spawn<F>(tool: &str, context: &str, export: F) -> Result<ThreadSource>
    where
        F: FnOnce(&mut ChannelWriter) -> Result<()> + Send + 'static,
    {
        let (tx, rx) = sync_channel(DEPTH);
        let span = tracing::Span::current();
        let thread = std::thread::Builder::new()
            .name(format!("kstash-{tool}"))
            .spawn(move || {
                let _entered = span.enter();
                let mut w = ChannelWriter {
                    tx,
                    buf: Vec::with_capacity(CHUNK),
                };
                export(&mut w)?;
                w.flush().map_err(|e| ExecError::Tool {
                    tool: "stream".into(),
                    message: e.to_string(),
                })
            })
            .map_err(|e| thread_error(tool, context, format!("cannot start a thread: {e}")))?;
        Ok(ThreadSource {
            tool: tool.to_string(),
            context: context.to_string(),
            rx: Some(ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
            }),
            thread: Some(thread),
            bytes: 0,
            outcome: None,
        })
    }

    fn join(&mut self) -> std::result::Result<(), String> {
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(strip_tool(&self.tool, e)),
            Some(Err(_)) => Err("the export panicked".to_string()),
        }
    }

    /// The stream ended: join the thread and judge it.
    fn end(&mut self) -> std::result::Result<(), String> {
        if let Some(o) = &self.outcome {
            return o.clone();
        }
        self.rx = None;
        let outcome = self.join().and_then(|()| {
            if self.bytes == 0 {
                Err("produced no output".to_string())
            } else {
                Ok(())
            }
        });
        self.outcome = Some(outcome.clone());
        outcome
    }
}

/// The message of a driver error, without repeating the tool's name when it already leads.
fn strip_tool(tool: &str, e: ExecError) -> String {
    match e {
        ExecError::Tool { tool: t, message } if t == tool => message
            .strip_prefix(&format!("{tool} "))
            .map(str::to_string)
            .unwrap_or(message),
        other => other.to_string(),
    }
}

impl Read for ThreadSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.rx.as_mut() {
            Some(rx) => rx.read(buf)?,
            None => 0,
        };
        if n > 0 {
            self.bytes += n as u64;
            return Ok(n);
        }
        let context = self.context.clone();
        let tool = self.tool.clone();
        self.end()
            .map(|()| 0)
            .map_err(|m| io::Error::other(format!("{tool} {context}: {m}")))
    }
}

impl Source for ThreadSource {
    fn finish(mut self: Box<Self>) -> Result<u64> {
        if self.outcome.is_none() && self.rx.is_some() {
            // Not read to its end: every repository failed and their errors say why. Closing
            // the channel makes the export's next write fail, which ends its thread.
            self.rx = None;
            let _ = self.join();
            self.outcome = Some(Ok(()));
            return Ok(self.bytes);
        }
        let (tool, context) = (self.tool.clone(), self.context.clone());
        self.end()
            .map(|()| self.bytes)
            .map_err(|m| thread_error(&tool, &context, m))
    }
}

impl Drop for ThreadSource {
    fn drop(&mut self) {
        self.rx = None;
        // A detached export ends at its next write; joining here could block on a slow server.
    }
}

/// A restore stream consumed by a function running on its own thread.
pub(crate) struct ThreadSink {
    tool: String,
    context: String,
    tx: Option<SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
    thread: Option<JoinHandle<Result<()>>>,
    bytes: u64,
}

impl ThreadSink {
    /// Run `import` on a thread named after `tool`; it reads the restored stream to its end.
    pub fn spawn<F>(tool: &str, context: &str, import: F) -> Result<ThreadSink>
    where
        F: FnOnce(&mut ChannelReader) -> Result<()> + Send + 'static,
    {
        let (tx, rx) = sync_channel(DEPTH);
        let span = tracing::Span::current();
        let thread = std::thread::Builder::new()
            .name(format!("kstash-{tool}"))
            .spawn(move || {
                let _entered = span.enter();
                let mut r = ChannelReader {
                    rx,
                    chunk: Vec::new(),
                    pos: 0,
                };
                import(&mut r)
            })
            .map_err(|e| thread_error(tool, context, format!("cannot start a thread: {e}")))?;
        Ok(ThreadSink {
            tool: tool.to_string(),
            context: context.to_string(),
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK),
            thread: Some(thread),
            bytes: 0,
        })
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "the restore input is closed"))?;
        tx.send(chunk).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("{} stopped reading the restore stream", self.tool),
            )
        })
    }
}

impl Write for ThreadSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.bytes += data.len() as u64;
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Sink for ThreadSink {
    fn finish(mut self: Box<Self>) -> Result<u64> {
        let sent = self.send();
        self.tx = None;
        let joined = match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(strip_tool(&self.tool, e)),
            Some(Err(_)) => Err("the import panicked".to_string()),
        };
        // The import's own failure explains a broken channel, so it comes first.
        joined.map_err(|m| thread_error(&self.tool, &self.context, m))?;
        sent.map_err(|e| {
            thread_error(
                &self.tool,
                &self.context,
                format!("writing its input failed: {e}"),
            )
        })?;
        Ok(self.bytes)
    }
}

impl Drop for ThreadSink {
    fn drop(&mut self) {
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool_error(m: &str) -> ExecError {
        ExecError::Tool {
            tool: "es".into(),
            message: m.into(),
        }
    }

    #[test]
    fn a_source_streams_what_its_thread_writes() {
        let src = ThreadSource::spawn("es", "against x", |w| {
            for i in 0..300_000u32 {
                writeln!(w, "{i}").map_err(|e| tool_error(&e.to_string()))?;
            }
            Ok(())
        })
        .unwrap();
        let mut src: Box<dyn Source> = Box::new(src);
        let mut out = String::new();
        src.read_to_string(&mut out).unwrap();
        assert_eq!(out.lines().count(), 300_000);
        assert_eq!(src.finish().unwrap(), out.len() as u64);
    }

    #[test]
    fn a_failing_export_fails_the_stream_with_its_message() {
        let src = ThreadSource::spawn("es", "against AppBinding demo/es", |w| {
            w.write_all(b"partial\n").unwrap();
            Err(tool_error("es search failed: 401 Unauthorized"))
        })
        .unwrap();
        let mut src: Box<dyn Source> = Box::new(src);
        let e = src.read_to_end(&mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("401 Unauthorized") && e.contains("demo/es"), "{e}");
        let e = src.finish().unwrap_err().to_string();
        assert!(e.contains("es against AppBinding demo/es: search failed"), "{e}");

        let src = ThreadSource::spawn("es", "ctx", |_| Ok(())).unwrap();
        let mut src: Box<dyn Source> = Box::new(src);
        let e = src.read_to_end(&mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("produced no output"), "{e}");
    }

    #[test]
    fn a_sink_reports_the_imports_failure_before_the_broken_channel() {
        let sink = ThreadSink::spawn("zk", "against x", |r| {
            let mut first = [0u8; 4];
            r.read_exact(&mut first).unwrap();
            Err(ExecError::Tool {
                tool: "zk".into(),
                message: "node /a exists".into(),
            })
        })
        .unwrap();
        let mut sink: Box<dyn Sink> = Box::new(sink);
        let big = vec![b'x'; 3 * CHUNK];
        let mut failed = false;
        for _ in 0..(2 * DEPTH) {
            if sink.write_all(&big).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
        let e = sink.finish().unwrap_err().to_string();
        assert!(e.contains("node /a exists"), "{e}");

        let sink = ThreadSink::spawn("zk", "x", |r| {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            assert_eq!(s, "hello world");
            Ok(())
        })
        .unwrap();
        let mut sink: Box<dyn Sink> = Box::new(sink);
        sink.write_all(b"hello ").unwrap();
        sink.write_all(b"world").unwrap();
        assert_eq!(sink.finish().unwrap(), 11);
    }
}
