//! Codec chains: decoding whole chunks into caller buffers, and encoding.

use crate::assemble::{self, Destination, Walk};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::region::{for_each_combination, DimSel};
use crate::shard;
use crate::spec::{ArrayToBytes, BytesCodec, CodecChain, ShardingSpec};
use rayon::prelude::*;
use std::cell::RefCell;
use std::io::Read;

/// What decoding needs to know about the elements.
#[derive(Debug, Clone, Copy)]
pub struct Elements<'a> {
    /// Element type as stored.
    pub dtype: DType,
    /// Fill value (little-endian bytes of one element).
    pub fill: &'a [u8],
}

thread_local! {
    static ZSTD_DECODER: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Decompresses a zstd payload into exactly `out`.
fn zstd_into(input: &[u8], out: &mut [u8]) -> Result<()> {
    ZSTD_DECODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| Error::decode(format!("zstd context: {e}")))?,
            );
        }
        let decoder = slot.as_mut().expect("decoder initialised above");
        let n = decoder
            .decompress_to_buffer(input, out)
            .map_err(|e| Error::decode(format!("zstd: {e} (expected {} bytes)", out.len())))?;
        if n != out.len() {
            return Err(Error::decode(format!(
                "zstd: decoded {n} bytes, expected {}",
                out.len()
            )));
        }
        Ok(())
    })
}

/// Decompresses a zstd payload of at most `limit` bytes into a new vector.
fn zstd_to_vec(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    zstd::bulk::decompress(input, limit)
        .map_err(|e| Error::decode(format!("zstd: {e} (limit {limit} bytes)")))
}

fn strip_crc32c(input: &[u8]) -> Result<&[u8]> {
    let (payload, stored) = input
        .split_last_chunk::<4>()
        .ok_or_else(|| Error::decode("crc32c: payload shorter than its checksum"))?;
    let expected = u32::from_le_bytes(*stored);
    let actual = crc32c::crc32c(payload);
    if actual != expected {
        return Err(Error::decode(format!(
            "crc32c mismatch (stored {expected:#010x}, computed {actual:#010x})"
        )));
    }
    Ok(payload)
}

/// The name and a decoder of a gzip or zlib stream.
fn inflater<'a>(
    codec: &BytesCodec,
    input: &'a [u8],
) -> (&'static str, Box<dyn std::io::Read + 'a>) {
    match codec {
        BytesCodec::Gzip { .. } => (
            "gzip",
            Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        ),
        _ => ("zlib", Box::new(flate2::bufread::ZlibDecoder::new(input))),
    }
}

/// Inflates a gzip or zlib stream into exactly `out`; trailing data is an error.
fn inflate_into(codec: &BytesCodec, input: &[u8], out: &mut [u8]) -> Result<()> {
    let (name, mut reader) = inflater(codec, input);
    reader
        .read_exact(out)
        .map_err(|e| Error::decode(format!("{name}: {e} (expected {} bytes)", out.len())))?;
    let mut extra = [0u8; 1];
    match reader.read(&mut extra) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Error::decode(format!(
            "{name}: more than the expected {} bytes",
            out.len()
        ))),
        Err(e) => Err(Error::decode(format!("{name}: {e}"))),
    }
}

/// Inflates a gzip or zlib stream of at most `limit` bytes into a new vector.
fn inflate_to_vec(codec: &BytesCodec, input: &[u8], limit: usize) -> Result<Vec<u8>> {
    let (name, reader) = inflater(codec, input);
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::decode(format!("{name}: {e}")))?;
    if out.len() > limit {
        return Err(Error::decode(format!("{name}: more than {limit} bytes")));
    }
    Ok(out)
}

/// Decodes numcodecs' LZ4 framing (u32 LE size, then a block) into exactly `out`.
fn lz4_into(input: &[u8], out: &mut [u8]) -> Result<()> {
    let (size, block) = input
        .split_first_chunk::<4>()
        .ok_or_else(|| Error::decode("lz4: shorter than its size header"))?;
    let size = u32::from_le_bytes(*size) as usize;
    if size != out.len() {
        return Err(Error::decode(format!(
            "lz4: declares {size} bytes, expected {}",
            out.len()
        )));
    }
    let n = lz4_flex::block::decompress_into(block, out)
        .map_err(|e| Error::decode(format!("lz4: {e}")))?;
    if n != out.len() {
        return Err(Error::decode(format!(
            "lz4: decoded {n} bytes, expected {}",
            out.len()
        )));
    }
    Ok(())
}

