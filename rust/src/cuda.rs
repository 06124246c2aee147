//! CUDA devices for the streaming pipeline: opening a device, copying a
//! host batch to it, and loading the device kernels (`kernels/assemble.cu`,
//! compiled by [`crate::nvrtc`]). The driver library is loaded at run time
//! (cudarc with `dynamic-loading`), so the same build runs on machines
//! without CUDA, where opening a device is a [`ErrorKind::Cuda`] error
//! naming the cause. Batches are assembled on the device by
//! [`crate::device_exec`]; [`CudaDevice::assemble`] runs the assembly
//! kernel alone on chunks decoded on the host (the GPU kernel test).

use crate::buffer::{AlignedBuffer, Release};
use crate::device_plan::{self, DevicePlan, SourceLayout, KERNEL_NAME, SPANS_KERNEL_NAME};
use crate::error::{Error, ErrorKind, Result};
use cudarc::driver::{
    result, sys, CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DriverError,
};
use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// The parameters of one launch of the assembly kernel (`tessera_assemble`):
/// device addresses of the decoded staging, the source layouts, the copy and
/// fill boxes and the batch.
pub(crate) struct AssembleLaunch {
    /// Decoded sources.
    pub staging: u64,
    /// `SourceLayout` table.
    pub layouts: u64,
    /// `CopyBox` table.
    pub boxes: u64,
    /// Number of boxes.
    pub count: u32,
    /// Elements the boxes cover (one thread each).
    pub total: u64,
    /// The batch.
    pub out: u64,
    /// Cast to bfloat16 (else float32).
    pub bf16: bool,
}

impl AssembleLaunch {
    /// Enqueues the launch of `function` on `stream`.
    ///
    /// # Safety
    /// `function` must be `tessera_assemble`, and every address device
    /// memory laid out as its plan says (boxes inside staging and batch).
    pub unsafe fn run(
        &self,
        function: sys::CUfunction,
        stream: sys::CUstream,
    ) -> std::result::Result<(), DriverError> {
        let (mut staging, mut layouts, mut boxes) = (self.staging, self.layouts, self.boxes);
        let (mut count, mut total, mut out) = (self.count, self.total, self.out);
        let mut bf16 = i32::from(self.bf16);
        let mut params: [*mut c_void; 7] = [
            (&mut staging as *mut u64).cast(),
            (&mut layouts as *mut u64).cast(),
            (&mut boxes as *mut u64).cast(),
            (&mut count as *mut u32).cast(),
            (&mut total as *mut u64).cast(),
            (&mut out as *mut u64).cast(),
            (&mut bf16 as *mut i32).cast(),
        ];
        let grid = self.total.div_ceil(256).min(1 << 20) as u32;
        result::launch_kernel(function, (grid, 1, 1), (256, 1, 1), 0, stream, &mut params)
    }
}

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

