//! Writing OME-Arrow files: one record with `OME_ARROW_BYTE_STRUCT`'s
//! schema (typed chunk bytes, any dtype), in Parquet or Arrow IPC.

use super::record::dtype_name;
use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use arrow_array::builder::{LargeBinaryBuilder, StringBuilder};
use arrow_array::types::{Float32Type, Int16Type, Int32Type, UInt32Type};
use arrow_array::{
    ArrayRef, ListArray, NullArray, PrimitiveArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

/// The OME-Arrow version written into records and file metadata (that of
/// the `ome-arrow` package the files are checked against).
pub const OME_ARROW_VERSION: &str = "0.1.0";

/// What to write besides the pixels.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Element type of the pixels.
    pub dtype: DType,
    /// Image shape (t, c, z, y, x).
    pub shape: [u64; 5],
    /// Chunk shape (z, y, x).
    pub chunk: [u64; 3],
    /// Arrow IPC instead of Parquet.
    pub ipc: bool,
    /// zstd level for chunk payloads (`None`: stored raw).
    pub zstd_level: Option<i32>,
    /// Replace an existing file.
    pub overwrite: bool,
    /// Record name and id, column name, unit of the physical sizes.
    pub name: String,
    /// Record id.
    pub id: String,
    /// Name of the struct column.
    pub column: String,
    /// Unit of the physical sizes.
    pub unit: String,
    /// Channel names (one per channel).
    pub channels: Vec<String>,
    /// Physical pixel sizes (z, y, x).
    pub physical: [f64; 3],
}

fn nullable(name: &str, t: DataType) -> Field {
    Field::new(name, t, true)
}

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, true)))
}

fn channel_fields() -> Fields {
    Fields::from(vec![
        nullable("id", DataType::Utf8),
        nullable("name", DataType::Utf8),
        nullable("emission_um", DataType::Float32),
        nullable("excitation_um", DataType::Float32),
        nullable("illumination", DataType::Utf8),
        nullable("color_rgba", DataType::UInt32),
    ])
}

fn pixels_meta_fields() -> Fields {
    let mut f = vec![
        nullable("dimension_order", DataType::Utf8),
        nullable("type", DataType::Utf8),
    ];
    for (n, t) in [
        ("size_x", DataType::Int32),
        ("size_y", DataType::Int32),
        ("size_z", DataType::Int32),
        ("size_c", DataType::Int16),
        ("size_t", DataType::Int32),
        ("physical_size_x", DataType::Float32),
        ("physical_size_y", DataType::Float32),
        ("physical_size_z", DataType::Float32),
        ("physical_size_x_unit", DataType::Utf8),
        ("physical_size_y_unit", DataType::Utf8),
        ("physical_size_z_unit", DataType::Utf8),
    ] {
        f.push(nullable(n, t));
    }
    f.push(nullable(
        "channels",
        list_of(DataType::Struct(channel_fields())),
    ));
    Fields::from(f)
}

fn chunk_grid_fields() -> Fields {
    Fields::from(vec![
        nullable("order", DataType::Utf8),
        nullable("chunk_t", DataType::Int32),
        nullable("chunk_c", DataType::Int16),
        nullable("chunk_z", DataType::Int32),
        nullable("chunk_y", DataType::Int32),
        nullable("chunk_x", DataType::Int32),
        nullable("chunk_order", DataType::Utf8),
    ])
}

fn chunk_fields() -> Fields {
    let mut f: Vec<Field> = [
        ("t", DataType::Int32),
        ("c", DataType::Int16),
        ("z", DataType::Int32),
        ("y", DataType::Int32),
        ("x", DataType::Int32),
        ("shape_z", DataType::Int32),
        ("shape_y", DataType::Int32),
        ("shape_x", DataType::Int32),
        ("dtype", DataType::Utf8),
        ("compression", DataType::Utf8),
    ]
    .into_iter()
    .map(|(n, t)| nullable(n, t))
    .collect();
    f.push(nullable("pixel_bytes", DataType::LargeBinary));
    Fields::from(f)
}

fn plane_fields() -> Fields {
    Fields::from(vec![
        nullable("z", DataType::Int32),
        nullable("t", DataType::Int32),
        nullable("c", DataType::Int16),
        nullable("pixels", list_of(DataType::UInt16)),
    ])
}

/// The fields of `OME_ARROW_BYTE_STRUCT`, in its order.
pub fn record_fields() -> Fields {
    Fields::from(vec![
        nullable("type", DataType::Utf8),
        nullable("version", DataType::Utf8),
        nullable("id", DataType::Utf8),
        nullable("name", DataType::Utf8),
        nullable("image_type", DataType::Utf8),
        nullable(
            "acquisition_datetime",
            DataType::Timestamp(TimeUnit::Microsecond, None),
        ),
        nullable("pixels_meta", DataType::Struct(pixels_meta_fields())),
        nullable("chunk_grid", DataType::Struct(chunk_grid_fields())),
        nullable("chunks", list_of(DataType::Struct(chunk_fields()))),
        nullable("planes", list_of(DataType::Struct(plane_fields()))),
        nullable("masks", DataType::Null),
    ])
}

