/**
 * TensorView: a strided view over native memory. Views made by
 * `withLayout`, `select`, `slice` and `flip` share the memory of the view
 * they come from (each holds its own reference); `contiguous()` copies only
 * when the elements are not already packed in C order.
 * @module
 */

import {
  type AnyTypedArray,
  type DType,
  dtypeCode,
  dtypeFromCode,
  dtypeSize,
  typedArray,
  type TypedArrayFor,
} from "./dtype.ts";
import { InvalidArgument } from "./errors.ts";
// A full specifier, so that scripts and notebooks importing tessera by path need no import map.
// deno-lint-ignore no-import-prefix
import type * as arrow from "npm:apache-arrow@21.2.0";
import { arrowC, type ArrowCExport, type ArrowOptions, arrowTable } from "./arrow.ts";
import { resolveLayout } from "./layout.ts";
import { NativeBuffer } from "./native.ts";
import { type RenderedPng, type RenderOptions, renderView } from "./render.ts";
import { displayView, type MediaBundle } from "./display.ts";

/**
 * Where a view's memory lives: host memory, or a CUDA device (pipeline batches).
 *
 * @example
 * ```ts
 * import { type Device, open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * using view = await img.scan().select({ t: 0, z: 0 }).collect();
 * const where: Device = view.device; // "cpu"
 * ```
 */
export type Device = "cpu" | `cuda:${number}`;

/**
 * A selection of one axis of a view: an index (drops the axis), or `[start, stop, step?]` (Python slice rules, `null` for an open end; a negative step walks backwards).
 *
 * @example
 * ```ts
 * import { type ViewSelection, open } from "@tessera/tessera";
 * const reversed: ViewSelection = [null, null, -1];
 * using img = await open("data/sample.ome.zarr");
 * using plane = await img.scan().select({ t: 0, z: 0 }).collect();
 * using flipped = plane.select({ x: reversed, c: 0 });
 * ```
 */
export type ViewSelection =
  | number
  | readonly [number | null, number | null]
  | readonly [
    number | null,
    number | null,
    number,
  ];

/**
 * Options of {@link TensorView.toDLPack}.
 *
 * @example
 * ```ts
 * import { type DLPackOptions, open } from "@tessera/tessera";
 * const options: DLPackOptions = { versioned: true, readOnly: true };
 * using img = await open("data/sample.ome.zarr");
 * using view = await img.scan().select({ t: 0, z: 0 }).collect();
 * const capsule = view.toDLPack(options);
 * ```
 */
export interface DLPackOptions {
  /** Export `DLManagedTensorVersioned` (DLPack ≥ 1.0, default) or the legacy `DLManagedTensor`. */
  versioned?: boolean;
  /** Flag the tensor read-only (versioned only): consumers must not write to it. */
  readOnly?: boolean;
}

/** C-order strides (in elements) of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= shape[i];
  }
  return strides;
}

/** Layout string of axis names: upper-case letters ("CZYX") when every name is one letter. */
export function layoutOf(axes: readonly string[]): string {
  return axes.every((a) => a.length === 1) ? axes.join("").toUpperCase() : axes.join(",");
}

/** Start and count of a Python-style slice of an axis of size `n`; throws when empty or out of range. */
function sliceAxis(
  axis: string,
  n: number,
  sel: readonly (number | null)[],
): { start: number; count: number; step: number } {
  const [rawStart, rawStop] = sel;
  const step = sel[2] ?? 1;
  const bad = (what: string): never => {
    throw new InvalidArgument(`view selection of axis "${axis}" (size ${n}): ${what}`);
  };
  if (!Number.isInteger(step) || step === 0) bad(`step ${step} must be a non-zero integer`);
  const bound = (v: number | null, open: number): number => {
    if (v === null || v === undefined) return open;
    if (!Number.isInteger(v) || v < -n || v > n) return bad(`${v} is outside [-${n}, ${n}]`);
    return v < 0 ? v + n : v;
  };
  const start = bound(rawStart, step > 0 ? 0 : n - 1);
  const stop = bound(rawStop, step > 0 ? n : -1);
  const count = step > 0 ? Math.ceil((stop - start) / step) : Math.ceil((start - stop) / -step);
  if (count <= 0 || start >= n) bad(`[${rawStart}, ${rawStop}, ${step}] selects nothing`);
  return { start, count, step };
}

