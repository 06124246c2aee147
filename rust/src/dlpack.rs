//! DLPack (≥ 1.0 versioned and legacy) export and import of CPU tensors,
//! over the `#[repr(C)]` structs of the `dlpack-rs` crate (DLPack 1.3
//! headers). The export's manager context owns a reference to our
//! refcounted buffer; the import wraps another producer's deleter.

use crate::buffer::{AlignedBuffer, Location, SharedBuffer};
use crate::dtype::DType;
use crate::error::{Error, Result};
use dlpack_rs::ffi::{
    DLDataType, DLDevice, DLManagedTensor, DLManagedTensorVersioned, DLPackVersion, DLTensor,
    DLPACK_FLAG_BITMASK_READ_ONLY, DLPACK_MAJOR_VERSION, K_DL_CPU, K_DL_CUDA,
};
use std::ffi::c_void;
use std::sync::Arc;

/// DLPack version this library produces (1.1: no field beyond it is used).
pub const DLPACK_VERSION: (u32, u32) = (DLPACK_MAJOR_VERSION, 1);
/// Largest rank accepted on import.
pub const MAX_RANK: usize = 32;

/// A strided tensor over a buffer, in elements.
#[derive(Debug, Clone)]
pub struct TensorLayout {
    /// Element type.
    pub dtype: DType,
    /// Offset of the first element from the buffer start.
    pub offset: i64,
    /// Shape.
    pub shape: Vec<i64>,
    /// Strides.
    pub strides: Vec<i64>,
}

impl TensorLayout {
    /// Element offsets of the lowest and highest element (`None` when empty).
    pub fn span(&self) -> Option<(i64, i64)> {
        if self.shape.contains(&0) {
            return None;
        }
        let (mut lo, mut hi) = (self.offset, self.offset);
        for (&n, &s) in self.shape.iter().zip(&self.strides) {
            let reach = (n - 1).checked_mul(s)?;
            if reach < 0 {
                lo = lo.checked_add(reach)?;
            } else {
                hi = hi.checked_add(reach)?;
            }
        }
        Some((lo, hi))
    }

    /// Checks that every element lies inside a buffer of `len` bytes.
    pub fn check_inside(&self, len: usize) -> Result<()> {
        let size = self.dtype.size() as i64;
        match self.span() {
            Some((lo, hi)) if lo >= 0 && (hi + 1).checked_mul(size).is_some_and(|end| end as u64 <= len as u64) => Ok(()),
            None if self.shape.iter().all(|&n| n >= 0) => Ok(()),
            _ => Err(Error::invalid(format!(
                "tensor layout offset {} shape {:?} strides {:?} reaches outside its {len}-byte buffer",
                self.offset, self.shape, self.strides
            ))),
        }
    }
}

fn dl_dtype(dtype: DType) -> DLDataType {
    use DType::*;
    let code = match dtype {
        Int8 | Int16 | Int32 | Int64 => 0,
        UInt8 | UInt16 | UInt32 | UInt64 => 1,
        Float16 | Float32 | Float64 => 2,
        BFloat16 => 4,
        Bool => 6,
    };
    DLDataType {
        code,
        bits: (dtype.size() * 8) as u8,
        lanes: 1,
    }
}

fn from_dl_dtype(t: DLDataType) -> Result<DType> {
    use DType::*;
    let dtype = match (t.code, t.bits, t.lanes) {
        (0, 8, 1) => Int8,
        (0, 16, 1) => Int16,
        (0, 32, 1) => Int32,
        (0, 64, 1) => Int64,
        (1, 8, 1) => UInt8,
        (1, 16, 1) => UInt16,
        (1, 32, 1) => UInt32,
        (1, 64, 1) => UInt64,
        (2, 16, 1) => Float16,
        (2, 32, 1) => Float32,
        (2, 64, 1) => Float64,
        (4, 16, 1) => BFloat16,
        (6, 8, 1) => Bool,
        (code, bits, lanes) => {
            return Err(Error::new(
                crate::error::ErrorKind::DtypeMismatch,
                format!("DLPack dtype code {code} bits {bits} lanes {lanes} is not supported"),
            ))
        }
    };
    Ok(dtype)
}

/// What an exported tensor owns: a buffer reference and its shape/strides.
struct ExportContext {
    _buffer: SharedBuffer,
    shape: Vec<i64>,
    strides: Vec<i64>,
}

