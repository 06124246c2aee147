//! One OME-Arrow record (a row of an OME-Arrow struct column): its pixel
//! metadata and the boxes ("pieces") its pixels are stored in, planes or
//! chunks, with where each piece's values live.

use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, StructArray};
use arrow_schema::DataType;
use std::collections::HashSet;

/// Axis order of every OME-Arrow image: t, c, z, y, x.
pub const RANK: usize = 5;

/// How the values of a piece are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    /// A numeric list (`pixels`), values in the list's own type.
    List,
    /// Typed bytes (`pixel_bytes`) of `dtype`, compressed with `compression`.
    Bytes {
        /// Element type of the bytes.
        dtype: DType,
        /// Codec name (`None`: stored raw).
        compression: Option<String>,
    },
}

/// A box of the image whose values are stored together, in C order.
#[derive(Debug, Clone)]
pub struct Piece {
    /// First index per axis (t, c, z, y, x).
    pub origin: [u64; RANK],
    /// Extent per axis.
    pub shape: [u64; RANK],
    /// Index of the piece in its list (`chunks` or `planes`) of the record.
    pub item: usize,
    /// Storage of its values.
    pub encoding: Encoding,
}

impl Piece {
    /// Number of elements.
    pub fn volume(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// Which list of the record holds the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelList {
    /// `chunks[].pixels` (numeric lists).
    ChunkValues,
    /// `chunks[].pixel_bytes` (typed bytes).
    ChunkBytes,
    /// `planes[].pixels`.
    Planes,
}

impl PixelList {
    /// Field names of the list and of the payload inside each entry.
    pub fn fields(self) -> (&'static str, &'static str) {
        match self {
            PixelList::ChunkValues => ("chunks", "pixels"),
            PixelList::ChunkBytes => ("chunks", "pixel_bytes"),
            PixelList::Planes => ("planes", "pixels"),
        }
    }
}

/// A channel of the image.
#[derive(Debug, Clone, Default)]
pub struct ChannelMeta {
    /// `id`, when given.
    pub id: Option<String>,
    /// `name`, when given.
    pub name: Option<String>,
    /// Display colour, packed 0xRRGGBBAA.
    pub color: Option<u32>,
}

/// The metadata of a record: shape, dtypes, scale, channels and pieces.
#[derive(Debug, Clone)]
pub struct Record {
    /// `name` of the record.
    pub name: Option<String>,
    /// `id` of the record.
    pub id: Option<String>,
    /// Size per axis (t, c, z, y, x).
    pub shape: [u64; RANK],
    /// Element type the image declares (`pixels_meta.type`).
    pub dtype: DType,
    /// The declared type string.
    pub dtype_name: String,
    /// Physical pixel sizes (z, y, x) and their units.
    pub physical: [(Option<f64>, Option<String>); 3],
    /// Channels, in order.
    pub channels: Vec<ChannelMeta>,
    /// Which list holds the pixels.
    pub list: PixelList,
    /// The pieces, in list order.
    pub pieces: Vec<Piece>,
    /// Chunk shape (z, y, x) of the chunk grid, for chunked records.
    pub chunk_shape: Option<[u64; 3]>,
    /// Whether the pieces cover every element of the image.
    pub covered: bool,
}

/// Largest image accepted, in elements (hostile sizes fail before allocation).
const MAX_ELEMENTS: u64 = 1 << 40;

/// Parses a dtype name as written by OME-Arrow (numpy names, and OME's
/// `float`/`double`/`bit`).
pub fn parse_dtype(name: &str) -> Option<DType> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "bool" | "bit" => DType::Bool,
        "int8" => DType::Int8,
        "int16" => DType::Int16,
        "int32" => DType::Int32,
        "int64" => DType::Int64,
        "uint8" => DType::UInt8,
        "uint16" => DType::UInt16,
        "uint32" => DType::UInt32,
        "uint64" => DType::UInt64,
        "float16" => DType::Float16,
        "float32" | "float" => DType::Float32,
        "float64" | "double" => DType::Float64,
        _ => return None,
    })
}

/// The numpy name of a dtype.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::Bool => "bool",
        DType::Int8 => "int8",
        DType::Int16 => "int16",
        DType::Int32 => "int32",
        DType::Int64 => "int64",
        DType::UInt8 => "uint8",
        DType::UInt16 => "uint16",
        DType::UInt32 => "uint32",
        DType::UInt64 => "uint64",
        DType::Float16 => "float16",
        DType::Float32 => "float32",
        DType::Float64 => "float64",
        DType::BFloat16 => "bfloat16",
    }
}

