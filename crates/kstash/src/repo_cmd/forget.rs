//! `kstash repo forget` (restic's keep policy, or explicit snapshot ids) and the snapshot filter
//! flags (`--host`, `--tag`, `--path`) shared with `kstash repo snapshots`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use kstash_repo::forget::{
    ForgetGroup, ForgetOptions, ForgetSummary, GroupBy, KeepDuration, KeepPolicy, SnapshotFilter, forget,
    forget_snapshots, split_tag_list,
};
use kstash_repo::{Snapshot, SnapshotEntry};
use serde_json::{Value, json};

use super::{RepoArgs, lock_options, open};

/// Which snapshots to consider.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable: any of them).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with all of these comma-separated tags (repeatable: any of the lists).
    #[arg(long = "tag", value_name = "TAG[,TAG…]")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable: all of them).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

impl FilterArgs {
    /// The engine's filter.
    pub fn to_filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.iter().map(|t| split_tag_list(t)).collect(),
            paths: self.paths.clone(),
            ..Default::default()
        }
    }
}

fn keep_duration(s: &str) -> Result<KeepDuration, String> {
    KeepDuration::parse(s).map_err(|e| e.to_string())
}

fn group_by(s: &str) -> Result<GroupBy, String> {
    GroupBy::parse(s).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Keep the last N snapshots.
    #[arg(short = 'l', long, value_name = "N", default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the last N hourly snapshots.
    #[arg(short = 'H', long, value_name = "N", default_value_t = 0)]
    pub keep_hourly: u32,
    /// Keep the last N daily snapshots.
    #[arg(short = 'd', long, value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,
    /// Keep the last N weekly snapshots.
    #[arg(short = 'w', long, value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,
    /// Keep the last N monthly snapshots.
    #[arg(short = 'm', long, value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,
    /// Keep the last N yearly snapshots.
    #[arg(short = 'y', long, value_name = "N", default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep snapshots newer than DURATION (e.g. 1y5m7d2h) relative to the latest snapshot.
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    pub keep_within: Option<KeepDuration>,
    /// Keep hourly snapshots newer than DURATION relative to the latest snapshot.
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    pub keep_within_hourly: Option<KeepDuration>,
    /// Keep daily snapshots newer than DURATION relative to the latest snapshot.
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    pub keep_within_daily: Option<KeepDuration>,
    /// Keep weekly snapshots newer than DURATION relative to the latest snapshot.
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    pub keep_within_weekly: Option<KeepDuration>,
    /// Keep monthly snapshots newer than DURATION relative to the latest snapshot.
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    pub keep_within_monthly: Option<KeepDuration>,
    /// Keep yearly snapshots newer than DURATION relative to the latest snapshot.
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    pub keep_within_yearly: Option<KeepDuration>,
    /// Keep snapshots with all of these comma-separated tags (repeatable: any of the lists).
    #[arg(long = "keep-tag", value_name = "TAG[,TAG…]")]
    pub keep_tags: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Group snapshots by host, paths and/or tags, separated by commas ('' for one group).
    #[arg(short = 'g', long, value_name = "GROUP", default_value = "host,paths", value_parser = group_by)]
    pub group_by: GroupBy,
    /// Show what would be removed, remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Forget these snapshots (ids, id prefixes or `latest`) instead of applying a policy.
    #[arg(value_name = "SNAPSHOT_ID")]
    pub snapshots: Vec<String>,
    /// Prune afterwards (with the default `--max-unused 5%`) when snapshots were removed.
    #[arg(long)]
    pub prune: bool,
}

impl ForgetArgs {
    fn policy(&self) -> KeepPolicy {
        KeepPolicy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: self.keep_within.unwrap_or_default(),
            within_hourly: self.keep_within_hourly.unwrap_or_default(),
            within_daily: self.keep_within_daily.unwrap_or_default(),
            within_weekly: self.keep_within_weekly.unwrap_or_default(),
            within_monthly: self.keep_within_monthly.unwrap_or_default(),
            within_yearly: self.keep_within_yearly.unwrap_or_default(),
            keep_tags: self.keep_tags.iter().map(|t| split_tag_list(t)).collect(),
            max_age: None,
        }
    }
}

