/**
 * Creating Zarr v3 arrays (plain or sharded, zstd) and writing
 * chunk-aligned boxes of them.
 * @module
 */

import { isV2Node } from "./v2.ts";
import { join } from "node:path";
import { type AnyTypedArray, type DType, dtypeSize, type FillValue, parseDType } from "../dtype.ts";
import { InvalidArgument, StorageError } from "../errors.ts";
import { type Counters, NativeArray, withProgress } from "../native.ts";
import { encodeDescriptor } from "./descriptor.ts";
import { type ArrayMetadata, parseNode } from "./metadata.ts";
import { clearIncomplete, Coverage, markIncomplete } from "./incomplete.ts";
import { isRemote } from "../remote.ts";

/**
 * Options of {@link createArray}.
 *
 * @example
 * ```ts
 * import type { CreateArrayOptions } from "@tessera/tessera";
 * const options: CreateArrayOptions = {
 *   shape: [1000, 1000],
 *   dtype: "float32",
 *   chunks: [256, 256],
 *   fillValue: Number.NaN,
 *   zstdLevel: 5,
 * };
 * ```
 */
export interface CreateArrayOptions {
  /** Array shape. */
  shape: number[];
  /** Element type (not bfloat16: Zarr v3 has none). */
  dtype: DType;
  /** Chunk shape; with `shards`, the inner chunk shape. */
  chunks: number[];
  /** Shard shape (a multiple of `chunks`); omit for unsharded chunks. */
  shards?: number[];
  /** Fill value of missing chunks (default 0, or false for bool). */
  fillValue?: FillValue;
  /** zstd level, or null for uncompressed chunks (default 3). */
  zstdLevel?: number | null;
  /** Byte order of stored elements (default little). */
  endian?: "little" | "big";
  /** Names of the dimensions. */
  dimensionNames?: string[];
  /** User attributes. */
  attributes?: Record<string, unknown>;
  /** Replace an existing Zarr node at the path (never anything else). Default false. */
  overwrite?: boolean;
}

/**
 * Options of {@link ZarrArrayWriter.write}.
 *
 * @example
 * ```ts
 * import { createArray } from "@tessera/tessera";
 * using writer = await createArray("out.zarr", { shape: [256, 256], dtype: "uint8", chunks: [64, 64] });
 * await writer.write(new Uint8Array(256 * 256), [0, 0], [256, 256], {
 *   onProgress: (c) => console.log(c.bytesWritten),
 * });
 * ```
 */
export interface WriteOptions {
  /** Called with progress counters while writing, and once at the end. */
  onProgress?: (counters: Counters) => void;
  /** Stops the write between chunks; it then rejects with `Aborted` (see the incomplete marker). */
  signal?: AbortSignal;
}

/**
 * Checks that `path` may be written: absent, or a Zarr node the caller asked
 * to replace. Returns whether something is there (to be replaced).
 */
export async function checkTarget(path: string, overwrite: boolean): Promise<boolean> {
  if (isRemote(path)) {
    throw new InvalidArgument(`${path}: remote stores are read-only; write to a local path`);
  }
  let info: Deno.FileInfo | undefined;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new StorageError(`${path}: ${(e as Error).message}`);
    }
  }
  if (info) {
    if (!overwrite) {
      throw new InvalidArgument(`${path} already exists; pass overwrite: true to replace it`);
    }
    const hasV3 = await Deno.stat(join(path, "zarr.json")).then((i) => i.isFile, () => false);
    const isZarr = hasV3 || await isV2Node(path);
    if (!info.isDirectory || !isZarr) {
      throw new InvalidArgument(`${path} exists and is not a Zarr store; refusing to replace it`);
    }
  }
  return info !== undefined;
}

/** Makes sure `path` is free to write: absent, or a Zarr node the caller asked to replace. */
export async function prepareTarget(path: string, overwrite: boolean): Promise<void> {
  if (await checkTarget(path, overwrite)) await Deno.remove(path, { recursive: true });
  await Deno.mkdir(path, { recursive: true });
}

