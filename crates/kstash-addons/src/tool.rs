//! External tools as the two ends of a stream: a producer (`pg_dumpall`) whose stdout is read
//! as the backup stream, and a consumer (`psql`) whose stdin is fed the restored stream. The
//! tool's exit status, stderr (its last few KiB) and byte count decide success.

use std::io::{self, Read, Write};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

use crate::error::{ExecError, Result};

/// Bytes of stderr kept for messages.
const STDERR_TAIL: usize = 4096;

/// Spawn `cmd` with its stdout and stderr piped; `tool` names it in messages.
fn spawn(cmd: &mut Command, tool: &str, stdin: Stdio, stdout: Stdio) -> Result<(Child, JoinHandle<String>)> {
    let mut child = cmd
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ExecError::Tool {
            tool: tool.to_string(),
            message: format!("cannot start {}: {e}", cmd.get_program().to_string_lossy()),
        })?;
    let stderr = child.stderr.take();
    let reader = std::thread::Builder::new()
        .name(format!("kstash-{tool}-stderr"))
        .spawn(move || stderr.map(stderr_tail).unwrap_or_default())
        .map_err(|e| ExecError::Tool {
            tool: tool.to_string(),
            message: format!("cannot start a thread: {e}"),
        })?;
    Ok((child, reader))
}

/// Read stderr to its end, logging each line at debug level, and keep the last lines.
fn stderr_tail(mut stderr: ChildStderr) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tracing::debug!(stderr = %String::from_utf8_lossy(&buf[..n]).trim_end(), "tool output");
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
        }
    }
    let start = tail.len().saturating_sub(STDERR_TAIL);
    String::from_utf8_lossy(&tail[start..]).trim().to_string()
}

/// The message of a tool that ended with `status`.
fn failure(status: ExitStatus, stderr: &str) -> String {
    let how = match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => format!("was killed ({status})"),
    };
    if stderr.is_empty() {
        format!("{how} (no error output)")
    } else {
        format!("{how}: {stderr}")
    }
}

