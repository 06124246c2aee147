/**
 * Region requests: the numeric form of "which box of an array, with which
 * steps, in which dtype" that the native reader takes (rust/src/region.rs).
 * @module
 */

import { type DType, dtypeCode } from "./dtype.ts";
import { contiguousStrides } from "./tensor_view.ts";

/** The selection of one array dimension. */
export interface DimSelection {
  /** First index. */
  start: number;
  /** Number of indices. */
  count: number;
  /** Distance between indices. */
  step: number;
  /** Whether the dimension stays in the output (false: a single index, dropped). */
  keep: boolean;
}

/**
 * Encodes a request whose output is C-order over the dimensions listed in
 * `order` (indices of kept dimensions, in output order; default: the kept
 * dimensions in store order). The permutation costs nothing: each element
 * is written straight to its place.
 */
export function encodeRequest(
  dtype: DType,
  dims: readonly DimSelection[],
  order: readonly number[] = dims.flatMap((d, i) => d.keep ? [i] : []),
): BigInt64Array<ArrayBuffer> {
  const outStrides = contiguousStrides(order.map((i) => dims[i].count));
  const strides = dims.map(() => 0);
  order.forEach((dim, k) => strides[dim] = outStrides[k]);
  const words = [dtypeCode(dtype), dims.length];
  dims.forEach((d, i) => words.push(d.start, d.count, d.step, strides[i]));
  return BigInt64Array.from(words, BigInt);
}

/** The selections of a whole box `[origin, origin + shape)`, every dimension kept. */
export function boxSelection(origin: readonly number[], shape: readonly number[]): DimSelection[] {
  return shape.map((count, d) => ({ start: origin[d], count, step: 1, keep: true }));
}
