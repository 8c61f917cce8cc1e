//! The MySQL and MariaDB driver (`mysql-backup`/`mysql-restore`, `mariadb-backup`/
//! `mariadb-restore`; spec §3.5): `mysqldump`/`mariadb-dump` streamed as `dumpfile.sql`, restored
//! by piping into `mysql`/`mariadb`, which stops at the first error.
//!
//! - Tools: the ones named after the addon's server are preferred (`mariadb-dump`, `mariadb`,
//!   `mariadb-admin` for MariaDB; `mysqldump`, `mysql`, `mysqladmin` for MySQL), the other
//!   family's are the fallback (the dump format is the same SQL).
//! - Dump: `--single-transaction --routines --events --triggers --hex-blob`, then the user's
//!   `args` (which come later, so `--skip-events` or `--lock-all-tables` override them), then the
//!   selection: `--databases <databases>` from the `databases` parameter, or `--all-databases`
//!   unless `args` already select (`-A`, `-B`, `--all-databases`, `--databases`, a database
//!   name).
//! - `--set-gtid-purged=OFF` (KubeStash's default for MySQL) is an option of Oracle's `mysqldump`
//!   only; MariaDB's tool refuses it. Since a MariaDB dump never sets `GTID_PURGED`, `OFF` is
//!   dropped when the installed tool is MariaDB's; other values are refused.
//! - Credentials: `--user` from the Secret, the password through `MYSQL_PWD`, never the command
//!   line. `--no-defaults` keeps option files (`~/.my.cnf`, whose password would win over
//!   `MYSQL_PWD`) out of it.
//! - Readiness: `mariadb-admin ping` until `waitTimeout` (it succeeds once the server answers,
//!   even when the password is wrong, so a wrong password is reported by the dump itself). A TLS
//!   failure (an unknown CA, a certificate not naming the host) fails at once: waiting will not
//!   fix it.
//! - TLS (spec §3.5): the AppBinding's CA bundle (`spec.clientConfig.caBundle`, or `ca.crt` of
//!   `spec.tlsSecret`) and client certificate (`tls.crt`, `tls.key` of `spec.tlsSecret`) are
//!   written to a private temporary directory and passed as `--ssl-ca`, `--ssl-cert`, `--ssl-key`
//!   (paths only). With a CA the server's certificate is verified: MariaDB's tools get
//!   `--ssl-verify-server-cert` (which also checks the host name), Oracle's `--ssl-mode=VERIFY_CA`.
//!   `insecureSkipTLSVerify` leaves the CA out (MariaDB's tools check the chain whenever a CA is
//!   given) and turns verification off (`--skip-ssl-verify-server-cert`, `--ssl-mode=REQUIRED`).
//!   A client certificate without a CA only requires TLS (`--ssl`, `--ssl-mode=REQUIRED`).
//!   `serverName` is not supported by the tools and is ignored. The user's `args` come after
//!   these options and can override them.
//! - With a client certificate the Secret (and its password) is optional: the tools connect as
//!   the `user` parameter, else the Secret's user, authenticated by the certificate (an account
//!   `REQUIRE X509` or `REQUIRE SUBJECT …`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::appbinding::Connection;
use crate::error::{ExecError, Result};
use crate::stream::{Sink, Source, StreamDriver};
use crate::task::ResolvedTask;
use crate::tls::{Tls, TlsFiles};
use crate::tool::{Consumer, Producer};

/// The file name of the dump inside the restic snapshot (KubeStash's).
pub(crate) const DUMP_FILE: &str = "dumpfile.sql";
/// Secret keys holding the user name, in order of preference (KubeDB's auth Secret, then the
/// legacy root key).
pub(crate) const USER_KEYS: &[&str] = &["username", "MYSQL_ROOT_USERNAME"];
/// Secret keys holding the password, in order of preference.
pub(crate) const PASSWORD_KEYS: &[&str] = &["password", "MYSQL_ROOT_PASSWORD"];
const DEFAULT_PORT: u16 = 3306;
/// Dump options that come before the user's `args`.
const DUMP_DEFAULTS: &[&str] = &[
    "--single-transaction",
    "--routines",
    "--events",
    "--triggers",
    "--hex-blob",
];

