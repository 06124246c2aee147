/**
 * Iteration over a query: tiles ({@link Query.tiles}) and stacked batches
 * ({@link Query.batches}), read ahead while the consumer works.
 *
 * Every tile and batch is planned as one or more native region requests
 * ("parts") placed into a target tensor. A target made of exactly one part
 * (an interior tile; an unshuffled batch whose items are a run of
 * consecutive indices) is the native read's own output: no copy. Otherwise
 * (padded edge tiles, batches of scattered items) the native reader, which
 * always assembles into a new buffer of exactly the request's size, cannot
 * place a part at an offset inside a bigger output; the target is then
 * allocated natively (pre-filled in parallel with the fill value when it
 * has padding) and each part is copied into its place row by row.
 * @module
 */

import { type DType, dtypeCode, dtypeSize, typedArray } from "./dtype.ts";
import { InvalidArgument } from "./errors.ts";
import type { Image } from "./image.ts";
import { checkRankSplit, shareLength, sharePosition } from "./rank.ts";
import { abortError, type NativeBuffer, withProgress } from "./native.ts";
import { type DimSelection, encodeRequest } from "./request.ts";
import { contiguousStrides, TensorView } from "./tensor_view.ts";

/**
 * Tile extents by axis name, e.g. `{ y: 256, x: 256 }` (case-insensitive; "h"/"w" alias "y"/"x").
 *
 * @example
 * ```ts
 * import type { TileShape } from "@tessera/tessera";
 * const tile: TileShape = { y: 256, x: 256 };
 * ```
 */
export type TileShape = Readonly<Record<string, number>>;

/**
 * Options of {@link Query.tiles}.
 *
 * @example
 * ```ts
 * import { type TileOptions, open } from "@tessera/tessera";
 * const options: TileOptions = { tile: { y: 256, x: 256 }, overlap: { y: 16, x: 16 }, edge: "pad" };
 * using img = await open("data/sample.ome.zarr");
 * for await (using tile of img.scan().select({ t: 0, z: 0 }).tiles(options)) console.log(tile.origin);
 * ```
 */
export interface TileOptions {
  /** Tile extent per tiled axis; axes not named stay whole. */
  tile: TileShape;
  /** Pixels neighbouring tiles share per tiled axis (default 0): the stride is `tile − overlap`. */
  overlap?: TileShape;
  /**
   * Tiles that reach past the end of an axis: `"crop"` (default) yields
   * them smaller, `"pad"` at full size with the out-of-range part set to the
   * array's fill value (in the output dtype), `"drop"` leaves them out.
   */
  edge?: "crop" | "pad" | "drop";
  /** Tiles read ahead while the consumer works on the current one (default 1; 0: none). */
  prefetch?: number;
  /** Stops the iteration: reads in flight stop, read-ahead tiles are freed, and it throws `Aborted`. */
  signal?: AbortSignal;
}

/**
 * Options of {@link Query.batches}.
 *
 * @example
 * ```ts
 * import { type BatchOptions, open } from "@tessera/tessera";
 * const options: BatchOptions = { over: "z", batchSize: 8, shuffle: true, seed: 1, prefetch: 2 };
 * using img = await open("data/sample.ome.zarr");
 * for await (using batch of img.scan().select({ t: 0 }).batches(options)) console.log(batch.indices);
 * ```
 */
