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
//!   even when the password is wrong, so a wrong password is reported by the dump itself).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::appbinding::Connection;
use crate::error::{ExecError, Result};
use crate::stream::{Sink, Source, StreamDriver};
use crate::task::ResolvedTask;
use crate::tool::{Consumer, Producer, split_args};

/// The file name of the dump inside the restic snapshot (KubeStash's).
pub(crate) const DUMP_FILE: &str = "dumpfile.sql";
/// Secret keys holding the user name, in order of preference (KubeDB's auth Secret, then the
/// legacy root key).
pub(crate) const USER_KEYS: &[&str] = &["username", "MYSQL_ROOT_USERNAME"];
/// Secret keys holding the password, in order of preference.
pub(crate) const PASSWORD_KEYS: &[&str] = &["password", "MYSQL_ROOT_PASSWORD"];
const DEFAULT_PORT: u16 = 3306;
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
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
}

impl MySql {
    pub fn new(conn: Connection, task: ResolvedTask) -> MySql {
        let flavor = Flavor::of(&task);
        MySql { conn, task, flavor }
    }

    fn port(&self) -> u16 {
        self.conn.port.unwrap_or(DEFAULT_PORT)
    }

    fn context(&self) -> String {
        format!(
            "against {} ({}:{}, user {} from Secret {})",
            self.conn.object,
            self.conn.host,
            self.port(),
            self.conn.user,
            self.conn.secret
        )
    }

    /// `waitTimeout` in seconds (default 300).
    fn wait_timeout(&self) -> Result<Duration> {
        match self.task.param("waitTimeout") {
            None => Ok(DEFAULT_WAIT),
            Some(v) => v.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                ExecError::invalid(
                    self.task.describe(),
                    format!("parameter waitTimeout {v:?} is not a number of seconds"),
                )
            }),
        }
    }

    /// User `args`, split like a shell would.
    fn args(&self) -> Result<Vec<String>> {
        split_args(self.task.param("args").unwrap_or_default())
            .map_err(|m| ExecError::invalid(self.task.describe(), format!("parameter args: {m}")))
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

    /// A client tool connecting over TCP as the Secret's user, the password in `MYSQL_PWD`.
    fn command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin);
        // `--no-defaults` must come first.
        cmd.arg("--no-defaults")
            .arg("--protocol=TCP")
            .arg(format!("--host={}", self.conn.host))
            .arg(format!("--port={}", self.port()))
            .arg(format!("--user={}", self.conn.user))
            .env("MYSQL_PWD", &self.conn.password);
        cmd
    }

    /// Wait until the server answers `ping`.
    fn wait_ready(&self) -> Result<()> {
        let admin = self.tool(self.flavor.admin_tools())?;
        let timeout = self.wait_timeout()?;
        let started = Instant::now();
        let mut last;
        loop {
            let out = self
                .command(&admin)
                .args(["--connect-timeout=2", "ping"])
                .output()
                .map_err(|e| ExecError::Tool {
                    tool: tool_name(&admin),
                    message: format!("cannot run {}: {e}", admin.display()),
                })?;
            if out.status.success() {
                return Ok(());
            }
            last = String::from_utf8_lossy(&out.stderr)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("Check that"))
                .collect::<Vec<_>>()
                .join(" ");
            if started.elapsed() >= timeout {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(ExecError::NotReady {
            target: format!("{} {}", self.flavor.name(), self.context()),
            waited: crate::status::go_duration(started.elapsed()),
            detail: last,
        })
    }

    /// The dump tool's arguments after the connection: defaults, user args, selection.
    fn dump_args(&self, dump: &Path) -> Result<Vec<String>> {
        let mut args = self.args()?;
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
        let args = self.args()?;
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
