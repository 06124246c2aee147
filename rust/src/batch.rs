//! Batch assembly for the streaming pipeline (`src/pipeline.ts`): many
//! samples — boxes of possibly different arrays, possibly reaching past an
//! array's edges — assembled into one `[n, ...sample]` tensor. Every chunk a
//! batch touches is read and decoded once and scattered into each sample
//! that needs it, with the dtype cast fused into the copy; places outside an
//! array get its fill value.

use crate::assemble::{self, Destination, Walk};
use crate::buffer::{AlignedBuffer, SharedBuffer};
use crate::codec::{self, aligned_scratch, Elements};
use crate::device_plan::{DevicePlan, SourceChunk};
use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use crate::prefetch::{self, Need};
use crate::read::{give_read_buffer, merge_ranges, partial_shard, take_read_buffer, Array};
use crate::region::{for_each_combination, split, DimSel};
use crate::shard;
use crate::spec::ShardingSpec;
use crate::storage::{self, Object, RemoteObject, Store};
use rayon::prelude::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Stages timed by [`Stats`], in snapshot order.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    /// Parsing the batch descriptor and planning chunk jobs.
    Plan = 0,
    /// Opening and reading chunk, shard and index bytes.
    Io = 1,
    /// Decompressing chunks.
    Decode = 2,
    /// Copying (with the cast) and filling into the batch.
    Assemble = 3,
    /// Host→device copies of finished batches.
    Transfer = 4,
}

/// Number of values in [`Stats::snapshot`]: per stage, nanoseconds, bytes and count.
pub const STAT_COUNT: usize = 15;

/// Per-stage totals over every batch of an executor. Times are summed
/// over worker threads (thread time, not wall time).
#[derive(Debug, Default)]
pub struct Stats {
    values: [AtomicU64; STAT_COUNT],
}

impl Stats {
    /// Adds the time since `since`, `bytes` and `count` to `stage`.
    pub fn add(&self, stage: Stage, since: Instant, bytes: u64, count: u64) {
        let base = stage as usize * 3;
        let ns = since.elapsed().as_nanos() as u64;
        self.values[base].fetch_add(ns, Ordering::Relaxed);
        self.values[base + 1].fetch_add(bytes, Ordering::Relaxed);
        self.values[base + 2].fetch_add(count, Ordering::Relaxed);
    }

    /// Adds `elapsed` (measured elsewhere, such as on a device), `bytes` and `count` to `stage`.
    pub fn add_duration(&self, stage: Stage, elapsed: std::time::Duration, bytes: u64, count: u64) {
        let base = stage as usize * 3;
        self.values[base].fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        self.values[base + 1].fetch_add(bytes, Ordering::Relaxed);
        self.values[base + 2].fetch_add(count, Ordering::Relaxed);
    }

    /// `[ns, bytes, count]` for each stage, in [`Stage`] order.
    pub fn snapshot(&self) -> [u64; STAT_COUNT] {
        std::array::from_fn(|i| self.values[i].load(Ordering::Relaxed))
    }
}

/// Assembles batches on its own worker pool, counting the bytes of the
/// batches it made that are still alive (held by views or DLPack consumers).
#[derive(Debug)]
pub struct Executor {
    pool: rayon::ThreadPool,
    live: Arc<AtomicU64>,
    stats: Stats,
}

/// One sample box along one array dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BoxDim {
    /// First index; negative or past the end where the box leaves the array.
    start: i64,
    /// Number of indices.
    count: u64,
    /// Whether the dimension is an axis of the sample (else a single index).
    keep: bool,
}

/// A decoded batch descriptor.
#[derive(Debug)]
struct BatchDesc {
    out_dtype: DType,
    sample_shape: Vec<u64>,
    samples: Vec<(usize, Vec<BoxDim>)>,
}

/// Where one sample goes and what part of its array it reads.
struct Placement {
    dst: Destination,
    /// Output strides per array dimension (0 for single-index dimensions).
    out_strides: Vec<u64>,
    /// Full sample selection (for filling), one entry per array dimension.
    whole: Vec<DimSel>,
    /// Whether part of the box lies outside the array.
    clipped: bool,
}

/// The part of one sample inside one chunk, in chunk coordinates.
struct Target {
    sample: usize,
    sel: Vec<DimSel>,
}

/// All samples' parts inside one outer chunk of one array.
struct ChunkJob {
    array: usize,
    coords: Vec<u64>,
    targets: Vec<Target>,
}

