//! Blosc framing parsed on the host for the device decode: a Blosc1 frame
//! whose internal codec is zstd becomes a list of pieces — zstd streams for
//! nvCOMP and stored (uncompressed) byte runs — that, decoded to their
//! places, give the frame's blocks still byte-shuffled. The assembly kernel
//! undoes the shuffle while it reads (see `kernels/assemble.cu`).
//!
//! Frames the device path cannot take (other internal codecs, bitshuffle,
//! anything that does not parse or validate) yield `None`: the caller
//! decodes them on the CPU with [`crate::blosc::decompress_into`], which
//! reports corrupt input as a decode error.

use crate::blosc::{parse_header, Codec, FLAG_BITSHUFFLE, FLAG_MEMCPYED, HEADER_LEN};
use crate::nvcomp::validate_zstd_frame;

/// One piece of a frame: bytes `src..src + src_len` of the frame decode to
/// bytes `dst..dst + dst_len` of the (still shuffled) chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Offset of the piece's bytes in the frame.
    pub src: usize,
    /// Bytes in the frame.
    pub src_len: usize,
    /// Offset of its decoded bytes in the chunk.
    pub dst: usize,
    /// Decoded bytes.
    pub dst_len: usize,
    /// Whether the bytes are a zstd frame (else they are stored as is, `src_len == dst_len`).
    pub zstd: bool,
}

/// A frame split into pieces, with the shuffle the kernel must undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramePlan {
    /// Pieces in chunk order.
    pub pieces: Vec<Piece>,
    /// Byte-shuffle type size (0: not shuffled).
    pub typesize: u32,
    /// Block size in bytes.
    pub blocksize: u32,
}

fn u32_at(frame: &[u8], at: usize) -> Option<usize> {
    let word = frame.get(at..at.checked_add(4)?)?;
    let v = u32::from_le_bytes(word.try_into().ok()?);
    (v <= i32::MAX as u32).then_some(v as usize)
}

