//! Reference rows of the tessera benchmark: what the hardware allows without
//! any Zarr logic.
//!
//!     limits serve              line protocol with bench/run.ts (see src/lib.rs)
//!     limits run CASES.json     standalone: check pass + rounds, one JSON document
//!
//! Readers:
//!
//! - `decode-limit`: for each read, every inner chunk the selection touches is
//!   read from its shard file (`pread` of its byte range, from the page cache)
//!   and decompressed — plain `zstd` (the same crate and libzstd as tessera) or
//!   plain c-blosc — into a per-thread buffer that is reused, on all cores with
//!   rayon. Nothing is assembled into an output, no checksum is verified. The
//!   shard indexes (16 bytes per inner chunk + crc32c, at the end of each shard)
//!   are read once when the store is opened, not per read.
//! - `memcpy`: copies as many bytes as the read's output from one large,
//!   touched buffer into another, split over all cores: the memory bandwidth an
//!   assembly pass needs at least. The source offset moves with every read so
//!   small copies do not stay in cache.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::{json, Value};
use tessera_bench_native::{checksum, main_with, out_shape, Check, Reader, Sel};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Codec {
    Zstd,
    Blosc,
}

#[derive(Clone, Copy)]
struct ChunkRef {
    shard: usize,
    offset: u64,
    nbytes: u64,
}

/// One sharded array: its grid and every inner chunk's place in its shard.
struct Volume {
    shape: Vec<u64>,
    chunk: Vec<u64>,
    /// Inner chunks per dimension of the whole array.
    grid: Vec<u64>,
    codec: Codec,
    files: Vec<File>,
    /// By flat C-order inner-chunk index; `None` for missing chunks.
    chunks: Vec<Option<ChunkRef>>,
    decoded_bytes: usize,
    compressed_bytes: u64,
}

fn u64s(v: &Value, what: &str) -> Result<Vec<u64>, String> {
    v.as_array()
        .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| format!("{what}: expected a list of integers, got {v}"))
}

fn flat(index: &[u64], grid: &[u64]) -> u64 {
    index.iter().zip(grid).fold(0, |acc, (&i, &n)| acc * n + i)
}