export interface BatchOptions {
  /** Items per batch (the last batch may be shorter). */
  batchSize: number;
  /** The axis whose indices are the items; it becomes the leading batch axis "n". */
  over: string;
  /** Also tile the other axes: items are then (index, tile) pairs. */
  tile?: TileShape;
  /** Overlap of neighbouring tiles, as in {@link TileOptions.overlap}. */
  overlap?: TileShape;
  /** Tiles that reach past the end of an axis: `"pad"` (default) or `"drop"`. */
  edge?: "pad" | "drop";
  /** Visit the items in a random order (default false: natural order). */
  shuffle?: boolean;
  /** Seed of the shuffle, an integer in [0, 2^32) (default: a random seed); ignored without `shuffle`. */
  seed?: number;
  /** Batches read ahead while the consumer works on the current one (default 1; 0: none). */
  prefetch?: number;
  /** Stops the iteration: reads in flight stop, read-ahead batches are freed, and it throws `Aborted`. */
  signal?: AbortSignal;
  /**
   * This process's rank in a data-parallel job, in [0, worldSize): it gets
   * the items at positions `rank, rank + worldSize, …` of the epoch order
   * (PyTorch DistributedSampler's split). Give `rank` and `worldSize`
   * together; with `shuffle` and worldSize > 1, `seed` is required (the same
   * on every rank, e.g. a base seed plus the epoch).
   */
  rank?: number;
  /** Number of ranks sharing the epoch (default 1). */
  worldSize?: number;
  /**
   * Item counts not divisible by worldSize: `"pad"` (default, as
   * DistributedSampler) gives every rank ⌈N / worldSize⌉ items, repeating
   * the first items of the epoch order; `"drop"` gives every rank
   * ⌊N / worldSize⌋, leaving out the last N mod worldSize.
   */
  uneven?: "pad" | "drop";
}

/**
 * A tile: a view that knows where it lies in the query's output.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * for await (using tile of img.scan().select({ t: 0, z: 0 }).tiles({ tile: { y: 512, x: 512 } })) {
 *   console.log(tile.origin, tile.shape); // { c: 0, y: 0, x: 0 } [3, 512, 512] …
 * }
 * ```
 */
export class TileView<D extends DType = DType> extends TensorView<D> {
  /**
   * Where the tile starts, per axis of this view, in the coordinates of the
   * query's output (what `collect()` would return): untiled axes are 0.
   */
  readonly origin: Readonly<Record<string, number>>;

  /** Wraps a tile's buffer (taking over this reference). */
  constructor(
    buffer: NativeBuffer,
    dtype: D,
    shape: readonly number[],
    axes: readonly string[],
    origin: Record<string, number>,
  ) {
    super(buffer, dtype, shape, axes);
    this.origin = Object.freeze(origin);
  }
}

/**
 * A batch: items stacked along a leading axis "n".
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * for await (using batch of img.scan().select({ t: 0 }).batches({ over: "z", batchSize: 4 })) {
 *   console.log(batch.layout, batch.shape, batch.indices); // "NCYX" [4, 3, 1024, 1024] [0, 1, 2, 3]
 * }
 * ```
 */
export class BatchView<D extends DType = DType> extends TensorView<D> {
  /** For each slot of axis "n", the index of the `over` axis, in the query's output coordinates. */
  readonly indices: readonly number[];
  /** For each slot, where its tile starts (per axis of one item, query output coordinates), when tiled. */
  readonly origins?: readonly Readonly<Record<string, number>>[];

  /** Wraps a batch's buffer (taking over this reference). */
  constructor(
    buffer: NativeBuffer,
    dtype: D,
    shape: readonly number[],
    axes: readonly string[],
    indices: number[],
    origins?: Record<string, number>[],
  ) {
    super(buffer, dtype, shape, axes);
    this.indices = Object.freeze(indices);
    if (origins) this.origins = Object.freeze(origins.map((o) => Object.freeze(o)));
  }
}

/** What iteration needs from a query: its resolved selection and output order. */
export interface IterationSource {
  /** The image. */
  image: Image;
  /** Level read. */
  level: number;
  /** Selection of every store dimension (kept ones have `keep: true`). */
  dims: readonly DimSelection[];
  /** Output axes as store dimension indices, in output order. */
  order: readonly number[];
  /** Output dtype. */
  dtype: DType;
}

/** Something that happened during an iteration (see {@link setIterationTrace}). */
export type IterationEvent =
  | { kind: "start"; item: number }
  | { kind: "read"; item: number; requests: number; assembled: boolean }
  | { kind: "yield"; item: number }
  | { kind: "discard"; item: number; view: TensorView };

let trace: ((event: IterationEvent) => void) | undefined;

