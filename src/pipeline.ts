/**
 * The streaming pipeline for training loops: samples (boxes of images,
 * possibly reaching past their edges) are pushed, and batches
 * `[samplesPerBatch, ...sampleShape]` are popped while later batches are
 * read, decoded and assembled in the background (rust/src/batch.rs).
 *
 * TypeScript decides (metadata, boxes → batch descriptors, scheduling,
 * memory budget); the native executor moves bytes: every chunk a batch
 * touches is read and decoded once, and scattered into each sample that
 * needs it with the cast fused.
 * @module
 */

import { type DType, dtypeCode, dtypeSize } from "./dtype.ts";
import {
  BudgetExceeded,
  CudaError,
  DtypeMismatch,
  InvalidArgument,
  NotFound,
  PoolStarved,
  Shutdown,
} from "./errors.ts";
import { type Image, open } from "./image.ts";
import { BatchExecutor, CudaAssembler, type CudaCounters } from "./batch_executor.ts";
import { checkRankSplit, type RankSplit } from "./rank.ts";
import { NativeArray, type NativeBuffer } from "./native.ts";
import { TensorView } from "./tensor_view.ts";

/**
 * Output dtypes of a pipeline.
 *
 * @example
 * ```ts
 * import { pipeline, type PipelineDType } from "@tessera/tessera";
 * const dtype: PipelineDType = "bfloat16";
 * await using pipe = pipeline({ samplesPerBatch: 8, sampleShape: [64, 64, 64], dtype });
 * ```
 */
export type PipelineDType = "float32" | "bfloat16";

/**
 * Settings of {@link pipeline}.
 *
 * @example
 * ```ts
 * import { pipeline, type PipelineConfig } from "@tessera/tessera";
 * const config: PipelineConfig = {
 *   samplesPerBatch: 16,
 *   sampleShape: [128, 128, 128],
 *   dtype: "float32",
 *   device: "cpu",
 *   lookahead: 2,
 * };
 * await using pipe = pipeline(config);
 * ```
 */
export interface PipelineConfig {
  /** Samples per batch (the leading axis "n"). */
  samplesPerBatch: number;
  /** Shape of one sample: the box's extents over the axes it does not fix. */
  sampleShape: readonly number[];
  /** Element type of the batches (`bfloat16`: raw bits in a Uint16Array). */
  dtype: PipelineDType;
  /**
   * Where batches live: "cpu" (default), or "cuda" / "cuda:N": compressed
   * chunks are read into pinned memory, copied to the device, decoded
   * there (zstd and blosc-zstd with nvCOMP when present, other codecs on
   * the CPU) and assembled by one kernel launch per batch.
   */
  device?: string;
  /**
   * Bytes that live batches may hold in all (assembling, ready, popped and
   * not yet released, or kept by a DLPack consumer); on CUDA also the
   * device staging of batches being assembled (their compressed and
   * decoded chunks, and nvCOMP's temporary space, about three times the
   * decoded bytes). Default: `(lookahead + 2)` batches on the CPU,
   * `8 × (lookahead + 2)` batches on CUDA.
   */
  maxDeviceMemoryBytes?: number;
  /** Batches assembled ahead of `pop()` (default 2). */
  lookahead?: number;
  /** Threads that read and decode for this pipeline (default: `TESSERA_THREADS`, else the core count). */
  ioThreads?: number;
  /** How long `pop()` waits for a batch before it throws {@link PoolStarved} (default 30 000). */
  popTimeoutMs?: number;
  /**
   * This process's rank in a data-parallel job, in [0, worldSize): of the
   * samples pushed (every rank pushes the same sequence), the pipeline keeps
   * those at push positions `rank, rank + worldSize, …` (the split of
   * `batches()`, as PyTorch's DistributedSampler) and skips the others without reading them.
   * Give `rank` and `worldSize` together.
   */
  rank?: number;
  /** Number of ranks sharing the pushed samples (default 1). */
  worldSize?: number;
}

