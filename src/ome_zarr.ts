/**
 * Writing OME-NGFF 0.5 images: a Zarr v3 group with multiscales and omero
 * metadata, level 0 written by the caller, coarser levels built by block
 * means in the native library.
 * @module
 */

import { join, resolve } from "node:path";
import { type AnyTypedArray, type DType, dtypeCode, typedArray } from "./dtype.ts";
import { InvalidArgument } from "./errors.ts";
import { type Counters, downsample, withProgress } from "./native.ts";
import type { Axis, Channel } from "./ngff.ts";
import { boxSelection, encodeRequest } from "./request.ts";
import { clearIncomplete, markIncomplete } from "./zarr/incomplete.ts";
import {
  checkTarget,
  createArray,
  type CreateArrayOptions,
  prepareTarget,
  type WriteOptions,
  type ZarrArrayWriter,
} from "./zarr/create.ts";

/**
 * Options of {@link createOmeZarr}.
 *
 * @example
 * ```ts
 * import type { OmeZarrOptions } from "@tessera/tessera";
 * const options: OmeZarrOptions = {
 *   axes: [{ name: "z", type: "space", unit: "micrometer" }, "y", "x"],
 *   shape: [32, 512, 512],
 *   dtype: "uint8",
 *   chunks: [16, 128, 128],
 *   shards: [32, 512, 512],
 *   scale: [2, 0.5, 0.5],
 * };
 * ```
 */
export interface OmeZarrOptions {
  /** Axes in array order: names ("t", "c", "z", "y", "x") or full axis objects. */
  axes: (string | Axis)[];
  /** Shape of level 0. */
  shape: number[];
  /** Element type. */
  dtype: DType;
  /** Chunk shape; with `shards`, the inner chunk shape. */
  chunks: number[];
  /** Shard shape; omit for unsharded chunks. */
  shards?: number[];
  /** Number of levels (default 1). */
  levels?: number;
  /** Downscale factor per axis between levels (default { y: 2, x: 2 }). */
  downscale?: Record<string, number>;
  /** Physical pixel size of level 0 per axis (default 1). */
  scale?: number[];
  /** omero channels (labels, colours, windows). */
  channels?: Channel[];
  /** Image name. */
  name?: string;
  /** zstd level, or null for none (default 3). */
  zstdLevel?: number | null;
  /** Replace an existing Zarr store at the path (default false). */
  overwrite?: boolean;
  /** Stops {@link writeOmeZarr}; it then rejects with `Aborted` and leaves nothing at the path. */
  signal?: AbortSignal;
}

const AXIS_TYPES: Record<string, string> = {
  t: "time",
  c: "channel",
  z: "space",
  y: "space",
  x: "space",
};

function axisObjects(axes: (string | Axis)[]): Axis[] {
  return axes.map((a) => {
    const axis = typeof a === "string" ? { name: a } : a;
    const name = axis.name.toLowerCase();
    const type = axis.type ?? AXIS_TYPES[name];
    return { name, ...(type ? { type } : {}), ...(axis.unit ? { unit: axis.unit } : {}) };
  });
}

/**
 * An OME-Zarr image being written.
 *
 * @example
 * ```ts
 * import { createOmeZarr } from "@tessera/tessera";
 * using writer = await createOmeZarr("image.ome.zarr", {
 *   axes: ["y", "x"],
 *   shape: [512, 512],
 *   dtype: "uint8",
 *   chunks: [128, 128],
 *   levels: 2,
 * });
 * await writer.writeLevel0(new Uint8Array(512 * 512));
 * await writer.buildPyramid((level, c) => console.log(level, c.bytesWritten));
 * ```
 */
export class OmeZarrWriter implements Disposable {
  /** Folder of the image. */
  readonly path: string;
  /** Writers of the levels, finest first. */
  readonly levels: ZarrArrayWriter[];
  readonly #factors: number[];
  #marking?: Promise<void>;

