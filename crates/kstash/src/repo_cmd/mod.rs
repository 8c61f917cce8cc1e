//! `kstash repo …`: a restic-like command line over the engine (init, stream backup, snapshots,
//! dump, keys, unlock), so users and tests can work on repositories directly. Local directories
//! for now. Commands lock the repository as restic's do (restic-compatible lock files).

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command as Process, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use kstash_repo::archiver::{ParentChoice, TreeBackupOptions};
use kstash_repo::keys::KdfParams;
use kstash_repo::lock::{self, LockOptions, RepoLock};
use kstash_repo::{
    Backend, DumpOptions, InitOptions, Repository, StreamBackupOptions, backup_stream, dump_file_with,
};
use serde_json::json;

mod check;
mod forget;
mod maint;
mod repair;
mod restore;

/// Where the repository is and how to unlock it.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// Repository location: a directory, `s3:http://host:port/bucket/prefix`, `gs:bucket:/prefix`,
    /// `azure:container:/prefix`, `rest:http://host:port/path`, `b2:bucket:prefix`,
    /// `swift:container:/prefix` (credentials from the usual environment variables, as restic).
    #[arg(short = 'r', long = "repo", env = "KSTASH_REPOSITORY", global = true)]
    pub repo: Option<String>,
    /// Limit uploads to this many KiB/s.
    #[arg(long, global = true, value_name = "KIB_PER_SEC")]
    pub limit_upload: Option<u64>,
    /// Limit downloads to this many KiB/s.
    #[arg(long, global = true, value_name = "KIB_PER_SEC")]
    pub limit_download: Option<u64>,
    /// Requests in flight to a remote storage at most (default 5).
    #[arg(long, global = true, value_name = "N")]
    pub connections: Option<usize>,
    /// Accept any TLS certificate from an S3 or REST server.
    #[arg(long, global = true)]
    pub insecure_tls: bool,
    /// Trust the CA certificates in this PEM file (S3 and REST servers).
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// File whose first line is the password.
    #[arg(long, env = "KSTASH_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not lock the repository for reading (snapshots, dump, key list); writers always lock.
    #[arg(long, global = true)]
    pub no_lock: bool,
    /// How long to wait for a conflicting lock to go away, e.g. `30s`, `5m`, `1h` (default 0:
    /// fail at once, as restic 0.14 does).
    #[arg(long, global = true, alias = "retry-lock", value_name = "DURATION", value_parser = parse_duration, default_value = "0")]
    pub lock_wait: Duration,
    #[command(subcommand)]
    pub command: RepoCommand,
}

