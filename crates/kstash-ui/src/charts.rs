//! Charts drawn as SVG on the server (no script, no library): a line chart of a value over time
//! and a day-by-day calendar of successes and failures. Every chart is paired by its page with a
//! table of the same numbers for screen readers and for copying.

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::civil::Date;

const W: f64 = 480.0;
const H: f64 = 160.0;
const PAD_L: f64 = 56.0;
const PAD_B: f64 = 22.0;
const PAD_T: f64 = 10.0;
const PAD_R: f64 = 10.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart of `points` (time, value), labelled with `label`; `fmt` writes a value for the
/// axis and the tooltips. An empty series draws an empty frame saying so.
pub fn line_chart(label: &str, points: &[(Timestamp, f64)], fmt: &dyn Fn(f64) -> String) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(label)
    );
    let _ = write!(
        svg,
        r##"<line x1="{PAD_L}" y1="{}" x2="{}" y2="{}" stroke="#c9ced8"/><line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{}" stroke="#c9ced8"/>"##,
        H - PAD_B,
        W - PAD_R,
        H - PAD_B,
        H - PAD_B
    );
    if points.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no data yet</text></svg>"#,
            W / 2.0,
            H / 2.0
        );
        return svg;
    }
    let t0 = points.iter().map(|p| p.0.as_second()).min().unwrap_or(0) as f64;
    let t1 = points.iter().map(|p| p.0.as_second()).max().unwrap_or(0) as f64;
    let vmax = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let vmax = if vmax <= 0.0 { 1.0 } else { vmax * 1.1 };
    let span = (t1 - t0).max(1.0);
    let x = |t: &Timestamp| PAD_L + (t.as_second() as f64 - t0) / span * (W - PAD_L - PAD_R);
    let y = |v: f64| H - PAD_B - v / vmax * (H - PAD_B - PAD_T);
    let path: Vec<String> = points
        .iter()
        .map(|(t, v)| format!("{:.1},{:.1}", x(t), y(*v)))
        .collect();
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="{}"/>"##,
        path.join(" ")
    );
    for (t, v) in points {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1f5fbf"><title>{} — {}</title></circle>"##,
            x(t),
            y(*v),
            t.strftime("%Y-%m-%d %H:%M"),
            esc(&fmt(*v))
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">0</text>"#,
        PAD_L - 4.0,
        PAD_T + 8.0,
        esc(&fmt(vmax / 1.1)),
        PAD_L - 4.0,
        H - PAD_B
    );
    let first = points.iter().map(|p| p.0).min().unwrap_or(Timestamp::UNIX_EPOCH);
    let last = points.iter().map(|p| p.0).max().unwrap_or(Timestamp::UNIX_EPOCH);
    let _ = write!(
        svg,
        r#"<text x="{PAD_L}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text></svg>"#,
        H - 6.0,
        first.strftime("%m-%d %H:%M"),
        W - PAD_R,
        H - 6.0,
        last.strftime("%m-%d %H:%M")
    );
    svg
}

/// One day of the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub date: Date,
    pub succeeded: u32,
    pub failed: u32,
}

/// A calendar of `days` (oldest first, whole weeks are not required): one square per day,
/// green when everything succeeded, red when something failed, grey without backups.
pub fn calendar(days: &[Day]) -> String {
    const CELL: f64 = 14.0;
    const GAP: f64 = 3.0;
    let weeks = days.len().div_ceil(7).max(1);
    let w = weeks as f64 * (CELL + GAP) + 30.0;
    let h = 7.0 * (CELL + GAP) + 4.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="Backups per day: succeeded and failed" xmlns="http://www.w3.org/2000/svg">"#
    );
    for (label, row) in [("Mon", 0.0), ("Thu", 3.0), ("Sun", 6.0)] {
        let _ = write!(
            svg,
            r#"<text x="0" y="{:.1}">{label}</text>"#,
            row * (CELL + GAP) + CELL - 3.0
        );
    }
    let offset = days
        .first()
        .map(|d| d.date.weekday().to_monday_zero_offset() as usize)
        .unwrap_or(0);
    for (i, d) in days.iter().enumerate() {
        let slot = i + offset;
        let (col, row) = (slot / 7, slot % 7);
        let fill = match (d.succeeded, d.failed) {
            (0, 0) => "#e6e9ef",
            (_, 0) => "#3fa55b",
            (0, _) => "#c62828",
            _ => "#e8a33d",
        };
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{CELL}" height="{CELL}" rx="2" fill="{fill}"><title>{}: {} succeeded, {} failed</title></rect>"#,
            30.0 + col as f64 * (CELL + GAP),
            row as f64 * (CELL + GAP),
            d.date,
            d.succeeded,
            d.failed
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_chart_has_one_point_per_value_with_its_label() {
        let t: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-12-02T00:00:00Z".parse().unwrap();
        let svg = line_chart("size <of> x", &[(t, 1.0), (later, 3.0)], &|v| format!("{v} B"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("aria-label=\"size &lt;of&gt; x\""));
        assert!(svg.contains("3 B"));
    }

    #[test]
    fn an_empty_chart_says_so() {
        assert!(line_chart("x", &[], &|v| v.to_string()).contains("no data yet"));
    }

    #[test]
    fn calendar_days_are_coloured_by_outcome() {
        let d: Date = "2026-12-07".parse().unwrap();
        let svg = calendar(&[
            Day {
                date: d,
                succeeded: 2,
                failed: 0,
            },
            Day {
                date: d.tomorrow().unwrap(),
                succeeded: 0,
                failed: 1,
            },
            Day {
                date: d.tomorrow().unwrap().tomorrow().unwrap(),
                succeeded: 0,
                failed: 0,
            },
        ]);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("#3fa55b") && svg.contains("#c62828") && svg.contains("#e6e9ef"));
        assert!(svg.contains("2026-12-07: 2 succeeded, 0 failed"));
    }
}
