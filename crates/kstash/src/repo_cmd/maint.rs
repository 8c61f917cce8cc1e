//! `kstash repo prune`, `copy` and `stats`: the maintenance commands over the engine.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use kstash_api::phase::format_size;
use kstash_repo::copy::{CopyOptions, copy_snapshots};
use kstash_repo::prune::{MaxUnused, PruneOptions, prune};
use kstash_repo::stats::{StatsMode, stats};
use kstash_repo::{Repository, SnapshotEntry};
use serde_json::json;

use super::{RepoArgs, lock_options, open, read_lock, read_password_file};

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Unused space tolerated in partly used packs: `5%` (default), a size (`100M`) or
    /// `unlimited` (never repack).
    #[arg(long, default_value = "5%", value_parser = parse_max_unused)]
    pub max_unused: MaxUnused,
    /// Show what would be done without changing anything.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

fn parse_max_unused(text: &str) -> Result<MaxUnused, String> {
    MaxUnused::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The repository to copy from (a local directory).
    #[arg(long, value_name = "REPO")]
    pub from_repo: String,
    /// File whose first line is the password of the source repository.
    #[arg(long, value_name = "FILE", env = "KSTASH_FROM_PASSWORD_FILE")]
    pub from_password_file: PathBuf,
    /// Snapshots to copy (`latest` or ids); all when none is given.
    pub snapshots: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// `restore-size` (bytes a restore writes) or `raw-data` (distinct blobs, compression).
    #[arg(long, default_value = "restore-size")]
    pub mode: StatsMode,
    /// Snapshots to count (`latest` or ids); all when none is given.
    pub snapshots: Vec<String>,
}

fn select(repo: &Repository, specs: &[String]) -> Result<Vec<SnapshotEntry>> {
    if specs.is_empty() {
        return Ok(repo.list_snapshots()?);
    }
    specs
        .iter()
        .map(|s| repo.find_snapshot(s).with_context(|| format!("snapshot {s}")))
        .collect()
}

pub fn run_prune(args: &RepoArgs, p: &PruneArgs) -> Result<ExitCode> {
    let repo = open(args)?;
    let options = PruneOptions {
        max_unused: p.max_unused,
        dry_run: p.dry_run,
        lock: Some(lock_options(args)),
        ..Default::default()
    };
    let s = prune(&repo, &options)?;
    if args.json {
        outln!(
            "{}",
            json!({"message_type": "prune", "dry_run": s.dry_run, "snapshots": s.snapshots,
                "blobs_used": s.blobs_used, "bytes_used": s.bytes_used, "bytes_unused": s.bytes_unused,
                "packs_kept": s.packs_kept, "packs_repacked": s.packs_repacked, "packs_unused": s.packs_unused,
                "packs_unindexed": s.packs_unindexed, "packs_written": s.packs_written,
                "packs_deleted": s.packs_deleted, "bytes_deleted": s.bytes_deleted,
                "bytes_unused_after": s.bytes_unused_after})
        );
    } else {
        outln!(
            "used:   {} blobs, {}\nunused: {}\npacks:  keep {}, repack {}, delete {} unused and {} unindexed",
            s.blobs_used,
            format_size(s.bytes_used),
            format_size(s.bytes_unused),
            s.packs_kept,
            s.packs_repacked,
            s.packs_unused,
            s.packs_unindexed
        );
        if s.dry_run {
            outln!("dry run: nothing was changed");
        } else {
            outln!(
                "wrote {} packs, deleted {} packs ({}); unused space left: {}",
                s.packs_written,
                s.packs_deleted,
                format_size(s.bytes_deleted),
                format_size(s.bytes_unused_after)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_copy(args: &RepoArgs, c: &CopyArgs) -> Result<ExitCode> {
    let dst = open(args)?;
    let src = Repository::open(
        super::backend_at(args, &c.from_repo)?,
        &read_password_file(&c.from_password_file)?,
    )
    .with_context(|| format!("opening source repository {}", c.from_repo))?;
    src.load_index().context("loading the source index")?;
    let snapshots = select(&src, &c.snapshots)?;
    let options = CopyOptions {
        lock: Some(lock_options(args)),
        ..Default::default()
    };
    let s = copy_snapshots(&src, &dst, &snapshots, &options)?;
    if args.json {
        let copied: Vec<_> = s
            .copied
            .iter()
            .map(|(a, b)| json!({"source": a.to_string(), "copy": b.to_string()}))
            .collect();
        let skipped: Vec<String> = s.skipped.iter().map(|i| i.to_string()).collect();
        outln!(
            "{}",
            json!({"message_type": "copy", "copied": copied, "skipped": skipped,
                "blobs_copied": s.blobs_copied, "bytes_copied": s.bytes_copied})
        );
    } else {
        for (a, b) in &s.copied {
            outln!("snapshot {} copied as {}", a.short(), b.short());
        }
        for a in &s.skipped {
            outln!("snapshot {} is already in the destination; skipped", a.short());
        }
        outln!(
            "{} blobs ({}) copied",
            s.blobs_copied,
            format_size(s.bytes_copied)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_stats(args: &RepoArgs, a: &StatsArgs) -> Result<ExitCode> {
    let repo = open(args)?;
    let _lock = read_lock(args, &repo)?;
    let snapshots = select(&repo, &a.snapshots)?;
    let st = stats(&repo, &snapshots, a.mode)?;
    if args.json {
        outln!("{}", serde_json::to_string(&st)?);
    } else {
        outln!(
            "Stats in {} mode:",
            if a.mode == StatsMode::RawData {
                "raw-data"
            } else {
                "restore-size"
            }
        );
        outln!("     Snapshots processed:  {}", st.snapshots_count);
        if a.mode == StatsMode::RawData {
            outln!("        Total Blob Count:  {}", st.total_blob_count);
            outln!(
                " Total Uncompressed Size:  {}",
                format_size(st.total_uncompressed_size)
            );
            outln!("              Total Size:  {}", format_size(st.total_size));
            outln!("       Compression Ratio:  {:.2}x", st.compression_ratio);
        } else {
            outln!("        Total File Count:  {}", st.total_file_count);
            outln!("              Total Size:  {}", format_size(st.total_size));
        }
    }
    Ok(ExitCode::SUCCESS)
}
