//! restic's encryption envelope: `IV(16) ‖ AES-256-CTR(plaintext) ‖ Poly1305-AES(ciphertext)`,
//! the master key and its JSON form, and the scrypt key derivation for key files.

use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher, generic_array::GenericArray};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use poly1305::Poly1305;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// Size of the random IV that starts every encrypted object.
pub const IV_SIZE: usize = 16;
/// Size of the Poly1305 tag that ends every encrypted object.
pub const MAC_SIZE: usize = 16;
/// Bytes an encrypted object is longer than its plaintext.
pub const OVERHEAD: usize = IV_SIZE + MAC_SIZE;

/// The most memory scrypt may use to open a key file (`128·r·(N+p)` bytes). restic calibrates its
/// parameters to at most 60 MiB; 1 GiB leaves room for other writers and stops a key file that
/// asks for terabytes.
pub const MAX_KDF_MEMORY: u64 = 1 << 30;
/// The most scrypt work (`N·r·p`) to open a key file: restic's usual `N=2^15, r=8, p=5` is about
/// 2^20; 2^26 bounds a hostile key file to seconds instead of hours.
pub const MAX_KDF_WORK: u64 = 1 << 26;

/// Failures of the envelope. The caller adds which file or blob was concerned.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The MAC did not match: wrong key, or the data was changed.
    #[error("ciphertext verification failed (MAC mismatch)")]
    Mac,
    /// Shorter than IV plus MAC.
    #[error("ciphertext too short ({0} bytes)")]
    TooShort(usize),
    /// An all-zero IV, which restic refuses.
    #[error("invalid (all-zero) nonce")]
    ZeroNonce,
    /// Key derivation parameters scrypt rejects.
    #[error("invalid or too costly scrypt parameters N={n} r={r} p={p}")]
    KdfParams {
        /// CPU/memory cost (a power of two).
        n: u64,
        /// Block size.
        r: u32,
        /// Parallelism.
        p: u32,
    },
}

/// Fill `buf` with cryptographically secure random bytes.
pub fn fill_random(buf: &mut [u8]) {
    rand::rng().fill_bytes(buf);
}

/// The MAC key: `k` is the AES-128 key that encrypts the nonce, `r` the Poly1305 multiplier.
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey {
    /// AES-128 key for the nonce.
    pub k: [u8; 16],
    /// Poly1305 `r` (clamped when used).
    pub r: [u8; 16],
}

