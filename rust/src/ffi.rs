//! The C ABI bound by `src/ffi.ts`. Every export catches panics, returns an
//! `i32` status (0 = ok, else an [`ErrorKind`] code) and writes error
//! messages into a caller-supplied buffer. Handles are boxed and freed by
//! their `*_free` export.

use crate::arrow;
use crate::batch;
use crate::buffer::{Location, SharedBuffer};
use crate::device_exec::DeviceAssembler;
use crate::dlpack::{self, TensorLayout};
use crate::downsample;
use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use crate::omearrow::{self, OmeArrow};
use crate::progress::{Progress, COUNTER_COUNT};
use crate::read::{self, Array};
use crate::region::Request;
use crate::spec::ArraySpec;
use crate::store::FsStore;
use crate::strided;
use crate::write;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Version of this ABI; `src/ffi.ts` refuses a library with another.
pub const ABI_VERSION: u32 = 4;

/// Runs `f`, turning errors and panics into a status and a message.
fn guarded(err: *mut u8, err_len: usize, f: impl FnOnce() -> Result<()>) -> i32 {
    let error = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => e,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Error::new(ErrorKind::Internal, format!("internal error: {what}"))
        }
    };
    write_message(err, err_len, &error.message);
    error.kind as i32
}

/// Writes `message` as NUL-terminated UTF-8, cut at a character boundary.
fn write_message(err: *mut u8, err_len: usize, message: &str) {
    if err.is_null() || err_len == 0 {
        return;
    }
    let mut end = message.len().min(err_len - 1);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    // SAFETY: the caller provides `err_len` writable bytes at `err`.
    unsafe {
        std::ptr::copy_nonoverlapping(message.as_ptr(), err, end);
        *err.add(end) = 0;
    }
}

/// Borrows `len` elements at `ptr`; a null pointer is only valid when empty.
///
/// # Safety
/// `ptr` must be valid for reads of `len` elements for the lifetime `'a`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::invalid(format!("{what} is null")));
    }
    Ok(std::slice::from_raw_parts(ptr, len))
}

/// Borrows the object behind a handle.
///
/// # Safety
/// `ptr` must be null or a live handle of type `T`.
unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T> {
    ptr.as_ref()
        .ok_or_else(|| Error::invalid(format!("{what} handle is null")))
}

fn store_out<T>(out: *mut *mut T, value: T) -> Result<()> {
    if out.is_null() {
        return Err(Error::invalid("output slot is null"));
    }
    // SAFETY: the caller provides one writable pointer slot at `out`.
    unsafe { *out = Box::into_raw(Box::new(value)) };
    Ok(())
}

/// The ABI version of this library.
#[no_mangle]
pub extern "C" fn tessera_abi_version() -> u32 {
    ABI_VERSION
}

/// Opens an array: `root` is the UTF-8 path of its folder, `desc` its
/// descriptor (see [`crate::spec`]) and `fill` its fill value bytes.
/// Writes an array handle to `*out`.
///
/// # Safety
/// Pointers must be valid for their lengths; `out` for one pointer.
#[no_mangle]
pub unsafe extern "C" fn tessera_array_open(
    root: *const u8,
    root_len: usize,
    desc: *const i64,
    desc_len: usize,
    fill: *const u8,
    fill_len: usize,
    out: *mut *mut Array,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let root = std::str::from_utf8(slice(root, root_len, "root path")?)
            .map_err(|_| Error::invalid("root path is not UTF-8"))?;
        let spec = ArraySpec::decode(
            slice(desc, desc_len, "descriptor")?,
            slice(fill, fill_len, "fill value")?,
        )
        .map_err(|e| e.context(root))?;
        store_out(
            out,
            Array {
                store: FsStore::new(root).into(),
                spec,
            },
        )
    })
}

/// Frees an array handle (null is ignored).
///
/// # Safety
/// `array` must be null or a handle from [`tessera_array_open`], freed once.
#[no_mangle]
pub unsafe extern "C" fn tessera_array_free(array: *mut Array) {
    if !array.is_null() {
        drop(Box::from_raw(array));
    }
}

/// Reads a region (see [`Request::decode`] for `req`) into a new buffer,
/// written to `*out`. `progress` may be null.
///
/// # Safety
/// Pointers must be valid for their lengths and live for the call.
#[no_mangle]
pub unsafe extern "C" fn tessera_read(
    array: *const Array,
    req: *const i64,
    req_len: usize,
    progress: *const Progress,
    out: *mut *mut SharedBuffer,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let array = handle(array, "array")?;
        let request = Request::decode(slice(req, req_len, "request")?, &array.spec.shape)?;
        let fallback = Progress::default();
        let progress = progress.as_ref().unwrap_or(&fallback);
        store_out(out, read::read(array, &request, progress)?)
    })
}

