/**
 * Owners of native handles: arrays, buffers and progress counters. Each
 * frees its handle on `[Symbol.dispose]()`, with a `FinalizationRegistry`
 * as a safety net for handles users forget.
 * @module
 */

import { Aborted, CudaError, errorFromStatus, Shutdown } from "./errors.ts";
import { native } from "./ffi.ts";

const ERROR_BYTES = 4096;

/** A caller-supplied buffer for native error messages. */
export function errorBuffer(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(ERROR_BYTES);
}

/** Throws the typed error for a non-zero native status. */
export function check(status: number, err: Uint8Array): void {
  if (status === 0) return;
  const end = err.indexOf(0);
  const message = new TextDecoder().decode(err.subarray(0, end < 0 ? err.length : end));
  throw errorFromStatus(status, message);
}

/** Reads the pointer a native call wrote into a one-slot output. */
export function takePointer(slot: BigUint64Array): Deno.PointerObject {
  const pointer = Deno.UnsafePointer.create(slot[0]);
  if (pointer === null) throw new Shutdown("native call returned a null handle");
  return pointer;
}

const arrayRegistry = new FinalizationRegistry<Deno.PointerObject>((p) =>
  native().tessera_array_free(p)
);
const bufferRegistry = new FinalizationRegistry<Deno.PointerObject>((p) =>
  native().tessera_buffer_free(p)
);
const progressRegistry = new FinalizationRegistry<Deno.PointerObject>((p) =>
  native().tessera_progress_free(p)
);

/**
 * Counters of a native call; see rust/src/progress.rs.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * using view = await img.scan().collect({
 *   onProgress: (c) => console.log(c.outerDone, c.outerTotal, c.bytesRead, c.bytesDecoded),
 * });
 * ```
 */
export interface Counters {
  /** Outer chunks (shards or plain chunks) the call visits. */
  outerTotal: number;
  /** Outer chunks finished. */
  outerDone: number;
  /** Chunks (inner chunks of shards) the selection touches. */
  chunksTouched: number;
  /** Touched chunks that are stored; the rest read as the fill value. */
  chunksStored: number;
  /** Bytes read from storage, shard indexes included. */
  bytesRead: number;
  /** Read operations issued (merged ranges count once). */
  readOps: number;
  /** Bytes produced by decoding. */
  bytesDecoded: number;
  /** Bytes written to storage. */
  bytesWritten: number;
}

/** Progress counters a long native call updates while it runs. */
export class NativeProgress implements Disposable {
  #pointer: Deno.PointerObject | null;

