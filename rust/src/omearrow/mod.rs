//! OME-Arrow sources: images stored as OME-Arrow records (a struct column
//! with `pixels_meta` and pixel planes or chunks) in Parquet or Arrow IPC
//! files, read as 5-D (t, c, z, y, x) arrays through the same region
//! requests as Zarr arrays, and written back ([`write`]).

mod files;
pub mod record;
pub mod write;

use crate::assemble::{self, Destination, Walk};
use crate::buffer::{AlignedBuffer, SharedBuffer};
use crate::codec::{aligned_scratch, c_strides};
use crate::error::{Error, ErrorKind, Result};
use crate::progress::Progress;
use crate::region::{DimSel, Request};
use files::{Format, Opened, Pixels, Source};
use rayon::prelude::*;
use record::{Encoding, Piece, Record, RANK};
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// An opened OME-Arrow record.
#[derive(Debug)]
pub struct OmeArrow {
    path: PathBuf,
    opened: Opened,
    /// Pixels, loaded on first read for Parquet (mapped at open for IPC).
    pixels: Mutex<Option<Arc<Pixels>>>,
}

thread_local! {
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// One piece's part of a request.
struct Task<'a> {
    piece: &'a Piece,
    sel: [DimSel; RANK],
}

impl OmeArrow {
    /// Opens row `row` of the record column `column` (default: the first
    /// OME-Arrow struct column) of a Parquet or Arrow IPC file.
    pub fn open(path: impl Into<PathBuf>, row: u64, column: Option<&str>) -> Result<Self> {
        let path = path.into();
        let mut opened = files::open(&path, row, column)?;
        let pixels = opened.pixels.take().map(Arc::new);
        Ok(Self {
            path,
            opened,
            pixels: Mutex::new(pixels),
        })
    }

    /// The record's metadata.
    pub fn record(&self) -> &Record {
        &self.opened.record
    }

