//! Reading OME-Arrow records out of Parquet and Arrow IPC files.
//!
//! Parquet: the footer says which row group holds the row; the metadata
//! leaves are read first (for that row only), and the pixel leaf of the
//! list that holds the pixels only on the first pixel read — never the
//! second copy (OME-Arrow may store planes and chunks of the same pixels)
//! nor other rows' row groups. IPC files are memory-mapped and decoded
//! without copying, so a read touches only the pages of the pieces it needs.

use super::record::{self, PixelList, Record};
use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_buffer::Buffer;
use arrow_data::ArrayData;
use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::reader::{read_footer_length, FileDecoder};
use arrow_ipc::root_as_footer;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::arrow::ProjectionMask;
use std::fs::File;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;

/// The container format of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC file format (Feather v2).
    Ipc,
}

/// Where a record's pixels come from.
#[derive(Debug)]
pub enum Source {
    /// A Parquet file: its footer, the row group and the row inside it.
    Parquet {
        /// Decoded footer and Arrow schema.
        metadata: ArrowReaderMetadata,
        /// Row group holding the row.
        row_group: usize,
        /// Row inside that row group.
        row_in_group: usize,
        /// Index of the record column among the Parquet root fields.
        column: usize,
    },
    /// An IPC file: the pixels were mapped at open.
    Ipc,
}

/// An opened record: metadata, total rows, and its pixels when mapped.
#[derive(Debug)]
pub struct Opened {
    /// The record's metadata.
    pub record: Record,
    /// Rows (records) in the file.
    pub rows: u64,
    /// Name of the record column.
    pub column: String,
    /// Container format.
    pub format: Format,
    /// How to reach the pixels.
    pub source: Source,
    /// Pixels, when already available (IPC).
    pub pixels: Option<Pixels>,
}

/// The payload column of a record: one entry per piece.
#[derive(Debug)]
pub enum Pixels {
    /// Numeric lists: offsets per piece into `values` (of `dtype`).
    List {
        /// Value offsets, one more than pieces in the list.
        offsets: Vec<i64>,
        /// The values.
        values: ArrayData,
        /// Element type of the values.
        dtype: DType,
    },
    /// Typed byte payloads, one per piece.
    Bytes(ArrayRef),
}

impl Pixels {
    /// Bytes of entry `item` (values in the pixel dtype for lists).
    pub fn payload(&self, item: usize) -> Result<&[u8]> {
        let missing = || Error::decode(format!("the pixel column has no entry {item}"));
        match self {
            Pixels::List {
                offsets,
                values,
                dtype,
            } => {
                let (a, b) = match (offsets.get(item), offsets.get(item + 1)) {
                    (Some(&a), Some(&b)) if a <= b => (a as usize, b as usize),
                    _ => return Err(missing()),
                };
                let size = dtype.size();
                let base = values.offset();
                let bytes = values.buffers()[0].as_slice();
                bytes
                    .get((base + a) * size..(base + b) * size)
                    .ok_or_else(|| {
                        Error::decode(format!("pixel values of entry {item} are cut short"))
                    })
            }
            Pixels::Bytes(array) => {
                if item >= array.len() {
                    return Err(missing());
                }
                if let Some(b) = array.as_binary_opt::<i64>() {
                    Ok(b.value(item))
                } else if let Some(b) = array.as_binary_opt::<i32>() {
                    Ok(b.value(item))
                } else if let Some(b) = array.as_binary_view_opt() {
                    Ok(b.value(item))
                } else {
                    Err(Error::decode(format!(
                        "pixel_bytes is {}, not binary",
                        array.data_type()
                    )))
                }
            }
        }
    }

    /// Number of values of entry `item` (lists only).
    pub fn count(&self, item: usize) -> Option<u64> {
        match self {
            Pixels::List { offsets, .. } => {
                Some(offsets.get(item + 1)?.checked_sub(*offsets.get(item)?)? as u64)
            }
            Pixels::Bytes(_) => None,
        }
    }
}

fn decode_err(e: impl std::fmt::Display) -> Error {
    Error::decode(e.to_string())
}