/// Counts what reading a region would touch into `progress` (chunks,
/// stored chunks, bytes and read operations), reading only shard indexes.
///
/// # Safety
/// Pointers must be valid for their lengths and live for the call.
#[no_mangle]
pub unsafe extern "C" fn tessera_explain(
    array: *const Array,
    req: *const i64,
    req_len: usize,
    progress: *const Progress,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let array = handle(array, "array")?;
        let request = Request::decode(slice(req, req_len, "request")?, &array.spec.shape)?;
        read::explain(array, &request, handle(progress, "progress")?)
    })
}

/// Writes `data` as the chunk-aligned box `[origin × rank, shape × rank]`.
/// `progress` may be null.
///
/// # Safety
/// Pointers must be valid for their lengths and live for the call.
#[no_mangle]
pub unsafe extern "C" fn tessera_write_region(
    array: *const Array,
    data: *const u8,
    data_len: usize,
    region: *const i64,
    region_len: usize,
    progress: *const Progress,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let array = handle(array, "array")?;
        let words = slice(region, region_len, "write box")?;
        let rank = array.spec.shape.len();
        if words.len() != 2 * rank || words.iter().any(|&w| w < 0) {
            return Err(Error::invalid(format!(
                "write box {words:?} for rank {rank}"
            )));
        }
        let words: Vec<u64> = words.iter().map(|&w| w as u64).collect();
        let fallback = Progress::default();
        let progress = progress.as_ref().unwrap_or(&fallback);
        write::write_region(
            array,
            slice(data, data_len, "data")?,
            &words[..rank],
            &words[rank..],
            progress,
        )
    })
}

/// Block-mean downsampling of a C-order array; `desc` is
/// `[dtype, rank, shape × rank, factors × rank]`. Writes a buffer to `*out`.
///
/// # Safety
/// Pointers must be valid for their lengths and live for the call.
#[no_mangle]
pub unsafe extern "C" fn tessera_downsample(
    data: *const u8,
    data_len: usize,
    desc: *const i64,
    desc_len: usize,
    out: *mut *mut SharedBuffer,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let words = slice(desc, desc_len, "downsample descriptor")?;
        let bad = || Error::invalid(format!("downsample descriptor {words:?}"));
        let (&code, rest) = words.split_first().ok_or_else(bad)?;
        let (&rank, dims) = rest.split_first().ok_or_else(bad)?;
        if rank < 0 || dims.len() as i64 != 2 * rank || dims.iter().any(|&d| d < 0) {
            return Err(bad());
        }
        let dims: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        let (shape, factors) = dims.split_at(rank as usize);
        let data = slice(data, data_len, "data")?;
        let buffer = crate::pool()
            .install(|| downsample::downsample(data, DType::from_code(code)?, shape, factors))?;
        store_out(out, buffer)
    })
}

/// Start of a buffer's bytes.
///
/// # Safety
/// `buffer` must be a live buffer handle.
#[no_mangle]
pub unsafe extern "C" fn tessera_buffer_data(buffer: *const SharedBuffer) -> *mut u8 {
    buffer.as_ref().map_or(std::ptr::null_mut(), |b| b.as_ptr())
}

/// Length of a buffer in bytes.
///
/// # Safety
/// `buffer` must be a live buffer handle.
#[no_mangle]
pub unsafe extern "C" fn tessera_buffer_len(buffer: *const SharedBuffer) -> usize {
    buffer.as_ref().map_or(0, |b| b.len())
}

/// Drops a buffer reference (null is ignored); the memory is freed with the last one.
///
/// # Safety
/// `buffer` must be null or a live buffer handle, freed once.
#[no_mangle]
pub unsafe extern "C" fn tessera_buffer_free(buffer: *mut SharedBuffer) {
    if !buffer.is_null() {
        drop(Box::from_raw(buffer));
    }
}

/// A new set of progress counters.
#[no_mangle]
pub extern "C" fn tessera_progress_new() -> *mut Progress {
    Box::into_raw(Box::default())
}

/// Copies up to `len` counters (see [`Progress::snapshot`]) into `out`.
///
/// # Safety
/// `progress` must be a live handle and `out` valid for `len` writes.
#[no_mangle]
pub unsafe extern "C" fn tessera_progress_read(
    progress: *const Progress,
    out: *mut u64,
    len: usize,
) {
    if let (Some(p), false) = (progress.as_ref(), out.is_null()) {
        for (i, v) in p.snapshot().iter().take(len.min(COUNTER_COUNT)).enumerate() {
            *out.add(i) = *v;
        }
    }
}

