//! Which restic snapshots a Stash RestoreSession restores on one host (pure): Stash's rule
//! selection (`RestoreOptionsForHost`) and restic's meaning of `latest`, short ids and `--path`.
//!
//! A rule listing the restoring host wins; otherwise the rule with no `targetHosts`; with no rule
//! at all the host restores `latest`. `sourceHost` defaults to the restoring host, but, as Stash
//! passes `--host` to `restic dump`/`restore latest` only when the target has an `alias`, a
//! database restore without alias or `sourceHost` takes the newest snapshot of any host.

use jiff::Timestamp;

use super::types::Rule;

/// What kstash needs to know of one restic snapshot to choose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The full 64-hex id.
    pub id: String,
    pub time: Timestamp,
    pub hostname: String,
    /// The snapshot's `paths`, as restic recorded them (`/dumpfile.sql`, or `dumpfile.sql` when
    /// restic 0.8/0.9 wrote it).
    pub paths: Vec<String>,
}

/// One restic snapshot to restore, with the rule's filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub id: String,
    pub hostname: String,
    pub paths: Vec<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// The rule in effect for `host`, if any (Stash: a rule naming the host, else the one without
/// `targetHosts`).
pub fn rule_for_host<'a>(rules: &'a [Rule], host: &str) -> Option<&'a Rule> {
    rules
        .iter()
        .find(|r| r.target_hosts.iter().any(|h| h == host))
        .or_else(|| rules.iter().find(|r| r.target_hosts.is_empty()))
}

/// `true` when a snapshot path (`/dumpfile.sql` or `dumpfile.sql`) names `wanted` (compared
/// without leading slashes).
fn same_path(a: &str, b: &str) -> bool {
    a.trim_start_matches('/') == b.trim_start_matches('/')
}

/// The snapshots restoring host `host` takes. `alias_set`: the target has an alias, so the
/// snapshots are filtered by host as Stash does; `rules`: the RestoreSession's rules. Errors
/// name what was asked for and what the repository has.
pub fn select(
    snapshots: &[SnapshotInfo],
    host: &str,
    alias_set: bool,
    rules: &[Rule],
) -> Result<Vec<Selected>, String> {
    let implicit = Rule::default();
    let rule = match rule_for_host(rules, host) {
        Some(r) => r,
        None if rules.is_empty() => &implicit,
        None => {
            return Err(format!(
                "no rule applies to host {host}: every rule lists other targetHosts; add {host} to a rule's targetHosts or add a rule without targetHosts"
            ));
        }
    };
    let source_host = if !rule.source_host.is_empty() {
        Some(rule.source_host.as_str())
    } else if alias_set {
        Some(host)
    } else {
        None
    };
    let of_host = |s: &&SnapshotInfo| source_host.is_none_or(|h| s.hostname == h);
    let pick = |id: &SnapshotInfo| Selected {
        id: id.id.clone(),
        hostname: id.hostname.clone(),
        paths: Vec::new(),
        include: rule.include.clone(),
        exclude: rule.exclude.clone(),
    };
    let hosts = || {
        let mut h: Vec<&str> = snapshots.iter().map(|s| s.hostname.as_str()).collect();
        h.sort_unstable();
        h.dedup();
        if h.is_empty() {
            "none: the repository has no snapshots".to_string()
        } else {
            h.join(", ")
        }
    };

    if !rule.snapshots.is_empty() {
        let mut out = Vec::new();
        for wanted in &rule.snapshots {
            if wanted == "latest" {
                let found = newest_of(snapshots.iter().filter(of_host).collect()).ok_or_else(|| {
                    format!(
                        "no snapshot to restore as latest{}; the repository has snapshots of hosts: {}",
                        source_host.map(|h| format!(" of host {h}")).unwrap_or_default(),
                        hosts()
                    )
                })?;
                out.push(pick(found));
                continue;
            }
            let matches: Vec<&SnapshotInfo> = snapshots
                .iter()
                .filter(|s| s.id.starts_with(wanted.as_str()))
                .collect();
            match matches.as_slice() {
                [one] => out.push(pick(one)),
                [] => {
                    return Err(format!(
                        "snapshot {wanted} (rules[].snapshots) is not in the repository; fix: use `latest` or an id from `kstash snapshots`"
                    ));
                }
                _ => {
                    return Err(format!(
                        "snapshot id {wanted} (rules[].snapshots) matches {} snapshots; give more characters of the id",
                        matches.len()
                    ));
                }
            }
        }
        return Ok(out);
    }
    if !rule.paths.is_empty() {
        let mut out = Vec::new();
        for path in &rule.paths {
            let found = newest_of(
                snapshots
                    .iter()
                    .filter(of_host)
                    .filter(|s| s.paths.iter().any(|p| same_path(p, path)))
                    .collect(),
            )
            .ok_or_else(|| {
                format!(
                    "no snapshot{} contains path {path} (rules[].paths); the repository has snapshots of hosts: {}",
                    source_host.map(|h| format!(" of host {h}")).unwrap_or_default(),
                    hosts()
                )
            })?;
            let mut s = pick(found);
            s.paths = vec![path.clone()];
            out.push(s);
        }
        return Ok(out);
    }
    let found = newest_of(snapshots.iter().filter(of_host).collect()).ok_or_else(|| {
        format!(
            "no snapshot to restore{}; the repository has snapshots of hosts: {}",
            source_host.map(|h| format!(" of host {h}")).unwrap_or_default(),
            hosts()
        )
    })?;
    Ok(vec![pick(found)])
}

