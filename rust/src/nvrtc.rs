//! Compiles CUDA C with NVRTC, loaded at run time by absolute path (no GPU
//! or driver is needed to compile). Kernels are compiled to a cubin for one
//! architecture rather than to PTX: an NVRTC newer than the driver emits
//! PTX the driver cannot load, while a cubin loads on any driver that knows
//! the architecture.

use crate::error::{Error, ErrorKind, Result};
use std::ffi::{c_char, c_int, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

type Program = *mut c_void;
type Create = unsafe extern "C" fn(
    *mut Program,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> c_int;
type Compile = unsafe extern "C" fn(Program, c_int, *const *const c_char) -> c_int;
type Size = unsafe extern "C" fn(Program, *mut usize) -> c_int;
type Get = unsafe extern "C" fn(Program, *mut c_char) -> c_int;
type Destroy = unsafe extern "C" fn(*mut Program) -> c_int;

fn nvrtc_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Cuda, message)
}

/// Finds `libnvrtc.so.13` in the `nvidia/cu13/lib` folder of a Python
/// environment's site-packages (the `nvidia-cuda-nvrtc` wheel), under
/// `venv/lib/python3*/site-packages`.
pub fn find_in_venv(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    let entries = std::fs::read_dir(&lib)
        .map_err(|e| nvrtc_error(format!("no Python environment at {}: {e}", venv.display())))?;
    for entry in entries.flatten() {
        let candidate = entry
            .path()
            .join("site-packages/nvidia/cu13/lib/libnvrtc.so.13");
        if entry.file_name().to_string_lossy().starts_with("python3") && candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(nvrtc_error(format!(
        "no libnvrtc.so.13 under {}/python3*/site-packages/nvidia/cu13/lib (install the nvidia-cuda-nvrtc wheel)",
        lib.display()
    )))
}

/// Loads `library` (a libnvrtc, after the `libnvrtc-builtins` beside it) and
/// compiles `source` to a cubin for `arch` (such as `sm_90`).
pub fn compile_cubin(library: &Path, source: &str, name: &str, arch: &str) -> Result<Vec<u8>> {
    let what = format!("compiling {name} with {}", library.display());
    match catch_unwind(AssertUnwindSafe(|| compile(library, source, name, arch))) {
        Ok(result) => result.map_err(|e| nvrtc_error(format!("{what}: {}", e.message))),
        Err(_) => Err(nvrtc_error(format!("{what}: NVRTC panicked"))),
    }
}

fn compile(library: &Path, source: &str, name: &str, arch: &str) -> Result<Vec<u8>> {
    let dir = library.parent().unwrap_or(Path::new("."));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("libnvrtc-builtins.so")
            {
                // SAFETY: loading runs the library's initialisers only; it is
                // kept loaded so that libnvrtc finds it by soname.
                if let Ok(lib) = unsafe { libloading::Library::new(entry.path()) } {
                    std::mem::forget(lib);
                }
            }
        }
    }
    // SAFETY: libnvrtc's initialisers have no preconditions.
    let lib = unsafe { libloading::Library::new(library) }
        .map_err(|e| nvrtc_error(format!("cannot load: {e}")))?;
    let c = |s: &str| CString::new(s).map_err(|_| Error::invalid("NUL byte in NVRTC input"));
    let (src, cname) = (c(source)?, c(name)?);
    let options = [c(&format!("--gpu-architecture={arch}"))?, c("--std=c++17")?];
    let option_ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
    // SAFETY: the signatures are NVRTC's C API (nvrtc.h, stable since CUDA 11).
    unsafe {
        let create: Create = symbol(&lib, b"nvrtcCreateProgram\0")?;
        let compile: Compile = symbol(&lib, b"nvrtcCompileProgram\0")?;
        let log_size: Size = symbol(&lib, b"nvrtcGetProgramLogSize\0")?;
        let log: Get = symbol(&lib, b"nvrtcGetProgramLog\0")?;
        let cubin_size: Size = symbol(&lib, b"nvrtcGetCUBINSize\0")?;
        let cubin: Get = symbol(&lib, b"nvrtcGetCUBIN\0")?;
        let destroy: Destroy = symbol(&lib, b"nvrtcDestroyProgram\0")?;
        let mut prog: Program = std::ptr::null_mut();
        let check = |code: c_int, call: &str| {
            if code == 0 {
                Ok(())
            } else {
                Err(nvrtc_error(format!(
                    "{call} failed with NVRTC status {code}"
                )))
            }
        };
        let null = std::ptr::null();
        check(
            create(&mut prog, src.as_ptr(), cname.as_ptr(), 0, null, null),
            "nvrtcCreateProgram",
        )?;
        let result = (|| {
            let status = compile(prog, option_ptrs.len() as c_int, option_ptrs.as_ptr());
            if status != 0 {
                let mut n = 0usize;
                check(log_size(prog, &mut n), "nvrtcGetProgramLogSize")?;
                let mut text = vec![0u8; n];
                check(log(prog, text.as_mut_ptr().cast()), "nvrtcGetProgramLog")?;
                let text = String::from_utf8_lossy(&text);
                return Err(nvrtc_error(format!(
                    "compilation failed (status {status}): {}",
                    text.trim_end_matches('\0').trim()
                )));
            }
            let mut n = 0usize;
            check(cubin_size(prog, &mut n), "nvrtcGetCUBINSize")?;
            let mut out = vec![0u8; n];
            check(cubin(prog, out.as_mut_ptr().cast()), "nvrtcGetCUBIN")?;
            Ok(out)
        })();
        destroy(&mut prog);
        result
    }
}