fn dl_tensor(buffer: &SharedBuffer, layout: &TensorLayout, ctx: &mut ExportContext) -> DLTensor {
    DLTensor {
        data: buffer.as_ptr().cast(),
        device: match buffer.location() {
            Location::Host => DLDevice {
                device_type: K_DL_CPU,
                device_id: 0,
            },
            Location::Cuda(ordinal) => DLDevice {
                device_type: K_DL_CUDA,
                device_id: ordinal,
            },
        },
        ndim: layout.shape.len() as i32,
        dtype: dl_dtype(layout.dtype),
        shape: ctx.shape.as_mut_ptr(),
        strides: ctx.strides.as_mut_ptr(),
        byte_offset: (layout.offset * layout.dtype.size() as i64) as u64,
    }
}

unsafe extern "C" fn delete_versioned(managed: *mut DLManagedTensorVersioned) {
    if !managed.is_null() {
        let managed = Box::from_raw(managed);
        drop(Box::from_raw(managed.manager_ctx.cast::<ExportContext>()));
    }
}

unsafe extern "C" fn delete_legacy(managed: *mut DLManagedTensor) {
    if !managed.is_null() {
        let managed = Box::from_raw(managed);
        drop(Box::from_raw(managed.manager_ctx.cast::<ExportContext>()));
    }
}

/// Exports a view of `buffer` as a DLPack managed tensor that holds its own
/// reference to the buffer until the consumer calls the deleter.
pub fn export(
    buffer: &SharedBuffer,
    layout: &TensorLayout,
    versioned: bool,
    read_only: bool,
) -> Result<*mut c_void> {
    layout.check_inside(buffer.len())?;
    if layout.offset < 0 {
        return Err(Error::invalid("DLPack export needs a non-negative offset"));
    }
    let ctx = Box::into_raw(Box::new(ExportContext {
        _buffer: Arc::clone(buffer),
        shape: layout.shape.clone(),
        strides: layout.strides.clone(),
    }));
    // SAFETY: `ctx` was just created and is owned by the managed tensor below.
    let tensor = dl_tensor(buffer, layout, unsafe { &mut *ctx });
    Ok(if versioned {
        Box::into_raw(Box::new(DLManagedTensorVersioned {
            version: DLPackVersion {
                major: DLPACK_VERSION.0,
                minor: DLPACK_VERSION.1,
            },
            manager_ctx: ctx.cast(),
            deleter: Some(delete_versioned),
            flags: if read_only {
                DLPACK_FLAG_BITMASK_READ_ONLY
            } else {
                0
            },
            dl_tensor: tensor,
        }))
        .cast()
    } else {
        Box::into_raw(Box::new(DLManagedTensor {
            dl_tensor: tensor,
            manager_ctx: ctx.cast(),
            deleter: Some(delete_legacy),
        }))
        .cast()
    })
}

/// Takes ownership of a DLPack managed tensor from another producer: the
/// returned buffer calls the producer's deleter when its last reference goes.
///
/// # Safety
/// `managed` must point to a live `DLManagedTensorVersioned` (when
/// `versioned`) or `DLManagedTensor`, whose ownership passes to this call
/// (also when it fails: the deleter is then called at once).
pub unsafe fn import(
    managed: *mut c_void,
    versioned: bool,
) -> Result<(SharedBuffer, TensorLayout)> {
    if managed.is_null() {
        return Err(Error::invalid("DLPack pointer is null"));
    }
    let (tensor, release): (&DLTensor, Box<dyn FnOnce() + Send>) = if versioned {
        let m = managed.cast::<DLManagedTensorVersioned>();
        if (*m).version.major != DLPACK_MAJOR_VERSION {
            let major = (*m).version.major;
            release_versioned(m);
            return Err(Error::invalid(format!(
                "DLPack major version {major} is not supported ({DLPACK_MAJOR_VERSION} is)"
            )));
        }
        let address = m as usize;
        (
            &(*m).dl_tensor,
            Box::new(move || release_versioned(address as *mut DLManagedTensorVersioned)),
        )
    } else {
        let m = managed.cast::<DLManagedTensor>();
        let address = m as usize;
        (
            &(*m).dl_tensor,
            Box::new(move || release_legacy(address as *mut DLManagedTensor)),
        )
    };
    match describe(tensor) {
        Ok((start, len, layout)) => Ok((
            Arc::new(AlignedBuffer::foreign(start, len, release)),
            layout,
        )),
        Err(e) => {
            release();
            Err(e)
        }
    }
}

