//! The CUDA batch executor: runs a [`DecodePlan`] on a device. It only
//! allocates, copies and launches; every offset comes from the plan
//! (`crate::device_batch`), which the host tests check.
//!
//! Per batch, on a stream of its own: merged reads into a pinned buffer
//! (host), CPU decode of the chunks the device cannot take (host), one
//! host→device copy of `[reads | CPU-decoded | tables]`, one span-copy
//! launch, one batched nvCOMP zstd decode, one assembly launch, then the
//! stream is synchronised and nvCOMP's per-frame statuses checked.
//! Batches run concurrently (the pipeline keeps `lookahead` calls in
//! flight), each with its own slot — stream, pinned buffer, device arena —
//! so that reads of batch n+1 overlap the device work of batch n. Slots are
//! kept for reuse; their device bytes count against `maxDeviceMemoryBytes`.

use crate::batch::{self, Executor, Stage};
use crate::buffer::{AlignedBuffer, SharedBuffer};
use crate::cuda::{AssembleLaunch, AssemblyKernel, CudaDevice};
use crate::device_batch::{self, DecodeOptions, DecodePlan, ReadPlan, ALIGN};
use crate::device_plan::{DevicePlan, KERNEL_NAME, KERNEL_SOURCE};
use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use crate::nvcomp::{Nvcomp, ZstdBatch};
use crate::pinned::{DeviceMemory, PinnedBuffer};
use crate::read::Array;
use cudarc::driver::{result, sys, CudaStream};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a batch waits for other batches' device staging to come free.
const SLOT_WAIT: Duration = Duration::from_secs(30);

fn cuda(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Cuda, format!("{what}: {e}"))
}

/// One batch's working set: a stream, a pinned buffer and a device arena.
struct Slot {
    stream: Arc<CudaStream>,
    pinned: Option<PinnedBuffer>,
    arena: Option<DeviceMemory>,
}

/// Slots not in use, and the device bytes of all slots.
struct Slots {
    idle: Vec<Slot>,
    staging: u64,
    busy: usize,
}

/// Totals of the device path (see [`DeviceAssembler::counters`]).
#[derive(Debug, Default)]
struct Counters {
    frames: AtomicU64,
    cpu_chunks: AtomicU64,
    device_chunks: AtomicU64,
    decode_ns: AtomicU64,
    decoded_bytes: AtomicU64,
}

/// Assembles pipeline batches on one CUDA device.
pub struct DeviceAssembler {
    device: CudaDevice,
    kernels: AssemblyKernel,
    nvcomp: Option<Nvcomp>,
    budget: u64,
    slots: Mutex<Slots>,
    returned: Condvar,
    counters: Counters,
}

impl std::fmt::Debug for DeviceAssembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAssembler")
            .field("device", &self.device)
            .field("nvcomp", &self.nvcomp.as_ref().map(Nvcomp::version))
            .field("budget", &self.budget)
            .finish()
    }
}

impl DeviceAssembler {
    /// An assembler on `device` with the kernels of `cubin` (compiled for
    /// the device's architecture), nvCOMP when given, and a device memory
    /// budget of `budget` bytes (batches plus staging).
    pub fn new(
        device: CudaDevice,
        cubin: &[u8],
        nvcomp: Option<Nvcomp>,
        budget: u64,
    ) -> Result<Self> {
        let kernels = device.load_kernel(cubin)?;
        Ok(Self {
            device,
            kernels,
            nvcomp,
            budget,
            slots: Mutex::new(Slots {
                idle: Vec::new(),
                staging: 0,
                busy: 0,
            }),
            returned: Condvar::new(),
            counters: Counters::default(),
        })
    }

    /// Opens device `ordinal` for batches of at most `budget` device bytes:
    /// compiles the kernels for its architecture with NVRTC and loads
    /// nvCOMP (see [`locate_nvrtc`] and [`load_nvcomp`]).
    pub fn open(ordinal: u32, budget: u64) -> Result<Self> {
        let device = CudaDevice::open(ordinal)?;
        let arch = device.arch()?;
        let nvrtc = locate_nvrtc()?;
        let cubin = crate::nvrtc::compile_cubin(&nvrtc, KERNEL_SOURCE, KERNEL_NAME, &arch)?;
        Self::new(device, &cubin, load_nvcomp()?, budget)
    }