/**
 * Installs a listener that sees, for every iteration, when the reads of
 * each tile or batch start, how many native requests each took and whether
 * it was assembled from parts (rather than being one request's output), when
 * each is handed to the consumer, and each read-ahead one disposed unseen
 * (the consumer stopped early). For tests and diagnostics; `undefined`
 * removes it.
 */
export function setIterationTrace(listener?: (event: IterationEvent) => void): void {
  trace = listener;
}

// ---------------------------------------------------------------------------
// options

const ALIASES: Record<string, string> = { h: "y", w: "x" };

function describe(value: unknown): string {
  try {
    return JSON.stringify(value, (_, v) => typeof v === "bigint" ? `${v}n` : v) ?? String(value);
  } catch {
    return String(value);
  }
}

function checkKeys(options: unknown, allowed: readonly string[], what: string): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new InvalidArgument(`${what} options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new InvalidArgument(
        `${what} option "${key}" is unknown (options: ${allowed.join(", ")})`,
      );
    }
  }
}

function checkPrefetch(value: unknown): number {
  if (value === undefined) return 1;
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw new InvalidArgument(`prefetch ${describe(value)} must be an integer ≥ 0`);
  }
  return value as number;
}

function checkSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value;
  throw new InvalidArgument(`signal ${describe(value)} must be an AbortSignal`);
}

/** Output position of an axis named in an option. */
function outputAxis(source: IterationSource, key: string, option: string): number {
  const axes = source.image.axes;
  const lower = key.toLowerCase();
  const name = axes.includes(lower) ? lower : ALIASES[lower] ?? lower;
  const d = axes.indexOf(name);
  const p = source.order.indexOf(d);
  if (p < 0) {
    const outAxes = source.order.map((i) => axes[i]).join(", ");
    throw new InvalidArgument(
      d < 0
        ? `${option}: "${key}" is not an axis of ${source.image.source} (axes: ${axes.join(", ")})`
        : `${option}: axis "${name}" is selected as a single index, so the query's output ` +
          `(axes: ${outAxes}) does not have it`,
    );
  }
  return p;
}

/** One tiled axis: output position, tile extent, and tile starts. */
interface TiledAxis {
  position: number;
  size: number;
  starts: number[];
}

/** Resolves `tile`/`overlap`/`edge` into tiled axes (in output order). */
function tileGrid(
  source: IterationSource,
  tile: unknown,
  overlap: unknown,
  edge: "crop" | "pad" | "drop",
): TiledAxis[] {
  if (typeof tile !== "object" || tile === null || Array.isArray(tile)) {
    throw new InvalidArgument(
      `tile ${describe(tile)} must be an object such as { y: 256, x: 256 }`,
    );
  }
  const entries = Object.entries(tile);
  if (entries.length === 0) throw new InvalidArgument("tile names no axis");
  const sizes = new Map<number, number>();
  for (const [key, size] of entries) {
    const p = outputAxis(source, key, "tile");
    if (sizes.has(p)) throw new InvalidArgument(`tile names axis "${key}" twice`);
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new InvalidArgument(
        `tile extent ${describe(size)} of axis "${key}" must be an integer ≥ 1`,
      );
    }
    sizes.set(p, size);
  }
  const overlaps = new Map<number, number>();
  if (overlap !== undefined) {
    if (typeof overlap !== "object" || overlap === null || Array.isArray(overlap)) {
      throw new InvalidArgument(`overlap ${describe(overlap)} must be an object such as { y: 16 }`);
    }
    for (const [key, value] of Object.entries(overlap)) {
      const p = outputAxis(source, key, "overlap");
      const size = sizes.get(p);
      if (size === undefined) {
        throw new InvalidArgument(`overlap names axis "${key}", which tile does not name`);
      }
      if (!Number.isSafeInteger(value) || value < 0 || value >= size) {
        throw new InvalidArgument(
          `overlap ${describe(value)} of axis "${key}" must be an integer in [0, ${size})`,
        );
      }
      overlaps.set(p, value);
    }
  }
  const grid: TiledAxis[] = [];
  for (const p of [...sizes.keys()].sort((a, b) => a - b)) {
    const size = sizes.get(p)!;
    const n = source.dims[source.order[p]].count;
    const stride = size - (overlaps.get(p) ?? 0);
    const count = n <= size ? 1 : Math.ceil((n - size) / stride) + 1;
    let starts = Array.from({ length: count }, (_, k) => k * stride);
    if (edge === "drop") starts = starts.filter((s) => s + size <= n);
    grid.push({ position: p, size, starts });
  }
  return grid;
}

