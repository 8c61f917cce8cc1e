//! Pack files: `EncBlob1 ‖ … ‖ EncBlobN ‖ EncHeader ‖ u32le(len(EncHeader))`, with header entries
//! `type(1) ‖ u32le length ‖ [u32le uncompressed length] ‖ id(32)`; plus encoding of single
//! blobs (zstd when the repository is v2, then the encryption envelope).

use sha2::{Digest, Sha256};

use crate::crypto::{self, Key};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{BlobType, PackedBlob};

/// restic's default pack size target.
pub const DEFAULT_PACK_SIZE: usize = 16 * 1024 * 1024;
/// Header entry size of an uncompressed blob.
pub const ENTRY_SIZE_PLAIN: usize = 1 + 4 + 32;
/// Header entry size of a compressed blob.
pub const ENTRY_SIZE_COMPRESSED: usize = 1 + 4 + 4 + 32;
/// Largest header restic accepts.
pub const MAX_HEADER_SIZE: usize = 16 * 1024 * 1024;

fn entry_size(b: &PackedBlob) -> usize {
    if b.uncompressed_length.is_some() {
        ENTRY_SIZE_COMPRESSED
    } else {
        ENTRY_SIZE_PLAIN
    }
}

/// Bytes a pack spends after its blobs: the encrypted header and its length.
pub fn header_size(blobs: &[PackedBlob]) -> usize {
    blobs.iter().map(entry_size).sum::<usize>() + crypto::OVERHEAD + 4
}

/// A blob ready for a pack: encrypted (and maybe compressed).
#[derive(Debug, Clone)]
pub struct EncodedBlob {
    /// Blob id (SHA-256 of the plaintext).
    pub id: Id,
    /// Data or tree.
    pub blob_type: BlobType,
    /// `IV ‖ ciphertext ‖ MAC`.
    pub data: Vec<u8>,
    /// Plaintext length if compressed.
    pub uncompressed_length: Option<u32>,
    /// Plaintext length.
    pub plain_length: usize,
}

/// Compress (if `compressor` is given and it helps) and encrypt one blob.
pub fn encode_blob(
    key: &Key,
    blob_type: BlobType,
    id: Id,
    plain: &[u8],
    compressor: Option<&mut zstd::bulk::Compressor<'_>>,
) -> Result<EncodedBlob> {
    let plain_len32 = u32::try_from(plain.len())
        .map_err(|_| Error::Invalid(format!("blob of {} bytes is too large", plain.len())))?;
    let mut compressed = None;
    if let Some(c) = compressor {
        let z = c
            .compress(plain)
            .map_err(|e| Error::Internal(format!("zstd compression failed: {e}")))?;
        if z.len() < plain.len() {
            compressed = Some(z);
        }
    }
    let (data, uncompressed_length) = match compressed {
        Some(z) => (key.encrypt(&z), Some(plain_len32)),
        None => (key.encrypt(plain), None),
    };
    Ok(EncodedBlob {
        id,
        blob_type,
        data,
        uncompressed_length,
        plain_length: plain.len(),
    })
}

/// Decrypt and decompress one blob read from a pack, and check that it hashes to its id.
/// `data` is borrowed: the ciphertext is decrypted straight into the new buffer (taking a
/// vector and decrypting in place cost two copies of every blob, its `to_vec` and the shift
/// over the IV).
pub fn decode_blob(
    key: &Key,
    pack: &Id,
    blob_type: BlobType,
    id: &Id,
    data: &[u8],
    uncompressed_length: Option<u32>,
) -> Result<Vec<u8>> {
    let what = || {
        format!(
            "{} blob {} in pack data/{}/{}",
            blob_type.as_str(),
            id,
            &pack.to_hex()[..2],
            pack
        )
    };
    let data = key.decrypt(data).map_err(|e| Error::crypto(what(), e))?;
    let plain = match uncompressed_length {
        Some(n) => decompress(&data, n).map_err(|e| Error::Format {
            what: what(),
            reason: format!("zstd decompression failed: {e}"),
        })?,
        None => data,
    };
    if let Some(n) = uncompressed_length
        && plain.len() != n as usize
    {
        return Err(Error::Format {
            what: what(),
            reason: format!("decompressed to {} bytes, index says {n}", plain.len()),
        });
    }
    let actual = Id::hash(&plain);
    if actual != *id {
        return Err(Error::HashMismatch {
            what: what(),
            expected: *id,
            actual,
        });
    }
    Ok(plain)
}

/// The largest plaintext decompressed into one buffer allocated up front from the length the
/// header or index claims (twice the chunker's largest chunk). A larger claim, true for a big
/// tree or false in a hostile repository, is decompressed into a growing buffer that stops one
/// byte past the claim, so a length of 4 GiB costs nothing until the data is really there.
const MAX_UP_FRONT: usize = 16 * 1024 * 1024;

