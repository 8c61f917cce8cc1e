//! Data blobs read in bulk, for dump and restore: blobs that lie back to back (or close) in one
//! pack are fetched with a single range request ([`runs`], [`Fetched::fetch`]), then decoded one
//! by one — MAC check, decryption, decompression, hash check ([`Fetched::decode`]). Decoding is
//! what costs CPU; callers run it on several threads, one run per thread at a time.

use std::ops::Range;

use crate::backend::FileType;
use crate::error::Result;
use crate::id::Id;
use crate::index::{BlobLocation, BlobType};
use crate::pack;
use crate::repository::Repository;

/// A data blob and where the index says it is.
pub(crate) type Located = (Id, BlobLocation);

/// Split `blobs` (in the order they are to be read) into runs that can each be fetched with one
/// range request: the same pack, increasing offsets, at most `max_gap` unneeded bytes between
/// two blobs, and at most `max_read` bytes from the start of the first blob to the end of the
/// last (a single blob larger than that is a run of its own).
pub(crate) fn runs(blobs: &[Located], max_gap: u64, max_read: u64) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut start_offset = 0u64;
    let mut end = 0u64;
    for (i, (_, loc)) in blobs.iter().enumerate() {
        let offset = u64::from(loc.offset);
        let next_end = offset + u64::from(loc.length);
        let joins = i > 0 && {
            let prev = &blobs[i - 1].1;
            prev.pack == loc.pack
                && offset >= end
                && offset - end <= max_gap
                && next_end - start_offset <= max_read
        };
        match out.last_mut() {
            Some(run) if joins => run.end = i + 1,
            _ => {
                out.push(i..i + 1);
                start_offset = offset;
            }
        }
        end = next_end;
    }
    out
}

/// The bytes of one run of blobs of a pack, fetched with one range request.
pub(crate) struct Fetched<'a> {
    blobs: &'a [Located],
    start: u64,
    data: Vec<u8>,
}

impl<'a> Fetched<'a> {
    /// Fetch `blobs` (one pack, increasing offsets, as [`runs`] groups them) with one request.
    pub(crate) fn fetch(repo: &Repository, blobs: &'a [Located]) -> Result<Fetched<'a>> {
        let (Some((_, first)), Some((_, last))) = (blobs.first(), blobs.last()) else {
            return Ok(Fetched {
                blobs,
                start: 0,
                data: Vec::new(),
            });
        };
        let start = u64::from(first.offset);
        let span = u64::from(last.offset) + u64::from(last.length) - start;
        let data = repo
            .backend()
            .read_range(FileType::Pack, &first.pack.to_hex(), start, span as usize)?;
        Ok(Fetched { blobs, start, data })
    }

    /// The plaintext of the `i`-th blob, verified against its id.
    pub(crate) fn decode(&self, repo: &Repository, i: usize) -> Result<Vec<u8>> {
        let (id, loc) = &self.blobs[i];
        let from = (u64::from(loc.offset) - self.start) as usize;
        pack::decode_blob(
            repo.key(),
            &loc.pack,
            BlobType::Data,
            id,
            &self.data[from..from + loc.length as usize],
            loc.uncompressed_length,
        )
    }
}

/// Read and decode one blob on its own (after its run failed: a fresh error of its own, or the
/// blob after all if the failure was passing).
pub(crate) fn load_one(repo: &Repository, blob: &Located) -> Result<Vec<u8>> {
    Fetched::fetch(repo, std::slice::from_ref(blob))?.decode(repo, 0)
}

/// Worker threads for decoding when the caller asks for `threads` (0: one per core), at most
/// `max`.
pub(crate) fn worker_count(threads: usize, max: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get().min(max)),
        n => n,
    }
    .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pack: u8, offset: u32, length: u32) -> Located {
        (
            Id::hash(&[pack, offset as u8]),
            BlobLocation {
                pack: Id::hash(&[pack]),
                offset,
                length,
                uncompressed_length: None,
            },
        )
    }

    #[test]
    fn adjacent_blobs_of_one_pack_form_one_run() {
        let blobs = [
            at(1, 0, 10),
            at(1, 10, 10),
            at(1, 20, 5),
            at(2, 25, 10),
            at(2, 35, 1),
        ];
        assert_eq!(runs(&blobs, 0, 100), vec![0..3, 3..5]);
        assert!(runs(&[], 0, 100).is_empty());
    }

    #[test]
    fn runs_break_at_gaps_backward_offsets_and_the_size_limit() {
        // A gap of 5 bytes: joined only when gaps are allowed.
        let gap = [at(1, 0, 10), at(1, 15, 10)];
        assert_eq!(runs(&gap, 0, 100), vec![0..1, 1..2]);
        assert_eq!(runs(&gap, 5, 100), vec![0..2]);
        // Going back in the pack (a repeated blob, or file order differing from pack order).
        let back = [at(1, 10, 10), at(1, 0, 10)];
        assert_eq!(runs(&back, 100, 100), vec![0..1, 1..2]);
        let same = [at(1, 0, 10), at(1, 0, 10)];
        assert_eq!(runs(&same, 100, 100), vec![0..1, 1..2]);
        // The limit counts from the run's first byte; a blob larger than it stands alone.
        let big = [
            at(1, 0, 40),
            at(1, 40, 40),
            at(1, 80, 40),
            at(1, 120, 200),
            at(1, 320, 1),
        ];
        assert_eq!(runs(&big, 0, 100), vec![0..2, 2..3, 3..4, 4..5]);
    }
}