    /// `[nvCOMP version (0: chunks decode on the CPU), zstd frames decoded
    /// on the device, chunks decoded on the CPU, chunks decoded on the
    /// device, device bytes of staging slots, device time of the decode
    /// step (span copies and nvCOMP, ns), bytes nvCOMP decoded]`.
    pub fn counters(&self) -> [u64; 7] {
        let c = &self.counters;
        let staging = self.slots.lock().map_or(0, |s| s.staging);
        [
            self.nvcomp.as_ref().map_or(0, |n| n.version() as u64),
            c.frames.load(Ordering::Relaxed),
            c.cpu_chunks.load(Ordering::Relaxed),
            c.device_chunks.load(Ordering::Relaxed),
            staging,
            c.decode_ns.load(Ordering::Relaxed),
            c.decoded_bytes.load(Ordering::Relaxed),
        ]
    }

    /// Assembles the batch `words` describes (see `crate::batch`) on the
    /// device; it counts in `executor`'s live bytes and stage totals.
    pub fn assemble(
        &self,
        executor: &Executor,
        arrays: &[&Array],
        words: &[i64],
    ) -> Result<SharedBuffer> {
        let started = Instant::now();
        let plan = batch::device_plan(arrays, words)?;
        let (objects, ranges) = device_batch::open_sources(arrays, &plan)?;
        let reads = device_batch::plan_reads(&plan, &ranges);
        let out_bytes = plan.elements * plan.out_dtype.size() as u64;
        executor
            .stats()
            .add(Stage::Plan, started, out_bytes, plan.sources.len() as u64);
        let mut slot = self.take_slot()?;
        let result = self.run(executor, arrays, &plan, &objects, &reads, &mut slot);
        self.give_slot(slot);
        result
    }

