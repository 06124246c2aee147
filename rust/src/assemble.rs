//! Assembly: copying a strided box of decoded elements into a strided
//! destination with the dtype cast fused into the copy.

use crate::cast::CastFrom;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::region::DimSel;
use crate::with_dtype;
use bytemuck::Pod;

/// A destination buffer shared by the threads that fill disjoint parts of it.
#[derive(Debug, Clone, Copy)]
pub struct Destination {
    ptr: *mut u8,
    len: usize,
    dtype: DType,
}

// SAFETY: threads write disjoint elements only (the chunk grid partitions
// the request), and the buffer outlives the parallel section using it.
unsafe impl Send for Destination {}
unsafe impl Sync for Destination {}

impl Destination {
    /// Wraps `len` bytes at `ptr` holding elements of `dtype`.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of `len` bytes, aligned for `dtype`,
    /// for as long as the destination is used.
    pub unsafe fn new(ptr: *mut u8, len: usize, dtype: DType) -> Self {
        Self { ptr, len, dtype }
    }

    /// Element type of the destination.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

/// Element offsets of a box walk: a start and a step per dimension.
#[derive(Debug, Clone)]
pub struct Walk {
    /// Number of elements along each dimension.
    pub counts: Vec<usize>,
    /// Source offset of the first element, in elements.
    pub src_base: usize,
    /// Source offset change per index, per dimension.
    pub src_steps: Vec<usize>,
    /// Destination offset of the first element, in elements.
    pub dst_base: usize,
    /// Destination offset change per index, per dimension.
    pub dst_steps: Vec<usize>,
}

impl Walk {
    /// The walk that takes the selection `sel` of a box laid out with
    /// `src_strides` into a destination with `dst_strides`.
    pub fn new(sel: &[DimSel], src_strides: &[u64], dst_strides: &[u64]) -> Self {
        let mut walk = Walk {
            counts: Vec::with_capacity(sel.len() + 1),
            src_base: 0,
            src_steps: Vec::with_capacity(sel.len() + 1),
            dst_base: 0,
            dst_steps: Vec::with_capacity(sel.len() + 1),
        };
        for ((s, &ss), &ds) in sel.iter().zip(src_strides).zip(dst_strides) {
            walk.src_base += (s.first * ss) as usize;
            walk.dst_base += (s.out_first * ds) as usize;
            walk.counts.push(s.count as usize);
            walk.src_steps.push((s.step * ss) as usize);
            walk.dst_steps.push(ds as usize);
        }
        if walk.counts.is_empty() {
            walk.counts.push(1);
            walk.src_steps.push(0);
            walk.dst_steps.push(0);
        }
        walk
    }

    fn last_offsets(&self) -> (usize, usize) {
        let mut src = self.src_base;
        let mut dst = self.dst_base;
        for ((&c, &ss), &ds) in self.counts.iter().zip(&self.src_steps).zip(&self.dst_steps) {
            src += (c - 1) * ss;
            dst += (c - 1) * ds;
        }
        (src, dst)
    }

    fn check(&self, src_len: Option<usize>, dst: &Destination) -> Result<()> {
        let (src_last, dst_last) = self.last_offsets();
        let src_ok = src_len.is_none_or(|n| src_last < n);
        if !src_ok || (dst_last + 1) * dst.dtype.size() > dst.len {
            return Err(Error::new(
                crate::error::ErrorKind::Internal,
                format!("assembly walk out of bounds (source {src_last}, destination {dst_last})"),
            ));
        }
        Ok(())
    }

    /// Calls `row(src_offset, dst_offset)` for the start of every innermost row.
    fn rows(&self, mut row: impl FnMut(usize, usize)) {
        let outer = self.counts.len() - 1;
        let mut idx = vec![0usize; outer];
        let (mut src, mut dst) = (self.src_base, self.dst_base);
        loop {
            row(src, dst);
            let mut d = outer;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                idx[d] += 1;
                src += self.src_steps[d];
                dst += self.dst_steps[d];
                if idx[d] < self.counts[d] {
                    break;
                }
                src -= self.src_steps[d] * self.counts[d];
                dst -= self.dst_steps[d] * self.counts[d];
                idx[d] = 0;
            }
        }
    }
}

