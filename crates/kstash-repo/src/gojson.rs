//! JSON exactly as Go's `encoding/json` writes it (HTML-safe escapes), Go `time.Time` values in
//! RFC 3339 with nanoseconds and offset, and Go `strconv.Quote` for node names, so the trees and
//! snapshots we write hash to the same ids restic would compute.

use std::fmt;
use std::io;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::ser::{CharEscape, Formatter};

/// A `serde_json` formatter that escapes strings the way Go does: `<`, `>`, `&`, U+2028 and
/// U+2029 as `\u00xx`/`\u20xx`, and control characters other than `\n`, `\r`, `\t` as `\u00xx`.
#[derive(Debug, Default, Clone, Copy)]
pub struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc: &[u8] = match c {
                '<' => b"\\u003c",
                '>' => b"\\u003e",
                '&' => b"\\u0026",
                '\u{2028}' => b"\\u2028",
                '\u{2029}' => b"\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(esc)?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(&mut self, w: &mut W, e: CharEscape) -> io::Result<()> {
        let byte = match e {
            CharEscape::Quote => return w.write_all(b"\\\""),
            CharEscape::ReverseSolidus => return w.write_all(b"\\\\"),
            CharEscape::Solidus => return w.write_all(b"/"),
            CharEscape::LineFeed => return w.write_all(b"\\n"),
            CharEscape::CarriageReturn => return w.write_all(b"\\r"),
            CharEscape::Tab => return w.write_all(b"\\t"),
            CharEscape::Backspace => 0x08,
            CharEscape::FormFeed => 0x0c,
            CharEscape::AsciiControl(b) => b,
        };
        const HEX: &[u8; 16] = b"0123456789abcdef";
        w.write_all(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(byte >> 4) as usize],
            HEX[(byte & 15) as usize],
        ])
    }
}

/// Serialize `v` as compact JSON byte-identical to Go's `json.Marshal`, given that `v`'s fields
/// are declared in Go's order with Go's omitempty rules.
pub fn to_vec<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    v.serialize(&mut ser)?;
    Ok(out)
}

/// A point in time with the UTC offset it was recorded in, as Go's `time.Time` marshals it:
/// `2006-01-02T15:04:05.999999999Z07:00` (trailing zeros of the fraction dropped, `Z` for UTC).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GoTime {
    /// The instant.
    pub timestamp: jiff::Timestamp,
    /// Offset from UTC in seconds.
    pub offset_seconds: i32,
}

impl Default for GoTime {
    /// Go's zero time, `0001-01-01T00:00:00Z`.
    fn default() -> GoTime {
        GoTime {
            timestamp: jiff::Timestamp::new(-62_135_596_800, 0).unwrap_or_default(),
            offset_seconds: 0,
        }
    }
}

impl GoTime {
    /// Now, in the local time zone.
    pub fn now() -> GoTime {
        let z = jiff::Zoned::now();
        GoTime {
            timestamp: z.timestamp(),
            offset_seconds: z.offset().seconds(),
        }
    }

    /// An instant shown in UTC.
    pub fn utc(timestamp: jiff::Timestamp) -> GoTime {
        GoTime {
            timestamp,
            offset_seconds: 0,
        }
    }

    /// Parse RFC 3339 (as Go writes it), keeping the offset.
    pub fn parse(s: &str) -> Result<GoTime, String> {
        let timestamp: jiff::Timestamp = s.parse().map_err(|e| format!("invalid time {s:?}: {e}"))?;
        let offset_seconds = if s.ends_with('Z') || s.ends_with('z') {
            0
        } else {
            let tail = s.get(s.len().saturating_sub(6)..).unwrap_or("");
            let b = tail.as_bytes();
            if b.len() != 6 || b[3] != b':' || (b[0] != b'+' && b[0] != b'-') {
                return Err(format!("invalid time {s:?}: no offset"));
            }
            let h: i32 = tail[1..3]
                .parse()
                .map_err(|_| format!("invalid offset in {s:?}"))?;
            let m: i32 = tail[4..6]
                .parse()
                .map_err(|_| format!("invalid offset in {s:?}"))?;
            let v = h * 3600 + m * 60;
            if b[0] == b'-' { -v } else { v }
        };
        Ok(GoTime {
            timestamp,
            offset_seconds,
        })
    }
}

impl fmt::Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let off = jiff::tz::Offset::from_seconds(self.offset_seconds).unwrap_or(jiff::tz::Offset::UTC);
        let dt = off.to_datetime(self.timestamp);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )?;
        let nanos = dt.subsec_nanosecond();
        if nanos != 0 {
            let s = format!("{nanos:09}");
            write!(f, ".{}", s.trim_end_matches('0'))?;
        }
        if self.offset_seconds == 0 {
            f.write_str("Z")
        } else {
            let sign = if self.offset_seconds < 0 { '-' } else { '+' };
            let a = self.offset_seconds.unsigned_abs();
            write!(f, "{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
        }
    }
}