/// The dtype of an Arrow value type that can hold pixels.
pub fn arrow_dtype(t: &DataType) -> Option<DType> {
    Some(match t {
        DataType::Boolean => return None,
        DataType::Int8 => DType::Int8,
        DataType::Int16 => DType::Int16,
        DataType::Int32 => DType::Int32,
        DataType::Int64 => DType::Int64,
        DataType::UInt8 => DType::UInt8,
        DataType::UInt16 => DType::UInt16,
        DataType::UInt32 => DType::UInt32,
        DataType::UInt64 => DType::UInt64,
        DataType::Float16 => DType::Float16,
        DataType::Float32 => DType::Float32,
        DataType::Float64 => DType::Float64,
        _ => return None,
    })
}

fn bad(message: impl Into<String>) -> Error {
    Error::decode(message)
}

/// The child `name` of a struct array.
pub fn field<'a>(s: &'a StructArray, name: &str) -> Option<&'a ArrayRef> {
    s.column_by_name(name)
}

/// The struct array behind `array`, or an error naming `what`.
pub fn as_struct<'a>(array: &'a dyn Array, what: &str) -> Result<&'a StructArray> {
    array
        .as_struct_opt()
        .ok_or_else(|| bad(format!("{what} is {}, not a struct", array.data_type())))
}

/// The child array of a list (or large list) and the range of entry `row`.
pub fn list_entry(array: &dyn Array, row: usize, what: &str) -> Result<(ArrayRef, usize, usize)> {
    if row >= array.len() {
        return Err(bad(format!(
            "{what}: entry {row} of {} is missing",
            array.len()
        )));
    }
    if array.is_null(row) {
        return Ok((arrow_array::new_empty_array(&DataType::Null), 0, 0));
    }
    if let Some(l) = array.as_list_opt::<i32>() {
        let o = l.value_offsets();
        return Ok((l.values().clone(), o[row] as usize, o[row + 1] as usize));
    }
    if let Some(l) = array.as_list_opt::<i64>() {
        let o = l.value_offsets();
        return Ok((l.values().clone(), o[row] as usize, o[row + 1] as usize));
    }
    Err(bad(format!("{what} is {}, not a list", array.data_type())))
}

/// An integer cell of any integer array (null: `None`).
pub fn int_at(array: &dyn Array, i: usize) -> Option<i64> {
    use arrow_array::types::*;
    if i >= array.len() || array.is_null(i) {
        return None;
    }
    macro_rules! try_int {
        ($($t:ty),*) => {$(
            if let Some(a) = array.as_primitive_opt::<$t>() {
                return i64::try_from(a.value(i)).ok();
            }
        )*};
    }
    try_int!(
        Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type
    );
    None
}

/// A floating-point cell (null or not a float column: `None`).
pub fn float_at(array: &dyn Array, i: usize) -> Option<f64> {
    if i >= array.len() || array.is_null(i) {
        return None;
    }
    if let Some(a) = array.as_primitive_opt::<Float32Type>() {
        return Some(a.value(i) as f64);
    }
    array.as_primitive_opt::<Float64Type>().map(|a| a.value(i))
}

/// A string cell (null or not a string column: `None`).
pub fn str_at(array: &dyn Array, i: usize) -> Option<String> {
    if i >= array.len() || array.is_null(i) {
        return None;
    }
    if let Some(a) = array.as_string_opt::<i32>() {
        return Some(a.value(i).to_string());
    }
    if let Some(a) = array.as_string_opt::<i64>() {
        return Some(a.value(i).to_string());
    }
    array.as_string_view_opt().map(|a| a.value(i).to_string())
}

/// The integer field `name` of entry `i` of a struct, required.
fn required_int(s: &StructArray, name: &str, i: usize, what: &str) -> Result<i64> {
    field(s, name)
        .and_then(|a| int_at(a.as_ref(), i))
        .ok_or_else(|| bad(format!("{what}.{name} is missing or not an integer")))
}

/// Whether a struct type looks like an OME-Arrow record.
pub fn is_ome_struct(t: &DataType) -> bool {
    match t {
        DataType::Struct(fields) => {
            let has = |n: &str| fields.iter().any(|f| f.name() == n);
            has("pixels_meta") && (has("planes") || has("chunks"))
        }
        _ => false,
    }
}

/// Which list holds the pixels, judged from the struct type: chunks when
/// present (OME-Arrow prefers them), else planes.
pub fn pixel_list_of(t: &DataType) -> Option<PixelList> {
    let DataType::Struct(fields) = t else {
        return None;
    };
    let entry_fields = |name: &str| {
        fields
            .iter()
            .find(|f| f.name() == name)
            .and_then(|f| match f.data_type() {
                DataType::List(e) | DataType::LargeList(e) => match e.data_type() {
                    DataType::Struct(inner) => Some(inner.clone()),
                    _ => None,
                },
                _ => None,
            })
    };
    let chunks = entry_fields("chunks");
    let has = |fs: &Option<arrow_schema::Fields>, n: &str| {
        fs.as_ref().is_some_and(|f| f.iter().any(|x| x.name() == n))
    };
    if has(&chunks, "pixel_bytes") {
        Some(PixelList::ChunkBytes)
    } else if has(&chunks, "pixels") {
        Some(PixelList::ChunkValues)
    } else if has(&entry_fields("planes"), "pixels") {
        Some(PixelList::Planes)
    } else {
        None
    }
}