/**
 * A tensor: dtype, shape and strides (in elements) over native memory.
 * Disposing a view releases its reference; the memory is freed with the
 * last one (other views, DLPack consumers).
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * using view = await img.scan().select({ t: 0, z: 5 }).collect();
 * using yxc = view.withLayout("YXC"); // zero copy
 * console.log(yxc.shape, yxc.strides, yxc.isContiguous()); // [1024, 1024, 3] [1024, 1, 1048576] false
 * const pixels = view.data(); // Uint16Array over native memory
 * ```
 */
export class TensorView<D extends DType = DType> implements Disposable {
  /** Element type. */
  readonly dtype: D;
  /** Extent of each axis. */
  readonly shape: readonly number[];
  /** Distance between neighbours along each axis, in elements (may be negative). */
  readonly strides: readonly number[];
  /** Axis names, lower case, in view order. */
  readonly axes: readonly string[];
  /** Offset of the first element from the start of the buffer, in elements. */
  readonly offset: number;
  #buffer: NativeBuffer;

  /** Wraps `buffer` (taking over this reference); `strides` default to C order. */
  constructor(
    buffer: NativeBuffer,
    dtype: D,
    shape: readonly number[],
    axes: readonly string[],
    strides: readonly number[] = contiguousStrides(shape),
    offset = 0,
  ) {
    if (shape.length !== axes.length || shape.length !== strides.length) {
      throw new InvalidArgument(
        `view of shape [${shape}] needs one axis name and stride per axis, got [${axes}] and [${strides}]`,
      );
    }
    this.#buffer = buffer;
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze([...strides]);
    this.axes = Object.freeze([...axes]);
    this.offset = offset;
  }

  /** Where the memory lives; `data()` and `at()` need "cpu", `toDLPack()` works for both. */
  get device(): Device {
    const ordinal = this.#buffer.deviceOrdinal;
    return ordinal < 0 ? "cpu" : `cuda:${ordinal}`;
  }