thread_local! {
    /// One zstd decompression context per thread, made on first use: creating a context for each
    /// blob was 2% of a restore's CPU (`ZSTD_createDCtx` in `perf`), most of it for small blobs.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// zstd-decompress a blob whose plaintext should be `n` bytes: at most `n + 1` bytes come out.
fn decompress(data: &[u8], n: u32) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let n = n as usize;
    if n <= MAX_UP_FRONT {
        return DECOMPRESSOR.with(|d| match &mut *d.borrow_mut() {
            Some(d) => d.decompress(data, n),
            slot @ None => slot.insert(zstd::bulk::Decompressor::new()?).decompress(data, n),
        });
    }
    let mut out = Vec::with_capacity(MAX_UP_FRONT);
    zstd::stream::read::Decoder::new(data)?
        .take(n as u64 + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Collects encrypted blobs of one type into a pack.
#[derive(Debug)]
pub struct PackWriter {
    data: Vec<u8>,
    blobs: Vec<PackedBlob>,
    hasher: Sha256,
}

/// A finished pack: its bytes, its id (SHA-256 of the bytes) and the blobs it holds.
#[derive(Debug)]
pub struct FinishedPack {
    /// The pack id / file name.
    pub id: Id,
    /// The whole file.
    pub data: Vec<u8>,
    /// The blobs, with offsets.
    pub blobs: Vec<PackedBlob>,
}

impl Default for PackWriter {
    fn default() -> Self {
        PackWriter::new(0)
    }
}

impl PackWriter {
    /// An empty pack, with room for `capacity` bytes.
    pub fn new(capacity: usize) -> PackWriter {
        PackWriter {
            data: Vec::with_capacity(capacity),
            blobs: Vec::new(),
            hasher: Sha256::new(),
        }
    }

    /// Append a blob.
    pub fn add(&mut self, blob: &EncodedBlob) -> Result<()> {
        let offset = u32::try_from(self.data.len()).map_err(|_| Error::Internal("pack too large".into()))?;
        let length = u32::try_from(blob.data.len()).map_err(|_| Error::Internal("blob too large".into()))?;
        self.hasher.update(&blob.data);
        self.data.extend_from_slice(&blob.data);
        self.blobs.push(PackedBlob {
            id: blob.id,
            blob_type: blob.blob_type,
            offset,
            length,
            uncompressed_length: blob.uncompressed_length,
        });
        Ok(())
    }

    /// Bytes of blob data so far.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// Number of blobs so far.
    pub fn count(&self) -> usize {
        self.blobs.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Write the encrypted header and its length, and compute the pack id.
    pub fn finish(mut self, key: &Key) -> Result<FinishedPack> {
        let tail = seal_header(key, &self.blobs)?;
        self.hasher.update(&tail);
        self.data.extend_from_slice(&tail);
        let id = Id(self.hasher.finalize().into());
        Ok(FinishedPack {
            id,
            data: self.data,
            blobs: self.blobs,
        })
    }
}

/// What follows the blobs of a pack: the encrypted header listing `blobs`, then its length
/// (4 bytes, little endian).
pub fn seal_header(key: &Key, blobs: &[PackedBlob]) -> Result<Vec<u8>> {
    let mut header = Vec::with_capacity(blobs.len() * ENTRY_SIZE_COMPRESSED);
    for b in blobs {
        let code: u8 = match (b.blob_type, b.uncompressed_length.is_some()) {
            (BlobType::Data, false) => 0,
            (BlobType::Tree, false) => 1,
            (BlobType::Data, true) => 2,
            (BlobType::Tree, true) => 3,
        };
        header.push(code);
        header.extend_from_slice(&b.length.to_le_bytes());
        if let Some(u) = b.uncompressed_length {
            header.extend_from_slice(&u.to_le_bytes());
        }
        header.extend_from_slice(b.id.as_bytes());
    }
    let mut enc = key.encrypt(&header);
    let len = u32::try_from(enc.len()).map_err(|_| Error::Internal("pack header too large".into()))?;
    enc.extend_from_slice(&len.to_le_bytes());
    Ok(enc)
}

/// Where the header of a pack of `pack_size` bytes starts, from its last 4 bytes.
pub fn header_range(pack: &Id, pack_size: u64, tail: [u8; 4]) -> Result<(u64, usize)> {
    let hl = u32::from_le_bytes(tail) as u64;
    let bad = |reason: String| Error::InvalidPack { pack: *pack, reason };
    if pack_size < (crypto::OVERHEAD + ENTRY_SIZE_PLAIN + 4) as u64 {
        return Err(bad(format!("file too small ({pack_size} bytes)")));
    }
    if hl < (crypto::OVERHEAD + ENTRY_SIZE_PLAIN) as u64
        || hl + 4 > pack_size
        || hl as usize > MAX_HEADER_SIZE
    {
        return Err(bad(format!(
            "invalid header length {hl} for a file of {pack_size} bytes"
        )));
    }
    Ok((pack_size - 4 - hl, hl as usize))
}

/// Decrypt and parse a pack header; `header_offset` is where it starts (= total blob bytes).
pub fn parse_header(key: &Key, pack: &Id, header_offset: u64, enc_header: &[u8]) -> Result<Vec<PackedBlob>> {
    let bad = |reason: String| Error::InvalidPack { pack: *pack, reason };
    let plain = key
        .decrypt(enc_header)
        .map_err(|e| Error::crypto(format!("header of pack data/{}/{}", &pack.to_hex()[..2], pack), e))?;
    let mut blobs = Vec::new();
    let mut pos = 0usize;
    let mut offset = 0u64;
    while pos < plain.len() {
        let code = plain[pos];
        let (blob_type, compressed) = match code {
            0 => (BlobType::Data, false),
            1 => (BlobType::Tree, false),
            2 => (BlobType::Data, true),
            3 => (BlobType::Tree, true),
            t => return Err(bad(format!("invalid blob type {t} in header"))),
        };
        let size = if compressed {
            ENTRY_SIZE_COMPRESSED
        } else {
            ENTRY_SIZE_PLAIN
        };
        let e = plain
            .get(pos..pos + size)
            .ok_or_else(|| bad("truncated header entry".into()))?;
        let u32_at = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
        let length = u32_at(1);
        let (uncompressed_length, id_at) = if compressed {
            (Some(u32_at(5)), 9)
        } else {
            (None, 5)
        };
        let mut id = [0u8; 32];
        id.copy_from_slice(&e[id_at..id_at + 32]);
        let off32 = u32::try_from(offset).map_err(|_| bad("offset out of range".into()))?;
        blobs.push(PackedBlob {
            id: Id(id),
            blob_type,
            offset: off32,
            length,
            uncompressed_length,
        });
        offset += u64::from(length);
        pos += size;
    }
    if offset != header_offset {
        return Err(bad(format!(
            "header lists {offset} bytes of blobs, but the header starts at {header_offset}"
        )));
    }
    Ok(blobs)
}

/// Parse the header of a whole pack file held in memory.
pub fn list_blobs(key: &Key, pack: &Id, data: &[u8]) -> Result<Vec<PackedBlob>> {
    let n = data.len();
    let tail: [u8; 4] = data
        .get(n.saturating_sub(4)..)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| Error::InvalidPack {
            pack: *pack,
            reason: "file too small".into(),
        })?;
    let (start, len) = header_range(pack, n as u64, tail)?;
    parse_header(key, pack, start, &data[start as usize..start as usize + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip() {
        let key = Key::random();
        let mut comp = zstd::bulk::Compressor::new(3).unwrap();
        let text = b"hello hello hello hello hello hello hello hello hello hello".repeat(100);
        let random: Vec<u8> = (0..40u32).flat_map(|i| Id::hash(&i.to_le_bytes()).0).collect();
        let mut w = PackWriter::new(0);
        let blobs = [
            encode_blob(&key, BlobType::Data, Id::hash(&text), &text, Some(&mut comp)).unwrap(),
            encode_blob(&key, BlobType::Data, Id::hash(&random), &random, Some(&mut comp)).unwrap(),
            encode_blob(&key, BlobType::Data, Id::hash(b"x"), b"x", None).unwrap(),
        ];
        assert!(blobs[0].uncompressed_length.is_some());
        assert!(
            blobs[1].uncompressed_length.is_none(),
            "incompressible data is stored plain"
        );
        for b in &blobs {
            w.add(b).unwrap();
        }
        let p = w.finish(&key).unwrap();
        assert_eq!(p.id, Id::hash(&p.data));
        let listed = list_blobs(&key, &p.id, &p.data).unwrap();
        assert_eq!(listed, p.blobs);
        assert_eq!(
            p.data.len(),
            blobs.iter().map(|b| b.data.len()).sum::<usize>() + header_size(&listed)
        );
        for (b, plain) in listed.iter().zip([&text[..], &random[..], b"x"]) {
            let enc = &p.data[b.offset as usize..(b.offset + b.length) as usize];
            let got = decode_blob(&key, &p.id, b.blob_type, &b.id, enc, b.uncompressed_length).unwrap();
            assert_eq!(got, plain);
        }
        // A flipped bit in a blob fails its MAC; in the header, the header's MAC.
        let b = listed[0];
        let mut enc = p.data[b.offset as usize..(b.offset + b.length) as usize].to_vec();
        enc[20] ^= 4;
        let err = decode_blob(&key, &p.id, b.blob_type, &b.id, &enc, b.uncompressed_length).unwrap_err();
        assert!(matches!(err, Error::Mac { .. }), "{err}");
        assert!(err.to_string().contains(&p.id.to_hex()), "{err}");
        let mut bad = p.data.clone();
        let i = bad.len() - 10;
        bad[i] ^= 1;
        assert!(matches!(list_blobs(&key, &p.id, &bad), Err(Error::Mac { .. })));
        assert!(list_blobs(&key, &p.id, &p.data[..10]).is_err());
    }
}
