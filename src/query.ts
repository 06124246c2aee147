/**
 * Lazy, immutable queries over an image: level, selection and dtype are
 * resolved to one native region request when the query runs.
 * @module
 */

import { type DType, dtypeSize, parseDType } from "./dtype.ts";
import { CudaError, InvalidArgument } from "./errors.ts";
import type { Image } from "./image.ts";
import { type Counters, withProgress } from "./native.ts";
import { type DimSelection, encodeRequest } from "./request.ts";
import { resolveLayout } from "./layout.ts";
import { layoutOf, TensorView } from "./tensor_view.ts";
import { displayablePlan, displayQuery, type MediaBundle } from "./display.ts";
import {
  type BatchOptions,
  type BatchView,
  iterateBatches,
  iterateTiles,
  type IterationSource,
  type TileOptions,
  type TileView,
} from "./iterate.ts";

/**
 * A selection along one axis: an index (drops the axis), `[start, stop]` or `[start, stop, step]`.
 *
 * @example
 * ```ts
 * import type { AxisSelection } from "@tessera/tessera";
 * const index: AxisSelection = 3; // drops the axis
 * const range: AxisSelection = [0, 512];
 * const strided: AxisSelection = [0, 1024, 4];
 * ```
 */
export type AxisSelection = number | readonly [number, number] | readonly [number, number, number];

/**
 * Selections by axis name (case-insensitive; "h"/"w" alias "y"/"x").
 *
 * @example
 * ```ts
 * import { type Selection, open } from "@tessera/tessera";
 * const selection: Selection = { t: 0, c: [0, 2], z: 10, y: [0, 512], x: [0, 1024, 2] };
 * using img = await open("data/sample.ome.zarr");
 * using view = await img.scan().select(selection).collect();
 * ```
 */
export type Selection = Record<string, AxisSelection>;

/**
 * What a query will read, from {@link Query.explain}.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * const plan = await img.scan().select({ t: 0, z: [0, 8] }).explain();
 * console.log(plan.shape, plan.chunksTouched, plan.bytesRead, plan.readOps);
 * ```
 */
export interface Plan {
  /** Level index. */
  level: number;
  /** Folder of the level's array. */
  path: string;
  /** Output axes, in order. */
  axes: string[];
  /** Output layout letters. */
  layout: string;
  /** Output shape. */
  shape: number[];
  /** Output dtype. */
  dtype: DType;
  /** Bytes of the output tensor. */
  outputBytes: number;
  /** Outer chunks (shards, or plain chunks) touched. */
  shardsTouched: number;
  /** Chunks (inner chunks of shards) touched. */
  chunksTouched: number;
  /** Touched chunks that are stored; the others are the fill value. */
  chunksStored: number;
  /** Bytes that will be read, shard indexes included. */
  bytesRead: number;
  /** Read operations, after merging neighbouring ranges. */
  readOps: number;
  /** Bytes that will be decoded. */
  bytesDecoded: number;
}

/**
 * Options of {@link Query.collect}.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * using view = await img.scan().select({ t: 0 }).collect({
 *   device: "cpu",
 *   onProgress: (c) => console.log(`${c.outerDone}/${c.outerTotal} shards`),
 * });
 * ```
 */
export interface CollectOptions {
  /** Where the tensor should live; only "cpu" is available in this version. */
  device?: string;
  /** Called with progress counters while the read runs, and once at the end. */
  onProgress?: (counters: Counters) => void;
  /**
   * Stops the read: `collect()` then rejects with `Aborted` (name
   * "AbortError") after the native work has stopped and freed its memory.
   */
  signal?: AbortSignal;
}

interface QueryState {
  level: number;
  selection: Readonly<Record<string, AxisSelection>>;
  dtype?: DType;
  layout?: string;
}

const ALIASES: Record<string, string> = { h: "y", w: "x" };

/**
 * A lazy query; every method returns a new query.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * const query = img.scan().level(1).select({ t: 0, z: [4, 12] }).layout("ZCYX").cast("float32");
 * using view = await query.collect();
 * console.log(view.layout, view.shape); // "ZCYX" [8, 3, 512, 512]
 * ```
 */
export class Query {
  readonly #image: Image;
  readonly #state: QueryState;

  /** A query over `image` (use {@link Image.scan}). */
  constructor(image: Image, state: QueryState = { level: 0, selection: {} }) {
    this.#image = image;
    this.#state = state;
  }

