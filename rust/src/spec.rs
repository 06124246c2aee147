//! Array descriptors: the packed `i64` form TypeScript hands over, decoded
//! into an [`ArraySpec`] with its codec chain.
//!
//! Layout (all little-endian `i64`):
//! ```text
//! [version=1, rank R, dtype code, key encoding (0 default "c/…", 1 v2),
//!  separator (ASCII), shape × R, chunk shape × R, codec chain]
//! codec chain = [count, codec…]; codec = [id, parameters…]:
//!   1 bytes      [endian: 0 little, 1 big]
//!   2 zstd       [level, checksum 0/1]
//!   3 crc32c     []
//!   4 transpose  [order × rank]
//!   5 sharding   [inner chunk shape × rank, index location (0 end, 1 start),
//!                 inner codec chain, index codec chain]
//!   6 gzip       [level]
//!   7 zlib       [level]
//!   8 blosc      [compressor (0 blosclz, 1 lz4, 2 lz4hc, 3 snappy, 4 zlib, 5 zstd),
//!                 level, shuffle (0 none, 1 byte, 2 bit), typesize, blocksize]
//!   9 lz4        [acceleration] (numcodecs framing: u32 LE size, then an LZ4 block)
//! ```

use crate::dtype::DType;
use crate::error::{Error, Result};

/// Version of the descriptor layout this build understands.
pub const DESCRIPTOR_VERSION: i64 = 1;

/// How chunk coordinates become store keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// Zarr v3 default: `c/1/2/3` (or `c.1.2.3`); rank 0 is `c`.
    Default(u8),
    /// Zarr v2 style: `1.2.3` (or `1/2/3`); rank 0 is `0`.
    V2(u8),
}

impl KeyEncoding {
    /// The key of the chunk at grid coordinates `coords`.
    pub fn key(self, coords: &[u64]) -> String {
        let (prefix, sep) = match self {
            KeyEncoding::Default(sep) => (Some("c"), sep as char),
            KeyEncoding::V2(sep) => (None, sep as char),
        };
        let mut key = String::new();
        if let Some(p) = prefix {
            key.push_str(p);
        }
        if coords.is_empty() && prefix.is_none() {
            key.push('0');
        }
        for (i, c) in coords.iter().enumerate() {
            if i > 0 || prefix.is_some() {
                key.push(sep);
            }
            key.push_str(&c.to_string());
        }
        key
    }
}

/// A bytes-to-bytes codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BytesCodec {
    /// Zstandard at `level`, with an optional frame checksum when encoding.
    Zstd {
        /// Compression level used when writing.
        level: i32,
        /// Whether written frames carry a checksum.
        checksum: bool,
    },
    /// A CRC32C checksum of the payload, appended as 4 little-endian bytes.
    Crc32c,
    /// A gzip stream (RFC 1952).
    Gzip {
        /// Compression level used when writing.
        level: u32,
    },
    /// A zlib stream (RFC 1950).
    Zlib {
        /// Compression level used when writing.
        level: u32,
    },
    /// A Blosc1 frame; its header describes how to decode it.
    Blosc,
    /// numcodecs' LZ4: the uncompressed size (u32 LE), then one LZ4 block.
    Lz4,
}

/// The array-to-bytes codec of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayToBytes {
    /// Elements laid out in C order with the given endianness.
    Bytes {
        /// Whether multi-byte elements are big-endian.
        big_endian: bool,
    },
    /// `sharding_indexed`: the chunk is a grid of inner chunks plus an index.
    Sharding(Box<ShardingSpec>),
}

/// Configuration of a `sharding_indexed` codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardingSpec {
    /// Shape of one inner chunk.
    pub inner_shape: Vec<u64>,
    /// Whether the index sits at the start of the shard (else at the end).
    pub index_at_start: bool,
    /// Codecs of the inner chunks.
    pub inner: CodecChain,
    /// Whether the index is big-endian (its `bytes` codec).
    pub index_big_endian: bool,
    /// Whether the index carries a CRC32C checksum.
    pub index_crc32c: bool,
}

impl ShardingSpec {
    /// Number of inner chunks per shard along each dimension.
    pub fn grid(&self, shard_shape: &[u64]) -> Vec<u64> {
        shard_shape
            .iter()
            .zip(&self.inner_shape)
            .map(|(s, i)| s / i)
            .collect()
    }

    /// Encoded size of the index for `n` inner chunks.
    pub fn index_size(&self, n: u64) -> u64 {
        16 * n + if self.index_crc32c { 4 } else { 0 }
    }
}

