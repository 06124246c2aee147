//! Owned CUDA allocations for the device batch path: page-locked host
//! buffers (`cuMemHostAlloc`, so host→device copies run as DMA without a
//! staging copy) and device memory (`cuMemAlloc`). Both free themselves in
//! their context when dropped.

use crate::error::{Error, ErrorKind, Result};
use cudarc::driver::{result, sys, CudaContext};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Cuda, format!("{what}: {e}"))
}

/// Runs `f` with `ctx` current, mapping driver errors and panics.
fn in_context<T>(
    ctx: &CudaContext,
    what: &str,
    f: impl FnOnce() -> std::result::Result<T, cudarc::driver::DriverError>,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(|| {
        ctx.bind_to_thread()?;
        f()
    })) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failed(what, e)),
        Err(_) => Err(failed(
            what,
            "the CUDA driver library lacks a needed function",
        )),
    }
}

/// Page-locked host memory of a fixed size, not write-combined (the host
/// reads it back: blosc framing is parsed and chunks decoded in place).
#[derive(Debug)]
pub struct PinnedBuffer {
    ctx: Arc<CudaContext>,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is plain memory owned by this value.
unsafe impl Send for PinnedBuffer {}

impl PinnedBuffer {
    /// Allocates `len` bytes (at least one) of pinned memory in `ctx`.
    pub fn new(ctx: &Arc<CudaContext>, len: usize) -> Result<Self> {
        let len = len.max(1);
        let what = format!("allocating {len} bytes of pinned host memory");
        // SAFETY: flags 0: portable to this context only, cached, not mapped.
        let ptr = in_context(ctx, &what, || unsafe { result::malloc_host(len, 0) })?;
        Ok(Self {
            ctx: Arc::clone(ctx),
            ptr: ptr.cast(),
            len,
        })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty (never: allocations hold at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes. No copy from them may be in flight while they are written.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` holds `len` bytes owned by `self`, borrowed mutably here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        let ptr = self.ptr;
        // SAFETY: allocated by cuMemHostAlloc; copies from it have completed
        // (their streams were synchronised before the buffer is dropped).
        let _ = in_context(&self.ctx, "freeing pinned memory", || unsafe {
            result::free_host(ptr.cast())
        });
    }
}

/// Device memory of a fixed size.
#[derive(Debug)]
pub struct DeviceMemory {
    ctx: Arc<CudaContext>,
    ptr: sys::CUdeviceptr,
    len: usize,
}

// SAFETY: the allocation belongs to the context, not to a thread.
unsafe impl Send for DeviceMemory {}
unsafe impl Sync for DeviceMemory {}

impl DeviceMemory {
    /// Allocates `len` bytes (at least one) of device memory in `ctx`.
    pub fn new(ctx: &Arc<CudaContext>, len: usize) -> Result<Self> {
        let len = len.max(1);
        let what = format!("allocating {len} bytes on cuda:{}", ctx.ordinal());
        // SAFETY: a plain allocation; the memory is written before it is read.
        let ptr = in_context(ctx, &what, || unsafe { result::malloc_sync(len) })?;
        Ok(Self {
            ctx: Arc::clone(ctx),
            ptr,
            len,
        })
    }

    /// Device address.
    pub fn address(&self) -> u64 {
        self.ptr
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the allocation is empty (never: allocations hold at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for DeviceMemory {
    fn drop(&mut self) {
        let ptr = self.ptr;
        // SAFETY: allocated by cuMemAlloc; cuMemFree waits for work using it.
        let _ = in_context(&self.ctx, "freeing device memory", || unsafe {
            result::free_sync(ptr)
        });
    }
}
