//! Launch plan of the device assembly kernel (`kernels/assemble.cu`): the
//! boxes that fill a batch tensor from decoded chunks in a staging buffer.
//! The plan is built by [`crate::batch::device_plan`] from the same batch
//! planning the CPU executor runs, so a batch assembled from a plan equals
//! the executor's batch; the tests check that bit for bit by running the
//! plan on the host with the kernel's arithmetic.

use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use crate::region::DimSel;
use bytemuck::{Pod, Zeroable};

/// CUDA C source of the device kernels (entry points `tessera_assemble`
/// and `tessera_copy_spans`).
pub const KERNEL_SOURCE: &str = include_str!("kernels/assemble.cu");
/// Name of the assembly kernel's entry point.
pub const KERNEL_NAME: &str = "tessera_assemble";
/// Name of the span-copy kernel's entry point (see [`crate::device_batch::Span`]).
pub const SPANS_KERNEL_NAME: &str = "tessera_copy_spans";
/// Most dimensions a box may have (`MAX_RANK` in the kernel).
pub const MAX_RANK: usize = 8;
/// [`CopyBox::kind`] of a box that copies chunk elements.
pub const BOX_COPY: u32 = 0;
/// [`CopyBox::kind`] of a box that writes the fill value.
pub const BOX_FILL: u32 = 1;

/// Where one decoded chunk lies in the staging buffer (`SourceLayout` in the kernel).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SourceLayout {
    /// Byte offset of the chunk in the staging buffer.
    pub offset: u64,
    /// Decoded bytes of the chunk.
    pub len: u64,
    /// Blosc byte-shuffle type size (0 or 1: the bytes are not shuffled).
    pub typesize: u32,
    /// Blosc block size in bytes (used when shuffled).
    pub blocksize: u32,
}

/// One box of batch elements (`CopyBox` in the kernel): dimensions are
/// right-aligned in the arrays, unused leading ones have count 1.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct CopyBox {
    /// Index of the box's first element among all boxes of its launch.
    pub first: u64,
    /// First source element (in the decoded chunk).
    pub src_base: u64,
    /// First batch element.
    pub dst_base: u64,
    /// Elements along each dimension.
    pub counts: [u64; MAX_RANK],
    /// Source element step per dimension.
    pub src_steps: [u64; MAX_RANK],
    /// Batch element step per dimension.
    pub dst_steps: [u64; MAX_RANK],
    /// Index of the source chunk in [`DevicePlan::sources`].
    pub source: u32,
    /// [`BOX_COPY`] or [`BOX_FILL`].
    pub kind: u32,
    /// Kernel code of the source dtype ([`kernel_dtype`]).
    pub src_dtype: u32,
    /// Fill value in the output dtype (bfloat16 in the low 16 bits).
    pub fill_bits: u32,
}

/// A stored chunk the batch reads: an outer chunk, or an inner chunk of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChunk {
    /// Index of the array in the batch's array list.
    pub array: usize,
    /// Store key of the chunk or shard.
    pub key: String,
    /// `(offset, length)` of an inner chunk in its shard; `None` for a whole object.
    pub range: Option<(u64, u64)>,
}

/// Everything one batch needs on the device: fill boxes (places outside
/// an array or in chunks that are not stored) and copy boxes, disjoint.
#[derive(Debug, Clone)]
pub struct DevicePlan {
    /// Output dtype: float32 or bfloat16.
    pub out_dtype: DType,
    /// Elements in the batch.
    pub elements: u64,
    /// Chunks to read and decode, each once.
    pub sources: Vec<SourceChunk>,
    /// Fill boxes.
    pub fills: Vec<CopyBox>,
    /// Copy boxes.
    pub copies: Vec<CopyBox>,
}

/// Kernel code of a source dtype; other dtypes are not assembled on the device.
pub fn kernel_dtype(dtype: DType) -> Result<u32> {
    Ok(match dtype {
        DType::UInt8 => 0,
        DType::Int8 => 1,
        DType::UInt16 => 2,
        DType::Int16 => 3,
        DType::UInt32 => 4,
        DType::Int32 => 5,
        DType::Float16 => 6,
        DType::Float32 => 7,
        other => {
            return Err(Error::new(
                ErrorKind::DtypeMismatch,
                format!("the device kernel does not read {other:?} sources"),
            ))
        }
    })
}

