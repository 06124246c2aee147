//! Shard indexes of `sharding_indexed`: decoding with validation, and encoding.

use crate::error::{Error, Result};
use crate::spec::ShardingSpec;

/// Marker of an inner chunk that is not stored.
pub const MISSING: u64 = u64::MAX;

/// Where one inner chunk lives inside its shard; `None` when it is missing.
pub type IndexEntry = Option<(u64, u64)>;

/// Byte range of the index inside a shard of `shard_len` bytes holding `n` inner chunks.
pub fn index_range(spec: &ShardingSpec, n: u64, shard_len: u64) -> Result<(u64, u64)> {
    let size = spec.index_size(n);
    if size > shard_len {
        return Err(Error::decode(format!(
            "shard of {shard_len} bytes is shorter than its {size}-byte index"
        )));
    }
    Ok(if spec.index_at_start {
        (0, size)
    } else {
        (shard_len - size, size)
    })
}

/// Decodes and validates an index: checksum, entry pairs, and that every
/// stored range lies inside the shard's data area.
pub fn decode_index(spec: &ShardingSpec, bytes: &[u8], shard_len: u64) -> Result<Vec<IndexEntry>> {
    let payload = if spec.index_crc32c {
        let (payload, stored) = bytes
            .split_last_chunk::<4>()
            .ok_or_else(|| Error::decode("shard index is shorter than its checksum"))?;
        let expected = u32::from_le_bytes(*stored);
        let actual = crc32c::crc32c(payload);
        if actual != expected {
            return Err(Error::decode(format!(
                "shard index checksum mismatch (stored {expected:#010x}, computed {actual:#010x}): the shard is truncated or corrupt"
            )));
        }
        payload
    } else {
        bytes
    };
    if payload.len() % 16 != 0 {
        return Err(Error::decode(format!(
            "shard index of {} bytes",
            payload.len()
        )));
    }
    let index_len = bytes.len() as u64;
    let (data_start, data_end) = if spec.index_at_start {
        (index_len, shard_len)
    } else {
        (0, shard_len - index_len)
    };
    let read = |b: &[u8]| {
        let a: [u8; 8] = b.try_into().expect("8-byte slice");
        if spec.index_big_endian {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    };
    let entries = payload
        .chunks_exact(16)
        .enumerate()
        .map(|(i, pair)| {
            let (offset, nbytes) = (read(&pair[..8]), read(&pair[8..]));
            match (offset, nbytes) {
                (MISSING, MISSING) => Ok(None),
                _ if offset < data_start
                    || offset.checked_add(nbytes).is_none_or(|end| end > data_end) =>
                {
                    Err(Error::decode(format!(
                        "inner chunk {i}: range offset {offset} length {nbytes} is outside the shard data [{data_start}, {data_end})"
                    )))
                }
                _ => Ok(Some((offset, nbytes))),
            }
        })
        .collect::<Result<Vec<IndexEntry>>>()?;
    check_disjoint(&entries)?;
    Ok(entries)
}

/// Rejects indexes whose stored ranges overlap: each inner chunk owns its bytes.
fn check_disjoint(entries: &[IndexEntry]) -> Result<()> {
    let mut ranges: Vec<(u64, u64, usize)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.map(|(offset, nbytes)| (offset, offset + nbytes, i)))
        .filter(|&(start, end, _)| end > start)
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        if start < end {
            return Err(Error::decode(format!(
                "inner chunks {a} and {b} overlap (byte {start} is in both): the shard index is corrupt"
            )));
        }
    }
    Ok(())
}

/// Encodes an index for entries given in inner-grid C order.
pub fn encode_index(spec: &ShardingSpec, entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spec.index_size(entries.len() as u64) as usize);
    for entry in entries {
        let (offset, nbytes) = entry.unwrap_or((MISSING, MISSING));
        for v in [offset, nbytes] {
            out.extend_from_slice(&if spec.index_big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
    }
    if spec.index_crc32c {
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ArrayToBytes, CodecChain};

    fn spec(at_start: bool) -> ShardingSpec {
        ShardingSpec {
            inner_shape: vec![2],
            index_at_start: at_start,
            inner: CodecChain {
                transposes: vec![],
                array_to_bytes: ArrayToBytes::Bytes { big_endian: false },
                bytes_to_bytes: vec![],
            },
            index_big_endian: false,
            index_crc32c: true,
        }
    }

    #[test]
    fn round_trips_and_detects_corruption() {
        let s = spec(false);
        let entries = vec![Some((0, 10)), None, Some((10, 5))];
        let index = encode_index(&s, &entries);
        let shard_len = 15 + index.len() as u64;
        assert_eq!(decode_index(&s, &index, shard_len).unwrap(), entries);
        let mut corrupt = index.clone();
        corrupt[3] ^= 1;
        assert!(decode_index(&s, &corrupt, shard_len).is_err());
        assert!(decode_index(&s, &index, shard_len - 1).is_err());
    }

    #[test]
    fn rejects_overlapping_ranges() {
        let s = spec(false);
        let index = encode_index(&s, &[Some((0, 10)), Some((9, 5)), None]);
        let err = decode_index(&s, &index, 14 + index.len() as u64).unwrap_err();
        assert!(err.message.contains("overlap"), "{}", err.message);
        let index = encode_index(&s, &[Some((0, 10)), Some((10, 4)), Some((3, 0))]);
        assert!(decode_index(&s, &index, 14 + index.len() as u64).is_ok());
    }

    #[test]
    fn rejects_ranges_overlapping_a_leading_index() {
        let s = spec(true);
        let index = encode_index(&s, &[Some((0, 4))]);
        assert!(decode_index(&s, &index, 100).is_err());
        let index = encode_index(&s, &[Some((u64::MAX - 1, 4))]);
        assert!(decode_index(&s, &index, 100).is_err());
    }
}
