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
    "nvcompBatchedZstdDecompressGetTempSizeAsync",
    "nvcompBatchedZstdGetDecompressSizeAsync",
    "nvcompBatchedZstdDecompressAsync",
];
/// Largest block a zstd frame may hold (RFC 8878, `Block_Maximum_Size`).
const MAX_BLOCK: usize = 128 << 10;
const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// A loaded libnvcomp of major version 5 with the batched zstd API.
#[derive(Debug)]
pub struct Nvcomp {
    _library: libloading::Library,
    version: u32,
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
        Ok(Self {
            _library: library,
            version,
        })
    }

    /// nvCOMP's version: major·1000 + minor·100 + patch.
    pub fn version(&self) -> u32 {
        self.version
    }
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
