//! The command line: its definition (clap derive, kubectl-style resource commands) and
//! [`Cli::run`], the one place that says which command runs which function.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::resources::{self, open_store};
use crate::{debug_cmd, kube_cmd, ops, repo_cmd, repositories};

/// kstash: KubeStash-compatible backup and restore for databases and volumes.
#[derive(Debug, Parser)]
#[command(name = "kstash", version, about, propagate_version = true)]
pub struct Cli {
    /// Data directory of the embedded runtime (holds kstash.db).
    #[arg(long, global = true, env = "KSTASH_HOME")]
    pub home: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update resources from files, directories or stdin (`-`).
    Apply(ApplyArgs),
    /// List resources, or show one.
    Get(GetArgs),
    /// Show a resource in detail.
    Describe(DescribeArgs),
    /// Delete resources by name or from files.
    Delete(DeleteArgs),
    /// Validate manifests offline (no store); exits 1 listing every error.
    Validate(FileArgs),
    /// Print the KubeStash equivalent of Stash v1 manifests (Repository, BackupConfiguration,
    /// BackupBlueprint, RestoreSession); what has no equivalent is listed in comments.
    Convert(ConvertArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crd(CrdArgs),
    /// Work on a repository directly (restic-like): init, backup, snapshots, dump, key.
    Repo(Box<crate::repo_cmd::RepoArgs>),
    /// Run the embedded daemon: reconcilers, schedules and executors over the store.
    Server(ServerArgs),
    /// Run the Kubernetes operator: the same reconcilers over the Kubernetes API (CRDs, CronJobs,
    /// Jobs), with leader election.
    Operator(OperatorArgs),
    /// Run an executor job (started by the daemon; not for direct use).
    #[command(hide = true)]
    Exec(ExecArgs),
    /// Start a backup now: one BackupSession per session of a BackupConfiguration.
    Trigger(TriggerArgs),
    /// Verify backups now: one BackupVerificationSession per repository of a BackupConfiguration
    /// that names a BackupVerifier (its newest Succeeded Snapshot is restored and checked).
    Verify(VerifyArgs),
    /// Pause a BackupConfiguration (no scheduled backups until resumed).
    Pause(BcArgs),
    /// Resume a paused BackupConfiguration.
    Resume(BcArgs),
    /// Show the executor log of a BackupSession or RestoreSession.
    Logs(LogsArgs),
    /// List Snapshots (newest first) with their repository, session, phase and size.
    Snapshots(SnapshotsArgs),
    /// Remove stale locks from every component repository of a Repository.
    Unlock(UnlockArgs),
    /// Manage the restic keys (passwords) of a Repository's component repositories.
    #[command(alias = "pw")]
    Password(PasswordArgs),
    /// Restore a Snapshot's files into a local directory.
    Download(DownloadArgs),
    /// Explain why a backup, restore or storage is not working.
    Debug(DebugArgs),
    /// Print the login link of the web dashboard that `kstash server` runs on this data directory.
    UiUrl,
}

impl Cli {
    /// Run the command: each command and the function that runs it.
    pub fn run(self) -> Result<ExitCode> {
        let home = self.home.as_deref();
        match self.command {
            Command::Apply(a) => resources::apply(&open_store(home)?, &a.files.files, a.namespace.as_deref()),
            Command::Get(g) => resources::get(&open_store(home)?, g),
            Command::Describe(d) => resources::describe(&open_store(home)?, d),
            Command::Delete(d) => resources::delete(&open_store(home)?, d),
            Command::Validate(v) => resources::validate(&v.files),
            Command::Convert(a) => crate::convert_cmd::convert_cmd(&open_store(home)?, a),
            Command::Crd(c) => resources::print_crds(c.kind.as_deref()),
            Command::Repo(r) => repo_cmd::run(*r),
            Command::Server(a) => ops::server(home, a),
            Command::Operator(a) => kube_cmd::operator(a),
            Command::Exec(a) if kube_cmd::in_cluster() => kube_cmd::exec(a),
            Command::Exec(a) => ops::exec(home, a),
            Command::Trigger(a) if kube_cmd::in_cluster() => kube_cmd::trigger(a),
            Command::Trigger(a) => ops::trigger(home, a),
            Command::Verify(a) if kube_cmd::in_cluster() => kube_cmd::verify(a),
            Command::Verify(a) => ops::verify(home, a),
            Command::Pause(a) => ops::set_paused(home, a, true),
            Command::Resume(a) => ops::set_paused(home, a, false),
            Command::Logs(a) => ops::logs(home, a),
            Command::Snapshots(a) => repositories::snapshots(&open_store(home)?, a),
            Command::Unlock(a) => repositories::unlock(&open_store(home)?, a),
            Command::Password(a) => repositories::password(&open_store(home)?, a),
            Command::Download(a) => repositories::download(&open_store(home)?, a),
            Command::Debug(a) => debug_cmd::debug(home, &open_store(home)?, a),
            Command::UiUrl => crate::dashboard::ui_url(home),
        }
    }
}

impl Command {
    /// The log level when `KSTASH_LOG` is unset: the daemon, the operator and executors log what
    /// they do; other commands only warnings.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Server(_) | Command::Exec(_) | Command::Operator(_) => "info",
            _ => "warn",
        }
    }
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Serve KubeStash state metrics at http://ADDR/metrics (empty to disable).
    #[arg(long, default_value = "127.0.0.1:9464", env = "KSTASH_METRICS_ADDR")]
    pub metrics_addr: String,
    /// Push session metrics to this Prometheus Pushgateway after every backup and restore.
    #[arg(long, env = "KSTASH_PUSHGATEWAY")]
    pub pushgateway: Option<String>,
    /// Do not install the addon catalog into the store.
    #[arg(long)]
    pub no_catalog: bool,
    /// At most this many executors run at once; more wait in a queue.
    #[arg(long, default_value_t = 8, env = "KSTASH_MAX_EXECUTORS")]
    pub max_executors: usize,
    /// Reconcile this many objects at once (one at a time per object).
    #[arg(long, default_value_t = kstash_controller::queue::DEFAULT_WORKERS, env = "KSTASH_WORKERS")]
    pub workers: usize,
    #[command(flatten)]
    pub ui: UiArgs,
}