/**
 * A selection of one axis in a sample box: an index (fixes the axis) or `[start, stop)`, which may reach past the edges.
 *
 * @example
 * ```ts
 * import type { BoxSelection } from "@tessera/tessera";
 * const z: BoxSelection = [0, 128]; // start and stop (may pass the image edge: fill value)
 * const c: BoxSelection = 1; // a single index fixes the axis
 * ```
 */
export type BoxSelection = number | readonly [number, number];

/**
 * One sample: a box of an image level. Axes left out of `box` are taken whole.
 *
 * @example
 * ```ts
 * import { pipeline, type SampleRequest } from "@tessera/tessera";
 * await using pipe = pipeline({ samplesPerBatch: 1, sampleShape: [32, 256, 256], dtype: "float32" });
 * const sample: SampleRequest = {
 *   uri: "data/sample.ome.zarr",
 *   box: { t: 0, c: 1, z: [0, 32], y: [0, 256], x: [0, 256] },
 * };
 * await pipe.push(sample);
 * ```
 */
export interface SampleRequest {
  /** Path or `file://` URL of an OME-Zarr image or Zarr array. */
  uri: string | URL;
  /** Resolution level (default 0). */
  level?: number;
  /** Per axis name (case-insensitive, "h"/"w" alias "y"/"x"): an index or `[start, stop)`; out-of-bounds places get the fill value. */
  box: Readonly<Record<string, BoxSelection>>;
}

/**
 * Time, bytes and operations of one stage.
 *
 * @example
 * ```ts
 * import { pipeline, type StageStats } from "@tessera/tessera";
 * await using pipe = pipeline({ samplesPerBatch: 4, sampleShape: [64, 64, 64], dtype: "float32" });
 * const io: StageStats = pipe.stats().io;
 * console.log(io.ms, io.bytes, io.count);
 * ```
 */
export interface StageStats {
  /** Milliseconds (for io, decode and assemble: summed over worker threads). */
  ms: number;
  /** Bytes handled. */
  bytes: number;
  /** Operations. */
  count: number;
}

/**
 * Per-stage statistics of a pipeline, from {@link Pipeline.stats}.
 *
 * @example
 * ```ts
 * import { pipeline, type PipelineStats } from "@tessera/tessera";
 * await using pipe = pipeline({ samplesPerBatch: 4, sampleShape: [64, 64, 64], dtype: "float32" });
 * const stats: PipelineStats = pipe.stats();
 * console.log(stats.decode.ms, stats.pop_wait.ms, stats.liveBytes);
 * ```
 */
export interface PipelineStats {
  /** Resolving samples (metadata, boxes) and planning chunk jobs; bytes: batch bytes planned. */
  plan: StageStats;
  /** Reading chunk, shard and index bytes. */
  io: StageStats;
  /** Host→device copies (none on the CPU). */
  transfer: StageStats;
  /** Decompressing chunks; bytes: decoded bytes. */
  decode: StageStats;
  /** Copying with the cast, and filling, into batches; bytes: output bytes. */
  assemble: StageStats;
  /** Time `pop()` waited for batches; bytes: batch bytes popped. */
  pop_wait: StageStats;
  /** Samples pushed and not yet in a batch. */
  pendingSamples: number;
  /** Batches being assembled or ready. */
  queuedBatches: number;
  /** Bytes of live batches (the budget's use). */
  liveBytes: number;
  /** The device path's counters (CUDA pipelines only). */
  cuda?: CudaCounters;
}

/**
 * A popped batch: `[samplesPerBatch, ...sampleShape]`, released on dispose or {@link PipelineBatch.release}.
 *
 * @example
 * ```ts
 * import { pipeline, type PipelineBatch } from "@tessera/tessera";
 * await using pipe = pipeline({ samplesPerBatch: 1, sampleShape: [32, 256, 256], dtype: "float32" });
 * await pipe.push({ uri: "data/sample.ome.zarr", box: { t: 0, c: 0, z: [0, 32], y: [0, 256], x: [0, 256] } });
 * using batch: PipelineBatch = await pipe.pop();
 * console.log(batch.index, batch.samples.length, batch.shape); // 0 1 [1, 32, 256, 256]
 * ```
 */
