//! Redis (Debian `redis-server` 7.0) without persistence, and a minimal RESP client over TcpStream.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::error::{Error, IoContext, Result};
use crate::process::{ServerProcess, Stop, retry_on_port_clash, short, temp_dir};
use crate::tools::system_tool;

/// A Redis server on 127.0.0.1 (no password, `save ""`, `appendonly no`).
pub struct Redis {
    pub host: String,
    pub port: u16,
    process: ServerProcess,
    dir: TempDir,
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Integer(i64),
    /// `None` is the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None` is the null array.
    Array(Option<Vec<Resp>>),
}

impl Redis {
    /// Starts `redis-server` in the foreground and returns when `PING` answers `PONG`.
    pub fn start() -> Result<Self> {
        retry_on_port_clash(Self::try_start)
    }

    fn try_start() -> Result<Self> {
        let dir = temp_dir("redis")?;
        let port = crate::ports::free_port()?;
        let mut cmd = Command::new(system_tool("redis-server")?);
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--daemonize", "no", "--dir"])
        .arg(dir.path());
        let mut process = ServerProcess::spawn("redis", cmd, &dir.path().join("redis.log"), Stop::Kill)?;
        process.wait_ready(crate::READY_TIMEOUT, || match command_at(port, &["PING"]) {
            Ok(Resp::Simple(s)) if s == "PONG" => Ok(()),
            Ok(other) => Err(format!("PING returned {other:?}")),
            Err(e) => Err(short(e)),
        })?;
        Ok(Self {
            host: "127.0.0.1".into(),
            port,
            process,
            dir,
        })
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}:{}", self.host, self.port)
    }

    /// Sends one command on a new connection and reads one reply, e.g. `["SET", "k", "v"]`.
    pub fn command(&self, args: &[&str]) -> Result<Resp> {
        command_at(self.port, args)
    }

    /// The server log.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The instance's temp dir (the server's `dir`, where `dump.rdb` would go).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn command_at(port: u16, args: &[&str]) -> Result<Resp> {
    let io = |what: &str| format!("redis 127.0.0.1:{port}: {what}");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context(|| io("connect"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .context(|| io("set timeout"))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request).context(|| io("write"))?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(reader: &mut impl BufRead) -> Result<Resp> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .context(|| "redis: read reply".into())?;
    let line = line
        .strip_suffix("\r\n")
        .ok_or_else(|| Error::Protocol(format!("redis: bad line {line:?}")))?;
    let (kind, rest) = line.split_at(1.min(line.len()));
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| Error::Protocol(format!("redis: bad number {rest:?}")))
    };
    Ok(match kind {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Integer(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Resp::Bulk(None),
            Ok(len) => {
                let mut buf = vec![0; len + 2];
                reader
                    .read_exact(&mut buf)
                    .context(|| "redis: read bulk".into())?;
                buf.truncate(len);
                Resp::Bulk(Some(buf))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Resp::Array(None),
            Ok(n) => Resp::Array(Some((0..n).map(|_| read_reply(reader)).collect::<Result<_>>()?)),
        },
        _ => return Err(Error::Protocol(format!("redis: unknown reply {line:?}"))),
    })
}