impl fmt::Debug for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GoTime({self})")
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        GoTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether Go's `unicode.IsPrint` holds. Approximation: Rust has no Unicode category tables, so
/// unassigned code points count as printable; controls, non-ASCII spaces, format characters and
/// private-use characters do not.
fn go_is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c,
        '\u{00AD}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}' | '\u{08E2}'
        | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E000}'..='\u{F8FF}'
        | '\u{F0000}'..='\u{10FFFF}' | '\u{FFFE}' | '\u{FFFF}')
}

/// Go's `strconv.Quote(s)` without the surrounding quotes, as restic stores node names.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if go_is_print(c) => out.push(c),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0B}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out
}

/// Go's `strconv.Unquote` of a name stored by [`go_quote`] (bytes, since `\x` escapes may form
/// invalid UTF-8). Names without backslashes are returned unchanged.
pub fn go_unquote(s: &str) -> Result<Vec<u8>, String> {
    if !s.contains('\\') {
        return Ok(s.as_bytes().to_vec());
    }
    let bad = || format!("invalid quoted name {s:?}");
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        let e = it.next().ok_or_else(bad)?;
        let hex_n = |it: &mut std::str::Chars<'_>, n: usize| -> Result<u32, String> {
            let h: String = it.take(n).collect();
            if h.len() != n {
                return Err(bad());
            }
            u32::from_str_radix(&h, 16).map_err(|_| bad())
        };
        match e {
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            '\\' => out.push(b'\\'),
            '"' => out.push(b'"'),
            '\'' => out.push(b'\''),
            'x' => out.push(u8::try_from(hex_n(&mut it, 2)?).map_err(|_| bad())?),
            'u' | 'U' => {
                let v = hex_n(&mut it, if e == 'u' { 4 } else { 8 })?;
                let ch = char::from_u32(v).ok_or_else(bad)?;
                let mut b = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).ok_or_else(bad)?;
                for _ in 0..2 {
                    v = v * 8 + it.next().and_then(|d| d.to_digit(8)).ok_or_else(bad)?;
                }
                out.push(u8::try_from(v).map_err(|_| bad())?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// Go's `[]byte` JSON form: standard base64, `null` when absent.
pub mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as standard base64.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    /// Deserialize standard base64 (`null` gives an empty vector).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => STANDARD.decode(s).map_err(serde::de::Error::custom),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escapes() {
        let v = serde_json::json!({"a": "<x>&\u{2028}\u{1}\n\t\"\\/é"});
        assert_eq!(
            String::from_utf8(to_vec(&v).unwrap()).unwrap(),
            r#"{"a":"\u003cx\u003e\u0026\u2028\u0001\n\t\"\\/é"}"#
        );
    }

    #[test]
    fn go_time_format() {
        let t = GoTime::parse("2026-11-22T02:26:25.020403809Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-22T02:26:25.020403809Z");
        let t = GoTime::parse("2022-08-01T10:00:00.5+02:00").unwrap();
        assert_eq!(t.offset_seconds, 7200);
        assert_eq!(t.to_string(), "2022-08-01T10:00:00.5+02:00");
        let t = GoTime::parse("2022-08-01T10:00:00-05:30").unwrap();
        assert_eq!(t.to_string(), "2022-08-01T10:00:00-05:30");
        assert_eq!(GoTime::default().to_string(), "0001-01-01T00:00:00Z");
        let now = GoTime::now();
        assert_eq!(GoTime::parse(&now.to_string()).unwrap(), now);
        assert!(GoTime::parse("yesterday").is_err());
    }

    #[test]
    fn quote_round_trip() {
        for s in [
            "plain.sql",
            "a\"b",
            "tab\there",
            "new\nline",
            "ctl\u{1}\u{7f}",
            "nbsp\u{a0}",
            "é😀",
        ] {
            let q = go_quote(s);
            assert_eq!(go_unquote(&q).unwrap(), s.as_bytes(), "{s:?} -> {q:?}");
        }
        assert_eq!(go_quote("a\"b\\c"), "a\\\"b\\\\c");
        assert_eq!(go_quote("x\u{1}\u{a0}"), "x\\x01\\u00a0");
        assert_eq!(go_unquote("\\xff").unwrap(), vec![0xff]);
        assert!(go_unquote("\\q").is_err());
    }
}