/// `--threads` of the commands that decode blobs on several workers (dump, restore).
#[derive(Debug, Clone, Copy, Args)]
pub struct DecodeThreads {
    /// Threads that read, verify, decrypt and decompress blobs (default 0: one per CPU, at most
    /// 8 for dump and 4 for restore, which also writes files on them).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a new repository (format v2, zstd). A missing S3 or GCS bucket or Azure container
    /// is created first, as `restic init` does (GCS needs GOOGLE_PROJECT_ID for that).
    Init {
        /// Repository format version (1 or 2).
        #[arg(long, default_value_t = 2)]
        repository_version: u32,
    },
    /// Back up files and directories, or a stream (`--stdin` or `--stdin-from-command`).
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots(forget::FilterArgs),
    /// Remove snapshots by policy (`--keep-*`, as restic's `forget`) or by id.
    Forget(Box<forget::ForgetArgs>),
    /// Write a file of a snapshot (`latest` or an id prefix) to stdout.
    Dump {
        /// Snapshot: `latest` or an id (prefix).
        snapshot: String,
        /// Path of the file inside the snapshot, e.g. `/dumpfile.sql`.
        path: String,
        #[command(flatten)]
        threads: DecodeThreads,
    },
    /// Manage the keys (passwords) of the repository.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Restore a snapshot (or `SNAPSHOT:SUBPATH`) into a directory.
    Restore(restore::RestoreArgs),
    /// Verify the repository: structure, and with `--read-data` (or a subset) every blob.
    Check(check::CheckArgs),
    /// Delete data no snapshot uses; repack partly used packs (exclusive lock).
    Prune(maint::PruneArgs),
    /// Repair the index (`repair index`) or snapshots (`repair snapshots`), as restic 0.16+.
    #[command(subcommand)]
    Repair(repair::RepairCommand),
    /// The same as `repair index` (restic 0.14's name).
    RebuildIndex(repair::RepairIndexArgs),
    /// Copy snapshots from another repository (`--from-repo`) into this one.
    Copy(maint::CopyArgs),
    /// Sizes of snapshots: `--mode restore-size` (default) or `raw-data`.
    Stats(maint::StatsArgs),
    /// Remove stale locks (left by processes that died), or all locks with `--remove-all`.
    Unlock {
        /// Remove every lock, even those of running processes.
        #[arg(long)]
        remove_all: bool,
    },
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Files and directories to back up (a tree backup); or use `--stdin`.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Exclude paths matching a pattern (`*.log`, `/abs/dir`, `**/cache`; repeatable).
    #[arg(long = "exclude", short = 'e', value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// Compare with this snapshot instead of the latest one of this host with the same paths.
    #[arg(long, value_name = "SNAPSHOT")]
    pub parent: Option<String>,
    /// Read every file again, ignoring the parent snapshot.
    #[arg(long)]
    pub force: bool,
    /// Read the data from standard input.
    #[arg(long)]
    pub stdin: bool,
    /// File name to store the stream under.
    #[arg(long, default_value = "stdin")]
    pub stdin_filename: String,
    /// Run the command given after `--` and back up its standard output (as restic does); a
    /// non-zero exit fails the backup and leaves no snapshot.
    #[arg(long, requires = "command")]
    pub stdin_from_command: bool,
    /// The producer command for `--stdin-from-command`, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Host name to record.
    #[arg(long)]
    pub host: Option<String>,
    /// Compression: `auto` (restic's default), `fastest` or `fast` (less CPU, for streams
    /// competing with their producer), `better` or `max` (restic 0.19's names).
    #[arg(long, default_value = "auto", value_parser = ["auto", "fastest", "fast", "better", "max"])]
    pub compression: String,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List keys.
    List,
    /// Add a key; the new password is read from `--new-password-file`.
    Add {
        #[arg(long)]
        new_password_file: PathBuf,
    },
    /// Remove a key (not the one in use).
    Remove { id: String },
    /// Change the password of the key in use.
    Passwd {
        #[arg(long)]
        new_password_file: PathBuf,
    },
}

fn read_password_file(path: &PathBuf) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading password file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

fn password(args: &RepoArgs) -> Result<String> {
    if let Some(p) = &args.password_file {
        return read_password_file(p);
    }
    for var in ["KSTASH_PASSWORD", "RESTIC_PASSWORD"] {
        if let Ok(p) = std::env::var(var) {
            return Ok(p);
        }
    }
    if let Ok(p) = std::env::var("RESTIC_PASSWORD_FILE") {
        return read_password_file(&PathBuf::from(p));
    }
    bail!("no repository password: use --password-file, KSTASH_PASSWORD or RESTIC_PASSWORD")
}

/// The repository URL from `-r`, `KSTASH_REPOSITORY` or `RESTIC_REPOSITORY`.
fn repository_url(args: &RepoArgs) -> Result<String> {
    args.repo
        .clone()
        .or_else(|| std::env::var("RESTIC_REPOSITORY").ok())
        .context("no repository given: use -r/--repo LOCATION, KSTASH_REPOSITORY or RESTIC_REPOSITORY")
}

/// The storage backend of `url`, with the connection flags applied.
fn backend_at(args: &RepoArgs, url: &str) -> Result<Arc<dyn Backend>> {
    Ok(kstash_storage::open_backend(&storage_config(args, url)?)?)
}

/// The storage at `url`, with the connection flags applied.
fn storage_config(args: &RepoArgs, url: &str) -> Result<kstash_storage::StorageConfig> {
    let mut config = kstash_storage::parse_repository_url(url, |k| std::env::var(k).ok())?;
    if let Some(n) = args.connections {
        config.tuning.max_connections = n.max(1);
    }
    config.tuning.upload_limit = args.limit_upload.map(|k| k * 1024);
    config.tuning.download_limit = args.limit_download.map(|k| k * 1024);
    let ca = match &args.cacert {
        Some(f) => Some(std::fs::read(f).with_context(|| format!("reading --cacert {}", f.display()))?),
        None => None,
    };
    match &mut config.location {
        kstash_storage::Location::S3(l) => {
            l.insecure_tls |= args.insecure_tls;
            l.ca_cert_pem = ca.or(l.ca_cert_pem.take());
        }
        kstash_storage::Location::Rest(l) => {
            l.insecure_tls |= args.insecure_tls;
            l.ca_cert_pem = ca.or(l.ca_cert_pem.take());
        }
        _ => {}
    }
    Ok(config)
}

