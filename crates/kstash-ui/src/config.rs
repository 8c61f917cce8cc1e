//! How the dashboard listens: the address, TLS, read-only mode, and the rule that only loopback
//! may be served without TLS unless the operator explicitly says `--ui-insecure`.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::UiError;

/// The file in `$KSTASH_HOME` where a running dashboard records its base URL (for `kstash ui-url`).
pub const ADDRESS_FILE: &str = "ui-address";

/// Settings of one dashboard.
#[derive(Debug, Clone, Default)]
pub struct UiConfig {
    /// Where to listen (`127.0.0.1:9465`; port 0 picks a free one).
    pub addr: String,
    /// When the port of `addr` is taken, listen on a free port of the same address instead.
    pub fall_back_to_free_port: bool,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve plain HTTP on a non-loopback address (explicit opt-in).
    pub insecure: bool,
    /// Hide and refuse every action.
    pub read_only: bool,
    /// `$KSTASH_HOME`: holds the token file and the address file.
    pub home: PathBuf,
}

impl UiConfig {
    /// The address to listen on, checked against the loopback rule.
    pub fn socket_addr(&self) -> Result<SocketAddr, UiError> {
        let addr: SocketAddr = self.addr.parse().map_err(|_| {
            UiError::Config(format!(
                "--ui-addr {:?} is not an address like 127.0.0.1:9465",
                self.addr
            ))
        })?;
        if !addr.ip().is_loopback() && self.tls.is_none() && !self.insecure {
            return Err(UiError::Config(format!(
                "refusing to serve the dashboard on {addr} without TLS: it is reachable from other machines; \
                 fix: give --ui-tls-cert and --ui-tls-key, or --ui-insecure to serve plain HTTP anyway, \
                 or listen on 127.0.0.1"
            )));
        }
        Ok(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(addr: &str) -> UiConfig {
        UiConfig {
            addr: addr.into(),
            ..UiConfig::default()
        }
    }

    #[test]
    fn loopback_is_served_without_tls() {
        assert!(config("127.0.0.1:0").socket_addr().is_ok());
        assert!(config("[::1]:0").socket_addr().is_ok());
    }

    #[test]
    fn another_address_needs_tls_or_an_explicit_insecure() {
        let err = config("0.0.0.0:9465").socket_addr().unwrap_err().to_string();
        assert!(
            err.contains("--ui-tls-cert") && err.contains("--ui-insecure"),
            "{err}"
        );
        let insecure = UiConfig {
            insecure: true,
            ..config("0.0.0.0:9465")
        };
        assert!(insecure.socket_addr().is_ok());
        let tls = UiConfig {
            tls: Some(("c.pem".into(), "k.pem".into())),
            ..config("0.0.0.0:9465")
        };
        assert!(tls.socket_addr().is_ok());
    }

    #[test]
    fn a_malformed_address_is_named() {
        let err = config("localhost").socket_addr().unwrap_err().to_string();
        assert!(err.contains("\"localhost\""), "{err}");
    }
}
