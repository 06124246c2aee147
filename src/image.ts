/**
 * Opening images: OME-NGFF groups (0.5 on Zarr v3, 0.4 on Zarr v2) and plain
 * Zarr v3 or v2 arrays.
 * @module
 */

import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { DType } from "./dtype.ts";
import { InvalidArgument, NotFound, Shutdown, StorageError } from "./errors.ts";
import { type Counters, NativeArray, type NativeBuffer, type NativeProgress } from "./native.ts";
import { type Axis, type Channel, type LevelInfo, parseNgff } from "./ngff.ts";
import { Query } from "./query.ts";
import { displayImage, type MediaBundle } from "./display.ts";
import { encodeDescriptor } from "./zarr/descriptor.ts";
import { isRemote, type RemoteOptions } from "./remote.ts";
import { ngffAxesOfLevel, omeAttributes, readLabelNames, readZarrNode } from "./zarr/hierarchy.ts";
import { type ArrayMetadata, readNode } from "./zarr/metadata.ts";
import { checkComplete } from "./zarr/incomplete.ts";
import { describeJson } from "./zarr/json.ts";

/**
 * Options of {@link open}.
 *
 * @example
 * ```ts
 * import { type OpenOptions, open } from "@tessera/tessera";
 * const options: OpenOptions = {};
 * using img = await open(new URL("file:///data/sample.ome.zarr"), options);
 * ```
 */
export interface OpenOptions extends RemoteOptions {
  /** OME-Arrow files: the row (record) to open, default 0. */
  row?: number;
  /** OME-Arrow files: the record column, default the first OME-Arrow struct column. */
  column?: string;
}

/** What reads region requests of one level: a Zarr array handle, or another source's reader. */
export interface LevelReader extends Disposable {
  /** The file or folder read, for messages. */
  readonly root: string;
  /** Reads a region request into a new buffer. */
  read(request: BigInt64Array<ArrayBuffer>, progress?: NativeProgress): Promise<NativeBuffer>;
  /** Counts what reading a region request would touch. */
  explain(request: BigInt64Array<ArrayBuffer>): Promise<Counters>;
}

/**
 * An opened image: metadata now, pixels through {@link Image.scan}.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * console.log(img.axes, img.shape, img.dtype, img.levels.length, img.channels);
 * ```
 */
export class Image implements Disposable {
  /** The path the image was opened from. */
  readonly source: string;
  /** Axis names, lower case, in store order (e.g. ["t","c","z","y","x"]). */
  readonly axes: string[];
  /** Axis details (type and unit) where the metadata gives them. */
  readonly axisInfo: Axis[];
  /** Shape of level 0. */
  readonly shape: number[];
  /** Element type as stored. */
  readonly dtype: DType;
  /** Resolution levels, finest first. */
  readonly levels: LevelInfo[];
  /** Channel names, when the metadata gives them. */
  readonly channels?: string[];
  /** Channel display metadata (omero), when given. */
  readonly channelInfo?: Channel[];
  /** OME-NGFF version, when the source is an NGFF image. */
  readonly ngffVersion?: string;
  /**
   * Names of the image's label images (its `labels` group), when it has one.
   * Listed only: label images are not queryable through this image yet; open
   * `<image>/labels/<name>` to read one.
   */
  readonly labels?: string[];
  readonly #arrays: ArrayMetadata[];
  readonly #handles = new Map<number, LevelReader>();
  #closed = false;

  /** Use {@link open}. */
  constructor(
    source: string,
    arrays: ArrayMetadata[],
    levels: LevelInfo[],
    axisInfo: Axis[],
    channels?: Channel[],
    ngffVersion?: string,
    labels?: string[],
  ) {
    this.source = source;
    this.#arrays = arrays;
    this.levels = levels;
    this.axisInfo = axisInfo;
    this.axes = axisInfo.map((a) => a.name);
    this.shape = arrays[0].shape;
    this.dtype = arrays[0].dtype;
    if (channels) {
      this.channelInfo = channels;
      if (channels.every((c) => c.name !== undefined)) this.channels = channels.map((c) => c.name!);
    }
    if (ngffVersion) this.ngffVersion = ngffVersion;
    if (labels) this.labels = labels;
  }

  /** Starts a lazy query over level 0 of the whole image. */
  scan(): Query {
    return new Query(this);
  }

  /**
   * Metadata of the array behind a level.
   * Internal: for tessera's own modules.
   * @ignore
   */
  arrayMetadata(level: number): ArrayMetadata {
    return this.#arrays[level];
  }

  /** Folder of the array behind a level. */
  arrayPath(level: number): string {
    return this.#arrays[level].path;
  }

