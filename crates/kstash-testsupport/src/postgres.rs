//! PostgreSQL (Debian `postgresql-15`): a fresh cluster per instance, run as the `postgres` user.

use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

use crate::error::{IoContext, Result};
use crate::process::{ServerProcess, Stop, retry_on_port_clash, short, temp_dir};
use crate::tools::{chown_to, postgres_bin_dir, run_command, system_tool};

/// A PostgreSQL server on 127.0.0.1 with password (scram-sha-256) auth over TCP.
pub struct Postgres {
    pub host: String,
    pub port: u16,
    /// The superuser, `postgres`.
    pub user: String,
    pub password: String,
    bin_dir: PathBuf,
    process: ServerProcess,
    // Dropped last: the server is stopped before its data dir is removed.
    dir: TempDir,
}

impl Postgres {
    /// `initdb` (as `postgres` via `su`) into a new temp dir, then runs `postgres` in the foreground
    /// and returns when `psql -c 'select 1'` succeeds over TCP.
    pub fn start() -> Result<Self> {
        retry_on_port_clash(Self::try_start)
    }

    fn try_start() -> Result<Self> {
        let bin_dir = postgres_bin_dir()?;
        let dir = temp_dir("postgres")?;
        chown_to(dir.path(), "postgres")?;
        // Random per instance: a readiness probe can never log into another test's server.
        let password = format!("kstash-{:016x}", crate::ports::random_u64());
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, &password).context(|| "writing pwfile".into())?;
        chown_to(&pwfile, "postgres")?;

        let data = dir.path().join("data");
        let initdb = format!(
            "{} -D '{}' -U postgres --pwfile='{}' --auth-local=trust --auth-host=scram-sha-256 \
             --encoding=UTF8 --locale=C --no-sync",
            bin_dir.join("initdb").display(),
            data.display(),
            pwfile.display()
        );
        run_command(
            Command::new("su")
                .args(["postgres", "-s", "/bin/bash", "-c", &initdb])
                .current_dir(dir.path()),
        )?;

        // `su -c` and `pg_ctl` both put the server into a new session, out of reach of our process
        // group; `setpriv` execs in place, so the postmaster is our child and group leader.
        let port = crate::ports::free_port()?;
        let mut cmd = Command::new(system_tool("setpriv")?);
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--reset-env",
            "--",
        ])
        .arg(bin_dir.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-k"])
        .arg(dir.path())
        .args([
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "synchronous_commit=off",
        ]);
        let stop = Stop::Signal {
            signal: "QUIT",
            grace: std::time::Duration::from_secs(5),
        };
        let mut process = ServerProcess::spawn("postgres", cmd, &dir.path().join("postgres.log"), stop)?;
        process.wait_ready(crate::READY_TIMEOUT, || {
            match psql_at(&bin_dir, port, &password, "postgres", "select 1") {
                Ok(out) if out == "1" => Ok(()),
                Ok(out) => Err(format!("select 1 returned {out:?}")),
                Err(e) => Err(short(e)),
            }
        })?;
        Ok(Self {
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            password,
            bin_dir,
            process,
            dir,
        })
    }

    /// Runs one SQL string with `psql` against database `postgres`; unaligned, tuples only, so
    /// `select 1, 'a'` gives `1|a`. Trailing newlines are trimmed. Panics with psql's stderr on error.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql).unwrap_or_else(|e| panic!("psql failed: {e}"))
    }

    /// [`Postgres::psql`] returning the error instead of panicking.
    pub fn try_psql(&self, sql: &str) -> Result<String> {
        psql_at(&self.bin_dir, self.port, &self.password, "postgres", sql)
    }

    /// [`Postgres::psql`] against database `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        psql_at(&self.bin_dir, self.port, &self.password, db, sql)
            .unwrap_or_else(|e| panic!("psql on {db} failed: {e}"))
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@{}:{}/postgres",
            self.user, self.password, self.host, self.port
        )
    }

    /// The directory with `pg_dump`, `pg_dumpall`, `pg_restore`, `psql` of the same major version.
    pub fn bin_dir(&self) -> &std::path::Path {
        &self.bin_dir
    }

    /// Turn TLS on with `pki`'s server certificate and let `cert_user` (a role that must exist)
    /// log in over TLS with a client certificate signed by the CA (`hostssl … cert`); other
    /// logins are unchanged. Takes effect by a configuration reload.
    pub fn enable_tls(&self, pki: &crate::tls::Pki, cert_user: &str) -> Result<()> {
        let tls_dir = self.dir.path().join("tls");
        std::fs::create_dir_all(&tls_dir).context(|| "creating the tls dir".into())?;
        chown_to(&tls_dir, "postgres")?;
        for (src, name) in [
            (&pki.ca, "ca.crt"),
            (&pki.server_cert, "server.crt"),
            (&pki.server_key, "server.key"),
        ] {
            let dst = tls_dir.join(name);
            std::fs::copy(src, &dst).context(|| format!("copying {name}"))?;
            chown_to(&dst, "postgres")?;
            std::fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .context(|| format!("chmod {name}"))?;
        }
        let hba = self.try_psql("SHOW hba_file")?;
        let old = std::fs::read_to_string(&hba).context(|| format!("reading {hba}"))?;
        std::fs::write(&hba, format!("hostssl all {cert_user} 127.0.0.1/32 cert\n{old}"))
            .context(|| format!("writing {hba}"))?;
        let file = |n: &str| tls_dir.join(n).display().to_string();
        self.try_psql(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            file("server.crt")
        ))?;
        self.try_psql(&format!(
            "ALTER SYSTEM SET ssl_key_file = '{}'",
            file("server.key")
        ))?;
        self.try_psql(&format!("ALTER SYSTEM SET ssl_ca_file = '{}'", file("ca.crt")))?;
        self.try_psql("ALTER SYSTEM SET ssl = on")?;
        self.try_psql("SELECT pg_reload_conf()")?;
        Ok(())
    }

    /// The server log.
    pub fn log_path(&self) -> &std::path::Path {
        self.process.log_path()
    }

    /// The instance's temp dir (data dir is `data/` inside; owned by `postgres`).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

fn psql_at(bin_dir: &std::path::Path, port: u16, password: &str, db: &str, sql: &str) -> Result<String> {
    let out = run_command(
        Command::new(bin_dir.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &port.to_string(), "-d", db, "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5"),
    )?;
    Ok(out.trim_end_matches('\n').to_owned())
}
