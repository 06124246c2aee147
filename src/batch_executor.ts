/**
 * Owner of a native batch executor (rust/src/batch.rs): its worker pool,
 * batch assembly calls, live-bytes counter and per-stage totals.
 * @module
 */

import { Shutdown } from "./errors.ts";
import { native } from "./ffi.ts";
import { check, errorBuffer, type NativeArray, NativeBuffer, takePointer } from "./native.ts";

/** Native per-stage totals: thread time, bytes and count. */
export interface NativeStageTotals {
  /** Nanoseconds, summed over worker threads. */
  ns: number;
  /** Bytes handled. */
  bytes: number;
  /** Operations. */
  count: number;
}

/** Native totals of the stages the executor runs. */
export interface NativeStats {
  /** Descriptor parsing, allocation and chunk planning. */
  plan: NativeStageTotals;
  /** Opening and reading files. */
  io: NativeStageTotals;
  /** Decompression. */
  decode: NativeStageTotals;
  /** Copy with cast, and fills, into the batch. */
  assemble: NativeStageTotals;
  /** Host→device copies (CUDA batches). */
  transfer: NativeStageTotals;
}

const executorRegistry = new FinalizationRegistry<Deno.PointerObject>((p) =>
  native().tessera_batch_executor_free(p)
);
const assemblerRegistry = new FinalizationRegistry<Deno.PointerObject>((p) =>
  native().tessera_cuda_assembler_free(p)
);

/**
 * Counters of the device path (see rust/src/device_exec.rs), in `stats().cuda` of a CUDA pipeline.
 *
 * @example
 * ```ts
 * import { pipeline, type CudaCounters } from "@tessera/tessera";
 * const show = (c: CudaCounters) => console.log(c.nvcomp, c.deviceFrames, c.cpuChunks);
 * await using pipe = pipeline({ samplesPerBatch: 1, sampleShape: [8], dtype: "float32" });
 * const counters = pipe.stats().cuda; // undefined on the CPU
 * if (counters) show(counters);
 * ```
 */
export interface CudaCounters {
  /** nvCOMP version (major·1000 + minor·100 + patch); 0 when zstd chunks decode on the CPU. */
  nvcomp: number;
  /** zstd frames nvCOMP decoded (a raw zstd chunk is one; a blosc chunk one per stream). */
  deviceFrames: number;
  /** Chunks decoded on the device (by nvCOMP, or stored and only copied). */
  deviceChunks: number;
  /** Chunks decoded on the CPU (codecs the device cannot take, or no nvCOMP). */
  cpuChunks: number;
  /** Device bytes of staging (compressed and decoded chunks) kept for reuse. */
  stagingBytes: number;
  /** Device time of the decode step (nvCOMP and span copies), summed over batches. */
  deviceDecodeMs: number;
  /** Bytes nvCOMP decoded. */
  deviceDecodedBytes: number;
}

/**
 * A CUDA device opened for device-assembled batches: kernels compiled with
 * NVRTC, nvCOMP loaded when present. Opening throws {@link CudaError} when
 * no CUDA driver, device or libnvrtc exists.
 */
export class CudaAssembler implements Disposable {
  #pointer: Deno.PointerObject | null;
  /** The device ordinal. */
  readonly ordinal: number;