function fillJson(dtype: DType, value: FillValue): unknown {
  if (dtype === "bool") return Boolean(value);
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : value;
  if (typeof value === "number" && !Number.isFinite(value)) {
    return Number.isNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
  }
  return value;
}

/** JSON text of metadata; bigints (64-bit fill values) are written as exact integers. */
export function stringifyMetadata(json: unknown): string {
  const raw = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
  return JSON.stringify(json, (_, v) => typeof v === "bigint" ? raw(v.toString()) : v, 2);
}

/** The `zarr.json` of a new array. */
export function arrayJson(options: CreateArrayOptions): Record<string, unknown> {
  const dtype = parseDType(options.dtype);
  if (dtype === "bfloat16") throw new InvalidArgument("bfloat16 cannot be stored in Zarr v3");
  const endian = dtype === "bool" || dtypeSize(dtype) === 1
    ? {}
    : { endian: options.endian ?? "little" };
  const level = options.zstdLevel === undefined ? 3 : options.zstdLevel;
  const compressors = level === null
    ? []
    : [{ name: "zstd", configuration: { level, checksum: false } }];
  const inner = [{ name: "bytes", configuration: endian }, ...compressors];
  const codecs = options.shards
    ? [{
      name: "sharding_indexed",
      configuration: {
        chunk_shape: options.chunks,
        codecs: inner,
        index_codecs: [{ name: "bytes", configuration: { endian: "little" } }, { name: "crc32c" }],
        index_location: "end",
      },
    }]
    : inner;
  return {
    zarr_format: 3,
    node_type: "array",
    shape: options.shape,
    data_type: dtype,
    chunk_grid: {
      name: "regular",
      configuration: { chunk_shape: options.shards ?? options.chunks },
    },
    chunk_key_encoding: { name: "default", configuration: { separator: "/" } },
    fill_value: fillJson(dtype, options.fillValue ?? (dtype === "bool" ? false : 0)),
    codecs,
    ...(options.dimensionNames ? { dimension_names: options.dimensionNames } : {}),
    attributes: options.attributes ?? {},
  };
}

/**
 * A Zarr array open for writing.
 *
 * @example
 * ```ts
 * import { createArray } from "@tessera/tessera";
 * using writer = await createArray("out.zarr", { shape: [128, 128], dtype: "int16", chunks: [64, 64] });
 * await writer.write(new Int16Array(64 * 128), [64, 0], [64, 128]); // the lower half
 * await writer.finish(); // the upper half reads as the fill value
 * ```
 */
export class ZarrArrayWriter implements Disposable {
  /**
   * Validated metadata of the array.
   * Internal: for tessera's own modules.
   * @ignore
   */
  readonly metadata: ArrayMetadata;
  #native: NativeArray;
  #coverage?: Coverage;
  #inFlight = 0;
  #marker: Promise<void> = Promise.resolve();
  #marked = false;
  /** Boxes (`origin|shape`) whose last write failed. */
  readonly #failed = new Set<string>();

  /** Use {@link createArray}. */
  constructor(metadata: ArrayMetadata) {
    this.metadata = metadata;
    this.#native = new NativeArray(metadata.path, encodeDescriptor(metadata), metadata.fill);
  }

  /**
   * The native handle (for reading back what was written).
   * Internal: for tessera's own modules.
   * @ignore
   */
  get native(): NativeArray {
    return this.#native;
  }