    fn run(
        &self,
        executor: &Executor,
        arrays: &[&Array],
        plan: &DevicePlan,
        objects: &device_batch::Objects,
        reads: &ReadPlan,
        slot: &mut Slot,
    ) -> Result<SharedBuffer> {
        let ctx = self.device.context();
        let stats = executor.stats();
        // 1. Merged reads into pinned memory.
        let started = Instant::now();
        let pinned = grow_pinned(ctx, &mut slot.pinned, reads.len as usize, 0)?;
        let bytes = pinned.bytes_mut();
        executor.install(|| device_batch::read_all(arrays, objects, reads, bytes))?;
        stats.add(Stage::Io, started, reads.len, reads.reads.len() as u64);

        // 2. Layout, then CPU decode of what the device cannot take.
        let started = Instant::now();
        let options = DecodeOptions {
            device_zstd: self.nvcomp.is_some(),
            input_align: self
                .nvcomp
                .as_ref()
                .map_or(1, |n| n.alignments().input as u64),
            output_align: self
                .nvcomp
                .as_ref()
                .map_or(1, |n| n.alignments().output as u64),
        };
        let decode = {
            let pinned = slot.pinned.as_mut().expect("allocated above");
            DecodePlan::build(
                arrays,
                plan,
                reads,
                &pinned.bytes_mut()[..reads.len as usize],
                options,
            )
        };
        let pinned = grow_pinned(
            ctx,
            &mut slot.pinned,
            decode.upload_len as usize,
            reads.len as usize,
        )?;
        let upload = &mut pinned.bytes_mut()[..decode.upload_len as usize];
        executor.install(|| decode.decode_on_cpu(arrays, plan, reads, upload))?;
        let cpu_bytes: u64 = decode.cpu.iter().map(|&(i, _)| decode.layouts[i].len).sum();
        stats.add(Stage::Decode, started, cpu_bytes, decode.cpu.len() as u64);

        // 3. Device memory: the arena (with nvCOMP's temporary space) and the batch.
        let (max_len, total_len) = decode.stream_sizes();
        let (temp_at, temp_len) = match (&self.nvcomp, decode.streams.len()) {
            (Some(n), count) if count > 0 => {
                let temp = n.temp_size(count, max_len as usize, total_len as usize)?;
                let align = (n.alignments().temp as u64).max(256);
                (decode.arena_len.next_multiple_of(align), temp as u64)
            }
            _ => (decode.arena_len, 0),
        };
        let arena_len = temp_at + temp_len;
        let out_bytes = plan.elements * plan.out_dtype.size() as u64;
        self.reserve(executor, &mut slot.arena, arena_len, out_bytes)?;
        let arena = slot.arena.as_ref().expect("reserved above");
        let base = arena.address();
        decode.write_meta(upload, base);

        // 4. One copy up, spans, nvCOMP, one assembly launch.
        let live = executor.live_counter();
        live.fetch_add(out_bytes, Ordering::Relaxed);
        let output = DeviceMemory::new(ctx, out_bytes as usize).inspect_err(|_| {
            live.fetch_sub(out_bytes, Ordering::Relaxed);
        });
        let output = output?;
        let stream = &slot.stream;
        let what = format!("assembling a batch on cuda:{}", self.device.ordinal());
        let device = |f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
            match catch_unwind(AssertUnwindSafe(f)) {
                Ok(r) => r,
                Err(_) => Err(cuda(
                    &what,
                    "the CUDA driver library lacks a needed function",
                )),
            }
        };
        let mut timings = [0f32; 3];
        let mut sizes = vec![0u64; decode.streams.len()];
        let mut statuses = vec![0i32; decode.streams.len()];
        let enqueued = device(&mut || {
            ctx.bind_to_thread().map_err(|e| cuda(&what, e))?;
            let cu = stream.cu_stream();
            let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
            let event = |s: &CudaStream| s.record_event(timing).map_err(|e| cuda(&what, e));
            let begin = event(stream)?;
            // SAFETY: `upload` is pinned, alive and unwritten until the stream is synchronised below.
            unsafe { result::memcpy_htod_async(base, &upload[..], cu) }
                .map_err(|e| cuda(&what, e))?;
            let uploaded = event(stream)?;
            if !decode.spans.is_empty() {
                let mut arena_ptr = base;
                let mut spans = base + decode.meta.spans;
                let mut n = decode.spans.len() as u32;
                let mut params: [*mut c_void; 3] = [
                    (&mut arena_ptr as *mut u64).cast(),
                    (&mut spans as *mut u64).cast(),
                    (&mut n as *mut u32).cast(),
                ];
                let grid = n.min(1 << 16);
                // SAFETY: the parameters match `tessera_copy_spans`; the spans lie in the arena.
                unsafe {
                    result::launch_kernel(
                        self.kernels.spans,
                        (grid, 1, 1),
                        (256, 1, 1),
                        0,
                        cu,
                        &mut params,
                    )
                }
                .map_err(|e| cuda(&what, e))?;
            }
            if let (Some(nvcomp), false) = (&self.nvcomp, decode.streams.is_empty()) {
                let batch = ZstdBatch {
                    count: decode.streams.len(),
                    in_ptrs: base + decode.meta.in_ptrs,
                    in_sizes: base + decode.meta.in_sizes,
                    out_sizes: base + decode.meta.out_sizes,
                    out_ptrs: base + decode.meta.out_ptrs,
                    actual_sizes: base + decode.results_at,
                    statuses: base + decode.results_at + 8 * decode.streams.len() as u64,
                    temp: base + temp_at,
                    temp_len: temp_len as usize,
                };
                // SAFETY: every address lies in the arena, laid out by the plan;
                // the frames passed the host check in `DecodePlan::build`.
                unsafe { nvcomp.decompress(&batch, cu.cast()) }?;
            }
            let decoded = event(stream)?;
            let total = crate::device_plan::total(&decode.boxes);
            if total > 0 {
                let launch = AssembleLaunch {
                    staging: base,
                    layouts: base + decode.meta.layouts,
                    boxes: base + decode.meta.boxes,
                    count: decode.boxes.len() as u32,
                    total,
                    out: output.address(),
                    bf16: plan.out_dtype == DType::BFloat16,
                };
                // SAFETY: the plan's boxes stay inside the decoded chunks and the batch.
                unsafe { launch.run(self.kernels.assemble, cu) }.map_err(|e| cuda(&what, e))?;
            }
            let assembled = event(stream)?;
            stream.synchronize().map_err(|e| cuda(&what, e))?;
            let ms = |a: &cudarc::driver::CudaEvent, b| a.elapsed_ms(b).unwrap_or(0.0);
            timings = [
                ms(&begin, &uploaded),
                ms(&uploaded, &decoded),
                ms(&decoded, &assembled),
            ];
            if !decode.streams.is_empty() && self.nvcomp.is_some() {
                // SAFETY: the stream is idle; the results lie in the arena.
                unsafe {
                    result::memcpy_dtoh_sync(&mut sizes, base + decode.results_at)
                        .map_err(|e| cuda(&what, e))?;
                    result::memcpy_dtoh_sync(
                        &mut statuses,
                        base + decode.results_at + 8 * sizes.len() as u64,
                    )
                    .map_err(|e| cuda(&what, e))?;
                }
            }
            Ok(())
        });
        let checked = enqueued.and_then(|()| {
            if self.nvcomp.is_some() {
                device_batch::check_results(&decode, &sizes, &statuses)
            } else {
                Ok(())
            }
        });
        if let Err(e) = checked {
            // The stream may still run: wait before the output is freed.
            let _ = catch_unwind(AssertUnwindSafe(|| stream.synchronize()));
            drop(output);
            live.fetch_sub(out_bytes, Ordering::Relaxed);
            return Err(e);
        }
        let device_ns = |ms: f32| Duration::from_secs_f64(ms as f64 / 1e3);
        stats.add_duration(Stage::Transfer, device_ns(timings[0]), decode.upload_len, 1);
        stats.add_duration(
            Stage::Decode,
            device_ns(timings[1]),
            total_len,
            decode.streams.len() as u64,
        );
        stats.add_duration(Stage::Assemble, device_ns(timings[2]), out_bytes, 1);
        let c = &self.counters;
        c.decode_ns
            .fetch_add(device_ns(timings[1]).as_nanos() as u64, Ordering::Relaxed);
        c.decoded_bytes.fetch_add(total_len, Ordering::Relaxed);
        c.frames
            .fetch_add(decode.streams.len() as u64, Ordering::Relaxed);
        c.cpu_chunks
            .fetch_add(decode.cpu.len() as u64, Ordering::Relaxed);
        c.device_chunks.fetch_add(
            (plan.sources.len() - decode.cpu.len()) as u64,
            Ordering::Relaxed,
        );
        Ok(Arc::new(self.wrap(output, out_bytes, live)))
    }

    /// Wraps the batch's device memory; it stops counting as live once freed.
    fn wrap(&self, output: DeviceMemory, len: u64, live: Arc<AtomicU64>) -> AlignedBuffer {
        let address = output.address();
        let ctx = Arc::clone(self.device.context());
        let release = Box::new(move || {
            // A consumer may have queued work on the memory on its own
            // stream: wait for the whole device before freeing it.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                let _ = ctx.bind_to_thread();
                let _ = ctx.synchronize();
            }));
            drop(output);
            live.fetch_sub(len, Ordering::Relaxed);
        });
        AlignedBuffer::on_cuda(
            address as usize as *mut u8,
            len as usize,
            self.device.ordinal(),
            release,
        )
    }

    /// A slot: an idle one, or a new one with its own stream.
    fn take_slot(&self) -> Result<Slot> {
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "slot pool poisoned"))?;
        slots.busy += 1;
        if let Some(slot) = slots.idle.pop() {
            return Ok(slot);
        }
        drop(slots);
        let ctx = self.device.context();
        let stream = catch_unwind(AssertUnwindSafe(|| ctx.new_stream()))
            .map_err(|_| {
                cuda(
                    "creating a stream",
                    "the CUDA driver library lacks a needed function",
                )
            })
            .and_then(|r| r.map_err(|e| cuda("creating a stream", e)));
        match stream {
            Ok(stream) => Ok(Slot {
                stream,
                pinned: None,
                arena: None,
            }),
            Err(e) => {
                self.give_back_count();
                Err(e)
            }
        }
    }

    fn give_back_count(&self) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.busy -= 1;
        }
        self.returned.notify_all();
    }

    fn give_slot(&self, slot: Slot) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.busy -= 1;
            slots.idle.push(slot);
        }
        self.returned.notify_all();
    }

    /// Makes the slot's arena at least `need` bytes while the device
    /// budget allows it next to live batches, this batch (`out_bytes`) and
    /// other slots: idle slots give up their arenas first, then the call
    /// waits for busy ones. A batch that cannot fit even alone is
    /// [`ErrorKind::BudgetExceeded`].
    fn reserve(
        &self,
        executor: &Executor,
        arena: &mut Option<DeviceMemory>,
        need: u64,
        out_bytes: u64,
    ) -> Result<()> {
        let mut have = arena.as_ref().map_or(0, |a| a.len() as u64);
        if have >= need {
            return Ok(());
        }
        if need + out_bytes > self.budget {
            return Err(Error::new(
                ErrorKind::BudgetExceeded,
                format!(
                    "a batch of {out_bytes} bytes needs {need} bytes of device staging (its \
                     compressed and decoded chunks and nvCOMP's temporary space), more than \
                     maxDeviceMemoryBytes {} allows: raise maxDeviceMemoryBytes",
                    self.budget
                ),
            ));
        }
        // Room to grow into, so that arenas are not reallocated batch after batch.
        let need = need
            .next_multiple_of(1 << 20)
            .max(have + have / 4)
            .min(self.budget - out_bytes)
            .max(need);
        let deadline = Instant::now() + SLOT_WAIT;
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "slot pool poisoned"))?;
        loop {
            let live = executor.live_bytes();
            let fits =
                |s: &Slots, have: u64| live + s.staging - have + need + out_bytes <= self.budget;
            if !fits(&slots, have) {
                // Idle slots' arenas go first, then this slot's own (too
                // small anyway), so that two growing batches cannot block
                // each other.
                let freed: u64 = slots
                    .idle
                    .iter_mut()
                    .map(|s| s.arena.take().map_or(0, |a| a.len() as u64))
                    .sum();
                slots.staging -= freed + have;
                *arena = None;
                have = 0;
                self.returned.notify_all();
            }
            if fits(&slots, have) {
                slots.staging = slots.staging - have + need;
                break;
            }
            let now = Instant::now();
            if now >= deadline || slots.busy <= 1 {
                return Err(Error::new(
                    ErrorKind::BudgetExceeded,
                    format!(
                        "live batches hold {live} bytes and device staging {} of \
                         maxDeviceMemoryBytes {}; this batch needs {out_bytes} plus {need} of staging: \
                         release popped batches or raise maxDeviceMemoryBytes",
                        slots.staging, self.budget
                    ),
                ));
            }
            slots = self
                .returned
                .wait_timeout(slots, deadline - now)
                .map_err(|_| Error::new(ErrorKind::Internal, "slot pool poisoned"))?
                .0;
        }
        drop(slots);
        *arena = None;
        match DeviceMemory::new(self.device.context(), need as usize) {
            Ok(memory) => {
                *arena = Some(memory);
                Ok(())
            }
            Err(e) => {
                if let Ok(mut slots) = self.slots.lock() {
                    slots.staging -= need;
                }
                Err(e)
            }
        }
    }
}

