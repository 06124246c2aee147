//! The device batch plan: everything a CUDA batch needs, as plain data
//! built on the host, so that the device executor (`crate::device_exec`)
//! only allocates, copies and launches.
//!
//! A batch runs in these steps:
//! 1. **Reads** ([`ReadPlan`]): the compressed bytes of every chunk the batch
//!    needs are read into one pinned host buffer, adjacent byte ranges of a
//!    shard merged into one read.
//! 2. **Layout** ([`DecodePlan`]): each chunk is routed — raw Zarr zstd and
//!    blosc-zstd chunks to nvCOMP (blosc framing parsed here, see
//!    [`crate::blosc_plan`]), uncompressed bytes to a device copy, anything
//!    else (other codecs, bitshuffle, big-endian, frames that fail the host
//!    check, or every zstd chunk when nvCOMP is absent) to the CPU decoder,
//!    which writes into the pinned buffer. The plan lays out one device
//!    arena: `[reads | CPU-decoded | metadata]`, uploaded in one copy from
//!    the pinned buffer, then device-only `[repacked zstd inputs | decoded
//!    chunks | nvCOMP sizes and statuses]`.
//! 3. **Device**: one launch of the span-copy kernel (stored bytes to their
//!    decoded place, misaligned zstd inputs to aligned slots), one batched
//!    nvCOMP zstd call, one launch of the assembly kernel (unshuffle,
//!    scatter, cast, fill).
//!
//! [`DecodePlan::run_on_host`] runs steps 2–3 on the host with the CPU zstd
//! decoder and the kernel's arithmetic; the tests hold it to the CPU
//! executor bit for bit.

use crate::blosc_plan::{self, Piece};
use crate::codec::{self, Elements};
use crate::device_plan::{CopyBox, DevicePlan, SourceLayout};
use crate::error::{Error, Result};
use crate::nvcomp::validate_zstd_frame;
use crate::read::{merge_ranges, Array, MERGE_GAP};
use crate::spec::{ArrayToBytes, BytesCodec, CodecChain};
use crate::storage::Object;
use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;
use std::collections::HashMap;

/// Alignment of every region and chunk in the arena (nvCOMP asks for 8).
pub const ALIGN: u64 = 16;

fn align(v: u64, to: u64) -> u64 {
    v.next_multiple_of(to)
}

/// One read of a stored object into the pinned buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedRead {
    /// Index of the array in the batch's array list.
    pub array: usize,
    /// Store key of the object.
    pub key: String,
    /// First byte read.
    pub offset: u64,
    /// Bytes read.
    pub len: u64,
    /// Where they go in the pinned buffer.
    pub at: u64,
}

/// The reads of a batch and where each source's bytes land.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    /// Reads, adjacent ranges of one object merged.
    pub reads: Vec<MergedRead>,
    /// Per source of the [`DevicePlan`]: `(at, len)` of its stored bytes in the pinned buffer.
    pub sources: Vec<(u64, u64)>,
    /// Bytes of the read region.
    pub len: u64,
}

/// Plans the reads of `plan`'s sources, whose stored byte ranges are
/// `ranges` (`(offset, len)` in their object, one per source).
pub fn plan_reads(plan: &DevicePlan, ranges: &[(u64, u64)]) -> ReadPlan {
    let mut order: Vec<usize> = (0..plan.sources.len()).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (&plan.sources[a], &plan.sources[b]);
        (sa.array, &sa.key, ranges[a].0).cmp(&(sb.array, &sb.key, ranges[b].0))
    });
    let mut reads = Vec::new();
    let mut sources = vec![(0, 0); ranges.len()];
    let mut at = 0u64;
    let mut i = 0;
    while i < order.len() {
        let first = &plan.sources[order[i]];
        let same = order[i..]
            .iter()
            .take_while(|&&j| {
                plan.sources[j].array == first.array && plan.sources[j].key == first.key
            })
            .count();
        let group = &order[i..i + same];
        let mut next = 0;
        for (start, end, count) in merge_ranges(group.iter().map(|&j| ranges[j]), MERGE_GAP) {
            for &j in &group[next..next + count] {
                sources[j] = (at + ranges[j].0 - start, ranges[j].1);
            }
            next += count;
            reads.push(MergedRead {
                array: first.array,
                key: first.key.clone(),
                offset: start,
                len: end - start,
                at,
            });
            at = align(at + end - start, ALIGN);
        }
        i += same;
    }
    ReadPlan {
        reads,
        sources,
        len: at,
    }
}

/// The stored objects a batch reads, each opened once, by `(array, key)`.
pub type Objects = HashMap<(usize, String), Object>;

/// Opens every object `plan`'s sources read, and returns them with each
/// source's stored byte range (`(offset, len)` in its object).
pub fn open_sources(arrays: &[&Array], plan: &DevicePlan) -> Result<(Objects, Vec<(u64, u64)>)> {
    let mut objects = Objects::new();
    let mut ranges = Vec::with_capacity(plan.sources.len());
    for s in &plan.sources {
        let id = (s.array, s.key.clone());
        if !objects.contains_key(&id) {
            let store = &arrays[s.array].store;
            let object = store
                .open(&s.key)
                .and_then(|o| {
                    o.ok_or_else(|| Error::storage("was removed while the batch was planned"))
                })
                .map_err(|e| e.context(store.describe(&s.key)))?;
            objects.insert(id.clone(), object);
        }
        ranges.push(s.range.unwrap_or((0, objects[&id].len())));
    }
    Ok((objects, ranges))
}

