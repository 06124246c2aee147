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

/** Encodes a request whose output is C-order over the kept dimensions in store order. */
export function encodeRequest(
  dtype: DType,
  dims: readonly DimSelection[],
): BigInt64Array<ArrayBuffer> {
  const strides = contiguousStrides(dims.filter((d) => d.keep).map((d) => d.count));
  let k = 0;
  const words = [dtypeCode(dtype), dims.length];
  for (const d of dims) words.push(d.start, d.count, d.step, d.keep ? strides[k++] : 0);
  return BigInt64Array.from(words, BigInt);
}

/** The selections of a whole box `[origin, origin + shape)`, every dimension kept. */
export function boxSelection(origin: readonly number[], shape: readonly number[]): DimSelection[] {
  return shape.map((count, d) => ({ start: origin[d], count, step: 1, keep: true }));
}
