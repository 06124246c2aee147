//! nvCOMP, loaded at run time from a user-installed libnvcomp 5
//! (`nvidia-libnvcomp-cu13` wheel, `libnvcomp.so.5`), and the host-side
//! check of zstd frames: nvCOMP's behaviour on corrupt input is undefined,
//! so only frames that pass [`validate_zstd_frame`] may be handed to it.
//! Where the library is absent, chunks are decoded on the CPU.

use crate::error::{Error, ErrorKind, Result};
use std::ffi::{c_int, c_void};
use std::path::Path;

/// Soname of nvCOMP 5.
pub const SONAME: &str = "libnvcomp.so.5";
/// Batched zstd entry points the device decode needs.
pub const ZSTD_SYMBOLS: [&str; 3] = [
    "nvcompBatchedZstdDecompressGetRequiredAlignments",
    "nvcompBatchedZstdDecompressGetTempSizeAsync",
    "nvcompBatchedZstdDecompressAsync",
];
/// Largest block a zstd frame may hold (RFC 8878, `Block_Maximum_Size`).
const MAX_BLOCK: usize = 128 << 10;
const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// `nvcompBatchedZstdDecompressOpts_t`: the backend, then reserved zeros.
#[repr(C)]
#[derive(Clone, Copy)]
struct DecompressOpts {
    backend: c_int,
    reserved: [u8; 60],
}

/// Default options: nvCOMP picks the backend.
const DEFAULT_OPTS: DecompressOpts = DecompressOpts {
    backend: 0,
    reserved: [0; 60],
};

/// `nvcompAlignmentRequirements_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Alignments {
    /// Alignment of each compressed input.
    pub input: usize,
    /// Alignment of each decompressed output.
    pub output: usize,
    /// Alignment of the temporary space.
    pub temp: usize,
}

type GetAlignments = unsafe extern "C" fn(DecompressOpts, *mut Alignments) -> c_int;
type GetTempSize = unsafe extern "C" fn(usize, usize, DecompressOpts, *mut usize, usize) -> c_int;
type Decompress = unsafe extern "C" fn(
    *const *const c_void,
    *const usize,
    *const usize,
    *mut usize,
    usize,
    *mut c_void,
    usize,
    *const *mut c_void,
    DecompressOpts,
    *mut c_int,
    *mut c_void,
) -> c_int;

/// A loaded libnvcomp of major version 5 with the batched zstd API.
#[derive(Debug)]
pub struct Nvcomp {
    _library: libloading::Library,
    version: u32,
    alignments: Alignments,
    temp_size: GetTempSize,
    decompress: Decompress,
}

/// Where nvCOMP's batched zstd decode reads and writes, all device
/// addresses: arrays of `count` entries (pointers and sizes), the temporary
/// space, and the outputs nvCOMP writes (decoded sizes and statuses).
#[derive(Debug, Clone, Copy)]
pub struct ZstdBatch {
    /// Frames in the batch.
    pub count: usize,
    /// `const void*[count]`: compressed frames.
    pub in_ptrs: u64,
    /// `size_t[count]`: their sizes.
    pub in_sizes: u64,
    /// `size_t[count]`: room for each decoded frame.
    pub out_sizes: u64,
    /// `void*[count]`: where each frame decodes to.
    pub out_ptrs: u64,
    /// `size_t[count]`, written: decoded sizes.
    pub actual_sizes: u64,
    /// `nvcompStatus_t[count]`, written: per-frame statuses.
    pub statuses: u64,
    /// Temporary space and its size.
    pub temp: u64,
    /// Bytes of temporary space.
    pub temp_len: usize,
}