/// A key that encrypts and authenticates: the repository master key, or a key derived from a
/// password by scrypt.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// AES-256 key.
    pub encrypt: [u8; 32],
    /// Poly1305-AES key.
    pub mac: MacKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A fresh random key.
    pub fn random() -> Key {
        let mut k = Key {
            encrypt: [0; 32],
            mac: MacKey {
                k: [0; 16],
                r: [0; 16],
            },
        };
        fill_random(&mut k.encrypt);
        fill_random(&mut k.mac.k);
        fill_random(&mut k.mac.r);
        k
    }

    /// Build from 64 bytes laid out as restic's KDF output: encrypt(32) ‖ k(16) ‖ r(16).
    pub fn from_kdf_output(b: &[u8; 64]) -> Key {
        let mut k = Key {
            encrypt: [0; 32],
            mac: MacKey {
                k: [0; 16],
                r: [0; 16],
            },
        };
        k.encrypt.copy_from_slice(&b[..32]);
        k.mac.k.copy_from_slice(&b[32..48]);
        k.mac.r.copy_from_slice(&b[48..64]);
        k
    }

    /// Derive a key from a password with scrypt (`n` must be a power of two), as restic does.
    /// Parameters beyond [`MAX_KDF_MEMORY`] or [`MAX_KDF_WORK`] are refused before any work: they
    /// come from a key file, which anyone with write access to the storage can plant.
    pub fn derive(password: &[u8], salt: &[u8], n: u64, r: u32, p: u32) -> Result<Key, CryptoError> {
        let bad = CryptoError::KdfParams { n, r, p };
        if !n.is_power_of_two() || n < 2 {
            return Err(bad);
        }
        // scrypt holds `N` blocks of `128·r` bytes, and `p` more for its output.
        let memory = 128u128 * u128::from(r) * (u128::from(n) + u128::from(p));
        let work = u128::from(n) * u128::from(r) * u128::from(p);
        if memory > u128::from(MAX_KDF_MEMORY) || work > u128::from(MAX_KDF_WORK) {
            return Err(bad);
        }
        let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| bad.clone())?;
        let params = scrypt::Params::new(log_n, r, p).map_err(|_| bad.clone())?;
        let mut out = [0u8; 64];
        scrypt::scrypt(password, salt, &params, &mut out).map_err(|_| bad)?;
        Ok(Key::from_kdf_output(&out))
    }

    fn mac(&self, iv: &[u8; IV_SIZE], ciphertext: &[u8]) -> [u8; MAC_SIZE] {
        // Poly1305-AES: one-time key = r ‖ AES-128_k(nonce); the poly1305 crate clamps r.
        let aes = aes::Aes128::new(GenericArray::from_slice(&self.mac.k));
        let mut s = GenericArray::clone_from_slice(iv);
        aes.encrypt_block(&mut s);
        let mut one_time = [0u8; 32];
        one_time[..16].copy_from_slice(&self.mac.r);
        one_time[16..].copy_from_slice(&s);
        let tag = Poly1305::new(GenericArray::from_slice(&one_time)).compute_unpadded(ciphertext);
        tag.into()
    }

    /// Append `IV ‖ AES-256-CTR(plain) ‖ MAC` to `out`.
    pub fn encrypt_into(&self, plain: &[u8], out: &mut Vec<u8>) {
        let mut iv = [0u8; IV_SIZE];
        while iv == [0u8; IV_SIZE] {
            fill_random(&mut iv);
        }
        out.reserve(plain.len() + OVERHEAD);
        out.extend_from_slice(&iv);
        let start = out.len();
        out.extend_from_slice(plain);
        let mut cipher = Aes256Ctr::new(
            GenericArray::from_slice(&self.encrypt),
            GenericArray::from_slice(&iv),
        );
        cipher.apply_keystream(&mut out[start..]);
        let tag = self.mac(&iv, &out[start..]);
        out.extend_from_slice(&tag);
    }

    /// `IV ‖ AES-256-CTR(plain) ‖ MAC` as a new vector.
    pub fn encrypt(&self, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        self.encrypt_into(plain, &mut out);
        out
    }

    /// Check the MAC, then decrypt.
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (iv, ct) = self.verify(data)?;
        let mut out = ct.to_vec();
        let mut cipher = Aes256Ctr::new(
            GenericArray::from_slice(&self.encrypt),
            GenericArray::from_slice(iv),
        );
        cipher.apply_keystream(&mut out);
        Ok(out)
    }

    fn verify<'a>(&self, data: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), CryptoError> {
        if data.len() < OVERHEAD {
            return Err(CryptoError::TooShort(data.len()));
        }
        let (iv, rest) = data.split_at(IV_SIZE);
        let (ct, tag) = rest.split_at(rest.len() - MAC_SIZE);
        let iv: &[u8; IV_SIZE] = iv.try_into().map_err(|_| CryptoError::TooShort(data.len()))?;
        if *iv == [0u8; IV_SIZE] {
            return Err(CryptoError::ZeroNonce);
        }
        let want = self.mac(iv, ct);
        // Constant-time comparison.
        let diff = want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(CryptoError::Mac);
        }
        Ok((iv, ct))
    }
}

#[derive(Serialize, Deserialize)]
struct MacKeyJson {
    k: String,
    r: String,
}

#[derive(Serialize, Deserialize)]
struct KeyJson {
    mac: MacKeyJson,
    encrypt: String,
}