/// A new reference to a buffer (the memory lives until every reference is freed).
///
/// # Safety
/// `buffer` must be a live buffer handle.
#[no_mangle]
pub unsafe extern "C" fn tessera_buffer_retain(buffer: *const SharedBuffer) -> *mut SharedBuffer {
    buffer.as_ref().map_or(std::ptr::null_mut(), |b| {
        Box::into_raw(Box::new(std::sync::Arc::clone(b)))
    })
}

/// Decodes `[dtype, rank, offset, shape × rank, strides × rank]` (elements).
fn tensor_layout(words: &[i64]) -> Result<TensorLayout> {
    let bad = || Error::invalid(format!("tensor layout {words:?}"));
    let [code, rank, offset, dims @ ..] = words else {
        return Err(bad());
    };
    let rank = usize::try_from(*rank)
        .ok()
        .filter(|&r| r <= dlpack::MAX_RANK && dims.len() == 2 * r)
        .ok_or_else(bad)?;
    if dims[..rank].iter().any(|&n| n < 0) {
        return Err(bad());
    }
    Ok(TensorLayout {
        dtype: DType::from_code(*code)?,
        offset: *offset,
        shape: dims[..rank].to_vec(),
        strides: dims[rank..].to_vec(),
    })
}

/// Copies a strided view of `buffer` (see [`tensor_layout`]) into a new
/// C-contiguous buffer written to `*out`.
///
/// # Safety
/// Pointers must be valid for their lengths and live for the call.
#[no_mangle]
pub unsafe extern "C" fn tessera_copy_strided(
    buffer: *const SharedBuffer,
    layout: *const i64,
    layout_len: usize,
    out: *mut *mut SharedBuffer,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let buffer = handle(buffer, "buffer")?;
        let layout = tensor_layout(slice(layout, layout_len, "layout")?)?;
        store_out(out, strided::make_contiguous(buffer, &layout)?)
    })
}

/// Exports a view of `buffer` as a DLPack managed tensor (versioned when
/// `versioned` is non-zero; flagged read-only when `read_only` is non-zero)
/// and writes its address to `*out`. The consumer calls its deleter once.
///
/// # Safety
/// Pointers must be valid for their lengths; `out` for one pointer.
#[no_mangle]
pub unsafe extern "C" fn tessera_dlpack_export(
    buffer: *const SharedBuffer,
    layout: *const i64,
    layout_len: usize,
    versioned: u32,
    read_only: u32,
    out: *mut *mut std::ffi::c_void,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let buffer = handle(buffer, "buffer")?;
        let layout = tensor_layout(slice(layout, layout_len, "layout")?)?;
        let managed = dlpack::export(buffer, &layout, versioned != 0, read_only != 0)?;
        if out.is_null() {
            return Err(Error::invalid("output slot is null"));
        }
        *out = managed;
        Ok(())
    })
}

/// Takes ownership of another producer's DLPack managed tensor: writes a
/// buffer handle (which calls the producer's deleter when freed) to `*out`
/// and `[dtype, rank, offset, shape × rank, strides × rank]` to `info`
/// (room for `info_len` words). On error the deleter has been called.
///
/// # Safety
/// `managed` must be a live managed tensor of the stated kind, given up by the caller.
#[no_mangle]
pub unsafe extern "C" fn tessera_dlpack_import(
    managed: *mut std::ffi::c_void,
    versioned: u32,
    out: *mut *mut SharedBuffer,
    info: *mut i64,
    info_len: usize,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        if info.is_null() || info_len < 3 + 2 * dlpack::MAX_RANK {
            return Err(Error::invalid(
                "DLPack import needs room for a rank-32 layout",
            ));
        }
        let (buffer, layout) = dlpack::import(managed, versioned != 0)?;
        let mut words = vec![
            layout.dtype as i64,
            layout.shape.len() as i64,
            layout.offset,
        ];
        words.extend(&layout.shape);
        words.extend(&layout.strides);
        std::ptr::copy_nonoverlapping(words.as_ptr(), info, words.len());
        store_out(out, buffer)
    })
}