/// The libnvrtc the tests use: `TESSERA_NVRTC` when set, else the one in
/// the Python environment `scripts/python_env.ts` creates (`.venv` at the
/// repository root, from tests/interop/requirements.txt). Panics when absent.
/// The function `name` (NUL-terminated) of `lib`.
///
/// # Safety
/// `T` must be the function's true type.
unsafe fn symbol<T: Copy>(lib: &libloading::Library, name: &[u8]) -> Result<T> {
    lib.get::<T>(name).map(|s| *s).map_err(|e| {
        nvrtc_error(format!(
            "missing {}: {e}",
            String::from_utf8_lossy(&name[..name.len() - 1])
        ))
    })
}

#[cfg(test)]
pub fn test_library() -> PathBuf {
    if let Some(path) = std::env::var_os("TESSERA_NVRTC") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv");
    find_in_venv(&venv).unwrap_or_else(|e| {
        panic!(
            "{} (`deno task test` creates .venv from tests/interop/requirements.txt)",
            e.message
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_plan::{KERNEL_NAME, KERNEL_SOURCE, SPANS_KERNEL_NAME};

    fn venv_nvrtc() -> PathBuf {
        test_library()
    }

    #[test]
    fn the_device_kernels_compile_to_an_sm90_cubin() {
        let cubin = compile_cubin(&venv_nvrtc(), KERNEL_SOURCE, KERNEL_NAME, "sm_90").unwrap();
        // An ELF image holding the kernel's entry point.
        assert_eq!(&cubin[..4], b"\x7fELF");
        for entry in [KERNEL_NAME, SPANS_KERNEL_NAME] {
            let entry = entry.as_bytes();
            assert!(cubin.windows(entry.len()).any(|w| w == entry));
        }
    }

    #[test]
    fn compile_errors_carry_the_nvrtc_log() {
        let e = compile_cubin(
            &venv_nvrtc(),
            "__global__ void k() { nope; }",
            "bad.cu",
            "sm_90",
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Cuda);
        assert!(e.message.contains("nope"), "{}", e.message);
    }

    #[test]
    fn a_missing_library_is_a_cuda_error() {
        let e = find_in_venv(Path::new("/nonexistent-venv")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Cuda);
        let e = compile_cubin(
            Path::new("/nonexistent/libnvrtc.so.13"),
            "",
            "x.cu",
            "sm_90",
        )
        .unwrap_err();
        assert!(e.message.contains("cannot load"), "{}", e.message);
    }
}