/// Reads the metadata of row `row` of the record column `rec` (every field
/// but the pixel payloads is needed). `list` says where pixels are; a
/// chunked record with an empty chunk list falls back to its planes.
pub fn parse(rec: &StructArray, row: usize, list: PixelList) -> Result<Record> {
    if row >= rec.len() || rec.is_null(row) {
        return Err(bad(format!("row {row} holds no OME-Arrow record")));
    }
    let pm = as_struct(
        field(rec, "pixels_meta")
            .ok_or_else(|| bad("pixels_meta is missing"))?
            .as_ref(),
        "pixels_meta",
    )?;
    if pm.is_null(row) {
        return Err(bad("pixels_meta is null"));
    }
    let size = |name: &str| -> Result<u64> {
        let v = required_int(pm, name, row, "pixels_meta")?;
        u64::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| bad(format!("pixels_meta.{name} is {v}; sizes must be positive")))
    };
    let shape = [
        size("size_t")?,
        size("size_c")?,
        size("size_z")?,
        size("size_y")?,
        size("size_x")?,
    ];
    let volume = shape
        .iter()
        .try_fold(1u64, |a, &b| a.checked_mul(b))
        .filter(|&v| v <= MAX_ELEMENTS)
        .ok_or_else(|| bad(format!("pixels_meta sizes {shape:?} are too large")))?;
    let declared = field(pm, "type").and_then(|a| str_at(a.as_ref(), row));
    let physical = ["z", "y", "x"].map(|a| {
        (
            field(pm, &format!("physical_size_{a}")).and_then(|c| float_at(c.as_ref(), row)),
            field(pm, &format!("physical_size_{a}_unit")).and_then(|c| str_at(c.as_ref(), row)),
        )
    });
    let mut channels = Vec::new();
    if let Some(ch) = field(pm, "channels") {
        let (values, start, end) = list_entry(ch.as_ref(), row, "pixels_meta.channels")?;
        if end > start {
            let s = as_struct(values.as_ref(), "pixels_meta.channels")?;
            for i in start..end {
                channels.push(ChannelMeta {
                    id: field(s, "id").and_then(|a| str_at(a.as_ref(), i)),
                    name: field(s, "name").and_then(|a| str_at(a.as_ref(), i)),
                    color: field(s, "color_rgba")
                        .and_then(|a| int_at(a.as_ref(), i))
                        .and_then(|v| u32::try_from(v).ok()),
                });
            }
        }
    }
    let mut record = Record {
        name: field(rec, "name").and_then(|a| str_at(a.as_ref(), row)),
        id: field(rec, "id").and_then(|a| str_at(a.as_ref(), row)),
        shape,
        dtype: DType::UInt16,
        dtype_name: declared.clone().unwrap_or_default(),
        physical,
        channels,
        list,
        pieces: Vec::new(),
        chunk_shape: None,
        covered: false,
    };
    if list != PixelList::Planes {
        read_chunks(rec, row, &mut record)?;
        if record.pieces.is_empty() && field(rec, "planes").is_some() {
            record.list = PixelList::Planes;
        }
    }
    if record.list == PixelList::Planes {
        read_planes(rec, row, &mut record)?;
    }
    record.dtype = match &declared {
        Some(name) => parse_dtype(name).ok_or_else(|| {
            Error::new(
                ErrorKind::DtypeMismatch,
                format!("pixels_meta.type {name:?} is not a supported pixel type"),
            )
        })?,
        None => match record.pieces.first().map(|p| &p.encoding) {
            Some(Encoding::Bytes { dtype, .. }) => *dtype,
            _ => DType::UInt16,
        },
    };
    if record.dtype_name.is_empty() {
        record.dtype_name = dtype_name(record.dtype).into();
    }
    let stored: u64 = record.pieces.iter().map(Piece::volume).sum();
    record.covered = stored == volume;
    Ok(record)
}