/// Run `cmd` to its end with `input` on its stdin; its stdout as text, or its failure (status and
/// stderr) as [`ExecError::Tool`] prefixed by `tool context`. For short exchanges only (a query
/// and its answer): the input is written before the output is read.
pub(crate) fn run_captured(mut cmd: Command, tool: &str, context: &str, input: &[u8]) -> Result<String> {
    let fail = |message: String| ExecError::Tool {
        tool: tool.to_string(),
        message: format!("{tool} {context}: {message}"),
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot start {}: {e}",
                cmd.get_program().to_string_lossy()
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A tool that stops reading early says why on stderr; its status decides below.
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("cannot wait for it: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        return Err(fail(failure(out.status, &stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running producer; read it to its end, then call [`Producer::finish`].
pub(crate) struct Producer {
    tool: String,
    context: String,
    child: Child,
    stdout: Option<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
    bytes: u64,
    /// Set once the stream ended: Ok, or the failure message.
    outcome: Option<std::result::Result<(), String>>,
}

impl Producer {
    /// Start `cmd`; `context` is added to failure messages (`against AppBinding demo/pg`).
    pub fn spawn(mut cmd: Command, tool: &str, context: &str) -> Result<Producer> {
        let (mut child, stderr) = spawn(&mut cmd, tool, Stdio::null(), Stdio::piped())?;
        let stdout = child.stdout.take();
        Ok(Producer {
            tool: tool.to_string(),
            context: context.to_string(),
            child,
            stdout,
            stderr: Some(stderr),
            bytes: 0,
            outcome: None,
        })
    }

    fn message(&self, what: &str) -> String {
        format!("{} {}: {what}", self.tool, self.context)
    }

    /// The stream ended: wait for the tool and judge it.
    fn end(&mut self) -> std::result::Result<(), String> {
        if let Some(o) = &self.outcome {
            return o.clone();
        }
        self.stdout = None;
        let status = self.child.wait();
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let outcome = match status {
            Err(e) => Err(self.message(&format!("cannot wait for it: {e}"))),
            Ok(s) if !s.success() => Err(self.message(&failure(s, &stderr))),
            Ok(_) if self.bytes == 0 => Err(self.message(&format!(
                "produced no output{}",
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                }
            ))),
            Ok(_) => Ok(()),
        };
        self.outcome = Some(outcome.clone());
        outcome
    }

    /// After the stream was consumed: the bytes produced, or the tool's failure. A producer
    /// whose stream was not read to its end (every repository failed) is killed, and that is
    /// not its failure: the repositories' errors say what went wrong.
    pub fn finish(mut self) -> Result<u64> {
        if self.outcome.is_none() && self.stdout.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.outcome = Some(Ok(()));
            return Ok(self.bytes);
        }
        let tool = self.tool.clone();
        self.end()
            .map(|()| self.bytes)
            .map_err(|message| ExecError::Tool { tool, message })
    }
}

impl Read for Producer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(out) = self.stdout.as_mut() else {
            return match self.end() {
                Ok(()) => Ok(0),
                Err(m) => Err(io::Error::other(m)),
            };
        };
        let n = out.read(buf)?;
        if n > 0 {
            self.bytes += n as u64;
            return Ok(n);
        }
        match self.end() {
            Ok(()) => Ok(0),
            Err(m) => Err(io::Error::other(m)),
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.outcome.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Decides, per complete line that starts with one of the prefixes it was built for, whether
/// the line is dropped from the stream.
pub(crate) type LineDrop = Box<dyn Fn(&[u8]) -> bool + Send>;

/// A running consumer; write the stream into it, then call [`Consumer::finish`]. Lines that
/// start with one of `prefixes` are held until complete and dropped when `drop_line` says so;
/// every other byte passes straight through.
pub(crate) struct Consumer {
    tool: String,
    context: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<String>>,
    prefixes: Vec<Vec<u8>>,
    drop_line: Option<LineDrop>,
    /// The start of the current line while it may still match a prefix.
    held: Vec<u8>,
    /// Whether the current line is being passed through (decided not to match).
    passing: bool,
    bytes: u64,
    dropped: u64,
}

impl Consumer {
    /// Start `cmd`, its stdout discarded.
    pub fn spawn(
        mut cmd: Command,
        tool: &str,
        context: &str,
        prefixes: Vec<Vec<u8>>,
        drop_line: Option<LineDrop>,
    ) -> Result<Consumer> {
        let (mut child, stderr) = spawn(&mut cmd, tool, Stdio::piped(), Stdio::null())?;
        let stdin = child.stdin.take();
        Ok(Consumer {
            tool: tool.to_string(),
            context: context.to_string(),
            child,
            stdin,
            stderr: Some(stderr),
            prefixes,
            drop_line,
            held: Vec::new(),
            passing: false,
            bytes: 0,
            dropped: 0,
        })
    }

    fn pipe(&mut self) -> io::Result<&mut ChildStdin> {
        self.stdin
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "the consumer's input is closed"))
    }

    fn emit(&mut self, data: &[u8]) -> io::Result<()> {
        self.bytes += data.len() as u64;
        self.pipe()?.write_all(data)
    }

    /// Whether `held` can still become one of the prefixes (or already is one).
    fn may_match(&self) -> bool {
        self.prefixes.iter().any(|p| {
            let n = p.len().min(self.held.len());
            p[..n] == self.held[..n]
        })
    }

    fn flush_held(&mut self) -> io::Result<()> {
        let held = std::mem::take(&mut self.held);
        self.emit(&held)
    }

    /// Close the input, wait for the tool, and judge it. Returns the bytes fed to it.
    pub fn finish(mut self) -> Result<u64> {
        let mut result = Ok(());
        if !self.held.is_empty() {
            let line = std::mem::take(&mut self.held);
            if !self.drop_line.as_ref().is_some_and(|d| d(&line)) {
                result = self.emit(&line);
            }
        }
        if result.is_ok() {
            result = self.pipe().and_then(|p| p.flush());
        }
        self.stdin = None;
        let status = self.child.wait();
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let tool = self.tool.clone();
        let fail = |m: String| ExecError::Tool {
            tool: tool.clone(),
            message: format!("{} {}: {m}", tool, self.context),
        };
        match status {
            Err(e) => Err(fail(format!("cannot wait for it: {e}"))),
            Ok(s) if !s.success() => Err(fail(failure(s, &stderr))),
            Ok(_) => {
                result.map_err(|e| fail(format!("writing its input failed: {e}")))?;
                if !stderr.is_empty() {
                    tracing::warn!(tool = %self.tool, stderr = %stderr, "the tool reported problems but succeeded");
                }
                if self.dropped > 0 {
                    tracing::info!(lines = self.dropped, "lines left out of the restore");
                }
                Ok(self.bytes)
            }
        }
    }
}