  /** Axis letters in view order, e.g. "CZYX". */
  get layout(): string {
    return layoutOf(this.axes);
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Bytes of the elements of this view. */
  get byteLength(): number {
    return this.size * dtypeSize(this.dtype);
  }

  /** Address of the first element (for interop checks). */
  get address(): bigint {
    return BigInt(Deno.UnsafePointer.value(this.#buffer.pointer)) +
      BigInt(this.offset * dtypeSize(this.dtype));
  }

  /** Whether the elements are packed in C order with no gaps. */
  isContiguous(): boolean {
    const expected = contiguousStrides(this.shape);
    return this.shape.every((n, i) => n === 1 || this.strides[i] === expected[i]);
  }

  #derive(
    shape: readonly number[],
    axes: readonly string[],
    strides: readonly number[],
    offset: number,
  ): TensorView<D> {
    return new TensorView(this.#buffer.retain(), this.dtype, shape, axes, strides, offset);
  }

  /**
   * The same memory with the axes reordered (zero copy), e.g. "ZYXC". Every
   * axis longer than 1 must appear; size-1 axes may be left out.
   */
  withLayout(spec: string): TensorView<D> {
    const required = this.axes.filter((_, i) => this.shape[i] !== 1);
    const order = resolveLayout(spec, this.axes, required, `this ${this.layout} view`);
    return this.#derive(
      order.map((i) => this.shape[i]),
      order.map((i) => this.axes[i]),
      order.map((i) => this.strides[i]),
      this.offset,
    );
  }

  /** A sub-view (zero copy): an index drops the axis; `[start, stop, step]` keeps it, negative steps reverse. */
  select(selection: Record<string, ViewSelection>): TensorView<D> {
    const shape = [...this.shape], strides = [...this.strides];
    const keep = this.axes.map(() => true);
    let offset = this.offset;
    for (const [key, sel] of Object.entries(selection)) {
      const i = this.#axisIndex(key);
      const n = this.shape[i];
      if (typeof sel === "number") {
        if (!Number.isInteger(sel) || sel < -n || sel >= n) {
          throw new InvalidArgument(
            `view selection of axis "${this.axes[i]}" (size ${n}): index ${sel} is out of range`,
          );
        }
        offset += (sel < 0 ? sel + n : sel) * this.strides[i];
        keep[i] = false;
      } else if (Array.isArray(sel) && (sel.length === 2 || sel.length === 3)) {
        const { start, count, step } = sliceAxis(this.axes[i], n, sel);
        offset += start * this.strides[i];
        shape[i] = count;
        strides[i] = this.strides[i] * step;
      } else {
        throw new InvalidArgument(
          `view selection of axis "${key}": ${
            String(sel)
          } must be an index or [start, stop, step?]`,
        );
      }
    }
    const kept = (values: readonly (number | string)[]) => values.filter((_, i) => keep[i]);
    return this.#derive(
      kept(shape) as number[],
      kept(this.axes) as string[],
      kept(strides) as number[],
      offset,
    );
  }

  /** `select` of one axis: `slice("x", 10, 20)`, `slice("z", null, null, -1)`. */
  slice(axis: string, start: number | null, stop: number | null, step = 1): TensorView<D> {
    return this.select({ [axis]: [start, stop, step] });
  }

  /** The axis reversed (zero copy: a negative stride). */
  flip(axis: string): TensorView<D> {
    return this.slice(axis, null, null, -1);
  }

  #axisIndex(key: string): number {
    const lower = key.toLowerCase();
    const name = this.axes.includes(lower)
      ? lower
      : ({ h: "y", w: "x" } as Record<string, string>)[lower] ?? lower;
    const i = this.axes.indexOf(name);
    if (i < 0) {
      throw new InvalidArgument(
        `axis "${key}" is not an axis of this view (axes: ${this.axes.join(", ")})`,
      );
    }
    return i;
  }