fn read_planes(rec: &StructArray, row: usize, record: &mut Record) -> Result<()> {
    let planes = field(rec, "planes").ok_or_else(|| bad("the record has no planes or chunks"))?;
    let (values, start, end) = list_entry(planes.as_ref(), row, "planes")?;
    if end == start {
        return Ok(());
    }
    let s = as_struct(values.as_ref(), "planes")?;
    let [st, sc, sz, sy, sx] = record.shape;
    let mut seen = HashSet::new();
    for i in start..end {
        let what = format!("planes[{}]", i - start);
        let (t, c, z) = (
            required_int(s, "t", i, &what)?,
            required_int(s, "c", i, &what)?,
            required_int(s, "z", i, &what)?,
        );
        let inside = |v: i64, n: u64| v >= 0 && (v as u64) < n;
        if !(inside(t, st) && inside(c, sc) && inside(z, sz)) {
            return Err(bad(format!(
                "{what} index (t={t}, c={c}, z={z}) is outside the image (size_t={st}, size_c={sc}, size_z={sz})"
            )));
        }
        if !seen.insert((t, c, z)) {
            return Err(bad(format!("{what} repeats plane (t={t}, c={c}, z={z})")));
        }
        record.pieces.push(Piece {
            origin: [t as u64, c as u64, z as u64, 0, 0],
            shape: [1, 1, 1, sy, sx],
            item: i,
            encoding: Encoding::List,
        });
    }
    Ok(())
}

fn read_chunks(rec: &StructArray, row: usize, record: &mut Record) -> Result<()> {
    let Some(chunks) = field(rec, "chunks") else {
        return Ok(());
    };
    let (values, start, end) = list_entry(chunks.as_ref(), row, "chunks")?;
    if end == start {
        return Ok(());
    }
    let s = as_struct(values.as_ref(), "chunks")?;
    let shape = record.shape;
    let mut grid: Option<[u64; 3]> = None;
    if let Some(g) = field(rec, "chunk_grid") {
        let g = as_struct(g.as_ref(), "chunk_grid")?;
        if !g.is_null(row) {
            if let Some(order) = field(g, "chunk_order").and_then(|a| str_at(a.as_ref(), row)) {
                if !order.eq_ignore_ascii_case("ZYX") {
                    return Err(bad(format!(
                        "chunk_grid.chunk_order {order:?} is not supported (only \"ZYX\")"
                    )));
                }
            }
            let dims = ["chunk_z", "chunk_y", "chunk_x"]
                .map(|n| field(g, n).and_then(|a| int_at(a.as_ref(), row)));
            if let [Some(z), Some(y), Some(x)] = dims {
                if z <= 0 || y <= 0 || x <= 0 {
                    return Err(bad(format!(
                        "chunk_grid sizes ({z}, {y}, {x}) must be positive"
                    )));
                }
                grid = Some([z as u64, y as u64, x as u64]);
            }
        }
    }
    let mut seen = HashSet::new();
    for i in start..end {
        let what = format!("chunks[{}]", i - start);
        let get = |n: &str| required_int(s, n, i, &what);
        let origin = [get("t")?, get("c")?, get("z")?, get("y")?, get("x")?];
        let extent = [1, 1, get("shape_z")?, get("shape_y")?, get("shape_x")?];
        for d in 0..RANK {
            let (o, n) = (origin[d], extent[d]);
            if o < 0 || n <= 0 || (o as u64).saturating_add(n as u64) > shape[d] {
                return Err(bad(format!(
                    "{what} covers [{o}, {o}+{n}) along {}, outside the image (size {})",
                    ["t", "c", "z", "y", "x"][d],
                    shape[d]
                )));
            }
        }
        let origin = origin.map(|v| v as u64);
        let extent = extent.map(|v| v as u64);
        let g = *grid.get_or_insert([extent[2], extent[3], extent[4]]);
        for k in 0..3 {
            let (o, n, c, size) = (origin[k + 2], extent[k + 2], g[k], shape[k + 2]);
            if o % c != 0 || n != c.min(size - o) {
                return Err(bad(format!(
                    "{what} at {origin:?} with shape {:?} does not follow the chunk grid {g:?}",
                    &extent[2..]
                )));
            }
        }
        if !seen.insert(origin) {
            return Err(bad(format!("{what} repeats the chunk at {origin:?}")));
        }
        let encoding = if record.list == PixelList::ChunkBytes {
            let name = field(s, "dtype").and_then(|a| str_at(a.as_ref(), i));
            let dtype = match &name {
                Some(n) => parse_dtype(n).ok_or_else(|| {
                    Error::new(
                        ErrorKind::DtypeMismatch,
                        format!("{what}.dtype {n:?} is not a supported pixel type"),
                    )
                })?,
                None => {
                    return Err(bad(format!("{what}.dtype is missing for its pixel_bytes")));
                }
            };
            let compression = field(s, "compression")
                .and_then(|a| str_at(a.as_ref(), i))
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty() && c != "none");
            Encoding::Bytes { dtype, compression }
        } else {
            Encoding::List
        };
        record.pieces.push(Piece {
            origin,
            shape: extent,
            item: i,
            encoding,
        });
    }
    record.chunk_shape = grid;
    Ok(())
}
