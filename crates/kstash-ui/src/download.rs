//! Downloads out of a snapshot, streamed: a file is written blob by blob into the response as the
//! engine decrypts it, a directory as a tar archive built on the fly; memory stays bounded by a
//! few blobs whatever the size. The engine is synchronous, so a blocking thread writes into a
//! bounded channel that the response body reads.

use std::io::{Read, Write};

use axum::body::{Body, Bytes};
use kstash_repo::tree::{Node, NodeType};
use kstash_repo::{BlobType, Id, Repository};
use tokio::sync::mpsc;

/// Chunks in flight between the writer thread and the response.
const IN_FLIGHT: usize = 8;
/// Bytes buffered before a chunk is sent.
const CHUNK: usize = 256 * 1024;

/// A `Write` that sends what it gets to a response body; fails once the client went away.
pub struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Make the response fail (the client sees a cut-off transfer, not a complete file).
    pub fn fail(mut self, message: String) {
        let _ = self.send();
        let _ = self.tx.blocking_send(Err(std::io::Error::other(message)));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

/// A response body fed by a [`ChannelWriter`].
pub fn channel_body() -> (ChannelWriter, Body) {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let writer = ChannelWriter {
        tx,
        buf: Vec::with_capacity(CHUNK),
    };
    (
        writer,
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
}

/// A file node's content as a `Read`, one blob at a time (for the tar builder, which pulls).
struct NodeReader<'r> {
    repo: &'r Repository,
    ids: std::vec::IntoIter<Id>,
    blob: Vec<u8>,
    pos: usize,
}

impl Read for NodeReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.blob.len() {
            let Some(id) = self.ids.next() else { return Ok(0) };
            self.blob = self
                .repo
                .load_blob(BlobType::Data, &id)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.pos = 0;
        }
        let n = out.len().min(self.blob.len() - self.pos);
        out[..n].copy_from_slice(&self.blob[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn mtime(node: &Node) -> u64 {
    node.mtime.timestamp.as_second().max(0) as u64
}

/// Write the tree under `node` (a directory) as a tar archive rooted at `prefix`.
pub fn write_tar<W: Write>(repo: &Repository, node: &Node, prefix: &str, out: W) -> Result<W, String> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    add_dir(repo, &mut tar, node, prefix)?;
    tar.into_inner().map_err(|e| e.to_string())
}

fn header(node: &Node, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(node.mode & 0o7777);
    h.set_mtime(mtime(node));
    h
}

fn add_dir<W: Write>(
    repo: &Repository,
    tar: &mut tar::Builder<W>,
    dir: &Node,
    path: &str,
) -> Result<(), String> {
    let mut h = header(dir, tar::EntryType::Directory, 0);
    if dir.mode & 0o777 == 0 {
        h.set_mode(0o755);
    }
    tar.append_data(&mut h, format!("{path}/"), std::io::empty())
        .map_err(|e| e.to_string())?;
    let Some(sub) = dir.subtree else { return Ok(()) };
    let tree = repo.load_tree(&sub).map_err(|e| e.to_string())?;
    for child in &tree.nodes {
        let child_path = format!("{path}/{}", child.name);
        match child.node_type {
            NodeType::Dir => add_dir(repo, tar, child, &child_path)?,
            NodeType::File => {
                let mut h = header(child, tar::EntryType::Regular, child.size);
                let reader = NodeReader {
                    repo,
                    ids: child.content.clone().unwrap_or_default().into_iter(),
                    blob: Vec::new(),
                    pos: 0,
                };
                tar.append_data(&mut h, &child_path, reader)
                    .map_err(|e| format!("{child_path}: {e}"))?;
            }
            NodeType::Symlink => {
                let mut h = header(child, tar::EntryType::Symlink, 0);
                tar.append_link(&mut h, &child_path, &child.linktarget)
                    .map_err(|e| format!("{child_path}: {e}"))?;
            }
            // Devices, fifos and sockets carry no data worth downloading.
            _ => {}
        }
    }
    Ok(())
}