  #layoutWords(): BigInt64Array<ArrayBuffer> {
    return BigInt64Array.from(
      [dtypeCode(this.dtype), this.shape.length, this.offset, ...this.shape, ...this.strides],
      BigInt,
    );
  }

  /** A C-contiguous view: this memory when already packed (no copy), else a new copy. */
  async contiguous(): Promise<TensorView<D>> {
    if (this.isContiguous()) {
      return this.#derive(this.shape, this.axes, contiguousStrides(this.shape), this.offset);
    }
    const copy = await this.#buffer.copyStrided(this.#layoutWords());
    return new TensorView(copy, this.dtype, this.shape, this.axes);
  }

  /**
   * The elements as a typed array over native memory (no copy), in C order.
   * `bool` is a Uint8Array of 0/1 and `bfloat16` a Uint16Array of raw bits.
   * The array becomes empty once the view (and so its memory) is disposed.
   */
  data(): TypedArrayFor<D> {
    if (!this.isContiguous()) {
      throw new InvalidArgument(
        `view with strides [${this.strides}] is not contiguous; call contiguous() first`,
      );
    }
    return typedArray(
      this.dtype,
      this.#buffer.arrayBuffer,
      this.offset * dtypeSize(this.dtype),
      this.size,
    );
  }

  /** Element at a multi-index (for inspection; use data() for bulk access). */
  at(...index: number[]): number | bigint {
    if (
      index.length !== this.shape.length || index.some((v, i) => !(v >= 0 && v < this.shape[i]))
    ) {
      throw new InvalidArgument(`index [${index}] is outside shape [${this.shape}]`);
    }
    const flat = index.reduce((acc, v, i) => acc + v * this.strides[i], this.offset);
    const all = typedArray(this.dtype, this.#buffer.arrayBuffer) as AnyTypedArray;
    return all[flat];
  }

  /**
   * Exports the view as a DLPack managed tensor (zero copy; shape and strides
   * in elements). The tensor holds its own reference to the memory: this view
   * may be disposed first. Whoever receives the pointer calls its deleter
   * once (or passes it to {@link fromDLPack} / a consumer that does).
   */
  toDLPack(options: DLPackOptions = {}): Deno.PointerObject {
    return this.#buffer.exportDLPack(
      this.#layoutWords(),
      options.versioned ?? true,
      options.readOnly ?? false,
    );
  }

  /**
   * The view as an apache-arrow table with one `arrow.fixed_shape_tensor`
   * column over the same memory (no copy; non-C layouts are described by the
   * extension's `permutation`). The table keeps its own reference to the
   * memory, so this view may be disposed first.
   */
  toArrow(options: ArrowOptions = {}): arrow.Table {
    return arrowTable(this, this.#buffer.retain(), this.offset, options);
  }

  /**
   * Exports the view through the Arrow C Data Interface (no copy), e.g. for
   * `pyarrow.Array._import_from_c(e.arrayAddress, e.schemaAddress)`.
   * Disposing the export releases what a consumer did not take.
   */
  toArrowC(options: ArrowOptions = {}): ArrowCExport {
    return arrowC(this, this.#buffer, this.offset, options);
  }

  /**
   * Renders the view as an RGB PNG in the native library: the "y" and "x"
   * axes (else the last two) are the image, sampled to fit `maxSize`; the
   * "c" axis (if any) holds channels composited in their colors; every
   * other axis is max-projected. Contrast comes from percentiles unless
   * windows are given.
   *
   * @example
   * ```ts
   * import { open } from "@tessera/tessera";
   * using img = await open("data/sample.ome.zarr");
   * using plane = await img.scan().select({ t: 0, z: 5 }).collect(); // CYX
   * const { png, windows } = await plane.toPNG({ colors: ["0000FF", "00FF00", "FF0000"] });
   * await Deno.writeFile("plane.png", png);
   * ```
   */
  toPNG(options: RenderOptions = {}): Promise<RenderedPng> {
    return renderView(this.#buffer, this.#layoutWords(), this.axes, this.shape, options);
  }

  /** Jupyter (Deno kernel) display: shape, dtype, layout and, for 2-D/3-D data, a PNG. */
  [Symbol.for("Jupyter.display")](): Promise<MediaBundle> {
    return displayView(this);
  }

  /** Releases this view's reference to the memory. */
  [Symbol.dispose](): void {
    this.#buffer[Symbol.dispose]();
  }
}

/** Default axis names for an imported tensor of rank `n`. */
function defaultAxes(n: number): string[] {
  const letters = ["t", "c", "z", "y", "x"];
  return n <= letters.length
    ? letters.slice(letters.length - n)
    : Array.from({ length: n }, (_, i) => `d${i}`);
}

/**
 * Imports another producer's DLPack managed tensor as a view (zero copy).
 * Ownership passes to the view: the producer's deleter runs once, when the
 * view and every view derived from it are disposed (or collected).
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * using view = await img.scan().select({ t: 0, z: 0 }).collect();
 * const capsule = view.toDLPack(); // a DLManagedTensorVersioned*
 * using back = fromDLPack(capsule, { axes: ["c", "y", "x"] });
 * console.log(back.address === view.address); // true: zero copy
 * ```
 */
export function fromDLPack(
  managed: Deno.PointerObject,
  options: { versioned?: boolean; axes?: string[] } = {},
): TensorView {
  const { buffer, layout } = NativeBuffer.importDLPack(managed, options.versioned ?? true);
  const [code, rank, offset, ...dims] = layout;
  const dtype = dtypeFromCode(code);
  const axes = options.axes ?? defaultAxes(rank);
  if (axes.length !== rank) {
    buffer[Symbol.dispose]();
    throw new InvalidArgument(`fromDLPack: ${axes.length} axis names for a rank-${rank} tensor`);
  }
  return new TensorView(buffer, dtype, dims.slice(0, rank), axes, dims.slice(rank), offset);
}