impl Drop for DeviceAssembler {
    fn drop(&mut self) {
        // Slots free their memory in the context; nothing runs on their streams.
        if let Ok(mut slots) = self.slots.lock() {
            slots.idle.clear();
        }
    }
}

/// The slot's pinned buffer, grown to at least `len` bytes; the first
/// `keep` bytes survive growth.
fn grow_pinned<'a>(
    ctx: &Arc<cudarc::driver::CudaContext>,
    pinned: &'a mut Option<PinnedBuffer>,
    len: usize,
    keep: usize,
) -> Result<&'a mut PinnedBuffer> {
    if pinned.as_ref().is_none_or(|p| p.len() < len) {
        let size = (len + len / 4).next_multiple_of(ALIGN as usize);
        let mut grown = PinnedBuffer::new(ctx, size)?;
        if let Some(old) = pinned.as_mut() {
            grown.bytes_mut()[..keep].copy_from_slice(&old.bytes_mut()[..keep]);
        }
        *pinned = Some(grown);
    }
    Ok(pinned.as_mut().expect("allocated above"))
}

/// Python environments to look in for NVIDIA's wheels: `VIRTUAL_ENV`, then
/// `.venv` in the working directory.
fn python_envs() -> Vec<PathBuf> {
    std::env::var_os("VIRTUAL_ENV")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(".venv")])
        .collect()
}