/// Runs the merged reads of `reads` into `buf` (at least `reads.len`
/// bytes), in parallel on the current rayon pool.
pub fn read_all(
    arrays: &[&Array],
    objects: &Objects,
    reads: &ReadPlan,
    buf: &mut [u8],
) -> Result<()> {
    let mut targets: Vec<(&MergedRead, &mut [u8])> = Vec::with_capacity(reads.reads.len());
    let mut rest = &mut buf[..reads.len as usize];
    let mut consumed = 0u64;
    for read in &reads.reads {
        let (_, tail) = rest.split_at_mut((read.at - consumed) as usize);
        let (target, tail) = tail.split_at_mut(read.len as usize);
        targets.push((read, target));
        rest = tail;
        consumed = read.at + read.len;
    }
    targets.into_par_iter().try_for_each(|(read, target)| {
        objects[&(read.array, read.key.clone())]
            .read_into(read.offset, read.len, target)
            .map_err(|e| e.context(arrays[read.array].store.describe(&read.key)))
    })
}

/// A device copy of `len` bytes within the arena (`Span` in the kernel).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Span {
    /// Source offset in the arena.
    pub src: u64,
    /// Destination offset in the arena.
    pub dst: u64,
    /// Bytes.
    pub len: u64,
}

/// One zstd frame for nvCOMP: arena offsets of its input and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZstdStream {
    /// Input offset (aligned to the input alignment).
    pub src: u64,
    /// Input bytes.
    pub src_len: u64,
    /// Output offset.
    pub dst: u64,
    /// Output bytes.
    pub dst_len: u64,
}

/// How the device path decodes a chunk of one codec chain, before its bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stored,
    Zstd,
    Blosc,
    Cpu,
}

fn kind(chain: &CodecChain, size: usize) -> Kind {
    match &chain.array_to_bytes {
        ArrayToBytes::Bytes { big_endian } if !*big_endian || size == 1 => {
            match chain.bytes_to_bytes.as_slice() {
                [] => Kind::Stored,
                [BytesCodec::Zstd { .. }] => Kind::Zstd,
                [BytesCodec::Blosc] => Kind::Blosc,
                _ => Kind::Cpu,
            }
        }
        _ => Kind::Cpu,
    }
}

/// The codec chain and shape a source's stored bytes decode with.
fn chain_of(array: &Array, sharded_inner: bool) -> (&CodecChain, &[u64]) {
    match (&array.spec.codecs.array_to_bytes, sharded_inner) {
        (ArrayToBytes::Sharding(s), true) => (&s.inner, &s.inner_shape),
        _ => (&array.spec.codecs, &array.spec.chunk_shape),
    }
}

/// Settings of the decode plan.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Whether zstd frames go to nvCOMP (else they are decoded on the CPU).
    pub device_zstd: bool,
    /// Input alignment nvCOMP asks for (a power of two).
    pub input_align: u64,
    /// Output alignment nvCOMP asks for (a power of two, at most [`ALIGN`]).
    pub output_align: u64,
}

/// Where each part of a batch lives in the device arena, and the work to
/// do there. Offsets are relative to the arena's start.
#[derive(Debug, Clone)]
pub struct DecodePlan {
    /// Per source: where its decoded chunk lies, and its blosc shuffle.
    pub layouts: Vec<SourceLayout>,
    /// Sources the CPU decodes, and where in the pinned buffer (= arena) they go.
    pub cpu: Vec<(usize, u64)>,
    /// Device copies, run before the zstd decode.
    pub spans: Vec<Span>,
    /// Frames for nvCOMP.
    pub streams: Vec<ZstdStream>,
    /// Boxes of the assembly launch.
    pub boxes: Vec<CopyBox>,
    /// Bytes of the arena that come from the pinned buffer (one copy).
    pub upload_len: u64,
    /// Offsets of the metadata tables (all inside the uploaded part).
    pub meta: Meta,
    /// Offset of nvCOMP's per-frame decoded sizes (`u64`) and then statuses (`i32`).
    pub results_at: u64,
    /// Bytes of the arena, not counting nvCOMP's temporary space.
    pub arena_len: u64,
}

/// Arena offsets of the tables the host writes and the device reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    /// Where the metadata starts.
    pub at: u64,
    /// `SourceLayout` per source.
    pub layouts: u64,
    /// `CopyBox` per box.
    pub boxes: u64,
    /// `Span` per span.
    pub spans: u64,
    /// nvCOMP input pointers (`u64` per frame).
    pub in_ptrs: u64,
    /// nvCOMP input sizes.
    pub in_sizes: u64,
    /// nvCOMP output capacities.
    pub out_sizes: u64,
    /// nvCOMP output pointers.
    pub out_ptrs: u64,
}

/// Pieces of one source decoded on the device, with its blosc shuffle.
struct DevicePieces {
    pieces: Vec<Piece>,
    typesize: u32,
    blocksize: u32,
}

