//! Name rules: DNS-1123 names and labels, label keys/values, and KubeStash's 63-character
//! `<prefix>-<suffix>` naming of generated objects.

/// Why a name is invalid, or `None` when it is a valid DNS-1123 subdomain (the rule for
/// `metadata.name` of every kstash kind, as Kubernetes' `IsDNS1123Subdomain`): at most 253
/// characters of dot-separated parts made of lower-case alphanumerics and `-`, each starting
/// and ending with an alphanumeric. Unlike a label, a part has no length limit of its own, so
/// KubeStash's long Snapshot names (`<repo>-<bc>-<session>-<unix>`, 67+ characters) are valid.
pub fn dns1123_subdomain_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > 253 {
        return Some(format!(
            "must be no more than 253 characters (has {})",
            name.len()
        ));
    }
    name.split('.').find_map(label_chars_error)
}

/// Why `s` is not a DNS-1123 label (lower-case alphanumerics and `-`, starting and ending with
/// an alphanumeric, at most 63 characters), or `None`.
pub fn dns1123_label_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some(format!("must be no more than 63 characters (has {})", s.len()));
    }
    label_chars_error(s)
}

/// The character rules of a DNS-1123 label, without its length limit.
fn label_chars_error(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("must consist of non-empty parts separated by '.'".into());
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !s.chars().all(ok_char) {
        return Some(format!(
            "'{s}' must consist of lower case alphanumeric characters or '-' (e.g. 'my-name')"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some(format!("'{s}' must start and end with an alphanumeric character"));
    }
    None
}

/// Why `key` is not a valid label/annotation key (`[prefix/]name`), or `None`.
pub fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && let Some(e) = dns1123_subdomain_error(p)
    {
        return Some(format!("prefix {e}"));
    }
    if name.is_empty() || name.len() > 63 {
        return Some("name part must be 1 to 63 characters".into());
    }
    label_value_error(name)
}

/// Why `v` is not a valid label value, or `None`.
pub fn label_value_error(v: &str) -> Option<String> {
    if v.len() > 63 {
        return Some(format!("must be no more than 63 characters (has {})", v.len()));
    }
    if v.is_empty() {
        return None;
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !v.chars().all(ok) {
        return Some(format!("'{v}' may contain only alphanumerics, '-', '_' and '.'"));
    }
    let first = v.chars().next().unwrap();
    let last = v.chars().last().unwrap();
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Some(format!("'{v}' must start and end with an alphanumeric character"));
    }
    None
}

/// KubeStash's generated names (kmodules `meta.ValidNameWithPrefixNSuffix`, used by KubeStash
/// for BackupSession, BackupVerificationSession and Snapshot names, checked against kmodules
/// client-go as of 2026-05): `prefix-suffix`, and when longer than 63 characters (a DNS-1123
/// label) the first 32 and the last 31 characters joined, so the unique suffix survives. Older
/// KubeStash releases wrote longer Snapshot names; those are valid names all the same.
pub fn name_with_prefix_and_suffix(prefix: &str, suffix: &str) -> String {
    let full = if prefix.is_empty() {
        suffix.to_string()
    } else if suffix.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}-{suffix}")
    };
    shorten_63(&full)
}

/// Three-part variant used for Snapshot names (`repo-<session name without -digits>-<digits>`).
pub fn name_with_prefix_middle_suffix(prefix: &str, middle: &str, suffix: &str) -> String {
    let parts: Vec<&str> = [prefix, middle, suffix]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    shorten_63(&parts.join("-"))
}

fn shorten_63(full: &str) -> String {
    if full.len() <= 63 {
        return full.to_string();
    }
    format!("{}{}", &full[..32], &full[full.len() - 31..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain_rules() {
        assert_eq!(dns1123_subdomain_error("sample-backup"), None);
        assert_eq!(dns1123_subdomain_error("a.b-c.d"), None);
        assert!(dns1123_subdomain_error("Sample").is_some());
        assert!(dns1123_subdomain_error("-x").is_some());
        assert!(dns1123_subdomain_error("").is_some());
        assert!(dns1123_subdomain_error(&"a".repeat(254)).is_some());
        assert!(dns1123_subdomain_error("a..b").is_some());
        // KubeStash's own Snapshot names: one 67-character part is a valid object name.
        let kubestash_snapshot = "gcs-postgres-repo-sample-postgres-backup-frequent-backup-1725449400";
        assert_eq!(kubestash_snapshot.len(), 67);
        assert_eq!(dns1123_subdomain_error(kubestash_snapshot), None);
        assert_eq!(dns1123_subdomain_error(&"a".repeat(253)), None);
        assert!(
            dns1123_label_error(kubestash_snapshot).is_some(),
            "but not a label"
        );
    }

    #[test]
    fn label_rules() {
        assert_eq!(label_key_error("kubestash.com/invoker-name"), None);
        assert_eq!(label_key_error("app"), None);
        assert!(label_key_error("Bad_Prefix/x").is_some());
        assert_eq!(label_value_error(""), None);
        assert!(label_value_error("-x").is_some());
        assert!(label_value_error("a b").is_some());
    }

    #[test]
    fn long_names_keep_the_first_32_and_last_31_characters() {
        assert_eq!(
            name_with_prefix_and_suffix("sample", "frequent-backup"),
            "sample-frequent-backup"
        );
        let name = name_with_prefix_middle_suffix(
            "gcs-postgres-repo",
            "sample-postgres-backup-frequent-backup",
            "1738580539",
        );
        assert_eq!(name.len(), 63);
        assert_eq!(
            name,
            "gcs-postgres-repo-sample-postgreckup-frequent-backup-1738580539"
        );
    }
}