  /** Allocates zeroed counters. */
  constructor() {
    this.#pointer = native().tessera_progress_new();
    if (this.#pointer) progressRegistry.register(this, this.#pointer, this);
  }

  /** The native handle. */
  get pointer(): Deno.PointerObject {
    if (!this.#pointer) throw new Shutdown("progress counters were disposed");
    return this.#pointer;
  }

  /** A snapshot of the counters. */
  read(): Counters {
    const out = new BigUint64Array(8);
    native().tessera_progress_read(this.pointer, out, BigInt(out.length));
    const [
      outerTotal,
      outerDone,
      chunksTouched,
      chunksStored,
      bytesRead,
      readOps,
      bytesDecoded,
      bytesWritten,
    ] = Array.from(out, Number);
    return {
      outerTotal,
      outerDone,
      chunksTouched,
      chunksStored,
      bytesRead,
      readOps,
      bytesDecoded,
      bytesWritten,
    };
  }

  /** Asks the native call using these counters to stop at its next check (between chunks). */
  cancel(): void {
    native().tessera_progress_cancel(this.pointer);
  }

  /** Frees the counters; no call may still be using them. */
  [Symbol.dispose](): void {
    if (!this.#pointer) return;
    progressRegistry.unregister(this);
    native().tessera_progress_free(this.#pointer);
    this.#pointer = null;
  }
}

/** Options of {@link withProgress}. */
export interface ProgressOptions {
  /** Called with the counters every `intervalMs` while the call runs, and once at the end (also when aborted). */
  onProgress?: (counters: Counters) => void;
  /** Stops the call: it rejects with {@link Aborted} once the native work has stopped. */
  signal?: AbortSignal;
  /** What the call does, for the {@link Aborted} message (e.g. "read of /data/x.zarr"). */
  what?: string;
  /** Polling interval of `onProgress` (default 200 ms). */
  intervalMs?: number;
}

/** The error an aborted call rejects with. */
export function abortError(signal: AbortSignal, what = "call"): Aborted {
  return new Aborted(`${what} was aborted`, { cause: signal.reason });
}

/**
 * Runs `work` with fresh native counters when they are needed: polled into
 * `onProgress`, and cancelled when `signal` aborts (the native loops check
 * the flag between chunks and return, freeing their memory). An aborted
 * call rejects with {@link Aborted} even when the native work had already
 * finished (its result is then disposed).
 */
export async function withProgress<T>(
  work: (progress: NativeProgress | undefined) => Promise<T>,
  options: ProgressOptions = {},
): Promise<T> {
  const { onProgress, signal, what, intervalMs = 200 } = options;
  if (signal?.aborted) throw abortError(signal, what);
  if (!onProgress && !signal) return work(undefined);
  using progress = new NativeProgress();
  const cancel = () => progress.cancel();
  signal?.addEventListener("abort", cancel, { once: true });
  const timer = onProgress && setInterval(() => onProgress(progress.read()), intervalMs);
  try {
    let result: T;
    try {
      result = await work(progress);
    } catch (e) {
      if (!(signal?.aborted && e instanceof Aborted)) throw e;
      onProgress?.(progress.read()); // how far it got before it stopped
      throw abortError(signal, what);
    }
    onProgress?.(progress.read());
    if (signal?.aborted) {
      (result as Partial<Disposable> | undefined)?.[Symbol.dispose]?.();
      throw abortError(signal, what);
    }
    return result;
  } finally {
    clearInterval(timer);
    signal?.removeEventListener("abort", cancel);
  }
}

/**
 * Bytes held by live native buffers this library allocated (for leak checks).
 *
 * @example
 * ```ts
 * import { liveNativeBytes, open } from "@tessera/tessera";
 * const before = liveNativeBytes();
 * using img = await open("data/sample.ome.zarr");
 * {
 *   using view = await img.scan().select({ t: 0, c: 0, z: 0 }).collect();
 * }
 * console.log(liveNativeBytes() - before); // 0 once every view is disposed
 * ```
 */
export function liveNativeBytes(): number {
  return Number(native().tessera_buffer_live_bytes());
}

/**
 * A reference to a native, 64-byte aligned buffer, exposed to JavaScript
 * without a copy. Disposing it detaches its `ArrayBuffer`, so typed arrays
 * made from it become empty instead of pointing at freed memory; when it is
 * never disposed, the memory is freed once the `ArrayBuffer` is collected.
 */
export class NativeBuffer implements Disposable {
  #pointer: Deno.PointerObject | null;
  #data: Deno.PointerObject;
  #byteLength: number;
  #arrayBuffer: ArrayBuffer | undefined;
  #deviceOrdinal: number | undefined;

  /**
   * Takes ownership of a buffer handle; `data` and `byteLength` may be
   * passed when known (a retained reference to the same memory).
   */
  constructor(pointer: Deno.PointerObject, data?: Deno.PointerObject, byteLength?: number) {
    this.#pointer = pointer;
    const lib = native();
    this.#byteLength = byteLength ?? Number(lib.tessera_buffer_len(pointer));
    const start = data ?? lib.tessera_buffer_data(pointer);
    if (start === null) throw new Shutdown("native buffer has no data");
    this.#data = start;
    // Until an ArrayBuffer exists, this object is what keeps the memory alive.
    bufferRegistry.register(this, pointer, this);
  }

  /** Whether the buffer was disposed. */
  get disposed(): boolean {
    return this.#pointer === null;
  }

  /**
   * The bytes, zero-copy, made on first use. From then on the memory lives
   * as long as this ArrayBuffer is reachable (typed arrays over it included).
   * Throws once disposed.
   */
  get arrayBuffer(): ArrayBuffer {
    if (!this.#pointer) throw new Shutdown("tensor memory was released (view disposed)");
    if (!this.#arrayBuffer) {
      const ordinal = this.deviceOrdinal;
      if (ordinal >= 0) {
        throw new CudaError(
          `this tensor lives on cuda:${ordinal}: JavaScript cannot read it (use toDLPack())`,
        );
      }
      this.#arrayBuffer = Deno.UnsafePointerView.getArrayBuffer(this.#data, this.#byteLength);
      bufferRegistry.unregister(this);
      bufferRegistry.register(this.#arrayBuffer, this.#pointer, this);
    }
    return this.#arrayBuffer;
  }

  /** Where the memory lives: -1 for host memory, else the CUDA device ordinal. */
  get deviceOrdinal(): number {
    this.#deviceOrdinal ??= native().tessera_buffer_device(this.handle);
    return this.#deviceOrdinal;
  }

  /** Address of the first byte. */
  get pointer(): Deno.PointerObject {
    if (!this.#pointer) throw new Shutdown("tensor memory was released (view disposed)");
    return this.#data;
  }

  /** The native buffer handle (for calls that take the buffer itself). */
  get handle(): Deno.PointerObject {
    if (!this.#pointer) throw new Shutdown("tensor memory was released (view disposed)");
    return this.#pointer;
  }

  /** A new, independent reference to the same memory. */
  retain(): NativeBuffer {
    const pointer = native().tessera_buffer_retain(this.handle);
    if (pointer === null) throw new Shutdown("native buffer could not be retained");
    return new NativeBuffer(pointer, this.#data, this.#byteLength);
  }

  /** Copies a strided view (`[dtype, rank, offset, shape…, strides…]`) into a new C-order buffer. */
  async copyStrided(layout: BigInt64Array<ArrayBuffer>): Promise<NativeBuffer> {
    const slot = new BigUint64Array(1);
    const err = errorBuffer();
    check(
      await native().tessera_copy_strided(
        this.handle,
        layout,
        BigInt(layout.length),
        slot,
        err,
        BigInt(err.length),
      ),
      err,
    );
    return new NativeBuffer(takePointer(slot));
  }

  /** Exports a view (`[dtype, rank, offset, shape…, strides…]`) as a DLPack managed tensor. */
  exportDLPack(
    layout: BigInt64Array<ArrayBuffer>,
    versioned: boolean,
    readOnly: boolean,
  ): Deno.PointerObject {
    const slot = new BigUint64Array(1);
    const err = errorBuffer();
    check(
      native().tessera_dlpack_export(
        this.handle,
        layout,
        BigInt(layout.length),
        versioned ? 1 : 0,
        readOnly ? 1 : 0,
        slot,
        err,
        BigInt(err.length),
      ),
      err,
    );
    return takePointer(slot);
  }

  /**
   * Takes ownership of another producer's DLPack managed tensor. Returns the
   * buffer (which calls the producer's deleter when its last reference goes)
   * and the layout words `[dtype, rank, offset, shape…, strides…]`.
   */
  static importDLPack(
    managed: Deno.PointerObject,
    versioned: boolean,
  ): { buffer: NativeBuffer; layout: number[] } {
    const slot = new BigUint64Array(1);
    const info = new BigInt64Array(3 + 2 * 32);
    const err = errorBuffer();
    check(
      native().tessera_dlpack_import(
        managed,
        versioned ? 1 : 0,
        slot,
        info,
        BigInt(info.length),
        err,
        BigInt(err.length),
      ),
      err,
    );
    const rank = Number(info[1]);
    return {
      buffer: new NativeBuffer(takePointer(slot)),
      layout: Array.from(info.subarray(0, 3 + 2 * rank), Number),
    };
  }

  /** Releases this reference and detaches the `ArrayBuffer`. */
  [Symbol.dispose](): void {
    if (!this.#pointer) return;
    bufferRegistry.unregister(this);
    this.#arrayBuffer?.transfer(0);
    native().tessera_buffer_free(this.#pointer);
    this.#pointer = null;
  }
}

/** A native array handle: a store folder plus its decoded metadata. */
export class NativeArray implements Disposable {
  #pointer: Deno.PointerObject | null;
  #inFlight = 0;
  #closing = false;
  /** The array's folder, for messages. */
  readonly root: string;

  /**
   * Opens `root` with a descriptor and fill value (see src/zarr/descriptor.ts);
   * with `remote`, the array at `remote.prefix` under a remote store handle
   * (src/remote.ts), `root` being its URL.
   */
  constructor(
    root: string,
    descriptor: BigInt64Array<ArrayBuffer>,
    fill: Uint8Array<ArrayBuffer>,
    remote?: { store: Deno.PointerObject; prefix: string },
  ) {
    this.root = root;
    const path = new TextEncoder().encode(remote ? remote.prefix : root);
    const slot = new BigUint64Array(1);
    const err = errorBuffer();
    const args = [
      path,
      BigInt(path.length),
      descriptor,
      BigInt(descriptor.length),
      fill,
      BigInt(fill.length),
      slot,
      err,
      BigInt(err.length),
    ] as const;
    check(
      remote
        ? native().tessera_remote_array_open(remote.store, ...args)
        : native().tessera_array_open(...args),
      err,
    );
    this.#pointer = takePointer(slot);
    arrayRegistry.register(this, this.#pointer, this);
  }

  /** Runs a nonblocking call; the handle stays alive until it settles. */
  async #call<T>(work: (handle: Deno.PointerObject) => Promise<T>): Promise<T> {
    if (!this.#pointer || this.#closing) throw new Shutdown(`array ${this.root} was closed`);
    this.#inFlight++;
    try {
      return await work(this.#pointer);
    } finally {
      this.#inFlight--;
      if (this.#closing && this.#inFlight === 0) this.#free();
    }
  }

  /** Runs a nonblocking call of another module that takes this handle; it stays alive until the call settles. */
  hold<T>(work: (handle: Deno.PointerObject) => Promise<T>): Promise<T> {
    return this.#call(work);
  }

  /** Reads a region request into a new buffer. */
  read(request: BigInt64Array<ArrayBuffer>, progress?: NativeProgress): Promise<NativeBuffer> {
    return this.#call(async (handle) => {
      const slot = new BigUint64Array(1);
      const err = errorBuffer();
      const status = await native().tessera_read(
        handle,
        request,
        BigInt(request.length),
        progress?.pointer ?? null,
        slot,
        err,
        BigInt(err.length),
      );
      check(status, err);
      return new NativeBuffer(takePointer(slot));
    });
  }

  /** Counts what reading a region request would touch. */
  explain(request: BigInt64Array<ArrayBuffer>): Promise<Counters> {
    return this.#call(async (handle) => {
      using progress = new NativeProgress();
      const err = errorBuffer();
      const status = await native().tessera_explain(
        handle,
        request,
        BigInt(request.length),
        progress.pointer,
        err,
        BigInt(err.length),
      );
      check(status, err);
      return progress.read();
    });
  }

  /** Writes a chunk-aligned box (`[origin…, shape…]`) of C-order data. */
  writeRegion(
    data: ArrayBufferView<ArrayBuffer>,
    box: BigInt64Array<ArrayBuffer>,
    progress?: NativeProgress,
  ): Promise<void> {
    return this.#call(async (handle) => {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const err = errorBuffer();
      const status = await native().tessera_write_region(
        handle,
        bytes,
        BigInt(bytes.length),
        box,
        BigInt(box.length),
        progress?.pointer ?? null,
        err,
        BigInt(err.length),
      );
      check(status, err);
    });
  }

  /** Closes the handle once calls in flight settle; later calls throw {@link Shutdown}. */
  [Symbol.dispose](): void {
    this.#closing = true;
    if (this.#inFlight === 0) this.#free();
  }

  #free(): void {
    if (!this.#pointer) return;
    arrayRegistry.unregister(this);
    native().tessera_array_free(this.#pointer);
    this.#pointer = null;
  }
}

/** Block-mean downsampling of a C-order array (`[dtype, rank, shape…, factors…]`). */
export async function downsample(
  data: ArrayBufferView<ArrayBuffer>,
  descriptor: BigInt64Array<ArrayBuffer>,
): Promise<NativeBuffer> {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const slot = new BigUint64Array(1);
  const err = errorBuffer();
  const status = await native().tessera_downsample(
    bytes,
    BigInt(bytes.length),
    descriptor,
    BigInt(descriptor.length),
    slot,
    err,
    BigInt(err.length),
  );
  check(status, err);
  return new NativeBuffer(takePointer(slot));
}