  /** Reads resolution level `index` (0 is the finest). */
  level(index: number): Query {
    const n = this.#image.levels.length;
    if (!Number.isInteger(index) || index < 0 || index >= n) {
      throw new InvalidArgument(
        `level ${index} does not exist: ${this.#image.source} has levels 0..${n - 1}`,
      );
    }
    return new Query(this.#image, { ...this.#state, level: index });
  }

  /** Restricts axes; later selections of the same axis replace earlier ones. */
  select(selection: Selection): Query {
    const merged: Record<string, AxisSelection> = { ...this.#state.selection };
    for (const [key, value] of Object.entries(selection)) {
      merged[this.#axisName(key)] = value;
    }
    return new Query(this.#image, { ...this.#state, selection: merged });
  }

  /**
   * Orders (and picks) the output axes, e.g. "CZYX", "ZYXC", "CHW". Every
   * axis that is not a single index must appear; a single-index axis may
   * appear (as size 1) or be left out. The permutation is fused into
   * assembly: no second pass over the data. Default: when T and Z are both
   * single indices, C first then the rest ("CYX"); otherwise store order.
   */
  layout(spec: string): Query {
    resolveLayout(spec, this.#image.axes, [], this.#image.source);
    return new Query(this.#image, { ...this.#state, layout: spec });
  }

  /** Converts elements to `dtype` while assembling. */
  cast(dtype: DType): Query {
    return new Query(this.#image, { ...this.#state, dtype: parseDType(dtype, "cast target") });
  }

  #axisName(key: string): string {
    const lower = key.toLowerCase();
    const name = this.#image.axes.includes(lower) ? lower : ALIASES[lower] ?? lower;
    if (!this.#image.axes.includes(name)) {
      throw new InvalidArgument(
        `axis "${key}" is not an axis of ${this.#image.source} (axes: ${
          this.#image.axes.join(", ")
        })`,
      );
    }
    return name;
  }

  #resolve(): {
    dims: DimSelection[];
    request: BigInt64Array<ArrayBuffer>;
    axes: string[];
    shape: number[];
    dtype: DType;
  } {
    const image = this.#image;
    const shape = image.levels[this.#state.level].shape;
    const dims = image.axes.map((axis, d) =>
      resolveAxis(axis, this.#state.selection[axis], shape[d], image.source)
    );
    const order = this.#outputOrder(dims);
    for (const i of order) dims[i].keep = true;
    const dtype = this.#state.dtype ?? image.dtype;
    return {
      dims,
      request: encodeRequest(dtype, dims, order),
      axes: order.map((i) => image.axes[i]),
      shape: order.map((i) => dims[i].count),
      dtype,
    };
  }

  /** Output axis order as indices of store dimensions. */
  #outputOrder(dims: readonly DimSelection[]): number[] {
    const axes = this.#image.axes;
    const kept = dims.flatMap((d, i) => d.keep ? [i] : []);
    if (this.#state.layout !== undefined) {
      return resolveLayout(
        this.#state.layout,
        axes,
        kept.map((i) => axes[i]),
        `the selection of ${this.#image.source}`,
      );
    }
    const indexed = (name: string) => axes.includes(name) && !dims[axes.indexOf(name)].keep;
    const c = axes.indexOf("c");
    if (indexed("t") && indexed("z") && c >= 0 && dims[c].keep) {
      return [c, ...kept.filter((i) => i !== c)];
    }
    return kept;
  }

  /** Jupyter (Deno kernel) display: the query's plan as a table. */
  [Symbol.for("Jupyter.display")](): Promise<MediaBundle> {
    return displayQuery(this);
  }

  /**
   * What the query will read: output shape and dtype, chunks, bytes and read
   * operations. In Jupyter the plan displays as a table.
   */
  async explain(): Promise<Plan> {
    const r = this.#resolve();
    const level = this.#state.level;
    const counters = await this.#image.nativeArray(level).explain(r.request);
    return displayablePlan({
      level,
      path: this.#image.arrayPath(level),
      axes: r.axes,
      layout: layoutOf(r.axes),
      shape: r.shape,
      dtype: r.dtype,
      outputBytes: r.shape.reduce((a, b) => a * b, 1) * dtypeSize(r.dtype),
      shardsTouched: counters.outerTotal,
      chunksTouched: counters.chunksTouched,
      chunksStored: counters.chunksStored,
      bytesRead: counters.bytesRead,
      readOps: counters.readOps,
      bytesDecoded: counters.bytesDecoded,
    });
  }

  /** Reads, decodes and assembles the selection into a new tensor in the query's layout. */
  async collect(options: CollectOptions = {}): Promise<TensorView> {
    const device = options.device ?? "cpu";
    if (device !== "cpu") {
      if (/^cuda(:\d+)?$/.test(device)) {
        throw new CudaError(
          `device "${device}" is not available: this version assembles on the CPU only`,
        );
      }
      throw new InvalidArgument(
        `device ${describe(device)} is unknown (use "cpu", "cuda" or "cuda:N")`,
      );
    }
    const r = this.#resolve();
    const array = this.#image.nativeArray(this.#state.level);
    const buffer = await withProgress((progress) => array.read(r.request, progress), {
      onProgress: options.onProgress,
      signal: options.signal,
      what: `read of ${array.root}`,
    });
    return new TensorView(buffer, r.dtype, r.shape, r.axes);
  }

  /**
   * The query's output in tiles over the named axes (any axes; the others
   * stay whole), in row-major order of tile positions (axes in output
   * order, the last fastest). `overlap` makes neighbours share pixels
   * (stride = tile − overlap); `edge` crops (default), pads with the fill
   * value, or drops tiles that reach past the end. Each tile is a
   * {@link TileView} whose `origin` says where it starts; `prefetch` tiles
   * (default 1) are read ahead. Every yielded tile belongs to the consumer:
   * `for await (using tile of query.tiles(...))`. Options are checked at
   * once ({@link InvalidArgument} naming the option).
   */
  tiles(options: TileOptions): AsyncGenerator<TileView, void, undefined> {
    return iterateTiles(this.#iterationSource(), options);
  }

  /**
   * The query's output in batches: indices of the `over` axis (with `tile`,
   * (index, tile) pairs, tile-major: each tile position in row-major order,
   * then the indices) grouped `batchSize` at a time into a
   * {@link BatchView} whose leading axis "n" replaces `over` (e.g. "NCYX");
   * the last batch may be shorter. In natural order a batch of consecutive
   * indices is one native read; `shuffle` with `seed` gives the same order on
   * every run and platform. `prefetch` batches (default 1) are read while the
   * consumer works on the current one; stopping early disposes them. Every
   * yielded batch belongs to the consumer (`using`). With `rank` and
   * `worldSize`, the batches hold only this rank's share of the epoch
   * (positions `rank, rank + worldSize, …` of the epoch order, padded or
   * dropped to equal counts by `uneven`; see {@link BatchOptions.rank}).
   */
  batches(options: BatchOptions): AsyncGenerator<BatchView, void, undefined> {
    return iterateBatches(this.#iterationSource(), options);
  }

  #iterationSource(): IterationSource {
    const r = this.#resolve();
    return {
      image: this.#image,
      level: this.#state.level,
      dims: r.dims,
      order: r.axes.map((a) => this.#image.axes.indexOf(a)),
      dtype: r.dtype,
    };
  }
}

function resolveAxis(
  axis: string,
  sel: AxisSelection | undefined,
  size: number,
  source: string,
): DimSelection {
  const bad = (what: string): never => {
    throw new InvalidArgument(`selection of axis "${axis}" (size ${size}) in ${source}: ${what}`);
  };
  if (size === 0) bad("the axis is empty, so nothing can be read");
  if (sel === undefined) return { start: 0, count: size, step: 1, keep: true };
  if (typeof sel === "number") {
    if (!Number.isInteger(sel)) bad(`index ${sel} is not an integer`);
    if (sel < -size || sel >= size) bad(`index ${sel} is out of range`);
    return { start: sel < 0 ? sel + size : sel, count: 1, step: 1, keep: false };
  }
  if (!Array.isArray(sel) || sel.length < 2 || sel.length > 3 || !sel.every(Number.isInteger)) {
    return bad(`${describe(sel)} must be an integer index, [start, stop] or [start, stop, step]`);
  }
  const [rawStart, rawStop, step = 1] = sel;
  if (step < 1) bad(`step ${step} must be ≥ 1`);
  const start = rawStart < 0 ? rawStart + size : rawStart;
  const stop = rawStop < 0 ? rawStop + size : rawStop;
  if (start < 0 || stop > size || start >= stop) {
    bad(`[${rawStart}, ${rawStop}) is empty or outside [0, ${size})`);
  }
  return { start, count: Math.ceil((stop - start) / step), step, keep: true };
}

/** A value for messages; unlike JSON.stringify it never throws (bigints, cycles). */
function describe(value: unknown): string {
  try {
    return JSON.stringify(value, (_, v) => typeof v === "bigint" ? `${v}n` : v) ?? String(value);
  } catch {
    return String(value);
  }
}