impl Volume {
    fn open(path: &str) -> Result<Self, String> {
        let meta_path = Path::new(path).join("zarr.json");
        let text = std::fs::read_to_string(&meta_path)
            .map_err(|e| format!("{}: {e}", meta_path.display()))?;
        let meta: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", meta_path.display()))?;
        if meta["data_type"] != "uint16" {
            return Err(format!(
                "{path}: expected uint16, got {}",
                meta["data_type"]
            ));
        }
        let shape = u64s(&meta["shape"], "shape")?;
        let shard = u64s(
            &meta["chunk_grid"]["configuration"]["chunk_shape"],
            "chunk_grid",
        )?;
        let codecs = meta["codecs"].as_array().cloned().unwrap_or_default();
        let [sharding] = codecs.as_slice() else {
            return Err(format!(
                "{path}: expected one sharding_indexed codec, got {}",
                meta["codecs"]
            ));
        };
        let cfg = &sharding["configuration"];
        if sharding["name"] != "sharding_indexed"
            || cfg["index_location"].as_str().unwrap_or("end") != "end"
        {
            return Err(format!(
                "{path}: expected sharding_indexed with the index at the end"
            ));
        }
        let chunk = u64s(&cfg["chunk_shape"], "sharding chunk_shape")?;
        let inner: Vec<&str> = cfg["codecs"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        let codec = match inner.as_slice() {
            ["bytes", "zstd"] => Codec::Zstd,
            ["bytes", "blosc"] => Codec::Blosc,
            other => {
                return Err(format!(
                    "{path}: inner codecs {other:?} are not bytes + zstd or bytes + blosc"
                ))
            }
        };
        let index_codecs: Vec<&str> = cfg["index_codecs"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        if index_codecs != ["bytes", "crc32c"] {
            return Err(format!(
                "{path}: index codecs {index_codecs:?} are not bytes + crc32c"
            ));
        }
        let separator = meta["chunk_key_encoding"]["configuration"]["separator"]
            .as_str()
            .unwrap_or("/")
            .to_string();
        if meta["chunk_key_encoding"]["name"] != "default" {
            return Err(format!(
                "{path}: only the default chunk key encoding is handled"
            ));
        }
        let ndim = shape.len();
        if shard.len() != ndim || chunk.len() != ndim || (0..ndim).any(|d| shard[d] % chunk[d] != 0)
        {
            return Err(format!(
                "{path}: shard {shard:?} is not a multiple of chunk {chunk:?}"
            ));
        }
        let shard_grid: Vec<u64> = (0..ndim).map(|d| shape[d].div_ceil(shard[d])).collect();
        let per_shard: Vec<u64> = (0..ndim).map(|d| shard[d] / chunk[d]).collect();
        let grid: Vec<u64> = (0..ndim).map(|d| shape[d].div_ceil(chunk[d])).collect();
        let n_per_shard: u64 = per_shard.iter().product();
        let n_shards: u64 = shard_grid.iter().product();
        let mut chunks = vec![None; grid.iter().product::<u64>() as usize];
        let mut files = Vec::new();
        let mut compressed_bytes = 0;
        for s in 0..n_shards {
            // Shard index in C order, and its file "c/i/j/k".
            let mut idx = vec![0u64; ndim];
            let mut rest = s;
            for d in (0..ndim).rev() {
                idx[d] = rest % shard_grid[d];
                rest /= shard_grid[d];
            }
            let key: Vec<String> = idx.iter().map(u64::to_string).collect();
            let file_path = Path::new(path).join(format!("c{separator}{}", key.join(&separator)));
            let file = match File::open(&file_path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("{}: {e}", file_path.display())),
            };
            let len = file.metadata().map_err(|e| e.to_string())?.len();
            let index_len = n_per_shard * 16 + 4;
            if len < index_len {
                return Err(format!("{}: shorter than its index", file_path.display()));
            }
            let mut index = vec![0u8; index_len as usize];
            file.read_exact_at(&mut index, len - index_len)
                .map_err(|e| e.to_string())?;
            let file_no = files.len();
            files.push(file);
            for i in 0..n_per_shard {
                let at = (i * 16) as usize;
                let offset = u64::from_le_bytes(index[at..at + 8].try_into().unwrap());
                let nbytes = u64::from_le_bytes(index[at + 8..at + 16].try_into().unwrap());
                if offset == u64::MAX && nbytes == u64::MAX {
                    continue;
                }
                if offset + nbytes > len - index_len {
                    return Err(format!(
                        "{}: chunk {i} lies outside the shard",
                        file_path.display()
                    ));
                }
                // Inner chunk position inside the shard → in the whole array.
                let mut within = vec![0u64; ndim];
                let mut rest = i;
                for d in (0..ndim).rev() {
                    within[d] = rest % per_shard[d];
                    rest /= per_shard[d];
                }
                let global: Vec<u64> = (0..ndim)
                    .map(|d| idx[d] * per_shard[d] + within[d])
                    .collect();
                if (0..ndim).any(|d| global[d] >= grid[d]) {
                    continue;
                }
                chunks[flat(&global, &grid) as usize] = Some(ChunkRef {
                    shard: file_no,
                    offset,
                    nbytes,
                });
                compressed_bytes += nbytes;
            }
        }
        let decoded_bytes = chunk.iter().product::<u64>() as usize * 2;
        Ok(Self {
            shape,
            chunk,
            grid,
            codec,
            files,
            chunks,
            decoded_bytes,
            compressed_bytes,
        })
    }

    /// Flat indexes of the inner chunks a selection touches, in C order.
    fn touched(&self, sel: &Sel) -> Vec<usize> {
        let ndim = self.shape.len();
        let lo: Vec<u64> = (0..ndim).map(|d| sel[d].start / self.chunk[d]).collect();
        let hi: Vec<u64> = (0..ndim)
            .map(|d| sel[d].stop.div_ceil(self.chunk[d]))
            .collect();
        let mut out = Vec::new();
        let mut idx = lo.clone();
        if (0..ndim).any(|d| lo[d] >= hi[d]) {
            return out;
        }
        loop {
            out.push(flat(&idx, &self.grid) as usize);
            let mut d = ndim;
            loop {
                if d == 0 {
                    return out;
                }
                d -= 1;
                idx[d] += 1;
                if idx[d] < hi[d] {
                    break;
                }
                idx[d] = lo[d];
            }
        }
    }
}

thread_local! {
    static COMPRESSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static DECODED: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
    static ZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Reads and decompresses one inner chunk into this thread's buffer; `f` sees the result.
fn decode_chunk<T>(
    vol: &Volume,
    chunk: &ChunkRef,
    f: impl FnOnce(&[u16]) -> T,
) -> Result<T, String> {
    COMPRESSED.with_borrow_mut(|src| {
        DECODED.with_borrow_mut(|dst| {
            src.resize(chunk.nbytes as usize, 0);
            vol.files[chunk.shard]
                .read_exact_at(src, chunk.offset)
                .map_err(|e| format!("read: {e}"))?;
            dst.resize(vol.decoded_bytes / 2, 0);
            // SAFETY: u16 storage viewed as bytes.
            let out = unsafe {
                std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), vol.decoded_bytes)
            };
            let n = match vol.codec {
                Codec::Zstd => ZSTD.with_borrow_mut(|z| {
                    if z.is_none() {
                        *z = Some(
                            zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?,
                        );
                    }
                    z.as_mut()
                        .unwrap()
                        .decompress_to_buffer(src.as_slice(), out)
                        .map_err(|e| format!("zstd: {e}"))
                })?,
                Codec::Blosc => {
                    // SAFETY: c-blosc reads `src` (a whole frame, validated by its header) and
                    // writes at most `out.len()` bytes.
                    let n = unsafe {
                        blosc_src::blosc_decompress_ctx(
                            src.as_ptr().cast(),
                            out.as_mut_ptr().cast(),
                            out.len(),
                            1,
                        )
                    };
                    usize::try_from(n).map_err(|_| format!("blosc: error {n}"))?
                }
            };
            if n != vol.decoded_bytes {
                return Err(format!("decoded {n} bytes, expected {}", vol.decoded_bytes));
            }
            Ok(f(dst))
        })
    })
}

