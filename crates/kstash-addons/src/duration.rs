//! Durations as the drivers and the job programs print them in messages and status: Go's
//! `time.Duration.String()` to the millisecond.

use std::time::Duration;

/// A duration as Go's `time.Duration.String()` prints it, to the millisecond (`850ms`, `12.3s`,
/// `1m5s`, `2h0m1.25s`).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
    let (s, frac) = ((ms / 1000) % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if frac == 0 {
        out.push_str(&format!("{s}s"));
    } else {
        let frac = format!("{frac:03}");
        out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0')));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_micros(850_400)), "850ms");
        assert_eq!(go_duration(Duration::from_millis(12_300)), "12.3s");
        assert_eq!(go_duration(Duration::from_millis(1_250)), "1.25s");
        assert_eq!(go_duration(Duration::from_secs(65)), "1m5s");
        assert_eq!(go_duration(Duration::from_millis(7_201_250)), "2h0m1.25s");
    }
}
