//! MariaDB (Debian `mariadb-server` 10.11): a fresh data dir per instance, `mariadbd --user=mysql`.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::error::{IoContext, Result};
use crate::process::{ServerProcess, Stop, retry_on_port_clash, short, temp_dir};
use crate::tools::{chown_to, run_command, system_tool};

/// A MariaDB server on 127.0.0.1; `root` has a password (also over the socket).
pub struct MariaDb {
    pub host: String,
    pub port: u16,
    /// `root`.
    pub user: String,
    pub password: String,
    /// The server's Unix socket (inside the temp dir).
    pub socket: PathBuf,
    client: PathBuf,
    process: ServerProcess,
    // Dropped last: the server is stopped before its data dir is removed.
    dir: TempDir,
}

impl MariaDb {
    /// `mariadb-install-db` into a new temp dir, starts `mariadbd --no-defaults`, waits until
    /// `select 1` works, then sets root's password.
    pub fn start() -> Result<Self> {
        retry_on_port_clash(|| Self::try_start(None))
    }

    /// [`MariaDb::start`] with TLS: the server presents `pki`'s server certificate (for
    /// `127.0.0.1`) and trusts client certificates signed by its CA (`--ssl-ca`, `--ssl-cert`,
    /// `--ssl-key` at start; MariaDB 10.11 cannot turn TLS on at run time). Plain connections
    /// are still accepted; an account `REQUIRE X509` must use a client certificate.
    pub fn start_with_tls(pki: &crate::tls::Pki) -> Result<Self> {
        retry_on_port_clash(|| Self::try_start(Some(pki)))
    }

    fn try_start(pki: Option<&crate::tls::Pki>) -> Result<Self> {
        let dir = temp_dir("mariadb")?;
        chown_to(dir.path(), "mysql")?;
        let mut tls_args = Vec::new();
        if let Some(pki) = pki {
            let tls_dir = dir.path().join("tls");
            std::fs::create_dir_all(&tls_dir).context(|| "creating the tls dir".into())?;
            chown_to(&tls_dir, "mysql")?;
            for (src, name, opt) in [
                (&pki.ca, "ca.crt", "--ssl-ca"),
                (&pki.server_cert, "server.crt", "--ssl-cert"),
                (&pki.server_key, "server.key", "--ssl-key"),
            ] {
                let dst = tls_dir.join(name);
                std::fs::copy(src, &dst).context(|| format!("copying {name}"))?;
                chown_to(&dst, "mysql")?;
                std::fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .context(|| format!("chmod {name}"))?;
                tls_args.push(format!("{opt}={}", dst.display()));
            }
        }
        let data = dir.path().join("data");
        let socket = dir.path().join("mysqld.sock");
        // Each instance's own temporary directory: bootstraps running at once in a shared /tmp
        // were seen to fail ("Unknown table 'mysql.tmp_user_nopasswd'") under a full test run.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).context(|| "creating the tmp dir".into())?;
        chown_to(&tmp, "mysql")?;
        let tmpdir = format!("--tmpdir={}", tmp.display());
        // A small redo log: the default writes a 96 MiB file per instance.
        let small = ["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=64M"];
        run_command(
            Command::new(system_tool("mariadb-install-db")?)
                .args([
                    "--no-defaults",
                    "--user=mysql",
                    "--auth-root-authentication-method=normal",
                ])
                .args(["--skip-test-db", "--skip-name-resolve"])
                .arg(format!("--datadir={}", data.display()))
                .arg(&tmpdir)
                .args(small),
        )?;

        let port = crate::ports::free_port()?;
        let mut cmd = Command::new(system_tool("mariadbd")?);
        cmd.args([
            "--no-defaults",
            "--user=mysql",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(&tmpdir)
        .arg(format!("--pid-file={}", dir.path().join("mysqld.pid").display()))
        .args(["--innodb-flush-log-at-trx-commit=0", "--skip-log-bin"])
        .args(small)
        .args(&tls_args);
        let mut process = ServerProcess::spawn("mariadb", cmd, &dir.path().join("mariadb.log"), Stop::Kill)?;

        let client = system_tool("mariadb")?;
        process.wait_ready(crate::READY_TIMEOUT, || {
            match sql_at(&client, port, "", "select 1") {
                Ok(out) if out == "1" => Ok(()),
                Ok(out) => Err(format!("select 1 returned {out:?}")),
                Err(e) => Err(short(e)),
            }
        })?;
        let password = format!("kstash-{:016x}", crate::ports::random_u64());
        let set_password = ["localhost", "127.0.0.1", "::1"]
            .map(|host| format!("ALTER USER IF EXISTS 'root'@'{host}' IDENTIFIED BY '{password}';"))
            .concat();
        sql_at(&client, port, "", &set_password)?;

        Ok(Self {
            host: "127.0.0.1".into(),
            port,
            user: "root".into(),
            password,
            socket,
            client,
            process,
            dir,
        })
    }

    /// Runs SQL with the `mariadb` client over TCP (batch mode, no column names: rows are lines,
    /// columns are tab-separated). Trailing newlines are trimmed. Panics with the client's stderr.
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("mariadb client failed: {e}"))
    }

    /// [`MariaDb::sql`] returning the error instead of panicking.
    pub fn try_sql(&self, sql: &str) -> Result<String> {
        sql_at(&self.client, self.port, &self.password, sql)
    }

    /// The server log.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The instance's temp dir (data dir is `data/` inside).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn sql_at(client: &Path, port: u16, password: &str, sql: &str) -> Result<String> {
    let out = run_command(
        Command::new(client)
            .args([
                "--no-defaults",
                "--protocol=TCP",
                "-h",
                "127.0.0.1",
                "-u",
                "root",
                "--batch",
            ])
            .args(["--skip-column-names", "--connect-timeout=5"])
            .arg(format!("--port={port}"))
            .args(["-e", sql])
            .env("MYSQL_PWD", password),
    )?;
    Ok(out.trim_end_matches('\n').to_owned())
}
