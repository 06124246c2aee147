/**
 * OME-Arrow sources: an image stored as an OME-Arrow record (a struct
 * column with `pixels_meta` and pixel planes or chunks) in a Parquet or
 * Arrow IPC file, opened as an {@link Image} with axes t, c, z, y, x that
 * every query feature works on. The native library reads the file
 * (rust/src/omearrow).
 * @module
 */

import { type DType, dtypeSize } from "./dtype.ts";
import { errorFromStatus, InvalidArgument, Shutdown } from "./errors.ts";
import { native } from "./ffi.ts";
import { Image, type LevelReader, type OpenOptions } from "./image.ts";
import { type Counters, NativeBuffer, NativeProgress } from "./native.ts";
import type { Axis, Channel } from "./ngff.ts";
import type { ArrayMetadata } from "./zarr/metadata.ts";

/**
 * What the native reader says about a record.
 *
 * @example
 * ```ts
 * import { type OmeArrowRecordInfo, openOmeArrow } from "@tessera/tessera";
 * using img = await openOmeArrow("image.ome.parquet");
 * const info: OmeArrowRecordInfo = img.record;
 * console.log(info.format, info.storage, info.rows);
 * ```
 */
export interface OmeArrowRecordInfo {
  /** Container format. */
  format: "parquet" | "ipc";
  /** Name of the record column. */
  column: string;
  /** Records (rows) in the file. */
  rows: number;
  /** The opened row. */
  row: number;
  /** Where the pixels are: numeric chunk lists, typed chunk bytes, or planes. */
  storage: "chunks" | "chunk-bytes" | "planes";
  /** Number of chunks or planes. */
  pieces: number;
  /** Chunk shape (z, y, x) of chunked records. */
  chunkShape: number[] | null;
  /** Whether the pieces cover the whole image (else the rest reads as 0). */
  covered: boolean;
  /** `pixels_meta.type` as written. */
  declaredType: string;
  /** Record name, when given. */
  name: string | null;
  /** Record id, when given. */
  id: string | null;
}

interface NativeMeta extends Omit<OmeArrowRecordInfo, "row"> {
  shape: number[];
  dtype: DType;
  physical: { size: number | null; unit: string | null }[];
  channels: { id: string | null; name: string | null; color: number | null }[];
}

const ERROR_BYTES = 4096;
const registry = new FinalizationRegistry<Deno.PointerObject>((p) =>
  native().tessera_omearrow_free(p)
);

function check(status: number, err: Uint8Array): void {
  if (status === 0) return;
  const end = err.indexOf(0);
  throw errorFromStatus(
    status,
    new TextDecoder().decode(err.subarray(0, end < 0 ? undefined : end)),
  );
}

/** A native OME-Arrow record handle; reads region requests over (t, c, z, y, x). */
class NativeOmeArrow implements LevelReader {
  #pointer: Deno.PointerObject | null;
  #inFlight = 0;
  #closing = false;
  readonly #path: string;

  constructor(pointer: Deno.PointerObject, path: string) {
    this.#pointer = pointer;
    this.#path = path;
    registry.register(this, pointer, this);
  }

  /** The OME-Arrow file read. */
  get root(): string {
    return this.#path;
  }