fn strs(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn one_list(values: ArrayRef, fields: Fields) -> Result<ArrayRef> {
    let n = values.len();
    let list = ListArray::try_new(
        Arc::new(Field::new("item", DataType::Struct(fields), true)),
        OffsetBuffer::from_lengths([n]),
        values,
        None,
    )
    .map_err(arrow_err)?;
    Ok(Arc::new(list))
}

fn arrow_err(e: arrow_schema::ArrowError) -> Error {
    Error::new(ErrorKind::Internal, format!("building the record: {e}"))
}

fn as_i32(v: u64, what: &str) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| Error::invalid(format!("{what} {v} does not fit OME-Arrow's int32")))
}

/// A chunk's box: origin and shape (t, c, z, y, x).
type ChunkBox = ([u64; 5], [u64; 5]);

/// Writes a C-order (t, c, z, y, x) image `data` as one OME-Arrow record.
pub fn write(path: &Path, data: &[u8], o: &WriteOptions) -> Result<()> {
    let [st, sc, sz, sy, sx] = o.shape;
    let size = o.dtype.size();
    let volume: u64 = o.shape.iter().product();
    if o.shape.contains(&0) || volume as usize * size != data.len() {
        return Err(Error::invalid(format!(
            "{} bytes of {} do not make an image of shape {:?}",
            data.len(),
            dtype_name(o.dtype),
            o.shape
        )));
    }
    if o.dtype == DType::BFloat16 {
        return Err(Error::new(
            ErrorKind::DtypeMismatch,
            "OME-Arrow has no bfloat16 pixel type",
        ));
    }
    if sc > i16::MAX as u64 {
        return Err(Error::invalid(format!(
            "{sc} channels do not fit OME-Arrow's int16"
        )));
    }
    for v in [st, sz, sy, sx] {
        as_i32(v, "size")?;
    }
    if o.channels.len() as u64 != sc {
        return Err(Error::invalid(format!(
            "{} channel names for {sc} channels",
            o.channels.len()
        )));
    }
    let chunk = [0, 1, 2].map(|k| o.chunk[k].clamp(1, o.shape[k + 2]));
    let mut boxes: Vec<ChunkBox> = Vec::new();
    for t in 0..st {
        for c in 0..sc {
            for z in (0..sz).step_by(chunk[0] as usize) {
                for y in (0..sy).step_by(chunk[1] as usize) {
                    for x in (0..sx).step_by(chunk[2] as usize) {
                        let shape = [
                            1,
                            1,
                            chunk[0].min(sz - z),
                            chunk[1].min(sy - y),
                            chunk[2].min(sx - x),
                        ];
                        boxes.push(([t, c, z, y, x], shape));
                    }
                }
            }
        }
    }
    let strides = crate::codec::c_strides(&o.shape);
    let payloads: Vec<Vec<u8>> = crate::pool().install(|| {
        boxes
            .par_iter()
            .map(|(origin, shape)| {
                let mut raw = Vec::with_capacity(shape.iter().product::<u64>() as usize * size);
                for z in 0..shape[2] {
                    for y in 0..shape[3] {
                        let start = (origin[0] * strides[0]
                            + origin[1] * strides[1]
                            + (origin[2] + z) * strides[2]
                            + (origin[3] + y) * strides[3]
                            + origin[4]) as usize
                            * size;
                        raw.extend_from_slice(&data[start..start + shape[4] as usize * size]);
                    }
                }
                match o.zstd_level {
                    Some(level) => zstd::bulk::compress(&raw, level)
                        .map_err(|e| Error::new(ErrorKind::Internal, format!("zstd: {e}"))),
                    None => Ok(raw),
                }
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let n = boxes.len();
    let col = |f: &dyn Fn(&ChunkBox) -> u64| -> Result<ArrayRef> {
        let v = boxes
            .iter()
            .map(|b| as_i32(f(b), "chunk coordinate"))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(PrimitiveArray::<Int32Type>::from(v)))
    };
    let mut bytes = LargeBinaryBuilder::with_capacity(n, payloads.iter().map(Vec::len).sum());
    for p in &payloads {
        bytes.append_value(p);
    }
    let dtype = dtype_name(o.dtype);
    let compression: Vec<Option<&str>> = vec![o.zstd_level.map(|_| "zstd"); n];
    let chunks = StructArray::try_new(
        chunk_fields(),
        vec![
            col(&|b| b.0[0])?,
            Arc::new(PrimitiveArray::<Int16Type>::from(
                boxes.iter().map(|b| b.0[1] as i16).collect::<Vec<_>>(),
            )),
            col(&|b| b.0[2])?,
            col(&|b| b.0[3])?,
            col(&|b| b.0[4])?,
            col(&|b| b.1[2])?,
            col(&|b| b.1[3])?,
            col(&|b| b.1[4])?,
            strs(&vec![dtype; n]),
            Arc::new(StringArray::from(compression)),
            Arc::new(bytes.finish()),
        ],
        None,
    )
    .map_err(arrow_err)?;
    let mut names = StringBuilder::new();
    let mut ids = StringBuilder::new();
    for (i, name) in o.channels.iter().enumerate() {
        names.append_value(name);
        ids.append_value(format!("ch-{i}"));
    }
    let channels = StructArray::try_new(
        channel_fields(),
        vec![
            Arc::new(ids.finish()),
            Arc::new(names.finish()),
            Arc::new(PrimitiveArray::<Float32Type>::from(vec![
                0.0f32;
                sc as usize
            ])),
            Arc::new(PrimitiveArray::<Float32Type>::from(vec![
                0.0f32;
                sc as usize
            ])),
            strs(&vec!["Unknown"; sc as usize]),
            Arc::new(PrimitiveArray::<UInt32Type>::from(vec![
                0xFFFF_FFFFu32;
                sc as usize
            ])),
        ],
        None,
    )
    .map_err(arrow_err)?;
    let i32s = |v: u64| -> Result<ArrayRef> {
        Ok(Arc::new(PrimitiveArray::<Int32Type>::from(vec![as_i32(
            v, "size",
        )?])))
    };
    let f32s = |v: f64| -> ArrayRef {
        Arc::new(PrimitiveArray::<Float32Type>::from(vec![
            if v.is_finite() { v as f32 } else { 1.0 },
        ]))
    };
    let unit = o.unit.as_str();
    let pixels_meta = StructArray::try_new(
        pixels_meta_fields(),
        vec![
            strs(&[if sz == 1 { "XYCT" } else { "XYZCT" }]),
            strs(&[dtype]),
            i32s(sx)?,
            i32s(sy)?,
            i32s(sz)?,
            Arc::new(PrimitiveArray::<Int16Type>::from(vec![sc as i16])),
            i32s(st)?,
            f32s(o.physical[2]),
            f32s(o.physical[1]),
            f32s(o.physical[0]),
            strs(&[unit]),
            strs(&[unit]),
            strs(&[unit]),
            one_list(Arc::new(channels), channel_fields())?,
        ],
        None,
    )
    .map_err(arrow_err)?;
    let chunk_grid = StructArray::try_new(
        chunk_grid_fields(),
        vec![
            strs(&["TCZYX"]),
            i32s(1)?,
            Arc::new(PrimitiveArray::<Int16Type>::from(vec![1i16])),
            i32s(chunk[0])?,
            i32s(chunk[1])?,
            i32s(chunk[2])?,
            strs(&["ZYX"]),
        ],
        None,
    )
    .map_err(arrow_err)?;
    let planes = StructArray::try_new(
        plane_fields(),
        vec![
            Arc::new(PrimitiveArray::<Int32Type>::from(Vec::<i32>::new())),
            Arc::new(PrimitiveArray::<Int32Type>::from(Vec::<i32>::new())),
            Arc::new(PrimitiveArray::<Int16Type>::from(Vec::<i16>::new())),
            Arc::new(ListArray::new_null(
                Arc::new(Field::new("item", DataType::UInt16, true)),
                0,
            )),
        ],
        None,
    )
    .map_err(arrow_err)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let record = StructArray::try_new(
        record_fields(),
        vec![
            strs(&["ome.arrow"]),
            strs(&[OME_ARROW_VERSION]),
            strs(&[o.id.as_str()]),
            strs(&[o.name.as_str()]),
            strs(&["image"]),
            Arc::new(TimestampMicrosecondArray::from(vec![now])),
            Arc::new(pixels_meta),
            Arc::new(chunk_grid),
            one_list(Arc::new(chunks), chunk_fields())?,
            one_list(Arc::new(planes), plane_fields())?,
            Arc::new(NullArray::new(1)),
        ],
        None,
    )
    .map_err(arrow_err)?;
    let metadata = HashMap::from([
        ("ome.arrow.type".to_string(), "ome.arrow".to_string()),
        (
            "ome.arrow.version".to_string(),
            OME_ARROW_VERSION.to_string(),
        ),
    ]);
    let schema = Arc::new(
        Schema::new(vec![nullable(&o.column, DataType::Struct(record_fields()))])
            .with_metadata(metadata),
    );
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(record)]).map_err(arrow_err)?;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .create_new(!o.overwrite)
        .open(path)
        .map_err(|e| Error::storage(format!("{}: {e}", path.display())))?;
    let io = |e: &dyn std::fmt::Display| Error::storage(format!("{}: {e}", path.display()));
    if o.ipc {
        let mut w = arrow_ipc::writer::FileWriter::try_new(file, &schema).map_err(|e| io(&e))?;
        w.write(&batch).map_err(|e| io(&e))?;
        w.finish().map_err(|e| io(&e))?;
    } else {
        use parquet::basic::Compression;
        use parquet::file::properties::WriterProperties;
        // Payloads are compressed per chunk (or asked raw): pages stay plain
        // so a reader decompresses each chunk once, and only the chunks it needs.
        let props = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_dictionary_enabled(false)
            .build();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| io(&e))?;
        w.write(&batch).map_err(|e| io(&e))?;
        w.close().map_err(|e| io(&e))?;
    }
    Ok(())
}