/// Which server an addon is for: decides the tools tried first and the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    MySql,
    MariaDb,
}

impl Flavor {
    /// The flavor of a task's function (`mariadb-…` or `mysql-…`).
    pub fn of(task: &ResolvedTask) -> Flavor {
        if task.function.starts_with("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flavor::MySql => "MySQL",
            Flavor::MariaDb => "MariaDB",
        }
    }

    fn dump_tools(self) -> [&'static str; 2] {
        match self {
            Flavor::MySql => ["mysqldump", "mariadb-dump"],
            Flavor::MariaDb => ["mariadb-dump", "mysqldump"],
        }
    }

    fn client_tools(self) -> [&'static str; 2] {
        match self {
            Flavor::MySql => ["mysql", "mariadb"],
            Flavor::MariaDb => ["mariadb", "mysql"],
        }
    }

    fn admin_tools(self) -> [&'static str; 2] {
        match self {
            Flavor::MySql => ["mysqladmin", "mariadb-admin"],
            Flavor::MariaDb => ["mariadb-admin", "mysqladmin"],
        }
    }
}

/// A MySQL or MariaDB target and one of its tasks.
pub(crate) struct MySql {
    conn: Connection,
    task: ResolvedTask,
    flavor: Flavor,
    /// The account the tools connect as: the Secret's user, or with a client certificate the
    /// `user` param when set.
    user: String,
    /// The AppBinding's TLS material as files, alive as long as the driver.
    tls_files: Option<TlsFiles>,
}

impl MySql {
    pub fn new(conn: Connection, task: ResolvedTask) -> Result<MySql> {
        let flavor = Flavor::of(&task);
        let client_cert = conn.tls.as_ref().is_some_and(|t| t.client.is_some());
        let user = match task.param("user").filter(|u| !u.is_empty()) {
            Some(u) if client_cert => u.to_string(),
            _ => conn.user.clone(),
        };
        if user.is_empty() {
            let secret = match conn.secret.as_str() {
                "" => "the AppBinding names no Secret".to_string(),
                s => format!("Secret {s} has no username"),
            };
            return Err(ExecError::invalid(
                task.describe(),
                format!(
                    "no user to connect to {} as: {secret} and parameter user is not set; \
                     set parameter user to the account of the client certificate",
                    conn.object
                ),
            ));
        }
        let tls_files = conn.tls.as_ref().map(Tls::write_files).transpose()?;
        Ok(MySql {
            conn,
            task,
            flavor,
            user,
            tls_files,
        })
    }

    fn port(&self) -> u16 {
        self.conn.port.unwrap_or(DEFAULT_PORT)
    }

    fn context(&self) -> String {
        let from = match self.conn.tls.as_ref().and_then(|t| t.secret.as_deref()) {
            Some(tls) if self.conn.secret.is_empty() => format!(", certificate from Secret {tls}"),
            Some(tls) => format!(" from Secret {}, certificate from Secret {tls}", self.conn.secret),
            None => format!(" from Secret {}", self.conn.secret),
        };
        format!(
            "against {} ({}:{}, user {}{from})",
            self.conn.object,
            self.conn.host,
            self.port(),
            self.user,
        )
    }

    /// The first installed tool of `names`.
    fn tool(&self, names: [&str; 2]) -> Result<PathBuf> {
        names
            .iter()
            .find_map(|n| find_in_path(n))
            .ok_or_else(|| ExecError::Tool {
                tool: names[0].to_string(),
                message: format!(
                    "neither {} nor {} is installed (searched PATH); install the {} client tools",
                    names[0],
                    names[1],
                    self.flavor.name()
                ),
            })
    }