/// Exports `rows` tensors of `list_size` elements of `dtype`, starting
/// `offset` elements into `buffer`, through the Arrow C Data Interface as a
/// fixed-size-list array (zero copy). `name` and `metadata` (key/value
/// pairs separated by NUL bytes) go on the field. The structs are written
/// into the caller's `schema` (72 bytes) and `array` (80 bytes); the
/// consumer calls their `release` callbacks.
///
/// # Safety
/// Pointers must be valid for their lengths; `schema` and `array` writable.
#[no_mangle]
pub unsafe extern "C" fn tessera_arrow_export(
    buffer: *const SharedBuffer,
    dims: *const i64,
    dims_len: usize,
    text: *const u8,
    text_len: usize,
    schema: *mut arrow::ArrowSchema,
    array: *mut arrow::ArrowArray,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let buffer = handle(buffer, "buffer")?;
        let [code, offset, rows, list_size] = slice(dims, dims_len, "dims")? else {
            return Err(Error::invalid(
                "arrow export needs [dtype, offset, rows, list size]",
            ));
        };
        if [*offset, *rows, *list_size].iter().any(|&v| v < 0) {
            return Err(Error::invalid("arrow export sizes must not be negative"));
        }
        let text = std::str::from_utf8(slice(text, text_len, "text")?)
            .map_err(|_| Error::invalid("arrow field name or metadata is not UTF-8"))?;
        let mut parts = text.split('\0');
        let name = parts.next().unwrap_or("");
        let rest: Vec<&str> = parts.collect();
        if !rest.len().is_multiple_of(2) {
            return Err(Error::invalid("arrow metadata needs key/value pairs"));
        }
        let metadata: Vec<(String, String)> = rest
            .chunks_exact(2)
            .map(|kv| (kv[0].to_string(), kv[1].to_string()))
            .collect();
        if schema.is_null() || array.is_null() {
            return Err(Error::invalid("arrow output structs are null"));
        }
        let (s, a) = arrow::export_fixed_size_list(
            buffer,
            DType::from_code(*code)?,
            *offset as usize,
            *rows as usize,
            *list_size as usize,
            name,
            &metadata,
        )?;
        schema.write(s);
        array.write(a);
        Ok(())
    })
}

/// Frees progress counters (null is ignored).
///
/// # Safety
/// `progress` must be null or a live handle, freed once, with no call using it.
#[no_mangle]
pub unsafe extern "C" fn tessera_progress_free(progress: *mut Progress) {
    if !progress.is_null() {
        drop(Box::from_raw(progress));
    }
}

// --- Thumbnails (rust/src/render.rs) ---

/// Renders a view of `buffer` (see [`tensor_layout`]) as an RGB PNG with
/// the parameters of [`crate::render::RenderParams::decode`]. Writes a new buffer
/// holding the PNG file to `*out`, and `[width, height, lo₀, hi₀, lo₁, …]`
/// (the window used per channel) to `info`.
///
/// # Safety
/// Pointers must be valid for their lengths and live for the call; `out`
/// for one pointer.
#[no_mangle]
pub unsafe extern "C" fn tessera_render_png(
    buffer: *const SharedBuffer,
    layout: *const i64,
    layout_len: usize,
    params: *const f64,
    params_len: usize,
    info: *mut f64,
    info_len: usize,
    out: *mut *mut SharedBuffer,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let buffer = handle(buffer, "buffer")?;
        let layout = tensor_layout(slice(layout, layout_len, "layout")?)?;
        let params = crate::render::RenderParams::decode(
            slice(params, params_len, "parameters")?,
            layout.shape.len(),
        )?;
        if info.is_null() || info_len < 2 + 2 * params.channels.len() {
            return Err(Error::invalid("render info buffer is too short"));
        }
        let rendered = crate::render::render_png(buffer, &layout, &params)?;
        let png = crate::buffer::AlignedBuffer::zeroed(rendered.png.len())?;
        std::ptr::copy_nonoverlapping(rendered.png.as_ptr(), png.as_ptr(), rendered.png.len());
        let words = std::slice::from_raw_parts_mut(info, info_len);
        words[0] = rendered.size.0 as f64;
        words[1] = rendered.size.1 as f64;
        for (i, (lo, hi)) in rendered.windows.iter().enumerate() {
            words[2 + 2 * i] = *lo;
            words[3 + 2 * i] = *hi;
        }
        store_out(out, std::sync::Arc::new(png))
    })
}

/// Asks the call using `progress` to stop: it returns the `Cancelled`
/// status at its next check (between chunks), freeing what it allocated.
///
/// # Safety
/// `progress` must be null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tessera_progress_cancel(progress: *const Progress) {
    if let Some(p) = progress.as_ref() {
        p.cancel();
    }
}

/// Bytes held by live native buffers made by this library (outputs and
/// copies; not imported DLPack memory), for leak checks.
#[no_mangle]
pub extern "C" fn tessera_buffer_live_bytes() -> u64 {
    crate::buffer::live_bytes()
}

// --- OME-Arrow sources (src/omearrow) ---