export class PipelineBatch<D extends DType = DType> extends TensorView<D> {
  /** Sequence number of the batch (0 for the first). */
  readonly index: number;
  /** The samples, in order along axis "n". */
  readonly samples: readonly SampleRequest[];

  /** Wraps a batch's buffer (taking over this reference). */
  constructor(
    buffer: NativeBuffer,
    dtype: D,
    shape: readonly number[],
    axes: readonly string[],
    index: number,
    samples: readonly SampleRequest[],
  ) {
    super(buffer, dtype, shape, axes);
    this.index = index;
    this.samples = Object.freeze([...samples]);
  }

  /** Releases the batch (same as dispose); DLPack consumers keep their own reference. */
  release(): void {
    this[Symbol.dispose]();
  }
}

/** A sample resolved against its image. */
interface Resolved {
  array: NativeArray;
  /** `(start, count, keep)` per array dimension. */
  dims: number[];
  axes: string[];
}

interface Pending {
  request: SampleRequest;
  resolved: Promise<Resolved>;
}

interface Queued {
  index: number;
  promise: Promise<PipelineBatch>;
  settled: boolean;
}

const ALIASES: Record<string, string> = { h: "y", w: "x" };
const OUTPUT_DTYPES: readonly string[] = ["float32", "bfloat16"];

/**
 * Starts a pipeline. Settings are checked at once ({@link InvalidArgument}
 * naming the setting, {@link DtypeMismatch} for an output dtype other than
 * float32/bfloat16, {@link CudaError} for a CUDA device).
 *
 * @example
 * ```ts
 * import { pipeline } from "@tessera/tessera";
 * await using pipe = pipeline({ samplesPerBatch: 2, sampleShape: [16, 128, 128], dtype: "float32" });
 * for (const z of [0, 16]) {
 *   await pipe.push({ uri: "data/sample.ome.zarr", box: { t: 0, c: 0, z: [z, z + 16], y: [0, 128], x: [0, 128] } });
 * }
 * using batch = await pipe.pop(); // [2, 16, 128, 128] float32
 * const capsule = batch.toDLPack();
 * ```
 */
export function pipeline(config: PipelineConfig): Pipeline {
  return new Pipeline(config);
}

/**
 * A streaming batch pipeline; see {@link pipeline}. Close it with `await using` or {@link Pipeline.close}.
 *
 * @example
 * ```ts
 * import { type Pipeline, pipeline } from "@tessera/tessera";
 * const pipe: Pipeline = pipeline({ samplesPerBatch: 1, sampleShape: [64, 64], dtype: "float32" });
 * await pipe.push({ uri: "data/sample.ome.zarr", box: { t: 0, c: 0, z: 0, y: [0, 64], x: [0, 64] } });
 * using batch = await pipe.pop();
 * await pipe.close();
 * ```
 */
export class Pipeline implements AsyncDisposable {
  readonly #spb: number;
  readonly #sampleShape: readonly number[];
  readonly #dtype: PipelineDType;
  readonly #lookahead: number;
  readonly #budget: number;
  readonly #popTimeoutMs: number;
  readonly #batchBytes: number;
  readonly #executor: BatchExecutor;
  readonly #cuda?: CudaAssembler;
  readonly #images = new Map<string, Promise<Image>>();
  readonly #split: RankSplit;
  /** Samples pushed so far (this rank's and the others'). */
  #pushed = 0;
  #pending: Pending[] = [];
  #queue: Queued[] = [];
  #inFlight = 0;
  #batchCount = 0;
  #closed = false;
  #wake: (() => void)[] = [];
  #planMs = 0;
  #planCount = 0;
  #popMs = 0;
  #popBytes = 0;
  #popCount = 0;

