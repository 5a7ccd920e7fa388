//! A bound on what Automerge bytes from outside inflate to, checked before Automerge sees
//! them. Automerge inflates DEFLATE-compressed columns and compressed change chunks with no
//! limit, so a 16 MiB frame of crafted zeros can ask for gigabytes. This walks the chunks
//! (proto/sync.md names the format: Automerge's binary format), inflates each compressed part
//! into nothing while counting, and refuses the bytes once the count passes
//! [`MAX_INFLATED_BYTES`].
//!
//! It checks only what it must to count: a chunk it cannot walk is left for Automerge to
//! refuse, except that a chunk kind failup never writes (a bundle) is refused here, since it
//! may hold compressed columns this walk does not know.

use std::io::Read;

use crate::JournalError;

/// Most bytes one message or document from outside may inflate to, compressed parts and
/// plain ones together: 64 MiB, far above any bucket (tens of KiB) and any circle, while
/// a daemon holding a few such at once stays within a few hundred MiB.
pub const MAX_INFLATED_BYTES: u64 = 64 * 1024 * 1024;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DEFLATE_BIT: u64 = 0b1000;

/// Reads from a byte string, failing on truncation.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    /// An unsigned LEB128 number (at most 10 bytes).
    fn uleb(&mut self) -> Option<u64> {
        let mut out: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            out |= u64::from(b & 0x7f).checked_shl(7 * i)?;
            if b & 0x80 == 0 {
                return Some(out);
            }
        }
        None
    }
}

fn too_large() -> JournalError {
    JournalError::Corrupt(format!(
        "the document would inflate past {} MiB: refused",
        MAX_INFLATED_BYTES / (1024 * 1024)
    ))
}

/// Counts what `compressed` inflates to, failing once `budget` is used up.
fn inflate_into_nothing(compressed: &[u8], budget: &mut u64) -> Result<(), JournalError> {
    let decoder = flate2::read::DeflateDecoder::new(compressed);
    let mut limited = decoder.take(budget.saturating_add(1));
    let n = std::io::copy(&mut limited, &mut std::io::sink())
        .map_err(|e| JournalError::Corrupt(format!("a compressed part does not inflate: {e}")))?;
    if n > *budget {
        return Err(too_large());
    }
    *budget -= n;
    Ok(())
}

/// The column specs and lengths of one column group of a document chunk.
fn columns(r: &mut Reader<'_>) -> Option<Vec<(u64, u64)>> {
    let n = r.uleb()?;
    // Each column takes at least two bytes: a count past the input is a lie.
    if n > r.0.len() as u64 {
        return None;
    }
    (0..n).map(|_| Some((r.uleb()?, r.uleb()?))).collect()
}

/// Walks a document chunk's columns, inflating the compressed ones into the budget.
fn document(data: &[u8], budget: &mut u64) -> Result<(), JournalError> {
    let mut r = Reader(data);
    let walk = (|| {
        let actors = r.uleb()?;
        for _ in 0..actors {
            let len = r.uleb()?;
            r.take(len)?;
        }
        let heads = r.uleb()?;
        r.take(heads.checked_mul(32)?)?;
        let change_cols = columns(&mut r)?;
        let op_cols = columns(&mut r)?;
        Some((change_cols, op_cols))
    })();
    // Automerge refuses a document whose prefix does not read; nothing was inflated here.
    let Some((change_cols, op_cols)) = walk else {
        return Ok(());
    };
    for (spec, len) in change_cols.into_iter().chain(op_cols) {
        let Some(bytes) = r.take(len) else {
            return Ok(());
        };
        if spec & DEFLATE_BIT != 0 {
            inflate_into_nothing(bytes, budget)?;
        }
    }
    Ok(())
}

/// Checks that `bytes` (Automerge chunks: a saved document, changes, or both) inflate to at
/// most [`MAX_INFLATED_BYTES`] in all, before Automerge is given them.
pub fn check_inflated(bytes: &[u8]) -> Result<(), JournalError> {
    check_inflated_all([bytes])
}