  /**
   * Writes C-order `data` as the box at `origin` (default: all zeros) with
   * `shape` (default: the whole array). The box must start on chunk (shard)
   * boundaries and end on one or at the array's edge.
   */
  async write(
    data: AnyTypedArray,
    origin: number[] = this.metadata.shape.map(() => 0),
    shape: number[] = this.metadata.shape,
    options: WriteOptions = {},
  ): Promise<void> {
    const { dtype, path } = this.metadata;
    const expected = shape.reduce((a, b) => a * b, 1) * dtypeSize(dtype);
    if (data.byteLength !== expected) {
      throw new InvalidArgument(
        `${path}: data has ${data.byteLength} bytes, a box of shape [${shape}] of ${dtype} needs ${expected}`,
      );
    }
    const box = BigInt64Array.from([...origin, ...shape], BigInt);
    const { chunkShape } = this.metadata;
    const coverage = this.#coverage ??= new Coverage(this.metadata.shape, chunkShape);
    this.#inFlight++;
    try {
      // The marker is in place before any chunk is written, and the box
      // counts as unwritten until its write succeeds.
      await this.#setMarker(true);
      coverage.set(origin, shape, chunkShape, false);
      await withProgress((progress) => this.#native.writeRegion(data, box, progress), {
        onProgress: options.onProgress,
        signal: options.signal,
        what: `write of ${path}`,
      });
      coverage.set(origin, shape, chunkShape, true);
      this.#failed.delete(`${origin}|${shape}`);
    } catch (e) {
      this.#failed.add(`${origin}|${shape}`);
      throw e;
    } finally {
      if (--this.#inFlight === 0 && coverage.complete) await this.#setMarker(false);
    }
  }

  /**
   * Declares the array complete although some chunks were never written
   * (they read as the fill value), removing the incomplete marker. Only
   * arrays written in part on purpose need it: the marker goes by itself
   * once every chunk was written. Refused while writes are in flight or
   * when a box's last write failed (write it again first).
   *
   * @example
   * ```ts
   * import { createArray } from "@tessera/tessera";
   * using writer = await createArray("sparse.zarr", { shape: [128, 128], dtype: "uint8", chunks: [64, 64] });
   * await writer.write(new Uint8Array(64 * 64).fill(7), [0, 0], [64, 64]);
   * await writer.finish(); // the other three chunks read as the fill value
   * ```
   */
  async finish(): Promise<void> {
    const path = this.metadata.path;
    if (this.#inFlight > 0) {
      throw new InvalidArgument(`${path}: finish() while ${this.#inFlight} write(s) are in flight`);
    }
    if (this.#failed.size > 0) {
      const [box] = this.#failed;
      throw new StorageError(
        `${path}: finish() after a failed write (box origin|shape ${box}); write it again first`,
      );
    }
    await this.#setMarker(false);
  }

  /**
   * Puts (or removes) the incomplete marker; operations run one at a time,
   * in call order. The marker stays while any chunk has not been written
   * by a write that succeeded.
   */
  #setMarker(on: boolean): Promise<void> {
    const path = this.metadata.path;
    this.#marker = this.#marker.catch(() => {}).then(async () => {
      if (on === this.#marked) return;
      await (on ? markIncomplete(path, `array ${path}`) : clearIncomplete(path));
      this.#marked = on;
    });
    return this.#marker;
  }

  /** Closes the native handle. */
  [Symbol.dispose](): void {
    this.#native[Symbol.dispose]();
  }
}

/**
 * Creates a Zarr v3 array at `path` and returns a writer for it. An
 * existing path is an error unless `overwrite` is set and it is a Zarr node.
 *
 * @example
 * ```ts
 * import { createArray } from "@tessera/tessera";
 * using writer = await createArray("out.zarr", {
 *   shape: [64, 512, 512],
 *   dtype: "uint16",
 *   chunks: [16, 128, 128],
 *   shards: [64, 512, 512],
 *   dimensionNames: ["z", "y", "x"],
 * });
 * await writer.write(new Uint16Array(64 * 512 * 512));
 * ```
 */
export async function createArray(
  path: string,
  options: CreateArrayOptions,
): Promise<ZarrArrayWriter> {
  const json = arrayJson(options);
  let node;
  try {
    node = parseNode(json, path, join(path, "zarr.json"));
  } catch (e) {
    throw new InvalidArgument(`createArray options: ${(e as Error).message}`);
  }
  if (node.kind !== "array") throw new StorageError(`${path}: not an array`);
  await prepareTarget(path, options.overwrite ?? false);
  await Deno.writeTextFile(join(path, "zarr.json"), stringifyMetadata(json));
  return new ZarrArrayWriter(node.array);
}
