//! AWS Signature Version 4 for the few S3 calls this crate makes itself (bucket creation, readiness).

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub(crate) struct Credentials<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub region: &'a str,
}

/// Headers (`x-amz-date`, `x-amz-content-sha256`, `authorization`) that sign a request whose
/// `path` is already percent-encoded and whose `query` is canonical (sorted `k=v&…`, encoded).
pub(crate) fn sign(
    creds: &Credentials<'_>,
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    payload: &[u8],
    now: SystemTime,
) -> Vec<(&'static str, String)> {
    let (date, time) = utc_date_time(now);
    let amz_date = format!("{date}T{time}Z");
    let payload_hash = hex(&Sha256::digest(payload));
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let canonical_request = format!(
        "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n\n{signed_headers}\n{payload_hash}"
    );
    let scope = format!("{date}/{}/s3/aws4_request", creds.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request))
    );
    let mut key = hmac(format!("AWS4{}", creds.secret_key).as_bytes(), date.as_bytes());
    for part in [creds.region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key
    );
    vec![
        ("x-amz-date", amz_date),
        ("x-amz-content-sha256", payload_hash),
        ("authorization", authorization),
    ]
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// (`YYYYMMDD`, `HHMMSS`) in UTC.
pub(crate) fn utc_date_time(now: SystemTime) -> (String, String) {
    let secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil-from-days (Howard Hinnant), days since 1970-01-01 → proleptic Gregorian date.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}{month:02}{day:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_utc_calendar_dates() {
        let at = |s| utc_date_time(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), ("19700101".into(), "000000".into()));
        assert_eq!(at(951_782_400), ("20000229".into(), "000000".into()));
        assert_eq!(at(1_785_000_000), ("20260725".into(), "172000".into()));
    }

    /// The credentials and request of the GET-object example in the AWS SigV4 documentation (without
    /// its Range header); the expected signature was computed with botocore's `S3SigV4Auth`.
    #[test]
    fn signature_matches_reference() {
        let creds = Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24T00:00:00Z
        let headers = sign(
            &creds,
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "",
            b"",
            now,
        );
        assert_eq!(headers[0].1, "20130524T000000Z");
        assert_eq!(
            headers[1].1,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            headers[2].1,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature=df548e2ce037944d03f3e68682813b093763996d597cf890ca3d9037fd231eb4"
        );
    }
}
