//! Region requests and their split over a chunk grid.
//!
//! A request selects, per array dimension, `count` elements starting at
//! `start` every `step`, and says where element `k` of that dimension goes
//! in the output (`out_stride` elements apart). The strides describe a
//! compact layout in any axis order, so permuted outputs cost nothing extra.

use crate::dtype::DType;
use crate::error::{Error, Result};

/// The selection of one array dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DimRequest {
    /// First selected index.
    pub start: u64,
    /// Number of selected indices.
    pub count: u64,
    /// Distance between selected indices (≥ 1).
    pub step: u64,
    /// Output stride of this dimension, in elements.
    pub out_stride: u64,
}

/// A request for a strided box of an array, assembled into a new buffer.
#[derive(Debug, Clone)]
pub struct Request {
    /// Element type of the output.
    pub out_dtype: DType,
    /// One selection per array dimension.
    pub dims: Vec<DimRequest>,
}

impl Request {
    /// Decodes `[out dtype, rank, (start, count, step, out_stride) × rank]`
    /// and checks it against the array `shape`.
    pub fn decode(words: &[i64], shape: &[u64]) -> Result<Request> {
        let bad = |m: String| Error::invalid(format!("region request: {m}"));
        if words.len() < 2 {
            return Err(bad("too short".into()));
        }
        let out_dtype = DType::from_code(words[0])?;
        let rank = words[1];
        if rank != shape.len() as i64 || words.len() != 2 + 4 * shape.len() {
            return Err(bad(format!(
                "rank {rank} with {} words for an array of rank {}",
                words.len(),
                shape.len()
            )));
        }
        let mut dims = Vec::with_capacity(shape.len());
        for (d, w) in words[2..].chunks_exact(4).enumerate() {
            let [start, count, step, out_stride] = [w[0], w[1], w[2], w[3]].map(|v| v as u64);
            if w.iter().any(|&v| v < 0) || step == 0 || count == 0 {
                return Err(bad(format!(
                    "dimension {d} has start {}, count {}, step {}, stride {}",
                    w[0], w[1], w[2], w[3]
                )));
            }
            let last = (count - 1)
                .checked_mul(step)
                .and_then(|o| o.checked_add(start))
                .filter(|&l| l < shape[d])
                .ok_or_else(|| {
                    bad(format!(
                        "dimension {d}: {count} indices from {start} step {step} exceed its size {}",
                        shape[d]
                    ))
                })?;
            debug_assert!(last < shape[d]);
            dims.push(DimRequest {
                start,
                count,
                step,
                out_stride,
            });
        }
        let request = Request { out_dtype, dims };
        request.check_compact()?;
        Ok(request)
    }

    /// Number of output elements.
    pub fn element_count(&self) -> Result<u64> {
        self.dims
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(d.count))
            .ok_or_else(|| Error::invalid("region request: output size overflows"))
    }

    /// Size of the output buffer in bytes; an error when it cannot be allocated
    /// on this platform (over `isize::MAX`).
    pub fn output_bytes(&self) -> Result<usize> {
        let elements = self.element_count()?;
        elements
            .checked_mul(self.out_dtype.size() as u64)
            .and_then(|b| usize::try_from(b).ok())
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| Error::invalid(format!("region of {elements} elements is too large")))
    }

    /// Checks that the output strides are a compact layout: every element
    /// lands on its own place inside the buffer.
    fn check_compact(&self) -> Result<()> {
        let mut dims: Vec<&DimRequest> = self.dims.iter().filter(|d| d.count > 1).collect();
        dims.sort_by_key(|d| d.out_stride);
        let mut expected = 1u64;
        for d in dims {
            if d.out_stride != expected {
                return Err(Error::invalid(format!(
                    "region request: output strides {:?} are not a compact layout",
                    self.dims.iter().map(|d| d.out_stride).collect::<Vec<_>>()
                )));
            }
            expected = expected.saturating_mul(d.count);
        }
        Ok(())
    }
}

/// The part of a selection that falls inside one box (a chunk or the
/// whole array), in that box's coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DimSel {
    /// First selected index, relative to the box.
    pub first: u64,
    /// Number of selected indices.
    pub count: u64,
    /// Distance between selected indices.
    pub step: u64,
    /// Output index (along this dimension) of the first selected element.
    pub out_first: u64,
}

/// Splits a selection over boxes of size `size`: for each box it touches,
/// the box index and the part of the selection inside it, relative to it.
pub fn split(sel: DimSel, size: u64) -> Vec<(u64, DimSel)> {
    let mut parts = Vec::new();
    let mut k = 0;
    while k < sel.count {
        let pos = sel.first + k * sel.step;
        let index = pos / size;
        let end = (index + 1) * size;
        let n = ((end - pos).div_ceil(sel.step)).min(sel.count - k);
        parts.push((
            index,
            DimSel {
                first: pos - index * size,
                count: n,
                step: sel.step,
                out_first: sel.out_first + k,
            },
        ));
        k += n;
    }
    parts
}

/// Calls `f` for every combination of one entry per dimension (the
/// Cartesian product, last dimension fastest).
pub fn for_each_combination<T: Copy>(
    lists: &[Vec<T>],
    mut f: impl FnMut(&[T]) -> Result<()>,
) -> Result<()> {
    if lists.iter().any(|l| l.is_empty()) {
        return Ok(());
    }
    let mut idx = vec![0usize; lists.len()];
    let mut current: Vec<T> = lists.iter().map(|l| l[0]).collect();
    loop {
        f(&current)?;
        let mut d = lists.len();
        loop {
            if d == 0 {
                return Ok(());
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < lists[d].len() {
                current[d] = lists[d][idx[d]];
                break;
            }
            idx[d] = 0;
            current[d] = lists[d][0];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_steps_and_skips_untouched_boxes() {
        let parts = split(
            DimSel {
                first: 3,
                count: 4,
                step: 5,
                out_first: 0,
            },
            4,
        );
        // indices 3, 8, 13, 18 → boxes 0, 2, 3, 4
        let boxes: Vec<u64> = parts.iter().map(|p| p.0).collect();
        assert_eq!(boxes, vec![0, 2, 3, 4]);
        assert_eq!(parts[1].1.first, 0);
        assert_eq!(parts[3].1.out_first, 3);
    }

    #[test]
    fn requests_validate_bounds_and_layout() {
        let ok = [10, 2, 0, 2, 1, 4, 1, 4, 2, 1];
        assert!(Request::decode(&ok, &[5, 9]).is_ok());
        let out_of_bounds = [10, 2, 0, 2, 1, 4, 1, 4, 3, 1];
        assert!(Request::decode(&out_of_bounds, &[5, 9]).is_err());
        let overlapping = [10, 2, 0, 2, 1, 1, 1, 4, 2, 1];
        assert!(Request::decode(&overlapping, &[5, 9]).is_err());
    }

    #[test]
    fn combinations_cover_the_product() {
        let mut seen = Vec::new();
        for_each_combination(&[vec![1, 2], vec![7, 8, 9]], |c| {
            seen.push((c[0], c[1]));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[0], (1, 7));
        assert_eq!(seen[5], (2, 9));
    }
}