  /** Opens device `ordinal` for batches within `budget` device bytes (batches plus staging). */
  constructor(ordinal: number, budget: number) {
    const slot = new BigUint64Array(1);
    const err = errorBuffer();
    const status = native().tessera_cuda_assembler_new(
      ordinal,
      BigInt(Math.floor(budget)),
      slot,
      err,
      BigInt(err.length),
    );
    check(status, err);
    this.#pointer = takePointer(slot);
    this.ordinal = ordinal;
    assemblerRegistry.register(this, this.#pointer, this);
  }

  /** The native handle. */
  get handle(): Deno.PointerObject {
    if (!this.#pointer) throw new Shutdown(`cuda:${this.ordinal} was closed`);
    return this.#pointer;
  }

  /** Counters of the device path so far. */
  counters(): CudaCounters {
    const out = new BigUint64Array(7);
    if (this.#pointer) native().tessera_cuda_assembler_counters(this.#pointer, out, 7n);
    const [nvcomp, deviceFrames, cpuChunks, deviceChunks, stagingBytes, decodeNs, decodedBytes] =
      Array.from(out, Number);
    return {
      nvcomp,
      deviceFrames,
      deviceChunks,
      cpuChunks,
      stagingBytes,
      deviceDecodeMs: decodeNs / 1e6,
      deviceDecodedBytes: decodedBytes,
    };
  }

  /** Releases the device's staging and kernels; batches already made stay valid. */
  [Symbol.dispose](): void {
    if (!this.#pointer) return;
    assemblerRegistry.unregister(this);
    native().tessera_cuda_assembler_free(this.#pointer);
    this.#pointer = null;
  }
}

/** A native batch executor with its own pool of `threads` workers (0: default size). */
export class BatchExecutor implements Disposable {
  #pointer: Deno.PointerObject | null;

  /** Starts the executor's worker pool. */
  constructor(threads: number) {
    const slot = new BigUint64Array(1);
    const err = errorBuffer();
    check(native().tessera_batch_executor_new(threads, slot, err, BigInt(err.length)), err);
    this.#pointer = takePointer(slot);
    executorRegistry.register(this, this.#pointer, this);
  }

  get #handle(): Deno.PointerObject {
    if (!this.#pointer) throw new Shutdown("batch executor was closed");
    return this.#pointer;
  }

  /**
   * Assembles one batch (descriptor: rust/src/batch.rs `decode_desc`) from
   * `arrays`, each held open until the call settles: on the host, or on
   * the device of `cuda` (read, decoded and assembled there).
   */
  assemble(
    arrays: readonly NativeArray[],
    desc: BigInt64Array<ArrayBuffer>,
    cuda?: CudaAssembler,
  ): Promise<NativeBuffer> {
    const handle = this.#handle;
    const pointers = new BigUint64Array(arrays.length);
    const run = async (i: number): Promise<NativeBuffer> => {
      if (i < arrays.length) {
        return await arrays[i].hold((h) => {
          pointers[i] = BigInt(Deno.UnsafePointer.value(h));
          return run(i + 1);
        });
      }
      const slot = new BigUint64Array(1);
      const err = errorBuffer();
      const status = cuda
        ? await native().tessera_cuda_assemble(
          handle,
          cuda.handle,
          pointers,
          BigInt(pointers.length),
          desc,
          BigInt(desc.length),
          slot,
          err,
          BigInt(err.length),
        )
        : await native().tessera_batch_assemble(
          handle,
          pointers,
          BigInt(pointers.length),
          desc,
          BigInt(desc.length),
          slot,
          err,
          BigInt(err.length),
        );
      check(status, err);
      return new NativeBuffer(takePointer(slot));
    };
    return run(0);
  }

  /** Bytes of this executor's batches that are still alive (views or DLPack consumers hold them). */
  liveBytes(): number {
    return this.#pointer ? Number(native().tessera_batch_live_bytes(this.#pointer)) : 0;
  }

  /** Per-stage totals so far. */
  stats(): NativeStats {
    const out = new BigUint64Array(15);
    if (this.#pointer) native().tessera_batch_stats(this.#pointer, out, BigInt(out.length));
    const v = Array.from(out, Number);
    const stage = (i: number) => ({ ns: v[3 * i], bytes: v[3 * i + 1], count: v[3 * i + 2] });
    return {
      plan: stage(0),
      io: stage(1),
      decode: stage(2),
      assemble: stage(3),
      transfer: stage(4),
    };
  }

  /** Stops the worker pool; no call may be running. Batches already made stay valid. */
  [Symbol.dispose](): void {
    if (!this.#pointer) return;
    executorRegistry.unregister(this);
    native().tessera_batch_executor_free(this.#pointer);
    this.#pointer = null;
  }
}
