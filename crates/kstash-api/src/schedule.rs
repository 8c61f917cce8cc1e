//! Cron schedules as Kubernetes CronJobs accept them: five fields or an `@hourly`-style macro,
//! optionally prefixed by `CRON_TZ=<zone> ` or `TZ=<zone> `; next-run computation in that zone.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: TimeZone,
    tz_name: Option<String>,
}

impl Schedule {
    /// Parse `schedule`; errors say what is wrong and show a valid example.
    pub fn parse(schedule: &str) -> Result<Schedule, String> {
        let s = schedule.trim();
        let (tz_name, expr) = match s.strip_prefix("CRON_TZ=").or_else(|| s.strip_prefix("TZ=")) {
            Some(rest) => {
                let (zone, expr) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| format!("'{schedule}' has a time zone but no cron expression"))?;
                (Some(zone.to_string()), expr.trim())
            }
            None => (None, s),
        };
        let tz = match &tz_name {
            Some(z) => TimeZone::get(z)
                .map_err(|_| format!("unknown time zone '{z}' (example: CRON_TZ=Europe/Berlin 0 2 * * *)"))?,
            None => TimeZone::UTC,
        };
        if !expr.starts_with('@') && expr.split_whitespace().count() != 5 {
            return Err(format!(
                "'{expr}' must have exactly 5 fields (minute hour day-of-month month day-of-week), e.g. '*/5 * * * *'"
            ));
        }
        if expr.eq_ignore_ascii_case("@reboot") || expr.to_ascii_lowercase().starts_with("@every") {
            return Err(format!(
                "'{expr}' is not supported by Kubernetes CronJobs; use a 5-field cron"
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(expr)
            .map_err(|e| format!("invalid cron '{expr}': {e}"))?;
        Ok(Schedule { cron, tz, tz_name })
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = after.to_zoned(self.tz.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The time zone named in the schedule, if any.
    pub fn time_zone(&self) -> Option<&str> {
        self.tz_name.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_cronjobs_accept() {
        for ok in [
            "*/5 * * * *",
            "0 2 * * 1-5",
            "@daily",
            "@hourly",
            "CRON_TZ=Europe/Berlin 0 2 * * *",
            "TZ=UTC 30 1 1 * *",
        ] {
            assert!(Schedule::parse(ok).is_ok(), "{ok} should parse");
        }
    }

    #[test]
    fn rejects_bad_schedules_with_reasons() {
        assert!(
            Schedule::parse("* * * * * *")
                .unwrap_err()
                .contains("exactly 5 fields")
        );
        assert!(
            Schedule::parse("61 * * * *")
                .unwrap_err()
                .contains("invalid cron")
        );
        assert!(
            Schedule::parse("CRON_TZ=Mars/Phobos 0 * * * *")
                .unwrap_err()
                .contains("unknown time zone")
        );
        assert!(Schedule::parse("@every 5m").is_err());
        assert!(Schedule::parse("").is_err());
    }

    #[test]
    fn next_run_honours_the_time_zone() {
        let now: Timestamp = "2026-01-10T00:30:00Z".parse().unwrap();
        let utc = Schedule::parse("0 2 * * *").unwrap();
        assert_eq!(utc.next_after(now).unwrap().to_string(), "2026-01-10T02:00:00Z");
        let berlin = Schedule::parse("CRON_TZ=Europe/Berlin 0 2 * * *").unwrap();
        assert_eq!(
            berlin.next_after(now).unwrap().to_string(),
            "2026-01-10T01:00:00Z"
        );
    }
}
