//! The repository `config` file: `{version, id, chunker_polynomial}`, encrypted with the master
//! key and never compressed (its version decides whether other files are).

use serde::{Deserialize, Serialize};

use crate::chunker::Pol;
use crate::id::Id;

/// Repository format version 1 (no compression).
pub const VERSION_1: u32 = 1;
/// Repository format version 2 (zstd-compressed blobs and unpacked files).
pub const VERSION_2: u32 = 2;

/// The repository config, as restic stores it. Unknown fields (rustic's additions) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Format version (1 or 2).
    pub version: u32,
    /// Random repository id (64 hex digits).
    pub id: String,
    /// The chunker polynomial, hex without `0x`.
    pub chunker_polynomial: String,
}

impl Config {
    /// A new config with a random id and the given polynomial.
    pub fn new(version: u32, pol: Pol) -> Config {
        Config {
            version,
            id: Id::random().to_hex(),
            chunker_polynomial: pol.to_string(),
        }
    }

    /// The parsed chunker polynomial.
    pub fn polynomial(&self) -> Result<Pol, crate::chunker::ChunkerError> {
        self.chunker_polynomial.parse()
    }

    /// Whether blobs and unpacked files are compressed.
    pub fn compression(&self) -> bool {
        self.version >= VERSION_2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_config_parses() {
        let c: Config = serde_json::from_str(
            r#"{"version":2,"id":"602941c28f1253904b7165e38d08fe1e735b90563e8e91f31d789feb18f3a94d","chunker_polynomial":"348c3bb5149507","compression":"auto"}"#,
        )
        .unwrap();
        assert_eq!(c.version, 2);
        assert_eq!(c.polynomial().unwrap(), Pol(0x348c3bb5149507));
        let new = Config::new(VERSION_2, Pol(0x3da3358b4dc173));
        assert_eq!(new.chunker_polynomial, "3da3358b4dc173");
        assert_eq!(new.id.len(), 64);
        assert_eq!(
            serde_json::to_string(&new).unwrap().find("\"version\":2"),
            Some(1)
        );
    }
}
