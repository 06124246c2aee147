//! Importing Arrow arrays through the C Data Interface as tensor memory,
//! without a copy: a primitive array (one value per pixel-channel) or a
//! fixed-size list of primitives (one list per pixel, or a
//! `arrow.fixed_shape_tensor` column). The importer takes ownership of both
//! structs (the interface's move semantics): the schema is released at
//! once, the array when the last reference to its memory goes.

use crate::arrow::{ArrowArray, ArrowSchema};
use crate::buffer::{AlignedBuffer, SharedBuffer};
use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use std::ffi::CStr;
use std::sync::Arc;

/// An imported array: its values as one buffer, and how to read them.
pub struct Imported {
    /// The values (first to last element of the array), zero copy.
    pub buffer: SharedBuffer,
    /// Element type.
    pub dtype: DType,
    /// Number of rows (array length).
    pub rows: u64,
    /// Values per row (1 for a primitive array).
    pub list_size: u64,
    /// The field's name, its list child's name (empty for a primitive
    /// array) and its metadata, as NUL-separated text:
    /// `name\0child\0key\0value\0…`.
    pub text: String,
}

fn dtype_of(format: &str) -> Result<DType> {
    Ok(match format {
        "c" => DType::Int8,
        "C" => DType::UInt8,
        "s" => DType::Int16,
        "S" => DType::UInt16,
        "i" => DType::Int32,
        "I" => DType::UInt32,
        "l" => DType::Int64,
        "L" => DType::UInt64,
        "e" => DType::Float16,
        "f" => DType::Float32,
        "g" => DType::Float64,
        other => {
            return Err(Error::new(
                ErrorKind::DtypeMismatch,
                format!("Arrow values of format {other:?} are not a tensor element type"),
            ))
        }
    })
}

/// Reads a C string (null: empty).
///
/// # Safety
/// `p` must be null or a NUL-terminated string.
unsafe fn c_str(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

/// Decodes the binary key/value metadata of a schema.
///
/// # Safety
/// `p` must be null or valid metadata per the C Data Interface.
unsafe fn metadata(p: *const std::ffi::c_char) -> Vec<(String, String)> {
    if p.is_null() {
        return Vec::new();
    }
    /// Reads an `i32` at `*at` and moves past it.
    unsafe fn next_i32(at: &mut *const u8) -> usize {
        let v = i32::from_ne_bytes(std::ptr::read_unaligned(at.cast::<[u8; 4]>()));
        *at = at.add(4);
        v.max(0) as usize
    }
    /// Reads `n` bytes at `*at` as text and moves past them.
    unsafe fn next_str(at: &mut *const u8, n: usize) -> String {
        let s = String::from_utf8_lossy(std::slice::from_raw_parts(*at, n)).into_owned();
        *at = at.add(n);
        s
    }
    let mut at = p.cast::<u8>();
    let n = next_i32(&mut at);
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let kn = next_i32(&mut at);
        let k = next_str(&mut at, kn);
        let vn = next_i32(&mut at);
        let v = next_str(&mut at, vn);
        out.push((k, v));
    }
    out
}

/// The moved array, released when the tensor memory goes.
struct Owned(*mut ArrowArray);

// SAFETY: the C Data Interface lets any thread call `release`.
unsafe impl Send for Owned {}

impl Owned {
    fn release(self) {
        // SAFETY: the box came from `Box::into_raw` in `import`, released once.
        unsafe {
            let mut array = Box::from_raw(self.0);
            if let Some(release) = array.release {
                release(&mut *array);
            }
        }
    }
}

/// Imports `array` (described by `schema`), taking ownership of both.
///
/// # Safety
/// Both pointers must point to valid, unreleased C Data Interface structs.
pub unsafe fn import(schema: *mut ArrowSchema, array: *mut ArrowArray) -> Result<Imported> {
    if schema.is_null()
        || array.is_null()
        || (*schema).release.is_none()
        || (*array).release.is_none()
    {
        return Err(Error::invalid(
            "Arrow schema or array is null or already released",
        ));
    }
    let described = describe(&*schema);
    // The schema is ours now: release it whatever it said.
    if let Some(release) = (*schema).release {
        release(schema);
    }
    let moved = Box::into_raw(Box::new(std::ptr::read(array)));
    (*array).release = None;
    let result = described.and_then(|(dtype, list_size, text)| {
        let a = &*moved;
        let values = if list_size > 1 || text.starts_with('\u{1}') {
            if a.n_children != 1 || a.children.is_null() {
                return Err(Error::invalid("Arrow fixed-size list has no child array"));
            }
            &**a.children
        } else {
            a
        };
        if a.null_count > 0 || values.null_count > 0 {
            return Err(Error::invalid(
                "Arrow array has nulls: a tensor cannot hold them",
            ));
        }
        if values.n_buffers != 2 || values.buffers.is_null() {
            return Err(Error::invalid("Arrow values are not a primitive array"));
        }
        let first = a.offset as u64 * list_size
            + if std::ptr::eq(values, a) {
                0
            } else {
                values.offset as u64
            };
        let count = a.length as u64 * list_size;
        let data = *values.buffers.add(1);
        let size = dtype.size() as u64;
        if data.is_null() && count > 0 {
            return Err(Error::invalid("Arrow values buffer is null"));
        }
        Ok((
            dtype,
            list_size,
            text,
            data.cast::<u8>()
                .cast_mut()
                .wrapping_add((first * size) as usize),
            count * size,
            a.length as u64,
        ))
    });
    match result {
        Ok((dtype, list_size, text, ptr, len, rows)) => {
            let owned = Owned(moved);
            let buffer = Arc::new(AlignedBuffer::foreign(
                ptr,
                len as usize,
                Box::new(move || owned.release()),
            ));
            Ok(Imported {
                buffer,
                dtype,
                rows,
                list_size,
                text: text.trim_start_matches('\u{1}').to_string(),
            })
        }
        Err(e) => {
            Owned(moved).release();
            Err(e)
        }
    }
}

/// Element type, list size and name/metadata text of a schema (text
/// starts with U+0001 for a fixed-size list, whatever its size).
///
/// # Safety
/// `schema` must be a valid C Data Interface schema.
unsafe fn describe(schema: &ArrowSchema) -> Result<(DType, u64, String)> {
    let format = c_str(schema.format);
    let child = if format.starts_with("+w:") && schema.n_children == 1 && !schema.children.is_null()
    {
        c_str((**schema.children).name)
    } else {
        String::new()
    };
    let mut text = format!("{}\0{child}", c_str(schema.name));
    for (k, v) in metadata(schema.metadata) {
        text.push('\0');
        text.push_str(&k);
        text.push('\0');
        text.push_str(&v);
    }
    if let Some(n) = format.strip_prefix("+w:") {
        let n: u64 =
            n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                Error::invalid(format!("Arrow format {format:?} has no list size"))
            })?;
        if schema.n_children != 1 || schema.children.is_null() {
            return Err(Error::invalid("Arrow fixed-size list schema has no child"));
        }
        let child = c_str((**schema.children).format);
        return Ok((dtype_of(&child)?, n, format!("\u{1}{text}")));
    }
    Ok((dtype_of(&format)?, 1, text))
}
