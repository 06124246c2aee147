//! Arrow C Data Interface export of tensors as `arrow.fixed_shape_tensor`
//! extension arrays (storage: `fixed_size_list<value>[n]`), over the
//! tensor's memory without a copy. Consumers (pyarrow, arrow-rs, …) call
//! the `release` callbacks, which drop our buffer reference.

use crate::buffer::SharedBuffer;
use crate::dtype::DType;
use crate::error::{Error, Result};
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

/// `struct ArrowSchema` of the C Data Interface.
#[repr(C)]
#[derive(Debug)]
pub struct ArrowSchema {
    /// Format string.
    pub format: *const c_char,
    /// Field name.
    pub name: *const c_char,
    /// Binary-encoded key/value metadata, or null.
    pub metadata: *const c_char,
    /// Flags (nullable = 2).
    pub flags: i64,
    /// Number of children.
    pub n_children: i64,
    /// Children.
    pub children: *mut *mut ArrowSchema,
    /// Dictionary, or null.
    pub dictionary: *mut ArrowSchema,
    /// Release callback; null once released.
    pub release: Option<unsafe extern "C" fn(*mut ArrowSchema)>,
    /// Producer data.
    pub private_data: *mut c_void,
}

/// `struct ArrowArray` of the C Data Interface.
#[repr(C)]
#[derive(Debug)]
pub struct ArrowArray {
    /// Number of elements (rows).
    pub length: i64,
    /// Number of nulls.
    pub null_count: i64,
    /// Offset into the buffers.
    pub offset: i64,
    /// Number of buffers.
    pub n_buffers: i64,
    /// Number of children.
    pub n_children: i64,
    /// Buffers.
    pub buffers: *mut *const c_void,
    /// Children.
    pub children: *mut *mut ArrowArray,
    /// Dictionary, or null.
    pub dictionary: *mut ArrowArray,
    /// Release callback; null once released.
    pub release: Option<unsafe extern "C" fn(*mut ArrowArray)>,
    /// Producer data.
    pub private_data: *mut c_void,
}

/// Arrow format string of a dtype.
fn format(dtype: DType) -> Result<&'static str> {
    use DType::*;
    Ok(match dtype {
        Int8 => "c",
        UInt8 => "C",
        Int16 => "s",
        UInt16 => "S",
        Int32 => "i",
        UInt32 => "I",
        Int64 => "l",
        UInt64 => "L",
        Float16 => "e",
        Float32 => "f",
        Float64 => "g",
        Bool | BFloat16 => {
            return Err(Error::new(
                crate::error::ErrorKind::DtypeMismatch,
                format!("{dtype:?} has no zero-copy Arrow type (Arrow bool is bit-packed; bfloat16 has none)"),
            ))
        }
    })
}

/// Owned strings and child pointers of one exported schema node.
struct SchemaData {
    _strings: Vec<CString>,
    _metadata: Vec<u8>,
    children: Vec<*mut ArrowSchema>,
}

/// Owned buffers and children of one exported array node.
struct ArrayData {
    _buffer: Option<SharedBuffer>,
    buffers: Vec<*const c_void>,
    children: Vec<*mut ArrowArray>,
}

unsafe extern "C" fn release_schema(schema: *mut ArrowSchema) {
    let Some(s) = schema.as_mut() else { return };
    if s.release.is_none() {
        return;
    }
    let data = Box::from_raw(s.private_data.cast::<SchemaData>());
    for &child in &data.children {
        if let Some(release) = (*child).release {
            release(child);
        }
        drop(Box::from_raw(child));
    }
    s.release = None;
}

unsafe extern "C" fn release_array(array: *mut ArrowArray) {
    let Some(a) = array.as_mut() else { return };
    if a.release.is_none() {
        return;
    }
    let data = Box::from_raw(a.private_data.cast::<ArrayData>());
    for &child in &data.children {
        if let Some(release) = (*child).release {
            release(child);
        }
        drop(Box::from_raw(child));
    }
    a.release = None;
}

fn cstring(text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::invalid(format!("{text:?} contains a NUL byte")))
}