/// The backend of this command's repository.
fn backend(args: &RepoArgs) -> Result<Arc<dyn Backend>> {
    backend_at(args, &repository_url(args)?)
}

/// A Go-style duration: `0`, `90s`, `5m`, `1h30m`, `500ms` (a bare number is seconds).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration '{text}' (examples: 0, 30s, 5m, 1h30m)");
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let one = match &rest[..unit] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        total += one
            .checked_mul(u32::try_from(n).map_err(|_| bad())?)
            .ok_or_else(bad)?;
        rest = &rest[unit..];
    }
    Ok(total)
}

/// Lock options from the command line.
fn lock_options(args: &RepoArgs) -> LockOptions {
    LockOptions::waiting(args.lock_wait)
}

/// A shared lock for a reading command, unless `--no-lock`.
fn read_lock(args: &RepoArgs, repo: &Repository) -> Result<Option<RepoLock>> {
    let options = (!args.no_lock).then(|| lock_options(args));
    Ok(lock::shared_and_fresh(repo, options.as_ref())?)
}

fn open(args: &RepoArgs) -> Result<Repository> {
    let backend = backend(args)?;
    let location = backend.location();
    Repository::open(backend, &password(args)?).with_context(|| format!("opening repository {location}"))
}

/// Run a `kstash repo` command.
pub fn run(args: RepoArgs) -> Result<ExitCode> {
    match &args.command {
        RepoCommand::Init { repository_version } => {
            // As `restic init`: a missing bucket or container is created first.
            let config = storage_config(&args, &repository_url(&args)?)?;
            let (backend, created) = kstash_storage::open_backend_creating_bucket(&config)?;
            if let Some(what) = created {
                eprintln!("created {what} at {}", config.display());
            }
            let dir = backend.location();
            let options = InitOptions {
                version: *repository_version,
                ..Default::default()
            };
            let repo = Repository::init(backend, &password(&args)?, options)
                .with_context(|| format!("creating repository at {dir}"))?;
            if args.json {
                outln!(
                    "{}",
                    json!({"message_type": "initialized", "id": repo.config().id, "repository": dir})
                );
            } else {
                outln!("created kstash repository {} at {}", &repo.config().id[..10], dir);
            }
        }
        RepoCommand::Backup(b) => return backup(&args, b),
        RepoCommand::Prune(p) => return maint::run_prune(&args, p),
        RepoCommand::Repair(c) => return repair::run(&args, c),
        RepoCommand::RebuildIndex(a) => return repair::run_index(&args, a),
        RepoCommand::Copy(c) => return maint::run_copy(&args, c),
        RepoCommand::Stats(a) => return maint::run_stats(&args, a),
        RepoCommand::Check(c) => return check::run(&args, c),
        RepoCommand::Forget(f) => return forget::run(&args, f),
        RepoCommand::Restore(r) => return restore::run(&args, r),
        RepoCommand::Snapshots(filter) => {
            let repo = open(&args)?;
            let _lock = read_lock(&args, &repo)?;
            let (all, unreadable) = repo.list_snapshots_lenient()?;
            for (name, e) in &unreadable {
                eprintln!("warning: snapshot {name} cannot be read ({e}); run `kstash repo check`");
            }
            let mut list = filter.to_filter().apply(all);
            list.sort_by_key(|s| s.snapshot.time.timestamp);
            if args.json {
                let items: Vec<_> = list
                    .iter()
                    .map(|s| {
                        let mut v = serde_json::to_value(&s.snapshot).unwrap_or_default();
                        v["id"] = json!(s.id.to_string());
                        v["short_id"] = json!(s.id.short());
                        v
                    })
                    .collect();
                outln!("{}", serde_json::to_string(&items)?);
            } else {
                outln!(
                    "{:<10}  {:<25}  {:<15}  {:<15}  Paths",
                    "ID",
                    "Time",
                    "Host",
                    "Tags"
                );
                for s in &list {
                    let t = &s.snapshot;
                    outln!(
                        "{:<10}  {:<25}  {:<15}  {:<15}  {}",
                        s.id.short(),
                        t.time.to_string().chars().take(25).collect::<String>(),
                        t.hostname,
                        t.tags.join(","),
                        t.paths.join(",")
                    );
                }
                outln!("{} snapshots", list.len());
            }
        }
        RepoCommand::Dump {
            snapshot,
            path,
            threads,
        } => {
            let repo = open(&args)?;
            let stdout = std::io::stdout().lock();
            let mut out = BufWriter::with_capacity(1 << 20, stdout);
            let options = DumpOptions {
                lock: (!args.no_lock).then(|| lock_options(&args)),
                threads: threads.threads,
            };
            dump_file_with(&repo, snapshot, path, &mut out, &options)
                .with_context(|| format!("dumping {path} from {snapshot}"))?;
            out.flush()?;
        }
        RepoCommand::Key(k) => key(&args, k)?,
        RepoCommand::Unlock { remove_all } => {
            let repo = open(&args)?;
            let removed = if *remove_all {
                lock::remove_all_locks(&repo)?
            } else {
                lock::remove_stale_locks(&repo)?
            };
            if args.json {
                let ids: Vec<String> = removed.iter().map(|id| id.to_string()).collect();
                outln!("{}", json!({"message_type": "unlock", "removed": ids}));
            } else {
                outln!("successfully removed {} locks", removed.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Output of a producer command, checked when the stream ends: a non-zero exit turns into a read
/// error, so the engine fails the backup and writes no snapshot.
struct CommandOutput {
    child: Child,
    stdout: std::process::ChildStdout,
    command: String,
}

impl Read for CommandOutput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let status = self.child.wait()?;
            if !status.success() {
                return Err(std::io::Error::other(format!(
                    "command `{}` failed: {status}",
                    self.command
                )));
            }
        }
        Ok(n)
    }
}

fn backup(args: &RepoArgs, b: &BackupArgs) -> Result<ExitCode> {
    if !b.paths.is_empty() {
        if b.stdin || b.stdin_from_command {
            bail!("give either paths to back up or --stdin/--stdin-from-command, not both");
        }
        return backup_tree(args, b);
    }
    if b.stdin == b.stdin_from_command {
        bail!("give paths to back up, --stdin, or --stdin-from-command -- COMMAND…");
    }
    let mut repo = open(args)?;
    if let Some(level) = kstash_repo::repository::compression_level_of(&b.compression) {
        repo.set_compression_level(level);
    }
    let mut options = StreamBackupOptions::named(&b.stdin_filename);
    options.tags = b.tags.clone();
    options.hostname = b.host.clone();
    // Backups always lock (as restic's do), `--no-lock` notwithstanding.
    options.lock = Some(lock_options(args));
    let (progress, bar) = crate::progress_bar::start("backup", crate::progress_bar::wanted(args.json));
    options.progress = Some(progress);
    let summary = if b.stdin {
        backup_stream(&repo, std::io::stdin(), &options)?
    } else {
        let (prog, rest) = b
            .command
            .split_first()
            .context("--stdin-from-command needs a command after `--`")?;
        let mut child = Process::new(prog)
            .args(rest)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{prog}`"))?;
        let stdout = child.stdout.take().expect("piped");
        let reader = CommandOutput {
            child,
            stdout,
            command: b.command.join(" "),
        };
        backup_stream(&repo, reader, &options)?
    };
    drop(bar);
    if args.json {
        outln!(
            "{}",
            json!({"message_type": "summary", "snapshot_id": summary.snapshot_id.to_string(),
                "total_bytes_processed": summary.bytes_read, "data_added": summary.bytes_stored,
                "data_blobs": summary.blobs_new, "data_blobs_known": summary.blobs_known})
        );
    } else {
        outln!(
            "snapshot {} saved: {} read, {} new data ({} stored), {} new blobs, {} known",
            summary.snapshot_id.short(),
            kstash_api::phase::format_size(summary.bytes_read),
            kstash_api::phase::format_size(summary.bytes_added),
            kstash_api::phase::format_size(summary.bytes_stored),
            summary.blobs_new,
            summary.blobs_known
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn backup_tree(args: &RepoArgs, b: &BackupArgs) -> Result<ExitCode> {
    let mut repo = open(args)?;
    if let Some(level) = kstash_repo::repository::compression_level_of(&b.compression) {
        repo.set_compression_level(level);
    }
    let (progress, bar) = crate::progress_bar::start("backup", crate::progress_bar::wanted(args.json));
    let options = TreeBackupOptions {
        excludes: b.excludes.clone(),
        parent: match (&b.parent, b.force) {
            (_, true) => ParentChoice::None,
            (Some(p), false) => ParentChoice::Snapshot(p.clone()),
            (None, false) => ParentChoice::Latest,
        },
        tags: b.tags.clone(),
        hostname: b.host.clone(),
        lock: Some(lock_options(args)),
        progress: Some(progress),
        ..Default::default()
    };
    let s = kstash_repo::archiver::backup_tree(&repo, &b.paths, &options)?;
    drop(bar);
    for e in &s.errors {
        eprintln!("error: {}: {}", e.path, e.message);
    }
    if args.json {
        outln!(
            "{}",
            json!({"message_type": "summary", "snapshot_id": s.snapshot_id.to_string(),
                "parent": s.parent.map(|p| p.to_string()),
                "files_new": s.files_new, "files_changed": s.files_changed, "files_unmodified": s.files_unmodified,
                "dirs_new": s.dirs_new, "dirs_changed": s.dirs_changed, "dirs_unmodified": s.dirs_unmodified,
                "data_blobs": s.data_blobs, "tree_blobs": s.tree_blobs, "data_added": s.bytes_added,
                "data_added_packed": s.bytes_stored, "total_files_processed": s.total_files,
                "total_bytes_processed": s.total_bytes, "errors": s.errors.len()})
        );
    } else {
        outln!(
            "Files: {} new, {} changed, {} unmodified\nDirs:  {} new, {} changed, {} unmodified\nAdded to the repository: {} ({} stored)\nprocessed {} files, {}\nsnapshot {} saved",
            s.files_new,
            s.files_changed,
            s.files_unmodified,
            s.dirs_new,
            s.dirs_changed,
            s.dirs_unmodified,
            kstash_api::phase::format_size(s.bytes_added),
            kstash_api::phase::format_size(s.bytes_stored),
            s.total_files,
            kstash_api::phase::format_size(s.total_bytes),
            s.snapshot_id.short()
        );
    }
    if !s.errors.is_empty() {
        eprintln!(
            "Warning: {} items could not be read; the snapshot is incomplete",
            s.errors.len()
        );
        // As restic: 3 means "snapshot saved, but some source data could not be read".
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn key(args: &RepoArgs, k: &KeyCommand) -> Result<()> {
    let mut repo = open(args)?;
    // As restic: listing and adding take a shared lock, removing and changing an exclusive one.
    let _lock = match k {
        KeyCommand::List => read_lock(args, &repo)?,
        KeyCommand::Add { .. } => Some(lock::acquire(&repo, false, &lock_options(args))?),
        KeyCommand::Remove { .. } | KeyCommand::Passwd { .. } => {
            Some(lock::acquire(&repo, true, &lock_options(args))?)
        }
    };
    match k {
        KeyCommand::List => {
            let keys = repo.list_keys()?;
            if args.json {
                let items: Vec<_> = keys
                    .iter()
                    .map(|k| json!({"current": k.current, "id": k.id.to_string(), "userName": k.username, "hostName": k.hostname, "created": k.created.to_string()}))
                    .collect();
                outln!("{}", serde_json::to_string(&items)?);
            } else {
                for k in keys {
                    outln!(
                        "{}{:<10}  {:<12}  {:<15}  {}",
                        if k.current { "*" } else { " " },
                        k.id.short(),
                        k.username,
                        k.hostname,
                        k.created
                    );
                }
            }
        }
        KeyCommand::Add { new_password_file } => {
            let id = repo.add_key(&read_password_file(new_password_file)?, KdfParams::default())?;
            outln!("saved new key {}", id.short());
        }
        KeyCommand::Remove { id } => {
            let keys = repo.list_keys()?;
            let found: Vec<_> = keys
                .iter()
                .filter(|k| k.id.to_string().starts_with(id.as_str()))
                .collect();
            match found.as_slice() {
                [k] if k.current => bail!(
                    "key {} is the one in use; open the repository with another key to remove it",
                    k.id.short()
                ),
                [k] => {
                    repo.remove_key(&k.id)?;
                    outln!("removed key {}", k.id.short());
                }
                [] => bail!("no key matches '{id}' (see `kstash repo key list`)"),
                _ => bail!("'{id}' matches {} keys; give more of the id", found.len()),
            }
        }
        KeyCommand::Passwd { new_password_file } => {
            let id = repo.change_password(&read_password_file(new_password_file)?, KdfParams::default())?;
            outln!("changed password; new key {}", id.short());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("").is_err() || parse_duration("") == Ok(Duration::ZERO));
    }
}