/// restic's `latest`: the newest by time (ties broken by id, so the choice is stable).
fn newest_of(candidates: Vec<&SnapshotInfo>) -> Option<&SnapshotInfo> {
    candidates.into_iter().max_by_key(|s| (s.time, s.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, minute: i64, host: &str, path: &str) -> SnapshotInfo {
        SnapshotInfo {
            id: format!("{id}{}", "0".repeat(64 - id.len())),
            time: Timestamp::from_second(1_700_000_000 + minute * 60).unwrap(),
            hostname: host.into(),
            paths: vec![path.into()],
        }
    }

    fn rule(target_hosts: &[&str], source_host: &str, snapshots: &[&str], paths: &[&str]) -> Rule {
        Rule {
            target_hosts: target_hosts.iter().map(|s| s.to_string()).collect(),
            source_host: source_host.into(),
            snapshots: snapshots.iter().map(|s| s.to_string()).collect(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            ..Rule::default()
        }
    }

    fn repo() -> Vec<SnapshotInfo> {
        vec![
            snap("aaaa1111", 1, "host-0", "/dumpfile.sql"),
            snap("bbbb2222", 2, "host-0", "dumpfile.sql"),
            snap("cccc3333", 3, "host-1", "/source/data"),
            snap("dddd4444", 4, "db", "/dumpfile.sql"),
            snap("aaaa5555", 0, "host-1", "/source/config"),
        ]
    }

    fn short(sel: &[Selected]) -> Vec<String> {
        sel.iter()
            .map(|s| format!("{}@{}", &s.id[..8], s.hostname))
            .collect()
    }

    #[test]
    fn rules_choose_snapshots_as_stash_does() {
        let r = repo();
        // (situation, host, alias set, rules, expected selection or error fragment)
        type Case<'a> = (&'a str, &'a str, bool, Vec<Rule>, Result<Vec<&'a str>, &'a str>);
        let cases: Vec<Case> = vec![
            (
                "no rules, no alias: newest of any host",
                "host-0",
                false,
                vec![],
                Ok(vec!["dddd4444@db"]),
            ),
            (
                "no rules, alias: newest of the alias",
                "db",
                true,
                vec![],
                Ok(vec!["dddd4444@db"]),
            ),
            (
                "no rules, alias host-0",
                "host-0",
                true,
                vec![],
                Ok(vec!["bbbb2222@host-0"]),
            ),
            (
                "explicit latest of a source host",
                "host-0",
                false,
                vec![rule(&[], "host-0", &["latest"], &[])],
                Ok(vec!["bbbb2222@host-0"]),
            ),
            (
                "a short id",
                "host-0",
                false,
                vec![rule(&[], "", &["aaaa1111"], &[])],
                Ok(vec!["aaaa1111@host-0"]),
            ),
            (
                "an ambiguous prefix",
                "host-0",
                false,
                vec![rule(&[], "", &["aaaa"], &[])],
                Err("matches 2 snapshots"),
            ),
            (
                "an unknown id",
                "host-0",
                false,
                vec![rule(&[], "", &["ffffffff"], &[])],
                Err("is not in the repository"),
            ),
            (
                "paths: newest holding the path, leading slash or not",
                "host-0",
                false,
                vec![rule(&[], "host-0", &[], &["/dumpfile.sql"])],
                Ok(vec!["bbbb2222@host-0"]),
            ),
            (
                "paths of another source host",
                "host-0",
                false,
                vec![rule(&[], "host-1", &[], &["/source/data", "/source/config"])],
                Ok(vec!["cccc3333@host-1", "aaaa5555@host-1"]),
            ),
            (
                "a rule naming the host beats the catch-all",
                "host-1",
                true,
                vec![
                    rule(&[], "", &["dddd4444"], &[]),
                    rule(&["host-1"], "", &["latest"], &[]),
                ],
                Ok(vec!["cccc3333@host-1"]),
            ),
            (
                "the catch-all for other hosts",
                "host-0",
                true,
                vec![
                    rule(&[], "", &["dddd4444"], &[]),
                    rule(&["host-1"], "", &["latest"], &[]),
                ],
                Ok(vec!["dddd4444@db"]),
            ),
            (
                "no rule for this host",
                "host-2",
                false,
                vec![rule(&["host-1"], "", &["latest"], &[])],
                Err("no rule applies to host host-2"),
            ),
            (
                "a source host with no snapshots",
                "host-0",
                false,
                vec![rule(&[], "host-9", &["latest"], &[])],
                Err("of host host-9"),
            ),
        ];
        for (what, host, alias, rules, want) in cases {
            let got = select(&r, host, alias, &rules);
            match (got, want) {
                (Ok(sel), Ok(ids)) => assert_eq!(short(&sel), ids, "{what}"),
                (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{what}: {e}"),
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn an_empty_repository_says_so() {
        let e = select(&[], "host-0", false, &[]).unwrap_err();
        assert!(e.contains("the repository has no snapshots"), "{e}");
    }

    #[test]
    fn rule_filters_travel_with_the_selection() {
        let mut r = rule(&[], "", &["latest"], &[]);
        r.include = vec!["/source/data/keep".into()];
        r.exclude = vec!["*.tmp".into()];
        let sel = select(&repo(), "host-0", false, &[r]).unwrap();
        assert_eq!(sel[0].include, vec!["/source/data/keep"]);
        assert_eq!(sel[0].exclude, vec!["*.tmp"]);
    }
}