/// The device pieces of source bytes `raw` of chain kind `kind` that
/// decode to `len` bytes; `None` routes the source to the CPU.
fn device_pieces(
    kind: Kind,
    raw: &[u8],
    len: usize,
    options: DecodeOptions,
) -> Option<DevicePieces> {
    let device_zstd = options.device_zstd;
    let whole = |zstd| Piece {
        src: 0,
        src_len: raw.len(),
        dst: 0,
        dst_len: len,
        zstd,
    };
    let plain = |pieces| DevicePieces {
        pieces,
        typesize: 0,
        blocksize: 0,
    };
    match kind {
        Kind::Stored if raw.len() == len => Some(plain(vec![whole(false)])),
        Kind::Zstd if device_zstd && validate_zstd_frame(raw, len).is_ok() => {
            Some(plain(vec![whole(true)]))
        }
        Kind::Blosc => blosc_plan::plan_frame(raw, len)
            .filter(|f| {
                f.pieces.iter().all(|p| {
                    !p.zstd || (device_zstd && (p.dst as u64).is_multiple_of(options.output_align))
                })
            })
            .map(|f| DevicePieces {
                pieces: f.pieces,
                typesize: f.typesize,
                blocksize: f.blocksize,
            }),
        _ => None,
    }
}

impl DecodePlan {
    /// Lays out the batch of `plan`, whose stored bytes `reads` put in
    /// `pinned` (at least `reads.len` bytes).
    pub fn build(
        arrays: &[&Array],
        plan: &DevicePlan,
        reads: &ReadPlan,
        pinned: &[u8],
        options: DecodeOptions,
    ) -> Self {
        let n = plan.sources.len();
        let mut routes = Vec::with_capacity(n);
        let mut at = reads.len;
        let mut cpu = Vec::new();
        for (i, source) in plan.sources.iter().enumerate() {
            let array = arrays[source.array];
            let (chain, shape) = chain_of(array, source.range.is_some());
            let len = codec::element_count(shape) * array.spec.dtype.size();
            let (start, stored) = reads.sources[i];
            let raw = &pinned[start as usize..(start + stored) as usize];
            let kind = kind(chain, array.spec.dtype.size());
            let pieces = device_pieces(kind, raw, len, options);
            if pieces.is_none() {
                cpu.push((i, at));
                at = align(at + len as u64, ALIGN);
            }
            routes.push((len as u64, pieces));
        }
        let boxes = plan.boxes();
        let mut spans = Vec::new();
        let mut frames = Vec::new();
        for (i, (_, pieces)) in routes.iter().enumerate() {
            for p in pieces.iter().flat_map(|d| &d.pieces) {
                let src = reads.sources[i].0 + p.src as u64;
                if p.zstd {
                    frames.push((i, src, p));
                } else {
                    spans.push(Span {
                        src,
                        dst: 0, // set once the decoded chunks are laid out
                        len: p.src_len as u64,
                    });
                }
            }
        }
        // Repacked frames get a span each; count them before laying out.
        let misaligned = frames
            .iter()
            .filter(|(_, src, _)| src % options.input_align != 0)
            .count();
        let nframes = frames.len() as u64;
        let mut meta = Meta {
            at,
            ..Meta::default()
        };
        let mut table = |bytes: u64| {
            let start = at;
            at = align(at + bytes, ALIGN);
            start
        };
        meta.layouts = table(n as u64 * size_of::<SourceLayout>() as u64);
        meta.boxes = table(boxes.len() as u64 * size_of::<CopyBox>() as u64);
        meta.spans = table((spans.len() + misaligned) as u64 * size_of::<Span>() as u64);
        meta.in_ptrs = table(nframes * 8);
        meta.in_sizes = table(nframes * 8);
        meta.out_sizes = table(nframes * 8);
        meta.out_ptrs = table(nframes * 8);
        let upload_len = at;
        // Device-only: repacked inputs, decoded chunks, results.
        let mut streams = Vec::with_capacity(frames.len());
        let mut repacks = Vec::new();
        for &(i, src, p) in &frames {
            let src = if src % options.input_align == 0 {
                src
            } else {
                let slot = align(at, options.input_align.max(ALIGN));
                at = slot + p.src_len as u64;
                repacks.push(Span {
                    src,
                    dst: slot,
                    len: p.src_len as u64,
                });
                slot
            };
            streams.push((i, src, p));
        }
        at = align(at, ALIGN);
        let mut layouts = vec![SourceLayout::default(); n];
        for &(i, offset) in &cpu {
            layouts[i] = SourceLayout {
                offset,
                len: routes[i].0,
                typesize: 0,
                blocksize: 0,
            };
        }
        for (i, (len, pieces)) in routes.iter().enumerate() {
            if let Some(d) = pieces {
                layouts[i] = SourceLayout {
                    offset: at,
                    len: *len,
                    typesize: d.typesize,
                    blocksize: d.blocksize,
                };
                at = align(at + len, ALIGN);
            }
        }
        // Stored pieces land in their chunk's decoded place.
        let mut span_at = 0;
        for (i, (_, pieces)) in routes.iter().enumerate() {
            for p in pieces.iter().flat_map(|d| &d.pieces).filter(|p| !p.zstd) {
                spans[span_at].dst = layouts[i].offset + p.dst as u64;
                span_at += 1;
            }
        }
        spans.extend(repacks);
        let streams = streams
            .into_iter()
            .map(|(i, src, p)| ZstdStream {
                src,
                src_len: p.src_len as u64,
                dst: layouts[i].offset + p.dst as u64,
                dst_len: p.dst_len as u64,
            })
            .collect::<Vec<_>>();
        let results_at = at;
        at = align(at + nframes * 12, ALIGN);
        Self {
            layouts,
            cpu,
            spans,
            streams,
            boxes,
            upload_len,
            meta,
            results_at,
            arena_len: at,
        }
    }