  /** Use {@link createOmeZarr}. */
  constructor(path: string, levels: ZarrArrayWriter[], factors: number[]) {
    this.path = path;
    this.levels = levels;
    this.#factors = factors;
  }

  /** Writes a chunk-aligned box of level 0 (see {@link ZarrArrayWriter.write}). */
  async writeLevel0(
    data: AnyTypedArray,
    origin?: number[],
    shape?: number[],
    options: WriteOptions = {},
  ): Promise<void> {
    // Coarser levels are stale until buildPyramid() runs: the image is incomplete.
    if (this.levels.length > 1) {
      this.#marking ??= markIncomplete(this.path, `image ${this.path} (pyramid not built)`);
      await this.#marking;
    }
    await this.levels[0].write(data, origin, shape, options);
  }

  /**
   * Builds every coarser level from the one above by block means, one slab
   * of shards at a time along the axes that are not downscaled.
   */
  async buildPyramid(
    onProgress?: (level: number, counters: Counters) => void,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const { signal } = options;
    for (let i = 1; i < this.levels.length; i++) {
      const source = this.levels[i - 1];
      const target = this.levels[i];
      const { shape, chunkShape, dtype } = source.metadata;
      const slabAxes = this.#factors.map((f, d) => f === 1 && chunkShape[d] < shape[d]);
      const starts = shape.map((n, d) => slabAxes[d] ? range(0, n, chunkShape[d]) : [0]);
      for (const origin of product(starts)) {
        const slab = shape.map((n, d) => slabAxes[d] ? Math.min(chunkShape[d], n - origin[d]) : n);
        using buffer = await withProgress(
          (progress) =>
            source.native.read(encodeRequest(dtype, boxSelection(origin, slab)), progress),
          { signal, what: `pyramid build of ${this.path}` },
        );
        const descriptor = BigInt64Array.from(
          [dtypeCode(dtype), slab.length, ...slab, ...this.#factors],
          BigInt,
        );
        using reduced = await downsample(typedArray(dtype, buffer.arrayBuffer), descriptor);
        const outShape = slab.map((n, d) => Math.ceil(n / this.#factors[d]));
        await target.write(typedArray(dtype, reduced.arrayBuffer), origin, outShape, {
          onProgress: onProgress && ((c) => onProgress(i, c)),
          signal,
        });
      }
    }
    await clearIncomplete(this.path);
    this.#marking = undefined;
  }

  /** Closes the level writers. */
  [Symbol.dispose](): void {
    for (const level of this.levels) level[Symbol.dispose]();
  }
}

function range(start: number, stop: number, step: number): number[] {
  const out = [];
  for (let v = start; v < stop; v += step) out.push(v);
  return out;
}

function* product(lists: number[][]): Generator<number[]> {
  if (lists.length === 0) {
    yield [];
    return;
  }
  const [first, ...rest] = lists;
  for (const v of first) for (const tail of product(rest)) yield [v, ...tail];
}

/**
 * Creates an OME-NGFF 0.5 image at `path`: the group metadata and one empty
 * array per level ("0", "1", …). Write level 0, then call `buildPyramid()`.
 *
 * @example
 * ```ts
 * import { createOmeZarr } from "@tessera/tessera";
 * using writer = await createOmeZarr("image.ome.zarr", {
 *   axes: ["c", "y", "x"],
 *   shape: [2, 1024, 1024],
 *   dtype: "uint16",
 *   chunks: [1, 256, 256],
 *   levels: 3,
 *   channels: [{ name: "DAPI", color: "0000FF" }, { name: "GFP", color: "00FF00" }],
 * });
 * await writer.writeLevel0(new Uint16Array(2 * 1024 * 1024));
 * await writer.buildPyramid();
 * ```
 */
export async function createOmeZarr(path: string, options: OmeZarrOptions): Promise<OmeZarrWriter> {
  const axes = axisObjects(options.axes);
  const rank = axes.length;
  if (options.shape.length !== rank || options.chunks.length !== rank) {
    throw new InvalidArgument(
      `createOmeZarr: ${rank} axes but shape [${options.shape}], chunks [${options.chunks}]`,
    );
  }
  const downscale = options.downscale ?? { y: 2, x: 2 };
  const factors = axes.map((a) => downscale[a.name] ?? 1);
  if (factors.some((f) => !Number.isInteger(f) || f < 1)) {
    throw new InvalidArgument(
      `createOmeZarr: downscale ${JSON.stringify(downscale)} must hold integers ≥ 1`,
    );
  }
  const levelCount = options.levels ?? 1;
  if (!Number.isInteger(levelCount) || levelCount < 1) {
    throw new InvalidArgument(`createOmeZarr: levels ${levelCount} must be an integer ≥ 1`);
  }
  await prepareTarget(path, options.overwrite ?? false);
  const baseScale = options.scale ?? axes.map(() => 1);
  const datasets = [];
  const writers: ZarrArrayWriter[] = [];
  let shape = options.shape;
  for (let i = 0; i < levelCount; i++) {
    const levelOptions: CreateArrayOptions = {
      shape,
      dtype: options.dtype,
      chunks: options.chunks,
      ...(options.shards ? { shards: options.shards } : {}),
      ...(options.zstdLevel !== undefined ? { zstdLevel: options.zstdLevel } : {}),
      dimensionNames: axes.map((a) => a.name),
    };
    writers.push(await createArray(join(path, String(i)), levelOptions));
    const scale = baseScale.map((s, d) => s * factors[d] ** i);
    datasets.push({ path: String(i), coordinateTransformations: [{ type: "scale", scale }] });
    shape = shape.map((n, d) => Math.ceil(n / factors[d]));
  }
  const ome = {
    version: "0.5",
    multiscales: [{ ...(options.name ? { name: options.name } : {}), axes, datasets }],
    ...(options.channels
      ? {
        omero: {
          channels: options.channels.map((c) => ({
            ...(c.name !== undefined ? { label: c.name } : {}),
            ...(c.color ? { color: c.color } : {}),
            ...(c.window ? { window: c.window } : {}),
            active: true,
          })),
        },
      }
      : {}),
  };
  await Deno.writeTextFile(
    join(path, "zarr.json"),
    JSON.stringify({ zarr_format: 3, node_type: "group", attributes: { ome } }, null, 2),
  );
  return new OmeZarrWriter(path, writers, factors);
}

/**
 * Writes a whole image in one call: create, write level 0, build the
 * pyramid. The image is written into a temporary sibling folder
 * (`<path>.tessera-tmp-…`) and renamed into place when complete, so an
 * interrupted call leaves `path` as it was (absent, or the store that
 * `overwrite` would have replaced); the temporary folder is removed on
 * errors and carries the incomplete marker if the process dies.
 *
 * @example
 * ```ts
 * import { writeOmeZarr } from "@tessera/tessera";
 * await writeOmeZarr("image.ome.zarr", new Float32Array(256 * 256), {
 *   axes: ["y", "x"],
 *   shape: [256, 256],
 *   dtype: "float32",
 *   chunks: [128, 128],
 *   levels: 2,
 * });
 * ```
 */
export async function writeOmeZarr(
  path: string,
  data: AnyTypedArray,
  options: OmeZarrOptions,
): Promise<void> {
  const { overwrite = false, signal } = options;
  const replace = await checkTarget(path, overwrite);
  const tmp = `${resolve(path)}.tessera-tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    {
      using writer = await createOmeZarr(tmp, { ...options, overwrite: false });
      await markIncomplete(tmp, `image ${path} (being converted)`);
      await writer.writeLevel0(data, undefined, undefined, { signal });
      await writer.buildPyramid(undefined, { signal });
      await clearIncomplete(tmp);
    }
    if (replace && await checkTarget(path, overwrite)) await Deno.remove(path, { recursive: true });
    await Deno.rename(tmp, resolve(path));
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}