/// Detects the format from magic bytes.
pub fn detect(path: &Path) -> Result<Format> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::StorageError
        };
        Error::new(kind, e.to_string())
    })?;
    let len = f
        .metadata()
        .map_err(|e| Error::storage(e.to_string()))?
        .len();
    let mut head = [0u8; 8];
    let n = f
        .read(&mut head)
        .map_err(|e| Error::storage(e.to_string()))?;
    if n >= 4 && &head[..4] == b"PAR1" {
        let mut tail = [0u8; 4];
        if len >= 12 {
            f.seek(SeekFrom::End(-4))
                .map_err(|e| Error::storage(e.to_string()))?;
            f.read_exact(&mut tail)
                .map_err(|e| Error::storage(e.to_string()))?;
        }
        if &tail != b"PAR1" {
            return Err(Error::decode(format!(
                "Parquet file of {len} bytes is truncated (no footer magic at its end)"
            )));
        }
        return Ok(Format::Parquet);
    }
    if n >= 6 && &head[..6] == b"ARROW1" {
        return Ok(Format::Ipc);
    }
    if n >= 4 && head[..4] == [0xff; 4] {
        return Err(Error::storage(
            "an Arrow IPC stream, not an IPC file: write the file format (Feather v2, `.arrow`)",
        ));
    }
    Err(Error::storage("neither a Parquet nor an Arrow IPC file"))
}

/// Picks the record column: `name` when given, else the first struct
/// column with OME-Arrow fields.
fn pick_column(fields: &arrow_schema::Fields, name: Option<&str>) -> Result<usize> {
    let found = match name {
        Some(n) => {
            let i = fields
                .iter()
                .position(|f| f.name() == n)
                .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no column {n:?}")))?;
            if !record::is_ome_struct(fields[i].data_type()) {
                return Err(Error::storage(format!(
                    "column {n:?} ({}) is not an OME-Arrow struct (needs pixels_meta and planes or chunks)",
                    fields[i].data_type()
                )));
            }
            i
        }
        None => fields
            .iter()
            .position(|f| record::is_ome_struct(f.data_type()))
            .ok_or_else(|| {
                Error::storage(format!(
                    "no OME-Arrow struct column (a struct with pixels_meta and planes or chunks) among {:?}",
                    fields.iter().map(|f| f.name().as_str()).collect::<Vec<_>>()
                ))
            })?,
    };
    Ok(found)
}

fn pixel_list(t: &arrow_schema::DataType) -> Result<PixelList> {
    record::pixel_list_of(t).ok_or_else(|| {
        Error::storage("the OME-Arrow struct has neither chunks with pixels nor planes with pixels")
    })
}

/// Names of a Parquet leaf path without list wrappers.
fn named_path(parts: &[String]) -> Vec<&str> {
    parts
        .iter()
        .map(String::as_str)
        .filter(|p| !matches!(*p, "list" | "element" | "item" | "array" | "bag"))
        .collect()
}

fn is_pixel_leaf(named: &[&str]) -> bool {
    matches!(
        named,
        [_, "chunks", "pixels", ..]
            | [_, "chunks", "pixel_bytes", ..]
            | [_, "planes", "pixels", ..]
    )
}

/// Opens row `row` of a Parquet file.
fn open_parquet(path: &Path, row: u64, column: Option<&str>) -> Result<Opened> {
    let file = File::open(path).map_err(|e| Error::storage(e.to_string()))?;
    let metadata =
        ArrowReaderMetadata::load(&file, ArrowReaderOptions::default()).map_err(decode_err)?;
    let fields = metadata.schema().fields().clone();
    let col = pick_column(&fields, column)?;
    let list = pixel_list(fields[col].data_type())?;
    let meta = metadata.metadata();
    let rows = meta.file_metadata().num_rows() as u64;
    if row >= rows {
        return Err(Error::invalid(format!(
            "row {row} does not exist: the file has {rows} rows"
        )));
    }
    let mut first = 0u64;
    let mut found = None;
    for (i, rg) in meta.row_groups().iter().enumerate() {
        let n = rg.num_rows() as u64;
        if row < first + n {
            found = Some((i, (row - first) as usize));
            break;
        }
        first += n;
    }
    let (row_group, row_in_group) =
        found.ok_or_else(|| Error::decode(format!("no row group holds row {row}")))?;
    let column_name = fields[col].name().clone();
    let source = Source::Parquet {
        metadata,
        row_group,
        row_in_group,
        column: col,
    };
    let batch = read_parquet(path, &source, |named| {
        matches!(
            named.get(1).copied(),
            Some("pixels_meta" | "chunk_grid" | "chunks" | "planes" | "name" | "id")
        ) && !is_pixel_leaf(named)
    })?;
    let rec = record::as_struct(batch.column(0).as_ref(), "the record column")?;
    let record = record::parse(rec, 0, list)?;
    Ok(Opened {
        record,
        rows,
        column: column_name,
        format: Format::Parquet,
        source,
        pixels: None,
    })
}