/// A full codec chain: array-to-array codecs, one array-to-bytes codec,
/// then bytes-to-bytes codecs, in encoding order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecChain {
    /// `transpose` orders, in encoding order.
    pub transposes: Vec<Vec<usize>>,
    /// The array-to-bytes codec.
    pub array_to_bytes: ArrayToBytes,
    /// Bytes-to-bytes codecs, in encoding order.
    pub bytes_to_bytes: Vec<BytesCodec>,
}

impl CodecChain {
    /// For each axis of the stored (transposed) chunk, the logical dimension it holds.
    pub fn stored_order(&self, rank: usize) -> Vec<usize> {
        stored_order(&self.transposes, rank)
    }

    /// Shape of the chunk as the array-to-bytes codec sees it (after the transposes).
    pub fn stored_shape(&self, shape: &[u64]) -> Vec<u64> {
        self.stored_order(shape.len())
            .iter()
            .map(|&d| shape[d])
            .collect()
    }

    /// Element strides (in elements) of the logical chunk within its
    /// decoded, possibly transposed, C-order layout.
    pub fn logical_strides(&self, shape: &[u64]) -> Vec<u64> {
        let rank = shape.len();
        let perm = self.stored_order(rank);
        let stored: Vec<u64> = perm.iter().map(|&d| shape[d]).collect();
        let mut strides = vec![0u64; rank];
        let mut acc = 1u64;
        for i in (0..rank).rev() {
            strides[perm[i]] = acc;
            acc *= stored[i];
        }
        strides
    }
}

/// Everything the data plane needs to know about one array.
#[derive(Debug, Clone)]
pub struct ArraySpec {
    /// Element type as stored.
    pub dtype: DType,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Shape of one (outer) chunk of the regular grid.
    pub chunk_shape: Vec<u64>,
    /// Fill value, as the little-endian bytes of one element.
    pub fill: Vec<u8>,
    /// Chunk key encoding.
    pub keys: KeyEncoding,
    /// Codec chain of the outer chunks.
    pub codecs: CodecChain,
}

/// Composes transpose orders: for each stored axis, the logical dimension.
fn stored_order(transposes: &[Vec<usize>], rank: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..rank).collect();
    for order in transposes {
        perm = order.iter().map(|&o| perm[o]).collect();
    }
    perm
}

/// Largest number of elements one chunk may have (bounds every allocation).
pub const MAX_CHUNK_ELEMENTS: u64 = 1 << 31;

struct Reader<'a> {
    words: &'a [i64],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn next(&mut self, what: &str) -> Result<i64> {
        let v = self.words.get(self.pos).copied().ok_or_else(|| {
            Error::invalid(format!("array descriptor ends early, reading {what}"))
        })?;
        self.pos += 1;
        Ok(v)
    }

    fn unsigned(&mut self, what: &str) -> Result<u64> {
        let v = self.next(what)?;
        u64::try_from(v).map_err(|_| Error::invalid(format!("{what} is negative ({v})")))
    }

    fn positive_vec(&mut self, n: usize, what: &str) -> Result<Vec<u64>> {
        (0..n)
            .map(|_| {
                let v = self.unsigned(what)?;
                if v == 0 {
                    Err(Error::invalid(format!("{what} has a zero entry")))
                } else {
                    Ok(v)
                }
            })
            .collect()
    }
}

impl ArraySpec {
    /// Decodes a descriptor and the fill value bytes, validating every field.
    pub fn decode(words: &[i64], fill: &[u8]) -> Result<ArraySpec> {
        let mut r = Reader { words, pos: 0 };
        let version = r.next("version")?;
        if version != DESCRIPTOR_VERSION {
            return Err(Error::invalid(format!(
                "array descriptor version {version}, this library reads {DESCRIPTOR_VERSION}"
            )));
        }
        let rank = r.unsigned("rank")?;
        if rank > 32 {
            return Err(Error::invalid(format!("rank {rank} exceeds 32")));
        }
        let rank = rank as usize;
        let dtype = DType::from_code(r.next("dtype")?)?;
        let encoding = r.next("key encoding")?;
        let sep = r.next("key separator")?;
        let sep = match sep {
            47 => b'/',
            46 => b'.',
            other => return Err(Error::invalid(format!("key separator code {other}"))),
        };
        let keys = match encoding {
            0 => KeyEncoding::Default(sep),
            1 => KeyEncoding::V2(sep),
            other => return Err(Error::invalid(format!("key encoding code {other}"))),
        };
        let shape = (0..rank)
            .map(|_| r.unsigned("shape"))
            .collect::<Result<Vec<_>>>()?;
        let chunk_shape = r.positive_vec(rank, "chunk shape")?;
        let codecs = decode_chain(&mut r, &chunk_shape)?;
        if r.pos != words.len() {
            return Err(Error::invalid(format!(
                "array descriptor has {} trailing words",
                words.len() - r.pos
            )));
        }
        if fill.len() != dtype.size() {
            return Err(Error::invalid(format!(
                "fill value has {} bytes, dtype needs {}",
                fill.len(),
                dtype.size()
            )));
        }
        Ok(ArraySpec {
            dtype,
            shape,
            chunk_shape,
            fill: fill.to_vec(),
            keys,
            codecs,
        })
    }
}

