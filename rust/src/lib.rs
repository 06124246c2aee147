//! tessera's data plane: reads, decodes and assembles regions of Zarr v3
//! arrays (plain chunks and `sharding_indexed`) into tensors, and writes
//! them. TypeScript resolves metadata and queries into numeric descriptors
//! and calls the C ABI in [`ffi`]; this crate moves the bytes.

pub mod arrow;
pub mod arrow_import;
pub mod assemble;
pub mod batch;
pub mod blosc;
pub mod blosc_plan;
pub mod buffer;
pub mod cast;
pub mod codec;
pub mod cuda;
pub mod device_batch;
pub mod device_exec;
pub mod device_plan;
pub mod dlpack;
pub mod downsample;
pub mod dtype;
pub mod error;
pub mod ffi;
pub mod fuzz_entry;
pub mod index_cache;
pub mod nvcomp;
pub mod nvrtc;
pub mod omearrow;
pub mod pinned;
pub mod prefetch;
pub mod progress;
pub mod read;
pub mod region;
pub mod remote;
pub mod render;
pub mod shard;
pub mod spec;
pub mod storage;
pub mod store;
pub mod strided;
pub mod write;

use std::sync::OnceLock;

/// The worker pool for decoding and encoding. Its size is
/// `TESSERA_THREADS` when set, else the number of available cores.
pub fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::env::var("TESSERA_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("tessera-{i}"))
            .build()
            .expect("building the worker pool")
    })
}
