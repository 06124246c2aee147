//! Decoder for Blosc1 frames: the format c-blosc 1.x writes, used by the
//! Zarr v2 `blosc` compressor and the Zarr v3 `blosc` codec.
//!
//! A frame is a 16-byte header followed either by the raw payload (a
//! "memcpyed" frame) or by a table of `nblocks` little-endian `i32` block
//! start offsets and the blocks themselves. Each block holds one stream, or
//! `typesize` streams when it was split by byte position; each stream is an
//! `i32` compressed size followed by that many bytes, stored raw when the
//! size equals the stream's decoded length. A block is byte-shuffled or
//! bit-shuffled as a whole after its streams are decoded.
//!
//! Every size and offset read from the frame is checked before it is used;
//! corrupt input yields [`Error::decode`] and never a panic.

use crate::error::{Error, Result};
use std::cell::RefCell;

/// Length of the frame header.
pub(crate) const HEADER_LEN: usize = 16;
/// The only frame format version c-blosc 1.x reads and writes.
const FORMAT_VERSION: u8 = 2;
/// Format version byte of every internal codec's streams.
const CODEC_FORMAT_VERSION: u8 = 1;
/// Largest uncompressed size a frame may declare.
const MAX_BUFFER_SIZE: usize = i32::MAX as usize - HEADER_LEN;
/// Largest block size a frame may declare.
const MAX_BLOCK_SIZE: usize = (i32::MAX as usize - 255 * 4) / 3;
/// Blocks hold at least this many elements per stream to be split.
const MIN_SPLIT_ELEMENTS: usize = 128;
/// Blocks are split only for type sizes up to this.
const MAX_SPLITS: usize = 16;

/// Flag: the blocks are byte-shuffled.
pub(crate) const FLAG_SHUFFLE: u8 = 0x01;
/// Flag: the payload is stored raw right after the header.
pub(crate) const FLAG_MEMCPYED: u8 = 0x02;
/// Flag: the blocks are bit-shuffled.
pub(crate) const FLAG_BITSHUFFLE: u8 = 0x04;
/// Flag reserved by the format; set only by newer formats.
const FLAG_RESERVED: u8 = 0x08;
/// Flag: blocks are not split into one stream per byte of the type.
const FLAG_DONT_SPLIT: u8 = 0x10;

/// The internal codec of a frame's streams (flag bits 5–7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    BloscLz,
    Lz4,
    Snappy,
    Zlib,
    Zstd,
}

impl Codec {
    fn from_flags(flags: u8) -> Result<Self> {
        match flags >> 5 {
            0 => Ok(Self::BloscLz),
            1 => Ok(Self::Lz4),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Zlib),
            4 => Ok(Self::Zstd),
            other => Err(Error::decode(format!(
                "blosc: unknown internal codec {other} in the header flags"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::BloscLz => "blosclz",
            Self::Lz4 => "lz4",
            Self::Snappy => "snappy",
            Self::Zlib => "zlib",
            Self::Zstd => "zstd",
        }
    }
}

/// A validated frame header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    /// Header flags (shuffle, memcpyed, split, codec bits).
    pub flags: u8,
    /// Element size in bytes.
    pub typesize: usize,
    /// Uncompressed size.
    pub nbytes: usize,
    /// Uncompressed bytes per block (the last block may be shorter).
    pub blocksize: usize,
    /// Compressed size, header included (at most the frame's length).
    pub cbytes: usize,
    /// `None` for memcpyed frames, whose codec bits are not used.
    pub codec: Option<Codec>,
}

impl Header {
    fn nblocks(&self) -> usize {
        self.nbytes.div_ceil(self.blocksize)
    }

    /// Whether blocks are byte-shuffled.
    pub fn shuffled(&self) -> bool {
        self.flags & FLAG_SHUFFLE != 0 && self.typesize > 1
    }