/// Copies the walked elements of `src` (elements of `src_dtype`, native
/// endianness) into `dst`, casting each to the destination dtype.
pub fn copy(src: &[u8], src_dtype: DType, walk: &Walk, dst: &Destination) -> Result<()> {
    walk.check(Some(src.len() / src_dtype.size()), dst)?;
    with_dtype!(src_dtype, S => with_dtype!(dst.dtype, D => {
        let typed: &[S] = bytemuck::try_cast_slice(src).map_err(|_| {
            Error::invalid(format!("source buffer is not aligned for {src_dtype:?} elements"))
        })?;
        copy_typed::<S, D>(typed, walk, dst.ptr.cast::<D>());
    }));
    Ok(())
}

/// Writes `value` (one element of `src_dtype`, little-endian bytes) to every
/// walked destination element, cast to the destination dtype.
pub fn fill(value: &[u8], src_dtype: DType, walk: &Walk, dst: &Destination) -> Result<()> {
    walk.check(None, dst)?;
    with_dtype!(src_dtype, S => with_dtype!(dst.dtype, D => {
        let v: D = D::cast_from(bytemuck::pod_read_unaligned::<S>(value));
        fill_typed::<D>(v, walk, dst.ptr.cast::<D>());
    }));
    Ok(())
}

fn copy_typed<S: Pod, D: Pod + CastFrom<S>>(src: &[S], walk: &Walk, dst: *mut D) {
    let last = walk.counts.len() - 1;
    let (n, ss, ds) = (
        walk.counts[last],
        walk.src_steps[last],
        walk.dst_steps[last],
    );
    walk.rows(|s, d| {
        // SAFETY: `check` proved every walked offset is inside both buffers.
        unsafe {
            if ss == 1 && ds == 1 {
                let out = std::slice::from_raw_parts_mut(dst.add(d), n);
                for (o, i) in out.iter_mut().zip(src.get_unchecked(s..s + n)) {
                    *o = D::cast_from(*i);
                }
            } else {
                for k in 0..n {
                    *dst.add(d + k * ds) = D::cast_from(*src.get_unchecked(s + k * ss));
                }
            }
        }
    });
}

fn fill_typed<D: Pod>(value: D, walk: &Walk, dst: *mut D) {
    let last = walk.counts.len() - 1;
    let (n, ds) = (walk.counts[last], walk.dst_steps[last]);
    walk.rows(|_, d| {
        // SAFETY: `check` proved every walked offset is inside the buffer.
        unsafe {
            if ds == 1 {
                std::slice::from_raw_parts_mut(dst.add(d), n).fill(value);
            } else {
                for k in 0..n {
                    *dst.add(d + k * ds) = value;
                }
            }
        }
    });
}

/// Reverses the byte order of every `size`-byte element of `bytes` in place.
pub fn swap_endianness(bytes: &mut [u8], size: usize) {
    if size > 1 {
        for element in bytes.chunks_exact_mut(size) {
            element.reverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_strided_box_with_cast() {
        // source 3×4 u16, take rows 1..3, columns 0,2 into a 2×2 f32 transposed output
        let src: Vec<u16> = (0..12).collect();
        let sel = [
            DimSel {
                first: 1,
                count: 2,
                step: 1,
                out_first: 0,
            },
            DimSel {
                first: 0,
                count: 2,
                step: 2,
                out_first: 0,
            },
        ];
        let walk = Walk::new(&sel, &[4, 1], &[1, 2]);
        let mut out = vec![0f32; 4];
        let dst = unsafe { Destination::new(out.as_mut_ptr().cast(), 16, DType::Float32) };
        copy(bytemuck::cast_slice(&src), DType::UInt16, &walk, &dst).unwrap();
        assert_eq!(out, vec![4.0, 8.0, 6.0, 10.0]);
    }

    #[test]
    fn rejects_walks_outside_the_destination() {
        let sel = [DimSel {
            first: 0,
            count: 5,
            step: 1,
            out_first: 0,
        }];
        let walk = Walk::new(&sel, &[1], &[1]);
        let mut out = vec![0u8; 4];
        let dst = unsafe { Destination::new(out.as_mut_ptr(), 4, DType::UInt8) };
        assert!(fill(&[1], DType::UInt8, &walk, &dst).is_err());
    }
}