/// Splits `frame`, which must decode to `decoded_len` bytes, into pieces
/// for the device; `None` when the device path cannot take it.
pub fn plan_frame(frame: &[u8], decoded_len: usize) -> Option<FramePlan> {
    // Validates the header: sizes, block size, the offset table's room.
    let header = parse_header(frame).ok()?;
    if header.nbytes != decoded_len || decoded_len == 0 {
        return None;
    }
    let blocksize = header.blocksize;
    let frame = &frame[..header.cbytes];
    if header.flags & FLAG_MEMCPYED != 0 {
        let piece = Piece {
            src: HEADER_LEN,
            src_len: decoded_len,
            dst: 0,
            dst_len: decoded_len,
            zstd: false,
        };
        return Some(FramePlan {
            pieces: vec![piece],
            typesize: 0,
            blocksize: blocksize as u32,
        });
    }
    let shuffle = header.shuffled();
    if header.codec != Some(Codec::Zstd) || (!shuffle && header.flags & FLAG_BITSHUFFLE != 0) {
        return None;
    }
    let mut pieces = Vec::new();
    for (index, block_start) in (0..decoded_len).step_by(blocksize).enumerate() {
        let size = blocksize.min(decoded_len - block_start);
        let nstreams = header.streams(size);
        if !size.is_multiple_of(nstreams) {
            return None;
        }
        let stream_len = size / nstreams;
        let mut at = u32_at(frame, HEADER_LEN + 4 * index)?;
        for stream in 0..nstreams {
            let clen = u32_at(frame, at)?;
            at += 4;
            let bytes = frame.get(at..at.checked_add(clen)?)?;
            let zstd = clen != stream_len;
            if zstd && validate_zstd_frame(bytes, stream_len).is_err() {
                return None;
            }
            pieces.push(Piece {
                src: at,
                src_len: clen,
                dst: block_start + stream * stream_len,
                dst_len: stream_len,
                zstd,
            });
            at += clen;
        }
    }
    Some(FramePlan {
        pieces,
        typesize: if shuffle { header.typesize as u32 } else { 0 },
        blocksize: blocksize as u32,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Internal codec number of zstd in the header flags (bits 5–7).
    const CODEC_ZSTD: u8 = 4;

    /// Frames written by c-blosc 1.21 (through numcodecs) and the bytes
    /// they encode (`tests/fixtures/blosc/generate.py`): `(name, raw, frame)`.
    pub(crate) fn fixtures() -> Vec<(String, Vec<u8>, Vec<u8>)> {
        let all: &[u8] = include_bytes!("../tests/fixtures/blosc/frames.bin");
        let (mut at, mut raw, mut out) = (0, Vec::new(), Vec::new());
        while at < all.len() {
            let (kind, name_len) = (all[at], usize::from(all[at + 1]));
            let name = String::from_utf8(all[at + 2..at + 2 + name_len].to_vec()).unwrap();
            at += 2 + name_len;
            let len = u32::from_le_bytes(all[at..at + 4].try_into().unwrap()) as usize;
            let payload = &all[at + 4..at + 4 + len];
            at += 4 + len;
            match kind {
                b'Z' => raw = zstd::bulk::decompress(payload, 1 << 20).unwrap(),
                _ => out.push((name, raw.clone(), payload.to_vec())),
            }
        }
        out
    }

    /// The kernel's read of byte `p` of a shuffled chunk (`load_byte`).
    pub(crate) fn unshuffled(chunk: &[u8], typesize: usize, blocksize: usize) -> Vec<u8> {
        (0..chunk.len())
            .map(|p| {
                if typesize <= 1 {
                    return chunk[p];
                }
                let start = p - p % blocksize;
                let bsize = (chunk.len() - start).min(blocksize);
                let (q, per) = (p - start, bsize / typesize);
                if q >= per * typesize {
                    chunk[p]
                } else {
                    chunk[start + (q % typesize) * per + q / typesize]
                }
            })
            .collect()
    }

    /// Decodes a frame's pieces the way the device does, then unshuffles.
    pub(crate) fn run(frame: &[u8], plan: &FramePlan, len: usize) -> Vec<u8> {
        let mut chunk = vec![0u8; len];
        for p in &plan.pieces {
            let src = &frame[p.src..p.src + p.src_len];
            let dst = &mut chunk[p.dst..p.dst + p.dst_len];
            if p.zstd {
                assert_eq!(
                    zstd::bulk::decompress_to_buffer(src, dst).unwrap(),
                    p.dst_len
                );
            } else {
                dst.copy_from_slice(src);
            }
        }
        unshuffled(&chunk, plan.typesize as usize, plan.blocksize as usize)
    }

    #[test]
    fn c_blosc_zstd_frames_decode_through_their_pieces() {
        let mut planned = 0;
        for (name, raw, frame) in fixtures() {
            let plan = plan_frame(&frame, raw.len());
            let zstd_frame = frame.len() >= 16 && frame[2] >> 5 == CODEC_ZSTD;
            let memcpyed = frame.len() >= 16 && frame[2] & FLAG_MEMCPYED != 0 && !raw.is_empty();
            let bitshuffled = frame.len() >= 16 && frame[2] & 0x05 == FLAG_BITSHUFFLE;
            assert_eq!(
                plan.is_some(),
                memcpyed || (zstd_frame && !bitshuffled && !raw.is_empty()),
                "{name}"
            );
            if let Some(plan) = plan {
                assert_eq!(run(&frame, &plan, raw.len()), raw, "{name}");
                planned += 1;
            }
        }
        assert!(planned >= 5, "only {planned} fixtures planned");
    }

    #[test]
    fn broken_frames_are_left_to_the_cpu_decoder() {
        let (_, raw, frame) = fixtures()
            .into_iter()
            .find(|(n, _, _)| n == "zstd-shuffle-ts4")
            .expect("fixture zstd-shuffle-ts4");
        assert!(plan_frame(&frame, raw.len()).is_some());
        assert!(plan_frame(&frame, raw.len() + 1).is_none());
        for cut in [0, 8, 17, frame.len() / 2, frame.len() - 1] {
            assert!(plan_frame(&frame[..cut], raw.len()).is_none(), "cut {cut}");
        }
        // A block offset past the end, and a corrupt zstd stream header.
        let mut bad = frame.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(plan_frame(&bad, raw.len()).is_none());
        let first = u32_at(&frame, 16).unwrap() + 4;
        let mut bad = frame.clone();
        bad[first] ^= 0xff;
        assert!(plan_frame(&bad, raw.len()).is_none());
    }
}