fn element_count(shape: &[u64], what: &str) -> Result<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &s| acc.checked_mul(s))
        .filter(|&n| n <= MAX_CHUNK_ELEMENTS)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{what} {shape:?} has more than {MAX_CHUNK_ELEMENTS} elements"
            ))
        })
}

fn decode_chain(r: &mut Reader<'_>, chunk_shape: &[u64]) -> Result<CodecChain> {
    element_count(chunk_shape, "chunk shape")?;
    let rank = chunk_shape.len();
    let count = r.unsigned("codec count")?;
    if count > 64 {
        return Err(Error::invalid(format!("{count} codecs in one chain")));
    }
    let mut transposes = Vec::new();
    let mut array_to_bytes = None;
    let mut bytes_to_bytes = Vec::new();
    for _ in 0..count {
        let id = r.next("codec id")?;
        match id {
            1 | 5 if array_to_bytes.is_some() => {
                return Err(Error::invalid("codec chain has two array-to-bytes codecs"));
            }
            4 if array_to_bytes.is_some() => {
                return Err(Error::invalid(
                    "transpose codec after the array-to-bytes codec",
                ));
            }
            2 | 3 | 6..=9 if array_to_bytes.is_none() => {
                return Err(Error::invalid(
                    "bytes-to-bytes codec before the array-to-bytes codec",
                ));
            }
            1 => {
                let endian = r.next("bytes endian")?;
                array_to_bytes = Some(ArrayToBytes::Bytes {
                    big_endian: endian == 1,
                });
            }
            2 => {
                let level = r.next("zstd level")?;
                let checksum = r.next("zstd checksum")? != 0;
                let level = i32::try_from(level)
                    .map_err(|_| Error::invalid(format!("zstd level {level}")))?;
                bytes_to_bytes.push(BytesCodec::Zstd { level, checksum });
            }
            3 => bytes_to_bytes.push(BytesCodec::Crc32c),
            6 | 7 => {
                let level = r.next("deflate level")?;
                let level = u32::try_from(level)
                    .ok()
                    .filter(|&l| l <= 9)
                    .ok_or_else(|| Error::invalid(format!("gzip/zlib level {level}")))?;
                bytes_to_bytes.push(if id == 6 {
                    BytesCodec::Gzip { level }
                } else {
                    BytesCodec::Zlib { level }
                });
            }
            8 => {
                for what in [
                    "blosc compressor",
                    "blosc level",
                    "blosc shuffle",
                    "blosc typesize",
                    "blosc blocksize",
                ] {
                    r.next(what)?;
                }
                bytes_to_bytes.push(BytesCodec::Blosc);
            }
            9 => {
                r.next("lz4 acceleration")?;
                bytes_to_bytes.push(BytesCodec::Lz4);
            }
            4 => {
                let order = (0..rank)
                    .map(|_| r.unsigned("transpose order").map(|v| v as usize))
                    .collect::<Result<Vec<_>>>()?;
                let mut seen = vec![false; rank];
                for &o in &order {
                    if o >= rank || std::mem::replace(&mut seen[o], true) {
                        return Err(Error::invalid(format!(
                            "transpose order {order:?} is not a permutation of 0..{rank}"
                        )));
                    }
                }
                transposes.push(order);
            }
            5 => {
                let inner_shape = r.positive_vec(rank, "inner chunk shape")?;
                // The shard sees the chunk after the transposes before it.
                let shard_shape: Vec<u64> = stored_order(&transposes, rank)
                    .iter()
                    .map(|&d| chunk_shape[d])
                    .collect();
                for (d, (&s, &i)) in shard_shape.iter().zip(&inner_shape).enumerate() {
                    if s % i != 0 {
                        return Err(Error::invalid(format!(
                            "shard shape {shard_shape:?} is not a multiple of inner chunk shape {inner_shape:?} (dimension {d})"
                        )));
                    }
                }
                let location = r.next("index location")?;
                let index_at_start = match location {
                    0 => false,
                    1 => true,
                    other => return Err(Error::invalid(format!("index location code {other}"))),
                };
                let inner = decode_chain(r, &inner_shape)?;
                let index = decode_chain(r, &[1])?;
                let (index_big_endian, index_crc32c) = index_layout(&index)?;
                array_to_bytes = Some(ArrayToBytes::Sharding(Box::new(ShardingSpec {
                    inner_shape,
                    index_at_start,
                    inner,
                    index_big_endian,
                    index_crc32c,
                })));
            }
            other => return Err(Error::invalid(format!("unknown codec id {other}"))),
        }
    }
    let array_to_bytes =
        array_to_bytes.ok_or_else(|| Error::invalid("codec chain has no array-to-bytes codec"))?;
    Ok(CodecChain {
        transposes,
        array_to_bytes,
        bytes_to_bytes,
    })
}