/// Checks that the byte strings of one message (the changes of a sync message), together,
/// inflate to at most [`MAX_INFLATED_BYTES`]. They are walked joined, as Automerge joins them
/// before loading: a chunk's header in one string and its body in the next is one chunk.
pub fn check_inflated_all<'a>(
    parts: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(), JournalError> {
    let parts: Vec<&[u8]> = parts.into_iter().collect();
    let mut budget = MAX_INFLATED_BYTES;
    match parts.as_slice() {
        [] => Ok(()),
        [one] => {
            budget = budget.checked_sub(one.len() as u64).ok_or_else(too_large)?;
            walk(one, &mut budget)
        }
        many => {
            let joined = many.concat();
            budget = budget
                .checked_sub(joined.len() as u64)
                .ok_or_else(too_large)?;
            walk(&joined, &mut budget)
        }
    }
}

fn walk(bytes: &[u8], budget: &mut u64) -> Result<(), JournalError> {
    let mut r = Reader(bytes);
    while !r.0.is_empty() {
        let header = (|| {
            if r.take(4)? != MAGIC {
                return None;
            }
            r.take(4)?;
            let kind = *r.take(1)?.first()?;
            let len = r.uleb()?;
            Some((kind, r.take(len)?))
        })();
        let Some((kind, data)) = header else {
            // Not chunks failup can walk: Automerge refuses them without inflating anything.
            return Ok(());
        };
        match kind {
            0 => document(data, budget)?,
            1 => {}
            2 => inflate_into_nothing(data, budget)?,
            other => {
                return Err(JournalError::Corrupt(format!(
                    "automerge chunk of kind {other}, which failup never writes: refused"
                )));
            }
        }
    }
    Ok(())
}

/// A compressed change chunk holding `n` zero bytes: a few KiB that inflate to `n`, the
/// high-ratio input the tests and the fuzz targets throw at every decoder. (Not a valid change:
/// Automerge inflates it before it finds that out, which is the danger.)
pub fn bomb(n: u64) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(zeros.len() as u64) as usize;
        if std::io::Write::write_all(&mut enc, &zeros[..k]).is_err() {
            break;
        }
        left -= k as u64;
    }
    let data = enc.finish().unwrap_or_default();
    let mut out = MAGIC.to_vec();
    out.extend([0, 0, 0, 0, 2]);
    let mut len = data.len() as u64;
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    #[test]
    fn real_documents_and_changes_pass() {
        let mut doc = automerge::AutoCommit::new();
        for i in 0..2000 {
            doc.put(
                automerge::ROOT,
                format!("key {i}"),
                "a value repeated to compress well",
            )
            .expect("put");
        }
        let heads = doc.get_heads();
        doc.put(automerge::ROOT, "later", 1).expect("put");
        let saved = doc.save();
        check_inflated(&saved).expect("a saved document");
        check_inflated(&doc.save_after(&heads)).expect("changes");
        let mut both = doc.save();
        both.extend(doc.save_after(&heads));
        check_inflated(&both).expect("a document, then changes");
    }

    #[test]
    fn a_compressed_chunk_is_counted_at_its_inflated_size() {
        let at_limit = bomb(MAX_INFLATED_BYTES - 1024 * 1024);
        check_inflated(&at_limit).expect("within the bound");
        let past = bomb(MAX_INFLATED_BYTES + 1);
        assert!(past.len() < 200 * 1024, "a bomb is small: {}", past.len());
        assert!(check_inflated(&past).is_err());
        // Two chunks within the bound each, past it together.
        let mut two = bomb(MAX_INFLATED_BYTES / 2 + 1);
        two.extend(bomb(MAX_INFLATED_BYTES / 2 + 1));
        assert!(check_inflated(&two).is_err());
        // A chunk split between two strings of a sync message, header in one and compressed
        // body in the other: Automerge joins them, and so does the check.
        let (head, body) = past.split_at(12);
        assert!(check_inflated_all([head, body]).is_err());
        assert!(check_inflated_all([&past[..5], &past[5..40], &past[40..]]).is_err());
    }

    #[test]
    fn chunks_failup_never_writes_are_refused_and_garbage_is_left_to_automerge() {
        let mut bundle = MAGIC.to_vec();
        bundle.extend([0, 0, 0, 0, 3, 0]);
        assert!(check_inflated(&bundle).is_err());
        check_inflated(b"not automerge at all").expect("left to automerge");
        check_inflated(&[]).expect("empty");
    }
}
