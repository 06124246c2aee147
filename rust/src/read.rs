//! The read engine: resolves a region request to chunks and shard-index
//! entries, reads merged byte ranges, decodes in parallel and assembles
//! straight into the output with the cast fused.

use crate::assemble::{self, Destination, Walk};
use crate::buffer::{AlignedBuffer, SharedBuffer};
use crate::codec::{self, aligned_scratch, Elements};
use crate::error::Result;
use crate::prefetch::{self, Need, Prefetched};
use crate::progress::Progress;
use crate::region::{for_each_combination, split, DimSel, Request};
use crate::shard;
use crate::spec::{ArraySpec, ArrayToBytes, CodecChain, ShardingSpec};
use crate::storage::{self, Object, Store};
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// Neighbouring byte ranges of a local file closer than this are read in one operation.
pub(crate) const MERGE_GAP: u64 = 256 << 10;
/// Remote objects merge ranges this close too: every request costs the
/// server (and, on a real bucket, a fee), so a small gap's bytes are cheaper
/// than one more request, even with requests running concurrently.
pub(crate) const REMOTE_MERGE_GAP: u64 = 256 << 10;
/// Merged reads stop growing at this size, so that one thread reads the
/// next group while others decode the previous one, and memory stays bounded.
const MAX_MERGED_READ: u64 = 4 << 20;
/// Read buffers kept for reuse (sparing page faults and zeroing per read).
const POOLED_READ_BUFFERS: usize = 16;
/// Larger read buffers are freed rather than pooled.
const MAX_POOLED_READ_BUFFER: usize = 8 << 20;

/// Buffers for merged reads, reused across reads and calls.
static READ_BUFFERS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A read buffer of at least `len` bytes, reused when one is free.
pub(crate) fn take_read_buffer(len: usize) -> Vec<u8> {
    let pooled = READ_BUFFERS
        .lock()
        .map(|mut pool| pool.pop())
        .unwrap_or(None);
    let mut buf = pooled.unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, 0);
    }
    buf
}

/// Returns a read buffer to the pool.
pub(crate) fn give_read_buffer(buf: Vec<u8>) {
    if let Ok(mut pool) = READ_BUFFERS.lock() {
        if pool.len() < POOLED_READ_BUFFERS && buf.len() <= MAX_POOLED_READ_BUFFER {
            pool.push(buf);
        }
    }
}

/// An open array: its store and its decoded metadata.
#[derive(Debug)]
pub struct Array {
    /// The store holding the chunks.
    pub store: Store,
    /// Metadata of the array.
    pub spec: ArraySpec,
}

/// Whether a traversal decodes data or only counts what it would read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    Explain,
}

/// Shared state of one traversal.
struct Traversal<'a> {
    array: &'a Array,
    out_strides: Vec<u64>,
    dst: Option<Destination>,
    progress: &'a Progress,
    mode: Mode,
    /// Objects fetched up front (remote stores).
    prefetched: Option<Prefetched>,
}