/// Decodes one bytes-to-bytes codec whose output size is not known in advance.
fn decode_one_to_vec(codec: &BytesCodec, input: &[u8], limit: usize) -> Result<Vec<u8>> {
    match codec {
        BytesCodec::Zstd { .. } => zstd_to_vec(input, limit),
        BytesCodec::Crc32c => Ok(strip_crc32c(input)?.to_vec()),
        BytesCodec::Gzip { .. } | BytesCodec::Zlib { .. } => inflate_to_vec(codec, input, limit),
        BytesCodec::Blosc => {
            let size = crate::blosc::decompressed_size(input)?;
            if size > limit {
                return Err(Error::decode(format!(
                    "blosc: declares {size} bytes, more than {limit}"
                )));
            }
            let mut out = vec![0u8; size];
            crate::blosc::decompress_into(input, &mut out)?;
            Ok(out)
        }
        BytesCodec::Lz4 => {
            let size = input
                .first_chunk::<4>()
                .map(|s| u32::from_le_bytes(*s) as usize)
                .filter(|&s| s <= limit)
                .ok_or_else(|| {
                    Error::decode(format!("lz4: missing size or more than {limit} bytes"))
                })?;
            let mut out = vec![0u8; size];
            lz4_into(input, &mut out)?;
            Ok(out)
        }
    }
}

/// Undoes the bytes-to-bytes `codecs`, writing exactly `out.len()` bytes.
pub fn decode_bytes_into(codecs: &[BytesCodec], input: &[u8], out: &mut [u8]) -> Result<()> {
    match codecs.split_last() {
        None if input.len() == out.len() => {
            out.copy_from_slice(input);
            Ok(())
        }
        None => Err(Error::decode(format!(
            "chunk holds {} bytes, expected {}",
            input.len(),
            out.len()
        ))),
        Some((BytesCodec::Crc32c, rest)) => decode_bytes_into(rest, strip_crc32c(input)?, out),
        Some((BytesCodec::Zstd { .. }, [])) => zstd_into(input, out),
        Some((codec @ (BytesCodec::Gzip { .. } | BytesCodec::Zlib { .. }), [])) => {
            inflate_into(codec, input, out)
        }
        Some((BytesCodec::Blosc, [])) => crate::blosc::decompress_into(input, out),
        Some((BytesCodec::Lz4, [])) => lz4_into(input, out),
        Some((codec, rest)) => {
            let inner = decode_one_to_vec(codec, input, out.len() * 2 + (1 << 16))?;
            decode_bytes_into(rest, &inner, out)
        }
    }
}

/// Undoes the bytes-to-bytes `codecs` when the decoded size is not known
/// in advance (a shard followed by compression); at most `limit` bytes.
pub fn decode_bytes_to_vec(codecs: &[BytesCodec], input: &[u8], limit: usize) -> Result<Vec<u8>> {
    match codecs.split_last() {
        None => Ok(input.to_vec()),
        Some((BytesCodec::Crc32c, rest)) => decode_bytes_to_vec(rest, strip_crc32c(input)?, limit),
        Some((codec, rest)) => {
            decode_bytes_to_vec(rest, &decode_one_to_vec(codec, input, limit)?, limit)
        }
    }
}

/// Number of elements of a chunk of `shape`.
pub fn element_count(shape: &[u64]) -> usize {
    shape.iter().product::<u64>() as usize
}