impl DevicePlan {
    /// An empty plan for a batch of `elements` elements of `out_dtype`.
    pub fn new(out_dtype: DType, elements: u64) -> Result<Self> {
        if !matches!(out_dtype, DType::Float32 | DType::BFloat16) {
            return Err(Error::new(
                ErrorKind::DtypeMismatch,
                format!("the device kernel writes float32 or bfloat16, not {out_dtype:?}"),
            ));
        }
        Ok(Self {
            out_dtype,
            elements,
            sources: Vec::new(),
            fills: Vec::new(),
            copies: Vec::new(),
        })
    }

    /// Adds a source chunk and returns its index.
    pub fn add_source(&mut self, source: SourceChunk) -> u32 {
        self.sources.push(source);
        (self.sources.len() - 1) as u32
    }

    /// Adds the fill box of `walk` (offsets relative to the batch element `dst_offset`).
    pub fn add_fill(
        &mut self,
        walk: &crate::assemble::Walk,
        dst_offset: u64,
        bits: u32,
    ) -> Result<()> {
        let b = make_box(walk, dst_offset, total(&self.fills))?;
        self.fills.push(CopyBox {
            kind: BOX_FILL,
            fill_bits: bits,
            ..b
        });
        Ok(())
    }

    /// Adds the copy box of `walk` from source `source` of dtype `dtype`.
    pub fn add_copy(
        &mut self,
        walk: &crate::assemble::Walk,
        dst_offset: u64,
        source: u32,
        dtype: DType,
    ) -> Result<()> {
        let src_dtype = kernel_dtype(dtype)?;
        let b = make_box(walk, dst_offset, total(&self.copies))?;
        self.copies.push(CopyBox {
            kind: BOX_COPY,
            source,
            src_dtype,
            ..b
        });
        Ok(())
    }
}

impl DevicePlan {
    /// The boxes of the plan's single launch: fills, then copies. They are
    /// disjoint (fills cover only places no copy writes), so the order in
    /// which the kernel's threads run them does not matter.
    pub fn boxes(&self) -> Vec<CopyBox> {
        let base = total(&self.fills);
        let copies = self.copies.iter().map(|b| CopyBox {
            first: b.first + base,
            ..*b
        });
        self.fills.iter().copied().chain(copies).collect()
    }
}

/// The parts of a box outside an array of `shape`, as disjoint selections
/// in box coordinates; `bounds` holds per dimension the box's first index
/// (negative or past the end where it leaves the array) and its size.
pub fn outside(bounds: &[(i64, u64)], shape: &[u64]) -> Vec<Vec<DimSel>> {
    let sel = |from: u64, to: u64| DimSel {
        first: from,
        count: to - from,
        step: 1,
        out_first: from,
    };
    // The part inside the array, per dimension, in box coordinates.
    let inside: Vec<(u64, u64)> = bounds
        .iter()
        .zip(shape)
        .map(|(&(start, count), &size)| {
            let clamp = |v: i128| v.clamp(0, count as i128) as u64;
            let lo = clamp(-(start as i128));
            (lo, clamp(size as i128 - start as i128).max(lo))
        })
        .collect();
    if inside.iter().any(|&(lo, hi)| lo == hi) {
        return vec![bounds.iter().map(|&(_, c)| sel(0, c)).collect()];
    }
    let mut parts = Vec::new();
    for d in 0..bounds.len() {
        let count = bounds[d].1;
        for (from, to) in [(0, inside[d].0), (inside[d].1, count)] {
            if from < to {
                let part = (0..bounds.len())
                    .map(|e| match e.cmp(&d) {
                        std::cmp::Ordering::Less => sel(inside[e].0, inside[e].1),
                        std::cmp::Ordering::Equal => sel(from, to),
                        std::cmp::Ordering::Greater => sel(0, bounds[e].1),
                    })
                    .collect();
                parts.push(part);
            }
        }
    }
    parts
}

/// Elements covered by `boxes` (the `total` argument of a launch).
pub fn total(boxes: &[CopyBox]) -> u64 {
    boxes
        .last()
        .map_or(0, |b| b.first + b.counts.iter().product::<u64>())
}

fn make_box(walk: &crate::assemble::Walk, dst_offset: u64, first: u64) -> Result<CopyBox> {
    let rank = walk.counts.len();
    if rank > MAX_RANK {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("the device kernel takes boxes of up to {MAX_RANK} dimensions, not {rank}"),
        ));
    }
    let mut b = CopyBox::zeroed();
    b.first = first;
    b.src_base = walk.src_base as u64;
    b.dst_base = walk.dst_base as u64 + dst_offset;
    b.counts = [1; MAX_RANK];
    let pad = MAX_RANK - rank;
    for d in 0..rank {
        b.counts[pad + d] = walk.counts[d] as u64;
        b.src_steps[pad + d] = walk.src_steps[d] as u64;
        b.dst_steps[pad + d] = walk.dst_steps[d] as u64;
    }
    Ok(b)
}