impl Write for Consumer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.prefixes.is_empty() {
            self.emit(buf)?;
            return Ok(buf.len());
        }
        let mut rest = buf;
        while !rest.is_empty() {
            let newline = rest.iter().position(|b| *b == b'\n');
            let (part, ends_line) = match newline {
                Some(i) => (&rest[..=i], true),
                None => (rest, false),
            };
            rest = &rest[part.len()..];
            if self.passing {
                self.emit(part)?;
            } else {
                self.held.extend_from_slice(part);
                if !self.may_match() {
                    self.flush_held()?;
                    self.passing = !ends_line;
                    continue;
                }
                if ends_line {
                    let line = std::mem::take(&mut self.held);
                    if self.drop_line.as_ref().is_some_and(|d| d(&line)) {
                        self.dropped += 1;
                    } else {
                        self.emit(&line)?;
                    }
                }
            }
            if ends_line {
                self.passing = false;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.pipe()?.flush()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            self.stdin = None;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Split `args` like a POSIX shell (whitespace, single and double quotes, backslash escapes).
pub(crate) fn split_args(args: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = args.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unclosed ' in {args:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unclosed \" in {args:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unclosed \" in {args:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err(format!("trailing \\ in {args:?}")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_like_a_shell() {
        assert_eq!(
            split_args(r#" --clean  -d "my db" --exclude-table='a b' x\ y "" "#).unwrap(),
            ["--clean", "-d", "my db", "--exclude-table=a b", "x y", ""]
        );
        assert!(split_args("'open").is_err());
        assert_eq!(split_args("").unwrap(), Vec::<String>::new());
    }

    fn cat_into(file: &std::path::Path) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!("cat > '{}'", file.display()));
        c
    }

    #[test]
    fn consumer_drops_matching_lines_across_writes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut c = Consumer::spawn(
            cat_into(&out),
            "cat",
            "test",
            vec![b"ALTER ROLE postgres ".to_vec()],
            Some(Box::new(|l: &[u8]| l.windows(10).any(|w| w == b" PASSWORD "))),
        )
        .unwrap();
        let input = "a\nALTER ROLE postgres WITH LOGIN PASSWORD 'x';\nALTER ROLE postgres WITH LOGIN;\nALTER ROLE app PASSWORD 'y';\nALT\nend";
        for chunk in input.as_bytes().chunks(3) {
            c.write_all(chunk).unwrap();
        }
        c.finish().unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "a\nALTER ROLE postgres WITH LOGIN;\nALTER ROLE app PASSWORD 'y';\nALT\nend"
        );
    }

    #[test]
    fn producer_failures_carry_status_and_stderr() {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("echo partial; echo 'boom: no such database' >&2; exit 3");
        let mut p = Producer::spawn(c, "pg_dump", "against AppBinding demo/pg").unwrap();
        let mut sink = Vec::new();
        let e = p.read_to_end(&mut sink).unwrap_err().to_string();
        assert!(
            e.contains("status 3") && e.contains("boom: no such database"),
            "{e}"
        );
        let e = p.finish().unwrap_err().to_string();
        assert!(
            e.contains("pg_dump against AppBinding demo/pg") && e.contains("status 3"),
            "{e}"
        );

        let mut c = Command::new("true");
        c.arg("x");
        let mut p = Producer::spawn(c, "pg_dumpall", "ctx").unwrap();
        let e = p.read_to_end(&mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("produced no output"), "{e}");
    }
}
