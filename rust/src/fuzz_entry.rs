//! Entry points of the fuzz targets (`rust/fuzz`), kept in the library so
//! that `cargo test` replays the committed corpora and crash regressions
//! through the same code when cargo-fuzz is not installed.
//!
//! Each function takes arbitrary bytes: a few leading configuration bytes
//! pick the codec chain or layout, the rest is the untrusted payload. Any
//! outcome but an `Err` or `Ok` (a panic, an out-of-bounds access, an
//! unbounded allocation) is a bug.

use crate::blosc;
use crate::codec::{self, Elements};
use crate::dtype::DType;
use crate::omearrow::OmeArrow;
use crate::progress::Progress;
use crate::read::{self, Array};
use crate::region::Request;
use crate::shard;
use crate::spec::{ArraySpec, BytesCodec, ShardingSpec};
use crate::store::FsStore;
use std::path::PathBuf;

/// Outputs larger than this are not attempted (the fuzzer's memory limit).
const MAX_OUT: usize = 1 << 22;

/// A Blosc1 frame: its declared size, then decoding into a buffer of that
/// size and into one of a wrong size.
pub fn blosc_frame(data: &[u8]) {
    if let Ok(size) = blosc::decompressed_size(data) {
        if size <= MAX_OUT {
            let mut out = vec![0u8; size];
            let _ = blosc::decompress_into(data, &mut out);
        }
    }
    let mut wrong = vec![0u8; data.len() % 4096];
    let _ = blosc::decompress_into(data, &mut wrong);
}

/// A bytes-to-bytes chain picked by `data[0]` decoding the rest into an
/// output of the size `data[1..3]` gives, and into a vector with a limit.
pub fn bytes_codecs(data: &[u8]) {
    let [pick, a, b, payload @ ..] = data else {
        return;
    };
    let single = |i: u8| match i % 7 {
        0 => BytesCodec::Zstd {
            level: 1,
            checksum: false,
        },
        1 => BytesCodec::Gzip { level: 1 },
        2 => BytesCodec::Zlib { level: 1 },
        3 => BytesCodec::Lz4,
        4 => BytesCodec::Blosc,
        5 => BytesCodec::Crc32c,
        _ => BytesCodec::Zstd {
            level: 3,
            checksum: true,
        },
    };
    // low bits: the last codec; bit 7: a crc32c (or a zstd) before it
    let mut chain = Vec::new();
    if pick & 0x80 != 0 {
        chain.push(single(pick >> 4));
    }
    chain.push(single(*pick));
    let size = u16::from_le_bytes([*a, *b]) as usize;
    let mut out = vec![0u8; size];
    let _ = codec::decode_bytes_into(&chain, payload, &mut out);
    let _ = codec::decode_bytes_to_vec(&chain, payload, size * 2 + 1024);
}

/// Descriptor words of a 1-D uint8 array of `len` elements stored as one
/// shard picked by `flags` (see [`shard`]).
fn shard_descriptor(flags: u8, inner: u64, len: u64) -> Vec<i64> {
    let endian = i64::from(flags & 2 != 0);
    let index_chain: Vec<i64> = if flags & 4 != 0 {
        vec![2, 1, endian, 3]
    } else {
        vec![1, 1, endian]
    };
    let leaf: Vec<i64> = if flags & 16 != 0 {
        vec![2, 1, 0, 2, 1, 0]
    } else {
        vec![1, 1, 0]
    };
    let at_start = i64::from(flags & 1 != 0);
    let inner_chain: Vec<i64> = if flags & 8 != 0 {
        // nested: each inner chunk is a shard of two halves (index at the other end)
        let mut v = vec![1, 5, inner as i64 / 2, 1 - at_start];
        v.extend(&leaf);
        v.extend(&index_chain);
        v
    } else {
        leaf
    };
    let mut words = vec![
        1,
        1,
        DType::UInt8 as i64,
        0,
        47,
        len as i64,
        len as i64,
        1,
        5,
        inner as i64,
        at_start,
    ];
    words.extend(&inner_chain);
    words.extend(&index_chain);
    words
}

/// A shard: `data[0]` picks the layout (bit 0 index at the start, bit 1
/// big-endian index, bit 2 index crc32c, bit 3 nested shards, bit 4 zstd
/// inner chunks), `data[1]` the number of inner chunks; the rest is the
/// shard. Its index is decoded, the whole shard decoded, and a strided
/// region read through the store path with merged range reads.
pub fn shard(data: &[u8]) {
    let [flags, grid, shard_bytes @ ..] = data else {
        return;
    };
    let inner = 4u64;
    let len = inner * (1 + u64::from(grid % 16));
    let Ok(spec) = ArraySpec::decode(&shard_descriptor(*flags, inner, len), &[7]) else {
        return;
    };
    if let crate::spec::ArrayToBytes::Sharding(s) = &spec.codecs.array_to_bytes {
        index_only(s, len / inner, shard_bytes);
    }
    let mut out = vec![0u8; len as usize];
    let elements = Elements {
        dtype: DType::UInt8,
        fill: &[7],
    };
    let _ = codec::decode_chunk(&spec.codecs, &[len], shard_bytes, elements, &mut out);
    // the partial-read path: the shard as a file, a strided region of it
    let dir = scratch_dir();
    if std::fs::create_dir_all(dir.join("c")).is_err()
        || std::fs::write(dir.join("c").join("0"), shard_bytes).is_err()
    {
        return;
    }
    let array = Array {
        store: FsStore::new(&dir).into(),
        spec,
    };
    let step = 1 + u64::from(*grid >> 4) % 3;
    let count = len.div_ceil(step);
    let words = [DType::UInt16 as i64, 1, 0, count as i64, step as i64, 1];
    if let Ok(request) = Request::decode(&words, &array.spec.shape) {
        let _ = read::read(&array, &request, &Progress::default());
    }
}

