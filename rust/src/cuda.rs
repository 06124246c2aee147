//! CUDA batches of the streaming pipeline: a batch assembled on the host by
//! the batch executor (`crate::batch`) is copied to device memory in one
//! transfer. The driver library is loaded at run time (cudarc with
//! `dynamic-loading`), so the same build runs on machines without CUDA,
//! where opening a device is a [`ErrorKind::Cuda`] error naming the cause.

use crate::buffer::{AlignedBuffer, Release};
use crate::error::{Error, ErrorKind, Result};
use cudarc::driver::{CudaContext, CudaStream, DevicePtr, DriverError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Sonames of the CUDA driver library, in the order cudarc tries them.
const DRIVER_LIBRARIES: [&str; 2] = ["libcuda.so.1", "libcuda.so"];

fn cuda_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Cuda, message)
}

/// Runs a driver call, turning driver errors and panics (cudarc panics when
/// a symbol cannot be loaded) into [`ErrorKind::Cuda`] errors about `what`.
fn driver<T>(what: &str, f: impl FnOnce() -> std::result::Result<T, DriverError>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(cuda_error(format!("{what}: {e}"))),
        Err(_) => Err(cuda_error(format!(
            "{what}: the CUDA driver library lacks a needed function"
        ))),
    }
}

/// Fails unless the CUDA driver library can be loaded (cudarc would panic).
fn probe_driver() -> Result<()> {
    let mut reasons = Vec::new();
    for name in DRIVER_LIBRARIES {
        // SAFETY: loading the driver runs its initialisers, as cudarc would.
        match unsafe { libloading::Library::new(name) } {
            Ok(_) => return Ok(()),
            Err(e) => reasons.push(format!("{name}: {e}")),
        }
    }
    Err(cuda_error(format!(
        "no CUDA driver: {} (install the NVIDIA driver, or use device \"cpu\")",
        reasons.join("; ")
    )))
}

/// A CUDA device: its primary context and the stream transfers run on.
#[derive(Debug)]
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    ordinal: i32,
}

impl CudaDevice {
    /// Opens device `ordinal` (retains its primary context).
    pub fn open(ordinal: u32) -> Result<Self> {
        probe_driver()?;
        let count = driver("counting CUDA devices", || {
            cudarc::driver::result::init()?;
            CudaContext::device_count()
        })?;
        if ordinal as i64 >= count as i64 {
            return Err(cuda_error(format!(
                "device cuda:{ordinal} does not exist: the driver sees {count} CUDA device(s)"
            )));
        }
        let ctx = driver(&format!("opening cuda:{ordinal}"), || {
            CudaContext::new(ordinal as usize)
        })?;
        let stream = ctx.default_stream();
        Ok(Self {
            ctx,
            stream,
            ordinal: ordinal as i32,
        })
    }

    /// Copies `host` into new device memory; `on_release` runs after the
    /// device memory is freed, when the returned buffer's last reference drops.
    pub fn upload(&self, host: &[u8], on_release: Release) -> Result<AlignedBuffer> {
        let what = format!("copying {} bytes to cuda:{}", host.len(), self.ordinal);
        let device = driver(&what, || {
            // SAFETY: every byte is written by the copy below before anyone reads it.
            let mut device = unsafe { self.stream.alloc::<u8>(host.len()) }?;
            self.stream.memcpy_htod(host, &mut device)?;
            self.stream.synchronize()?;
            Ok(device)
        })?;
        let address = {
            let (address, _record) = device.device_ptr(&self.stream);
            address
        };
        let ctx = Arc::clone(&self.ctx);
        let release: Release = Box::new(move || {
            // A consumer may have queued work on the memory on its own
            // stream: wait for the whole device before freeing it.
            let _ = catch_unwind(AssertUnwindSafe(move || {
                let _ = ctx.bind_to_thread();
                let _ = ctx.synchronize();
                drop(device);
            }));
            on_release();
        });
        Ok(AlignedBuffer::on_cuda(
            address as usize as *mut u8,
            host.len(),
            self.ordinal,
            release,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_driver_or_device_is_a_cuda_error() {
        // On machines without a driver this names libcuda; with one, an
        // ordinal past the last device is refused.
        let e = CudaDevice::open(4096).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Cuda);
        assert!(
            e.message.contains("libcuda") || e.message.contains("does not exist"),
            "{}",
            e.message
        );
    }
}