    /// A client tool connecting over TCP as [`MySql::user`], the password (if any) in
    /// `MYSQL_PWD`, with the TLS options for the tool's family.
    fn command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin);
        // `--no-defaults` must come first.
        cmd.arg("--no-defaults")
            .arg("--protocol=TCP")
            .arg(format!("--host={}", self.conn.host))
            .arg(format!("--port={}", self.port()))
            .arg(format!("--user={}", self.user));
        cmd.env_remove("MYSQL_PWD");
        if !self.conn.password.is_empty() {
            cmd.env("MYSQL_PWD", &self.conn.password);
        }
        if let (Some(tls), Some(files)) = (&self.conn.tls, &self.tls_files) {
            let family = if is_mariadb_tool(bin) {
                Family::MariaDb
            } else {
                Family::Oracle
            };
            cmd.args(tls_args(tls, files, family));
        }
        cmd
    }

    /// Wait until the server answers `ping`.
    fn wait_ready(&self) -> Result<()> {
        let admin = self.tool(self.flavor.admin_tools())?;
        let timeout = self.task.wait_timeout()?;
        let started = Instant::now();
        let mut last;
        let mut ping = self.command(&admin);
        ping.args(["--connect-timeout=2", "ping"]);
        loop {
            let out = ping.output().map_err(|e| ExecError::Tool {
                tool: tool_name(&admin),
                message: format!("cannot run {}: {e}", admin.display()),
            })?;
            if out.status.success() {
                return Ok(());
            }
            last = String::from_utf8_lossy(&out.stderr)
                .lines()
                .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c.is_control()))
                .filter(|l| !l.is_empty() && !l.starts_with("Check that"))
                .collect::<Vec<_>>()
                .join(" ");
            // The server answered but the TLS handshake failed: waiting will not fix that.
            if is_tls_error(&last) {
                return Err(ExecError::Tool {
                    tool: tool_name(&admin),
                    message: format!(
                        "{} {}: cannot connect over TLS: {last}; {}",
                        tool_name(&admin),
                        self.context(),
                        tls_hint(self.conn.tls.as_ref()),
                    ),
                });
            }
            if started.elapsed() >= timeout {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(ExecError::NotReady {
            target: format!("{} {}", self.flavor.name(), self.context()),
            waited: crate::duration::go_duration(started.elapsed()),
            detail: last,
        })
    }

    /// Wait until the server answers, then the client tool (`mariadb`/`mysql`) to run SQL with.
    pub(crate) fn ready_client(&self) -> Result<PathBuf> {
        let client = self.tool(self.flavor.client_tools())?;
        self.wait_ready()?;
        Ok(client)
    }

    /// Run `sql` with `client` (batch mode, no column names: rows are lines, columns are
    /// separated by tabs); its output. The SQL goes on stdin, never the command line.
    pub(crate) fn sql(&self, client: &Path, sql: &str) -> Result<String> {
        let mut cmd = self.command(client);
        cmd.args(["--batch", "--skip-column-names"]);
        crate::tool::run_captured(cmd, &tool_name(client), &self.context(), sql.as_bytes())
    }

    /// The dump tool's arguments after the connection: defaults, user args, selection.
    fn dump_args(&self, dump: &Path) -> Result<Vec<String>> {
        let mut args = self.task.args()?;
        if args.iter().any(|a| a.starts_with("--set-gtid-purged")) && is_mariadb_tool(dump) {
            args = drop_gtid_purged(args).map_err(|m| {
                ExecError::invalid(
                    self.task.describe(),
                    format!("parameter args: {m} ({} is MariaDB's)", dump.display()),
                )
            })?;
        }
        let databases = self.task.list_param("databases");
        let selects = selects_databases(&args);
        let selection: Vec<String> = match (databases.is_empty(), selects) {
            (true, true) => Vec::new(),
            (true, false) => vec!["--all-databases".into()],
            (false, false) => std::iter::once("--databases".to_string())
                .chain(databases)
                .collect(),
            (false, true) => {
                return Err(ExecError::invalid(
                    self.task.describe(),
                    "parameter databases and a database selection in parameter args \
                     (--all-databases, --databases, -A, -B or a database name) are both set; \
                     keep one of them",
                ));
            }
        };
        Ok(DUMP_DEFAULTS
            .iter()
            .map(|s| s.to_string())
            .chain(args)
            .chain(selection)
            .collect())
    }
}

impl StreamDriver for MySql {
    fn file_name(&self) -> &str {
        DUMP_FILE
    }

    fn produce(&self) -> Result<Box<dyn Source>> {
        let dump = self.tool(self.flavor.dump_tools())?;
        let args = self.dump_args(&dump)?;
        self.wait_ready()?;
        let tool = tool_name(&dump);
        let mut cmd = self.command(&dump);
        cmd.args(&args);
        tracing::info!(tool = %dump.display(), ?args, host = %self.conn.host, port = self.port(), "starting the dump");
        Ok(Box::new(Producer::spawn(cmd, &tool, &self.context())?))
    }