/// The web dashboard's flags (`kstash server`: on by default at 127.0.0.1:9465, or a free
/// loopback port when that one is taken; `kstash operator`: off unless --ui-addr is given).
#[derive(Debug, Args, Clone, Default)]
pub struct UiArgs {
    /// Serve the web dashboard here (empty: none). `kstash server`: default 127.0.0.1:9465, or a
    /// free loopback port when that one is taken; `kstash operator`: none unless given. Another
    /// address than loopback needs --ui-tls-cert/--ui-tls-key or --ui-insecure. `kstash ui-url`
    /// prints the login link.
    #[arg(long, env = "KSTASH_UI_ADDR")]
    pub ui_addr: Option<String>,
    /// PEM certificate chain for HTTPS.
    #[arg(long, requires = "ui_tls_key")]
    pub ui_tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, requires = "ui_tls_cert")]
    pub ui_tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (anyone on the network sees the traffic).
    #[arg(long)]
    pub ui_insecure: bool,
    /// Show everything, allow no action (trigger, pause, resume, unlock, restore).
    #[arg(long)]
    pub ui_read_only: bool,
}

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the pod's ServiceAccount).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Hold a Lease so that only one replica acts at a time.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: the pod's namespace, POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Serve /healthz and /readyz here (empty to disable).
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub health_addr: String,
    /// Serve KubeStash state metrics at /metrics here (empty to disable).
    #[arg(long, default_value = "0.0.0.0:9464")]
    pub metrics_addr: String,
    /// Push session metrics to this Prometheus Pushgateway after every backup and restore.
    #[arg(long, env = "KSTASH_PUSHGATEWAY")]
    pub pushgateway: Option<String>,
    /// Image of the trigger CronJobs' pods (`kstash trigger`).
    #[arg(long, env = "KSTASH_IMAGE", default_value = "ghcr.io/kstash/kstash:latest")]
    pub image: String,
    /// The operator's own ServiceAccount (informational; executors get their own per namespace).
    #[arg(long, default_value = "kstash")]
    pub service_account: String,
    /// Reconcile this many objects at once (one at a time per object).
    #[arg(long, default_value_t = kstash_controller::queue::DEFAULT_WORKERS, env = "KSTASH_WORKERS")]
    pub workers: usize,
    #[command(flatten)]
    pub ui: UiArgs,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(subcommand)]
    pub job: ExecJob,
    /// How often live progress is written into the Snapshot or RestoreSession status (Go
    /// duration; KubeStash writes it every 10s). Executors inherit it from the daemon's env.
    #[arg(long, global = true, env = "KSTASH_PROGRESS_PERIOD", default_value = "10s", value_parser = kstash_api::duration::parse_go_duration)]
    pub progress_period: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum ExecJob {
    /// Back up a BackupSession.
    Backup {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        backupsession: String,
    },
    /// Restore a RestoreSession from a Snapshot.
    Restore {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        restoresession: String,
        #[arg(long)]
        snapshot: String,
    },
    /// Verify what a BackupVerificationSession restored.
    Verify {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        backupverificationsession: String,
    },
    /// Run a Stash v1 BackupSession into the restic repository Stash wrote.
    StashBackup {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        backupsession: String,
    },
    /// Restore a Stash v1 RestoreSession from the restic repository Stash wrote.
    StashRestore {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        restoresession: String,
    },
    /// Run a backup function's stream export to stdout, without a store (benchmarks,
    /// debugging). Credentials from KSTASH_TARGET_USER / KSTASH_TARGET_PASSWORD.
    StreamDump(StreamArgs),
    /// Feed a stream from stdin into a restore function's import, without a store.
    StreamLoad(StreamArgs),
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// The Addon function (`elasticsearch-backup`, `elasticsearch-restore`, `postgres-backup`, …).
    #[arg(long)]
    pub function: String,
    /// The target's URL (`http://127.0.0.1:9200`).
    #[arg(long)]
    pub url: String,
    /// Task parameters, `name=value` (repeatable).
    #[arg(long = "param", short = 'p')]
    pub params: Vec<String>,
    /// PEM file of the CA to trust for https (like an AppBinding's caBundle).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// BackupConfiguration name.
    pub name: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Only these sessions (comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    pub sessions: Vec<String>,
    /// Wait until the sessions end, with a progress bar; exit 1 when one did not succeed.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// BackupConfiguration name.
    pub name: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Only this repository (default: every repository with a backupVerifier).
    #[arg(long)]
    pub repository: Option<String>,
    /// Wait until the verifications end; exit 1 when one did not succeed.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct BcArgs {
    /// BackupConfiguration name.
    pub name: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// BackupSession or RestoreSession name.
    pub name: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only snapshots of this Repository.
    #[arg(long)]
    pub repository: Option<String>,
    /// Only snapshots of this session.
    #[arg(long)]
    pub session: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Repository name.
    pub repository: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Component paths (default: the Repository's status.componentPaths).
    #[arg(long, value_delimiter = ',')]
    pub paths: Vec<String>,
    /// Remove every lock, not only stale ones.
    #[arg(long)]
    pub remove_all: bool,
}

#[derive(Debug, Args)]
pub struct PasswordArgs {
    #[command(subcommand)]
    pub action: PasswordAction,
}

#[derive(Debug, Subcommand)]
pub enum PasswordAction {
    /// Add a key with a new password to every component repository.
    Add(PasswordTarget),
    /// List the keys of every component repository.
    List(PasswordTarget),
    /// Change the password of the key in use in every component repository.
    Update(PasswordTarget),
    /// Remove keys, given as id:path pairs.
    Remove(PasswordTarget),
}

#[derive(Debug, Args)]
pub struct PasswordTarget {
    /// Repository name.
    pub repository: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Component paths (default: all).
    #[arg(long, value_delimiter = ',')]
    pub paths: Vec<String>,
    /// File holding the new password (add, update).
    #[arg(long)]
    pub new_password_file: Option<PathBuf>,
    /// Keys to remove as `<key id prefix>:<component path>` (remove).
    #[arg(long, value_delimiter = ',')]
    pub id_paths: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Snapshot name.
    pub snapshot: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Where to put `<snapshot>/<component>/…`.
    #[arg(long, default_value = ".")]
    pub destination: PathBuf,
    /// Only these components (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub components: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DebugArgs {
    #[command(subcommand)]
    pub what: DebugWhat,
}

#[derive(Debug, Subcommand)]
pub enum DebugWhat {
    /// A BackupConfiguration and its latest sessions.
    Backup {
        name: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Only these sessions.
        #[arg(long, value_delimiter = ',')]
        sessions: Vec<String>,
    },
    /// A RestoreSession.
    Restore {
        name: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// A BackupStorage, with a write-and-delete probe.
    Backupstorage {
        name: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Do not read Stash repositories (the restore's snapshots are then not named).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// File, directory (*.yaml, *.yml, *.json, recursively) or `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Namespace for documents that do not name one.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Wide,
    Yaml,
    Json,
    Name,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Kind: name, plural, short name (`bc`, `repo`, `restore`, `fn`) or `kind.group`.
    pub kind: String,
    /// Names to show (all when omitted).
    pub names: Vec<String>,
    /// Namespace (default: `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector, e.g. `app=pg,tier!=cache`.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Kind (as for `get`).
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (default: `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kind (as for `get`); omit when using -f.
    pub kind: Option<String>,
    /// Names.
    pub names: Vec<String>,
    /// Namespace (default: `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Delete what these files describe.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Only the CRD of this kind.
    pub kind: Option<String>,
}