/// Run `kstash repo forget`.
pub fn run(args: &RepoArgs, f: &ForgetArgs) -> Result<ExitCode> {
    let policy = f.policy();
    if !f.snapshots.is_empty() && !policy.is_empty() {
        bail!("give either snapshot ids or --keep-* options, not both");
    }
    if args.no_lock && !f.dry_run {
        bail!("--no-lock is only applicable in combination with --dry-run for forget");
    }
    let filter = f.filter.to_filter();
    let repo = open(args)?;
    let options = ForgetOptions {
        filter: filter.clone(),
        policy,
        group_by: f.group_by,
        dry_run: f.dry_run,
        lock: (!args.no_lock).then(|| lock_options(args)),
        now: None,
    };
    let summary = if f.snapshots.is_empty() {
        if !options.policy.is_empty() && !args.json {
            outln!("Applying Policy: {}", options.policy);
        }
        forget(&repo, &options)?
    } else {
        if !filter.is_empty() && !f.snapshots.iter().any(|s| s == "latest") {
            eprintln!("Ignoring filters as there are explicit snapshot ids given");
        }
        forget_snapshots(&repo, &f.snapshots, &options)?
    };
    for spec in &summary.not_found {
        eprintln!("Ignoring {spec:?}: no matching snapshot found");
    }
    if args.json {
        let groups: Vec<Value> = summary.groups.iter().map(group_json).collect();
        outln!("{}", serde_json::to_string(&groups)?);
    } else {
        print_human(&summary, f.snapshots.is_empty());
    }
    if f.prune && !f.dry_run && !summary.removed.is_empty() {
        let prune_args = super::maint::PruneArgs {
            max_unused: kstash_repo::prune::MaxUnused::Percent(5.0),
            dry_run: false,
        };
        return super::maint::run_prune(args, &prune_args);
    }
    Ok(ExitCode::SUCCESS)
}