/// Reads the leaves of the record column that `keep` accepts, for the
/// source's row only.
fn read_parquet(
    path: &Path,
    source: &Source,
    keep: impl Fn(&[&str]) -> bool,
) -> Result<RecordBatch> {
    let Source::Parquet {
        metadata,
        row_group,
        row_in_group,
        column,
    } = source
    else {
        return Err(Error::invalid("not a Parquet source"));
    };
    let schema = metadata.parquet_schema();
    let root = schema.root_schema().get_fields()[*column]
        .name()
        .to_string();
    let leaves: Vec<usize> = (0..schema.num_columns())
        .filter(|&i| {
            let parts = schema.column(i).path().parts().to_vec();
            let named = named_path(&parts);
            named.first() == Some(&root.as_str()) && keep(&named)
        })
        .collect();
    let file = File::open(path).map_err(|e| Error::storage(e.to_string()))?;
    let selection = RowSelection::from(vec![
        RowSelector::skip(*row_in_group),
        RowSelector::select(1),
    ]);
    let mut reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
        .with_row_groups(vec![*row_group])
        .with_row_selection(selection)
        .with_projection(ProjectionMask::leaves(schema, leaves))
        .with_batch_size(1)
        .build()
        .map_err(decode_err)?;
    let batch = reader
        .next()
        .ok_or_else(|| Error::decode("the row group ended before the row"))?
        .map_err(decode_err)?;
    if batch.num_columns() != 1 || batch.num_rows() != 1 {
        return Err(Error::decode("the record column could not be read"));
    }
    Ok(batch)
}

/// Loads the pixel payloads of a Parquet record (one leaf, one row).
pub fn load_parquet_pixels(path: &Path, source: &Source, list: PixelList) -> Result<Pixels> {
    let (list_name, payload) = list.fields();
    let batch = read_parquet(path, source, |named| {
        named.get(1) == Some(&list_name) && named.get(2) == Some(&payload)
    })?;
    let rec = record::as_struct(batch.column(0).as_ref(), "the record column")?;
    pixels_of(rec, 0, list)
}

/// The payload column of row `row` of a record column.
pub fn pixels_of(rec: &StructArray, row: usize, list: PixelList) -> Result<Pixels> {
    let (list_name, payload) = list.fields();
    let column = record::field(rec, list_name)
        .ok_or_else(|| Error::decode(format!("{list_name} is missing")))?;
    let (entries, _, _) = record::list_entry(column.as_ref(), row, list_name)?;
    if entries.data_type() == &arrow_schema::DataType::Null {
        return Ok(Pixels::Bytes(entries));
    }
    let s = record::as_struct(entries.as_ref(), list_name)?;
    let array = record::field(s, payload)
        .ok_or_else(|| Error::decode(format!("{list_name}.{payload} is missing")))?
        .clone();
    if list == PixelList::ChunkBytes {
        return Ok(Pixels::Bytes(array));
    }
    let what = format!("{list_name}.{payload}");
    let (offsets, values): (Vec<i64>, ArrayRef) = if let Some(l) = array.as_list_opt::<i32>() {
        (
            l.value_offsets().iter().map(|&o| o as i64).collect(),
            l.values().clone(),
        )
    } else if let Some(l) = array.as_list_opt::<i64>() {
        (l.value_offsets().to_vec(), l.values().clone())
    } else {
        return Err(Error::decode(format!(
            "{what} is {}, not a list",
            array.data_type()
        )));
    };
    let dtype = record::arrow_dtype(values.data_type()).ok_or_else(|| {
        Error::new(
            ErrorKind::DtypeMismatch,
            format!(
                "{what} holds {} values, not a supported pixel type",
                values.data_type()
            ),
        )
    })?;
    Ok(Pixels::List {
        offsets,
        values: values.to_data(),
        dtype,
    })
}

/// Checks what arrow-ipc slices or aligns without checking (and would panic
/// on): the message prefix and metadata inside the block, and every buffer
/// of a record or dictionary batch inside the block's body and 8-byte
/// aligned, as the IPC format requires.
fn check_block(block: &arrow_ipc::Block, data: &[u8]) -> Result<()> {
    let outside = || Error::decode("an IPC message or one of its buffers lies outside its block");
    if block
        .offset()
        .wrapping_add(i64::from(block.metaDataLength()))
        % 8
        != 0
    {
        return Err(Error::decode("an IPC message body is not 8-byte aligned"));
    }
    let meta = usize::try_from(block.metaDataLength())
        .ok()
        .filter(|&m| m >= 8 && m <= data.len())
        .ok_or_else(outside)?;
    let body = (data.len() - meta) as i64;
    let start = if data[..4] == [0xff; 4] { 8 } else { 4 };
    let message = arrow_ipc::root_as_message(&data[start..meta]).map_err(decode_err)?;
    let batch = message
        .header_as_record_batch()
        .or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
    for b in batch.and_then(|b| b.buffers()).iter().flatten() {
        let end = b.offset().checked_add(b.length());
        if b.offset() < 0 || b.length() < 0 || end.is_none_or(|e| e > body) {
            return Err(outside());
        }
        if b.offset() % 8 != 0 {
            return Err(Error::decode("an IPC buffer is not 8-byte aligned"));
        }
    }
    Ok(())
}