function checkEdge<E extends string>(value: unknown, allowed: readonly E[], fallback: E): E {
  if (value === undefined) return fallback;
  if (!(allowed as readonly unknown[]).includes(value)) {
    throw new InvalidArgument(
      `edge ${describe(value)} must be one of ${allowed.map((e) => `"${e}"`).join(", ")}`,
    );
  }
  return value as E;
}

// ---------------------------------------------------------------------------
// plans

/** One native request and where its output goes in the target (elements). */
interface Part {
  dims: DimSelection[];
  order: number[];
  shape: number[];
  offset: number;
  strides: number[];
}

/** A tile or batch: target shape and the parts that fill it. */
interface Plan {
  shape: number[];
  parts: Part[];
  /** Whether some of the target is padding (no part covers it). */
  padded: boolean;
}

/** A tile at grid number `u`: its start and in-range extent on each tiled axis. */
function tileAt(grid: readonly TiledAxis[], u: number, source: IterationSource) {
  const window = new Map<number, { start: number; count: number; size: number }>();
  for (let g = grid.length - 1; g >= 0; g--) {
    const axis = grid[g];
    const start = axis.starts[u % axis.starts.length];
    u = Math.floor(u / axis.starts.length);
    const n = source.dims[source.order[axis.position]].count;
    window.set(axis.position, { start, count: Math.min(axis.size, n - start), size: axis.size });
  }
  return window;
}

type Window = ReturnType<typeof tileAt>;

/** The query's selection narrowed to a tile window (output positions → window). */
function windowDims(source: IterationSource, window: Window): DimSelection[] {
  const dims = source.dims.map((d) => ({ ...d }));
  for (const [p, w] of window) {
    const d = dims[source.order[p]];
    dims[source.order[p]] = {
      start: d.start + w.start * d.step,
      count: w.count,
      step: d.step,
      keep: true,
    };
  }
  return dims;
}

/** Product of a shape. */
function volume(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// ---------------------------------------------------------------------------
// execution

/** Per-iteration state: the native array, and the fill element once needed. */
class Reader {
  readonly #source: IterationSource;
  /** Aborts the reads and the iteration. */
  readonly signal?: AbortSignal;
  #fill?: Promise<NativeBuffer>;

  constructor(source: IterationSource, signal?: AbortSignal) {
    this.#source = source;
    this.signal = signal;
  }

  /** Reads every part and assembles the target; returns its buffer. */
  async run(plan: Plan, item: number): Promise<NativeBuffer> {
    const { image, level, dtype } = this.#source;
    const assembled = plan.parts.length > 1 || plan.padded;
    trace?.({ kind: "read", item, requests: plan.parts.length, assembled });
    const array = image.nativeArray(level);
    const settled = await Promise.allSettled(
      plan.parts.map((p) =>
        withProgress((progress) => array.read(encodeRequest(dtype, p.dims, p.order), progress), {
          signal: this.signal,
          what: `iteration over ${array.root}`,
        })
      ),
    );
    const buffers = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) {
      for (const b of buffers) b[Symbol.dispose]();
      throw (failed as PromiseRejectedResult).reason;
    }
    if (!assembled) return buffers[0];
    try {
      const code = dtypeCode(dtype);
      const size = dtypeSize(dtype);
      // A new native buffer of the target's size, every element a copy of
      // one element (the fill value when there is padding): a parallel
      // broadcast, the only way to allocate natively through this ABI.
      const seed = plan.padded ? await this.#fillElement(buffers[0]) : buffers[0];
      const target = await seed.copyStrided(
        BigInt64Array.from(
          [code, plan.shape.length, 0, ...plan.shape, ...plan.shape.map(() => 0)],
          BigInt,
        ),
      );
      try {
        const dst = new Uint8Array(target.arrayBuffer);
        plan.parts.forEach((part, i) =>
          place(dst, new Uint8Array(buffers[i].arrayBuffer), part, size)
        );
      } catch (e) {
        target[Symbol.dispose]();
        throw e;
      }
      return target;
    } finally {
      for (const b of buffers) b[Symbol.dispose]();
    }
  }

  /** A one-element native buffer holding the fill value in the output dtype. */
  #fillElement(base: NativeBuffer): Promise<NativeBuffer> {
    this.#fill ??= (async () => {
      const { image, level, dtype } = this.#source;
      const element = await base.copyStrided(
        BigInt64Array.from([dtypeCode(dtype), 1, 0, 1, 0], BigInt),
      );
      const meta = image.arrayMetadata(level);
      new Uint8Array(element.arrayBuffer).set(castScalar(meta.fill, meta.dtype, dtype));
      return element;
    })();
    return this.#fill;
  }

  /** Frees the fill element; no read may still be running. */
  async close(): Promise<void> {
    const fill = this.#fill;
    this.#fill = undefined;
    try {
      (await fill)?.[Symbol.dispose]();
    } catch {
      // its creation failed: nothing to free
    }
  }
}

