//! Block-mean downsampling, used to build multiscale pyramids.

use crate::buffer::{AlignedBuffer, SharedBuffer};
use crate::codec::c_strides;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::with_dtype;
use bytemuck::Pod;
use rayon::prelude::*;
use std::sync::Arc;

/// Conversion to and from `f64` for averaging.
trait Average: Pod + Send + Sync {
    fn to_f64(self) -> f64;
    fn from_mean(mean: f64) -> Self;
}

macro_rules! average_int {
    ($($t:ty),*) => {$(
        impl Average for $t {
            fn to_f64(self) -> f64 { self as f64 }
            fn from_mean(mean: f64) -> Self { mean.round() as $t }
        }
    )*};
}
average_int!(i8, i16, i32, i64, u8, u16, u32, u64);

macro_rules! average_float {
    ($($t:ty),*) => {$(
        impl Average for $t {
            fn to_f64(self) -> f64 { self as f64 }
            fn from_mean(mean: f64) -> Self { mean as $t }
        }
    )*};
}
average_float!(f32, f64);

impl Average for half::f16 {
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_mean(mean: f64) -> Self {
        half::f16::from_f64(mean)
    }
}

impl Average for half::bf16 {
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_mean(mean: f64) -> Self {
        half::bf16::from_f64(mean)
    }
}

impl Average for crate::dtype::Bool {
    fn to_f64(self) -> f64 {
        (self.0 != 0) as u8 as f64
    }
    fn from_mean(mean: f64) -> Self {
        crate::dtype::Bool((mean >= 0.5) as u8)
    }
}

/// Output shape of downsampling `shape` by `factors` (partial blocks kept).
pub fn output_shape(shape: &[u64], factors: &[u64]) -> Vec<u64> {
    shape
        .iter()
        .zip(factors)
        .map(|(s, f)| s.div_ceil(*f))
        .collect()
}

/// Averages blocks of `factors` elements of the C-order array `data`.
pub fn downsample(
    data: &[u8],
    dtype: DType,
    shape: &[u64],
    factors: &[u64],
) -> Result<SharedBuffer> {
    if shape.len() != factors.len() || factors.contains(&0) {
        return Err(Error::invalid(format!(
            "downsample factors {factors:?} for shape {shape:?}"
        )));
    }
    let count = shape.iter().try_fold(1u64, |a, &s| a.checked_mul(s));
    if count.and_then(|c| c.checked_mul(dtype.size() as u64)) != Some(data.len() as u64) {
        return Err(Error::invalid(format!(
            "downsample input has {} bytes, shape {shape:?} of {dtype:?} needs another size",
            data.len()
        )));
    }
    let out_shape = output_shape(shape, factors);
    let out_count = out_shape.iter().product::<u64>() as usize;
    let buffer = Arc::new(AlignedBuffer::for_overwrite(out_count * dtype.size())?);
    // SAFETY: the buffer was just allocated with this many bytes and is not shared yet.
    let out = unsafe { std::slice::from_raw_parts_mut(buffer.as_ptr(), buffer.len()) };
    with_dtype!(dtype, T => {
        let src: &[T] = bytemuck::try_cast_slice(data)
            .map_err(|_| Error::invalid("downsample input is not aligned for its dtype"))?;
        mean_blocks::<T>(src, shape, factors, &out_shape, bytemuck::cast_slice_mut(out));
    });
    Ok(buffer)
}

fn mean_blocks<T: Average>(
    src: &[T],
    shape: &[u64],
    factors: &[u64],
    out_shape: &[u64],
    out: &mut [T],
) {
    let rank = shape.len();
    let src_strides = c_strides(shape);
    let out_strides = c_strides(out_shape);
    let row = out_shape.last().copied().unwrap_or(1) as usize;
    out.par_chunks_mut(row.max(1))
        .enumerate()
        .for_each(|(r, out_row)| {
            let mut origin = vec![0u64; rank];
            let mut rest = (r * row) as u64;
            for d in 0..rank {
                origin[d] = rest / out_strides[d] * factors[d];
                rest %= out_strides[d];
            }
            for (x, value) in out_row.iter_mut().enumerate() {
                if rank > 0 {
                    origin[rank - 1] = x as u64 * factors[rank - 1];
                }
                let ends: Vec<u64> = (0..rank)
                    .map(|d| (origin[d] + factors[d]).min(shape[d]))
                    .collect();
                let mut idx = origin.clone();
                let (mut sum, mut n) = (0.0f64, 0u64);
                loop {
                    let offset: u64 = idx.iter().zip(&src_strides).map(|(i, s)| i * s).sum();
                    sum += src[offset as usize].to_f64();
                    n += 1;
                    if !advance(&mut idx, &origin, &ends) {
                        break;
                    }
                }
                *value = T::from_mean(sum / n as f64);
            }
        });
}

/// Steps `idx` through the box `[origin, ends)`, last dimension fastest;
/// `false` once every position was visited.
fn advance(idx: &mut [u64], origin: &[u64], ends: &[u64]) -> bool {
    for d in (0..idx.len()).rev() {
        idx[d] += 1;
        if idx[d] < ends[d] {
            return true;
        }
        idx[d] = origin[d];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_blocks_and_keeps_partial_edges() {
        let data: Vec<u16> = vec![1, 3, 5, 2, 4, 6];
        let out = downsample(bytemuck::cast_slice(&data), DType::UInt16, &[2, 3], &[2, 2]).unwrap();
        let values: &[u16] =
            bytemuck::cast_slice(unsafe { std::slice::from_raw_parts(out.as_ptr(), out.len()) });
        assert_eq!(values, &[3, 6]); // (1+3+2+4)/4 = 2.5 → 3, (5+6)/2 = 5.5 → 6
    }
}