/// The libnvrtc to compile kernels with: `TESSERA_NVRTC`, else the
/// `nvidia-cuda-nvrtc` wheel of a Python environment, else `libnvrtc.so.13`
/// on the library path.
pub fn locate_nvrtc() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("TESSERA_NVRTC") {
        return Ok(PathBuf::from(path));
    }
    Ok(python_envs()
        .iter()
        .find_map(|venv| crate::nvrtc::find_in_venv(venv).ok())
        .unwrap_or_else(|| PathBuf::from("libnvrtc.so.13")))
}

/// nvCOMP for the device zstd decode. `TESSERA_NVCOMP=off` turns it off
/// (zstd chunks then decode on the CPU); another value is the library's
/// path, which must load. Unset: the `nvidia-libnvcomp-cu13` wheel of a
/// Python environment, else `libnvcomp.so.5` on the library path, else none.
pub fn load_nvcomp() -> Result<Option<Nvcomp>> {
    match std::env::var_os("TESSERA_NVCOMP") {
        Some(v) if v == "off" => Ok(None),
        Some(path) => Nvcomp::load(Path::new(&path)).map(Some),
        None => Ok(python_envs()
            .iter()
            .filter_map(|venv| crate::nvcomp::find_in_venv(venv))
            .chain([PathBuf::from(crate::nvcomp::SONAME)])
            .find_map(|path| Nvcomp::load(&path).ok())),
    }
}