/// Index codecs must have a fixed encoded size: `bytes` with an optional `crc32c`.
fn index_layout(index: &CodecChain) -> Result<(bool, bool)> {
    let big_endian = match index.array_to_bytes {
        ArrayToBytes::Bytes { big_endian } => big_endian,
        ArrayToBytes::Sharding(_) => {
            return Err(Error::invalid("shard index codecs cannot shard"));
        }
    };
    let crc = match index.bytes_to_bytes.as_slice() {
        [] => false,
        [BytesCodec::Crc32c] => true,
        _ => {
            return Err(Error::invalid(
                "shard index codecs other than bytes and crc32c are not supported",
            ))
        }
    };
    if !index.transposes.is_empty() {
        return Err(Error::invalid("transposed shard indexes are not supported"));
    }
    Ok((big_endian, crc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sharded_descriptor() -> Vec<i64> {
        vec![
            1, 3, 6, 0, 47, // header: rank 3 uint16, default keys with '/'
            10, 20, 30, // shape
            8, 8, 8, // shard shape
            1, 5, 4, 4, 4, 0, // sharding: inner 4³, index at end
            2, 1, 0, 2, 3, 0, // inner: bytes LE, zstd 3
            2, 1, 0, 3, // index: bytes LE, crc32c
        ]
    }

    #[test]
    fn decodes_a_sharded_descriptor() {
        let spec = ArraySpec::decode(&sharded_descriptor(), &[0, 0]).unwrap();
        assert_eq!(spec.shape, vec![10, 20, 30]);
        let ArrayToBytes::Sharding(s) = &spec.codecs.array_to_bytes else {
            panic!("expected sharding")
        };
        assert_eq!(s.inner_shape, vec![4, 4, 4]);
        assert!(s.index_crc32c && !s.index_at_start);
        assert_eq!(s.index_size(8), 132);
    }

    #[test]
    fn rejects_truncated_and_trailing_descriptors() {
        let d = sharded_descriptor();
        for cut in 0..d.len() {
            assert!(ArraySpec::decode(&d[..cut], &[0, 0]).is_err(), "cut {cut}");
        }
        let mut long = d.clone();
        long.push(0);
        assert!(ArraySpec::decode(&long, &[0, 0]).is_err());
        assert!(ArraySpec::decode(&d, &[0]).is_err());
    }

    #[test]
    fn key_encodings() {
        assert_eq!(KeyEncoding::Default(b'/').key(&[1, 2]), "c/1/2");
        assert_eq!(KeyEncoding::Default(b'.').key(&[]), "c");
        assert_eq!(KeyEncoding::V2(b'.').key(&[3, 4]), "3.4");
        assert_eq!(KeyEncoding::V2(b'.').key(&[]), "0");
    }

    #[test]
    fn transposed_strides() {
        let chain = CodecChain {
            transposes: vec![vec![2, 0, 1]],
            array_to_bytes: ArrayToBytes::Bytes { big_endian: false },
            bytes_to_bytes: vec![],
        };
        // stored shape is [4, 2, 3]; logical dim 2 is the slowest.
        assert_eq!(chain.logical_strides(&[2, 3, 4]), vec![3, 1, 6]);
    }
}