/// Opens row `row` of an OME-Arrow Parquet or Arrow IPC file at `path`
/// (UTF-8); `column` names the record column (empty: the first OME-Arrow
/// struct column). Writes the handle to `*out`.
///
/// # Safety
/// Pointers must be valid for their lengths; `out` for one pointer.
#[no_mangle]
pub unsafe extern "C" fn tessera_omearrow_open(
    path: *const u8,
    path_len: usize,
    row: u64,
    column: *const u8,
    column_len: usize,
    out: *mut *mut OmeArrow,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let path = std::str::from_utf8(slice(path, path_len, "path")?)
            .map_err(|_| Error::invalid("path is not UTF-8"))?;
        let column = std::str::from_utf8(slice(column, column_len, "column")?)
            .map_err(|_| Error::invalid("column name is not UTF-8"))?;
        let column = (!column.is_empty()).then_some(column);
        store_out(out, OmeArrow::open(path, row, column)?)
    })
}

/// Copies the record's metadata (JSON) into `buf` (up to `buf_len` bytes)
/// and returns its full length; 0 for a null handle.
///
/// # Safety
/// `source` must be null or a live handle; `buf` writable for `buf_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn tessera_omearrow_meta(
    source: *const OmeArrow,
    buf: *mut u8,
    buf_len: usize,
) -> usize {
    catch_unwind(AssertUnwindSafe(|| {
        let Some(source) = source.as_ref() else {
            return 0;
        };
        let json = source.meta_json();
        if !buf.is_null() {
            std::ptr::copy_nonoverlapping(json.as_ptr(), buf, json.len().min(buf_len));
        }
        json.len()
    }))
    .unwrap_or(0)
}

/// Reads a region of an OME-Arrow image (axes t, c, z, y, x; see
/// [`Request::decode`]) into a new buffer written to `*out`. `progress`
/// may be null.
///
/// # Safety
/// Pointers must be valid for their lengths and live for the call.
#[no_mangle]
pub unsafe extern "C" fn tessera_omearrow_read(
    source: *const OmeArrow,
    req: *const i64,
    req_len: usize,
    progress: *const Progress,
    out: *mut *mut SharedBuffer,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let source = handle(source, "OME-Arrow source")?;
        let request = Request::decode(slice(req, req_len, "request")?, &source.record().shape)?;
        let fallback = Progress::default();
        let progress = progress.as_ref().unwrap_or(&fallback);
        store_out(out, source.read(&request, progress)?)
    })
}

/// Counts the pieces (chunks or planes) and bytes a region read would touch.
///
/// # Safety
/// Pointers must be valid for their lengths and live for the call.
#[no_mangle]
pub unsafe extern "C" fn tessera_omearrow_explain(
    source: *const OmeArrow,
    req: *const i64,
    req_len: usize,
    progress: *const Progress,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let source = handle(source, "OME-Arrow source")?;
        let request = Request::decode(slice(req, req_len, "request")?, &source.record().shape)?;
        source.explain(&request, handle(progress, "progress")?)
    })
}

/// Frees an OME-Arrow source (null is ignored).
///
/// # Safety
/// `source` must be null or a handle from [`tessera_omearrow_open`], freed once.
#[no_mangle]
pub unsafe extern "C" fn tessera_omearrow_free(source: *mut OmeArrow) {
    if !source.is_null() {
        drop(Box::from_raw(source));
    }
}

/// Writes a C-order (t, c, z, y, x) image as an OME-Arrow file. `words`:
/// `[dtype, t, c, z, y, x, chunk z, chunk y, chunk x, ipc (0/1), zstd level
/// (-1: raw), overwrite (0/1)]`; `physical`: sizes (z, y, x); `text`: name,
/// id, column, unit, then one name per channel, separated by NUL bytes.
///
/// # Safety
/// Pointers must be valid for their lengths and live for the call.
#[no_mangle]
pub unsafe extern "C" fn tessera_omearrow_write(
    path: *const u8,
    path_len: usize,
    data: *const u8,
    data_len: usize,
    words: *const i64,
    words_len: usize,
    physical: *const f64,
    text: *const u8,
    text_len: usize,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let path = std::str::from_utf8(slice(path, path_len, "path")?)
            .map_err(|_| Error::invalid("path is not UTF-8"))?;
        let w = slice(words, words_len, "words")?;
        let [code, t, c, z, y, x, cz, cy, cx, ipc, level, overwrite] = w else {
            return Err(Error::invalid("OME-Arrow write needs 12 words"));
        };
        let dims = [*t, *c, *z, *y, *x, *cz, *cy, *cx];
        if dims.iter().any(|&v| v <= 0) {
            return Err(Error::invalid(format!(
                "OME-Arrow write: sizes {dims:?} must be positive"
            )));
        }
        let physical: [f64; 3] = slice(physical, 3, "physical sizes")?
            .try_into()
            .map_err(|_| Error::invalid("three physical sizes"))?;
        let text = std::str::from_utf8(slice(text, text_len, "text")?)
            .map_err(|_| Error::invalid("names are not UTF-8"))?;
        let mut parts = text.split('\0').map(String::from);
        let mut next = || parts.next().unwrap_or_default();
        let (name, id, column, unit) = (next(), next(), next(), next());
        let channels: Vec<String> = text.split('\0').skip(4).map(String::from).collect();
        let options = omearrow::write::WriteOptions {
            dtype: DType::from_code(*code)?,
            shape: [*t, *c, *z, *y, *x].map(|v| v as u64),
            chunk: [*cz, *cy, *cx].map(|v| v as u64),
            ipc: *ipc != 0,
            zstd_level: (*level >= 0).then_some(*level as i32),
            overwrite: *overwrite != 0,
            name,
            id,
            column,
            unit,
            channels,
            physical,
        };
        omearrow::write::write(
            std::path::Path::new(path),
            slice(data, data_len, "data")?,
            &options,
        )
    })
}

