//! Copies of strided views into new C-contiguous buffers.

use crate::buffer::{AlignedBuffer, SharedBuffer};
use crate::dlpack::TensorLayout;
use crate::error::Result;
use bytemuck::Pod;
use rayon::prelude::*;
use std::sync::Arc;

/// Copies the elements of `layout` over `src` into a new C-order buffer.
pub fn make_contiguous(src: &AlignedBuffer, layout: &TensorLayout) -> Result<SharedBuffer> {
    src.check_host("a strided copy")?;
    layout.check_inside(src.len())?;
    let size = layout.dtype.size();
    let count: usize = layout.shape.iter().map(|&n| n as usize).product();
    let out = Arc::new(AlignedBuffer::for_overwrite(count * size)?);
    if count == 0 {
        return Ok(out);
    }
    // SAFETY: `out` is fresh and exclusively ours; `src` covers every offset (checked above).
    unsafe {
        let dst = std::slice::from_raw_parts_mut(out.as_ptr(), count * size);
        match size {
            1 => copy_typed::<u8>(src.as_ptr(), layout, dst),
            2 => copy_typed::<u16>(src.as_ptr(), layout, dst),
            4 => copy_typed::<u32>(src.as_ptr(), layout, dst),
            _ => copy_typed::<u64>(src.as_ptr(), layout, dst),
        }
    }
    Ok(out)
}

/// # Safety
/// Every element offset of `layout` must lie inside the allocation at `src`.
unsafe fn copy_typed<T: Pod + Send + Sync>(src: *const u8, layout: &TensorLayout, dst: &mut [u8]) {
    let dst: &mut [T] = bytemuck::cast_slice_mut(dst);
    let rank = layout.shape.len();
    let row = layout.shape.last().map_or(1, |&n| n as usize);
    let inner = layout.strides.last().copied().unwrap_or(1) as isize;
    let base = src as usize;
    crate::pool().install(|| {
        dst.par_chunks_mut(row).enumerate().for_each(|(r, out)| {
            // Offset of the row's first element: unravel the row index over the outer dims.
            let mut rest = r;
            let mut offset = layout.offset as isize;
            for d in (0..rank.saturating_sub(1)).rev() {
                let n = layout.shape[d] as usize;
                offset += (rest % n) as isize * layout.strides[d] as isize;
                rest /= n;
            }
            let first = (base as *const T).wrapping_offset(offset);
            for (k, o) in out.iter_mut().enumerate() {
                *o = std::ptr::read(first.wrapping_offset(k as isize * inner));
            }
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn copies_permuted_and_reversed_views() {
        let src = AlignedBuffer::zeroed(12).unwrap();
        let values: Vec<u16> = (0..6).collect();
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr().cast::<u8>(), src.as_ptr(), 12) };
        // 2×3 C array viewed as 3×2 (transposed) with the last axis reversed.
        let layout = TensorLayout {
            dtype: DType::UInt16,
            offset: 3,
            shape: vec![3, 2],
            strides: vec![1, -3],
        };
        let out = make_contiguous(&src, &layout).unwrap();
        let got: &[u16] =
            bytemuck::cast_slice(unsafe { std::slice::from_raw_parts(out.as_ptr(), 12) });
        assert_eq!(got, &[3, 0, 4, 1, 5, 2]);
    }
}
