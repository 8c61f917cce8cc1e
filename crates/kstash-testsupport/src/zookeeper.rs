//! ZooKeeper 3.8 (Debian `zookeeper`), standalone, started with `java` directly (`-Xmx128m`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::error::{IoContext, Result};
use crate::process::{ServerProcess, Stop, retry_on_port_clash, short, temp_dir};
use crate::tools::{existing, run_command, system_tool};

const CLASSPATH: [&str; 2] = [
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/slf4j-simple.jar",
];
const ZK_CLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

/// A standalone ZooKeeper on 127.0.0.1; admin server off, all four-letter words allowed.
pub struct ZooKeeper {
    pub host: String,
    pub port: u16,
    process: ServerProcess,
    dir: TempDir,
}

impl ZooKeeper {
    /// Writes `zoo.cfg`, starts `ZooKeeperServerMain`, and returns when `ruok` answers `imok` and
    /// `srvr` reports a mode (standalone).
    pub fn start() -> Result<Self> {
        retry_on_port_clash(Self::try_start)
    }

    fn try_start() -> Result<Self> {
        for jar in CLASSPATH {
            existing("zookeeper", jar.into())?;
        }
        let dir = temp_dir("zookeeper")?;
        let port = crate::ports::free_port()?;
        let data = dir.path().join("data");
        let cfg = dir.path().join("zoo.cfg");
        let config = format!(
            "tickTime=2000\ninitLimit=5\nsyncLimit=2\ndataDir={}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n",
            data.display()
        );
        std::fs::create_dir(&data).context(|| "creating zookeeper data dir".into())?;
        std::fs::write(&cfg, config).context(|| "writing zoo.cfg".into())?;

        let mut cmd = Command::new(system_tool("java")?);
        cmd.args([
            "-Xms32m",
            "-Xmx128m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:-UsePerfData",
        ])
        .args(["-Djava.net.preferIPv4Stack=true", "-cp", &CLASSPATH.join(":")])
        .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
        .arg(&cfg)
        .current_dir(dir.path());
        let mut process =
            ServerProcess::spawn("zookeeper", cmd, &dir.path().join("zookeeper.log"), Stop::Kill)?;
        // `ruok` answers `imok` as soon as the port is open; `srvr` reports a mode only once the
        // server serves requests.
        process.wait_ready(crate::READY_TIMEOUT, || {
            match four_letter_word_at(port, "ruok").map_err(short)? {
                answer if answer == "imok" => {}
                answer => return Err(format!("ruok answered {answer:?}")),
            }
            match four_letter_word_at(port, "srvr").map_err(short)? {
                answer if answer.contains("Mode: ") => Ok(()),
                answer => Err(format!("srvr answered {:?}", answer.trim())),
            }
        })?;
        Ok(Self {
            host: "127.0.0.1".into(),
            port,
            process,
            dir,
        })
    }

    /// `127.0.0.1:PORT`, the connect string for clients.
    pub fn connect_string(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Sends a four-letter word (`ruok`, `srvr`, `mntr`, `stat`, ...) and returns the answer.
    pub fn four_letter_word(&self, word: &str) -> Result<String> {
        four_letter_word_at(self.port, word)
    }

    /// Runs `zkCli.sh -server 127.0.0.1:PORT ARGS…` (one JVM start, ~0.6 s) and returns its stdout,
    /// e.g. `cli(&["get", "/a"])` ends with the node's data. zkCli reports some failures only on
    /// stderr with exit status 0, so check results by reading them back.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        existing("zookeeper (zkCli.sh)", ZK_CLI.into())?;
        run_command(
            Command::new(ZK_CLI)
                .arg("-server")
                .arg(self.connect_string())
                .args(args),
        )
    }

    /// The server log.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The instance's temp dir (`zoo.cfg`, `data/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn four_letter_word_at(port: u16, word: &str) -> Result<String> {
    let io = |what: &str| format!("zookeeper 127.0.0.1:{port} {word}: {what}");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context(|| io("connect"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .context(|| io("set timeout"))?;
    stream.write_all(word.as_bytes()).context(|| io("write"))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).context(|| io("read"))?;
    Ok(answer)
}