/// Imports an Arrow array through the C Data Interface without a copy,
/// taking ownership of `schema` and `array` (both are marked released):
/// a primitive array or a fixed-size list of primitives. Writes the
/// buffer over its values to `*out`, `[dtype, rows, list size, text
/// length]` to `info`, and the field's name, list child name and metadata
/// (`name\0child\0key\0value…`)
/// to `text` (up to `text_len` bytes).
///
/// # Safety
/// `schema` and `array` must be valid, unreleased structs; other pointers
/// valid for their lengths (`info` for 4 values).
#[no_mangle]
pub unsafe extern "C" fn tessera_arrow_import(
    schema: *mut arrow::ArrowSchema,
    array: *mut arrow::ArrowArray,
    out: *mut *mut SharedBuffer,
    info: *mut i64,
    text: *mut u8,
    text_len: usize,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        if info.is_null() {
            return Err(Error::invalid("info is null"));
        }
        let imported = crate::arrow_import::import(schema, array)?;
        let t = imported.text.as_bytes();
        if !text.is_null() {
            std::ptr::copy_nonoverlapping(t.as_ptr(), text, t.len().min(text_len));
        }
        let words = [
            imported.dtype as i64,
            imported.rows as i64,
            imported.list_size as i64,
            t.len() as i64,
        ];
        std::ptr::copy_nonoverlapping(words.as_ptr(), info, 4);
        store_out(out, imported.buffer)
    })
}

// ---------------------------------------------------------------------------
// Streaming pipeline: batch executors (see crate::batch and src/pipeline.ts).

/// Starts a batch executor with `threads` workers (0: the default pool
/// size). Writes its handle to `*out`.
///
/// # Safety
/// `out` must be valid for one pointer; `err` for `err_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn tessera_batch_executor_new(
    threads: u32,
    out: *mut *mut batch::Executor,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        store_out(out, batch::Executor::new(threads as usize)?)
    })
}

/// Frees an executor (null is ignored). Batches it made stay valid.
///
/// # Safety
/// `executor` must be null or a live handle, freed once, with no call using it.
#[no_mangle]
pub unsafe extern "C" fn tessera_batch_executor_free(executor: *mut batch::Executor) {
    if !executor.is_null() {
        drop(Box::from_raw(executor));
    }
}

/// Assembles one batch (see `crate::batch` for `desc`) from the array
/// handles `arrays` into a new buffer, written to `*out`.
///
/// # Safety
/// Pointers must be valid for their lengths and, with every array handle,
/// live for the call.
#[no_mangle]
pub unsafe extern "C" fn tessera_batch_assemble(
    executor: *const batch::Executor,
    arrays: *const *const Array,
    arrays_len: usize,
    desc: *const i64,
    desc_len: usize,
    out: *mut *mut SharedBuffer,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let executor = handle(executor, "batch executor")?;
        let arrays = slice(arrays, arrays_len, "array handles")?
            .iter()
            .map(|&a| handle(a, "array"))
            .collect::<Result<Vec<&Array>>>()?;
        let words = slice(desc, desc_len, "batch descriptor")?;
        store_out(out, executor.assemble(&arrays, words)?)
    })
}

/// Bytes of the executor's batches still alive (held by views or consumers).
///
/// # Safety
/// `executor` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn tessera_batch_live_bytes(executor: *const batch::Executor) -> u64 {
    executor.as_ref().map_or(0, |e| e.live_bytes())
}

/// Writes the executor's per-stage totals (`[ns, bytes, count]` for plan,
/// io, decode, assemble, transfer) into `out` (at most `out_len` values).
///
/// # Safety
/// `executor` must be a live handle; `out` valid for `out_len` values.
#[no_mangle]
pub unsafe extern "C" fn tessera_batch_stats(
    executor: *const batch::Executor,
    out: *mut u64,
    out_len: usize,
) {
    if let (Some(e), false) = (executor.as_ref(), out.is_null()) {
        let values = e.stats().snapshot();
        let n = out_len.min(values.len());
        std::ptr::copy_nonoverlapping(values.as_ptr(), out, n);
    }
}

