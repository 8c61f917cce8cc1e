//! Command-line definitions (clap derive): kubectl-style resource commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Print the CustomResourceDefinitions as YAML.
    Crd(CrdArgs),
    /// Work on a repository directly (restic-like): init, backup, snapshots, dump, key.
    Repo(Box<crate::repo_cmd::RepoArgs>),
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