/// Encodes key/value metadata in the C Data Interface's binary form.
fn encode_metadata(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = (pairs.len() as i32).to_ne_bytes().to_vec();
    for (k, v) in pairs {
        for part in [k, v] {
            out.extend_from_slice(&(part.len() as i32).to_ne_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

fn schema_node(
    format: &str,
    name: &str,
    metadata: &[(String, String)],
    children: Vec<*mut ArrowSchema>,
) -> Result<ArrowSchema> {
    let strings = vec![cstring(format)?, cstring(name)?];
    let metadata_bytes = if metadata.is_empty() {
        Vec::new()
    } else {
        encode_metadata(metadata)
    };
    let mut data = Box::new(SchemaData {
        _strings: strings,
        _metadata: metadata_bytes,
        children,
    });
    // Pointers into the boxed data stay valid: the box is leaked into `private_data`.
    Ok(ArrowSchema {
        format: data._strings[0].as_ptr(),
        name: data._strings[1].as_ptr(),
        metadata: if data._metadata.is_empty() {
            std::ptr::null()
        } else {
            data._metadata.as_ptr().cast()
        },
        flags: 0,
        n_children: data.children.len() as i64,
        children: if data.children.is_empty() {
            std::ptr::null_mut()
        } else {
            data.children.as_mut_ptr()
        },
        dictionary: std::ptr::null_mut(),
        release: Some(release_schema),
        private_data: Box::into_raw(data).cast(),
    })
}

/// Exports `rows` tensors of `list_size` elements each, starting `offset`
/// elements into `buffer`, as a fixed-size-list array with the extension
/// metadata `metadata` on the field named `name`. Writes the structs to
/// the caller's `schema` and `array`.
pub fn export_fixed_size_list(
    buffer: &SharedBuffer,
    dtype: DType,
    offset: usize,
    rows: usize,
    list_size: usize,
    name: &str,
    metadata: &[(String, String)],
) -> Result<(ArrowSchema, ArrowArray)> {
    buffer.check_host("Arrow export")?;
    let value_format = format(dtype)?;
    let end = offset
        .checked_add(
            rows.checked_mul(list_size)
                .ok_or_else(|| Error::invalid("tensor too large"))?,
        )
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| Error::invalid("tensor too large"))?;
    if end > buffer.len() {
        return Err(Error::invalid(format!(
            "{rows}×{list_size} elements at {offset} exceed the buffer"
        )));
    }
    let child_schema = Box::into_raw(Box::new(schema_node(
        value_format,
        "item",
        &[],
        Vec::new(),
    )?));
    let schema = schema_node(
        &format!("+w:{list_size}"),
        name,
        metadata,
        vec![child_schema],
    )?;

    let data_ptr = buffer.as_ptr().wrapping_add(offset * dtype.size()) as *const c_void;
    let mut child_data = Box::new(ArrayData {
        _buffer: Some(Arc::clone(buffer)),
        buffers: vec![std::ptr::null(), data_ptr],
        children: Vec::new(),
    });
    let child = Box::into_raw(Box::new(ArrowArray {
        length: (rows * list_size) as i64,
        null_count: 0,
        offset: 0,
        n_buffers: 2,
        n_children: 0,
        buffers: child_data.buffers.as_mut_ptr(),
        children: std::ptr::null_mut(),
        dictionary: std::ptr::null_mut(),
        release: Some(release_array),
        private_data: Box::into_raw(child_data).cast(),
    }));
    let mut parent_data = Box::new(ArrayData {
        _buffer: None,
        buffers: vec![std::ptr::null()],
        children: vec![child],
    });
    let array = ArrowArray {
        length: rows as i64,
        null_count: 0,
        offset: 0,
        n_buffers: 1,
        n_children: 1,
        buffers: parent_data.buffers.as_mut_ptr(),
        children: parent_data.children.as_mut_ptr(),
        dictionary: std::ptr::null_mut(),
        release: Some(release_array),
        private_data: Box::into_raw(parent_data).cast(),
    };
    Ok((schema, array))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::AlignedBuffer;

    #[test]
    fn export_holds_a_reference_until_released() {
        let buffer = Arc::new(AlignedBuffer::zeroed(64).unwrap());
        let meta = [(
            "ARROW:extension:name".to_string(),
            "arrow.fixed_shape_tensor".to_string(),
        )];
        let (mut schema, mut array) =
            export_fixed_size_list(&buffer, DType::Float32, 2, 2, 6, "t", &meta).unwrap();
        assert_eq!(Arc::strong_count(&buffer), 2);
        unsafe {
            assert_eq!(
                std::ffi::CStr::from_ptr(schema.format).to_str().unwrap(),
                "+w:6"
            );
            let child = &**array.children;
            assert_eq!(
                *child.buffers.add(1),
                buffer.as_ptr().add(8) as *const c_void
            );
            release_array(&mut array);
            release_schema(&mut schema);
        }
        assert_eq!(Arc::strong_count(&buffer), 1);
        assert!(export_fixed_size_list(&buffer, DType::Float32, 2, 3, 6, "t", &meta).is_err());
    }
}