/**
 * Copies a part (compact C order over `part.shape`) into `dst` at
 * `part.offset` with `part.strides`, in the longest runs both sides share.
 */
function place(dst: Uint8Array, src: Uint8Array, part: Part, size: number): void {
  const { shape, strides } = part;
  let k = shape.length;
  let block = 1;
  while (k > 0 && (shape[k - 1] === 1 || strides[k - 1] === block)) block *= shape[--k];
  const bytes = block * size;
  const index = new Array<number>(k).fill(0);
  let at = part.offset;
  const runs = volume(shape.slice(0, k));
  for (let r = 0, from = 0; r < runs; r++, from += bytes) {
    dst.set(src.subarray(from, from + bytes), at * size);
    for (let d = k - 1; d >= 0; d--) {
      at += strides[d];
      if (++index[d] < shape[d]) break;
      at -= strides[d] * shape[d];
      index[d] = 0;
    }
  }
}

/**
 * Runs `count` jobs in order, keeping up to `prefetch` of them running
 * ahead of the one the consumer holds. Jobs started but never handed out
 * (the consumer stopped early, or a job failed) are awaited and disposed.
 */
async function* readAhead<T extends TensorView>(
  count: number,
  job: (item: number) => Promise<T>,
  prefetch: number,
  reader: Reader,
): AsyncGenerator<T, void, undefined> {
  const pending: { item: number; result: Promise<T> }[] = [];
  let started = 0;
  try {
    for (let item = 0; item < count; item++) {
      while (started < count && pending.length < prefetch + 1) {
        trace?.({ kind: "start", item: started });
        const result = job(started);
        result.catch(() => {}); // surfaced when its turn comes
        pending.push({ item: started++, result });
      }
      const view = await pending.shift()!.result;
      if (reader.signal?.aborted) {
        view[Symbol.dispose]();
        throw abortError(reader.signal, "iteration");
      }
      trace?.({ kind: "yield", item });
      yield view;
    }
  } finally {
    for (const { item, result } of pending.splice(0)) {
      try {
        const view = await result;
        view[Symbol.dispose]();
        trace?.({ kind: "discard", item, view });
      } catch {
        // a failed read left nothing to free
      }
    }
    await reader.close();
  }
}

// ---------------------------------------------------------------------------
// entry points