impl Nvcomp {
    /// Loads nvCOMP from `path` (absolute, or a soname searched the usual
    /// way) and checks its version and batched zstd symbols; any failure
    /// is a [`ErrorKind::Cuda`] error saying nvCOMP is unusable.
    pub fn load(path: &Path) -> Result<Self> {
        let absent = |why: String| {
            Error::new(
                ErrorKind::Cuda,
                format!("nvCOMP is not usable from {}: {why}", path.display()),
            )
        };
        // SAFETY: loading runs libnvcomp's initialisers, which need no setup.
        let library =
            unsafe { libloading::Library::new(path) }.map_err(|e| absent(e.to_string()))?;
        let version = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: nvcompGetProperties(nvcompProperties_t*) writes the
            // struct, whose first field is the version as major·1000 +
            // minor·100 + patch; 256 bytes exceed the struct's size.
            unsafe {
                let get: libloading::Symbol<unsafe extern "C" fn(*mut c_void) -> c_int> =
                    library.get(b"nvcompGetProperties\0").ok()?;
                let mut props = [0u32; 64];
                (get(props.as_mut_ptr().cast()) == 0).then_some(props[0])
            }
        }))
        .ok()
        .flatten()
        .ok_or_else(|| absent("nvcompGetProperties is missing or failed".into()))?;
        if version / 1000 != 5 {
            return Err(absent(format!("version {version} is not 5.x")));
        }
        for name in ZSTD_SYMBOLS {
            // SAFETY: only the symbol's presence is checked.
            unsafe { library.get::<*const c_void>(name.as_bytes()) }
                .map_err(|e| absent(format!("{name}: {e}")))?;
        }
        // SAFETY: the types are the declarations of nvcomp/zstd.h (nvCOMP 5).
        let (get_alignments, temp_size, decompress) = unsafe {
            let get = |name: &[u8]| {
                library
                    .get::<*const c_void>(name)
                    .map(|s| *s)
                    .map_err(|e| absent(e.to_string()))
            };
            (
                std::mem::transmute::<*const c_void, GetAlignments>(get(
                    b"nvcompBatchedZstdDecompressGetRequiredAlignments\0",
                )?),
                std::mem::transmute::<*const c_void, GetTempSize>(get(
                    b"nvcompBatchedZstdDecompressGetTempSizeAsync\0",
                )?),
                std::mem::transmute::<*const c_void, Decompress>(get(
                    b"nvcompBatchedZstdDecompressAsync\0",
                )?),
            )
        };
        let mut alignments = Alignments::default();
        // SAFETY: a host-only query writing the struct.
        let status = unsafe { get_alignments(DEFAULT_OPTS, &mut alignments) };
        if status != 0 || !alignments.input.is_power_of_two() || alignments.input > 4096 {
            return Err(absent(format!(
                "alignment query failed (status {status}, {alignments:?})"
            )));
        }
        Ok(Self {
            _library: library,
            version,
            alignments,
            temp_size,
            decompress,
        })
    }

    /// Buffer alignments the batched zstd decode needs.
    pub fn alignments(&self) -> Alignments {
        self.alignments
    }

    /// Bytes of temporary device space to decode `count` frames of at most
    /// `max_len` and in all `total_len` decoded bytes.
    pub fn temp_size(&self, count: usize, max_len: usize, total_len: usize) -> Result<usize> {
        let mut bytes = 0usize;
        // SAFETY: a host-only computation writing `bytes`.
        let status =
            unsafe { (self.temp_size)(count, max_len, DEFAULT_OPTS, &mut bytes, total_len) };
        if status != 0 {
            return Err(Error::new(
                ErrorKind::Cuda,
                format!("nvCOMP zstd temporary size for {count} frames: status {status}"),
            ));
        }
        Ok(bytes)
    }

    /// Enqueues the batched zstd decode of `batch` on `stream` (a `CUstream`).
    ///
    /// # Safety
    /// Every address in `batch` must be device memory of the documented
    /// size, in the current context, and stay alive until the stream
    /// reaches this point; the frames must have passed [`validate_zstd_frame`].
    pub unsafe fn decompress(&self, batch: &ZstdBatch, stream: *mut c_void) -> Result<()> {
        let status = (self.decompress)(
            batch.in_ptrs as usize as *const *const c_void,
            batch.in_sizes as usize as *const usize,
            batch.out_sizes as usize as *const usize,
            batch.actual_sizes as usize as *mut usize,
            batch.count,
            batch.temp as usize as *mut c_void,
            batch.temp_len,
            batch.out_ptrs as usize as *const *mut c_void,
            DEFAULT_OPTS,
            batch.statuses as usize as *mut c_int,
            stream,
        );
        if status != 0 {
            return Err(Error::new(
                ErrorKind::Cuda,
                format!(
                    "nvcompBatchedZstdDecompressAsync of {} frames: status {status}",
                    batch.count
                ),
            ));
        }
        Ok(())
    }

    /// nvCOMP's version: major·1000 + minor·100 + patch.
    pub fn version(&self) -> u32 {
        self.version
    }
}

