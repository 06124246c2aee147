/**
 * TensorView: a strided view over native memory.
 * @module
 */

import {
  type AnyTypedArray,
  type DType,
  dtypeSize,
  typedArray,
  type TypedArrayFor,
} from "./dtype.ts";
import { InvalidArgument } from "./errors.ts";
import type { NativeBuffer } from "./native.ts";

/** Where a view's memory lives. */
export type Device = "cpu";

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

/**
 * A tensor: dtype, shape and strides (in elements) over a native buffer.
 * The buffer is shared with other views of it and freed when the last
 * reference goes; disposing a view releases its reference at once.
 */
export class TensorView<D extends DType = DType> implements Disposable {
  /** Element type. */
  readonly dtype: D;
  /** Extent of each axis. */
  readonly shape: readonly number[];
  /** Distance between neighbours along each axis, in elements. */
  readonly strides: readonly number[];
  /** Axis names, lower case, in view order. */
  readonly axes: readonly string[];
  /** Offset of the first element from the start of the buffer, in elements. */
  readonly offset: number;
  /** Where the memory lives. */
  readonly device: Device = "cpu";
  #buffer: NativeBuffer;

  /** Wraps `buffer`; `strides` default to C order. */
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

  /** Axis letters in view order, e.g. "CZYX". */
  get layout(): string {
    return layoutOf(this.axes);
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Bytes spanned by the elements of this view. */
  get byteLength(): number {
    return this.size * dtypeSize(this.dtype);
  }

  /** Whether the elements are packed in C order with no gaps. */
  isContiguous(): boolean {
    const expected = contiguousStrides(this.shape);
    return this.shape.every((n, i) => n === 1 || this.strides[i] === expected[i]);
  }

  /**
   * The elements as a typed array over native memory (no copy), in C order.
   * `bool` is a Uint8Array of 0/1 and `bfloat16` a Uint16Array of raw bits.
   * The array becomes empty once the view (and so its memory) is disposed.
   */
  data(): TypedArrayFor<D> {
    if (!this.isContiguous()) {
      throw new InvalidArgument(
        `view with strides [${this.strides}] is not contiguous; data() needs a C-order view`,
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

  /** Releases this view's reference to the memory. */
  [Symbol.dispose](): void {
    this.#buffer[Symbol.dispose]();
  }
}