/// C-order element strides of `shape`.
pub fn c_strides(shape: &[u64]) -> Vec<u64> {
    let mut strides = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// An aligned scratch vector able to hold `bytes` bytes.
pub fn aligned_scratch(bytes: usize) -> Vec<u64> {
    vec![0u64; bytes.div_ceil(8)]
}

/// Decodes a whole chunk of `shape` into `out` (its stored layout: see
/// [`CodecChain::logical_strides`]), native endianness.
pub fn decode_chunk(
    chain: &CodecChain,
    shape: &[u64],
    input: &[u8],
    elements: Elements<'_>,
    out: &mut [u8],
) -> Result<()> {
    match &chain.array_to_bytes {
        ArrayToBytes::Bytes { big_endian } => {
            decode_bytes_into(&chain.bytes_to_bytes, input, out)?;
            if *big_endian {
                assemble::swap_endianness(out, elements.dtype.size());
            }
            Ok(())
        }
        ArrayToBytes::Sharding(spec) => {
            // The shard holds the chunk in its stored (transposed) order.
            let shape = chain.stored_shape(shape);
            let bytes;
            let shard = if chain.bytes_to_bytes.is_empty() {
                input
            } else {
                // Bound the decoded shard: its index, plus every inner chunk at
                // twice its raw size and some framing.
                let n = element_count(&spec.grid(&shape));
                let limit = spec.index_size(n as u64) as usize + out.len() * 2 + n * 64 + (1 << 20);
                bytes = decode_bytes_to_vec(&chain.bytes_to_bytes, input, limit)?;
                &bytes
            };
            decode_whole_shard(spec, &shape, shard, elements, out)
        }
    }
}

fn decode_whole_shard(
    spec: &ShardingSpec,
    shape: &[u64],
    shard: &[u8],
    elements: Elements<'_>,
    out: &mut [u8],
) -> Result<()> {
    let grid = spec.grid(shape);
    let n = element_count(&grid) as u64;
    let (start, len) = shard::index_range(spec, n, shard.len() as u64)?;
    let index = shard::decode_index(
        spec,
        &shard[start as usize..(start + len) as usize],
        shard.len() as u64,
    )?;
    let out_strides = c_strides(shape);
    // SAFETY: `out` is valid, exclusively borrowed, and aligned (scratch vectors are 8-byte aligned).
    let dst = unsafe { Destination::new(out.as_mut_ptr(), out.len(), elements.dtype) };
    let inner_bytes = element_count(&spec.inner_shape) * elements.dtype.size();
    let inner_strides = spec.inner.logical_strides(&spec.inner_shape);
    let cells: Vec<Vec<u64>> = grid.iter().map(|&g| (0..g).collect()).collect();
    let mut position = 0usize;
    for_each_combination(&cells, |coords| {
        let sel: Vec<DimSel> = coords
            .iter()
            .zip(&spec.inner_shape)
            .map(|(&c, &size)| DimSel {
                first: 0,
                count: size,
                step: 1,
                out_first: c * size,
            })
            .collect();
        let entry = index[position];
        position += 1;
        match entry {
            None => assemble::fill(
                elements.fill,
                elements.dtype,
                &Walk::new(&sel, &inner_strides, &out_strides),
                &dst,
            ),
            Some((offset, nbytes)) => {
                let mut scratch = aligned_scratch(inner_bytes);
                let decoded = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut scratch)[..inner_bytes];
                let raw = &shard[offset as usize..(offset + nbytes) as usize];
                decode_chunk(&spec.inner, &spec.inner_shape, raw, elements, decoded)?;
                assemble::copy(
                    decoded,
                    elements.dtype,
                    &Walk::new(&sel, &inner_strides, &out_strides),
                    &dst,
                )
            }
        }
    })
}

/// Encodes a chunk given as C-order elements of `shape` (native endianness).
/// Returns `None` when every element equals the fill value and the chunk
/// need not be stored.
pub fn encode_chunk(
    chain: &CodecChain,
    shape: &[u64],
    data: &[u8],
    elements: Elements<'_>,
) -> Result<Option<Vec<u8>>> {
    let stored: Vec<u8>;
    let data = if chain.transposes.is_empty() {
        data
    } else {
        let mut out = aligned_scratch(data.len());
        let out_bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut out)[..data.len()];
        let sel: Vec<DimSel> = shape
            .iter()
            .map(|&s| DimSel {
                first: 0,
                count: s,
                step: 1,
                out_first: 0,
            })
            .collect();
        // SAFETY: `out_bytes` is a live, aligned, exclusively borrowed buffer.
        let dst =
            unsafe { Destination::new(out_bytes.as_mut_ptr(), out_bytes.len(), elements.dtype) };
        let walk = Walk::new(&sel, &c_strides(shape), &chain.logical_strides(shape));
        assemble::copy(data, elements.dtype, &walk, &dst)?;
        stored = out_bytes.to_vec();
        &stored
    };
    let mut bytes = match &chain.array_to_bytes {
        ArrayToBytes::Bytes { big_endian } => {
            if data
                .chunks_exact(elements.dtype.size())
                .all(|e| e == elements.fill)
            {
                return Ok(None);
            }
            let mut bytes = data.to_vec();
            if *big_endian {
                assemble::swap_endianness(&mut bytes, elements.dtype.size());
            }
            bytes
        }
        ArrayToBytes::Sharding(spec) => {
            match encode_shard(spec, &chain.stored_shape(shape), data, elements)? {
                Some(bytes) => bytes,
                None => return Ok(None),
            }
        }
    };
    for codec in &chain.bytes_to_bytes {
        bytes = match codec {
            BytesCodec::Zstd { level, checksum } => {
                let mut encoder = zstd::bulk::Compressor::new(*level)
                    .map_err(|e| Error::invalid(format!("zstd level {level}: {e}")))?;
                encoder
                    .include_checksum(*checksum)
                    .map_err(|e| Error::invalid(format!("zstd checksum: {e}")))?;
                encoder
                    .compress(&bytes)
                    .map_err(|e| Error::storage(format!("zstd: {e}")))?
            }
            BytesCodec::Crc32c => {
                let crc = crc32c::crc32c(&bytes);
                bytes.extend_from_slice(&crc.to_le_bytes());
                bytes
            }
            BytesCodec::Gzip { level } => deflate(
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(*level)),
                &bytes,
            )?,
            BytesCodec::Zlib { level } => deflate(
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(*level)),
                &bytes,
            )?,
            BytesCodec::Blosc | BytesCodec::Lz4 => {
                return Err(Error::invalid(
                    "writing blosc or lz4 chunks is not supported; use zstd, gzip or zlib",
                ));
            }
        };
    }
    Ok(Some(bytes))
}