    /// Writes the metadata tables into `upload` (the uploaded part of the
    /// arena, `upload_len` bytes) for an arena at device address `base`.
    pub fn write_meta(&self, upload: &mut [u8], base: u64) {
        let m = &self.meta;
        let mut put = |at: u64, bytes: &[u8]| {
            upload[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        };
        put(m.layouts, bytemuck::cast_slice(&self.layouts));
        put(m.boxes, bytemuck::cast_slice(&self.boxes));
        put(m.spans, bytemuck::cast_slice(&self.spans));
        let column =
            |f: &dyn Fn(&ZstdStream) -> u64| -> Vec<u64> { self.streams.iter().map(f).collect() };
        put(m.in_ptrs, bytemuck::cast_slice(&column(&|s| base + s.src)));
        put(m.in_sizes, bytemuck::cast_slice(&column(&|s| s.src_len)));
        put(m.out_sizes, bytemuck::cast_slice(&column(&|s| s.dst_len)));
        put(m.out_ptrs, bytemuck::cast_slice(&column(&|s| base + s.dst)));
    }

    /// Largest decoded size of one frame, and the sum (for nvCOMP's temporary space).
    pub fn stream_sizes(&self) -> (u64, u64) {
        self.streams.iter().fold((0, 0), |(max, sum), s| {
            (max.max(s.dst_len), sum + s.dst_len)
        })
    }

    /// Decodes the CPU-routed sources into `pinned` (the uploaded part of
    /// the arena), from their stored bytes read there, in parallel on the
    /// current rayon pool.
    pub fn decode_on_cpu(
        &self,
        arrays: &[&Array],
        plan: &DevicePlan,
        reads: &ReadPlan,
        pinned: &mut [u8],
    ) -> Result<()> {
        // The CPU-decoded chunks lie after the reads, in order, disjoint.
        let (raw, mut rest) = pinned.split_at_mut(reads.len as usize);
        let mut jobs = Vec::with_capacity(self.cpu.len());
        let mut consumed = reads.len;
        for &(i, at) in &self.cpu {
            let len = self.layouts[i].len;
            let (_, tail) = rest.split_at_mut((at - consumed) as usize);
            let (out, tail) = tail.split_at_mut(len as usize);
            jobs.push((i, out));
            rest = tail;
            consumed = at + len;
        }
        let raw = &*raw;
        jobs.into_par_iter().try_for_each(|(i, out)| {
            let source = &plan.sources[i];
            let array = arrays[source.array];
            let (chain, shape) = chain_of(array, source.range.is_some());
            let (start, stored) = reads.sources[i];
            let elements = Elements {
                dtype: array.spec.dtype,
                fill: &array.spec.fill,
            };
            let raw = &raw[start as usize..(start + stored) as usize];
            codec::decode_chunk(chain, shape, raw, elements, out).map_err(|e| {
                let e = match source.range {
                    Some((offset, _)) => e.context(format!("inner chunk at byte {offset}")),
                    None => e,
                };
                e.context(array.store.describe(&source.key))
            })
        })
    }
}

/// Checks nvCOMP's per-frame results: every frame decoded without error to its full size.
pub fn check_results(plan: &DecodePlan, sizes: &[u64], statuses: &[i32]) -> Result<()> {
    for (k, s) in plan.streams.iter().enumerate() {
        if statuses[k] != 0 || sizes[k] != s.dst_len {
            return Err(Error::decode(format!(
                "nvCOMP zstd: frame {k} of the batch ({} bytes) decoded to {} bytes with status {}",
                s.src_len, sizes[k], statuses[k]
            )));
        }
    }
    Ok(())
}

/// Runs a plan on the host the way the device runs it, from the uploaded
/// bytes: the tables are read back from the metadata written for an arena
/// at address 0, spans are copied, frames decoded with the CPU zstd
/// decoder, and the assembly kernel's arithmetic fills the batch.
#[cfg(test)]
pub fn run_on_host(plan: &DecodePlan, upload: &[u8], out_dtype: crate::dtype::DType) -> Vec<u8> {
    fn table<T: Pod>(arena: &[u8], at: u64, n: usize) -> Vec<T> {
        let bytes = &arena[at as usize..at as usize + n * size_of::<T>()];
        let mut out = vec![T::zeroed(); n];
        bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(bytes);
        out
    }
    let mut arena = vec![0u8; plan.arena_len as usize];
    arena[..upload.len()].copy_from_slice(upload);
    let m = plan.meta;
    let n = plan.streams.len();
    let spans: Vec<Span> = table(&arena, m.spans, plan.spans.len());
    let (ins, in_sizes): (Vec<u64>, Vec<u64>) =
        (table(&arena, m.in_ptrs, n), table(&arena, m.in_sizes, n));
    let (outs, out_sizes): (Vec<u64>, Vec<u64>) =
        (table(&arena, m.out_ptrs, n), table(&arena, m.out_sizes, n));
    for s in &spans {
        arena.copy_within(s.src as usize..(s.src + s.len) as usize, s.dst as usize);
    }
    for k in 0..n {
        let input = arena[ins[k] as usize..(ins[k] + in_sizes[k]) as usize].to_vec();
        let out = &mut arena[outs[k] as usize..(outs[k] + out_sizes[k]) as usize];
        assert_eq!(
            zstd::bulk::decompress_to_buffer(&input, out).unwrap(),
            out.len()
        );
    }
    let layouts: Vec<SourceLayout> = table(&arena, m.layouts, plan.layouts.len());
    let boxes: Vec<CopyBox> = table(&arena, m.boxes, plan.boxes.len());
    let elements = crate::device_plan::total(&boxes) as usize;
    let bf16 = out_dtype == crate::dtype::DType::BFloat16;
    let mut batch = vec![0xa5u8; elements * out_dtype.size()];
    crate::device_plan::host::launch(&arena, &layouts, &boxes, &mut batch, bf16);
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{device_plan, Executor};
    use crate::dtype::DType;
    use crate::spec::{ArraySpec, KeyEncoding, ShardingSpec};
    use crate::store::FsStore;

    const SHAPE: [u64; 3] = [20, 18, 14];

    /// How a test store's chunks are compressed.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Codec {
        Zstd,
        /// Blosc with zstd (4) or lz4 (1) inside, byte-shuffled or not.
        Blosc {
            codec: u8,
            shuffle: bool,
        },
        Gzip,
    }