struct DecodeLimit {
    volumes: BTreeMap<String, Volume>,
}

impl Reader for DecodeLimit {
    fn read(
        &mut self,
        store: &str,
        _case: &str,
        _index: usize,
        sel: &Sel,
        check: bool,
    ) -> Result<Check, String> {
        let vol = self
            .volumes
            .get(store)
            .ok_or_else(|| format!("store {store:?} not open"))?;
        if sel.len() != vol.shape.len() {
            return Err(format!(
                "selection has {} dimensions, the array {}",
                sel.len(),
                vol.shape.len()
            ));
        }
        let touched: Vec<ChunkRef> = vol
            .touched(sel)
            .into_iter()
            .filter_map(|i| vol.chunks[i])
            .collect();
        // The selection is exactly a box of whole inner chunks.
        let aligned = sel
            .iter()
            .zip(&vol.chunk)
            .all(|(d, &c)| d.start % c == 0 && d.stop % c == 0);
        let single = touched.len() == 1
            && sel
                .iter()
                .zip(&vol.chunk)
                .all(|(d, &c)| d.start % c == 0 && d.stop - d.start == c);
        if !check {
            touched
                .par_iter()
                .try_for_each(|c| decode_chunk(vol, c, |_| ()))?;
            return Ok(Check::None);
        }
        // Checks: a chunk-aligned box's sum is the sum over its chunks; one
        // aligned chunk decodes to exactly the read's output.
        if single {
            let sums = decode_chunk(vol, &touched[0], checksum)?;
            return Ok(Check::Full {
                shape: out_shape(sel),
                sums,
            });
        }
        let sums: Vec<u64> = touched
            .par_iter()
            .map(|c| decode_chunk(vol, c, |d| d.iter().map(|&v| u64::from(v)).sum::<u64>()))
            .collect::<Result<_, _>>()?;
        Ok(if aligned {
            Check::Sum(sums.iter().sum())
        } else {
            Check::None
        })
    }
}