/** Tiles of a query's output; see {@link Query.tiles}. Options are checked now. */
export function iterateTiles(
  source: IterationSource,
  options: TileOptions,
): AsyncGenerator<TileView, void, undefined> {
  checkKeys(options, ["tile", "overlap", "edge", "prefetch", "signal"], "tiles");
  const edge = checkEdge(options.edge, ["crop", "pad", "drop"] as const, "crop");
  const grid = tileGrid(source, options.tile, options.overlap, edge);
  const prefetch = checkPrefetch(options.prefetch);
  const { image, order, dtype } = source;
  const axes = order.map((d) => image.axes[d]);
  const full = order.map((d) => source.dims[d].count);
  const count = volume(grid.map((g) => g.starts.length));
  const reader = new Reader(source, checkSignal(options.signal));
  return readAhead(
    count,
    async (u) => {
      const window = tileAt(grid, u, source);
      const shape = full.map((n, p) => window.get(p)?.count ?? n);
      const target = full.map((n, p) => {
        const w = window.get(p);
        return w === undefined ? n : edge === "pad" ? w.size : w.count;
      });
      const plan: Plan = {
        shape: target,
        parts: [{
          dims: windowDims(source, window),
          order: [...order],
          shape,
          offset: 0,
          strides: contiguousStrides(target),
        }],
        padded: volume(target) !== volume(shape),
      };
      const origin = Object.fromEntries(axes.map((a, p) => [a, window.get(p)?.start ?? 0]));
      return new TileView(await reader.run(plan, u), dtype, target, axes, origin);
    },
    prefetch,
    reader,
  );
}

