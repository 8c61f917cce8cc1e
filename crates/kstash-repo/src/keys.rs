//! Key files (`keys/<id>`): plaintext JSON holding the master key encrypted under a key derived
//! from a password with scrypt. Several key files may wrap the same master key.

use serde::{Deserialize, Serialize};

use crate::crypto::{self, CryptoError, Key};
use crate::gojson::{self, GoTime};
use crate::id::Id;

/// scrypt parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// CPU/memory cost (a power of two).
    pub n: u64,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
}

impl Default for KdfParams {
    /// What restic's calibration writes on typical machines: N=2^15, r=8, p=5.
    fn default() -> Self {
        KdfParams {
            n: 1 << 15,
            r: 8,
            p: 5,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for tests only.
    pub fn insecure_fast() -> Self {
        KdfParams {
            n: 1 << 10,
            r: 8,
            p: 1,
        }
    }
}

/// Length of the random salt.
pub const SALT_SIZE: usize = 64;

/// A key file, field for field as restic writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// When the key was added.
    pub created: GoTime,
    /// Who added it.
    #[serde(default)]
    pub username: String,
    /// On which host.
    #[serde(default)]
    pub hostname: String,
    /// Always `"scrypt"`.
    pub kdf: String,
    /// scrypt N.
    #[serde(rename = "N")]
    pub n: u64,
    /// scrypt r.
    pub r: u32,
    /// scrypt p.
    pub p: u32,
    /// Salt (base64).
    #[serde(with = "gojson::base64_bytes")]
    pub salt: Vec<u8>,
    /// The encrypted master key JSON (base64).
    #[serde(with = "gojson::base64_bytes")]
    pub data: Vec<u8>,
}

impl KeyFile {
    /// Wrap `master` under `password`.
    pub fn new(password: &str, master: &Key, params: KdfParams) -> Result<KeyFile, KeyError> {
        let mut salt = vec![0u8; SALT_SIZE];
        crypto::fill_random(&mut salt);
        let user = Key::derive(password.as_bytes(), &salt, params.n, params.r, params.p)?;
        let master_json = serde_json::to_vec(master).map_err(KeyError::Json)?;
        Ok(KeyFile {
            created: GoTime::now(),
            username: crate::host::username(),
            hostname: crate::host::hostname(),
            kdf: "scrypt".to_string(),
            n: params.n,
            r: params.r,
            p: params.p,
            salt,
            data: user.encrypt(&master_json),
        })
    }

    /// The stored bytes (Go JSON) and the file's id.
    pub fn to_bytes(&self) -> (Id, Vec<u8>) {
        let bytes = gojson::to_vec(self).unwrap_or_default();
        (Id::hash(&bytes), bytes)
    }

    /// Recover the master key with `password`. A wrong password gives [`CryptoError::Mac`].
    pub fn open(&self, password: &str) -> Result<Key, KeyError> {
        if self.kdf != "scrypt" {
            return Err(KeyError::Kdf(self.kdf.clone()));
        }
        let user = Key::derive(password.as_bytes(), &self.salt, self.n, self.r, self.p)?;
        let plain = user.decrypt(&self.data)?;
        serde_json::from_slice(&plain).map_err(KeyError::Json)
    }
}

/// Why a key file could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Wrong password (MAC mismatch) or bad parameters.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A KDF other than scrypt.
    #[error("unsupported KDF {0:?}")]
    Kdf(String),
    /// The master key JSON could not be written or read.
    #[error("invalid master key JSON: {0}")]
    Json(serde_json::Error),
}

/// A key as `key list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key file id.
    pub id: Id,
    /// Whether the open repository uses it.
    pub current: bool,
    /// User who added it.
    pub username: String,
    /// Host it was added on.
    pub hostname: String,
    /// When.
    pub created: GoTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_open() {
        let master = Key::random();
        let kf = KeyFile::new("secret", &master, KdfParams::insecure_fast()).unwrap();
        assert_eq!(kf.open("secret").unwrap(), master);
        assert!(matches!(kf.open("nope"), Err(KeyError::Crypto(CryptoError::Mac))));
        let (id, bytes) = kf.to_bytes();
        assert_eq!(id, Id::hash(&bytes));
        let s = String::from_utf8(bytes).unwrap();
        assert!(s.starts_with("{\"created\":\""), "{s}");
        assert!(
            s.contains(",\"kdf\":\"scrypt\",\"N\":1024,\"r\":8,\"p\":1,\"salt\":\""),
            "{s}"
        );
        let back: KeyFile = serde_json::from_str(&s).unwrap();
        assert_eq!(back, kf);
    }

    #[test]
    fn opens_restic_key_file() {
        // Written by restic 0.14 `init` with password "pw".
        let restic = r#"{"created":"2026-11-22T02:26:24.603818254Z","username":"root","hostname":"vm","kdf":"scrypt","N":32768,"r":8,"p":5,"salt":"DCk0LCUq4QZkEmMYqI78vG9njJ4HTKub+FSGU4O2tbWG/vpwfpkPOBX2B72SMlyf3KyKjobu3ITv0PwdCcy2nQ==","data":"saVQEtj6TLhQPy5Q5pf/J+qO4gfzmplJJgVmkuJDyc/2xvD+KqtlUOdKTliqAaBHPjTNwfP5QeN8LV2QpQG4i+qUSsR3KgUQc49QCEetvneB3fnwKb1zZO/YUfHfBMw+SM9hXybufKy/lckNVjIC1DnGjYJdPQIKd097VMeqJamOqOceIYIet46WagkrfkhVflVM5VTNYgZtIcTdg8vIBQ=="}"#;
        let kf: KeyFile = serde_json::from_str(restic).unwrap();
        assert!(kf.open("pw").is_ok());
        assert!(kf.open("wrong").is_err());
    }
}