struct Memcpy {
    src: Vec<u8>,
    dst: Vec<u8>,
    next: usize,
}

impl Memcpy {
    fn new(bytes: usize) -> Self {
        // Both buffers touched (pages mapped) before any timing.
        let src: Vec<u8> = (0..bytes)
            .into_par_iter()
            .map(|i| (i * 31 + 7) as u8)
            .collect();
        let dst = vec![1u8; bytes];
        Self { src, dst, next: 0 }
    }
}

impl Reader for Memcpy {
    fn read(
        &mut self,
        _store: &str,
        _case: &str,
        _index: usize,
        sel: &Sel,
        _check: bool,
    ) -> Result<Check, String> {
        let bytes = usize::try_from(tessera_bench_native::num_elements(sel) * 2)
            .map_err(|e| e.to_string())?;
        if bytes > self.src.len() {
            return Err(format!(
                "memcpy: {bytes} bytes is more than the buffer ({})",
                self.src.len()
            ));
        }
        let start = if self.next + bytes > self.src.len() {
            0
        } else {
            self.next
        };
        self.next = start + bytes;
        let piece = bytes.div_ceil(rayon::current_num_threads()).max(1 << 16);
        let (src, dst) = (
            &self.src[start..start + bytes],
            &mut self.dst[start..start + bytes],
        );
        dst.par_chunks_mut(piece)
            .zip(src.par_chunks(piece))
            .for_each(|(d, s)| d.copy_from_slice(s));
        std::hint::black_box(&self.dst);
        Ok(Check::None)
    }
}

fn main() {
    std::process::exit(main_with(|setup| {
        let wanted = setup
            .readers
            .clone()
            .unwrap_or_else(|| vec!["decode-limit".into(), "memcpy".into()]);
        let mut readers: BTreeMap<String, Box<dyn Reader>> = BTreeMap::new();
        let mut open_ms = serde_json::Map::new();
        let mut stores = serde_json::Map::new();
        let mut largest = 0u64;
        for sels in setup.cases.values() {
            for sel in sels {
                largest = largest.max(tessera_bench_native::num_elements(sel) * 2);
            }
        }
        for name in wanted {
            let started = Instant::now();
            match name.as_str() {
                "decode-limit" => {
                    let mut volumes = BTreeMap::new();
                    for (store, path) in &setup.stores {
                        let vol = Volume::open(path)?;
                        stores.insert(
                            store.clone(),
                            json!({
                                "decoder": format!("{:?}", vol.codec).to_lowercase(),
                                "inner_chunks": vol.chunks.iter().flatten().count(),
                                "compressed_bytes": vol.compressed_bytes,
                                "decoded_bytes_per_chunk": vol.decoded_bytes,
                            }),
                        );
                        volumes.insert(store.clone(), vol);
                    }
                    readers.insert(name.clone(), Box::new(DecodeLimit { volumes }));
                }
                "memcpy" => {
                    // Room for a few reads at moving offsets, at least 1 GiB.
                    let bytes = usize::try_from(largest.max(1 << 30)).map_err(|e| e.to_string())?;
                    readers.insert(name.clone(), Box::new(Memcpy::new(bytes)));
                }
                other => return Err(format!("unknown reader {other:?} (decode-limit, memcpy)")),
            }
            open_ms.insert(name, json!(started.elapsed().as_secs_f64() * 1000.0));
        }
        let threads = rayon::current_num_threads();
        let info = json!({
            "threads": threads,
            "zstd": zstd::zstd_safe::version_string(),
            "blosc": unsafe { std::ffi::CStr::from_ptr(blosc_src::blosc_get_version_string()) }.to_string_lossy(),
            "how": {
                "decode-limit": format!(
                    "per read: pread + decompress every inner chunk the selection touches into a reused \
                     per-thread buffer (zstd crate / c-blosc, 1 internal thread), rayon on {threads} threads; \
                     shard indexes read once at open; no assembly"
                ),
                "memcpy": format!("copy of the output's size between two touched buffers, split over {threads} threads"),
            },
            "stores": stores,
            "open_ms": open_ms,
        });
        Ok((readers, info))
    }));
}