/// Where a buffer lives: -1 for host memory, else the CUDA device ordinal.
///
/// # Safety
/// `buffer` must be a live buffer handle.
#[no_mangle]
pub unsafe extern "C" fn tessera_buffer_device(buffer: *const SharedBuffer) -> i32 {
    match buffer.as_ref().map(|b| b.location()) {
        Some(Location::Cuda(ordinal)) => ordinal,
        _ => -1,
    }
}

// ---------------------------------------------------------------------------
// Streaming pipeline on CUDA: batches decoded and assembled on the device
// (see crate::device_exec and src/pipeline.ts).

/// Opens CUDA device `ordinal` for device-assembled batches of at most
/// `budget` device bytes (batches plus staging): compiles the kernels with
/// NVRTC and loads nvCOMP when present. Writes the handle to `*out`.
///
/// # Safety
/// `out` must be valid for one pointer; `err` for `err_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn tessera_cuda_assembler_new(
    ordinal: u32,
    budget: u64,
    out: *mut *mut DeviceAssembler,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        store_out(out, DeviceAssembler::open(ordinal, budget)?)
    })
}

/// Frees a device assembler (null is ignored). Batches it made stay valid.
///
/// # Safety
/// `assembler` must be null or a live handle, freed once, with no call using it.
#[no_mangle]
pub unsafe extern "C" fn tessera_cuda_assembler_free(assembler: *mut DeviceAssembler) {
    if !assembler.is_null() {
        drop(Box::from_raw(assembler));
    }
}

/// Assembles one batch (see `crate::batch` for `desc`) on the device; the
/// batch counts in `executor`'s live bytes and stage totals. Writes the
/// device buffer to `*out`.
///
/// # Safety
/// Pointers must be valid for their lengths and, with every handle, live for the call.
#[no_mangle]
pub unsafe extern "C" fn tessera_cuda_assemble(
    executor: *const batch::Executor,
    assembler: *const DeviceAssembler,
    arrays: *const *const Array,
    arrays_len: usize,
    desc: *const i64,
    desc_len: usize,
    out: *mut *mut SharedBuffer,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let executor = handle(executor, "batch executor")?;
        let assembler = handle(assembler, "CUDA assembler")?;
        let arrays = slice(arrays, arrays_len, "array handles")?
            .iter()
            .map(|&a| handle(a, "array"))
            .collect::<Result<Vec<&Array>>>()?;
        let words = slice(desc, desc_len, "batch descriptor")?;
        store_out(out, assembler.assemble(executor, &arrays, words)?)
    })
}

/// Writes the assembler's counters (see `DeviceAssembler::counters`:
/// nvCOMP version, device frames, CPU chunks, device chunks, staging
/// bytes, device decode ns, bytes nvCOMP decoded) into `out` (at most
/// `out_len` values).
///
/// # Safety
/// `assembler` must be a live handle; `out` valid for `out_len` values.
#[no_mangle]
pub unsafe extern "C" fn tessera_cuda_assembler_counters(
    assembler: *const DeviceAssembler,
    out: *mut u64,
    out_len: usize,
) {
    if let (Some(a), false) = (assembler.as_ref(), out.is_null()) {
        let values = a.counters();
        let n = out_len.min(values.len());
        std::ptr::copy_nonoverlapping(values.as_ptr(), out, n);
    }
}

// ---- Remote stores (S3, HTTP) and the shard-index cache -------------------

/// A remote store handle: shared by the arrays opened under it.
pub type RemoteHandle = std::sync::Arc<crate::remote::RemoteStore>;

/// Opens the remote store at `url` (`s3://bucket/prefix`, `http(s)://…`).
/// `config` holds NUL-separated S3 option names and values, alternating
/// (object_store `AmazonS3ConfigKey` names, e.g. `aws_endpoint`);
/// `settings` the words of [`crate::remote::Settings::decode`]. Writes a
/// store handle to `*out`. No request is made here.
///
/// # Safety
/// Pointers must be valid for their lengths; `out` for one pointer.
#[no_mangle]
pub unsafe extern "C" fn tessera_remote_open(
    url: *const u8,
    url_len: usize,
    config: *const u8,
    config_len: usize,
    settings: *const i64,
    settings_len: usize,
    out: *mut *mut RemoteHandle,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let url = std::str::from_utf8(slice(url, url_len, "url")?)
            .map_err(|_| Error::invalid("store URL is not UTF-8"))?;
        let config = std::str::from_utf8(slice(config, config_len, "config")?)
            .map_err(|_| Error::invalid("store options are not UTF-8"))?;
        let parts: Vec<&str> = if config.is_empty() {
            Vec::new()
        } else {
            config.split('\0').collect()
        };
        if !parts.len().is_multiple_of(2) {
            return Err(Error::invalid("store options are not name/value pairs"));
        }
        let pairs: Vec<(String, String)> = parts
            .chunks_exact(2)
            .map(|p| (p[0].to_string(), p[1].to_string()))
            .collect();
        let settings = crate::remote::Settings::decode(slice(settings, settings_len, "settings")?)?;
        store_out(out, crate::remote::open(url, &pairs, settings)?)
    })
}