thread_local! {
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Reads the region `request` of `array` into a new buffer.
pub fn read(array: &Array, request: &Request, progress: &Progress) -> Result<SharedBuffer> {
    let bytes = request.output_bytes()?;
    let buffer = Arc::new(
        AlignedBuffer::for_overwrite(bytes)
            .map_err(|e| e.context(format!("reading {}", array.store.describe(""))))?,
    );
    // SAFETY: the buffer is alive for this call and written only here.
    let dst = unsafe { Destination::new(buffer.as_ptr(), buffer.len(), request.out_dtype) };
    traverse(array, request, progress, Mode::Read, Some(dst))?;
    Ok(buffer)
}

/// Counts what reading `request` would touch, reading only shard indexes.
pub fn explain(array: &Array, request: &Request, progress: &Progress) -> Result<()> {
    traverse(array, request, progress, Mode::Explain, None)
}

fn traverse(
    array: &Array,
    request: &Request,
    progress: &Progress,
    mode: Mode,
    dst: Option<Destination>,
) -> Result<()> {
    let spec = &array.spec;
    let per_dim: Vec<Vec<(u64, DimSel)>> = request
        .dims
        .iter()
        .zip(&spec.chunk_shape)
        .map(|(d, &size)| {
            split(
                DimSel {
                    first: d.start,
                    count: d.count,
                    step: d.step,
                    out_first: 0,
                },
                size,
            )
        })
        .collect();
    let mut tasks: Vec<(Vec<u64>, Vec<DimSel>)> = Vec::new();
    for_each_combination(&per_dim, |parts| {
        tasks.push((
            parts.iter().map(|p| p.0).collect(),
            parts.iter().map(|p| p.1).collect(),
        ));
        Ok(())
    })?;
    Progress::add(&progress.outer_total, tasks.len() as u64);
    let prefetched = match &array.store {
        Store::Remote(remote) => {
            let needs: Vec<Need<'_>> = tasks
                .iter()
                .map(|(coords, sel)| Need {
                    key: spec.keys.key(coords),
                    sels: vec![sel],
                })
                .collect();
            Some(prefetch::prefetch(
                remote,
                spec,
                &needs,
                mode == Mode::Explain,
            )?)
        }
        Store::Fs(_) => None,
    };
    let traversal = Traversal {
        array,
        out_strides: request.dims.iter().map(|d| d.out_stride).collect(),
        dst,
        progress,
        mode,
        prefetched,
    };
    let run = |(coords, sel): &(Vec<u64>, Vec<DimSel>)| {
        progress.check()?;
        let key = spec.keys.key(coords);
        traversal
            .outer_chunk(&key, sel)
            .map_err(|e| e.context(array.store.describe(&key)))?;
        Progress::add(&progress.outer_done, 1);
        Ok(())
    };
    // One plain chunk: decode it on this thread; a hand-off to the pool
    // would cost more than it saves. Shards go to the pool, which splits
    // their inner chunks.
    if let [task] = tasks.as_slice() {
        if partial_shard(&spec.codecs).is_none() {
            return run(task);
        }
    }
    crate::pool().install(|| tasks.par_iter().try_for_each(run))
}

impl Traversal<'_> {
    fn elements(&self) -> Elements<'_> {
        Elements {
            dtype: self.array.spec.dtype,
            fill: &self.array.spec.fill,
        }
    }

    /// Writes the fill value to the output places of `sel` (`out`: output strides per dimension of `sel`).
    fn fill(&self, sel: &[DimSel], out: &[u64]) -> Result<()> {
        match &self.dst {
            Some(dst) => assemble::fill(
                &self.array.spec.fill,
                self.array.spec.dtype,
                &Walk::new(sel, out, out),
                dst,
            ),
            None => Ok(()),
        }
    }

    /// Reads `sel` of a chunk whose chain is a shard (possibly behind
    /// transposes, which make the shard see its dimensions permuted).
    fn shard_chain(
        &self,
        source: Source<'_>,
        chain: &CodecChain,
        s: &ShardingSpec,
        shape: &[u64],
        sel: &[DimSel],
        out: &[u64],
    ) -> Result<()> {
        if chain.transposes.is_empty() {
            return self.shard(source, s, shape, sel, out);
        }
        let order = chain.stored_order(shape.len());
        let permute = |v: &[u64]| order.iter().map(|&d| v[d]).collect::<Vec<_>>();
        let sel: Vec<DimSel> = order.iter().map(|&d| sel[d]).collect();
        self.shard(source, s, &permute(shape), &sel, &permute(out))
    }

    /// Reads the part `sel` of the outer chunk stored under `key`.
    fn outer_chunk(&self, key: &str, sel: &[DimSel]) -> Result<()> {
        let spec = &self.array.spec;
        let codecs = &spec.codecs;
        let object = match self.prefetched.as_ref().and_then(|p| p.get(key)) {
            Some(fetched) => fetched.clone().map(Object::Remote),
            None => self.array.store.open(key)?,
        };
        let out = &self.out_strides;
        match (object, partial_shard(codecs)) {
            (None, Some(s)) => {
                let order = codecs.stored_order(sel.len());
                let stored_sel: Vec<DimSel> = order.iter().map(|&d| sel[d]).collect();
                Progress::add(&self.progress.chunks_touched, count_inner(s, &stored_sel));
                self.fill(sel, out)
            }
            (None, None) => {
                Progress::add(&self.progress.chunks_touched, 1);
                self.fill(sel, out)
            }
            (Some(object), Some(s)) => self.shard_chain(
                Source::File(&object),
                codecs,
                s,
                &spec.chunk_shape,
                sel,
                out,
            ),
            (Some(object), None) => {
                Progress::add(&self.progress.chunks_touched, 1);
                Progress::add(&self.progress.chunks_stored, 1);
                Progress::add(&self.progress.bytes_read, object.len());
                Progress::add(&self.progress.read_ops, 1);
                if self.mode == Mode::Explain {
                    let bytes = codec::element_count(&spec.chunk_shape) * spec.dtype.size();
                    Progress::add(&self.progress.bytes_decoded, bytes as u64);
                    return Ok(());
                }
                let raw = object.read_all()?;
                self.decode_and_place(codecs, &spec.chunk_shape, &raw, sel, out)
            }
        }
    }

    /// Decodes one whole chunk into thread-local scratch and places `sel` of it.
    fn decode_and_place(
        &self,
        chain: &CodecChain,
        shape: &[u64],
        raw: &[u8],
        sel: &[DimSel],
        out: &[u64],
    ) -> Result<()> {
        let dtype = self.array.spec.dtype;
        let bytes = codec::element_count(shape) * dtype.size();
        Progress::add(&self.progress.bytes_decoded, bytes as u64);
        let Some(dst) = &self.dst else { return Ok(()) };
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            if scratch.len() * 8 < bytes {
                *scratch = aligned_scratch(bytes);
            }
            let decoded = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut scratch)[..bytes];
            codec::decode_chunk(chain, shape, raw, self.elements(), decoded)?;
            let walk = Walk::new(sel, &chain.logical_strides(shape), out);
            assemble::copy(decoded, dtype, &walk, dst)
        })
    }

    /// Reads the part `sel` of a shard: one index read, merged range reads
    /// of the inner chunks it needs, parallel decode.
    fn shard(
        &self,
        source: Source<'_>,
        s: &ShardingSpec,
        shape: &[u64],
        sel: &[DimSel],
        out: &[u64],
    ) -> Result<()> {
        let grid = s.grid(shape);
        let n = codec::element_count(&grid) as u64;
        let (_, len) = shard::index_range(s, n, source.len())?;
        let index = source.index(s, n)?;
        self.count_read(&source, len);
        let index = &index.entries;
        let per_dim: Vec<Vec<(u64, DimSel)>> = sel
            .iter()
            .zip(&s.inner_shape)
            .map(|(&d, &size)| split(d, size))
            .collect();
        let grid_strides = codec::c_strides(&grid);
        let mut stored = Vec::new();
        let mut missing = Vec::new();
        for_each_combination(&per_dim, |parts| {
            let linear: u64 = parts.iter().zip(&grid_strides).map(|(p, g)| p.0 * g).sum();
            let inner_sel: Vec<DimSel> = parts.iter().map(|p| p.1).collect();
            match index[linear as usize] {
                Some(range) => stored.push((range, inner_sel)),
                None => missing.push(inner_sel),
            }
            Ok(())
        })?;
        Progress::add(
            &self.progress.chunks_touched,
            (stored.len() + missing.len()) as u64,
        );
        Progress::add(&self.progress.chunks_stored, stored.len() as u64);
        for inner_sel in &missing {
            self.fill(inner_sel, out)?;
        }
        stored.sort_by_key(|((offset, _), _)| *offset);
        let gap = match &source {
            Source::File(object) => object.merge_gap(),
            Source::Memory(_) => MERGE_GAP,
        };
        let groups = merge_ranges(stored.iter().map(|(r, _)| *r), gap);
        let nested = partial_shard(&s.inner);
        if self.mode == Mode::Explain && nested.is_none() {
            for &(start, end, _) in &groups {
                self.count_read(&source, end - start);
            }
            let decoded = codec::element_count(&s.inner_shape) * self.array.spec.dtype.size();
            Progress::add(
                &self.progress.bytes_decoded,
                (decoded * stored.len()) as u64,
            );
            return Ok(());
        }
        // Each group is read and then decoded by whichever thread takes it,
        // so reading one group overlaps with decoding others.
        let mut group_jobs = Vec::with_capacity(groups.len());
        let mut next = 0;
        for &(start, end, count) in &groups {
            group_jobs.push((start, end, &stored[next..next + count]));
            next += count;
        }
        group_jobs
            .par_iter()
            .try_for_each(|&(start, end, entries)| {
                self.progress.check()?;
                let blob = source.fetch(start, end - start)?;
                self.count_read(&source, end - start);
                entries
                    .par_iter()
                    .try_for_each(|((offset, nbytes), inner_sel)| {
                        self.progress.check()?;
                        let at = (offset - start) as usize;
                        let raw = &blob[at..at + *nbytes as usize];
                        let result = match nested {
                            Some(inner) => self.shard_chain(
                                Source::Memory(raw),
                                &s.inner,
                                inner,
                                &s.inner_shape,
                                inner_sel,
                                out,
                            ),
                            None => {
                                self.decode_and_place(&s.inner, &s.inner_shape, raw, inner_sel, out)
                            }
                        };
                        result.map_err(|e| e.context(format!("inner chunk at byte {offset}")))
                    })
            })
    }

    fn count_read(&self, source: &Source<'_>, len: u64) {
        if matches!(source, Source::File(_)) {
            Progress::add(&self.progress.bytes_read, len);
            Progress::add(&self.progress.read_ops, 1);
        }
    }
}

