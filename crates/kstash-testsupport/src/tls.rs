//! A throw-away PKI for TLS tests, made with the `openssl` CLI: a CA, a server certificate for
//! `127.0.0.1`/`localhost`, and client certificates whose common name is a database user.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::error::{IoContext, Result};
use crate::process::temp_dir;
use crate::tools::{run_command, system_tool};

/// PEM files of a CA and a server certificate signed by it.
pub struct Pki {
    /// `ca.crt`.
    pub ca: PathBuf,
    /// `server.crt` (SAN `IP:127.0.0.1`, `DNS:localhost`).
    pub server_cert: PathBuf,
    /// `server.key` (mode 0600).
    pub server_key: PathBuf,
    dir: TempDir,
}

/// A client certificate and its key.
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// A new CA and server certificate (RSA 2048, valid for a day).
    pub fn new() -> Result<Pki> {
        let dir = temp_dir("pki")?;
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=kstash test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        )?;
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .context(|| "writing server.ext".into())?;
        let pki = Pki {
            ca: d.join("ca.crt"),
            server_cert: d.join("server.crt"),
            server_key: d.join("server.key"),
            dir,
        };
        pki.sign("server", "localhost", Some("server.ext"))?;
        Ok(pki)
    }

    /// A client certificate with common name `user`, signed by the CA.
    pub fn client(&self, user: &str) -> Result<ClientCert> {
        let name = format!("client-{user}");
        self.sign(&name, user, None)?;
        Ok(ClientCert {
            cert: self.dir.path().join(format!("{name}.crt")),
            key: self.dir.path().join(format!("{name}.key")),
        })
    }

    fn sign(&self, name: &str, cn: &str, ext: Option<&str>) -> Result<()> {
        let d = self.dir.path();
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let subj = format!("/CN={cn}");
        openssl(
            d,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", &subj, "-keyout", &key, "-out", &csr,
            ],
        )?;
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &crt,
        ];
        if let Some(ext) = ext {
            args.extend(["-extfile", ext]);
        }
        openssl(d, &args)
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let bin = system_tool("openssl")?;
    run_command(Command::new(bin).current_dir(dir).args(args)).map(|_| ())
}