/// Elements a fuzzed OME-Arrow region read may cover.
const MAX_REGION: u64 = 1 << 16;

/// An OME-Arrow file (Parquet or Arrow IPC, told apart by magic bytes):
/// `data[0]` picks the row (bits 0-1), the output type (bit 2: the record's
/// own or float32) and a step of 2 (bit 3); `data[1]` places the region.
/// The file is opened, its metadata rendered, and a region explained and
/// read, which parses the struct, reaches the chunk or plane payloads and
/// decodes them.
pub fn omearrow(data: &[u8]) {
    let [pick, at, file @ ..] = data else {
        return;
    };
    let dir = scratch_dir();
    let path = dir.join("image.ome.parquet");
    if std::fs::create_dir_all(&dir).is_err() || std::fs::write(&path, file).is_err() {
        return;
    }
    let Ok(source) = OmeArrow::open(&path, u64::from(pick & 3), None) else {
        return;
    };
    let _ = source.meta_json();
    let record = source.record();
    let shape = record.shape;
    if shape.contains(&0) {
        return;
    }
    let out_dtype = if pick & 4 != 0 {
        DType::Float32
    } else {
        record.dtype
    };
    let step = 1 + u64::from(pick >> 3 & 1);
    let mut words = vec![out_dtype as i64, shape.len() as i64];
    let mut stride = 1u64;
    let mut dims = Vec::new();
    for (d, &n) in shape.iter().enumerate().rev() {
        let start = if d >= 3 { u64::from(*at) % n } else { 0 };
        let count = ((n - start).div_ceil(step)).min(MAX_REGION / stride).max(1);
        dims.push([start, count, step, stride]);
        stride = stride.saturating_mul(count);
    }
    dims.reverse();
    words.extend(dims.iter().flatten().map(|&v| v as i64));
    if let Ok(request) = Request::decode(&words, &shape) {
        let _ = source.explain(&request, &Progress::default());
        let _ = source.read(&request, &Progress::default());
    }
}

/// Decodes only the index of `bytes` as a shard of `n` inner chunks.
fn index_only(spec: &ShardingSpec, n: u64, bytes: &[u8]) {
    if let Ok((start, len)) = shard::index_range(spec, n, bytes.len() as u64) {
        let index = &bytes[start as usize..(start + len) as usize];
        if let Ok(entries) = shard::decode_index(spec, index, bytes.len() as u64) {
            for (offset, nbytes) in entries.into_iter().flatten() {
                assert!(offset + nbytes <= bytes.len() as u64, "validated range");
            }
        }
    }
}

/// A folder of this process for the files of [`shard`] and [`omearrow`], under
/// `TESSERA_FUZZ_SCRATCH` when set (the fuzz task removes it afterwards).
fn scratch_dir() -> PathBuf {
    let base = if let Some(dir) = std::env::var_os("TESSERA_FUZZ_SCRATCH") {
        PathBuf::from(dir)
    } else if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("tessera-fuzz-{}", std::process::id()))
}

/// Array descriptor words (little-endian `i64`s) and a fill value: the
/// descriptor decoder must reject what it cannot use without panicking.
pub fn descriptor(data: &[u8]) {
    let [fill_len, rest @ ..] = data else {
        return;
    };
    let fill_len = usize::from(*fill_len % 9).min(rest.len());
    let (fill, words) = rest.split_at(fill_len);
    let words: Vec<i64> = words
        .chunks_exact(8)
        .map(|w| i64::from_le_bytes(w.try_into().expect("8 bytes")))
        .collect();
    if let Ok(spec) = ArraySpec::decode(&words, fill) {
        // a decodable spec must describe chunks whose size is bounded
        let elements = codec::element_count(&spec.chunk_shape);
        assert!(elements as u64 <= crate::spec::MAX_CHUNK_ELEMENTS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays the committed corpora and crash regressions of every target.
    #[test]
    fn corpora_and_regressions_replay_cleanly() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 5] = [
            ("blosc_frame", blosc_frame),
            ("bytes_codecs", bytes_codecs),
            ("shard", shard),
            ("descriptor", descriptor),
            ("omearrow", omearrow),
        ];
        let mut replayed = 0;
        for (name, run) in targets {
            for folder in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(folder).join(name)) else {
                    continue;
                };
                for entry in entries.flatten() {
                    run(&std::fs::read(entry.path()).unwrap());
                    replayed += 1;
                }
            }
        }
        let _ = std::fs::remove_dir_all(scratch_dir());
        assert!(replayed > 0, "no corpus found under {}", root.display());
    }
}