thread_local! {
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

impl Executor {
    /// An executor with `threads` workers (0: `TESSERA_THREADS`, else the core count).
    pub fn new(threads: usize) -> Result<Self> {
        let threads = if threads > 0 {
            threads
        } else {
            crate::pool().current_num_threads()
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("tessera-batch-{i}"))
            .build()
            .map_err(|e| Error::invalid(format!("cannot start {threads} batch threads: {e}")))?;
        Ok(Self {
            pool,
            live: Arc::new(AtomicU64::new(0)),
            stats: Stats::default(),
        })
    }

    /// Bytes of this executor's batches that are still alive.
    pub fn live_bytes(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Per-stage totals.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The live-bytes counter, for batches made elsewhere (on a device).
    pub fn live_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.live)
    }

    /// Runs `f` on the executor's worker pool.
    pub fn install<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.pool.install(f)
    }

    /// Assembles the batch described by `words` (see [`decode_desc`]) from
    /// `arrays` into a new buffer.
    pub fn assemble(&self, arrays: &[&Array], words: &[i64]) -> Result<SharedBuffer> {
        let planned = Instant::now();
        let desc = decode_desc(words, arrays)?;
        let sample_bytes = desc
            .sample_shape
            .iter()
            .try_fold(desc.out_dtype.size() as u64, |acc, &n| acc.checked_mul(n))
            .filter(|&b| b <= isize::MAX as u64)
            .ok_or_else(|| Error::invalid("batch descriptor: sample is too large"))?
            as usize;
        let bytes = sample_bytes
            .checked_mul(desc.samples.len())
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| Error::invalid("batch descriptor: batch is too large"))?;
        let buffer = AlignedBuffer::for_overwrite(bytes)?;
        let placements = place(&desc, &buffer, sample_bytes, arrays);
        let jobs = plan_jobs(&desc, arrays);
        self.stats.add(
            Stage::Plan,
            planned,
            bytes as u64,
            desc.samples.len() as u64,
        );
        let fetched = Instant::now();
        let prefetched = prefetch_remote(arrays, &jobs)?;
        if !prefetched.is_empty() {
            self.stats.add(Stage::Io, fetched, 0, 0);
        }

        let batch = Batch {
            arrays,
            placements: &placements,
            samples: &desc.samples,
            stats: &self.stats,
            prefetched: &prefetched,
        };
        self.pool.install(|| -> Result<()> {
            placements
                .par_iter()
                .enumerate()
                .filter(|(_, p)| p.clipped)
                .try_for_each(|(i, p)| batch.fill(i, &p.whole))?;
            jobs.par_iter().try_for_each(|job| batch.chunk(job))
        })?;
        Ok(self.track(buffer))
    }

    /// Wraps a batch so that its bytes count as live until its last reference drops.
    fn track(&self, buffer: AlignedBuffer) -> SharedBuffer {
        let (ptr, len) = (buffer.as_ptr(), buffer.len());
        let live = Arc::clone(&self.live);
        live.fetch_add(len as u64, Ordering::Relaxed);
        Arc::new(AlignedBuffer::foreign(
            ptr,
            len,
            Box::new(move || {
                drop(buffer);
                live.fetch_sub(len as u64, Ordering::Relaxed);
            }),
        ))
    }
}

/// Decodes `[out dtype, n, sample rank, sample shape…, then per sample:
/// array index, rank, (start, count, keep) × rank]`. The kept counts of each
/// sample, in order, must equal the sample shape; other counts must be 1.
fn decode_desc(words: &[i64], arrays: &[&Array]) -> Result<BatchDesc> {
    let bad = |m: String| Error::invalid(format!("batch descriptor: {m}"));
    let mut pos = 0usize;
    let mut next = |what: &str| -> Result<i64> {
        let v = words
            .get(pos)
            .copied()
            .ok_or_else(|| bad(format!("ends early, reading {what}")))?;
        pos += 1;
        Ok(v)
    };
    let out_dtype = DType::from_code(next("output dtype")?)?;
    let n = next("sample count")?;
    let rank = next("sample rank")?;
    if !(1..=1 << 20).contains(&n) || !(0..=32).contains(&rank) {
        return Err(bad(format!("{n} samples of rank {rank}")));
    }
    let sample_shape = (0..rank)
        .map(|_| {
            let v = next("sample shape")?;
            u64::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| bad(format!("sample size {v}")))
        })
        .collect::<Result<Vec<u64>>>()?;
    let mut samples = Vec::with_capacity(n as usize);
    for s in 0..n {
        let index = next("array index")?;
        let array = usize::try_from(index)
            .ok()
            .and_then(|i| arrays.get(i).map(|a| (i, a)))
            .ok_or_else(|| {
                bad(format!(
                    "sample {s} names array {index} of {}",
                    arrays.len()
                ))
            })?;
        let shape = &array.1.spec.shape;
        let r = next("sample box rank")?;
        if r != shape.len() as i64 {
            return Err(bad(format!(
                "sample {s} has rank {r} for an array of rank {}",
                shape.len()
            )));
        }
        let mut dims = Vec::with_capacity(shape.len());
        for _ in 0..shape.len() {
            let start = next("box start")?;
            let count = next("box count")?;
            let keep = next("box keep")? != 0;
            let count = u64::try_from(count)
                .ok()
                .filter(|&c| {
                    c > 0 && i64::try_from(c).is_ok_and(|c| start.checked_add(c).is_some())
                })
                .ok_or_else(|| bad(format!("sample {s}: box of {count} from {start}")))?;
            dims.push(BoxDim { start, count, keep });
        }
        let kept: Vec<u64> = dims.iter().filter(|d| d.keep).map(|d| d.count).collect();
        if kept != sample_shape || dims.iter().any(|d| !d.keep && d.count != 1) {
            return Err(bad(format!(
                "sample {s} has shape {kept:?}, the batch wants {sample_shape:?}"
            )));
        }
        samples.push((array.0, dims));
    }
    if pos != words.len() {
        return Err(bad(format!("{} words left over", words.len() - pos)));
    }
    Ok(BatchDesc {
        out_dtype,
        sample_shape,
        samples,
    })
}