  meta(): NativeMeta {
    const lib = native();
    const n = Number(lib.tessera_omearrow_meta(this.#handle(), null, 0n));
    const buf = new Uint8Array(n);
    lib.tessera_omearrow_meta(this.#handle(), buf, BigInt(n));
    return JSON.parse(new TextDecoder().decode(buf));
  }

  #handle(): Deno.PointerObject {
    if (!this.#pointer || this.#closing) throw new Shutdown(`${this.#path} was closed`);
    return this.#pointer;
  }

  async #call<T>(work: (handle: Deno.PointerObject) => Promise<T>): Promise<T> {
    const handle = this.#handle();
    this.#inFlight++;
    try {
      return await work(handle);
    } finally {
      this.#inFlight--;
      if (this.#closing && this.#inFlight === 0) this.#free();
    }
  }

  read(request: BigInt64Array<ArrayBuffer>, progress?: NativeProgress): Promise<NativeBuffer> {
    return this.#call(async (handle) => {
      const slot = new BigUint64Array(1);
      const err = new Uint8Array(ERROR_BYTES);
      check(
        await native().tessera_omearrow_read(
          handle,
          request,
          BigInt(request.length),
          progress?.pointer ?? null,
          slot,
          err,
          BigInt(err.length),
        ),
        err,
      );
      const pointer = Deno.UnsafePointer.create(slot[0]);
      if (pointer === null) throw new Shutdown("native read returned a null buffer");
      return new NativeBuffer(pointer);
    });
  }

  explain(request: BigInt64Array<ArrayBuffer>): Promise<Counters> {
    return this.#call(async (handle) => {
      using progress = new NativeProgress();
      const err = new Uint8Array(ERROR_BYTES);
      check(
        await native().tessera_omearrow_explain(
          handle,
          request,
          BigInt(request.length),
          progress.pointer,
          err,
          BigInt(err.length),
        ),
        err,
      );
      return progress.read();
    });
  }

  [Symbol.dispose](): void {
    this.#closing = true;
    if (this.#inFlight === 0) this.#free();
  }

  #free(): void {
    if (!this.#pointer) return;
    registry.unregister(this);
    native().tessera_omearrow_free(this.#pointer);
    this.#pointer = null;
  }
}

/**
 * An image opened from an OME-Arrow record; queries work as on OME-Zarr.
 *
 * @example
 * ```ts
 * import { open, OmeArrowImage } from "@tessera/tessera";
 * using img = await open("image.ome.parquet");
 * if (img instanceof OmeArrowImage) console.log(img.record.column, img.axes); // ["t","c","z","y","x"]
 * ```
 */
export class OmeArrowImage extends Image {
  /** Where the record came from and how its pixels are stored. */
  readonly record: OmeArrowRecordInfo;
  #reader: NativeOmeArrow | null;

  /** Use {@link open} (or {@link openOmeArrow}). */
  constructor(source: string, reader: NativeOmeArrow, meta: NativeMeta, row: number) {
    const units = meta.physical.map((p) => p.unit ?? undefined);
    const axisInfo: Axis[] = [
      { name: "t", type: "time" },
      { name: "c", type: "channel" },
      ...["z", "y", "x"].map((name, i) => ({
        name,
        type: "space",
        ...(units[i] ? { unit: units[i] } : {}),
      })),
    ];
    const array: ArrayMetadata = {
      path: source,
      shape: meta.shape,
      dtype: meta.dtype,
      chunkShape: [1, 1, ...(meta.chunkShape ?? [1, meta.shape[3], meta.shape[4]])],
      fill: new Uint8Array(dtypeSize(meta.dtype)),
      keyEncoding: { name: "default", separator: "/" },
      codecs: [],
      attributes: {},
    };
    const scale = [1, 1, ...meta.physical.map((p) => p.size ?? 1)];
    const channels: Channel[] | undefined = meta.channels.length === meta.shape[1]
      ? meta.channels.map((c) => ({
        ...(c.name !== null ? { name: c.name } : {}),
        ...(c.color !== null ? { color: (c.color >>> 8).toString(16).padStart(6, "0") } : {}),
      }))
      : undefined;
    super(source, [array], [{ path: ".", shape: meta.shape, scale }], axisInfo, channels);
    this.#reader = reader;
    const { shape: _s, dtype: _d, physical: _p, channels: _c, ...info } = meta;
    this.record = { ...info, row };
  }

  /**
   * The one level reads through the record handle.
   * @ignore
   */
  protected override openLevel(level: number): LevelReader {
    if (level !== 0 || !this.#reader) throw new Shutdown(`image ${this.source} was closed`);
    const reader = this.#reader;
    this.#reader = null;
    return reader;
  }

  /** Closes the record handle; reads in flight finish first. */
  override [Symbol.dispose](): void {
    this.#reader?.[Symbol.dispose]();
    this.#reader = null;
    super[Symbol.dispose]();
  }
}

/**
 * Opens row `options.row` (default 0) of the OME-Arrow record column
 * `options.column` (default: the first struct column with OME-Arrow
 * fields) of a Parquet or Arrow IPC file at local path `path`.
 *
 * @example
 * ```ts
 * import { openOmeArrow } from "@tessera/tessera";
 * using img = await openOmeArrow("plates.ome.parquet", { row: 2 });
 * using roi = await img.scan().select({ t: 0, z: 0, y: [0, 256], x: [0, 256] }).collect();
 * ```
 */
export async function openOmeArrow(
  path: string,
  options: OpenOptions = {},
): Promise<OmeArrowImage> {
  const row = options.row ?? 0;
  if (!Number.isSafeInteger(row) || row < 0) {
    throw new InvalidArgument(`${path}: row ${row} must be a non-negative integer`);
  }
  if (options.column !== undefined && typeof options.column !== "string") {
    throw new InvalidArgument(`${path}: column must be a string`);
  }
  const enc = new TextEncoder();
  const pathBytes = enc.encode(path);
  const column = enc.encode(options.column ?? "");
  const slot = new BigUint64Array(1);
  const err = new Uint8Array(ERROR_BYTES);
  check(
    await native().tessera_omearrow_open(
      pathBytes,
      BigInt(pathBytes.length),
      BigInt(row),
      column,
      BigInt(column.length),
      slot,
      err,
      BigInt(err.length),
    ),
    err,
  );
  const pointer = Deno.UnsafePointer.create(slot[0]);
  if (pointer === null) throw new Shutdown("native open returned a null handle");
  const reader = new NativeOmeArrow(pointer, path);
  try {
    return new OmeArrowImage(path, reader, reader.meta(), row);
  } catch (e) {
    reader[Symbol.dispose]();
    throw e;
  }
}
