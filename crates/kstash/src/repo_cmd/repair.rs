//! `kstash repo repair index` (alias `rebuild-index`, restic 0.14's name) and `kstash repo
//! repair snapshots`: restic 0.16's repair commands over the engine, with restic-like output.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use kstash_repo::Repository;
use kstash_repo::repair_index::{RepairIndexOptions, RepairIndexSummary, repair_index};
use kstash_repo::repair_snapshots::{
    RepairSnapshotsOptions, RepairSnapshotsSummary, SnapshotRepair, repair_snapshots,
};
use serde_json::json;

use super::{RepoArgs, lock_options, open};

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the pack files (exclusive lock).
    Index(RepairIndexArgs),
    /// Rewrite snapshots so that no file or directory references a blob that is gone
    /// (exclusive lock; run `repair index` first).
    Snapshots(RepairSnapshotsArgs),
}

#[derive(Debug, Args)]
pub struct RepairIndexArgs {
    /// Read the header of every pack, not only of the packs the index does not describe.
    #[arg(long)]
    pub read_all_packs: bool,
    /// Show what would be done without changing anything.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RepairSnapshotsArgs {
    /// Delete the original of every snapshot that was rewritten.
    #[arg(long)]
    pub forget: bool,
    /// Show what would be done without changing anything.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Snapshots to repair (`latest` or ids); all when none is given.
    pub snapshots: Vec<String>,
}

/// Run `kstash repo repair …`.
pub fn run(args: &RepoArgs, c: &RepairCommand) -> Result<ExitCode> {
    match c {
        RepairCommand::Index(a) => run_index(args, a),
        RepairCommand::Snapshots(a) => run_snapshots(args, a),
    }
}

/// Run `kstash repo repair index`.
pub fn run_index(args: &RepoArgs, a: &RepairIndexArgs) -> Result<ExitCode> {
    let backend = super::backend(args)?;
    let location = backend.location();
    // The old index may be damaged or in the legacy format: it is read by the repair itself.
    let repo = Repository::open_without_index(backend, &super::password(args)?)
        .with_context(|| format!("opening repository {location}"))?;
    let options = RepairIndexOptions {
        read_all_packs: a.read_all_packs,
        dry_run: a.dry_run,
        lock: Some(lock_options(args)),
        ..Default::default()
    };
    let s = repair_index(&repo, &options).context("repairing the index")?;
    if args.json {
        outln!("{}", index_json(&s));
    } else {
        print_index(&s);
    }
    Ok(ExitCode::SUCCESS)
}

fn index_json(s: &RepairIndexSummary) -> serde_json::Value {
    let pairs = |v: &[(kstash_repo::Id, String)]| -> Vec<serde_json::Value> {
        v.iter()
            .map(|(id, why)| json!({"id": id.to_string(), "error": why}))
            .collect()
    };
    json!({"message_type": "repair_index", "dry_run": s.dry_run,
        "index_files_read": s.index_files_read, "legacy_index_files": s.legacy_index_files,
        "damaged_index_files": pairs(&s.damaged_index_files),
        "packs": s.packs, "packs_reused": s.packs_reused, "packs_read": s.packs_read,
        "unreadable_packs": pairs(&s.unreadable_packs),
        "missing_packs": s.missing_packs.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        "packs_indexed": s.packs_indexed, "blobs_indexed": s.blobs_indexed,
        "index_files_written": s.index_files_written.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        "index_files_deleted": s.index_files_deleted})
}

fn print_index(s: &RepairIndexSummary) {
    outln!("loading indexes...");
    outln!(
        "read {} index files ({} in the old format)",
        s.index_files_read,
        s.legacy_index_files
    );
    for (id, why) in &s.damaged_index_files {
        outln!(
            "index {}: cannot be read ({why}); its packs are read again",
            id.short()
        );
    }
    outln!("getting pack files to read...");
    if !s.missing_packs.is_empty() {
        outln!("removing {} missing packs from the index:", s.missing_packs.len());
        for id in &s.missing_packs {
            outln!("  {id}");
        }
    }
    outln!(
        "reading pack files: {} of {} packs read, {} described by the index",
        s.packs_read,
        s.packs,
        s.packs_reused
    );
    for (id, why) in &s.unreadable_packs {
        outln!("pack {id}: cannot be read ({why}); left out of the index");
    }
    outln!(
        "rebuilding index: {} packs, {} blobs",
        s.packs_indexed,
        s.blobs_indexed
    );
    if s.dry_run {
        outln!(
            "dry run: would write the new index and delete {} obsolete index files; nothing was changed",
            s.index_files_deleted
        );
        return;
    }
    for id in &s.index_files_written {
        outln!("saved new index as {}", id.short());
    }
    outln!("deleting obsolete index files: {} deleted", s.index_files_deleted);
    outln!("done");
}

/// Run `kstash repo repair snapshots`.
pub fn run_snapshots(args: &RepoArgs, a: &RepairSnapshotsArgs) -> Result<ExitCode> {
    let repo = open(args)?;
    let snapshots = a
        .snapshots
        .iter()
        .map(|s| repo.find_snapshot(s).with_context(|| format!("snapshot {s}")))
        .collect::<Result<Vec<_>>>()?;
    let options = RepairSnapshotsOptions {
        forget: a.forget,
        dry_run: a.dry_run,
        lock: Some(lock_options(args)),
    };
    let s = repair_snapshots(&repo, &snapshots, &options).context("repairing snapshots")?;
    if args.json {
        outln!("{}", snapshots_json(&s));
    } else {
        print_snapshots(&s);
    }
    Ok(ExitCode::SUCCESS)
}

fn snapshots_json(s: &RepairSnapshotsSummary) -> serde_json::Value {
    let items: Vec<_> = s
        .snapshots
        .iter()
        .map(|r| {
            let (outcome, new, forgotten) = match &r.outcome {
                SnapshotRepair::Unchanged => ("unchanged", None, false),
                SnapshotRepair::Rewritten { new, forgotten } => ("rewritten", *new, *forgotten),
                SnapshotRepair::Removed => ("removed", None, true),
            };
            json!({"id": r.id.to_string(), "outcome": outcome, "changes": r.changes,
                "new_id": new.map(|i| i.to_string()), "forgotten": forgotten})
        })
        .collect();
    json!({"message_type": "repair_snapshots", "dry_run": s.dry_run, "snapshots": items,
        "modified": s.modified()})
}

fn print_snapshots(s: &RepairSnapshotsSummary) {
    for r in &s.snapshots {
        outln!("snapshot {} of {:?}", r.id.short(), r.paths);
        for c in &r.changes {
            outln!("  {c}");
        }
        match &r.outcome {
            SnapshotRepair::Unchanged => {}
            SnapshotRepair::Rewritten {
                new: Some(new),
                forgotten,
            } => {
                outln!("saved new snapshot {}", new.short());
                if *forgotten {
                    outln!("removed old snapshot {}", r.id.short());
                }
            }
            SnapshotRepair::Rewritten { new: None, .. } => outln!("would save a new snapshot"),
            SnapshotRepair::Removed if s.dry_run => {
                outln!("  dir \"/\": not readable; would remove the snapshot")
            }
            SnapshotRepair::Removed => outln!("  dir \"/\": not readable; removed the snapshot"),
        }
    }
    let n = s.modified();
    if n == 0 {
        outln!("no snapshots were modified");
    } else if s.dry_run {
        outln!("would modify {n} snapshots; dry run: nothing was changed");
    } else {
        outln!("modified {n} snapshots");
    }
}