/// `bytes`, or one zero byte where it is empty (device allocations are never empty).
fn non_empty(bytes: &[u8]) -> &[u8] {
    if bytes.is_empty() {
        &[0]
    } else {
        bytes
    }
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

    /// The device's primary context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> i32 {
        self.ordinal
    }

    /// The `sm_XY` name of the device's architecture.
    pub fn arch(&self) -> Result<String> {
        let (major, minor) = driver("reading the compute capability", || {
            self.ctx.compute_capability()
        })?;
        Ok(format!("sm_{major}{minor}"))
    }

    /// Loads the device kernels from `cubin` (see [`crate::nvrtc::compile_cubin`]).
    pub fn load_kernel(&self, cubin: &[u8]) -> Result<AssemblyKernel> {
        let (module, assemble, spans) = driver("loading the device kernels", || {
            self.ctx.bind_to_thread()?;
            // SAFETY: `cubin` is a complete image, read during the call only.
            let module = unsafe { result::module::load_data(cubin.as_ptr().cast()) }?;
            let get = |name: &str| {
                let name = CString::new(name).expect("kernel names hold no NUL");
                // SAFETY: the module was just loaded.
                unsafe { result::module::get_function(module, name) }
            };
            match get(KERNEL_NAME).and_then(|a| Ok((a, get(SPANS_KERNEL_NAME)?))) {
                Ok((assemble, spans)) => Ok((module, assemble, spans)),
                Err(e) => {
                    // SAFETY: nothing uses the module.
                    let _ = unsafe { result::module::unload(module) };
                    Err(e)
                }
            }
        })?;
        Ok(AssemblyKernel {
            ctx: Arc::clone(&self.ctx),
            module,
            assemble,
            spans,
        })
    }

    /// Assembles the batch `plan` describes into new device memory: copies
    /// `staging` (the plan's sources, decoded, at `layouts`) and the boxes
    /// to the device, then launches `kernel` once over the plan's boxes.
    /// `on_release` runs after the batch memory is freed.
    pub fn assemble(
        &self,
        kernel: &AssemblyKernel,
        plan: &DevicePlan,
        staging: &[u8],
        layouts: &[SourceLayout],
        on_release: Release,
    ) -> Result<AlignedBuffer> {
        let bytes = plan.elements as usize * plan.out_dtype.size();
        let what = format!("assembling a {bytes}-byte batch on cuda:{}", self.ordinal);
        let out = driver(&what, || {
            self.ctx.bind_to_thread()?;
            let staging = self.stream.clone_htod(non_empty(staging))?;
            let layouts = self
                .stream
                .clone_htod(non_empty(bytemuck::cast_slice(layouts)))?;
            // SAFETY: the launch writes every element (fills cover what copies do not).
            let mut out = unsafe { self.stream.alloc::<u8>(bytes.max(1)) }?;
            let boxes = plan.boxes();
            let total = device_plan::total(&boxes);
            if total > 0 {
                let boxes_d = self
                    .stream
                    .clone_htod(bytemuck::cast_slice::<_, u8>(boxes.as_slice()))?;
                let (a, _ra) = staging.device_ptr(&self.stream);
                let (b, _rb) = layouts.device_ptr(&self.stream);
                let (c, _rc) = boxes_d.device_ptr(&self.stream);
                let (o, _ro) = out.device_ptr_mut(&self.stream);
                let launch = AssembleLaunch {
                    staging: a,
                    layouts: b,
                    boxes: c,
                    count: boxes.len() as u32,
                    total,
                    out: o,
                    bf16: plan.out_dtype == crate::dtype::DType::BFloat16,
                };
                // SAFETY: the plan's boxes stay inside `staging` and `out`.
                unsafe { launch.run(kernel.assemble, self.stream.cu_stream()) }?;
                self.stream.synchronize()?;
            }
            Ok(out)
        })?;
        Ok(self.wrap(out, bytes, on_release))
    }

    /// Wraps device memory as a batch buffer that frees it when dropped.
    fn wrap(&self, device: CudaSlice<u8>, len: usize, on_release: Release) -> AlignedBuffer {
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
        AlignedBuffer::on_cuda(address as usize as *mut u8, len, self.ordinal, release)
    }
}

/// The device kernels loaded into a device's context.
#[derive(Debug)]
pub struct AssemblyKernel {
    ctx: Arc<CudaContext>,
    module: sys::CUmodule,
    /// `tessera_assemble`.
    pub(crate) assemble: sys::CUfunction,
    /// `tessera_copy_spans`.
    pub(crate) spans: sys::CUfunction,
}

// SAFETY: module and function handles belong to the context, not to a
// thread; every use binds the context first.
unsafe impl Send for AssemblyKernel {}
unsafe impl Sync for AssemblyKernel {}

impl Drop for AssemblyKernel {
    fn drop(&mut self) {
        let (ctx, module) = (&self.ctx, self.module);
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let _ = ctx.bind_to_thread();
            // SAFETY: launches synchronise before returning; nothing else uses the module.
            let _ = unsafe { result::module::unload(module) };
        }));
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
