//! Native, 64-byte aligned, reference-counted buffers handed to TypeScript.
//!
//! Large buffers are mapped directly from the kernel: its pages arrive
//! zeroed (no memset pass over memory that assembly overwrites anyway) and
//! are backed by transparent huge pages where the system allows, which
//! saves most page faults while the output is first written.

use crate::error::{Error, ErrorKind, Result};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::sync::Arc;

/// Alignment of every buffer (a cache line; enough for any element and SIMD).
pub const ALIGNMENT: usize = 64;

/// Buffers at least this large are mapped rather than taken from the heap.
const MAP_THRESHOLD: usize = 32 << 20;
/// Mapped buffers kept for reuse after they are freed, at most this many bytes
/// in all: a later output of the same size skips the kernel's page faults
/// and zeroing (a third of the time of a fast whole-volume read).
const RECYCLE_BYTES: usize = 1 << 30;
/// Mapped buffers kept for reuse, at most this many.
const RECYCLE_COUNT: usize = 4;

/// Bytes held by live heap and mapped buffers (not the recycled ones).
static LIVE_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes held by live buffers this library allocated, for leak checks.
pub fn live_bytes() -> u64 {
    LIVE_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

fn count_live(len: usize, alive: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    if alive {
        LIVE_BYTES.fetch_add(len as u64, Relaxed);
    } else {
        LIVE_BYTES.fetch_sub(len as u64, Relaxed);
    }
}

/// Freed mappings `(address, length)` waiting for reuse.
static RECYCLED: std::sync::Mutex<Vec<(usize, usize)>> = std::sync::Mutex::new(Vec::new());

/// A recycled mapping of exactly `len` bytes, if one is kept.
fn take_recycled(len: usize) -> Option<*mut u8> {
    let mut kept = RECYCLED.lock().ok()?;
    let i = kept.iter().position(|&(_, l)| l == len)?;
    Some(kept.swap_remove(i).0 as *mut u8)
}

/// Keeps a freed mapping for reuse; `false` when the pool is full.
fn recycle(ptr: *mut u8, len: usize) -> bool {
    let Ok(mut kept) = RECYCLED.lock() else {
        return false;
    };
    let held: usize = kept.iter().map(|&(_, l)| l).sum();
    if kept.len() >= RECYCLE_COUNT || held + len > RECYCLE_BYTES {
        return false;
    }
    kept.push((ptr as usize, len));
    true
}

/// Releases memory owned by another producer (e.g. a DLPack deleter).
pub type Release = Box<dyn FnOnce() + Send>;

/// Where an allocation came from, so it is returned to the same place.
enum Origin {
    Heap(Layout),
    Mapped(usize),
    Foreign(Option<Release>),
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Heap(_) => "heap",
            Origin::Mapped(_) => "mapped",
            Origin::Foreign(_) => "foreign",
        })
    }
}

/// Where a buffer's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Host memory the CPU can read and write.
    Host,
    /// Memory of the CUDA device with this ordinal (not readable by the CPU).
    Cuda(i32),
}

/// An owned, zero-initialised, aligned allocation.
#[derive(Debug)]
pub struct AlignedBuffer {
    ptr: *mut u8,
    len: usize,
    origin: Origin,
    location: Location,
}

// SAFETY: the buffer owns its allocation; sharing follows Rust's rules
// through `Arc` on the Rust side and the caller's discipline across the ABI.
unsafe impl Send for AlignedBuffer {}
unsafe impl Sync for AlignedBuffer {}