fn null_if_empty(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

/// A snapshot as restic's `forget --json` lists it: its fields, then `id` and `short_id`.
fn snapshot_json(e: &SnapshotEntry) -> Value {
    let mut v = snapshot_value(&e.snapshot);
    v["id"] = json!(e.id.to_string());
    v["short_id"] = json!(e.id.short());
    v
}

fn snapshot_value(s: &Snapshot) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// One group as restic's `forget --json` prints it (`null` for empty lists, as Go does).
fn group_json(g: &ForgetGroup) -> Value {
    let keep: Vec<Value> = g.keep().map(|d| snapshot_json(&d.entry)).collect();
    let remove: Vec<Value> = g.remove().map(|d| snapshot_json(&d.entry)).collect();
    let reasons: Vec<Value> = g
        .keep()
        .map(|d| {
            json!({
                "snapshot": snapshot_value(&d.entry.snapshot),
                "matches": d.reasons,
                "counters": d.counters,
            })
        })
        .collect();
    let list = |v: Vec<Value>| {
        if v.is_empty() {
            Value::Null
        } else {
            Value::Array(v)
        }
    };
    json!({
        "tags": null_if_empty(&g.key.tags),
        "host": g.key.hostname,
        "paths": null_if_empty(&g.key.paths),
        "keep": list(keep),
        "remove": list(remove),
        "reasons": list(reasons),
    })
}

/// `2024-01-31 13:45:00`, in the offset the snapshot was taken in.
fn short_time(s: &Snapshot) -> String {
    let t = s.time.to_string();
    t.get(..19).unwrap_or(&t).replacen('T', " ", 1)
}

fn print_table(decisions: &[&kstash_repo::forget::Decision], with_reasons: bool) {
    let rows: Vec<[String; 6]> = decisions
        .iter()
        .rev()
        .map(|d| {
            let s = &d.entry.snapshot;
            [
                d.entry.id.short(),
                short_time(s),
                s.hostname.clone(),
                s.tags.join(","),
                if d.expired {
                    "expired".to_string()
                } else {
                    d.reasons.join(", ")
                },
                s.paths.join(","),
            ]
        })
        .collect();
    let headers = ["ID", "Time", "Host", "Tags", "Reasons", "Paths"];
    let cols: Vec<usize> = (0..6).filter(|&c| c != 4 || with_reasons).collect();
    let width = |c: usize| {
        rows.iter()
            .map(|r| r[c].chars().count())
            .chain([headers[c].len()])
            .max()
            .unwrap_or(0)
    };
    let line = |cells: &[String]| {
        cols.iter()
            .map(|&c| {
                if c == 5 {
                    cells[c].clone()
                } else {
                    format!("{:<w$}", cells[c], w = width(c))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    outln!("{}", line(&header));
    outln!("{}", "-".repeat(line(&header).len().max(40)));
    for r in &rows {
        outln!("{}", line(r));
    }
    outln!("{} snapshots", rows.len());
}

fn print_human(summary: &ForgetSummary, by_policy: bool) {
    if summary.policy_empty {
        outln!("no policy was specified, no snapshots will be removed");
        return;
    }
    if by_policy {
        for g in &summary.groups {
            outln!("snapshots for ({}):", g.key);
            let keep: Vec<_> = g.keep().collect();
            if !keep.is_empty() {
                outln!("keep {} snapshots:", keep.len());
                print_table(&keep, true);
                outln!("");
            }
            let remove: Vec<_> = g.remove().collect();
            if !remove.is_empty() {
                outln!("remove {} snapshots:", remove.len());
                print_table(&remove, remove.iter().any(|d| d.expired));
                outln!("");
            }
        }
    }
    let ids: Vec<String> = summary.removed.iter().map(|id| id.short()).collect();
    if summary.dry_run {
        if !ids.is_empty() {
            outln!(
                "Would have removed the following snapshots:\n{{{}}}",
                ids.join(" ")
            );
        } else {
            outln!("no snapshots would be removed");
        }
    } else if ids.is_empty() {
        outln!("no snapshots were removed");
    } else {
        outln!("removed {} snapshots: {}", ids.len(), ids.join(" "));
        outln!("their data stays in the repository until `kstash repo prune` runs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        forget: ForgetArgs,
    }

    #[test]
    fn flags_map_to_the_policy_and_filter() {
        let cli = Cli::try_parse_from([
            "forget",
            "-l",
            "3",
            "--keep-daily",
            "7",
            "--keep-within",
            "1y2m",
            "--keep-tag",
            "a, b",
            "--keep-tag",
            "c",
            "--host",
            "h1",
            "--host",
            "h2",
            "--tag",
            "x,y",
            "--path",
            "/p",
            "--group-by",
            "host,tags",
            "--dry-run",
        ])
        .unwrap();
        let p = cli.forget.policy();
        assert_eq!(
            (p.last, p.daily, p.within.to_string()),
            (3, 7, "1y2m".to_string())
        );
        assert_eq!(
            p.keep_tags,
            vec![vec!["a".to_string(), "b".to_string()], vec!["c".to_string()]]
        );
        let f = cli.forget.filter.to_filter();
        assert_eq!(f.hosts, ["h1", "h2"]);
        assert_eq!(f.tags, vec![vec!["x".to_string(), "y".to_string()]]);
        assert_eq!(f.paths, ["/p"]);
        assert_eq!(cli.forget.group_by, GroupBy::parse("host,tags").unwrap());
        assert!(cli.forget.dry_run);

        let none = Cli::try_parse_from(["forget", "--group-by", ""]).unwrap();
        assert_eq!(none.forget.group_by, GroupBy::NONE);
        assert!(none.forget.policy().is_empty());
        assert!(Cli::try_parse_from(["forget", "--keep-last", "-1"]).is_err());
        assert!(Cli::try_parse_from(["forget", "--keep-within", "2w"]).is_err());
        assert!(Cli::try_parse_from(["forget", "--group-by", "user"]).is_err());
    }
}