fn b64_array<const N: usize, E: serde::de::Error>(s: &str) -> Result<[u8; N], E> {
    let v = B64.decode(s).map_err(E::custom)?;
    v.try_into()
        .map_err(|v: Vec<u8>| E::custom(format!("expected {N} key bytes, got {}", v.len())))
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        KeyJson {
            mac: MacKeyJson {
                k: B64.encode(self.mac.k),
                r: B64.encode(self.mac.r),
            },
            encrypt: B64.encode(self.encrypt),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = KeyJson::deserialize(d)?;
        Ok(Key {
            encrypt: b64_array::<32, D::Error>(&j.encrypt)?,
            mac: MacKey {
                k: b64_array::<16, D::Error>(&j.mac.k)?,
                r: b64_array::<16, D::Error>(&j.mac.r)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let k = Key::random();
        for len in [0usize, 1, 15, 16, 17, 1000, 70_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let enc = k.encrypt(&plain);
            assert_eq!(enc.len(), len + OVERHEAD);
            assert_eq!(k.decrypt(&enc).unwrap(), plain);
            let mut bad = enc.clone();
            let i = bad.len() / 2;
            bad[i] ^= 1;
            assert_eq!(k.decrypt(&bad), Err(CryptoError::Mac));
        }
        assert_eq!(Key::random().decrypt(&k.encrypt(b"x")), Err(CryptoError::Mac));
        assert_eq!(k.decrypt(&[1u8; 5]), Err(CryptoError::TooShort(5)));
    }

    fn h16(s: &str) -> [u8; 16] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// Poly1305-AES test vectors from Bernstein's paper (poly1305-20050329).
    #[test]
    fn poly1305_aes_vectors() {
        let cases = [
            (
                "f3f6",
                "851fc40c3467ac0be05cc20404f3f700",
                "ec074c835580741701425b623235add6",
                "fb447350c4e868c52ac3275cf9d4327e",
                "f4c633c3044fc145f84f335cb81953de",
            ),
            (
                "",
                "a0f3080000f46400d0c7e9076c834403",
                "75deaa25c09f208e1dc4ce6b5cad3fbf",
                "61ee09218d29b0aaed7e154a2c5509cc",
                "dd3fab2251f11ac759f0887129cc2ee7",
            ),
        ];
        for (msg, r, k, nonce, mac) in cases {
            let mut key = Key::random();
            key.mac.k = h16(k);
            key.mac.r = h16(r);
            assert_eq!(hex::encode(key.mac(&h16(nonce), &hex::decode(msg).unwrap())), mac);
        }
    }

    /// A ciphertext produced by restic's implementation.
    #[test]
    fn decrypts_restic_ciphertext() {
        let mut key = Key::random();
        key.encrypt.copy_from_slice(
            &hex::decode("303e8687b1d7db18421bdc6bb8588ccadac4d59ee87b8ff70c44e635790cafef").unwrap(),
        );
        key.mac.k = h16("ef4d8824cb80b2bcc5fbff8a9b12a42c");
        key.mac.r = h16("cc8d4b948ee0ebfe1d415de921d10353");
        let ct = hex::decode(
            "69fb41c62d12def4593bd71757138606338f621aeaeb39da0fe4f99233f8037a54ea63338a813bcf3f75d8c3cc75dddf8750",
        )
        .unwrap();
        assert_eq!(key.decrypt(&ct).unwrap(), b"Dies ist ein Test!");
    }

    #[test]
    fn json_form() {
        let k = Key::random();
        let j = serde_json::to_string(&k).unwrap();
        assert!(j.starts_with("{\"mac\":{\"k\":\""));
        let back: Key = serde_json::from_str(&j).unwrap();
        assert_eq!(back, k);
    }

    #[test]
    fn scrypt_derivation_is_deterministic() {
        let a = Key::derive(b"pw", &[7u8; 64], 1024, 8, 1).unwrap();
        let b = Key::derive(b"pw", &[7u8; 64], 1024, 8, 1).unwrap();
        let c = Key::derive(b"pw2", &[7u8; 64], 1024, 8, 1).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(Key::derive(b"pw", &[0u8; 64], 1000, 8, 1).is_err());
    }
}