  /**
   * The native reader of a level, opened on first use.
   * Internal: for tessera's own modules.
   * @ignore
   */
  nativeArray(level: number): LevelReader {
    if (this.#closed) throw new Shutdown(`image ${this.source} was closed`);
    let handle = this.#handles.get(level);
    if (!handle) {
      handle = this.openLevel(level);
      this.#handles.set(level, handle);
    }
    return handle;
  }

  /** Jupyter (Deno kernel) display: a metadata table and a composite thumbnail. */
  [Symbol.for("Jupyter.display")](): Promise<MediaBundle> {
    return displayImage(this);
  }

  /**
   * Opens the native reader of a level (sources other than Zarr override this).
   * @ignore
   */
  protected openLevel(level: number): LevelReader {
    const meta = this.#arrays[level];
    return new NativeArray(meta.path, encodeDescriptor(meta), meta.fill);
  }

  /** Closes native handles; reads in flight finish first. */
  [Symbol.dispose](): void {
    this.#closed = true;
    for (const handle of this.#handles.values()) handle[Symbol.dispose]();
    this.#handles.clear();
  }
}

/** Turns a path or `file:` URL into a local path. */
export function localPath(source: string | URL): string {
  if (source instanceof URL || /^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
    const url = new URL(source);
    if (isRemote(url)) {
      throw new InvalidArgument(
        `${url.href}: remote stores are read by open() (and pipeline samples); this takes a local path`,
      );
    }
    if (url.protocol !== "file:") {
      throw new InvalidArgument(
        `${url.href}: only local paths, file://, s3://, http:// and https:// URLs are supported`,
      );
    }
    return fileURLToPath(url);
  }
  if (typeof source !== "string" || source === "") {
    throw new InvalidArgument(
      `source must be a path or a file:// URL, got ${describeJson(source)}`,
    );
  }
  return resolve(source);
}

/**
 * Opens an image: an OME-NGFF group (0.5 on Zarr v3, 0.4 on Zarr v2;
 * multiscales, omero channels, label names) or a plain Zarr v3 or v2 array
 * (axes from `dimension_names`, or a v2 array's `_ARRAY_DIMENSIONS`
 * attribute, else the image's axes when the array is a level of the NGFF
 * image in its parent folder, else d0, d1, …). A file is opened as
 * OME-Arrow (Parquet or Arrow IPC; `options.row` and `options.column`
 * pick the record), with axes t, c, z, y, x. `s3://bucket/prefix` and
 * `http(s)://` URLs open a Zarr store in an S3-compatible bucket or on an
 * HTTP server (read-only; {@link RemoteOptions} in `options`).
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * using crop = await img.scan().select({ t: 0, c: 1, z: 16 }).collect();
 * ```
 */
export async function open(source: string | URL, options: OpenOptions = {}): Promise<Image> {
  if (isRemote(source)) {
    // Loaded here: the remote module extends Image (a static import would be a cycle).
    const { openRemote } = await import("./remote_open.ts");
    return await openRemote(source instanceof URL ? source.href : source, options);
  }
  const path = localPath(source);
  if (await isFile(path)) {
    // Loaded here: the OME-Arrow module extends Image (a static import would be a cycle).
    const { openOmeArrow } = await import("./omearrow.ts");
    return await openOmeArrow(path, options);
  }
  const { node, attributesFile } = await readZarrNode(path);
  await checkComplete(path);
  if (node.kind === "array") {
    const a = node.array;
    // Without dimension names, a level of an NGFF image takes the image's axes.
    const ngffAxes = a.dimensionNames ? undefined : await ngffAxesOfLevel(path, a.shape.length);
    const names = ngffAxes?.map((axis) => axis.name) ??
      a.shape.map((_, i) => (a.dimensionNames?.[i] ?? `d${i}`).toLowerCase());
    if (new Set(names).size !== names.length) {
      throw new StorageError(`${path}: dimension_names ${describeJson(a.dimensionNames)} repeat`);
    }
    const level = { path: ".", shape: a.shape, scale: a.shape.map(() => 1) };
    return new Image(path, [a], [level], ngffAxes ?? names.map((name) => ({ name })));
  }
  const ngff = parseNgff(node.group.attributes, attributesFile);
  if (!ngff) {
    const ome = omeAttributes(node.group.attributes);
    throw new NotFound(
      ome.plate !== undefined
        ? `${path} is an OME-NGFF plate, which cannot be read as one image; open a field ` +
          `(<row>/<column>/<field>) instead, or list it with info()`
        : ome.well !== undefined
        ? `${path} is an OME-NGFF well; open one of its fields (listed by info()) instead`
        : `${path} is a Zarr group without OME-NGFF multiscales; open one of its arrays instead`,
    );
  }
  const arrays: ArrayMetadata[] = [];
  const levels: LevelInfo[] = [];
  for (const d of ngff.datasets) {
    const levelPath = join(path, d.path);
    const child = await readNode(levelPath);
    await checkComplete(levelPath);
    if (child.kind !== "array") {
      throw new StorageError(`${levelPath}: multiscale level is not an array`);
    }
    const a = child.array;
    if (a.shape.length !== ngff.axes.length) {
      throw new StorageError(
        `${levelPath}: rank ${a.shape.length} differs from the ${ngff.axes.length} NGFF axes`,
      );
    }
    if (arrays.length > 0 && a.dtype !== arrays[0].dtype) {
      throw new StorageError(
        `${levelPath}: dtype ${a.dtype} differs from level 0 (${arrays[0].dtype})`,
      );
    }
    arrays.push(a);
    levels.push({
      path: d.path,
      shape: a.shape,
      scale: d.scale,
      ...(d.translation ? { translation: d.translation } : {}),
    });
  }
  const labels = await readLabelNames(path);
  return new Image(path, arrays, levels, ngff.axes, ngff.channels, ngff.version, labels);
}

/** Whether `path` is a regular file (folders and missing paths are not). */
async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}
