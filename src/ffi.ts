/**
 * The one symbol table of the native library and its loading.
 *
 * The library is found by, in order: the `TESSERA_LIB` environment
 * variable, `rust/target/release` of this checkout, and the folder of the
 * running executable (for `deno compile --include`).
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { TesseraError } from "./errors.ts";

/** ABI version this TypeScript expects (rust/src/ffi.rs `ABI_VERSION`). */
export const ABI_VERSION = 4;

/** Symbols of the native library. */
export const symbols = {
  tessera_abi_version: { parameters: [], result: "u32" },
  tessera_array_open: {
    parameters: [
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "buffer",
      "usize",
    ],
    result: "i32",
  },
  tessera_array_free: { parameters: ["pointer"], result: "void" },
  tessera_read: {
    parameters: ["pointer", "buffer", "usize", "pointer", "buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  tessera_explain: {
    parameters: ["pointer", "buffer", "usize", "pointer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  tessera_write_region: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "pointer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  tessera_downsample: {
    parameters: ["buffer", "usize", "buffer", "usize", "buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  tessera_buffer_data: { parameters: ["pointer"], result: "pointer" },
  tessera_buffer_len: { parameters: ["pointer"], result: "usize" },
  tessera_buffer_free: { parameters: ["pointer"], result: "void" },
  tessera_buffer_retain: { parameters: ["pointer"], result: "pointer" },
  tessera_copy_strided: {
    parameters: ["pointer", "buffer", "usize", "buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  tessera_dlpack_export: {
    parameters: ["pointer", "buffer", "usize", "u32", "u32", "buffer", "buffer", "usize"],
    result: "i32",
  },
  tessera_arrow_export: {
    parameters: [
      "pointer",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "buffer",
      "buffer",
      "usize",
    ],
    result: "i32",
  },
  tessera_dlpack_import: {
    parameters: ["pointer", "u32", "buffer", "buffer", "usize", "buffer", "usize"],
    result: "i32",
  },
  tessera_progress_new: { parameters: [], result: "pointer" },
  tessera_progress_read: { parameters: ["pointer", "buffer", "usize"], result: "void" },
  tessera_progress_free: { parameters: ["pointer"], result: "void" },
  // Thumbnails (src/render.ts).
  tessera_render_png: {
    parameters: [
      "pointer",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "buffer",
      "usize",
    ],
    result: "i32",
    nonblocking: true,
  },
  // cancellation and leak checks
  tessera_progress_cancel: { parameters: ["pointer"], result: "void" },
  tessera_buffer_live_bytes: { parameters: [], result: "u64" },
  // OME-Arrow sources (src/omearrow.ts)
  tessera_omearrow_open: {
    parameters: ["buffer", "usize", "u64", "buffer", "usize", "buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  tessera_omearrow_meta: { parameters: ["pointer", "buffer", "usize"], result: "usize" },
  tessera_omearrow_read: {
    parameters: ["pointer", "buffer", "usize", "pointer", "buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  tessera_omearrow_explain: {
    parameters: ["pointer", "buffer", "usize", "pointer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  tessera_omearrow_free: { parameters: ["pointer"], result: "void" },
  tessera_omearrow_write: {
    parameters: [
      "buffer",
      "usize",
      "pointer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "buffer",
      "usize",
      "buffer",
      "usize",
    ],
    result: "i32",
    nonblocking: true,
  },
  // Arrow C Data Interface import (src/arrow_import.ts)
  tessera_arrow_import: {
    parameters: ["pointer", "pointer", "buffer", "buffer", "buffer", "usize", "buffer", "usize"],
    result: "i32",
  },
  // Streaming pipeline (rust/src/batch.rs, src/pipeline.ts).
  tessera_batch_executor_new: {
    parameters: ["u32", "buffer", "buffer", "usize"],
    result: "i32",
  },
  tessera_batch_executor_free: { parameters: ["pointer"], result: "void" },
  tessera_batch_assemble: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  tessera_batch_live_bytes: { parameters: ["pointer"], result: "u64" },
  tessera_batch_stats: { parameters: ["pointer", "buffer", "usize"], result: "void" },
  tessera_buffer_device: { parameters: ["pointer"], result: "i32" },
  // Streaming pipeline on CUDA (rust/src/device_exec.rs, src/pipeline.ts).
  tessera_cuda_assembler_new: {
    parameters: ["u32", "u64", "buffer", "buffer", "usize"],
    result: "i32",
  },
  tessera_cuda_assembler_free: { parameters: ["pointer"], result: "void" },
  tessera_cuda_assemble: {
    parameters: [
      "pointer",
      "pointer",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "buffer",
      "usize",
    ],
    result: "i32",
    nonblocking: true,
  },
  tessera_cuda_assembler_counters: {
    parameters: ["pointer", "buffer", "usize"],
    result: "void",
  },
  // Remote stores (S3, HTTP) and the shard-index cache: src/remote.ts.
  tessera_remote_open: {
    parameters: [
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "buffer",
      "usize",
    ],
    result: "i32",
  },
  tessera_remote_free: { parameters: ["pointer"], result: "void" },
  tessera_remote_get: {
    parameters: ["pointer", "buffer", "usize", "buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  tessera_remote_array_open: {
    parameters: [
      "pointer",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "buffer",
      "usize",
    ],
    result: "i32",
  },
  tessera_remote_invalidate: { parameters: ["buffer", "usize"], result: "u64" },
  tessera_index_cache_configure: { parameters: ["u64"], result: "void" },
  tessera_index_cache_stats: { parameters: ["buffer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The bound native functions. */
export type Native = Deno.DynamicLibrary<typeof symbols>["symbols"];

/** File name of the library on this platform. */
export function libraryFileName(os: typeof Deno.build.os = Deno.build.os): string {
  if (os === "windows") return "tessera.dll";
  return os === "darwin" ? "libtessera.dylib" : "libtessera.so";
}

/**
 * Places the library is looked for, in order: `TESSERA_LIB`; the module's
 * own `../rust/target/release/` (a checkout, or inside an executable made
 * by `deno compile --include rust/target/release/<lib>`, where the embedded
 * copy keeps that path under the executable's virtual root and is
 * extracted when loaded); the folder of the running executable (the
 * portable build of `deno task compile`, whose `deno` sits beside the
 * library).
 */
export function libraryCandidates(
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
  execPath: string = Deno.execPath(),
  moduleUrl: string = import.meta.url,
): string[] {
  const name = libraryFileName();
  const fromEnv = env("TESSERA_LIB");
  const checkout = new URL(`../rust/target/release/${name}`, moduleUrl);
  return [
    ...(fromEnv ? [fromEnv] : []),
    ...(checkout.protocol === "file:" ? [fileURLToPath(checkout)] : []),
    join(dirname(execPath), name),
  ];
}

let loaded: Native | undefined;

/** The native library, loaded on first use. */
export function native(): Native {
  if (loaded) return loaded;
  const candidates = libraryCandidates();
  const path = candidates.find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (!path) {
    throw new TesseraError(
      `native library ${libraryFileName()} not found (looked in: ${candidates.join(", ")}); ` +
        "build it with `deno task build` (cargo build --release in rust/) or set TESSERA_LIB",
    );
  }
  const library = Deno.dlopen(path, symbols);
  const version = library.symbols.tessera_abi_version();
  if (version !== ABI_VERSION) {
    library.close();
    throw new TesseraError(
      `native library ${path} has ABI version ${version}, expected ${ABI_VERSION}; rebuild it`,
    );
  }
  loaded = library.symbols;
  return loaded;
}