/// Where each sample goes in `buffer`, and whether it leaves its array.
fn place(
    desc: &BatchDesc,
    buffer: &AlignedBuffer,
    sample_bytes: usize,
    arrays: &[&Array],
) -> Vec<Placement> {
    layout(desc, arrays)
        .into_iter()
        .enumerate()
        .map(|(i, (out_strides, whole, clipped))| {
            // SAFETY: samples are disjoint `sample_bytes` slices of `buffer`,
            // which outlives the assembly.
            let dst = unsafe {
                Destination::new(
                    buffer.as_ptr().add(i * sample_bytes),
                    sample_bytes,
                    desc.out_dtype,
                )
            };
            Placement {
                dst,
                out_strides,
                whole,
                clipped,
            }
        })
        .collect()
}

/// Per sample: output strides per array dimension (0 for single-index
/// dimensions), the whole-sample selection, and whether it leaves its array.
fn layout(desc: &BatchDesc, arrays: &[&Array]) -> Vec<(Vec<u64>, Vec<DimSel>, bool)> {
    let sample_strides = codec::c_strides(&desc.sample_shape);
    desc.samples
        .iter()
        .map(|(a, dims)| {
            let shape = &arrays[*a].spec.shape;
            let mut kept = sample_strides.iter();
            let out_strides: Vec<u64> = dims
                .iter()
                .map(|d| {
                    if d.keep {
                        *kept.next().unwrap_or(&0)
                    } else {
                        0
                    }
                })
                .collect();
            let whole = dims
                .iter()
                .map(|d| DimSel {
                    first: 0,
                    count: d.count,
                    step: 1,
                    out_first: 0,
                })
                .collect();
            let clipped = dims
                .iter()
                .zip(shape)
                .any(|(d, &size)| d.start < 0 || d.start + d.count as i64 > size as i64);
            (out_strides, whole, clipped)
        })
        .collect()
}

/// Groups the in-array parts of every sample by the outer chunk they touch.
fn plan_jobs(desc: &BatchDesc, arrays: &[&Array]) -> Vec<ChunkJob> {
    let mut jobs: HashMap<(usize, Vec<u64>), Vec<Target>> = HashMap::new();
    for (i, (a, dims)) in desc.samples.iter().enumerate() {
        let spec = &arrays[*a].spec;
        let mut per_dim = Vec::with_capacity(dims.len());
        for ((d, &size), &chunk) in dims.iter().zip(&spec.shape).zip(&spec.chunk_shape) {
            let lo = d.start.max(0);
            let hi = (d.start + d.count as i64).min(size as i64);
            if lo >= hi {
                per_dim.clear();
                break;
            }
            let sel = DimSel {
                first: lo as u64,
                count: (hi - lo) as u64,
                step: 1,
                out_first: (lo - d.start) as u64,
            };
            per_dim.push(split(sel, chunk));
        }
        if per_dim.len() != dims.len() {
            continue; // wholly outside: filled
        }
        // Cannot fail: the closure never errs.
        let _ = for_each_combination(&per_dim, |parts| {
            jobs.entry((*a, parts.iter().map(|p| p.0).collect()))
                .or_default()
                .push(Target {
                    sample: i,
                    sel: parts.iter().map(|p| p.1).collect(),
                });
            Ok(())
        });
    }
    let mut jobs: Vec<ChunkJob> = jobs
        .into_iter()
        .map(|((array, coords), targets)| ChunkJob {
            array,
            coords,
            targets,
        })
        .collect();
    jobs.sort_by(|a, b| (a.array, &a.coords).cmp(&(b.array, &b.coords)));
    jobs
}

