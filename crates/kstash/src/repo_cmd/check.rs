//! `kstash repo check`: verify a repository's structure and, with `--read-data` or
//! `--read-data-subset`, its data; prints every problem found and ends as restic's check does
//! ("no errors were found", or "Fatal: repository contains errors" and exit code 1).

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use kstash_api::phase::format_size;
use kstash_repo::{CheckOptions, CheckReport, ReadDataSubset, Repository, check};

use super::RepoArgs;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Read every pack and verify every blob (decrypt, decompress, hash).
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read only some packs: `n/t` (group n of t, by the first byte of the pack id, as restic),
    /// `P%` (a random percentage of the packs) or a size such as `500M` (random packs up to it).
    #[arg(long, value_name = "SUBSET", value_parser = parse_subset)]
    pub read_data_subset: Option<ReadDataSubset>,
}

fn parse_subset(text: &str) -> Result<ReadDataSubset, String> {
    text.parse().map_err(|e: kstash_repo::Error| e.to_string())
}

/// Run `kstash repo check`.
pub fn run(args: &RepoArgs, c: &CheckArgs) -> Result<ExitCode> {
    let backend = super::backend(args)?;
    let location = backend.location();
    // Without the index: check reads the index files itself and reports each damaged one.
    let repo = Repository::open_without_index(backend, &super::password(args)?)
        .with_context(|| format!("opening repository {location}"))?;
    let options = CheckOptions {
        read_data: if c.read_data {
            Some(ReadDataSubset::All)
        } else {
            c.read_data_subset
        },
        lock: (!args.no_lock).then(|| super::lock_options(args)),
        ..Default::default()
    };
    let report = check(&repo, &options).context("checking the repository")?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    if report.is_ok() {
        if !args.json {
            outln!("no errors were found");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("Fatal: repository contains errors");
        Ok(ExitCode::from(1))
    }
}

fn print_report(r: &CheckReport) {
    for w in &r.warnings {
        outln!("warning: {w}");
    }
    for e in &r.errors {
        outln!("error: {e}");
    }
    outln!(
        "checked {} keys, {} index files, {} packs, {} snapshots, {} trees",
        r.keys_checked,
        r.index_files_checked,
        r.packs_checked,
        r.snapshots_checked,
        r.trees_checked
    );
    if let Some(subset) = &r.read_data {
        outln!(
            "read data ({subset}): {} packs, {}, {} blobs verified",
            r.packs_read,
            format_size(r.bytes_read),
            r.blobs_checked
        );
    }
    if r.duplicate_blobs > 0 {
        outln!(
            "{} blobs are stored more than once (harmless; prune removes the copies)",
            r.duplicate_blobs
        );
    }
    if !r.damaged_snapshots.is_empty() {
        let ids: Vec<String> = r.damaged_snapshots.iter().map(|id| id.short()).collect();
        outln!("damaged snapshots (cannot be fully restored): {}", ids.join(", "));
    }
}