impl AlignedBuffer {
    /// Allocates `len` zeroed bytes; fails instead of aborting when memory is short.
    pub fn zeroed(len: usize) -> Result<Self> {
        let short = || {
            Error::new(
                ErrorKind::BudgetExceeded,
                format!("cannot allocate {len} bytes"),
            )
        };
        if len >= MAP_THRESHOLD {
            // SAFETY: an anonymous private mapping with no address hint.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(short());
            }
            // SAFETY: advice on the mapping just made; failure only loses the hint.
            unsafe { libc::madvise(ptr, len, libc::MADV_HUGEPAGE) };
            count_live(len, true);
            return Ok(Self {
                ptr: ptr.cast(),
                len,
                origin: Origin::Mapped(len),
                location: Location::Host,
            });
        }
        let layout = Layout::from_size_align(len.max(ALIGNMENT), ALIGNMENT)
            .map_err(|_| Error::invalid(format!("buffer of {len} bytes is too large")))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(short());
        }
        count_live(len, true);
        Ok(Self {
            ptr,
            len,
            origin: Origin::Heap(layout),
            location: Location::Host,
        })
    }

    /// A buffer whose every byte the caller overwrites before anyone reads
    /// it: a recycled large mapping when one of this size is kept (its old
    /// contents remain until overwritten), else a zeroed allocation.
    pub fn for_overwrite(len: usize) -> Result<Self> {
        if len >= MAP_THRESHOLD {
            if let Some(ptr) = take_recycled(len) {
                count_live(len, true);
                return Ok(Self {
                    ptr,
                    len,
                    origin: Origin::Mapped(len),
                    location: Location::Host,
                });
            }
        }
        Self::zeroed(len)
    }

    /// Memory owned by another producer: `release` runs when the buffer drops.
    pub fn foreign(ptr: *mut u8, len: usize, release: Release) -> Self {
        Self {
            ptr,
            len,
            origin: Origin::Foreign(Some(release)),
            location: Location::Host,
        }
    }

    /// Memory of CUDA device `ordinal` at device address `ptr`: `release` runs when the buffer drops.
    pub fn on_cuda(ptr: *mut u8, len: usize, ordinal: i32, release: Release) -> Self {
        Self {
            ptr,
            len,
            origin: Origin::Foreign(Some(release)),
            location: Location::Cuda(ordinal),
        }
    }

    /// Where the bytes live.
    pub fn location(&self) -> Location {
        self.location
    }

    /// Fails unless the bytes are host memory (`what` names the operation).
    pub fn check_host(&self, what: &str) -> Result<()> {
        match self.location {
            Location::Host => Ok(()),
            Location::Cuda(n) => Err(Error::new(
                ErrorKind::Cuda,
                format!("{what} needs host memory; this tensor lives on cuda:{n}"),
            )),
        }
    }

    /// Start of the buffer.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` from this origin, released once.
        unsafe {
            match &mut self.origin {
                Origin::Heap(layout) => {
                    count_live(self.len, false);
                    dealloc(self.ptr, *layout)
                }
                Origin::Mapped(len) => {
                    count_live(*len, false);
                    if !recycle(self.ptr, *len) {
                        libc::munmap(self.ptr.cast(), *len);
                    }
                }
                Origin::Foreign(release) => {
                    if let Some(release) = release.take() {
                        release();
                    }
                }
            }
        }
    }
}

/// A shared reference to a buffer; each handle given across the ABI owns one.
pub type SharedBuffer = Arc<AlignedBuffer>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_are_recycled_by_exact_size() {
        let len = MAP_THRESHOLD + 4096 * 3;
        let first = AlignedBuffer::for_overwrite(len).unwrap();
        let address = first.as_ptr() as usize;
        drop(first);
        let again = AlignedBuffer::for_overwrite(len).unwrap();
        assert_eq!(again.as_ptr() as usize, address);
        let other = AlignedBuffer::for_overwrite(len + 4096).unwrap();
        assert_ne!(other.as_ptr() as usize, address);
    }

    #[test]
    fn small_and_mapped_buffers_are_zeroed_and_aligned() {
        for len in [0, 3, 4096, MAP_THRESHOLD, MAP_THRESHOLD + 5] {
            let b = AlignedBuffer::zeroed(len).unwrap();
            assert_eq!(b.as_ptr() as usize % ALIGNMENT, 0);
            let bytes = unsafe { std::slice::from_raw_parts_mut(b.as_ptr(), b.len()) };
            assert!(bytes.iter().all(|&x| x == 0));
            bytes.fill(1);
        }
    }
}
