//! Native, 64-byte aligned, reference-counted buffers handed to TypeScript.

use crate::error::{Error, ErrorKind, Result};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::sync::Arc;

/// Alignment of every buffer (a cache line; enough for any element and SIMD).
pub const ALIGNMENT: usize = 64;

/// An owned, zero-initialised, aligned allocation.
#[derive(Debug)]
pub struct AlignedBuffer {
    ptr: *mut u8,
    len: usize,
    layout: Layout,
}

// SAFETY: the buffer owns its allocation; sharing follows Rust's rules
// through `Arc` on the Rust side and the caller's discipline across the ABI.
unsafe impl Send for AlignedBuffer {}
unsafe impl Sync for AlignedBuffer {}

impl AlignedBuffer {
    /// Allocates `len` zeroed bytes; fails instead of aborting when memory is short.
    pub fn zeroed(len: usize) -> Result<Self> {
        let layout = Layout::from_size_align(len.max(ALIGNMENT), ALIGNMENT)
            .map_err(|_| Error::invalid(format!("buffer of {len} bytes is too large")))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(Error::new(
                ErrorKind::BudgetExceeded,
                format!("cannot allocate {len} bytes"),
            ));
        }
        Ok(Self { ptr, len, layout })
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
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// A shared reference to a buffer; each handle given across the ABI owns one.
pub type SharedBuffer = Arc<AlignedBuffer>;
