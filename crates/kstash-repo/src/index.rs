//! The blob index: in memory, blob (type, id) → location in a pack; on disk, restic's index files
//! `{supersedes, packs:[{id, blobs:[{id, type, offset, length, uncompressed_length?}]}]}`, and
//! when reading also restic's legacy format (before 0.8): a bare array of those packs.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::id::Id;

/// Most blobs written to one index file, keeping each file well under 8 MiB of JSON.
pub const MAX_BLOBS_PER_INDEX_FILE: usize = 32_768;

/// The two kinds of blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobType {
    /// File content.
    Data,
    /// A tree (directory listing).
    Tree,
}

impl BlobType {
    /// `"data"` or `"tree"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        }
    }
}

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack file.
    pub pack: Id,
    /// Byte offset of the encrypted blob in the pack.
    pub offset: u32,
    /// Length of the encrypted blob.
    pub length: u32,
    /// Plaintext length if the blob is compressed.
    pub uncompressed_length: Option<u32>,
}

impl BlobLocation {
    /// The plaintext length.
    pub fn data_length(&self) -> u32 {
        self.uncompressed_length
            .unwrap_or(self.length.saturating_sub(crate::crypto::OVERHEAD as u32))
    }
}

/// One blob as listed in a pack header or index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedBlob {
    /// Blob id (SHA-256 of the uncompressed plaintext).
    pub id: Id,
    /// Data or tree.
    pub blob_type: BlobType,
    /// Offset in the pack.
    pub offset: u32,
    /// Encrypted length.
    pub length: u32,
    /// Plaintext length if compressed.
    pub uncompressed_length: Option<u32>,
}

impl PackedBlob {
    /// The plaintext length.
    pub fn data_length(&self) -> u32 {
        self.uncompressed_length
            .unwrap_or(self.length.saturating_sub(crate::crypto::OVERHEAD as u32))
    }
}

/// A hasher for keys that start with a random [`Id`]: the id's bytes are already uniformly
/// distributed, so a cheap fold suffices.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[derive(Clone, Copy)]
struct Loc {
    pack: u32,
    offset: u32,
    length: u32,
    /// 0 = not compressed.
    uncompressed_length: u32,
}

/// The in-memory index of every blob in the repository.
#[derive(Default)]
pub struct Index {
    packs: Vec<Id>,
    pack_numbers: IdMap<Id, u32>,
    blobs: IdMap<(Id, BlobType), Loc>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Index({} packs, {} blobs)", self.packs.len(), self.blobs.len())
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether there are no blobs.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Number of packs.
    pub fn pack_count(&self) -> usize {
        self.packs.len()
    }

    /// Record the blobs of a pack. A blob already known elsewhere keeps its first location.
    pub fn add_pack(&mut self, pack: Id, blobs: &[PackedBlob]) {
        let n = *self.pack_numbers.entry(pack).or_insert_with(|| {
            self.packs.push(pack);
            (self.packs.len() - 1) as u32
        });
        for b in blobs {
            self.blobs.entry((b.id, b.blob_type)).or_insert(Loc {
                pack: n,
                offset: b.offset,
                length: b.length,
                uncompressed_length: b.uncompressed_length.unwrap_or(0),
            });
        }
    }

    /// Merge an index file.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            let blobs: Vec<PackedBlob> = p.blobs.iter().map(|b| b.to_packed()).collect();
            self.add_pack(p.id, &blobs);
        }
    }

    /// Whether a blob is known.
    pub fn contains(&self, blob_type: BlobType, id: &Id) -> bool {
        self.blobs.contains_key(&(*id, blob_type))
    }

    /// Where a blob is stored.
    pub fn get(&self, blob_type: BlobType, id: &Id) -> Option<BlobLocation> {
        self.blobs.get(&(*id, blob_type)).map(|l| BlobLocation {
            pack: self.packs[l.pack as usize],
            offset: l.offset,
            length: l.length,
            uncompressed_length: (l.uncompressed_length != 0).then_some(l.uncompressed_length),
        })
    }

    /// Whether a pack is referenced.
    pub fn has_pack(&self, pack: &Id) -> bool {
        self.pack_numbers.contains_key(pack)
    }
}

/// Whether two listings of a pack hold the same blobs, in any order.
pub fn same_blobs(a: &[PackedBlob], b: &[PackedBlob]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let key = |p: &PackedBlob| (p.offset, p.id, p.blob_type, p.length, p.uncompressed_length);
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// A blob in an index file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexBlob {
    /// Blob id.
    pub id: Id,
    /// `"data"` or `"tree"`.
    #[serde(rename = "type")]
    pub blob_type: BlobType,
    /// Offset in the pack.
    pub offset: u32,
    /// Encrypted length.
    pub length: u32,
    /// Plaintext length for compressed blobs (omitted otherwise).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uncompressed_length: u32,
}

impl IndexBlob {
    /// As a [`PackedBlob`].
    pub fn to_packed(&self) -> PackedBlob {
        PackedBlob {
            id: self.id,
            blob_type: self.blob_type,
            offset: self.offset,
            length: self.length,
            uncompressed_length: (self.uncompressed_length != 0).then_some(self.uncompressed_length),
        }
    }
}