/// Finishes a deflate encoder over `bytes`.
fn deflate<W: std::io::Write + Finish>(mut encoder: W, bytes: &[u8]) -> Result<Vec<u8>> {
    encoder
        .write_all(bytes)
        .map_err(|e| Error::storage(format!("deflate: {e}")))?;
    encoder.finish_encoding()
}

/// The `finish` of flate2's encoders, which share no trait.
trait Finish {
    fn finish_encoding(self) -> Result<Vec<u8>>;
}

impl Finish for flate2::write::GzEncoder<Vec<u8>> {
    fn finish_encoding(self) -> Result<Vec<u8>> {
        self.finish()
            .map_err(|e| Error::storage(format!("gzip: {e}")))
    }
}

impl Finish for flate2::write::ZlibEncoder<Vec<u8>> {
    fn finish_encoding(self) -> Result<Vec<u8>> {
        self.finish()
            .map_err(|e| Error::storage(format!("zlib: {e}")))
    }
}

fn encode_shard(
    spec: &ShardingSpec,
    shape: &[u64],
    data: &[u8],
    elements: Elements<'_>,
) -> Result<Option<Vec<u8>>> {
    let grid = spec.grid(shape);
    let cells: Vec<Vec<u64>> = grid.iter().map(|&g| (0..g).collect()).collect();
    let mut coords = Vec::new();
    for_each_combination(&cells, |c| {
        coords.push(c.to_vec());
        Ok(())
    })?;
    let size = elements.dtype.size();
    let inner_bytes = element_count(&spec.inner_shape) * size;
    let src_strides = c_strides(shape);
    let inner_strides = c_strides(&spec.inner_shape);
    let encoded: Vec<Option<Vec<u8>>> = coords
        .par_iter()
        .map(|c| {
            let sel: Vec<DimSel> = c
                .iter()
                .zip(&spec.inner_shape)
                .map(|(&c, &s)| DimSel {
                    first: c * s,
                    count: s,
                    step: 1,
                    out_first: 0,
                })
                .collect();
            let mut scratch = aligned_scratch(inner_bytes);
            let inner = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut scratch)[..inner_bytes];
            // SAFETY: `inner` is a live, aligned, exclusively borrowed buffer.
            let dst = unsafe { Destination::new(inner.as_mut_ptr(), inner.len(), elements.dtype) };
            assemble::copy(
                data,
                elements.dtype,
                &Walk::new(&sel, &src_strides, &inner_strides),
                &dst,
            )?;
            encode_chunk(&spec.inner, &spec.inner_shape, inner, elements)
        })
        .collect::<Result<_>>()?;
    if encoded.iter().all(Option::is_none) {
        return Ok(None);
    }
    let index_size = spec.index_size(encoded.len() as u64);
    let mut offset = if spec.index_at_start { index_size } else { 0 };
    let entries: Vec<shard::IndexEntry> = encoded
        .iter()
        .map(|e| {
            e.as_ref().map(|bytes| {
                let entry = (offset, bytes.len() as u64);
                offset += bytes.len() as u64;
                entry
            })
        })
        .collect();
    let index = shard::encode_index(spec, &entries);
    let mut out = Vec::with_capacity(offset as usize + index.len());
    if spec.index_at_start {
        out.extend_from_slice(&index);
    }
    for bytes in encoded.iter().flatten() {
        out.extend_from_slice(bytes);
    }
    if !spec.index_at_start {
        out.extend_from_slice(&index);
    }
    Ok(Some(out))
}
