//! The PostgreSQL driver (`postgres-backup`, `postgres-restore`; spec §3.2): `pg_dumpall`
//! (default) or `pg_dump` streamed as `dumpfile.sql`, restored by piping into `psql` without the
//! `ALTER ROLE postgres … PASSWORD` line (the target keeps its own superuser password) and
//! stopping at the first error unless `onErrorStop` is `false`. The password reaches the tools
//! through `PGPASSWORD`, never their command line. With several PostgreSQL versions installed
//! (`/usr/lib/postgresql/<major>/bin`), the client tools of the server's major version are used.
//! TLS: the AppBinding's CA bundle and client certificate reach libpq as `PGSSLROOTCERT`,
//! `PGSSLCERT` and `PGSSLKEY` files; with a client certificate the role is the `user` param.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::appbinding::Connection;
use crate::error::{ExecError, Result};
use crate::stream::{Sink, Source, StreamDriver};
use crate::task::ResolvedTask;
use crate::tls::{Tls, TlsFiles};
use crate::tool::{Consumer, LineDrop, Producer};

/// The file name of the dump inside the restic snapshot (KubeStash's).
pub(crate) const DUMP_FILE: &str = "dumpfile.sql";
/// Secret keys holding the user name, in order of preference.
pub(crate) const USER_KEYS: &[&str] = &["username", "POSTGRES_USER"];
/// Secret keys holding the password, in order of preference.
pub(crate) const PASSWORD_KEYS: &[&str] = &["password", "POSTGRES_PASSWORD"];
/// Where Debian/Ubuntu install the versions side by side.
const VERSIONS_DIR: &str = "/usr/lib/postgresql";
const DEFAULT_PORT: u16 = 5432;

/// A PostgreSQL target and one of its tasks.
pub(crate) struct Postgres {
    conn: Connection,
    task: ResolvedTask,
    /// The role the tools connect as: the Secret's user, or with a client certificate the
    /// `user` param (KubeStash's rule).
    user: String,
    /// The AppBinding's TLS material as files, alive as long as the driver.
    tls_files: Option<TlsFiles>,
}

impl Postgres {
    pub fn new(conn: Connection, task: ResolvedTask) -> Result<Postgres> {
        let tls_files = conn.tls.as_ref().map(Tls::write_files).transpose()?;
        let client_cert = conn.tls.as_ref().is_some_and(|t| t.client.is_some());
        let user = match task.param("user") {
            Some(u) if client_cert => u.to_string(),
            _ if conn.user.is_empty() => "postgres".to_string(),
            _ => conn.user.clone(),
        };
        Ok(Postgres {
            conn,
            task,
            user,
            tls_files,
        })
    }

    fn port(&self) -> u16 {
        self.conn.port.unwrap_or(DEFAULT_PORT)
    }

    fn context(&self) -> String {
        let from = match self.conn.tls.as_ref().and_then(|t| t.secret.as_deref()) {
            Some(tls) if self.conn.secret.is_empty() => format!("certificate from Secret {tls}"),
            Some(tls) => format!("Secret {}, certificate from Secret {tls}", self.conn.secret),
            None => format!("Secret {}", self.conn.secret),
        };
        format!(
            "against {} ({}:{}, user {}, {from})",
            self.conn.object,
            self.conn.host,
            self.port(),
            self.user,
        )
    }