    /// The pixels, loading them on first use.
    fn pixels(&self) -> Result<Arc<Pixels>> {
        let mut slot = self
            .pixels
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "pixel cache lock poisoned"))?;
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let loaded = match &self.opened.source {
            Source::Parquet { .. } => {
                files::load_parquet_pixels(&self.path, &self.opened.source, self.record().list)
            }
            Source::Ipc => Err(Error::decode("pixels are missing")),
        }
        .map_err(|e| e.context(self.path.display()))?;
        let loaded = Arc::new(loaded);
        *slot = Some(loaded.clone());
        Ok(loaded)
    }

    /// Pieces touched by `request`, with the part of the request inside each.
    fn tasks(&self, request: &Request) -> Vec<Task<'_>> {
        let mut tasks = Vec::new();
        'pieces: for piece in &self.record().pieces {
            let mut sel = [DimSel {
                first: 0,
                count: 0,
                step: 1,
                out_first: 0,
            }; RANK];
            for (d, r) in request.dims.iter().enumerate() {
                let (o, n) = (piece.origin[d], piece.shape[d]);
                let last_sel = r.start + (r.count - 1) * r.step;
                if last_sel < o || r.start >= o + n {
                    continue 'pieces;
                }
                let k0 = if r.start >= o {
                    0
                } else {
                    (o - r.start).div_ceil(r.step)
                };
                let k1 = ((o + n - 1 - r.start) / r.step).min(r.count - 1);
                if k0 > k1 {
                    continue 'pieces;
                }
                sel[d] = DimSel {
                    first: r.start + k0 * r.step - o,
                    count: k1 - k0 + 1,
                    step: r.step,
                    out_first: k0,
                };
            }
            tasks.push(Task { piece, sel });
        }
        tasks
    }

    fn check_request(&self, request: &Request) -> Result<()> {
        if request.dims.len() != RANK {
            return Err(Error::invalid(format!(
                "region request of rank {} for a 5-D OME-Arrow image",
                request.dims.len()
            )));
        }
        Ok(())
    }

    /// Counts what reading `request` would touch.
    pub fn explain(&self, request: &Request, progress: &Progress) -> Result<()> {
        self.check_request(request)?;
        let tasks = self.tasks(request);
        let n = tasks.len() as u64;
        Progress::add(&progress.outer_total, n);
        Progress::add(&progress.chunks_touched, n);
        Progress::add(&progress.chunks_stored, n);
        Progress::add(&progress.read_ops, n);
        let size = self.record().dtype.size() as u64;
        let bytes: u64 = tasks.iter().map(|t| t.piece.volume() * size).sum();
        Progress::add(&progress.bytes_decoded, bytes);
        Ok(())
    }

    /// Reads the region `request` into a new buffer.
    pub fn read(&self, request: &Request, progress: &Progress) -> Result<SharedBuffer> {
        self.check_request(request)?;
        let bytes = request.output_bytes()?;
        let tasks = self.tasks(request);
        let buffer = Arc::new(if self.record().covered {
            AlignedBuffer::for_overwrite(bytes)?
        } else {
            AlignedBuffer::zeroed(bytes)?
        });
        Progress::add(&progress.outer_total, tasks.len() as u64);
        if tasks.is_empty() {
            return Ok(buffer);
        }
        let pixels = self.pixels()?;
        // SAFETY: the buffer is alive for this call; pieces are disjoint
        // (checked at open), so threads write disjoint elements.
        let dst = unsafe { Destination::new(buffer.as_ptr(), buffer.len(), request.out_dtype) };
        let out: Vec<u64> = request.dims.iter().map(|d| d.out_stride).collect();
        let run = |task: &Task<'_>| {
            self.place(&pixels, task, &out, &dst, progress)
                .map_err(|e| {
                    let kind = if self.record().list == record::PixelList::Planes {
                        "planes"
                    } else {
                        "chunks"
                    };
                    e.context(format!(
                        "{}: {kind}[{}]",
                        self.path.display(),
                        task.piece.item
                    ))
                })?;
            Progress::add(&progress.outer_done, 1);
            Ok(())
        };
        if tasks.len() == 1 {
            run(&tasks[0])?;
        } else {
            crate::pool().install(|| tasks.par_iter().try_for_each(run))?;
        }
        Ok(buffer)
    }

    /// Copies one piece's part of the request into the output.
    fn place(
        &self,
        pixels: &Pixels,
        task: &Task<'_>,
        out: &[u64],
        dst: &Destination,
        progress: &Progress,
    ) -> Result<()> {
        let piece = task.piece;
        let volume = piece.volume();
        let walk = Walk::new(&task.sel, &c_strides(&piece.shape), out);
        let raw = pixels.payload(piece.item)?;
        Progress::add(&progress.chunks_touched, 1);
        Progress::add(&progress.chunks_stored, 1);
        Progress::add(&progress.read_ops, 1);
        Progress::add(&progress.bytes_read, raw.len() as u64);
        let mismatch = |n: u64| {
            Error::decode(format!(
                "holds {n} pixel values where its shape {:?} needs {volume}",
                &piece.shape[2..]
            ))
        };
        match &piece.encoding {
            Encoding::List => {
                let Pixels::List { dtype, .. } = pixels else {
                    return Err(Error::decode("payload is not a list"));
                };
                let n = pixels.count(piece.item).unwrap_or(0);
                if n != volume {
                    return Err(mismatch(n));
                }
                Progress::add(&progress.bytes_decoded, raw.len() as u64);
                if (raw.as_ptr() as usize).is_multiple_of(dtype.size()) {
                    return assemble::copy(raw, *dtype, &walk, dst);
                }
                with_scratch(raw.len(), |scratch| {
                    scratch.copy_from_slice(raw);
                    assemble::copy(scratch, *dtype, &walk, dst)
                })
            }
            Encoding::Bytes { dtype, compression } => {
                let need = volume as usize * dtype.size();
                Progress::add(&progress.bytes_decoded, need as u64);
                let Some(codec) = compression else {
                    if raw.len() != need {
                        return Err(mismatch((raw.len() / dtype.size()) as u64));
                    }
                    return with_scratch(need, |scratch| {
                        scratch.copy_from_slice(raw);
                        assemble::copy(scratch, *dtype, &walk, dst)
                    });
                };
                with_scratch(need, |scratch| {
                    let got = decompress(codec, raw, scratch)?;
                    if got != need {
                        return Err(mismatch((got / dtype.size()) as u64));
                    }
                    assemble::copy(scratch, *dtype, &walk, dst)
                })
            }
        }
    }

    /// The record's metadata as JSON (for TypeScript).
    pub fn meta_json(&self) -> String {
        let r = self.record();
        let o = &self.opened;
        let mut s = String::from("{");
        s += &format!("\"shape\":{:?},", r.shape);
        s += &format!("\"dtype\":{},", json_str(record::dtype_name(r.dtype)));
        s += &format!("\"declaredType\":{},", json_str(&r.dtype_name));
        s += &format!("\"name\":{},", json_opt(r.name.as_deref()));
        s += &format!("\"id\":{},", json_opt(r.id.as_deref()));
        s += &format!("\"rows\":{},", o.rows);
        s += &format!("\"column\":{},", json_str(&o.column));
        let format = match o.format {
            Format::Parquet => "parquet",
            Format::Ipc => "ipc",
        };
        s += &format!("\"format\":\"{format}\",");
        let list = match r.list {
            record::PixelList::ChunkValues => "chunks",
            record::PixelList::ChunkBytes => "chunk-bytes",
            record::PixelList::Planes => "planes",
        };
        s += &format!("\"storage\":\"{list}\",");
        s += &format!("\"pieces\":{},", r.pieces.len());
        s += &format!("\"covered\":{},", r.covered);
        match r.chunk_shape {
            Some(c) => s += &format!("\"chunkShape\":{c:?},"),
            None => s += "\"chunkShape\":null,",
        }
        let physical: Vec<String> = r
            .physical
            .iter()
            .map(|(v, u)| {
                format!(
                    "{{\"size\":{},\"unit\":{}}}",
                    v.filter(|x| x.is_finite())
                        .map_or("null".into(), |x| x.to_string()),
                    json_opt(u.as_deref())
                )
            })
            .collect();
        s += &format!("\"physical\":[{}],", physical.join(","));
        let channels: Vec<String> = r
            .channels
            .iter()
            .map(|c| {
                format!(
                    "{{\"id\":{},\"name\":{},\"color\":{}}}",
                    json_opt(c.id.as_deref()),
                    json_opt(c.name.as_deref()),
                    c.color.map_or("null".into(), |v| v.to_string())
                )
            })
            .collect();
        s += &format!("\"channels\":[{}]}}", channels.join(","));
        s
    }
}