/// Finds `libnvcomp.so.5` of the `nvidia-libnvcomp-cu13` wheel in a Python
/// environment: `venv/lib/python3*/site-packages/nvidia/libnvcomp/lib64`.
pub fn find_in_venv(venv: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| {
            e.path()
                .join("site-packages/nvidia/libnvcomp/lib64")
                .join(SONAME)
        })
        .find(|p| p.is_file())
}

/// Checks that `frame` is exactly one well-formed zstd frame, without a
/// dictionary, that declares `decoded_len` content bytes: header fields,
/// block headers and sizes, and the checksum's presence are walked to the
/// last byte. Compressed block contents are not decoded.
pub fn validate_zstd_frame(frame: &[u8], decoded_len: usize) -> Result<()> {
    let bad = |m: String| Error::decode(format!("zstd frame: {m}"));
    let byte = |at: usize| {
        frame
            .get(at)
            .copied()
            .ok_or_else(|| bad(format!("ends at byte {} of its header", frame.len())))
    };
    let le = |at: usize, n: usize| -> Result<u64> {
        (0..n).try_fold(0u64, |v, i| Ok(v | (byte(at + i)? as u64) << (8 * i)))
    };
    if le(0, 4)? != ZSTD_MAGIC as u64 {
        return Err(bad("bad magic number".into()));
    }
    let descriptor = byte(4)?;
    if descriptor & 0x08 != 0 {
        return Err(bad("reserved header bit set".into()));
    }
    let single_segment = descriptor & 0x20 != 0;
    let dict_bytes = [0, 1, 2, 4][(descriptor & 3) as usize];
    let fcs_bytes = match descriptor >> 6 {
        0 if single_segment => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let mut at = 5 + usize::from(!single_segment);
    if le(at, dict_bytes)? != 0 {
        return Err(bad("uses a dictionary".into()));
    }
    at += dict_bytes;
    if fcs_bytes == 0 {
        return Err(bad("does not declare its content size".into()));
    }
    let size = le(at, fcs_bytes)? + if fcs_bytes == 2 { 256 } else { 0 };
    at += fcs_bytes;
    if size != decoded_len as u64 {
        return Err(bad(format!(
            "declares {size} bytes, the chunk holds {decoded_len}"
        )));
    }
    let mut plain = 0usize;
    loop {
        let header = le(at, 3)? as usize;
        at += 3;
        let (last, kind, block) = (header & 1 != 0, (header >> 1) & 3, header >> 3);
        if block > MAX_BLOCK {
            return Err(bad(format!("block of {block} bytes")));
        }
        let stored = match kind {
            0 => block,
            1 => 1,
            2 => block,
            _ => return Err(bad("reserved block type".into())),
        };
        if kind != 2 {
            plain += block;
        }
        at = at
            .checked_add(stored)
            .filter(|&end| end <= frame.len())
            .ok_or_else(|| bad(format!("block at byte {} runs past the end", at - 3)))?;
        if last {
            break;
        }
    }
    if plain > decoded_len {
        return Err(bad(format!(
            "blocks decode to more than {decoded_len} bytes"
        )));
    }
    if descriptor & 0x04 != 0 {
        at += 4;
    }
    if at != frame.len() {
        return Err(bad(format!(
            "{} bytes after the frame's end",
            frame.len() as i64 - at as i64
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_or_foreign_library_is_reported_not_loaded() {
        let e = Nvcomp::load(Path::new("/nonexistent/libnvcomp.so.5")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Cuda);
        assert!(e.message.contains("not usable"), "{}", e.message);
        // A library without nvCOMP's symbols.
        let e = Nvcomp::load(Path::new("libc.so.6")).unwrap_err();
        assert!(e.message.contains("nvcompGetProperties"), "{}", e.message);
    }

    #[test]
    fn the_wheel_library_loads_and_answers_host_queries_without_a_gpu() {
        // tests/interop/requirements.txt pins nvidia-libnvcomp-cu13, so the
        // test environment has it; its host-side queries need no device.
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv");
        let path = std::env::var_os("TESSERA_NVCOMP")
            .map(std::path::PathBuf::from)
            .or_else(|| find_in_venv(&venv))
            .expect("no libnvcomp.so.5 in .venv (`deno task test` installs nvidia-libnvcomp-cu13)");
        let nvcomp = Nvcomp::load(&path).unwrap();
        assert_eq!(nvcomp.version() / 1000, 5, "{}", nvcomp.version());
        let a = nvcomp.alignments();
        assert!(a.input.is_power_of_two() && a.output.is_power_of_two() && a.temp >= 1);
        assert!(a.input <= crate::device_batch::ALIGN as usize);
        assert!(a.output <= crate::device_batch::ALIGN as usize);
        let small = nvcomp.temp_size(10, 64 << 10, 640 << 10).unwrap();
        let large = nvcomp.temp_size(1000, 64 << 10, 64 << 20).unwrap();
        assert!(large > small, "{small} {large}");
    }

    fn sample() -> Vec<u8> {
        (0..300_000u32)
            .flat_map(|i| ((i / 7) as u16).to_le_bytes())
            .collect()
    }

    #[test]
    fn well_formed_frames_pass() {
        let data = sample();
        for level in [1, 19] {
            let frame = zstd::bulk::compress(&data, level).unwrap();
            validate_zstd_frame(&frame, data.len()).unwrap();
        }
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        c.include_checksum(true).unwrap();
        let frame = c.compress(&data).unwrap();
        validate_zstd_frame(&frame, data.len()).unwrap();
        // Incompressible data gives raw blocks; tiny inputs a single-segment header.
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        validate_zstd_frame(&zstd::bulk::compress(&noise, 1).unwrap(), noise.len()).unwrap();
        validate_zstd_frame(&zstd::bulk::compress(b"abc", 1).unwrap(), 3).unwrap();
    }

    #[test]
    fn malformed_frames_are_decode_errors() {
        let data = sample();
        let frame = zstd::bulk::compress(&data, 3).unwrap();
        let check = |bytes: &[u8], len: usize| {
            let e = validate_zstd_frame(bytes, len).unwrap_err();
            assert_eq!(e.kind, ErrorKind::DecodeError);
            e.message
        };
        assert!(check(&frame, data.len() + 1).contains("declares"));
        for cut in [0, 3, 5, 9, frame.len() / 2, frame.len() - 1] {
            check(&frame[..cut], data.len());
        }
        let mut trailing = frame.clone();
        trailing.push(0);
        assert!(check(&trailing, data.len()).contains("after"));
        let mut magic = frame.clone();
        magic[0] ^= 1;
        assert!(check(&magic, data.len()).contains("magic"));
        let mut reserved = frame.clone();
        reserved[4] |= 0x08;
        check(&reserved, data.len());
        // A frame written by a streaming encoder without a content size.
        let mut streamed = Vec::new();
        let mut enc = zstd::stream::Encoder::new(&mut streamed, 3).unwrap();
        std::io::Write::write_all(&mut enc, &data).unwrap();
        enc.finish().unwrap();
        assert!(check(&streamed, data.len()).contains("content size"));
    }
}