impl From<&PackedBlob> for IndexBlob {
    fn from(b: &PackedBlob) -> IndexBlob {
        IndexBlob {
            id: b.id,
            blob_type: b.blob_type,
            offset: b.offset,
            length: b.length,
            uncompressed_length: b.uncompressed_length.unwrap_or(0),
        }
    }
}

/// A pack in an index file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    /// Pack id.
    pub id: Id,
    /// Its blobs.
    pub blobs: Vec<IndexBlob>,
}

/// An index file. Reads both restic's current format and its legacy one (a bare JSON array of
/// packs, written before restic 0.8); always writes the current format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexFile {
    /// Index files this one replaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<Id>,
    /// The packs it describes.
    #[serde(default)]
    pub packs: Vec<IndexPack>,
    /// Whether it was read from the legacy format (restic 0.14's check hints "has old format";
    /// `repair index` rewrites it).
    #[serde(skip)]
    pub legacy: bool,
}

/// The current format's fields, as read.
#[derive(Deserialize)]
struct CurrentIndexFile {
    #[serde(default)]
    supersedes: Vec<Id>,
    #[serde(default)]
    packs: Vec<IndexPack>,
}

impl<'de> Deserialize<'de> for IndexFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<IndexFile, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = IndexFile;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an index: an object with `packs`, or the legacy array of packs")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<IndexFile, A::Error> {
                let c = CurrentIndexFile::deserialize(MapAccessDeserializer::new(map))?;
                Ok(IndexFile {
                    supersedes: c.supersedes,
                    packs: c.packs,
                    legacy: false,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<IndexFile, A::Error> {
                let packs = Vec::<IndexPack>::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(IndexFile {
                    supersedes: Vec::new(),
                    packs,
                    legacy: true,
                })
            }
        }
        d.deserialize_any(Either)
    }
}

impl IndexFile {
    /// Number of blobs listed.
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }

    /// Add a pack.
    pub fn add_pack(&mut self, pack: Id, blobs: &[PackedBlob]) {
        self.packs.push(IndexPack {
            id: pack,
            blobs: blobs.iter().map(IndexBlob::from).collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESTIC_INDEX: &str = r#"{"packs":[{"id":"9201061cb0132210ff4526a67be494f5327cf1c2d17b9aab595ffd9342d0c48e","blobs":[{"id":"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03","type":"data","offset":0,"length":47,"uncompressed_length":6}]},{"id":"9bd919e890fd2a840d1f19da7cd852b971ceac70e2f1bb8bc0d8550d9f114ebf","blobs":[{"id":"eae8ee8982c7aecb45b9a57fbcfec374c536b9152a752e00230e3c843ed4acf8","type":"tree","offset":0,"length":214,"uncompressed_length":288}]}]}"#;

    #[test]
    fn restic_index_round_trip_and_lookup() {
        let f: IndexFile = serde_json::from_str(RESTIC_INDEX).unwrap();
        assert_eq!(serde_json::to_string(&f).unwrap(), RESTIC_INDEX);
        let mut idx = Index::new();
        idx.add_file(&f);
        assert_eq!(idx.len(), 2);
        let data: Id = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
            .parse()
            .unwrap();
        let loc = idx.get(BlobType::Data, &data).unwrap();
        assert_eq!(
            (loc.offset, loc.length, loc.uncompressed_length),
            (0, 47, Some(6))
        );
        assert!(!idx.contains(BlobType::Tree, &data));
        assert!(idx.has_pack(&loc.pack));
    }

    #[test]
    fn legacy_index_is_read_as_the_same_packs() {
        let current: IndexFile = serde_json::from_str(RESTIC_INDEX).unwrap();
        let packs = serde_json::to_string(&current.packs).unwrap();
        assert!(packs.starts_with("[{\"id\":"), "{packs}");
        let legacy: IndexFile = serde_json::from_str(&packs).unwrap();
        assert!(legacy.legacy && !current.legacy);
        assert_eq!(legacy.packs, current.packs);
        // Written back, it is in the current format.
        assert!(serde_json::to_string(&legacy).unwrap().starts_with("{\"packs\":"));
        let err = serde_json::from_str::<IndexFile>("42").unwrap_err().to_string();
        assert!(err.contains("legacy array of packs"), "{err}");
        let err = serde_json::from_str::<IndexFile>(r#"{"packs":7}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn uncompressed_length_omitted_when_absent() {
        let mut f = IndexFile::default();
        let b = PackedBlob {
            id: Id::hash(b"a"),
            blob_type: BlobType::Data,
            offset: 0,
            length: 40,
            uncompressed_length: None,
        };
        f.add_pack(Id::hash(b"p"), &[b]);
        let s = serde_json::to_string(&f).unwrap();
        assert!(
            !s.contains("uncompressed_length") && !s.contains("supersedes"),
            "{s}"
        );
        assert_eq!(b.data_length(), 8);
        assert_eq!(f.blob_count(), 1);
    }
}