/// The shard of a chain that can be read partially: `sharding_indexed`
/// with no bytes-to-bytes codec after it.
pub(crate) fn partial_shard(chain: &CodecChain) -> Option<&ShardingSpec> {
    match &chain.array_to_bytes {
        ArrayToBytes::Sharding(s) if chain.bytes_to_bytes.is_empty() => Some(s),
        _ => None,
    }
}

/// Number of inner chunks of a shard that the selection `sel` touches.
fn count_inner(s: &ShardingSpec, sel: &[DimSel]) -> u64 {
    sel.iter()
        .zip(&s.inner_shape)
        .map(|(&d, &size)| split(d, size).len() as u64)
        .product()
}

/// Groups sorted ranges into merged reads, joining neighbours at most `gap`
/// bytes apart: `(start, end, ranges in group)`.
pub(crate) fn merge_ranges(
    ranges: impl Iterator<Item = (u64, u64)>,
    gap: u64,
) -> Vec<(u64, u64, usize)> {
    let mut groups: Vec<(u64, u64, usize)> = Vec::new();
    for (offset, nbytes) in ranges {
        let end = offset + nbytes;
        match groups.last_mut() {
            Some(g) if offset <= g.1 + gap && end.max(g.1) - g.0 <= MAX_MERGED_READ => {
                g.1 = g.1.max(end);
                g.2 += 1;
            }
            _ => groups.push((offset, end, 1)),
        }
    }
    groups
}