/** Batches of a query's output; see {@link Query.batches}. Options are checked now. */
export function iterateBatches(
  source: IterationSource,
  options: BatchOptions,
): AsyncGenerator<BatchView, void, undefined> {
  checkKeys(
    options,
    [
      "batchSize",
      "over",
      "tile",
      "overlap",
      "edge",
      "shuffle",
      "seed",
      "prefetch",
      "signal",
      "rank",
      "worldSize",
      "uneven",
    ],
    "batches",
  );
  const { batchSize, shuffle = false, seed } = options;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new InvalidArgument(`batchSize ${describe(batchSize)} must be an integer ≥ 1`);
  }
  if (typeof options.over !== "string") {
    throw new InvalidArgument(`over ${describe(options.over)} must be an axis name such as "t"`);
  }
  const q = outputAxis(source, options.over, "over");
  if ((options.edge as string) === "crop") {
    throw new InvalidArgument(
      `edge "crop" cannot stack tiles of different sizes into a batch; use "pad" or "drop"`,
    );
  }
  const edge = checkEdge(options.edge, ["pad", "drop"] as const, "pad");
  if (options.tile === undefined && (options.overlap !== undefined || options.edge !== undefined)) {
    throw new InvalidArgument(
      `${options.overlap !== undefined ? "overlap" : "edge"} needs tile`,
    );
  }
  const grid = options.tile === undefined
    ? []
    : tileGrid(source, options.tile, options.overlap, edge);
  if (grid.some((g) => g.position === q)) {
    throw new InvalidArgument(`tile names axis "${options.over}", which over batches along`);
  }
  if (typeof shuffle !== "boolean") {
    throw new InvalidArgument(`shuffle ${describe(shuffle)} must be true or false`);
  }
  if (seed !== undefined && (!Number.isSafeInteger(seed) || seed < 0 || seed >= 2 ** 32)) {
    throw new InvalidArgument(`seed ${describe(seed)} must be an integer in [0, 2^32)`);
  }
  const prefetch = checkPrefetch(options.prefetch);
  const split = checkRankSplit(options, "batches");
  if (shuffle && seed === undefined && split.worldSize > 1) {
    throw new InvalidArgument(
      `batches with shuffle and worldSize ${split.worldSize} needs a seed, the same on every rank`,
    );
  }

  const { image, order, dtype } = source;
  const a = order[q];
  const itemOrder = order.filter((d) => d !== a);
  const itemPositions = order.flatMap((_, p) => p === q ? [] : [p]);
  const itemAxes = itemOrder.map((d) => image.axes[d]);
  const full = order.map((d) => source.dims[d].count);
  const indexCount = full[q];
  const tileCount = volume(grid.map((g) => g.starts.length));
  const itemCount = indexCount * tileCount;
  // Item k: tile floor(k / indexCount), index k % indexCount (tile-major, so
  // that in natural order a batch is a run of consecutive indices of a tile).
  const items = shuffle
    ? shuffled(itemCount, seed ?? crypto.getRandomValues(new Uint32Array(1))[0])
    : undefined;
  // This rank's k-th item is the epoch order's item at sharePosition(k).
  const shareCount = shareLength(itemCount, split);
  const itemAt = (k: number) => {
    const p = sharePosition(k, itemCount, split);
    return items ? items[p] : p;
  };
  const reader = new Reader(source, checkSignal(options.signal));
  const batchCount = Math.ceil(shareCount / batchSize);

  return readAhead(
    batchCount,
    async (b) => {
      const first = b * batchSize;
      const length = Math.min(batchSize, shareCount - first);
      const tileOf = (k: number) => Math.floor(itemAt(k) / indexCount);
      const indexOf = (k: number) => itemAt(k) % indexCount;
      const windows = new Map<number, Window>();
      const windowOf = (u: number) => {
        let w = windows.get(u);
        if (!w) windows.set(u, w = tileAt(grid, u, source));
        return w;
      };
      const itemTarget = itemPositions.map((p) => {
        const g = grid.find((g) => g.position === p);
        return g ? g.size : full[p];
      });
      const itemSize = volume(itemTarget);
      const target = [length, ...itemTarget];
      const strides = contiguousStrides(target);
      const parts: Part[] = [];
      let padded = false;
      for (let s = 0; s < length;) {
        // A run: consecutive slots holding consecutive indices of one tile.
        const u = tileOf(first + s), i0 = indexOf(first + s);
        let run = 1;
        while (
          s + run < length && tileOf(first + s + run) === u && indexOf(first + s + run) === i0 + run
        ) run++;
        const window = windowOf(u);
        const dims = windowDims(source, window);
        const d = source.dims[a];
        dims[a] = { start: d.start + i0 * d.step, count: run, step: d.step, keep: true };
        const shape = [run, ...itemPositions.map((p) => window.get(p)?.count ?? full[p])];
        if (volume(shape) !== run * itemSize) padded = true;
        parts.push({ dims, order: [a, ...itemOrder], shape, offset: s * itemSize, strides });
        s += run;
      }
      const indices = Array.from({ length }, (_, s) => indexOf(first + s));
      const origins = grid.length === 0 ? undefined : Array.from({ length }, (_, s) => {
        const window = windowOf(tileOf(first + s));
        return Object.fromEntries(
          itemAxes.map((name, j) => [name, window.get(itemPositions[j])?.start ?? 0]),
        );
      });
      const buffer = await reader.run({ shape: target, parts, padded }, b);
      return new BatchView(buffer, dtype, target, ["n", ...itemAxes], indices, origins);
    },
    prefetch,
    reader,
  );
}

// ---------------------------------------------------------------------------
// shuffling

/**
 * mulberry32 (Tommy Ettinger's 32-bit generator): the next unsigned 32-bit
 * output for each call. Integer arithmetic only, so every platform gives the
 * same sequence.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/**
 * A permutation of 0..n-1: Fisher–Yates from the end, `j = ⌊r·(i+1)/2^32⌋`
 * for each `i` from n−1 down to 1, `r` the next mulberry32(seed) output.
 */
export function shuffled(n: number, seed: number): Float64Array {
  const next = mulberry32(seed);
  const items = Float64Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const r = next();
    const j = i < 2 ** 21
      ? Math.floor((r * (i + 1)) / 2 ** 32)
      : Number((BigInt(r) * BigInt(i + 1)) >> 32n);
    const t = items[i];
    items[i] = items[j];
    items[j] = t;
  }
  return items;
}

// ---------------------------------------------------------------------------
// fill value in the output dtype

const INT_RANGES: Partial<Record<DType, [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
};