  /** Use {@link pipeline}. */
  constructor(config: PipelineConfig) {
    const c = config as Partial<PipelineConfig> | undefined;
    if (c === null || typeof c !== "object") {
      throw new InvalidArgument("pipeline config must be an object");
    }
    this.#spb = positiveInt(c.samplesPerBatch, "samplesPerBatch", 1 << 20);
    if (!Array.isArray(c.sampleShape) || c.sampleShape.length === 0) {
      throw new InvalidArgument(
        `pipeline sampleShape ${describe(c.sampleShape)} must be a non-empty array`,
      );
    }
    this.#sampleShape = c.sampleShape.map((n, i) => positiveInt(n, `sampleShape[${i}]`, 2 ** 31));
    if (!OUTPUT_DTYPES.includes(c.dtype as string)) {
      throw new DtypeMismatch(
        `pipeline dtype ${describe(c.dtype)} is not an output dtype (use "float32" or "bfloat16")`,
      );
    }
    this.#dtype = c.dtype as PipelineDType;
    const device = c.device ?? "cpu";
    const cuda = /^cuda(?::(\d+))?$/.exec(String(device));
    if (device !== "cpu" && !cuda) {
      throw new InvalidArgument(
        `pipeline device ${describe(device)} is unknown (use "cpu", "cuda" or "cuda:N")`,
      );
    }
    this.#lookahead = c.lookahead === undefined ? 2 : positiveInt(c.lookahead, "lookahead", 1024);
    const threads = c.ioThreads === undefined ? 0 : positiveInt(c.ioThreads, "ioThreads", 1024);
    this.#popTimeoutMs = c.popTimeoutMs === undefined
      ? 30_000
      : positiveNumber(c.popTimeoutMs, "popTimeoutMs");
    const elements = this.#sampleShape.reduce((a, b) => a * b, 1) * this.#spb;
    this.#batchBytes = elements * dtypeSize(this.#dtype);
    if (!Number.isSafeInteger(this.#batchBytes)) {
      throw new InvalidArgument(`pipeline batch of ${elements} elements is too large`);
    }
    this.#split = checkRankSplit({ rank: c.rank, worldSize: c.worldSize }, "pipeline");
    this.#budget = c.maxDeviceMemoryBytes === undefined
      ? (cuda ? 8 : 1) * (this.#lookahead + 2) * this.#batchBytes
      : positiveNumber(c.maxDeviceMemoryBytes, "maxDeviceMemoryBytes");
    if (cuda) {
      const ordinal = Number(cuda[1] ?? 0);
      try {
        this.#cuda = new CudaAssembler(ordinal, this.#budget);
      } catch (e) {
        if (!(e instanceof CudaError)) throw e;
        throw new CudaError(`pipeline device "${device}": ${e.message}`, { cause: e });
      }
    }
    this.#executor = new BatchExecutor(threads);
  }

  /** Bytes of one batch. */
  get batchBytes(): number {
    return this.#batchBytes;
  }

  /**
   * Adds a sample. Throws at once {@link Shutdown} after close,
   * {@link BudgetExceeded} when one batch is larger than
   * `maxDeviceMemoryBytes` (it could never be assembled), and
   * {@link InvalidArgument} for a malformed request. The returned promise
   * settles when the sample is resolved against its image; it rejects with
   * {@link NotFound} (image or level), {@link InvalidArgument} (axes, or a
   * shape other than `sampleShape`) or a storage error — and so does the
   * `pop()` of the batch holding the sample. Awaiting it is optional. With
   * `rank`/`worldSize`, a sample of another rank is checked, counted and
   * skipped (the promise resolves at once).
   */
  push(sample: SampleRequest): Promise<void> {
    if (this.#closed) throw new Shutdown("push(): the pipeline was closed");
    if (this.#batchBytes > this.#budget) {
      throw new BudgetExceeded(
        `push(): one batch needs ${this.#batchBytes} bytes (samplesPerBatch ${this.#spb} × ` +
          `[${this.#sampleShape}] ${this.#dtype}) but maxDeviceMemoryBytes is ${this.#budget}`,
      );
    }
    checkRequest(sample);
    if (this.#pushed++ % this.#split.worldSize !== this.#split.rank) return Promise.resolve();
    const resolved = this.#resolve(sample);
    resolved.catch(() => {}); // reported by the returned promise and by pop()
    this.#pending.push({ request: sample, resolved });
    this.#pump();
    this.#signal();
    const done = resolved.then(() => {});
    done.catch(() => {});
    return done;
  }

  /**
   * The next batch, in push order, once assembled. Throws {@link Shutdown}
   * after close, the batch's error when one of its samples failed, and
   * {@link PoolStarved} when no batch can come: live batches fill
   * `maxDeviceMemoryBytes`, or none arrives within `popTimeoutMs` (too
   * few samples pushed, or assembly too slow).
   */
  async pop(): Promise<PipelineBatch> {
    const started = performance.now();
    const deadline = started + this.#popTimeoutMs;
    for (;;) {
      if (this.#closed) throw new Shutdown("pop(): the pipeline was closed");
      this.#pump();
      const head = this.#queue[0];
      if (!head && this.#pending.length >= this.#spb) {
        const live = this.#executor.liveBytes();
        throw new PoolStarved(
          `pop(): live batches hold ${live} of maxDeviceMemoryBytes ${this.#budget} bytes and ` +
            `the next batch needs ${this.#batchBytes}: release popped batches (dispose or ` +
            `release(), and DLPack capsules) or raise maxDeviceMemoryBytes`,
        );
      }
      const left = deadline - performance.now();
      const woke = await this.#waitFor(head?.promise, left);
      if (woke === "timeout") {
        throw new PoolStarved(
          head
            ? `pop(): batch ${head.index} was not assembled within popTimeoutMs ${this.#popTimeoutMs}: ` +
              `raise popTimeoutMs or ioThreads`
            : `pop(): ${this.#pending.length} samples pushed, a batch needs samplesPerBatch ` +
              `${this.#spb}; none came within popTimeoutMs ${this.#popTimeoutMs}: push more samples ` +
              `or raise popTimeoutMs`,
        );
      }
      if (!head || this.#queue[0] !== head || !head.settled) continue;
      this.#queue.shift();
      this.#popMs += performance.now() - started;
      this.#popCount++;
      const batch = await head.promise; // settled: rethrows a failed batch's error
      this.#popBytes += batch.byteLength;
      this.#pump();
      return batch;
    }
  }

  /** Per-stage statistics so far. */
  stats(): PipelineStats {
    const n = this.#executor.stats();
    const ms = (ns: number) => ns / 1e6;
    return {
      plan: {
        ms: this.#planMs + ms(n.plan.ns),
        bytes: n.plan.bytes,
        count: this.#planCount,
      },
      io: { ms: ms(n.io.ns), bytes: n.io.bytes, count: n.io.count },
      transfer: { ms: ms(n.transfer.ns), bytes: n.transfer.bytes, count: n.transfer.count },
      decode: { ms: ms(n.decode.ns), bytes: n.decode.bytes, count: n.decode.count },
      assemble: { ms: ms(n.assemble.ns), bytes: n.assemble.bytes, count: n.assemble.count },
      pop_wait: { ms: this.#popMs, bytes: this.#popBytes, count: this.#popCount },
      pendingSamples: this.#pending.length,
      queuedBatches: this.#queue.length,
      liveBytes: this.#executor.liveBytes(),
      ...(this.#cuda ? { cuda: this.#cuda.counters() } : {}),
    };
  }

  /**
   * Stops the pipeline: later calls throw {@link Shutdown}, a waiting
   * `pop()` rejects with it, batches not yet popped are released once
   * assembled, and images opened for samples are closed. Popped batches
   * stay valid until released.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#signal();
    const queued = this.#queue;
    const pending = this.#pending;
    this.#queue = [];
    this.#pending = [];
    await Promise.allSettled(pending.map((p) => p.resolved));
    for (const q of queued) {
      try {
        (await q.promise)[Symbol.dispose]();
      } catch {
        // a failed batch holds nothing
      }
    }
    this.#executor[Symbol.dispose]();
    this.#cuda?.[Symbol.dispose]();
    for (const image of this.#images.values()) {
      try {
        (await image)[Symbol.dispose]();
      } catch {
        // never opened
      }
    }
    this.#images.clear();
  }

  /** Same as {@link Pipeline.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Starts batches while samples, lookahead and the memory budget allow. */
  #pump(): void {
    while (
      !this.#closed &&
      this.#pending.length >= this.#spb &&
      this.#queue.length < this.#lookahead &&
      this.#executor.liveBytes() + (this.#inFlight + 1) * this.#batchBytes <= this.#budget
    ) {
      const samples = this.#pending.splice(0, this.#spb);
      const queued: Queued = {
        index: this.#batchCount++,
        promise: Promise.resolve() as unknown as Promise<PipelineBatch>,
        settled: false,
      };
      this.#inFlight++;
      queued.promise = this.#assemble(queued.index, samples).finally(() => {
        this.#inFlight--;
        queued.settled = true;
        this.#pump();
        this.#signal();
      });
      queued.promise.catch(() => {}); // delivered by pop()
      this.#queue.push(queued);
    }
  }

  async #assemble(index: number, samples: Pending[]): Promise<PipelineBatch> {
    const resolved = await Promise.all(samples.map((s) => s.resolved));
    const arrays: NativeArray[] = [];
    const words: number[] = [dtypeCode(this.#dtype), this.#spb, this.#sampleShape.length];
    words.push(...this.#sampleShape);
    for (const r of resolved) {
      let i = arrays.indexOf(r.array);
      if (i < 0) i = arrays.push(r.array) - 1;
      words.push(i, r.dims.length / 3, ...r.dims);
    }
    const desc = BigInt64Array.from(words, BigInt);
    const buffer = await this.#executor.assemble(arrays, desc, this.#cuda).catch((e) => {
      // The device ran out of budget next to batches the consumer holds.
      if (e instanceof BudgetExceeded && e.message.startsWith("live batches hold")) {
        throw new PoolStarved(`batch ${index}: ${e.message}`, { cause: e });
      }
      throw e;
    });
    if (this.#closed) {
      buffer[Symbol.dispose]();
      throw new Shutdown("the pipeline was closed");
    }
    return new PipelineBatch(
      buffer,
      this.#dtype,
      [this.#spb, ...this.#sampleShape],
      ["n", ...resolved[0].axes],
      index,
      samples.map((s) => s.request),
    );
  }

  /** Resolves a sample's box against its image level. */
  async #resolve(sample: SampleRequest): Promise<Resolved> {
    const image = await this.#image(sample.uri);
    const started = performance.now();
    try {
      return this.#resolveBox(sample, image);
    } finally {
      this.#planMs += performance.now() - started;
      this.#planCount++;
    }
  }

  #resolveBox(sample: SampleRequest, image: Image): Resolved {
    const level = sample.level ?? 0;
    if (level >= image.levels.length) {
      throw new NotFound(
        `sample level ${level} does not exist: ${image.source} has levels 0..${
          image.levels.length - 1
        }`,
      );
    }
    const shape = image.levels[level].shape;
    const byAxis = new Map<string, BoxSelection>();
    for (const [key, sel] of Object.entries(sample.box)) {
      const lower = key.toLowerCase();
      const name = image.axes.includes(lower) ? lower : ALIASES[lower] ?? lower;
      if (!image.axes.includes(name)) {
        throw new InvalidArgument(
          `sample box axis "${key}" is not an axis of ${image.source} (axes: ${
            image.axes.join(", ")
          })`,
        );
      }
      byAxis.set(name, sel);
    }
    const dims: number[] = [];
    const axes: string[] = [];
    const kept: number[] = [];
    image.axes.forEach((axis, d) => {
      const sel = byAxis.get(axis) ?? [0, shape[d]] as const;
      if (typeof sel === "number") {
        if (sel < 0 || sel >= shape[d]) {
          throw new InvalidArgument(
            `sample box index ${axis}: ${sel} is outside [0, ${shape[d]}) of ${image.source}`,
          );
        }
        dims.push(sel, 1, 0);
      } else {
        dims.push(sel[0], sel[1] - sel[0], 1);
        axes.push(axis);
        kept.push(sel[1] - sel[0]);
      }
    });
    if (
      kept.length !== this.#sampleShape.length || kept.some((n, i) => n !== this.#sampleShape[i])
    ) {
      throw new InvalidArgument(
        `sample box of ${image.source} has shape [${kept}] over axes [${axes}], ` +
          `the pipeline's sampleShape is [${this.#sampleShape}]`,
      );
    }
    const array = image.nativeArray(level);
    if (!(array instanceof NativeArray)) {
      throw new InvalidArgument(
        `${image.source} is not a Zarr array or OME-Zarr image: pipeline samples come from Zarr ` +
          `stores (convert OME-Arrow with omeArrowToOmeZarr first)`,
      );
    }
    return { array, dims, axes };
  }

  #image(uri: string | URL): Promise<Image> {
    const key = String(uri);
    let image = this.#images.get(key);
    if (!image) {
      const started = performance.now();
      image = open(uri).finally(() => this.#planMs += performance.now() - started);
      image.catch(() => this.#images.delete(key));
      this.#images.set(key, image);
    }
    return image;
  }

  /** Waits until `promise` settles, something changes (push, batch done, close) or `ms` pass. */
  #waitFor(promise: Promise<unknown> | undefined, ms: number): Promise<"ready" | "timeout"> {
    if (ms <= 0) return Promise.resolve("timeout");
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve("timeout"), ms);
      const done = () => {
        clearTimeout(timer);
        resolve("ready");
      };
      this.#wake.push(done);
      promise?.then(done, done);
    });
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }
}

/** Checks the form of a sample request (no metadata needed). */
function checkRequest(sample: SampleRequest): void {
  const s = sample as Partial<SampleRequest> | undefined;
  if (s === null || typeof s !== "object") {
    throw new InvalidArgument(`push(): sample ${describe(s)} must be { uri, level?, box }`);
  }
  if (typeof s.uri !== "string" && !(s.uri instanceof URL)) {
    throw new InvalidArgument(`push(): sample uri ${describe(s.uri)} must be a path or URL`);
  }
  if (s.level !== undefined && (!Number.isInteger(s.level) || s.level < 0)) {
    throw new InvalidArgument(`push(): sample level ${describe(s.level)} of ${s.uri}`);
  }
  if (s.box === null || typeof s.box !== "object") {
    throw new InvalidArgument(
      `push(): sample box ${describe(s.box)} of ${s.uri} must be an object`,
    );
  }
  for (const [axis, sel] of Object.entries(s.box)) {
    const ok = typeof sel === "number"
      ? Number.isSafeInteger(sel)
      : Array.isArray(sel) && sel.length === 2 && sel.every(Number.isSafeInteger) &&
        sel[1] > sel[0];
    if (!ok) {
      throw new InvalidArgument(
        `push(): box axis "${axis}" of ${s.uri} is ${
          describe(sel)
        }: use an index or [start, stop) with stop > start`,
      );
    }
  }
}

function positiveInt(value: unknown, what: string, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidArgument(
      `pipeline ${what} ${describe(value)} must be an integer in [1, ${max}]`,
    );
  }
  return value;
}

function positiveNumber(value: unknown, what: string): number {
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new InvalidArgument(`pipeline ${what} ${describe(value)} must be a positive number`);
  }
  return value;
}

/** A value for messages; never throws. */
function describe(value: unknown): string {
  try {
    return JSON.stringify(value, (_, v) => typeof v === "bigint" ? `${v}n` : v) ?? String(value);
  } catch {
    return String(value);
  }
}