/// Plans the device assembly of the batch `words` describes (see
/// [`decode_desc`]) with the executor's own planning: the same samples,
/// chunk jobs and inner-chunk splits, recorded as kernel boxes instead of
/// run. Shard indexes are read; chunk data is not.
pub fn device_plan(arrays: &[&Array], words: &[i64]) -> Result<DevicePlan> {
    let desc = decode_desc(words, arrays)?;
    let sample_elements = desc
        .sample_shape
        .iter()
        .try_fold(1u64, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| Error::invalid("batch descriptor: sample is too large"))?;
    let elements = sample_elements
        .checked_mul(desc.samples.len() as u64)
        .filter(|&n| n <= isize::MAX as u64 / 4)
        .ok_or_else(|| Error::invalid("batch descriptor: batch is too large"))?;
    let mut plan = DevicePlan::new(desc.out_dtype, elements)?;
    let layouts = layout(&desc, arrays);
    let offset = |sample: usize| sample as u64 * sample_elements;
    let fill = |plan: &mut DevicePlan, sample: usize, sel: &[DimSel]| -> Result<()> {
        let spec = &arrays[desc.samples[sample].0].spec;
        let strides = &layouts[sample].0;
        let bits = fill_bits(&spec.fill, spec.dtype, desc.out_dtype)?;
        plan.add_fill(&Walk::new(sel, strides, strides), offset(sample), bits)
    };
    // Fills cover only what lies outside the array, so that fill and copy
    // boxes are disjoint and run in one launch.
    for (i, (_, _, clipped)) in layouts.iter().enumerate() {
        if *clipped {
            let (a, dims) = &desc.samples[i];
            let bounds: Vec<(i64, u64)> = dims.iter().map(|d| (d.start, d.count)).collect();
            for sel in crate::device_plan::outside(&bounds, &arrays[*a].spec.shape) {
                fill(&mut plan, i, &sel)?;
            }
        }
    }
    for job in plan_jobs(&desc, arrays) {
        let array = arrays[job.array];
        let spec = &array.spec;
        let key = spec.keys.key(&job.coords);
        let context = |e: Error| e.context(array.store.describe(&key));
        let object = array.store.open(&key).map_err(context)?;
        let shard = partial_shard(&spec.codecs).filter(|_| spec.codecs.transposes.is_empty());
        match (object, shard) {
            (None, _) => {
                for t in &job.targets {
                    fill(&mut plan, t.sample, &t.sel)?;
                }
            }
            (Some(object), Some(s)) => {
                let grid = s.grid(&spec.chunk_shape);
                let n = codec::element_count(&grid) as u64;
                let index = storage::load_index(&object, s, n).map_err(context)?;
                let index = &index.entries;
                let strides = s.inner.logical_strides(&s.inner_shape);
                for (linear, targets) in inner_targets(&job, s, &grid)? {
                    let Some(range) = index[linear as usize] else {
                        for (sample, sel) in &targets {
                            fill(&mut plan, *sample, sel)?;
                        }
                        continue;
                    };
                    let source = plan.add_source(SourceChunk {
                        array: job.array,
                        key: key.clone(),
                        range: Some(range),
                    });
                    for (sample, sel) in &targets {
                        let walk = Walk::new(sel, &strides, &layouts[*sample].0);
                        plan.add_copy(&walk, offset(*sample), source, spec.dtype)?;
                    }
                }
            }
            (Some(_), None) => {
                let source = plan.add_source(SourceChunk {
                    array: job.array,
                    key: key.clone(),
                    range: None,
                });
                let strides = spec.codecs.logical_strides(&spec.chunk_shape);
                for t in &job.targets {
                    let walk = Walk::new(&t.sel, &strides, &layouts[t.sample].0);
                    plan.add_copy(&walk, offset(t.sample), source, spec.dtype)?;
                }
            }
        }
    }
    Ok(plan)
}

/// The fill value `fill` (bytes of `dtype`) cast to `out` (float32 or
/// bfloat16) as the CPU executor casts it, as kernel bits.
fn fill_bits(fill: &[u8], dtype: DType, out: DType) -> Result<u32> {
    let mut value = 0u32;
    // SAFETY: `value` is 4 bytes, aligned for float32 and bfloat16, and
    // outlives the call.
    let dst = unsafe { Destination::new((&mut value as *mut u32).cast(), 4, out) };
    assemble::fill(fill, dtype, &Walk::new(&[], &[], &[]), &dst)?;
    Ok(u32::from_le(value)
        & if out == DType::BFloat16 {
            0xffff
        } else {
            u32::MAX
        })
}

/// Splits a shard job's targets by inner chunk (keyed by the inner chunk's
/// linear index in the shard's `grid`), in inner-chunk coordinates.
fn inner_targets(job: &ChunkJob, s: &ShardingSpec, grid: &[u64]) -> Result<InnerTargets> {
    let grid_strides = codec::c_strides(grid);
    let mut inner: InnerTargets = BTreeMap::new();
    for t in &job.targets {
        let per_dim: Vec<Vec<(u64, DimSel)>> = t
            .sel
            .iter()
            .zip(&s.inner_shape)
            .map(|(&d, &size)| split(d, size))
            .collect();
        for_each_combination(&per_dim, |parts| {
            let linear: u64 = parts.iter().zip(&grid_strides).map(|(p, g)| p.0 * g).sum();
            inner
                .entry(linear)
                .or_default()
                .push((t.sample, parts.iter().map(|p| p.1).collect()));
            Ok(())
        })?;
    }
    Ok(inner)
}

/// Per inner chunk (linear index): the samples it serves and their selections.
type InnerTargets = BTreeMap<u64, Vec<(usize, Vec<DimSel>)>>;

/// Objects of remote arrays fetched before assembly, by (array, chunk key).
type Prefetched = HashMap<(usize, String), Option<RemoteObject>>;

/// Fetches what `jobs` need from remote arrays (see [`crate::prefetch`]):
/// each remote array on its own thread, so arrays do not wait on each other.
fn prefetch_remote(arrays: &[&Array], jobs: &[ChunkJob]) -> Result<Prefetched> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = arrays
            .iter()
            .enumerate()
            .filter_map(|(a, array)| match &array.store {
                Store::Remote(remote) => Some((a, array, remote)),
                Store::Fs(_) => None,
            })
            .map(|(a, array, remote)| {
                scope.spawn(move || -> Result<Prefetched> {
                    let needs: Vec<Need<'_>> = jobs
                        .iter()
                        .filter(|j| j.array == a)
                        .map(|j| Need {
                            key: array.spec.keys.key(&j.coords),
                            sels: j.targets.iter().map(|t| t.sel.as_slice()).collect(),
                        })
                        .collect();
                    let fetched = prefetch::prefetch(remote, &array.spec, &needs, false)?;
                    Ok(fetched
                        .into_iter()
                        .map(|(k, o)| ((a, k), o))
                        .collect::<Prefetched>())
                })
            })
            .collect();
        let mut out = Prefetched::new();
        for handle in handles {
            let fetched = handle
                .join()
                .map_err(|_| Error::new(ErrorKind::Internal, "remote prefetch panicked"))??;
            out.extend(fetched);
        }
        Ok(out)
    })
}

