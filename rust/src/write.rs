//! The writer: encodes whole chunks (or shards) of a region in parallel and
//! stores each atomically.

use crate::assemble::{self, Destination, Walk};
use crate::codec::{self, aligned_scratch, Elements};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::read::Array;
use crate::region::{for_each_combination, DimSel};
use rayon::prelude::*;

/// Writes `data` (C-order elements of the array dtype, native endianness)
/// as the box at `origin` with `shape`. The box must be aligned to the
/// chunk grid: it starts on chunk boundaries and ends on one or at the
/// array's edge. Chunks equal to the fill value everywhere are removed.
pub fn write_region(
    array: &Array,
    data: &[u8],
    origin: &[u64],
    shape: &[u64],
    progress: &Progress,
) -> Result<()> {
    if let crate::storage::Store::Remote(r) = &array.store {
        return Err(r.remote.read_only(&r.prefix)); // before any write: never a partial one
    }
    let spec = &array.spec;
    let rank = spec.shape.len();
    if origin.len() != rank || shape.len() != rank {
        return Err(Error::invalid(format!(
            "write box has rank {}/{}, array rank is {rank}",
            origin.len(),
            shape.len()
        )));
    }
    let mut per_dim = Vec::with_capacity(rank);
    for d in 0..rank {
        let (o, n, size, chunk) = (origin[d], shape[d], spec.shape[d], spec.chunk_shape[d]);
        let end = o.checked_add(n).filter(|&e| e <= size && n > 0);
        let aligned = end.is_some_and(|e| o % chunk == 0 && (e % chunk == 0 || e == size));
        if !aligned {
            return Err(Error::invalid(format!(
                "write box dimension {d}: [{o}, {o}+{n}) must lie in [0, {size}) on chunk boundaries of {chunk}"
            )));
        }
        per_dim.push((o / chunk..(o + n).div_ceil(chunk)).collect::<Vec<u64>>());
    }
    let expected = shape.iter().product::<u64>() * spec.dtype.size() as u64;
    if data.len() as u64 != expected {
        return Err(Error::invalid(format!(
            "write data has {} bytes, the box needs {expected}",
            data.len()
        )));
    }
    let mut chunks = Vec::new();
    for_each_combination(&per_dim, |c| {
        chunks.push(c.to_vec());
        Ok(())
    })?;
    Progress::add(&progress.outer_total, chunks.len() as u64);
    let elements = Elements {
        dtype: spec.dtype,
        fill: &spec.fill,
    };
    let data_strides = codec::c_strides(shape);
    let chunk_strides = codec::c_strides(&spec.chunk_shape);
    let chunk_bytes = codec::element_count(&spec.chunk_shape) * spec.dtype.size();
    crate::pool().install(|| {
        chunks.par_iter().try_for_each(|coords| {
            progress.check()?;
            let key = spec.keys.key(coords);
            let mut scratch = aligned_scratch(chunk_bytes);
            let chunk = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut scratch)[..chunk_bytes];
            let sel: Vec<DimSel> = (0..rank)
                .map(|d| {
                    let start = coords[d] * spec.chunk_shape[d];
                    let stop = (start + spec.chunk_shape[d]).min(spec.shape[d]);
                    DimSel {
                        first: start - origin[d],
                        count: stop - start,
                        step: 1,
                        out_first: 0,
                    }
                })
                .collect();
            // SAFETY: `chunk` is a live, aligned, exclusively borrowed buffer.
            let dst = unsafe { Destination::new(chunk.as_mut_ptr(), chunk.len(), spec.dtype) };
            let partial = sel.iter().zip(&spec.chunk_shape).any(|(s, &c)| s.count < c);
            if partial {
                let full: Vec<DimSel> = spec
                    .chunk_shape
                    .iter()
                    .map(|&c| DimSel {
                        first: 0,
                        count: c,
                        step: 1,
                        out_first: 0,
                    })
                    .collect();
                assemble::fill(
                    &spec.fill,
                    spec.dtype,
                    &Walk::new(&full, &chunk_strides, &chunk_strides),
                    &dst,
                )?;
            }
            assemble::copy(
                data,
                spec.dtype,
                &Walk::new(&sel, &data_strides, &chunk_strides),
                &dst,
            )?;
            let encoded = codec::encode_chunk(&spec.codecs, &spec.chunk_shape, chunk, elements)
                .map_err(|e| e.context(&key))?;
            match encoded {
                Some(bytes) => {
                    array.store.write(&key, &bytes)?;
                    Progress::add(&progress.bytes_written, bytes.len() as u64);
                }
                None => array.store.remove(&key)?,
            }
            Progress::add(&progress.outer_done, 1);
            Ok(())
        })
    })
}