/// Runs `f` on `len` bytes of this thread's 8-byte aligned scratch.
fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [u8]) -> Result<T>) -> Result<T> {
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        if scratch.len() * 8 < len {
            *scratch = aligned_scratch(len);
        }
        f(&mut bytemuck::cast_slice_mut::<u64, u8>(&mut scratch)[..len])
    })
}

/// Decompresses a chunk payload written with pyarrow's `Codec` into `out`;
/// returns the decompressed length (at most `out.len()`).
fn decompress(codec: &str, raw: &[u8], out: &mut [u8]) -> Result<usize> {
    use std::io::Read;
    let fill = |mut r: Box<dyn Read + '_>, out: &mut [u8]| -> Result<usize> {
        let mut n = 0;
        loop {
            if n == out.len() {
                let mut probe = [0u8; 1];
                return match r.read(&mut probe) {
                    Ok(0) => Ok(n),
                    Ok(_) => Ok(n + 1),
                    Err(e) => Err(Error::decode(format!("{codec}: {e}"))),
                };
            }
            match r.read(&mut out[n..]) {
                Ok(0) => return Ok(n),
                Ok(k) => n += k,
                Err(e) => return Err(Error::decode(format!("{codec}: {e}"))),
            }
        }
    };
    match codec {
        "zstd" => zstd::bulk::decompress_to_buffer(raw, out)
            .map_err(|e| Error::decode(format!("zstd: {e}"))),
        "lz4" | "lz4_frame" => fill(Box::new(lz4_flex::frame::FrameDecoder::new(raw)), out),
        "gzip" => fill(Box::new(flate2::read::GzDecoder::new(raw)), out),
        "snappy" => {
            let n = snap::raw::decompress_len(raw)
                .map_err(|e| Error::decode(format!("snappy: {e}")))?;
            if n > out.len() {
                return Ok(n);
            }
            snap::raw::Decoder::new()
                .decompress(raw, out)
                .map_err(|e| Error::decode(format!("snappy: {e}")))
        }
        other => Err(Error::storage(format!(
            "chunk compression {other:?} is not supported (zstd, lz4, gzip, snappy or none)"
        ))),
    }
}

