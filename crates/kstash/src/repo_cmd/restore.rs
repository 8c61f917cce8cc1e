//! `kstash repo restore`: write a snapshot (or `SNAPSHOT:SUBPATH`) into a target directory with
//! include/exclude patterns, skipping unchanged files; prints a summary (or JSON with `--json`),
//! every failed item on stderr, and exits 1 when any item failed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use kstash_api::phase::format_size;
use kstash_repo::{ExistingFiles, RestoreOptions, restore};
use serde_json::json;

use super::RepoArgs;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot: `latest` or an id (prefix), optionally with `:SUBPATH` to restore only that
    /// directory's contents (or that one file).
    pub snapshot: String,
    /// Directory to restore into (created if missing).
    #[arg(short = 't', long, value_name = "DIR")]
    pub target: PathBuf,
    /// Restore only what matches this pattern, and the directories leading to it (repeatable).
    /// `*`, `?`, `[a-z]` match within a name, `**` any depth; a leading `/` anchors the pattern at
    /// the root of what is restored, otherwise it may match at any depth.
    #[arg(short = 'i', long = "include", value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Do not restore what matches this pattern, nor anything below it (repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Before skipping an existing file with the snapshot's size and modification time, also read
    /// it and compare its content with the snapshot (hash per blob).
    #[arg(long)]
    pub verify: bool,
    /// Rewrite existing files even when they look unchanged.
    #[arg(long, conflicts_with = "verify")]
    pub overwrite: bool,
    /// Write runs of zeros instead of leaving holes (sparse files are the default).
    #[arg(long)]
    pub no_sparse: bool,
    #[command(flatten)]
    pub threads: super::DecodeThreads,
}

/// Run `kstash repo restore`.
pub fn run(args: &RepoArgs, r: &RestoreArgs) -> Result<ExitCode> {
    let repo = super::open(args)?;
    let options = RestoreOptions {
        include: r.include.clone(),
        exclude: r.exclude.clone(),
        existing: if r.verify {
            ExistingFiles::Verify
        } else if r.overwrite {
            ExistingFiles::Overwrite
        } else {
            ExistingFiles::SkipUnchanged
        },
        sparse: !r.no_sparse,
        threads: r.threads.threads,
        lock: (!args.no_lock).then(|| super::lock_options(args)),
        progress: None,
    };
    let s = restore(&repo, &r.snapshot, &r.target, &options)
        .with_context(|| format!("restoring {} to {}", r.snapshot, r.target.display()))?;
    for e in &s.errors {
        eprintln!("error: {e}");
    }
    let snapshot = s.snapshot.map(|id| id.to_string()).unwrap_or_default();
    if args.json {
        let errors: Vec<String> = s.errors.iter().map(ToString::to_string).collect();
        outln!(
            "{}",
            json!({"message_type": "summary", "snapshot_id": snapshot, "target": r.target,
                "files_restored": s.files, "hardlinks_restored": s.hardlinks, "dirs_restored": s.dirs,
                "symlinks_restored": s.symlinks, "special_files_restored": s.specials,
                "bytes_restored": s.bytes, "sparse_bytes": s.sparse_bytes,
                "files_skipped": s.files_skipped, "bytes_skipped": s.bytes_skipped,
                "nodes_skipped": s.nodes_skipped, "warnings": s.warnings, "errors": errors})
        );
    } else {
        for w in &s.warnings {
            eprintln!("warning: {w}");
        }
        outln!(
            "restored snapshot {} to {}: {} files ({}), {} dirs, {} hard links, {} symlinks, {} special files; {} unchanged files skipped ({})",
            &snapshot[..snapshot.len().min(8)],
            r.target.display(),
            s.files,
            format_size(s.bytes),
            s.dirs,
            s.hardlinks,
            s.symlinks,
            s.specials,
            s.files_skipped,
            format_size(s.bytes_skipped)
        );
    }
    if s.is_complete() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("Fatal: {} items could not be restored", s.errors.len());
        Ok(ExitCode::from(1))
    }
}