    /// A client tool with the connection in its environment.
    fn command(&self, bin: &Path, tool: &str) -> Command {
        let mut cmd = Command::new(bin.join(tool));
        if bin.as_os_str().is_empty() {
            cmd = Command::new(tool);
        }
        cmd.env("PGHOST", &self.conn.host)
            .env("PGPORT", self.port().to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", self.conn.database.as_deref().unwrap_or("postgres"))
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGAPPNAME", "kstash");
        cmd.env_remove("PGPASSFILE")
            .env_remove("PGSERVICE")
            .env_remove("PGPASSWORD");
        if !self.conn.password.is_empty() {
            cmd.env("PGPASSWORD", &self.conn.password);
        }
        if let Some(files) = &self.tls_files {
            for (var, path) in [
                ("PGSSLROOTCERT", &files.ca),
                ("PGSSLCERT", &files.cert),
                ("PGSSLKEY", &files.key),
            ] {
                if let Some(p) = path {
                    cmd.env(var, p);
                }
            }
        }
        if let Some(mode) = self.sslmode() {
            cmd.env("PGSSLMODE", mode);
        }
        cmd
    }

    /// `sslmode` of the AppBinding URL or service query; without one, a CA bundle means
    /// `verify-ca`, and a client certificate or `insecureSkipTLSVerify` means `require`.
    fn sslmode(&self) -> Option<&str> {
        if let Some(mode) = &self.conn.sslmode {
            return Some(mode);
        }
        let tls = self.conn.tls.as_ref()?;
        if tls.insecure_skip_verify {
            Some("require")
        } else if tls.ca_pem.is_some() {
            Some("verify-ca")
        } else {
            Some("require")
        }
    }

    /// Wait until the server accepts connections (`pg_isready`), then pick the client tools.
    pub(crate) fn ready_tools(&self) -> Result<PathBuf> {
        let dirs = installed_versions();
        let newest = dirs.last().map(|(_, d)| d.clone()).unwrap_or_default();
        self.wait_ready(&newest)?;
        if dirs.len() <= 1 {
            return Ok(newest);
        }
        let major = match version_major(&self.conn.version) {
            Some(m) => Some(m),
            None => self.server_major(&newest),
        };
        Ok(pick_version(&dirs, major).unwrap_or(newest))
    }

    fn wait_ready(&self, bin: &Path) -> Result<()> {
        let timeout = self.task.wait_timeout()?;
        let started = Instant::now();
        let mut last;
        loop {
            let out = self
                .command(bin, "pg_isready")
                .args(["-t", "2"])
                .output()
                .map_err(|e| ExecError::Tool {
                    tool: "pg_isready".into(),
                    message: format!("cannot run pg_isready: {e}"),
                })?;
            if out.status.success() {
                return Ok(());
            }
            last = String::from_utf8_lossy(&out.stdout).trim().to_string();
            // "No response" while the port accepts TCP: the server is up but the session fails
            // (TLS, authentication), which waiting will not fix; psql says why.
            if out.status.code() == Some(2) && self.port_open() {
                return self.probe(bin);
            }
            if started.elapsed() >= timeout {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(ExecError::NotReady {
            target: format!("PostgreSQL {}", self.context()),
            waited: crate::duration::go_duration(started.elapsed()),
            detail: last,
        })
    }

    fn port_open(&self) -> bool {
        use std::net::ToSocketAddrs as _;
        (self.conn.host.as_str(), self.port())
            .to_socket_addrs()
            .into_iter()
            .flatten()
            .any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
    }

    /// Connect once with `psql`: Ok, or its error as the tool's failure.
    fn probe(&self, bin: &Path) -> Result<()> {
        let out = self
            .command(bin, "psql")
            .args(["-X", "-A", "-t", "-c", "SELECT 1"])
            .output()
            .map_err(|e| ExecError::Tool {
                tool: "psql".into(),
                message: format!("cannot run psql: {e}"),
            })?;
        if out.status.success() {
            return Ok(());
        }
        Err(ExecError::Tool {
            tool: "psql".into(),
            message: format!(
                "psql {}: cannot connect: {}",
                self.context(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }

    /// Run a psql `script` (stdin) on `database` (default: the AppBinding's, else `postgres`)
    /// with the tools in `bin`, stopping at the first error; its output, unaligned and without
    /// headers. `vars` become psql variables, which the script quotes itself (`:'name'` as a
    /// literal, `:"name"` as an identifier), so user-given names never enter it as SQL.
    pub(crate) fn script(
        &self,
        bin: &Path,
        database: Option<&str>,
        vars: &[(&str, &str)],
        script: &str,
    ) -> Result<String> {
        let mut cmd = self.command(bin, "psql");
        if let Some(db) = database {
            cmd.env("PGDATABASE", db);
        }
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
        for (name, value) in vars {
            cmd.arg("-v").arg(format!("{name}={value}"));
        }
        cmd.args(["-f", "-"]);
        crate::tool::run_captured(cmd, "psql", &self.context(), script.as_bytes())
    }

    /// The server's major version, asked with `psql` (None when it cannot be asked).
    fn server_major(&self, bin: &Path) -> Option<u32> {
        let out = self
            .command(bin, "psql")
            .args(["-X", "-A", "-t", "-c", "SHOW server_version_num"])
            .output()
            .ok()?;
        let num: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        Some(num / 10000)
    }
}

impl StreamDriver for Postgres {
    fn file_name(&self) -> &str {
        DUMP_FILE
    }

    fn produce(&self) -> Result<Box<dyn Source>> {
        let tool = match self.task.param("backupCmd").unwrap_or("pg_dumpall") {
            t @ ("pg_dumpall" | "pg_dump") => t.to_string(),
            other => {
                return Err(ExecError::invalid(
                    self.task.describe(),
                    format!("parameter backupCmd is {other:?}; use pg_dumpall or pg_dump"),
                ));
            }
        };
        let args = self.task.args()?;
        let bin = self.ready_tools()?;
        let mut cmd = self.command(&bin, &tool);
        cmd.args(&args);
        tracing::info!(tool = %tool, bin = %bin.display(), ?args, host = %self.conn.host, port = self.port(), "starting the dump");
        Ok(Box::new(Producer::spawn(cmd, &tool, &self.context())?))
    }

    fn consume(&self) -> Result<Box<dyn Sink>> {
        let on_error_stop = self.task.bool_param("onErrorStop", true)?;
        let args = self.task.args()?;
        let bin = self.ready_tools()?;
        let mut cmd = self.command(&bin, "psql");
        cmd.args(["-X", "-q", "-v"])
            .arg(format!("ON_ERROR_STOP={}", u8::from(on_error_stop)))
            .args(&args);
        tracing::info!(bin = %bin.display(), ?args, on_error_stop, "starting psql");
        let (prefixes, drop) = restore_filter(&self.user);
        Ok(Box::new(Consumer::spawn(
            cmd,
            "psql",
            &self.context(),
            prefixes,
            Some(drop),
        )?))
    }
}

/// The lines a restore leaves out: `ALTER ROLE postgres … PASSWORD …` (as KubeStash's sed
/// does, so the target keeps its own superuser password), and `CREATE ROLE <user>;` for the
/// role the restore connects as, which exists by definition (it would stop the restore).
fn restore_filter(user: &str) -> (Vec<Vec<u8>>, LineDrop) {
    let ident = quote_ident(user);
    let alter = b"ALTER ROLE postgres WITH ".to_vec();
    let create = format!("CREATE ROLE {ident};").into_bytes();
    let prefixes = vec![alter.clone(), create.clone()];
    let drop: LineDrop = Box::new(move |line: &[u8]| {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (line.starts_with(&alter) && line.windows(10).any(|w| w == b" PASSWORD "))
            || line == create.as_slice()
    });
    (prefixes, drop)
}

/// A role name as `pg_dumpall` writes it (quoted unless a plain lower-case identifier).
fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `(major, bin dir)` of every installed version, oldest first.
fn installed_versions() -> Vec<(u32, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(VERSIONS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_dump").is_file().then_some((major, bin))
        })
        .collect();
    out.sort();
    out
}

/// The tools for a server of `major`: the same major, else the oldest newer one (pg_dump reads
/// older servers, not newer ones).
fn pick_version(dirs: &[(u32, PathBuf)], major: Option<u32>) -> Option<PathBuf> {
    let major = major?;
    dirs.iter()
        .find(|(m, _)| *m == major)
        .or_else(|| dirs.iter().find(|(m, _)| *m > major))
        .map(|(_, d)| d.clone())
}

/// `16` of `16.4`, `15` of `15`, `9` of `9.6`.
fn version_major(version: &str) -> Option<u32> {
    version.trim().split(['.', '-']).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_matched() {
        let dirs = vec![
            (13, PathBuf::from("/13")),
            (15, PathBuf::from("/15")),
            (16, PathBuf::from("/16")),
        ];
        assert_eq!(pick_version(&dirs, Some(15)), Some(PathBuf::from("/15")));
        assert_eq!(pick_version(&dirs, Some(14)), Some(PathBuf::from("/15")));
        assert_eq!(pick_version(&dirs, Some(17)), None);
        assert_eq!(version_major("16.4"), Some(16));
        assert_eq!(version_major("9.6-alpine"), Some(9));
        assert_eq!(version_major(""), None);
    }

    #[test]
    fn restore_filter_drops_the_superuser_password_and_own_create_role() {
        let (_, drop) = restore_filter("postgres");
        assert!(drop(b"ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$x';\n"));
        assert!(drop(b"CREATE ROLE postgres;\n"));
        assert!(!drop(b"CREATE ROLE app_owner;\n"));
        assert!(!drop(b"ALTER ROLE app_owner WITH LOGIN PASSWORD 'x';\n"));
        assert!(!drop(b"ALTER ROLE postgres WITH SUPERUSER;\n"));
        assert_eq!(quote_ident("Admin"), "\"Admin\"");
    }
}