    /// A Blosc1 frame of `data` laid out the way c-blosc writes it
    /// (split streams, stored streams where compression does not pay, a
    /// memcpyed frame where the whole frame would grow).
    fn blosc_frame(data: &[u8], typesize: usize, shuffle: bool, codec: u8) -> Vec<u8> {
        let compress = |stream: &[u8]| {
            Some(if codec == 4 {
                zstd::bulk::compress(stream, 1).unwrap()
            } else {
                lz4_flex::block::compress(stream)
            })
        };
        let filter = if shuffle {
            crate::blosc::FLAG_SHUFFLE
        } else {
            0
        };
        let blocksize = 1024.min(data.len());
        let mut frame = crate::blosc::tests::write_frame(
            data, typesize, blocksize, filter, false, codec, &compress,
        );
        if frame.len() > data.len() + 16 {
            frame.truncate(16);
            frame[2] |= 0x02;
            frame.extend_from_slice(data);
            let cbytes = frame.len() as u32;
            frame[12..16].copy_from_slice(&cbytes.to_le_bytes());
        }
        frame
    }

    fn chain(codecs: Vec<BytesCodec>) -> CodecChain {
        CodecChain {
            transposes: vec![],
            array_to_bytes: ArrayToBytes::Bytes { big_endian: false },
            bytes_to_bytes: codecs,
        }
    }