/// Shared state of one batch's assembly.
struct Batch<'a> {
    arrays: &'a [&'a Array],
    placements: &'a [Placement],
    samples: &'a [(usize, Vec<BoxDim>)],
    stats: &'a Stats,
    prefetched: &'a Prefetched,
}

impl Batch<'_> {
    fn array_of(&self, sample: usize) -> &Array {
        self.arrays[self.samples[sample].0]
    }

    /// Writes the fill value to `sel` of sample `sample`.
    fn fill(&self, sample: usize, sel: &[DimSel]) -> Result<()> {
        let started = Instant::now();
        let p = &self.placements[sample];
        let spec = &self.array_of(sample).spec;
        let walk = Walk::new(sel, &p.out_strides, &p.out_strides);
        assemble::fill(&spec.fill, spec.dtype, &walk, &p.dst)?;
        let n: u64 = sel.iter().map(|d| d.count).product();
        self.stats
            .add(Stage::Assemble, started, n * p.dst.dtype().size() as u64, 1);
        Ok(())
    }

    /// Copies `sel` of a decoded chunk (laid out with `strides`) into sample `sample`.
    fn copy(&self, decoded: &[u8], strides: &[u64], sample: usize, sel: &[DimSel]) -> Result<()> {
        let started = Instant::now();
        let p = &self.placements[sample];
        let dtype = self.array_of(sample).spec.dtype;
        assemble::copy(
            decoded,
            dtype,
            &Walk::new(sel, strides, &p.out_strides),
            &p.dst,
        )?;
        let n: u64 = sel.iter().map(|d| d.count).product();
        self.stats
            .add(Stage::Assemble, started, n * p.dst.dtype().size() as u64, 1);
        Ok(())
    }

    /// Reads one outer chunk and places it into every sample that needs it.
    fn chunk(&self, job: &ChunkJob) -> Result<()> {
        let array = self.arrays[job.array];
        let spec = &array.spec;
        let key = spec.keys.key(&job.coords);
        let context = |e: Error| e.context(array.store.describe(&key));
        let started = Instant::now();
        let object = match self.prefetched.get(&(job.array, key.clone())) {
            Some(fetched) => fetched.clone().map(Object::Remote),
            None => array.store.open(&key).map_err(context)?,
        };
        self.stats.add(Stage::Io, started, 0, 0);
        let shard = partial_shard(&spec.codecs).filter(|_| spec.codecs.transposes.is_empty());
        match (object, shard) {
            (None, _) => job
                .targets
                .iter()
                .try_for_each(|t| self.fill(t.sample, &t.sel)),
            (Some(object), Some(s)) => self.shard(job, &object, s).map_err(context),
            (Some(object), None) => {
                let started = Instant::now();
                let raw = object.read_all().map_err(context)?;
                self.stats.add(Stage::Io, started, raw.len() as u64, 1);
                let strides = spec.codecs.logical_strides(&spec.chunk_shape);
                self.decode(
                    job.array,
                    &spec.codecs,
                    &spec.chunk_shape,
                    &raw,
                    |decoded| {
                        job.targets
                            .iter()
                            .try_for_each(|t| self.copy(decoded, &strides, t.sample, &t.sel))
                    },
                )
                .map_err(context)
            }
        }
    }

    /// Decodes one chunk into thread-local scratch and hands it to `place`.
    fn decode(
        &self,
        array: usize,
        chain: &crate::spec::CodecChain,
        shape: &[u64],
        raw: &[u8],
        place: impl FnOnce(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let spec = &self.arrays[array].spec;
        let bytes = codec::element_count(shape) * spec.dtype.size();
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            if scratch.len() * 8 < bytes {
                *scratch = aligned_scratch(bytes);
            }
            let decoded = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut scratch)[..bytes];
            let started = Instant::now();
            let elements = Elements {
                dtype: spec.dtype,
                fill: &spec.fill,
            };
            codec::decode_chunk(chain, shape, raw, elements, decoded)?;
            self.stats.add(Stage::Decode, started, bytes as u64, 1);
            place(decoded)
        })
    }

    /// Reads the inner chunks of a shard that the job's samples need:
    /// one index read, merged range reads, each inner chunk decoded once.
    fn shard(&self, job: &ChunkJob, object: &Object, s: &ShardingSpec) -> Result<()> {
        let spec = &self.arrays[job.array].spec;
        let grid = s.grid(&spec.chunk_shape);
        let n = codec::element_count(&grid) as u64;
        let started = Instant::now();
        let (_, len) = shard::index_range(s, n, object.len())?;
        let index = storage::load_index(object, s, n)?;
        self.stats.add(Stage::Io, started, len, 1);
        let index = &index.entries;
        let inner = inner_targets(job, s, &grid)?;
        let mut stored = Vec::new();
        for (linear, targets) in &inner {
            match index[*linear as usize] {
                Some(range) => stored.push((range, targets)),
                None => targets
                    .iter()
                    .try_for_each(|(sample, sel)| self.fill(*sample, sel))?,
            }
        }
        stored.sort_by_key(|((offset, _), _)| *offset);
        let groups = merge_ranges(stored.iter().map(|(r, _)| *r), object.merge_gap());
        let mut group_jobs = Vec::with_capacity(groups.len());
        let mut next = 0;
        for &(start, end, count) in &groups {
            group_jobs.push((start, end, &stored[next..next + count]));
            next += count;
        }
        let strides = s.inner.logical_strides(&s.inner_shape);
        group_jobs
            .par_iter()
            .try_for_each(|&(start, end, entries)| {
                let started = Instant::now();
                let len = (end - start) as usize;
                let mut blob = take_read_buffer(len);
                let read = object.read_into(start, end - start, &mut blob);
                self.stats.add(Stage::Io, started, end - start, 1);
                let result = read.and_then(|()| {
                    entries
                        .par_iter()
                        .try_for_each(|((offset, nbytes), targets)| {
                            let at = (offset - start) as usize;
                            let raw = &blob[at..at + *nbytes as usize];
                            self.decode(job.array, &s.inner, &s.inner_shape, raw, |decoded| {
                                targets.iter().try_for_each(|(sample, sel)| {
                                    self.copy(decoded, &strides, *sample, sel)
                                })
                            })
                            .map_err(|e| e.context(format!("inner chunk at byte {offset}")))
                        })
                });
                give_read_buffer(blob);
                result
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_plan::SourceLayout;
    use crate::error::ErrorKind;
    use crate::spec::ArraySpec;
    use crate::store::FsStore;

    /// A 1-D uint16 array of `n` elements in plain, uncompressed chunks of 4, holding 0, 1, 2…
    fn counting_array(dir: &std::path::Path, n: u64) -> Array {
        // Descriptor: see ArraySpec::decode (version 1, plain chunks, bytes codec).
        let spec = test_spec(n);
        let store = FsStore::new(dir);
        for c in 0..n.div_ceil(4) {
            let values: Vec<u16> = (c * 4..c * 4 + 4).map(|v| v as u16).collect();
            store
                .write(&spec.keys.key(&[c]), bytemuck::cast_slice(&values))
                .unwrap();
        }
        Array {
            store: store.into(),
            spec,
        }
    }

    fn test_spec(n: u64) -> ArraySpec {
        ArraySpec {
            dtype: DType::UInt16,
            shape: vec![n],
            chunk_shape: vec![4],
            fill: 7u16.to_le_bytes().to_vec(),
            keys: crate::spec::KeyEncoding::Default(b'/'),
            codecs: crate::spec::CodecChain {
                transposes: vec![],
                array_to_bytes: crate::spec::ArrayToBytes::Bytes { big_endian: false },
                bytes_to_bytes: vec![],
            },
        }
    }

    #[test]
    fn samples_cross_chunks_and_edges_and_share_chunks() {
        let dir = std::env::temp_dir().join(format!("tessera-batch-{}", std::process::id()));
        let array = counting_array(&dir, 10);
        let exec = Executor::new(2).unwrap();
        // Three samples of 5: [-2, 3), [3, 8), [8, 13) as float32.
        let words = [
            DType::Float32 as i64,
            3,
            1,
            5,
            0,
            1,
            -2,
            5,
            1,
            0,
            1,
            3,
            5,
            1,
            0,
            1,
            8,
            5,
            1,
        ];
        let batch = exec.assemble(&[&array], &words).unwrap();
        let out: &[f32] = unsafe { std::slice::from_raw_parts(batch.as_ptr().cast(), 15) };
        let expected = [7., 7., 0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 7., 7., 7.];
        assert_eq!(out, expected);
        assert_eq!(exec.live_bytes(), 60);
        let stats = exec.stats().snapshot();
        // Chunks 0, 1, 2 decoded once each although chunk 1 and 2 serve two samples each.
        assert_eq!(stats[Stage::Decode as usize * 3 + 2], 3);
        drop(batch);
        assert_eq!(exec.live_bytes(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rejects_shapes_that_do_not_match_the_sample() {
        let dir = std::env::temp_dir().join(format!("tessera-batch-bad-{}", std::process::id()));
        let array = counting_array(&dir, 8);
        let exec = Executor::new(1).unwrap();
        let words = [DType::Float32 as i64, 1, 1, 5, 0, 1, 0, 4, 1];
        let e = exec.assemble(&[&array], &words).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        let words = [DType::Float32 as i64, 1, 1, 4, 1, 1, 0, 4, 1];
        assert!(exec.assemble(&[&array], &words).is_err());
        // Hostile sizes are errors, not overflows or huge allocations.
        let huge = 1i64 << 62;
        let words = [DType::Float32 as i64, 1, 1, huge, 0, 1, 0, huge, 1];
        let e = exec.assemble(&[&array], &words).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        let words = [DType::Float32 as i64, 1, 1, 4, 0, 1, i64::MAX - 1, 4, 1];
        assert!(exec.assemble(&[&array], &words).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A `[10, 9, 7]` array of `dtype` in `dir`: sharded (shards of 6³,
    /// inner chunks of 3³) or in plain transposed chunks of `[4, 5, 3]`,
    /// zstd-compressed, holding random bits with one chunk left unstored.
    fn random_array(dir: &std::path::Path, dtype: DType, sharded: bool, seed: u64) -> Array {
        use crate::spec::{ArrayToBytes, BytesCodec, CodecChain, KeyEncoding, ShardingSpec};
        let zstd = CodecChain {
            transposes: vec![],
            array_to_bytes: ArrayToBytes::Bytes { big_endian: false },
            bytes_to_bytes: vec![BytesCodec::Zstd {
                level: 1,
                checksum: false,
            }],
        };
        let (chunk_shape, codecs) = if sharded {
            let sharding = ShardingSpec {
                inner_shape: vec![3, 3, 3],
                index_at_start: false,
                inner: zstd,
                index_big_endian: false,
                index_crc32c: true,
            };
            let codecs = CodecChain {
                transposes: vec![],
                array_to_bytes: ArrayToBytes::Sharding(Box::new(sharding)),
                bytes_to_bytes: vec![],
            };
            (vec![6, 6, 6], codecs)
        } else {
            let codecs = CodecChain {
                transposes: vec![vec![2, 0, 1]],
                ..zstd
            };
            (vec![4, 5, 3], codecs)
        };
        let size = dtype.size();
        let spec = ArraySpec {
            dtype,
            shape: vec![10, 9, 7],
            chunk_shape,
            fill: [0x42u8, 0x40, 0x40, 0x40][..size].to_vec(),
            keys: KeyEncoding::Default(b'/'),
            codecs,
        };
        let mut state = seed | 1;
        let mut data: Vec<u8> = (0..630 * size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        // Special values in every fifth element: zeros, all ones (-1, NaN),
        // infinities, subnormals, and an integer whose rounding to f32 and
        // then to bf16 differs from rounding it to bf16 once.
        let specials: [u32; 7] = [
            0,
            u32::MAX,
            0x7f80_0000,
            0x7c00,
            0x0001,
            0x8000_0001,
            0x40bf_ffc0,
        ];
        for (k, at) in (0..630).step_by(5).enumerate() {
            let v = specials[k % specials.len()].to_le_bytes();
            data[at * size..(at + 1) * size].copy_from_slice(&v[..size]);
        }
        // The first (inner) chunk holds only the fill value: it is not stored.
        for z in 0..3 {
            for y in 0..3 {
                for x in 0..3 {
                    let at = ((z * 9 + y) * 7 + x) * size;
                    data[at..at + size].copy_from_slice(&spec.fill);
                }
            }
        }
        let array = Array {
            store: FsStore::new(dir).into(),
            spec,
        };
        if !sharded {
            // Also empty the first plain chunk, [0, 4) × [0, 5) × [0, 3).
            for z in 0..4 {
                for y in 0..5 {
                    for x in 0..3 {
                        let at = ((z * 9 + y) * 7 + x) * size;
                        data[at..at + size].copy_from_slice(&array.spec.fill.clone());
                    }
                }
            }
        }
        let progress = crate::progress::Progress::default();
        crate::write::write_region(&array, &data, &[0, 0, 0], &[10, 9, 7], &progress).unwrap();
        array
    }

    /// Blosc's byte shuffle of each `blocksize`-byte block of `bytes`.
    fn shuffle(bytes: &[u8], typesize: usize, blocksize: usize) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for start in (0..bytes.len()).step_by(blocksize) {
            let bsize = blocksize.min(bytes.len() - start);
            let per_stream = bsize / typesize;
            for q in 0..per_stream * typesize {
                out[start + (q % typesize) * per_stream + q / typesize] = bytes[start + q];
            }
        }
        out
    }

    /// Decodes every source of `plan` on the host into one staging buffer,
    /// byte-shuffled in blocks of 13 elements when `shuffled`.
    fn stage(arrays: &[&Array], plan: &DevicePlan, shuffled: bool) -> (Vec<u8>, Vec<SourceLayout>) {
        let mut staging = Vec::new();
        let mut layouts = Vec::new();
        for source in &plan.sources {
            let array = arrays[source.array];
            let spec = &array.spec;
            let object = array.store.open(&source.key).unwrap().unwrap();
            let (raw, chain, shape) = match (&source.range, &spec.codecs.array_to_bytes) {
                (Some((offset, len)), crate::spec::ArrayToBytes::Sharding(s)) => (
                    object.read_at(*offset, *len).unwrap(),
                    &s.inner,
                    &s.inner_shape,
                ),
                _ => (object.read_all().unwrap(), &spec.codecs, &spec.chunk_shape),
            };
            let size = spec.dtype.size();
            let mut decoded = vec![0u8; codec::element_count(shape) * size];
            let elements = Elements {
                dtype: spec.dtype,
                fill: &spec.fill,
            };
            codec::decode_chunk(chain, shape, &raw, elements, &mut decoded).unwrap();
            let (typesize, blocksize) = if shuffled { (size, 13 * size) } else { (0, 0) };
            if shuffled {
                decoded = shuffle(&decoded, size, blocksize);
            }
            layouts.push(SourceLayout {
                offset: staging.len() as u64,
                len: decoded.len() as u64,
                typesize: typesize as u32,
                blocksize: blocksize as u32,
            });
            staging.extend_from_slice(&decoded);
            staging.resize(staging.len().next_multiple_of(16), 0);
        }
        (staging, layouts)
    }

    /// A sample in a test batch: array index, then (start, count, keep) per dimension.
    type SampleBox = (i64, [(i64, i64, i64); 3]);

    /// Runs `assemble(plan, staging, layouts)` for batches of every kernel
    /// source dtype, both output dtypes, sharded and plain zstd stores and
    /// plain and byte-shuffled staging, and asserts that it returns the CPU
    /// executor's batch byte for byte.
    fn check_against_the_executor(
        tag: &str,
        mut assemble: impl FnMut(&DevicePlan, &[u8], &[SourceLayout]) -> Vec<u8>,
    ) {
        let base = std::env::temp_dir().join(format!("tessera-{tag}-{}", std::process::id()));
        let dtypes = [
            DType::UInt8,
            DType::Int8,
            DType::UInt16,
            DType::Int16,
            DType::UInt32,
            DType::Int32,
            DType::Float16,
            DType::Float32,
        ];
        let exec = Executor::new(2).unwrap();
        for (d, &dtype) in dtypes.iter().enumerate() {
            let sharded = random_array(
                &base.join(format!("{d}-sharded")),
                dtype,
                true,
                d as u64 + 1,
            );
            let plain = random_array(
                &base.join(format!("{d}-plain")),
                dtype,
                false,
                d as u64 + 99,
            );
            let arrays = [&sharded, &plain];
            // Samples of [4, 5]: (array, [(start, count, keep); 3]).
            let samples: [SampleBox; 6] = [
                (0, [(2, 1, 0), (-1, 4, 1), (3, 5, 1)]),
                (0, [(5, 4, 1), (4, 1, 0), (1, 5, 1)]),
                (1, [(7, 4, 1), (2, 5, 1), (6, 1, 0)]),
                (1, [(0, 1, 0), (0, 4, 1), (0, 5, 1)]),
                (0, [(20, 1, 0), (0, 4, 1), (0, 5, 1)]),
                (0, [(1, 1, 0), (0, 4, 1), (0, 5, 1)]),
            ];
            for out in [DType::Float32, DType::BFloat16] {
                let mut words = vec![out as i64, samples.len() as i64, 2, 4, 5];
                for (a, dims) in &samples {
                    words.extend([*a, 3]);
                    for (start, count, keep) in dims {
                        words.extend([*start, *count, *keep]);
                    }
                }
                let cpu = exec.assemble(&arrays, &words).unwrap();
                let cpu = unsafe { std::slice::from_raw_parts(cpu.as_ptr(), cpu.len()) };
                let plan = device_plan(&arrays, &words).unwrap();
                assert_eq!(plan.elements as usize * out.size(), cpu.len());
                assert!(!plan.fills.is_empty() && !plan.copies.is_empty());
                // Each stored chunk is read once, however many samples it serves.
                let mut keys: Vec<_> = plan.sources.iter().collect();
                keys.sort_by(|a, b| (a.array, &a.key, a.range).cmp(&(b.array, &b.key, b.range)));
                keys.dedup();
                assert_eq!(keys.len(), plan.sources.len());
                for shuffled in [false, true] {
                    let (staging, layouts) = stage(&arrays, &plan, shuffled);
                    let batch = assemble(&plan, &staging, &layouts);
                    assert!(
                        batch == cpu,
                        "{dtype:?} -> {out:?} (shuffled: {shuffled}) differs from the CPU executor"
                    );
                }
            }
        }
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn the_device_plan_run_with_kernel_arithmetic_equals_the_cpu_executor() {
        check_against_the_executor("device-plan", |plan, staging, layouts| {
            let bf16 = plan.out_dtype == DType::BFloat16;
            let mut batch = vec![0xa5u8; plan.elements as usize * plan.out_dtype.size()];
            crate::device_plan::host::launch(staging, layouts, &plan.boxes(), &mut batch, bf16);
            batch
        });
    }

    /// On a GPU: the NVRTC-compiled kernel run on cuda:0 gives the CPU
    /// executor's batches. Run by `deno task test:gpu`.
    #[test]
    #[ignore = "needs a CUDA device (deno task test:gpu)"]
    fn gpu_the_assembly_kernel_equals_the_cpu_executor() {
        use crate::device_plan::{KERNEL_NAME, KERNEL_SOURCE};
        let device = crate::cuda::CudaDevice::open(0).unwrap();
        let arch = device.arch().unwrap();
        let cubin = crate::nvrtc::compile_cubin(
            &crate::nvrtc::test_library(),
            KERNEL_SOURCE,
            KERNEL_NAME,
            &arch,
        )
        .unwrap();
        let kernel = device.load_kernel(&cubin).unwrap();
        check_against_the_executor("gpu-kernel", |plan, staging, layouts| {
            let batch = device
                .assemble(&kernel, plan, staging, layouts, Box::new(|| {}))
                .unwrap();
            let mut host = vec![0u8; batch.len()];
            // SAFETY: `batch` is device memory of `host.len()` bytes, alive here.
            unsafe { cudarc::driver::result::memcpy_dtoh_sync(&mut host, batch.as_ptr() as u64) }
                .unwrap();
            host
        });
        println!(
            "assembly kernel on cuda:0 ({arch}), chunks decoded on the host (CPU zstd; nvCOMP not used): equal to the CPU executor"
        );
    }

    #[test]
    fn the_device_plan_refuses_what_the_kernel_cannot_do() {
        let dir =
            std::env::temp_dir().join(format!("tessera-device-plan-bad-{}", std::process::id()));
        let array = counting_array(&dir, 8);
        let words = [DType::Float64 as i64, 1, 1, 4, 0, 1, 0, 4, 1];
        let e = device_plan(&[&array], &words).unwrap_err();
        assert_eq!(e.kind, ErrorKind::DtypeMismatch);
        let words = [DType::Float32 as i64, 1, 1, 4, 0, 1, 0, 4, 1];
        let plan = device_plan(&[&array], &words).unwrap();
        assert_eq!(plan.sources.len(), 1);
        assert_eq!(plan.copies.len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