    /// Streams in a block of `size` bytes: `typesize` when the block was
    /// split by byte position (full blocks of small types only), else 1.
    pub fn streams(&self, size: usize) -> usize {
        let split = self.flags & FLAG_DONT_SPLIT == 0
            && self.typesize <= MAX_SPLITS
            && self.blocksize / self.typesize >= MIN_SPLIT_ELEMENTS
            && size == self.blocksize;
        if split {
            self.typesize
        } else {
            1
        }
    }
}

/// Reads a little-endian `u32` at `at`, which the caller has bounds-checked.
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Reads a non-negative `i32` at `at`, which the caller has bounds-checked.
fn read_size(bytes: &[u8], at: usize, what: impl FnOnce() -> String) -> Result<usize> {
    let value = read_u32(bytes, at);
    if value > i32::MAX as u32 {
        return Err(Error::decode(format!(
            "{} is negative ({})",
            what(),
            value as i32
        )));
    }
    Ok(value as usize)
}

/// Reads and validates the header of `frame`.
pub(crate) fn parse_header(frame: &[u8]) -> Result<Header> {
    if frame.len() < HEADER_LEN {
        return Err(Error::decode(format!(
            "blosc: frame of {} bytes is shorter than its {HEADER_LEN}-byte header",
            frame.len()
        )));
    }
    let version = frame[0];
    if version != FORMAT_VERSION {
        return Err(Error::decode(format!(
            "blosc: unsupported format version {version} (expected {FORMAT_VERSION})"
        )));
    }
    let codec_version = frame[1];
    let flags = frame[2];
    if flags & FLAG_RESERVED != 0 {
        return Err(Error::decode(format!(
            "blosc: reserved header flag 0x08 is set (flags 0x{flags:02x})"
        )));
    }
    let typesize = usize::from(frame[3]);
    let nbytes = read_size(frame, 4, || "blosc: uncompressed size".into())?;
    let blocksize = read_size(frame, 8, || "blosc: block size".into())?;
    let cbytes = read_size(frame, 12, || "blosc: compressed size".into())?;
    if cbytes < HEADER_LEN {
        return Err(Error::decode(format!(
            "blosc: compressed size {cbytes} is shorter than the header"
        )));
    }
    if cbytes > frame.len() {
        return Err(Error::decode(format!(
            "blosc: header declares {cbytes} compressed bytes but the frame has {} (truncated?)",
            frame.len()
        )));
    }
    if nbytes > MAX_BUFFER_SIZE {
        return Err(Error::decode(format!(
            "blosc: uncompressed size {nbytes} exceeds the format's maximum {MAX_BUFFER_SIZE}"
        )));
    }
    let memcpyed = flags & FLAG_MEMCPYED != 0;
    let mut header = Header {
        flags,
        typesize,
        nbytes,
        blocksize,
        cbytes,
        codec: None,
    };
    if nbytes == 0 {
        // An empty buffer: nothing else in the header is used.
        return Ok(header);
    }
    if typesize == 0 {
        return Err(Error::decode("blosc: type size is 0"));
    }
    if blocksize == 0 || blocksize > nbytes || blocksize > MAX_BLOCK_SIZE {
        return Err(Error::decode(format!(
            "blosc: block size {blocksize} is out of range for {nbytes} uncompressed bytes"
        )));
    }
    if memcpyed {
        if cbytes != nbytes + HEADER_LEN {
            return Err(Error::decode(format!(
                "blosc: uncompressed frame of {nbytes} bytes declares {cbytes} compressed bytes \
                 (expected {})",
                nbytes + HEADER_LEN
            )));
        }
        return Ok(header);
    }
    let codec = Codec::from_flags(flags)?;
    if codec_version != CODEC_FORMAT_VERSION {
        return Err(Error::decode(format!(
            "blosc: unsupported {} stream format version {codec_version} (expected {CODEC_FORMAT_VERSION})",
            codec.name()
        )));
    }
    header.codec = Some(codec);
    let nblocks = header.nblocks();
    if nblocks > (cbytes - HEADER_LEN) / 4 {
        return Err(Error::decode(format!(
            "blosc: {nblocks} block offsets do not fit in {cbytes} compressed bytes"
        )));
    }
    Ok(header)
}

/// Uncompressed size declared by a Blosc frame header (validates the header).
///
/// Checks the format version, the flags, the type size, the block size
/// against the uncompressed size, the compressed size against `frame.len()`
/// (trailing bytes past it are ignored, as c-blosc does) and that the block
/// offset table fits; the blocks themselves are checked while decoding.
pub fn decompressed_size(frame: &[u8]) -> Result<usize> {
    parse_header(frame).map(|h| h.nbytes)
}

/// Decodes a whole Blosc frame into `out`, whose length must equal the declared size.
///
/// Supports every internal codec of c-blosc 1.x (blosclz, lz4 and lz4hc,
/// snappy, zlib, zstd), split and unsplit blocks, byte shuffle and
/// bitshuffle. Scratch memory is at most one block, allocated only for
/// shuffled frames.
pub fn decompress_into(frame: &[u8], out: &mut [u8]) -> Result<()> {
    let header = parse_header(frame)?;
    if out.len() != header.nbytes {
        return Err(Error::decode(format!(
            "blosc: frame decodes to {} bytes, expected {}",
            header.nbytes,
            out.len()
        )));
    }
    if header.nbytes == 0 {
        return Ok(());
    }
    let frame = &frame[..header.cbytes];
    let Some(codec) = header.codec else {
        out.copy_from_slice(&frame[HEADER_LEN..HEADER_LEN + header.nbytes]);
        return Ok(());
    };
    CONTEXT.with(|cell| {
        let mut context = cell.borrow_mut();
        let (decoders, scratch) = &mut *context;
        let result = decode_blocks(&header, codec, frame, out, scratch, decoders);
        if scratch.block.capacity() + scratch.planes.capacity() > MAX_KEPT_SCRATCH {
            *scratch = Scratch::default();
        }
        result
    })
}

/// Decodes every block of a compressed (not memcpyed) frame into `out`.
fn decode_blocks(
    header: &Header,
    codec: Codec,
    frame: &[u8],
    out: &mut [u8],
    scratch: &mut Scratch,
    decoders: &mut Decoders,
) -> Result<()> {
    for (index, block) in out.chunks_mut(header.blocksize).enumerate() {
        let start = read_size(frame, HEADER_LEN + 4 * index, || {
            format!("blosc: start offset of block {index}")
        })?;
        decode_block(header, codec, frame, start, block, scratch, decoders)
            .map_err(|e| e.context(format!("blosc block {index}")))?;
    }
    Ok(())
}

/// Decodes the block starting at `start` in `frame` into `out` (the
/// block's slice of the output, short for the last block).
fn decode_block(
    header: &Header,
    codec: Codec,
    frame: &[u8],
    start: usize,
    out: &mut [u8],
    scratch: &mut Scratch,
    decoders: &mut Decoders,
) -> Result<()> {
    let size = out.len();
    let typesize = header.typesize;
    let nstreams = header.streams(size);
    if !size.is_multiple_of(nstreams) {
        return Err(Error::decode(format!(
            "block of {size} bytes cannot be split into {nstreams} streams"
        )));
    }
    let shuffle = header.shuffled();
    let bitshuffle = !shuffle && header.flags & FLAG_BITSHUFFLE != 0 && size >= typesize;
    let target: &mut [u8] = if shuffle || bitshuffle {
        grow(&mut scratch.block, size, header.blocksize);
        &mut scratch.block[..size]
    } else {
        &mut *out
    };
    let stream_len = size / nstreams;
    let mut offset = start;
    for (stream, dest) in target.chunks_exact_mut(stream_len).enumerate() {
        if offset > frame.len() || frame.len() - offset < 4 {
            return Err(Error::decode(format!(
                "stream {stream} starts at {offset}, past the {}-byte frame",
                frame.len()
            )));
        }
        let clen = read_size(frame, offset, || format!("size of stream {stream}"))?;
        offset += 4;
        if clen > frame.len() - offset {
            return Err(Error::decode(format!(
                "stream {stream} of {clen} bytes at {offset} runs past the {}-byte frame",
                frame.len()
            )));
        }
        let src = &frame[offset..offset + clen];
        if clen == stream_len {
            dest.copy_from_slice(src);
        } else {
            decoders
                .decode(codec, src, dest)
                .map_err(|e| e.context(format!("stream {stream}")))?;
        }
        offset += clen;
    }
    if shuffle {
        unshuffle(typesize, &scratch.block[..size], out);
    } else if bitshuffle {
        let planes = &mut scratch.planes;
        bitunshuffle(typesize, &scratch.block[..size], out, |len| {
            grow(planes, len, header.blocksize);
            &mut planes[..len]
        });
    }
    Ok(())
}

/// Scratch buffers kept by a thread between frames up to this many bytes.
const MAX_KEPT_SCRATCH: usize = 8 << 20;

/// Scratch buffers, each at most one block long.
#[derive(Default)]
struct Scratch {
    /// A block's decoded streams before unshuffling.
    block: Vec<u8>,
    /// A bit-shuffled block's byte planes.
    planes: Vec<u8>,
}

/// Grows `buf` to `full` bytes (one whole block, so that it grows once)
/// when it is shorter than `len`.
fn grow(buf: &mut Vec<u8>, len: usize, full: usize) {
    if buf.len() < len {
        buf.resize(full.max(len), 0);
    }
}

thread_local! {
    /// Per-thread codec contexts and scratch buffers, reused across frames.
    static CONTEXT: RefCell<(Decoders, Scratch)> = RefCell::default();
}

/// Codec contexts that are costly to create, made on first use.
#[derive(Default)]
struct Decoders {
    zlib: Option<flate2::Decompress>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

impl Decoders {
    /// Decodes one stream of `codec`, which must decode to exactly `out.len()` bytes.
    fn decode(&mut self, codec: Codec, src: &[u8], out: &mut [u8]) -> Result<()> {
        let expected = out.len();
        let produced = match codec {
            Codec::BloscLz => {
                blosclz_decompress(src, out).map_err(|e| Error::decode(format!("blosclz: {e}")))?
            }
            Codec::Lz4 => lz4_flex::block::decompress_into(src, out)
                .map_err(|e| Error::decode(format!("lz4: {e}")))?,
            Codec::Snappy => {
                let len = snap::raw::decompress_len(src)
                    .map_err(|e| Error::decode(format!("snappy: {e}")))?;
                if len != expected {
                    return Err(Error::decode(format!(
                        "snappy: stream declares {len} bytes, expected {expected}"
                    )));
                }
                snap::raw::Decoder::new()
                    .decompress(src, out)
                    .map_err(|e| Error::decode(format!("snappy: {e}")))?
            }
            Codec::Zlib => {
                let inflater = self
                    .zlib
                    .get_or_insert_with(|| flate2::Decompress::new(true));
                inflater.reset(true);
                let status = inflater
                    .decompress(src, out, flate2::FlushDecompress::Finish)
                    .map_err(|e| Error::decode(format!("zlib: {e}")))?;
                if status != flate2::Status::StreamEnd {
                    return Err(Error::decode(format!(
                        "zlib: stream does not end within {expected} bytes"
                    )));
                }
                inflater.total_out() as usize
            }
            Codec::Zstd => {
                if self.zstd.is_none() {
                    self.zstd = Some(
                        zstd::bulk::Decompressor::new()
                            .map_err(|e| Error::decode(format!("zstd context: {e}")))?,
                    );
                }
                let decoder = self.zstd.as_mut().expect("created above");
                decoder
                    .decompress_to_buffer(src, out)
                    .map_err(|e| Error::decode(format!("zstd: {e}")))?
            }
        };
        if produced != expected {
            return Err(Error::decode(format!(
                "{}: decoded {produced} bytes, expected {expected}",
                codec.name()
            )));
        }
        Ok(())
    }
}

/// Length of the fixed-size copies of short blosclz literal runs and matches.
const WILD: usize = 32;

/// Distance added to a 16-bit blosclz match distance.
const BLOSCLZ_FAR_BASE: usize = 8192;

/// Decodes one blosclz stream into `out`; returns the number of bytes written.
///
/// The stream is a sequence of tokens, each led by a control byte (the
/// first one is the low 5 bits of the stream's first byte). Below 32 it
/// announces `ctrl + 1` literal bytes. Otherwise its top 3 bits `t` give a
/// match of `t + 2` bytes (for `t = 7`, plus the following bytes, up to and
/// including the first that is not 255) and its low 5 bits the high part
/// of the distance minus 1; the next byte is the low part. A low byte of 255
/// with a high part of 31 means a far match whose distance is the next
/// two bytes (big-endian) plus 8192. As in c-blosc, a match that ends the
/// stream is not copied, so a valid stream always ends with literals.
fn blosclz_decompress(src: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
    let Some(&first) = src.first() else {
        return Ok(0);
    };
    let end = src.len();
    let mut ip = 1;
    let mut op = 0;
    let mut ctrl = usize::from(first & 31);
    loop {
        if ctrl >= 32 {
            let mut len = (ctrl >> 5) - 1;
            let high = (ctrl & 31) << 8;
            if len == 6 {
                loop {
                    if ip + 1 >= end {
                        return Err(format!("match length runs past the stream at {ip}"));
                    }
                    let code = src[ip];
                    ip += 1;
                    len += usize::from(code);
                    if len > out.len() {
                        return Err(format!("match length {len} exceeds the output"));
                    }
                    if code != 255 {
                        break;
                    }
                }
            } else if ip + 1 >= end {
                return Err(format!("match distance runs past the stream at {ip}"));
            }
            let low = src[ip];
            ip += 1;
            len += 3;
            let mut distance = high + usize::from(low) + 1;
            if low == 255 && high == 31 << 8 {
                if ip + 1 >= end {
                    return Err(format!("far match distance runs past the stream at {ip}"));
                }
                distance =
                    (usize::from(src[ip]) << 8 | usize::from(src[ip + 1])) + BLOSCLZ_FAR_BASE;
                ip += 2;
            }
            if len > out.len() - op {
                return Err(format!(
                    "match of {len} bytes at {op} overruns the {}-byte output",
                    out.len()
                ));
            }
            if distance > op {
                return Err(format!(
                    "match distance {distance} reaches before the output start at {op}"
                ));
            }
            if ip >= end {
                break;
            }
            ctrl = usize::from(src[ip]);
            ip += 1;
            copy_match(out, op, distance, len);
            op += len;
        } else {
            let run = ctrl + 1;
            if run > out.len() - op {
                return Err(format!(
                    "literal run of {run} bytes at {op} overruns the {}-byte output",
                    out.len()
                ));
            }
            if run > end - ip {
                return Err(format!(
                    "literal run of {run} bytes runs past the stream at {ip}"
                ));
            }
            if out.len() - op >= WILD && end - ip >= WILD {
                // A fixed-size copy is cheaper; the bytes past the run are
                // overwritten by what follows.
                out[op..op + WILD].copy_from_slice(&src[ip..ip + WILD]);
            } else {
                out[op..op + run].copy_from_slice(&src[ip..ip + run]);
            }
            op += run;
            ip += run;
            if ip >= end {
                break;
            }
            ctrl = usize::from(src[ip]);
            ip += 1;
        }
    }
    Ok(op)
}

/// Copies `len` bytes from `distance` bytes back to `op` in `out`, where
/// the source may overlap the destination (repeating its last `distance`
/// bytes). The caller has checked `distance <= op` and `op + len <= out.len()`.
#[inline]
fn copy_match(out: &mut [u8], op: usize, distance: usize, len: usize) {
    let from = op - distance;
    if distance >= len {
        if len <= WILD && out.len() - op >= WILD {
            // As for literals: the bytes past the match are overwritten later.
            out.copy_within(from..from + WILD, op);
        } else {
            out.copy_within(from..from + len, op);
        }
    } else if distance == 1 {
        let byte = out[from];
        out[op..op + len].fill(byte);
    } else {
        // The copied prefix doubles each round; each round copies a whole
        // number of periods, so the pattern continues unchanged.
        let mut done = 0;
        while done < len {
            let n = (op + done - from).min(len - done);
            out.copy_within(from..from + n, op + done);
            done += n;
        }
    }
}

/// Undoes the byte shuffle of one block: `src` holds byte 0 of every
/// element, then byte 1, and so on; trailing bytes that fill no element are
/// stored as is.
fn unshuffle(typesize: usize, src: &[u8], out: &mut [u8]) {
    let count = src.len() / typesize;
    let body = count * typesize;
    match typesize {
        2 => unshuffle_fixed::<2>(&src[..body], &mut out[..body]),
        4 => unshuffle_fixed::<4>(&src[..body], &mut out[..body]),
        8 => unshuffle_fixed::<8>(&src[..body], &mut out[..body]),
        16 => unshuffle_fixed::<16>(&src[..body], &mut out[..body]),
        _ => {
            for (i, element) in out[..body].chunks_exact_mut(typesize).enumerate() {
                for (j, byte) in element.iter_mut().enumerate() {
                    *byte = src[j * count + i];
                }
            }
        }
    }
    out[body..].copy_from_slice(&src[body..]);
}

/// [`unshuffle`] for a type size known at compile time, over whole elements.
fn unshuffle_fixed<const N: usize>(src: &[u8], out: &mut [u8]) {
    const TILE: usize = 64;
    let count = src.len() / N;
    let streams: [&[u8]; N] = std::array::from_fn(|j| &src[j * count..(j + 1) * count]);
    let tiles = count / TILE;
    for (t, chunk) in out.chunks_exact_mut(TILE * N).enumerate() {
        let base = t * TILE;
        let parts: [&[u8; TILE]; N] = std::array::from_fn(|j| {
            streams[j][base..base + TILE]
                .try_into()
                .expect("tile of TILE bytes")
        });
        for (i, element) in chunk.chunks_exact_mut(N).enumerate() {
            for j in 0..N {
                element[j] = parts[j][i];
            }
        }
    }
    for i in tiles * TILE..count {
        for j in 0..N {
            out[i * N + j] = streams[j][i];
        }
    }
}

/// Transposes an 8×8 bit matrix held in a `u64`: bit `c` of byte `r` moves
/// to bit `r` of byte `c`.
#[inline]
fn transpose8x8(mut x: u64) -> u64 {
    let mut t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^= t ^ (t << 28);
    x
}

/// Undoes the bitshuffle of one block of `src.len()` bytes into `out`;
/// `tmp(len)` lends a scratch buffer of `len` bytes when `typesize > 1`.
///
/// When the block holds a multiple of 8 whole elements, `src` holds
/// `8 * typesize` rows of `count / 8` bytes: row `8 * b + k` has bit `k` of
/// byte `b` of every element, element `e` at bit `e % 8` of byte `e / 8`.
/// Bytes past the last whole element are stored as is. A block whose
/// element count is not a multiple of 8 is stored entirely as is (c-blosc
/// 1.x does not bitshuffle it at all).
fn bitunshuffle<'a>(
    typesize: usize,
    src: &[u8],
    out: &mut [u8],
    tmp: impl FnOnce(usize) -> &'a mut [u8],
) {
    let count = src.len() / typesize;
    if count == 0 || !count.is_multiple_of(8) {
        out.copy_from_slice(src);
        return;
    }
    let body = count * typesize;
    if typesize == 1 {
        bit_transpose_plane(&src[..body], &mut out[..body]);
    } else {
        // Bits back into bytes, plane by plane (the byte-shuffled layout),
        // then bytes back into elements.
        let planes = tmp(body);
        for (from, to) in src[..body]
            .chunks_exact(count)
            .zip(planes.chunks_exact_mut(count))
        {
            bit_transpose_plane(from, to);
        }
        unshuffle(typesize, planes, &mut out[..body]);
    }
    out[body..].copy_from_slice(&src[body..]);
}

/// Turns 8 rows of bits (row `k` holding bit `k` of every byte, byte `i`
/// at bit `i % 8` of the row's byte `i / 8`) back into `out.len()` bytes.
fn bit_transpose_plane(src: &[u8], out: &mut [u8]) {
    let row = src.len() / 8;
    let rows: [&[u8]; 8] = std::array::from_fn(|k| &src[k * row..(k + 1) * row]);
    let wide = row / 8;
    // Eight bytes of each row at a time: 64 output bytes.
    for (w, chunk) in out[..wide * 64].chunks_exact_mut(64).enumerate() {
        let mut words: [u64; 8] = std::array::from_fn(|k| {
            let bytes: [u8; 8] = rows[k][8 * w..8 * w + 8].try_into().expect("eight bytes");
            u64::from_le_bytes(bytes)
        });
        transpose_bytes(&mut words);
        for x in words.iter_mut() {
            *x = transpose8x8(*x);
        }
        for (to, x) in chunk.chunks_exact_mut(8).zip(words) {
            to.copy_from_slice(&x.to_le_bytes());
        }
    }
    for g in wide * 8..row {
        let x = u64::from_le_bytes(std::array::from_fn(|k| rows[k][g]));
        out[8 * g..8 * g + 8].copy_from_slice(&transpose8x8(x).to_le_bytes());
    }
}

/// Transposes 8 words as an 8×8 matrix of bytes: byte `j` of word `k`
/// moves to byte `k` of word `j`.
#[inline]
fn transpose_bytes(w: &mut [u64; 8]) {
    for (shift, mask, pairs) in [
        (
            8,
            0x00FF_00FF_00FF_00FFu64,
            [(0, 1), (2, 3), (4, 5), (6, 7)],
        ),
        (16, 0x0000_FFFF_0000_FFFF, [(0, 2), (1, 3), (4, 6), (5, 7)]),
        (32, 0x0000_0000_FFFF_FFFF, [(0, 4), (1, 5), (2, 6), (3, 7)]),
    ] {
        for (a, b) in pairs {
            let t = ((w[a] >> shift) ^ w[b]) & mask;
            w[b] ^= t;
            w[a] ^= t << shift;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Frames written by c-blosc 1.21 (through numcodecs) and the bytes
    /// they encode; see `tests/fixtures/blosc/generate.py`.
    const FIXTURES: &[u8] = include_bytes!("../tests/fixtures/blosc/frames.bin");

    struct Fixture {
        name: String,
        raw: std::rc::Rc<Vec<u8>>,
        frame: Vec<u8>,
    }

    fn fixtures() -> Vec<Fixture> {
        let mut at = 0;
        let mut raw = std::rc::Rc::new(Vec::new());
        let mut all = Vec::new();
        while at < FIXTURES.len() {
            let kind = FIXTURES[at];
            let name_len = usize::from(FIXTURES[at + 1]);
            let name = std::str::from_utf8(&FIXTURES[at + 2..at + 2 + name_len])
                .unwrap()
                .to_string();
            at += 2 + name_len;
            let len = read_u32(FIXTURES, at) as usize;
            let payload = &FIXTURES[at + 4..at + 4 + len];
            at += 4 + len;
            match kind {
                b'Z' => raw = std::rc::Rc::new(zstd::bulk::decompress(payload, 1 << 20).unwrap()),
                b'F' => all.push(Fixture {
                    name,
                    raw: raw.clone(),
                    frame: payload.to_vec(),
                }),
                other => panic!("unknown fixture record kind {other}"),
            }
        }
        all
    }

    fn fixture(name: &str) -> Fixture {
        fixtures()
            .into_iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no fixture {name}"))
    }

    fn decode(frame: &[u8]) -> Result<Vec<u8>> {
        let size = decompressed_size(frame)?;
        let mut out = vec![0u8; size];
        decompress_into(frame, &mut out)?;
        Ok(out)
    }

    #[test]
    fn decodes_every_fixture() {
        let all = fixtures();
        assert_eq!(all.len(), 143);
        for f in &all {
            assert_eq!(
                decompressed_size(&f.frame).unwrap(),
                f.raw.len(),
                "{}",
                f.name
            );
            let out = decode(&f.frame).unwrap_or_else(|e| panic!("{}: {e}", f.name));
            assert!(out == *f.raw, "{}: decoded bytes differ", f.name);
        }
    }

    #[test]
    fn fixtures_cover_the_format() {
        let all = fixtures();
        let headers: Vec<(String, Header)> = all
            .iter()
            .map(|f| (f.name.clone(), parse_header(&f.frame).unwrap()))
            .collect();
        let any = |pred: &dyn Fn(&Header) -> bool| headers.iter().any(|(_, h)| pred(h));
        for codec in [Codec::BloscLz, Codec::Lz4, Codec::Zlib, Codec::Zstd] {
            for flag in [0, FLAG_SHUFFLE, FLAG_BITSHUFFLE] {
                for split in [false, true] {
                    assert!(
                        any(&|h| h.codec == Some(codec)
                            && h.flags & (FLAG_SHUFFLE | FLAG_BITSHUFFLE) == flag
                            && (h.flags & FLAG_DONT_SPLIT == 0) == split
                            && h.typesize > 1),
                        "{codec:?} flag {flag} split {split}"
                    );
                }
            }
            // Several blocks with a short last one.
            assert!(any(&|h| h.codec == Some(codec)
                && h.nblocks() > 1
                && h.nbytes % h.blocksize != 0));
        }
        // Split blocks followed by a short, unsplit last block.
        assert!(any(&|h| h.flags & FLAG_DONT_SPLIT == 0
            && h.nblocks() > 1
            && h.nbytes % h.blocksize != 0));
        for ts in [1, 2, 3, 4, 8, 20, 255] {
            assert!(
                any(&|h| h.typesize == ts && h.codec.is_some()),
                "typesize {ts}"
            );
        }
        assert!(any(&|h| h.codec.is_none() && h.nbytes > 0));
        assert!(any(&|h| h.nbytes == 0));
        assert!(any(&|h| h.nbytes % h.typesize != 0));
    }

    #[test]
    fn trailing_bytes_past_cbytes_are_ignored() {
        let f = fixture("lz4-shuffle-ts4");
        let mut frame = f.frame.clone();
        frame.extend_from_slice(&[0xAB; 7]);
        assert_eq!(decode(&frame).unwrap(), *f.raw);
    }

    #[test]
    fn output_length_must_match() {
        let f = fixture("zstd-shuffle-ts4");
        for len in [0, f.raw.len() - 1, f.raw.len() + 1] {
            let mut out = vec![0u8; len];
            let err = decompress_into(&f.frame, &mut out).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::DecodeError);
            assert!(err.message.contains("expected"), "{}", err.message);
        }
        let empty = fixture("empty-lz4");
        assert!(decompress_into(&empty.frame, &mut [0u8; 1]).is_err());
        assert!(decompress_into(&empty.frame, &mut []).is_ok());
    }

    #[test]
    fn byte_transpose_matches_definition() {
        let mut words: [u64; 8] =
            std::array::from_fn(|k| 0x0706_0504_0302_0100 + 0x1010_1010_1010_1010 * k as u64);
        transpose_bytes(&mut words);
        for (j, word) in words.iter().enumerate() {
            for k in 0..8 {
                assert_eq!((word >> (8 * k)) as u8, (16 * k + j) as u8);
            }
        }
    }

    #[test]
    fn transpose_matches_definition() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..1000 {
            state = xorshift(state);
            let x = state;
            let mut expected = 0u64;
            for r in 0..8 {
                for c in 0..8 {
                    if x >> (8 * r + c) & 1 == 1 {
                        expected |= 1 << (8 * c + r);
                    }
                }
            }
            assert_eq!(transpose8x8(x), expected);
        }
    }

    fn xorshift(mut x: u64) -> u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state = xorshift(state);
                (state >> 32) as u8
            })
            .collect()
    }

    /// Byte shuffle of one block, as c-blosc writes it.
    fn shuffle_ref(typesize: usize, src: &[u8]) -> Vec<u8> {
        let count = src.len() / typesize;
        let mut out = src.to_vec();
        for i in 0..count {
            for j in 0..typesize {
                out[j * count + i] = src[i * typesize + j];
            }
        }
        out
    }

    /// Bitshuffle of one block, as c-blosc 1.x writes it, bit by bit.
    fn bitshuffle_ref(typesize: usize, src: &[u8]) -> Vec<u8> {
        let count = src.len() / typesize;
        if !count.is_multiple_of(8) {
            return src.to_vec();
        }
        let row = count / 8;
        let mut out = src.to_vec();
        out[..count * typesize].fill(0);
        for e in 0..count {
            for b in 0..typesize {
                for k in 0..8 {
                    let bit = (src[e * typesize + b] >> k) & 1;
                    out[(8 * b + k) * row + e / 8] |= bit << (e % 8);
                }
            }
        }
        out
    }

    #[test]
    fn unshuffles_invert_reference_shuffles() {
        for typesize in 1..=20 {
            for len in [
                0,
                1,
                7,
                8 * typesize,
                8 * typesize + 3,
                64 * 17 * typesize + 5,
                1000,
            ] {
                let data = noise(len, (typesize * 1000 + len) as u64);
                let mut out = vec![0u8; len];
                unshuffle(typesize, &shuffle_ref(typesize, &data), &mut out);
                assert_eq!(out, data, "shuffle typesize {typesize} len {len}");
                let mut tmp = vec![0u8; len];
                bitunshuffle(typesize, &bitshuffle_ref(typesize, &data), &mut out, |n| {
                    &mut tmp[..n]
                });
                assert_eq!(out, data, "bitshuffle typesize {typesize} len {len}");
            }
        }
    }

    /// An internal codec's compressor for [`write_frame`].
    pub(crate) type Compress<'a> = &'a dyn Fn(&[u8]) -> Option<Vec<u8>>;

    /// Writes a Blosc frame the way c-blosc lays it out, with `compress`
    /// as the internal codec (returning `None` when it cannot compress).
    pub(crate) fn write_frame(
        data: &[u8],
        typesize: usize,
        blocksize: usize,
        filter: u8,
        dont_split: bool,
        codec: u8,
        compress: Compress,
    ) -> Vec<u8> {
        let flags = filter | (u8::from(dont_split) << 4) | (codec << 5);
        let nblocks = data.len().div_ceil(blocksize);
        let mut frame = vec![2, 1, flags, typesize as u8];
        frame.extend_from_slice(&(data.len() as u32).to_le_bytes());
        frame.extend_from_slice(&(blocksize as u32).to_le_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame.resize(HEADER_LEN + 4 * nblocks, 0);
        for (index, block) in data.chunks(blocksize).enumerate() {
            let start = frame.len() as u32;
            frame[HEADER_LEN + 4 * index..][..4].copy_from_slice(&start.to_le_bytes());
            let filtered = if filter == FLAG_SHUFFLE && typesize > 1 {
                shuffle_ref(typesize, block)
            } else if filter == FLAG_BITSHUFFLE && block.len() >= typesize {
                bitshuffle_ref(typesize, block)
            } else {
                block.to_vec()
            };
            let split = !dont_split
                && typesize <= MAX_SPLITS
                && blocksize / typesize >= MIN_SPLIT_ELEMENTS
                && block.len() == blocksize;
            let nstreams = if split { typesize } else { 1 };
            for stream in filtered.chunks(block.len() / nstreams) {
                match compress(stream).filter(|c| !c.is_empty() && c.len() < stream.len()) {
                    Some(c) => {
                        frame.extend_from_slice(&(c.len() as u32).to_le_bytes());
                        frame.extend_from_slice(&c);
                    }
                    None => {
                        frame.extend_from_slice(&(stream.len() as u32).to_le_bytes());
                        frame.extend_from_slice(stream);
                    }
                }
            }
        }
        let cbytes = frame.len() as u32;
        frame[12..16].copy_from_slice(&cbytes.to_le_bytes());
        frame
    }

    fn compressible(len: usize, typesize: usize) -> Vec<u8> {
        let n = noise(len, 7);
        (0..len)
            .map(|i| {
                if i % typesize == 0 {
                    n[i] & 7
                } else {
                    (i / (typesize * 50)) as u8
                }
            })
            .collect()
    }

    #[test]
    fn decodes_snappy_frames() {
        let snappy = |s: &[u8]| snap::raw::Encoder::new().compress_vec(s).ok();
        for (typesize, len, blocksize) in [
            (4, 10_000, 4096),
            (2, 5000, 512),
            (1, 3000, 1000),
            (3, 3001, 999),
        ] {
            let data = compressible(len, typesize);
            for filter in [0, FLAG_SHUFFLE, FLAG_BITSHUFFLE] {
                for dont_split in [false, true] {
                    let frame =
                        write_frame(&data, typesize, blocksize, filter, dont_split, 2, &snappy);
                    assert_eq!(
                        decode(&frame).unwrap(),
                        data,
                        "ts {typesize} filter {filter}"
                    );
                }
            }
        }
    }

    #[test]
    fn decodes_written_frames_for_every_codec() {
        let lz4 = |s: &[u8]| Some(lz4_flex::block::compress(s));
        let zlib = |s: &[u8]| {
            use std::io::Write;
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(s).unwrap();
            e.finish().ok()
        };
        let zstd = |s: &[u8]| zstd::bulk::compress(s, 3).ok();
        let codecs: [(u8, Compress); 3] = [(1, &lz4), (3, &zlib), (4, &zstd)];
        for (codec, compress) in codecs {
            let data = compressible(20_000, 8);
            for filter in [0, FLAG_SHUFFLE, FLAG_BITSHUFFLE] {
                let frame = write_frame(&data, 8, 8192, filter, false, codec, compress);
                assert_eq!(
                    decode(&frame).unwrap(),
                    data,
                    "codec {codec} filter {filter}"
                );
            }
        }
    }

    #[test]
    fn blosclz_tokens() {
        // Literals "abc", a run of 20 copies of 'c' (length 7 + 13 via the
        // 11 in the extension byte, distance 1), 3 bytes from distance 3, 'z'.
        let stream = [0x20 | 2, b'a', b'b', b'c', 0xE0, 11, 0, 0x20, 2, 0, b'z'];
        let mut out = [0u8; 27];
        assert_eq!(blosclz_decompress(&stream, &mut out), Ok(27));
        let mut expected = b"abc".to_vec();
        expected.extend_from_slice(&[b'c'; 20]);
        expected.extend_from_slice(b"ccc");
        expected.push(b'z');
        assert_eq!(&out[..], &expected[..]);

        // A far match: 8200 literal bytes, then 4 bytes from 8200 back.
        let lit = noise(8200, 3);
        let mut stream = Vec::new();
        for (i, chunk) in lit.chunks(32).enumerate() {
            stream.push((chunk.len() - 1) as u8 | if i == 0 { 0x20 } else { 0 });
            stream.extend_from_slice(chunk);
        }
        // Length 4 -> top bits 2; distance 8200 = 8192 + 8.
        stream.extend_from_slice(&[(2 << 5) | 31, 255, 0, 8, 0, b'!']);
        let mut out = vec![0u8; 8205];
        assert_eq!(blosclz_decompress(&stream, &mut out), Ok(8205));
        assert_eq!(&out[..8200], &lit[..]);
        assert_eq!(&out[8200..8204], &lit[..4]);
        assert_eq!(out[8204], b'!');

        // A (far) match that ends the stream is not copied (as in c-blosc).
        stream.truncate(stream.len() - 2);
        assert_eq!(blosclz_decompress(&stream, &mut out), Ok(8200));

        // Overlapping copy with a period of 3.
        let stream = [0x20 | 2, b'1', b'2', b'3', 0xE0, 3, 2, 0, b'1'];
        let mut out = [0u8; 16];
        assert_eq!(blosclz_decompress(&stream, &mut out), Ok(16));
        assert_eq!(&out, b"1231231231231231");
    }

    #[test]
    fn blosclz_rejects_bad_streams() {
        let mut out = [0u8; 16];
        // Literal run past the output.
        assert!(blosclz_decompress(&[31, 0, 0], &mut out[..4]).is_err());
        // Literal run past the input.
        assert!(blosclz_decompress(&[5, 1, 2], &mut out).is_err());
        // Match before the output start.
        assert!(blosclz_decompress(&[0, b'a', 0x20, 5, 0], &mut out).is_err());
        // Match past the output.
        assert!(blosclz_decompress(&[0, b'a', 0xE0, 200, 0, 0], &mut out).is_err());
        // Truncated match, long length and far distance.
        assert!(blosclz_decompress(&[0, b'a', 0x20], &mut out).is_err());
        assert!(blosclz_decompress(&[0, b'a', 0xE0, 255], &mut out).is_err());
        assert!(blosclz_decompress(&[0, b'a', 0x3F, 255, 1], &mut out).is_err());
        assert!(
            blosclz_decompress(&[0, b'a', 0xE0, 255, 255, 255, 255, 255, 255], &mut out).is_err()
        );
    }

    #[test]
    fn blosclz_random_streams_never_panic() {
        let mut state = 0xDEAD_BEEF_F00D_CAFEu64;
        let mut out = vec![0u8; 4096];
        for round in 0..20_000 {
            state = xorshift(state);
            let len = (state % 64) as usize;
            let stream = noise(len, state);
            let out_len = (state >> 20) as usize % out.len();
            if let Ok(n) = blosclz_decompress(&stream, &mut out[..out_len]) {
                assert!(n <= out_len, "round {round}");
            }
        }
    }

    fn assert_decode_error(frame: &[u8], out_len: usize, what: &str) {
        let mut out = vec![0u8; out_len];
        match decompress_into(frame, &mut out) {
            Ok(()) => panic!("{what}: corrupt frame decoded"),
            Err(e) => assert_eq!(e.kind, crate::error::ErrorKind::DecodeError, "{what}"),
        }
    }

    /// Decodes `frame` ignoring the result; only panics are failures.
    fn decode_no_panic(frame: &[u8]) {
        if let Ok(size) = decompressed_size(frame) {
            if size <= 1 << 22 {
                let mut out = vec![0u8; size];
                let _ = decompress_into(frame, &mut out);
            }
        }
    }

    #[test]
    fn truncated_frames_fail() {
        for f in fixtures() {
            let len = f.frame.len();
            for cut in 0..len {
                let frame = &f.frame[..cut];
                assert!(decompressed_size(frame).is_err() || f.raw.is_empty());
                assert_decode_error(frame, f.raw.len(), &f.name);
                // The same, with the header's compressed size made to agree.
                if cut >= HEADER_LEN && !f.raw.is_empty() {
                    let mut frame = frame.to_vec();
                    frame[12..16].copy_from_slice(&(cut as u32).to_le_bytes());
                    assert_decode_error(&frame, f.raw.len(), &format!("{} cut {cut}", f.name));
                }
            }
        }
    }

    fn patched(frame: &[u8], at: usize, value: u32) -> Vec<u8> {
        let mut frame = frame.to_vec();
        frame[at..at + 4].copy_from_slice(&value.to_le_bytes());
        frame
    }

    #[test]
    fn lying_headers_fail() {
        for name in [
            "lz4-shuffle-ts4",
            "zstd-bitshuffle-ts2",
            "ts3-blosclz-shuffle",
            "memcpy-noise-lz4",
            "big-lz4-shuffle",
        ] {
            let f = fixture(name);
            let n = f.raw.len() as u32;
            let c = f.frame.len() as u32;
            let bs = read_u32(&f.frame, 8);
            // nbytes
            for nbytes in [
                n + 1,
                n - 1,
                n + 100_000,
                u32::MAX,
                1 << 31,
                i32::MAX as u32,
            ] {
                let frame = patched(&f.frame, 4, nbytes);
                decode_no_panic(&frame);
                if nbytes as usize > MAX_BUFFER_SIZE {
                    assert!(decompressed_size(&frame).is_err(), "{name} nbytes {nbytes}");
                }
                assert_decode_error(&frame, f.raw.len(), name);
            }
            // blocksize
            for blocksize in [0, n + 1, u32::MAX, 1 << 31] {
                let frame = patched(&f.frame, 8, blocksize);
                assert!(
                    decompressed_size(&frame).is_err(),
                    "{name} blocksize {blocksize}"
                );
                assert_decode_error(&frame, f.raw.len(), name);
            }
            for blocksize in [1, bs / 2, bs - 1, bs + 1, 128, 4096] {
                decode_no_panic(&patched(&f.frame, 8, blocksize));
            }
            // cbytes
            for cbytes in [0, 15, c + 1, u32::MAX] {
                let frame = patched(&f.frame, 12, cbytes);
                assert!(decompressed_size(&frame).is_err(), "{name} cbytes {cbytes}");
                assert_decode_error(&frame, f.raw.len(), name);
            }
            for cbytes in [16, 17, 20, c - 1] {
                assert_decode_error(&patched(&f.frame, 12, cbytes), f.raw.len(), name);
            }
            // version, codec version, flags, typesize
            for (at, value) in [(0, 1u8), (0, 3), (1, 0), (1, 2), (3, 0)] {
                let mut frame = f.frame.clone();
                frame[at] = value;
                if at == 1 && f.frame[2] & FLAG_MEMCPYED != 0 {
                    continue;
                }
                assert!(
                    decompressed_size(&frame).is_err(),
                    "{name} byte {at} = {value}"
                );
                assert_decode_error(&frame, f.raw.len(), name);
            }
            for flags in 0..=255u8 {
                let mut frame = f.frame.clone();
                frame[2] = flags;
                if flags & FLAG_RESERVED != 0 || (flags & FLAG_MEMCPYED == 0 && flags >> 5 > 4) {
                    assert_decode_error(&frame, f.raw.len(), name);
                } else {
                    decode_no_panic(&frame);
                }
            }
            for typesize in 1..=255u8 {
                let mut frame = f.frame.clone();
                frame[3] = typesize;
                decode_no_panic(&frame);
            }
        }
    }

    #[test]
    fn bad_block_offsets_and_stream_sizes_fail() {
        for name in [
            "lz4-shuffle-ts4",
            "zstd-noshuffle-ts8",
            "ts3-blosclz-bitshuffle",
            "big-blosclz-shuffle",
            "auto-zlib-shuffle",
        ] {
            let f = fixture(name);
            let h = parse_header(&f.frame).unwrap();
            let c = f.frame.len() as u32;
            for block in 0..h.nblocks() {
                let at = HEADER_LEN + 4 * block;
                for start in [
                    c,
                    c - 1,
                    c - 3,
                    c + 1000,
                    i32::MAX as u32,
                    u32::MAX,
                    1 << 31,
                ] {
                    let frame = patched(&f.frame, at, start);
                    assert_decode_error(
                        &frame,
                        f.raw.len(),
                        &format!("{name} block {block} start {start}"),
                    );
                }
                for start in [0, 4, 16, c - 4, c - 5] {
                    decode_no_panic(&patched(&f.frame, at, start));
                }
                // The first stream's size.
                let stream = read_u32(&f.frame, at) as usize;
                let size = read_u32(&f.frame, stream);
                for bad in [c, c - stream as u32 - 3, u32::MAX, 1 << 31, i32::MAX as u32] {
                    let frame = patched(&f.frame, stream, bad);
                    assert_decode_error(
                        &frame,
                        f.raw.len(),
                        &format!("{name} block {block} size {bad}"),
                    );
                }
                for other in [0, 1, size.saturating_sub(1), size + 1] {
                    decode_no_panic(&patched(&f.frame, stream, other));
                }
            }
        }
    }

    #[test]
    fn random_corruption_never_panics() {
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        for f in fixtures() {
            if f.frame.len() > 20_000 {
                continue;
            }
            for _ in 0..60 {
                let mut frame = f.frame.clone();
                state = xorshift(state);
                let edits = 1 + (state % 4) as usize;
                for _ in 0..edits {
                    state = xorshift(state);
                    let at = (state >> 16) as usize % frame.len();
                    frame[at] = (state >> 8) as u8;
                }
                decode_no_panic(&frame);
                let mut out = vec![0u8; f.raw.len()];
                let _ = decompress_into(&frame, &mut out);
            }
        }
    }
}