/// Where shard bytes come from: a stored object or an enclosing shard in memory.
enum Source<'a> {
    File(&'a Object),
    Memory(&'a [u8]),
}

impl Source<'_> {
    fn len(&self) -> u64 {
        match self {
            Source::File(f) => f.len(),
            Source::Memory(m) => m.len() as u64,
        }
    }

    /// The decoded index of a shard with `n` inner chunks (cached for stored objects).
    fn index(&self, s: &ShardingSpec, n: u64) -> Result<Arc<crate::index_cache::CachedIndex>> {
        match self {
            Source::File(f) => storage::load_index(f, s, n),
            Source::Memory(m) => {
                let (start, len) = shard::index_range(s, n, m.len() as u64)?;
                let bytes = &m[start as usize..(start + len) as usize];
                Ok(Arc::new(crate::index_cache::CachedIndex {
                    len: m.len() as u64,
                    stamp: 0,
                    entries: shard::decode_index(s, bytes, m.len() as u64)?,
                }))
            }
        }
    }

    /// The bytes `[offset, offset + len)`: read into a pooled buffer from a
    /// file, borrowed from memory. Ranges were validated against `len()`.
    fn fetch(&self, offset: u64, len: u64) -> Result<Fetched<'_>> {
        match self {
            Source::File(f) => {
                let mut buf = take_read_buffer(len as usize);
                f.read_into(offset, len, &mut buf)?;
                Ok(Fetched::Pooled {
                    buf,
                    len: len as usize,
                })
            }
            Source::Memory(m) => Ok(Fetched::Borrowed(
                &m[offset as usize..(offset + len) as usize],
            )),
        }
    }
}

/// Bytes fetched from a [`Source`]; a pooled buffer goes back to the pool on drop.
enum Fetched<'a> {
    Pooled { buf: Vec<u8>, len: usize },
    Borrowed(&'a [u8]),
}

impl std::ops::Deref for Fetched<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Fetched::Pooled { buf, len } => &buf[..*len],
            Fetched::Borrowed(bytes) => bytes,
        }
    }
}

impl Drop for Fetched<'_> {
    fn drop(&mut self) {
        if let Fetched::Pooled { buf, .. } = self {
            give_read_buffer(std::mem::take(buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_close_ranges_only() {
        let groups = merge_ranges(
            [(0, 10), (10, 5), (MERGE_GAP + 100, 1)].into_iter(),
            MERGE_GAP,
        );
        assert_eq!(
            groups,
            vec![(0, 15, 2), (MERGE_GAP + 100, MERGE_GAP + 101, 1)]
        );
    }
}