    /// Values that exercise the casts: smooth (compressible) in the first
    /// half, random bits with special values in the second.
    fn values(dtype: DType, seed: u64) -> Vec<u8> {
        let size = dtype.size();
        let n = SHAPE.iter().product::<u64>() as usize;
        let mut state = seed | 1;
        let specials: [u32; 7] = [
            0,
            u32::MAX,
            0x7f80_0000,
            0x7c00,
            0x0001,
            0x8000_0001,
            0x40bf_ffc0,
        ];
        let mut data = vec![0u8; n * size];
        for i in 0..n {
            let v: u32 = if i < n / 2 {
                (i / 9) as u32 * 0x0101_0101
            } else if i % 5 == 0 {
                specials[(i / 5) % specials.len()]
            } else {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 16) as u32
            };
            data[i * size..(i + 1) * size].copy_from_slice(&v.to_le_bytes()[..size]);
        }
        // The first (inner) chunk holds only the fill value: not stored.
        let fill = [0x42u8, 0x40, 0x40, 0x40];
        for z in 0..5 {
            for y in 0..9 {
                for x in 0..7 {
                    let at = ((z * 18 + y) * 14 + x) * size;
                    data[at..at + size].copy_from_slice(&fill[..size]);
                }
            }
        }
        data
    }

    /// A `SHAPE` array of `dtype` compressed with `codec`, sharded (shards
    /// of [10, 18, 14], inner chunks of [5, 9, 7]) or in plain chunks of
    /// [8, 9, 7] (transposed for zstd).
    fn store(dir: &std::path::Path, dtype: DType, codec: Codec, sharded: bool, seed: u64) -> Array {
        let (inner, transposes) = match codec {
            Codec::Zstd => (
                vec![BytesCodec::Zstd {
                    level: 1,
                    checksum: false,
                }],
                if sharded { vec![] } else { vec![vec![2, 0, 1]] },
            ),
            Codec::Gzip => (vec![BytesCodec::Gzip { level: 1 }], vec![]),
            // Written uncompressed, then each chunk re-encoded below.
            Codec::Blosc { .. } => (vec![], vec![]),
        };
        let sharding = |inner: CodecChain| ShardingSpec {
            inner_shape: vec![5, 9, 7],
            index_at_start: false,
            inner,
            index_big_endian: false,
            index_crc32c: true,
        };
        let codecs = |inner: Vec<BytesCodec>| {
            if sharded {
                CodecChain {
                    transposes: vec![],
                    array_to_bytes: ArrayToBytes::Sharding(Box::new(sharding(chain(inner)))),
                    bytes_to_bytes: vec![],
                }
            } else {
                CodecChain {
                    transposes: transposes.clone(),
                    ..chain(inner)
                }
            }
        };
        let mut array = Array {
            store: FsStore::new(dir).into(),
            spec: ArraySpec {
                dtype,
                shape: SHAPE.to_vec(),
                chunk_shape: if sharded {
                    vec![10, 18, 14]
                } else {
                    vec![8, 9, 7]
                },
                fill: [0x42u8, 0x40, 0x40, 0x40][..dtype.size()].to_vec(),
                keys: KeyEncoding::Default(b'/'),
                codecs: codecs(inner),
            },
        };
        let progress = crate::progress::Progress::default();
        let data = values(dtype, seed);
        crate::write::write_region(&array, &data, &[0, 0, 0], &SHAPE, &progress).unwrap();
        let Codec::Blosc { codec, shuffle } = codec else {
            return array;
        };
        let encode = |raw: &[u8]| blosc_frame(raw, dtype.size(), shuffle, codec);
        let grid: Vec<u64> = SHAPE
            .iter()
            .zip(&array.spec.chunk_shape)
            .map(|(s, c)| s.div_ceil(*c))
            .collect();
        for z in 0..grid[0] {
            for y in 0..grid[1] {
                for x in 0..grid[2] {
                    let key = array.spec.keys.key(&[z, y, x]);
                    let Some(object) = array.store.open(&key).unwrap() else {
                        continue;
                    };
                    let bytes = object.read_all().unwrap();
                    let rewritten = if sharded {
                        let s = sharding(chain(vec![]));
                        let n = 2 * 2 * 2;
                        let (start, len) =
                            crate::shard::index_range(&s, n, bytes.len() as u64).unwrap();
                        let index = crate::shard::decode_index(
                            &s,
                            &bytes[start as usize..(start + len) as usize],
                            bytes.len() as u64,
                        )
                        .unwrap();
                        let mut out = Vec::new();
                        let entries: Vec<_> = index
                            .iter()
                            .map(|e| {
                                e.map(|(o, l)| {
                                    let frame = encode(&bytes[o as usize..(o + l) as usize]);
                                    let at = out.len() as u64;
                                    out.extend_from_slice(&frame);
                                    (at, frame.len() as u64)
                                })
                            })
                            .collect();
                        out.extend_from_slice(&crate::shard::encode_index(&s, &entries));
                        out
                    } else {
                        encode(&bytes)
                    };
                    array.store.write(&key, &rewritten).unwrap();
                }
            }
        }
        array.spec.codecs = codecs(vec![BytesCodec::Blosc]);
        array
    }

    /// Runs the host side of the device path and then the plan on the
    /// host; returns the batch, the read plan and the decode plan.
    fn host_batch(
        arrays: &[&Array],
        words: &[i64],
        options: DecodeOptions,
    ) -> (Vec<u8>, ReadPlan, DecodePlan) {
        let plan = device_plan(arrays, words).unwrap();
        let (objects, ranges) = open_sources(arrays, &plan).unwrap();
        let reads = plan_reads(&plan, &ranges);
        let mut pinned = vec![0u8; reads.len as usize];
        read_all(arrays, &objects, &reads, &mut pinned).unwrap();
        let decode = DecodePlan::build(arrays, &plan, &reads, &pinned, options);
        pinned.resize(decode.upload_len as usize, 0);
        decode
            .decode_on_cpu(arrays, &plan, &reads, &mut pinned)
            .unwrap();
        decode.write_meta(&mut pinned, 0);
        assert_eq!(decode.boxes.len(), plan.fills.len() + plan.copies.len());
        (run_on_host(&decode, &pinned, plan.out_dtype), reads, decode)
    }

    /// Samples of [7, 11] crossing chunk, shard and array edges, one
    /// wholly outside, over two arrays: `(array, [(start, count, keep); 3])`.
    /// A sample: array index, then (start, count, keep) per dimension.
    type SampleBox = (i64, [(i64, i64, i64); 3]);

    const SAMPLES: [SampleBox; 6] = [
        (0, [(3, 1, 0), (-2, 7, 1), (4, 11, 1)]),
        (0, [(15, 7, 1), (9, 1, 0), (-3, 11, 1)]),
        (1, [(7, 7, 1), (12, 1, 0), (1, 11, 1)]),
        (1, [(0, 1, 0), (0, 7, 1), (0, 11, 1)]),
        (0, [(30, 1, 0), (0, 7, 1), (0, 11, 1)]),
        (1, [(19, 1, 0), (13, 7, 1), (5, 11, 1)]),
    ];

    fn words(out: DType) -> Vec<i64> {
        let mut words = vec![out as i64, SAMPLES.len() as i64, 2, 7, 11];
        for (a, dims) in &SAMPLES {
            words.extend([*a, 3]);
            for (start, count, keep) in dims {
                words.extend([*start, *count, *keep]);
            }
        }
        words
    }

    const DTYPES: [DType; 8] = [
        DType::UInt8,
        DType::Int8,
        DType::UInt16,
        DType::Int16,
        DType::UInt32,
        DType::Int32,
        DType::Float16,
        DType::Float32,
    ];

    const NVCOMP: DecodeOptions = DecodeOptions {
        device_zstd: true,
        input_align: 1,
        output_align: 1,
    };

    /// Calls `f(arrays, words, cpu batch)` for batches of every source dtype
    /// and both outputs over two stores of `codec` (one sharded, one plain).
    fn for_each_batch(tag: &str, codec: Codec, mut f: impl FnMut(&[&Array], &[i64], &[u8])) {
        let base =
            std::env::temp_dir().join(format!("tessera-dbatch-{tag}-{}", std::process::id()));
        let exec = Executor::new(2).unwrap();
        for (d, &dtype) in DTYPES.iter().enumerate() {
            let sharded = store(
                &base.join(format!("{d}-s")),
                dtype,
                codec,
                true,
                d as u64 + 1,
            );
            let plain = store(
                &base.join(format!("{d}-p")),
                dtype,
                codec,
                false,
                d as u64 + 50,
            );
            let arrays = [&sharded, &plain];
            for out in [DType::Float32, DType::BFloat16] {
                let words = words(out);
                let cpu = exec.assemble(&arrays, &words).unwrap();
                // SAFETY: a live host batch of `len` bytes.
                let cpu = unsafe { std::slice::from_raw_parts(cpu.as_ptr(), cpu.len()) };
                f(&arrays, &words, cpu);
            }
        }
        let _ = std::fs::remove_dir_all(base);
    }

    /// Checks, for every source dtype and both outputs, that the device
    /// path run on the host equals the CPU executor bit for bit for stores
    /// of `codec`, and returns the plans for the caller's checks on routing.
    fn check(tag: &str, codec: Codec, options: DecodeOptions) -> Vec<(ReadPlan, DecodePlan)> {
        let mut plans = Vec::new();
        for_each_batch(tag, codec, |arrays, words, cpu| {
            let (batch, reads, decode) = host_batch(arrays, words, options);
            assert!(
                batch == cpu,
                "{tag}: {words:?} differs from the CPU executor"
            );
            plans.push((reads, decode));
        });
        plans
    }

    /// On a GPU: batches the device assembler makes (nvCOMP on, where the
    /// library is found, and off) equal the CPU executor's for raw zstd,
    /// blosc-zstd (shuffled or not) and CPU-decoded codecs. Run by `deno
    /// task test:gpu`.
    #[test]
    #[ignore = "needs a CUDA device (deno task test:gpu)"]
    fn gpu_device_batches_equal_the_cpu_executor() {
        let exec = Executor::new(2).unwrap();
        let nvcomp_path = std::env::var_os("TESSERA_NVCOMP")
            .map(std::path::PathBuf::from)
            .or_else(|| crate::nvcomp::find_in_venv(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv")))
            .expect("no libnvcomp.so.5 (install nvidia-libnvcomp-cu13 into .venv or set TESSERA_NVCOMP)");
        for with_nvcomp in [true, false] {
            let device = crate::cuda::CudaDevice::open(0).unwrap();
            let arch = device.arch().unwrap();
            let cubin = crate::nvrtc::compile_cubin(
                &crate::nvrtc::test_library(),
                crate::device_plan::KERNEL_SOURCE,
                crate::device_plan::KERNEL_NAME,
                &arch,
            )
            .unwrap();
            let nvcomp = with_nvcomp.then(|| crate::nvcomp::Nvcomp::load(&nvcomp_path).unwrap());
            let assembler =
                crate::device_exec::DeviceAssembler::new(device, &cubin, nvcomp, 8 << 30).unwrap();
            let codecs = [
                ("zstd", Codec::Zstd),
                (
                    "blosc-shuffle",
                    Codec::Blosc {
                        codec: 4,
                        shuffle: true,
                    },
                ),
                (
                    "blosc-noshuffle",
                    Codec::Blosc {
                        codec: 4,
                        shuffle: false,
                    },
                ),
                (
                    "blosc-lz4",
                    Codec::Blosc {
                        codec: 1,
                        shuffle: true,
                    },
                ),
                ("gzip", Codec::Gzip),
            ];
            for (tag, codec) in codecs {
                for_each_batch(&format!("gpu-{tag}"), codec, |arrays, words, cpu| {
                    let batch = assembler.assemble(&exec, arrays, words).unwrap();
                    let mut host = vec![0u8; batch.len()];
                    // SAFETY: `batch` is device memory of `host.len()` bytes, alive here.
                    unsafe {
                        cudarc::driver::result::memcpy_dtoh_sync(&mut host, batch.as_ptr() as u64)
                    }
                    .unwrap();
                    assert!(
                        host == cpu,
                        "{tag} (nvCOMP {with_nvcomp}): {words:?} differs from the CPU executor"
                    );
                });
            }
            let [version, frames, cpu_chunks, device_chunks, ..] = assembler.counters();
            assert_eq!(version > 0, with_nvcomp);
            assert_eq!(frames > 0, with_nvcomp);
            assert!(cpu_chunks > 0 && device_chunks > 0);
            println!(
                "cuda:0 ({arch}), nvCOMP {}: {frames} zstd frames on the device, {device_chunks} chunks on the device, {cpu_chunks} on the CPU: equal to the CPU executor",
                if with_nvcomp { version.to_string() } else { "off".into() }
            );
        }
        assert_eq!(exec.live_bytes(), 0);
    }

    #[test]
    fn raw_zstd_chunks_decode_with_nvcomp_to_the_cpu_executors_batches() {
        for (reads, decode) in check("zstd", Codec::Zstd, NVCOMP) {
            assert!(decode.cpu.is_empty());
            assert_eq!(decode.streams.len(), decode.layouts.len());
            // Adjacent inner chunks of a shard are read together.
            assert!(reads.reads.len() < reads.sources.len());
            assert!(decode.spans.is_empty());
        }
    }

    #[test]
    fn misaligned_frames_are_moved_to_aligned_slots() {
        let options = DecodeOptions {
            input_align: 8,
            output_align: 8,
            ..NVCOMP
        };
        let mut moved = 0;
        for (_, decode) in check("zstd-aligned", Codec::Zstd, options) {
            assert!(decode
                .streams
                .iter()
                .all(|s| s.src % 8 == 0 && s.dst % 8 == 0));
            moved += decode.spans.len();
        }
        assert!(moved > 0);
    }

    #[test]
    fn without_nvcomp_zstd_chunks_decode_on_the_cpu() {
        let options = DecodeOptions {
            device_zstd: false,
            ..NVCOMP
        };
        for (_, decode) in check("zstd-cpu", Codec::Zstd, options) {
            assert!(decode.streams.is_empty());
            assert_eq!(decode.cpu.len(), decode.layouts.len());
        }
    }

    #[test]
    fn blosc_zstd_chunks_decode_through_their_streams() {
        for shuffle in [true, false] {
            let codec = Codec::Blosc { codec: 4, shuffle };
            let plans = check(&format!("blosc-{shuffle}"), codec, NVCOMP);
            let (mut frames, mut stored, mut shuffled, mut memcpyed) = (0, 0, 0, 0);
            for (_, decode) in &plans {
                assert!(decode.cpu.is_empty());
                frames += decode.streams.len();
                stored += decode.spans.len();
                shuffled += decode.layouts.iter().filter(|l| l.typesize > 1).count();
                // A memcpyed frame is one stored run as long as its chunk.
                memcpyed += decode
                    .spans
                    .iter()
                    .filter(|s| {
                        decode
                            .layouts
                            .iter()
                            .any(|l| l.offset == s.dst && l.len == s.len)
                    })
                    .count();
            }
            // Compressible and incompressible streams, shuffled when asked.
            assert!(
                frames > 0 && stored > 0 && memcpyed > 0,
                "{frames} {stored} {memcpyed}"
            );
            assert_eq!(shuffled > 0, shuffle);
        }
        // Without nvCOMP only stored blosc streams stay on the device.
        let options = DecodeOptions {
            device_zstd: false,
            ..NVCOMP
        };
        for (_, decode) in check(
            "blosc-cpu",
            Codec::Blosc {
                codec: 4,
                shuffle: true,
            },
            options,
        ) {
            assert!(decode.streams.is_empty() && !decode.cpu.is_empty());
        }
    }

    #[test]
    fn codecs_the_device_cannot_take_decode_on_the_cpu() {
        for (tag, codec) in [
            (
                "lz4",
                Codec::Blosc {
                    codec: 1,
                    shuffle: true,
                },
            ),
            ("gzip", Codec::Gzip),
        ] {
            for (_, decode) in check(tag, codec, NVCOMP) {
                // Only memcpyed blosc frames (stored bytes) stay on the device.
                assert!(decode.streams.is_empty());
                assert!(!decode.cpu.is_empty());
            }
        }
    }

    #[test]
    fn a_corrupt_frame_is_not_given_to_nvcomp_and_fails_as_a_decode_error() {
        let dir =
            std::env::temp_dir().join(format!("tessera-dbatch-corrupt-{}", std::process::id()));
        let array = store(&dir, DType::UInt16, Codec::Zstd, false, 7);
        let key = array.spec.keys.key(&[1, 1, 1]);
        let mut bytes = array.store.open(&key).unwrap().unwrap().read_all().unwrap();
        bytes[0] ^= 0xff; // the zstd magic number
        array.store.write(&key, &bytes).unwrap();
        let words = [
            DType::Float32 as i64,
            1,
            3,
            8,
            9,
            7,
            0,
            3,
            8,
            8,
            1,
            9,
            9,
            1,
            7,
            7,
            1,
        ];
        let plan = device_plan(&[&array], &words).unwrap();
        let (objects, ranges) = open_sources(&[&array], &plan).unwrap();
        let reads = plan_reads(&plan, &ranges);
        let mut pinned = vec![0u8; reads.len as usize];
        read_all(&[&array], &objects, &reads, &mut pinned).unwrap();
        let decode = DecodePlan::build(&[&array], &plan, &reads, &pinned, NVCOMP);
        assert_eq!((decode.cpu.len(), decode.streams.len()), (1, 0));
        pinned.resize(decode.upload_len as usize, 0);
        let e = decode
            .decode_on_cpu(&[&array], &plan, &reads, &mut pinned)
            .unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::DecodeError);
        assert!(e.message.contains("1/1/1"), "{}", e.message);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn outside_parts_and_the_inside_tile_the_box() {
        use crate::device_plan::outside;
        let shape = [10u64, 9];
        for bounds in [
            [(-3i64, 7u64), (2, 4)],
            [(4, 9), (-1, 12)],
            [(20, 3), (0, 9)],
            [(0, 10), (0, 9)],
        ] {
            let mut hits = vec![0u32; 7 * 12 * 2];
            let n = bounds[1].1 as usize;
            for part in outside(&bounds, &shape) {
                for z in part[0].first..part[0].first + part[0].count {
                    for y in part[1].first..part[1].first + part[1].count {
                        hits[z as usize * n + y as usize] += 1;
                    }
                }
            }
            for z in 0..bounds[0].1 {
                for y in 0..bounds[1].1 {
                    let inside = [(z, 0), (y, 1)].iter().all(|&(i, d)| {
                        let p = bounds[d].0 + i as i64;
                        p >= 0 && p < shape[d] as i64
                    });
                    assert_eq!(
                        hits[z as usize * n + y as usize],
                        u32::from(!inside),
                        "{bounds:?} {z} {y}"
                    );
                }
            }
        }
    }
}