    fn consume(&self) -> Result<Box<dyn Sink>> {
        let client = self.tool(self.flavor.client_tools())?;
        let args = self.task.args()?;
        self.wait_ready()?;
        let tool = tool_name(&client);
        let mut cmd = self.command(&client);
        cmd.args(&args);
        tracing::info!(tool = %client.display(), ?args, "starting the restore client");
        Ok(Box::new(Consumer::spawn(
            cmd,
            &tool,
            &self.context(),
            Vec::new(),
            None,
        )?))
    }
}

/// Which client tools' TLS options to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// MariaDB's (`--ssl`, `--ssl-verify-server-cert`).
    MariaDb,
    /// Oracle MySQL's (`--ssl-mode`).
    Oracle,
}

/// The TLS options of a tool of `family` for `tls`, its material written as `files`.
fn tls_args(tls: &Tls, files: &TlsFiles, family: Family) -> Vec<String> {
    let path = |opt: &str, p: &Option<PathBuf>| p.as_ref().map(|p| format!("{opt}={}", p.display()));
    let ca = if tls.insecure_skip_verify {
        None
    } else {
        path("--ssl-ca", &files.ca)
    };
    let mut args = Vec::new();
    match (family, ca.is_some(), tls.insecure_skip_verify) {
        (Family::MariaDb, true, _) => args.push("--ssl-verify-server-cert".to_string()),
        (Family::MariaDb, false, true) => {
            args.extend(["--ssl".to_string(), "--skip-ssl-verify-server-cert".to_string()])
        }
        (Family::MariaDb, false, false) => args.push("--ssl".to_string()),
        (Family::Oracle, true, _) => args.push("--ssl-mode=VERIFY_CA".to_string()),
        (Family::Oracle, false, _) => args.push("--ssl-mode=REQUIRED".to_string()),
    }
    args.extend(ca);
    args.extend(path("--ssl-cert", &files.cert));
    args.extend(path("--ssl-key", &files.key));
    args
}

/// Whether a client error is a TLS failure (MariaDB Connector/C: `TLS/SSL error: …`; Oracle's
/// and older clients: `SSL connection error: …`).
fn is_tls_error(message: &str) -> bool {
    message.contains("TLS/SSL error") || message.contains("SSL connection error")
}

/// What to check when the TLS handshake fails.
fn tls_hint(tls: Option<&Tls>) -> String {
    match tls {
        Some(t) if t.ca_pem.is_some() && !t.insecure_skip_verify => {
            "the server's certificate must be signed by the AppBinding's CA \
             (spec.clientConfig.caBundle, or ca.crt of spec.tlsSecret) and name the host it is \
             reached by; fix the CA or the server's certificate (insecureSkipTLSVerify turns the \
             check off)"
                .to_string()
        }
        Some(_) => "check the client certificate of spec.tlsSecret and the server's TLS settings".to_string(),
        None => "the AppBinding has no TLS settings; add spec.clientConfig.caBundle (and \
                 spec.tlsSecret for a client certificate) if the server requires TLS"
            .to_string(),
    }
}

/// The file name of a tool path (`mariadb-dump`).
fn tool_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// `name` found in a directory of `PATH` (an executable file).
fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Whether the dump tool at `path` is MariaDB's (`mysqldump` is a link to `mariadb-dump` where
/// MariaDB's client is installed).
fn is_mariadb_tool(path: &Path) -> bool {
    Command::new(path)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("MariaDB"))
        .unwrap_or(false)
}

/// `args` without `--set-gtid-purged=OFF`, which MariaDB's dump tool does not know and does not
/// need (it never writes `SET @@GLOBAL.GTID_PURGED`); any other value cannot be honoured.
fn drop_gtid_purged(args: Vec<String>) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        match a.strip_prefix("--set-gtid-purged") {
            None => out.push(a),
            Some(v) if v.eq_ignore_ascii_case("=OFF") => {
                tracing::info!(
                    "--set-gtid-purged=OFF left out: MariaDB's dump tool has no such option and writes no GTID_PURGED"
                );
            }
            Some(v) => {
                return Err(format!(
                    "--set-gtid-purged{v} is an option of MySQL's mysqldump; MariaDB's dump tool \
                     does not have it (remove it, or use --gtid for MariaDB GTIDs)"
                ));
            }
        }
    }
    Ok(out)
}