/// A JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt(s: Option<&str>) -> String {
    s.map_or("null".into(), json_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::region::DimRequest;

    fn written(ipc: bool, zstd: Option<i32>) -> (tempdir::Dir, Vec<u16>) {
        let shape = [2u64, 2, 3, 10, 13];
        let n: u64 = shape.iter().product();
        let data: Vec<u16> = (0..n as u16).map(|v| v.wrapping_mul(7)).collect();
        let dir = tempdir::Dir::new();
        let options = write::WriteOptions {
            dtype: DType::UInt16,
            shape,
            chunk: [2, 4, 5],
            ipc,
            zstd_level: zstd,
            overwrite: false,
            name: "t".into(),
            id: "t".into(),
            column: "ome_arrow".into(),
            unit: "µm".into(),
            channels: vec!["a".into(), "b".into()],
            physical: [1.0, 0.5, 0.5],
        };
        write::write(&dir.file(), bytemuck::cast_slice(&data), &options).unwrap();
        (dir, data)
    }

    /// Every second x of a box crossing chunk borders, transposed to (x, y).
    fn strided_read(source: &OmeArrow) -> Vec<u16> {
        let dims = [
            (1, 1, 1, 0),
            (0, 1, 1, 0),
            (1, 1, 1, 0),
            (3, 5, 1, 1),
            (1, 6, 2, 5),
        ];
        let request = Request {
            out_dtype: DType::UInt16,
            dims: dims
                .iter()
                .map(|&(start, count, step, out_stride)| DimRequest {
                    start,
                    count,
                    step,
                    out_stride,
                })
                .collect(),
        };
        let out = source.read(&request, &Progress::default()).unwrap();
        let bytes = unsafe { std::slice::from_raw_parts(out.as_ptr(), out.len()) };
        bytes
            .chunks_exact(2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
            .collect()
    }

    #[test]
    fn written_files_read_back_in_both_formats() {
        for (ipc, zstd) in [
            (false, Some(3)),
            (true, None),
            (false, None),
            (true, Some(1)),
        ] {
            let (dir, data) = written(ipc, zstd);
            let source = OmeArrow::open(dir.file(), 0, None).unwrap();
            assert_eq!(source.record().shape, [2, 2, 3, 10, 13]);
            assert!(source.record().covered);
            let got = strided_read(&source);
            // t=1, c=0, z=1, y 3..8, x 1,3,..,11 → out[x][y]
            let plane = 7 * 130; // (t=1, c=0, z=1) = (1·2 + 0)·3 + 1
            let at = |y: usize, x: usize| data[plane + y * 13 + x];
            for (xi, x) in (1..13).step_by(2).enumerate() {
                for (yi, y) in (3..8).enumerate() {
                    assert_eq!(got[xi * 5 + yi], at(y, x), "x {x} y {y} ipc {ipc}");
                }
            }
        }
    }

    /// A scratch folder removed on drop.
    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "tessera-omearrow-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
            pub fn file(&self) -> std::path::PathBuf {
                self.0.join("image.ome.parquet")
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