/// Frees a remote store handle (null is ignored); arrays opened under it stay valid.
///
/// # Safety
/// `store` must be null or a handle from [`tessera_remote_open`], freed once.
#[no_mangle]
pub unsafe extern "C" fn tessera_remote_free(store: *mut RemoteHandle) {
    if !store.is_null() {
        drop(Box::from_raw(store));
    }
}

/// Reads the whole object `key` (relative to the store's root) into a new
/// buffer, through the metadata cache; status NotFound (2) when it does
/// not exist.
///
/// # Safety
/// Pointers must be valid for their lengths and live for the call.
#[no_mangle]
pub unsafe extern "C" fn tessera_remote_get(
    store: *const RemoteHandle,
    key: *const u8,
    key_len: usize,
    out: *mut *mut SharedBuffer,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let store = handle(store, "remote store")?;
        let key = std::str::from_utf8(slice(key, key_len, "key")?)
            .map_err(|_| Error::invalid("key is not UTF-8"))?;
        let bytes = store.get_cached(key)?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("{} does not exist", store.key_url(key)),
            )
        })?;
        let buffer = crate::buffer::AlignedBuffer::for_overwrite(bytes.len())?;
        // SAFETY: the buffer was just made with `bytes.len()` writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer.as_ptr(), bytes.len()) };
        store_out(out, std::sync::Arc::new(buffer))
    })
}

/// Opens an array at `prefix` under a remote store (see
/// [`tessera_array_open`] for `desc` and `fill`); reads go through the
/// store's runtime and caches.
///
/// # Safety
/// Pointers must be valid for their lengths; `out` for one pointer.
#[no_mangle]
pub unsafe extern "C" fn tessera_remote_array_open(
    store: *const RemoteHandle,
    prefix: *const u8,
    prefix_len: usize,
    desc: *const i64,
    desc_len: usize,
    fill: *const u8,
    fill_len: usize,
    out: *mut *mut Array,
    err: *mut u8,
    err_len: usize,
) -> i32 {
    guarded(err, err_len, || {
        let store = handle(store, "remote store")?;
        let prefix = std::str::from_utf8(slice(prefix, prefix_len, "prefix")?)
            .map_err(|_| Error::invalid("array path is not UTF-8"))?
            .trim_matches('/')
            .to_string();
        let spec = ArraySpec::decode(
            slice(desc, desc_len, "descriptor")?,
            slice(fill, fill_len, "fill value")?,
        )
        .map_err(|e| e.context(store.key_url(&prefix)))?;
        let store = crate::storage::Store::Remote(crate::storage::RemoteArray {
            remote: store.clone(),
            prefix,
        });
        store_out(out, Array { store, spec })
    })
}

/// Drops cached metadata and shard indexes of remote objects whose URL
/// starts with `prefix` (every remote object when empty); returns how many
/// entries were dropped.
///
/// # Safety
/// `prefix` must be valid for `prefix_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn tessera_remote_invalidate(prefix: *const u8, prefix_len: usize) -> u64 {
    let prefix = match slice(prefix, prefix_len, "prefix").map(std::str::from_utf8) {
        Ok(Ok(p)) => p,
        _ => return 0,
    };
    catch_unwind(|| crate::remote::invalidate(prefix) as u64).unwrap_or(0)
}

/// Sets the shard-index cache budget in bytes (0 disables it).
#[no_mangle]
pub extern "C" fn tessera_index_cache_configure(bytes: u64) {
    let _ = catch_unwind(|| crate::index_cache::set_capacity(bytes));
}

/// Writes `[hits, misses, entries, bytes, capacity]` of the shard-index
/// cache to `out` (5 words).
///
/// # Safety
/// `out` must be valid for 5 `u64` writes.
#[no_mangle]
pub unsafe extern "C" fn tessera_index_cache_stats(out: *mut u64) {
    if let Ok(stats) = catch_unwind(crate::index_cache::stats) {
        if !out.is_null() {
            std::ptr::copy_nonoverlapping(stats.as_ptr(), out, stats.len());
        }
    }
}