/// The kernel's arithmetic, run on the host: the reference the tests hold
/// the plan (and, on a GPU, the kernel) to.
#[cfg(test)]
pub mod host {
    use super::*;

    fn load_byte(chunk: &[u8], s: &SourceLayout, p: u64) -> u8 {
        let (ts, bs) = (s.typesize as u64, s.blocksize as u64);
        if ts <= 1 {
            return chunk[p as usize];
        }
        let start = p - p % bs;
        let bsize = (s.len - start).min(bs);
        let q = p - start;
        let per_stream = bsize / ts;
        if q >= per_stream * ts {
            return chunk[p as usize];
        }
        chunk[(start + (q % ts) * per_stream + q / ts) as usize]
    }

    fn f16_to_f32_bits(h: u32) -> u32 {
        let sign = (h & 0x8000) << 16;
        let exp = (h >> 10) & 0x1f;
        let man = h & 0x3ff;
        if exp == 0x1f {
            return if man == 0 {
                sign | 0x7f80_0000
            } else {
                sign | 0x7fc0_0000 | (man << 13)
            };
        }
        if exp == 0 {
            return sign | (man as f32 * f32::from_bits(0x3380_0000)).to_bits(); // man · 2^-24
        }
        sign | ((exp + 112) << 23) | (man << 13)
    }

    fn f32_bits_to_bf16(x: u32) -> u32 {
        if x & 0x7fff_ffff > 0x7f80_0000 {
            return (x >> 16) | 0x40;
        }
        if x & 0x8000 != 0 && x & 0x17fff != 0 {
            return (x >> 16) + 1;
        }
        x >> 16
    }

    fn int_to_f32_bits_round_to_odd(d: f64) -> u32 {
        let nearest = d as f32;
        if nearest as f64 == d {
            return nearest.to_bits();
        }
        let mut bits = nearest.to_bits();
        if (nearest as f64).abs() > d.abs() {
            bits -= 1;
        }
        bits | 1
    }

    fn convert(v: u32, dtype: u32, bf16: bool) -> u32 {
        let out = |bits: u32| if bf16 { f32_bits_to_bf16(bits) } else { bits };
        match dtype {
            0 => out((v as u8 as f32).to_bits()),
            1 => out((v as u8 as i8 as f32).to_bits()),
            2 => out((v as u16 as f32).to_bits()),
            3 => out((v as u16 as i16 as f32).to_bits()),
            4 if bf16 => f32_bits_to_bf16(int_to_f32_bits_round_to_odd(v as f64)),
            4 => (v as f32).to_bits(),
            5 if bf16 => f32_bits_to_bf16(int_to_f32_bits_round_to_odd(v as i32 as f64)),
            5 => (v as i32 as f32).to_bits(),
            6 => out(f16_to_f32_bits(v & 0xffff)),
            _ => out(v),
        }
    }

    fn size(dtype: u32) -> u64 {
        match dtype {
            0 | 1 => 1,
            2 | 3 | 6 => 2,
            _ => 4,
        }
    }

    /// Runs one launch over `boxes`, element by element as the kernel's threads do.
    pub fn launch(
        staging: &[u8],
        sources: &[SourceLayout],
        boxes: &[CopyBox],
        out: &mut [u8],
        bf16: bool,
    ) {
        for w in 0..total(boxes) {
            let b = &boxes[boxes.partition_point(|b| b.first <= w) - 1];
            let (mut r, mut src, mut dst) = (w - b.first, b.src_base, b.dst_base);
            for d in (0..MAX_RANK).rev() {
                let i = r % b.counts[d];
                r /= b.counts[d];
                src += i * b.src_steps[d];
                dst += i * b.dst_steps[d];
            }
            let mut bits = b.fill_bits;
            if b.kind == BOX_COPY {
                let s = &sources[b.source as usize];
                let chunk = &staging[s.offset as usize..(s.offset + s.len) as usize];
                let n = size(b.src_dtype);
                let v = (0..n).fold(0u32, |v, j| {
                    v | (load_byte(chunk, s, src * n + j) as u32) << (8 * j)
                });
                bits = convert(v, b.src_dtype, bf16);
            }
            let dst = dst as usize;
            if bf16 {
                out[dst * 2..dst * 2 + 2].copy_from_slice(&(bits as u16).to_le_bytes());
            } else {
                out[dst * 4..dst * 4 + 4].copy_from_slice(&bits.to_le_bytes());
            }
        }
    }
}
