//! Duration grammars: KubeStash's retention period (`30d12h`, `2mo`, units y/mo/w/d/h/m) and Go's
//! `time.Duration` strings used by `metav1.Duration` fields (`30s`, `1h30m`, `1.5h`).

use std::time::Duration;

/// Parse a RetentionPolicy `maxRetentionPeriod`: one or more `<int><unit>` with units `y` (365 d),
/// `mo` (30 d), `w`, `d`, `h`, `m` (minutes), white space around it ignored (as KubeStash's
/// `ParseDuration` does). Returns the period in minutes.
pub fn parse_retention_period(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("is empty".into());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut minutes: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("expected a number at position {start} of '{s}'"));
        }
        let n: u64 = s[start..i]
            .parse()
            .map_err(|_| format!("number too large in '{s}'"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let per = match &s[unit_start..i] {
            "y" => 365 * 24 * 60,
            "mo" => 30 * 24 * 60,
            "w" => 7 * 24 * 60,
            "d" => 24 * 60,
            "h" => 60,
            "m" => 1,
            "" => {
                return Err(format!(
                    "missing unit after {n} in '{s}' (use y, mo, w, d, h or m)"
                ));
            }
            u => return Err(format!("unknown unit '{u}' in '{s}' (use y, mo, w, d, h or m)")),
        };
        minutes = minutes.saturating_add(n.saturating_mul(per));
    }
    Ok(minutes)
}

/// Parse a Go duration string (`300ms`, `-1.5h`, `2h45m`); negative durations are rejected.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    // Go's special case: a signed or unsigned lone zero.
    if matches!(t, "0" | "+0" | "-0") {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err("is empty".into());
    }
    if t.starts_with('-') {
        return Err(format!("'{s}' is negative"));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("'{s}' is not a duration (examples: 30s, 5m, 1h30m)"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("'{s}' is not a duration (examples: 30s, 5m, 1h30m)"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "'{s}' has a number without a unit (use ns, us, ms, s, m or h)"
                ));
            }
            u => {
                return Err(format!(
                    "'{s}' has unknown unit '{u}' (use ns, us, ms, s, m or h)"
                ));
            }
        };
        rest = &rest[unit_len..];
        total += n * secs;
    }
    Ok(Duration::from_secs_f64(total))
}

/// Format a duration the way Go's `time.Duration.String()` does for whole seconds (`1h2m3s`).
pub fn format_go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs == 0 && millis == 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if millis > 0 {
        out.push_str(&format!("{s}.{millis:03}s"));
    } else {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_period_grammar() {
        assert_eq!(parse_retention_period("30d"), Ok(30 * 24 * 60));
        assert_eq!(
            parse_retention_period("30d12h30m"),
            Ok(30 * 24 * 60 + 12 * 60 + 30)
        );
        assert_eq!(parse_retention_period("2mo"), Ok(2 * 30 * 24 * 60));
        assert_eq!(parse_retention_period("1y1w"), Ok(365 * 24 * 60 + 7 * 24 * 60));
        assert!(
            parse_retention_period("30x")
                .unwrap_err()
                .contains("unknown unit 'x'")
        );
        assert!(parse_retention_period("30").unwrap_err().contains("missing unit"));
        assert!(parse_retention_period("d").is_err());
        assert!(parse_retention_period("").is_err());
        assert_eq!(parse_retention_period(" 30d "), Ok(30 * 24 * 60));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("-0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("+0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("abc").is_err());
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("-5s").is_err());
        assert!(parse_go_duration("5d").is_err());
    }

    #[test]
    fn go_duration_formatting() {
        assert_eq!(format_go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(format_go_duration(Duration::from_secs(59)), "59s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
    }
}