/// Opens row `row` of an Arrow IPC file, mapping it into memory.
fn open_ipc(path: &Path, row: u64, column: Option<&str>) -> Result<Opened> {
    let file = File::open(path).map_err(|e| Error::storage(e.to_string()))?;
    // SAFETY: the map is read-only; a file truncated by someone else while
    // mapped faults on access, as with any mapped file.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::storage(e.to_string()))?;
    let len = map.len();
    if len < 18 || &map[len - 6..] != b"ARROW1" {
        return Err(Error::decode(format!(
            "Arrow IPC file of {len} bytes is truncated (no footer magic at its end)"
        )));
    }
    let ptr = NonNull::new(map.as_ptr() as *mut u8).ok_or_else(|| Error::storage("empty map"))?;
    // SAFETY: the map lives as long as the buffer that owns it.
    let buffer = unsafe { Buffer::from_custom_allocation(ptr, len, Arc::new(map)) };
    let trailer: [u8; 10] = buffer[len - 10..].try_into().expect("10 bytes");
    let footer_len = read_footer_length(trailer).map_err(decode_err)?;
    if footer_len + 10 > len {
        return Err(Error::decode("Arrow IPC footer is longer than the file"));
    }
    let footer = root_as_footer(&buffer[len - 10 - footer_len..len - 10]).map_err(decode_err)?;
    let schema = Arc::new(
        try_fb_to_schema(
            footer
                .schema()
                .ok_or_else(|| Error::decode("IPC footer has no schema"))?,
        )
        .map_err(decode_err)?,
    );
    let col = pick_column(schema.fields(), column)?;
    let list = pixel_list(schema.field(col).data_type())?;
    let column_name = schema.field(col).name().clone();
    let mut decoder = FileDecoder::new(schema.clone(), footer.version()).with_projection(vec![col]);
    let block_data = |block: &arrow_ipc::Block| -> Result<Buffer> {
        let start = usize::try_from(block.offset()).ok();
        let n = usize::try_from(block.metaDataLength() as i64 + block.bodyLength()).ok();
        match (start, n) {
            (Some(s), Some(n)) if s.checked_add(n).is_some_and(|e| e <= len) => {
                Ok(buffer.slice_with_length(s, n))
            }
            _ => Err(Error::decode("an IPC block lies outside the file")),
        }
    };
    let block_data = |block: &arrow_ipc::Block| -> Result<Buffer> {
        let data = block_data(block)?;
        check_block(block, &data)?;
        Ok(data)
    };
    for block in footer.dictionaries().iter().flatten() {
        decoder
            .read_dictionary(block, &block_data(block)?)
            .map_err(decode_err)?;
    }
    let mut first = 0u64;
    let mut rows = 0u64;
    let mut found: Option<(RecordBatch, usize)> = None;
    for block in footer.recordBatches().iter().flatten() {
        let Some(batch) = decoder
            .read_record_batch(block, &block_data(block)?)
            .map_err(decode_err)?
        else {
            continue;
        };
        let n = batch.num_rows() as u64;
        if found.is_none() && row < first + n {
            found = Some((batch, (row - first) as usize));
        }
        first += n;
        rows += n;
    }
    let (batch, row_in_batch) = found.ok_or_else(|| {
        Error::invalid(format!(
            "row {row} does not exist: the file has {rows} rows"
        ))
    })?;
    let rec = record::as_struct(batch.column(0).as_ref(), "the record column")?;
    let record = record::parse(rec, row_in_batch, list)?;
    let pixels = if record.pieces.is_empty() {
        None
    } else {
        Some(pixels_of(rec, row_in_batch, record.list)?)
    };
    Ok(Opened {
        record,
        rows,
        column: column_name,
        format: Format::Ipc,
        source: Source::Ipc,
        pixels,
    })
}

/// Opens row `row` of the record column (`column`, or the first one found)
/// of an OME-Arrow Parquet or IPC file. Errors name the file.
pub fn open(path: &Path, row: u64, column: Option<&str>) -> Result<Opened> {
    let run = || match detect(path)? {
        Format::Parquet => open_parquet(path, row, column),
        // arrow-ipc still panics on some malformed batches (a buffer length
        // that is not a multiple of its type's size): a DecodeError instead
        Format::Ipc => {
            std::panic::catch_unwind(|| open_ipc(path, row, column)).unwrap_or_else(|p| {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(Error::decode(format!(
                    "malformed Arrow IPC record batch ({what})"
                )))
            })
        }
    };
    run().map_err(|e| e.context(path.display()))
}