unsafe fn release_versioned(m: *mut DLManagedTensorVersioned) {
    if let Some(deleter) = (*m).deleter {
        deleter(m);
    }
}

unsafe fn release_legacy(m: *mut DLManagedTensor) {
    if let Some(deleter) = (*m).deleter {
        deleter(m);
    }
}

/// Validates an imported tensor: the lowest element address, the byte span, and the layout over it.
unsafe fn describe(t: &DLTensor) -> Result<(*mut u8, usize, TensorLayout)> {
    if t.device.device_type != K_DL_CPU {
        return Err(Error::invalid(format!(
            "DLPack device type {} is not the CPU (1); only CPU tensors can be imported",
            t.device.device_type
        )));
    }
    let dtype = from_dl_dtype(t.dtype)?;
    let rank = usize::try_from(t.ndim)
        .ok()
        .filter(|&r| r <= MAX_RANK)
        .ok_or_else(|| Error::invalid(format!("DLPack ndim {} is out of range", t.ndim)))?;
    let shape: Vec<i64> = if rank == 0 {
        vec![]
    } else {
        std::slice::from_raw_parts(t.shape, rank).to_vec()
    };
    if shape.iter().any(|&n| n < 0) {
        return Err(Error::invalid(format!(
            "DLPack shape {shape:?} has negative extents"
        )));
    }
    let strides = if t.strides.is_null() || rank == 0 {
        let mut s = vec![1i64; rank];
        for i in (0..rank.saturating_sub(1)).rev() {
            s[i] = s[i + 1] * shape[i + 1].max(1);
        }
        s
    } else {
        std::slice::from_raw_parts(t.strides, rank).to_vec()
    };
    let size = dtype.size();
    let data = (t.data as *mut u8).wrapping_add(t.byte_offset as usize);
    if !(data as usize).is_multiple_of(size) {
        return Err(Error::invalid("DLPack data is not aligned for its dtype"));
    }
    let mut layout = TensorLayout {
        dtype,
        offset: 0,
        shape,
        strides,
    };
    let (lo, hi) = layout.span().unwrap_or((0, 0));
    let start = data.wrapping_offset((lo * size as i64) as isize);
    layout.offset = -lo;
    let len = ((hi - lo + 1) as usize) * size;
    Ok((start, len, layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_then_import_round_trips_and_frees_once() {
        let buffer = Arc::new(AlignedBuffer::zeroed(24).unwrap());
        let layout = TensorLayout {
            dtype: DType::UInt16,
            offset: 2,
            shape: vec![2, 3],
            strides: vec![1, 2],
        };
        let raw = export(&buffer, &layout, true, false).unwrap();
        assert_eq!(Arc::strong_count(&buffer), 2);
        let (imported, seen) = unsafe { import(raw, true) }.unwrap();
        assert_eq!(seen.shape, vec![2, 3]);
        assert_eq!(seen.strides, vec![1, 2]);
        assert_eq!(imported.as_ptr() as usize, buffer.as_ptr() as usize + 4);
        drop(imported);
        assert_eq!(Arc::strong_count(&buffer), 1);
    }

    #[test]
    fn negative_strides_import_from_the_lowest_address() {
        let buffer = Arc::new(AlignedBuffer::zeroed(16).unwrap());
        let layout = TensorLayout {
            dtype: DType::Float32,
            offset: 3,
            shape: vec![4],
            strides: vec![-1],
        };
        let raw = export(&buffer, &layout, false, false).unwrap();
        let (imported, seen) = unsafe { import(raw, false) }.unwrap();
        assert_eq!(imported.as_ptr(), buffer.as_ptr());
        assert_eq!(seen.offset, 3);
        assert_eq!(imported.len(), 16);
    }

    #[test]
    fn rejects_layouts_outside_the_buffer() {
        let buffer = Arc::new(AlignedBuffer::zeroed(8).unwrap());
        let layout = TensorLayout {
            dtype: DType::UInt16,
            offset: 1,
            shape: vec![4],
            strides: vec![1],
        };
        assert!(export(&buffer, &layout, true, false).is_err());
    }
}