/**
 * One element (little-endian bytes of `from`) converted to `to` as the
 * native assembly does (rust/src/cast.rs): integers wrap, floats saturate
 * into integers (NaN → 0), 16-bit floats round once from the source value,
 * bool is 0/1.
 */
export function castScalar(bytes: Uint8Array, from: DType, to: DType): Uint8Array<ArrayBuffer> {
  const own = bytes.slice(0, dtypeSize(from));
  if (from === to) return own;
  const v = typedArray(from, own.buffer, 0, 1)[0] as number | bigint;
  const out = new Uint8Array(dtypeSize(to));
  const dst = typedArray(to, out.buffer, 0, 1);
  const fromFloat = from === "float16" || from === "float32" || from === "float64" ||
    from === "bfloat16";
  const fromBits = from === "bfloat16" ? bf16ToNumber(v as number) : v;
  if (to === "bool") {
    (dst as Uint8Array)[0] = typeof fromBits === "bigint"
      ? Number(fromBits !== 0n)
      : Number(fromBits !== 0);
  } else if (to in INT_RANGES) {
    const [lo, hi] = INT_RANGES[to]!;
    (dst as Int32Array)[0] = typeof fromBits === "bigint"
      ? Number(BigInt.asIntN(32, fromBits))
      : fromFloat
      ? (Number.isNaN(fromBits) ? 0 : Math.trunc(Math.min(hi, Math.max(lo, fromBits))))
      : fromBits;
  } else if (to === "int64" || to === "uint64") {
    const bits = 64;
    let big: bigint;
    if (typeof fromBits === "bigint" || !fromFloat) {
      big = BigInt(fromBits);
    } else if (Number.isNaN(fromBits)) {
      big = 0n;
    } else {
      const [lo, hi] = to === "int64" ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
      big = Number.isFinite(fromBits) ? BigInt(Math.trunc(fromBits)) : fromBits > 0 ? hi : lo;
      big = big < lo ? lo : big > hi ? hi : big;
    }
    (dst as BigInt64Array | BigUint64Array)[0] = to === "int64"
      ? BigInt.asIntN(bits, big)
      : BigInt.asUintN(bits, big);
  } else if (to === "float32") {
    (dst as Float32Array)[0] = typeof fromBits === "bigint" ? bigintRoundToOdd(fromBits) : fromBits;
  } else if (to === "bfloat16") {
    (dst as Uint16Array)[0] = bf16FromF32Bits(f32RoundToOddBits(Number(fromBits)));
  } else {
    // float16, float64: one rounding from the (double) value.
    (dst as Float64Array)[0] = Number(fromBits);
  }
  return out;
}

function bf16ToNumber(bits: number): number {
  return new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
}

/** A bigint to double, rounded toward zero with the last bit set when inexact. */
function bigintRoundToOdd(v: bigint): number {
  const nearest = Number(v);
  if (BigInt(nearest) === v) return nearest;
  const f = new Float64Array([nearest]);
  const u = new BigUint64Array(f.buffer);
  if (BigInt(nearest) > v === v > 0n) u[0] -= 1n;
  u[0] |= 1n;
  return f[0];
}

/** Bits of `x` rounded to float32 toward zero, with the last bit set when inexact. */
function f32RoundToOddBits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if (Number.isNaN(x) || f[0] === x) return u[0];
  if (!Number.isFinite(f[0])) return (u[0] & 0x8000_0000) | 0x7f7f_ffff;
  if (Math.abs(f[0]) > Math.abs(x)) u[0] -= 1;
  return (u[0] | 1) >>> 0;
}

/** bfloat16 bits of float32 bits, rounded to nearest even (as the `half` crate). */
function bf16FromF32Bits(x: number): number {
  if ((x & 0x7fff_ffff) > 0x7f80_0000) return ((x >>> 16) | 0x0040) & 0xffff;
  const round = 0x8000;
  return ((x & round) !== 0 && (x & (3 * round - 1)) !== 0 ? (x >>> 16) + 1 : x >>> 16) & 0xffff;
}