/// Whether dump `args` choose the databases themselves: `-A`/`--all-databases`,
/// `-B`/`--databases`, or a positional database name.
fn selects_databases(args: &[String]) -> bool {
    args.iter()
        .any(|a| matches!(a.as_str(), "-A" | "-B" | "--all-databases" | "--databases") || !a.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selection_in_args_is_recognised() {
        assert!(!selects_databases(&strings(&[
            "--set-gtid-purged=OFF",
            "--skip-events"
        ])));
        assert!(selects_databases(&strings(&["--all-databases"])));
        assert!(selects_databases(&strings(&["--databases", "a", "b"])));
        assert!(selects_databases(&strings(&["-B", "shop"])));
        assert!(selects_databases(&strings(&["shop", "orders"])));
        assert!(!selects_databases(&strings(&["--where=id>3", "-q"])));
    }

    #[test]
    fn tls_options_follow_the_tool_family_and_the_appbinding() {
        let full = Tls {
            ca_pem: Some(b"ca".to_vec()),
            client: Some((b"cert".to_vec(), b"key".to_vec())),
            ..Tls::default()
        };
        let files = full.write_files().unwrap();
        let dir = files.ca.as_ref().unwrap().parent().unwrap().display().to_string();
        let f = |a: &[&str]| -> Vec<String> { a.iter().map(|s| s.replace("{dir}", &dir)).collect() };
        assert_eq!(
            tls_args(&full, &files, Family::MariaDb),
            f(&[
                "--ssl-verify-server-cert",
                "--ssl-ca={dir}/ca.crt",
                "--ssl-cert={dir}/tls.crt",
                "--ssl-key={dir}/tls.key"
            ])
        );
        assert_eq!(
            tls_args(&full, &files, Family::Oracle),
            f(&[
                "--ssl-mode=VERIFY_CA",
                "--ssl-ca={dir}/ca.crt",
                "--ssl-cert={dir}/tls.crt",
                "--ssl-key={dir}/tls.key"
            ])
        );
        // insecureSkipTLSVerify: no CA (MariaDB's tools would check the chain against it).
        let insecure = Tls {
            insecure_skip_verify: true,
            ..full.clone()
        };
        assert_eq!(
            tls_args(&insecure, &files, Family::MariaDb),
            f(&[
                "--ssl",
                "--skip-ssl-verify-server-cert",
                "--ssl-cert={dir}/tls.crt",
                "--ssl-key={dir}/tls.key"
            ])
        );
        assert_eq!(
            tls_args(&insecure, &files, Family::Oracle),
            f(&[
                "--ssl-mode=REQUIRED",
                "--ssl-cert={dir}/tls.crt",
                "--ssl-key={dir}/tls.key"
            ])
        );
        // A CA only.
        let ca_only = Tls {
            ca_pem: Some(b"ca".to_vec()),
            ..Tls::default()
        };
        let ca_files = ca_only.write_files().unwrap();
        let args = tls_args(&ca_only, &ca_files, Family::MariaDb);
        assert_eq!(args.len(), 2, "{args:?}");
        assert_eq!(args[0], "--ssl-verify-server-cert");
        assert!(is_tls_error(
            "error: 'TLS/SSL error: self-signed certificate in certificate chain'"
        ));
        assert!(!is_tls_error(
            "error: 'Access denied for user 'x'@'h' (using password: NO)'"
        ));
    }

    #[test]
    fn gtid_purged_off_is_dropped_for_mariadb_and_other_values_refused() {
        assert_eq!(
            drop_gtid_purged(strings(&["--set-gtid-purged=OFF", "--skip-events"])).unwrap(),
            ["--skip-events"]
        );
        let e = drop_gtid_purged(strings(&["--set-gtid-purged=ON"])).unwrap_err();
        assert!(
            e.contains("--set-gtid-purged=ON") && e.contains("MySQL's mysqldump"),
            "{e}"
        );
    }
}
