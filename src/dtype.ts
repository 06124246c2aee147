/**
 * Element types: names, native codes, sizes, typed arrays and fill values.
 * @module
 */

import { DtypeMismatch } from "./errors.ts";

/**
 * Element type names. `bfloat16` is a cast target only.
 *
 * @example
 * ```ts
 * import { type DType, open } from "@tessera/tessera";
 * const target: DType = "bfloat16";
 * using img = await open("data/sample.ome.zarr");
 * using view = await img.scan().select({ t: 0, z: 0 }).cast(target).collect();
 * ```
 */
export type DType =
  | "bool"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "uint8"
  | "uint16"
  | "uint32"
  | "uint64"
  | "float16"
  | "float32"
  | "float64"
  | "bfloat16";

/** Native codes (rust/src/dtype.rs) in code order. */
const NAMES: readonly DType[] = [
  "bool",
  "int8",
  "int16",
  "int32",
  "int64",
  "uint8",
  "uint16",
  "uint32",
  "uint64",
  "float16",
  "float32",
  "float64",
  "bfloat16",
];

const SIZES: Record<DType, number> = {
  bool: 1,
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  float16: 2,
  bfloat16: 2,
  int32: 4,
  uint32: 4,
  float32: 4,
  int64: 8,
  uint64: 8,
  float64: 8,
};

/** Every dtype name. */
export const DTYPES: readonly DType[] = NAMES;

/**
 * The typed array that holds elements of each dtype (bool as 0/1 bytes, bfloat16 as raw bits).
 *
 * @example
 * ```ts
 * import type { TypedArrayFor } from "@tessera/tessera";
 * const floats: TypedArrayFor<"float32"> = new Float32Array(4);
 * const wide: TypedArrayFor<"uint64"> = new BigUint64Array(4);
 * ```
 */
export type TypedArrayFor<D extends DType> = D extends "bool" | "uint8" ? Uint8Array<ArrayBuffer>
  : D extends "int8" ? Int8Array<ArrayBuffer>
  : D extends "int16" ? Int16Array<ArrayBuffer>
  : D extends "uint16" | "bfloat16" ? Uint16Array<ArrayBuffer>
  : D extends "int32" ? Int32Array<ArrayBuffer>
  : D extends "uint32" ? Uint32Array<ArrayBuffer>
  : D extends "int64" ? BigInt64Array<ArrayBuffer>
  : D extends "uint64" ? BigUint64Array<ArrayBuffer>
  : D extends "float16" ? Float16Array<ArrayBuffer>
  : D extends "float32" ? Float32Array<ArrayBuffer>
  : D extends "float64" ? Float64Array<ArrayBuffer>
  : never;

/**
 * Any typed array tessera hands out.
 *
 * @example
 * ```ts
 * import type { AnyTypedArray } from "@tessera/tessera";
 * const pixels: AnyTypedArray = new Uint16Array(16);
 * ```
 */
export type AnyTypedArray = TypedArrayFor<DType>;

/** Checks a dtype name, throwing {@link DtypeMismatch} naming it when unknown. */
export function parseDType(name: unknown, what = "dtype"): DType {
  if (typeof name === "string" && (NAMES as readonly string[]).includes(name)) return name as DType;
  throw new DtypeMismatch(`${what} ${JSON.stringify(name)} is not one of ${NAMES.join(", ")}`);
}

/** Native code of a dtype. */
export function dtypeCode(dtype: DType): number {
  return NAMES.indexOf(dtype);
}

/** The dtype of a native code. */
export function dtypeFromCode(code: number): DType {
  const dtype = NAMES[code];
  if (dtype === undefined) throw new DtypeMismatch(`unknown native dtype code ${code}`);
  return dtype;
}

/** Bytes per element. */
export function dtypeSize(dtype: DType): number {
  return SIZES[dtype];
}

/** A typed array over `length` elements of `buffer` starting at `byteOffset`. */
export function typedArray<D extends DType>(
  dtype: D,
  buffer: ArrayBuffer,
  byteOffset = 0,
  length?: number,
): TypedArrayFor<D> {
  const n = length ?? (buffer.byteLength - byteOffset) / SIZES[dtype];
  const make = {
    bool: () => new Uint8Array(buffer, byteOffset, n),
    uint8: () => new Uint8Array(buffer, byteOffset, n),
    int8: () => new Int8Array(buffer, byteOffset, n),
    int16: () => new Int16Array(buffer, byteOffset, n),
    uint16: () => new Uint16Array(buffer, byteOffset, n),
    bfloat16: () => new Uint16Array(buffer, byteOffset, n),
    int32: () => new Int32Array(buffer, byteOffset, n),
    uint32: () => new Uint32Array(buffer, byteOffset, n),
    int64: () => new BigInt64Array(buffer, byteOffset, n),
    uint64: () => new BigUint64Array(buffer, byteOffset, n),
    float16: () => new Float16Array(buffer, byteOffset, n),
    float32: () => new Float32Array(buffer, byteOffset, n),
    float64: () => new Float64Array(buffer, byteOffset, n),
  }[dtype];
  return make() as TypedArrayFor<D>;
}

/**
 * A fill value as JavaScript holds it.
 *
 * @example
 * ```ts
 * import type { FillValue } from "@tessera/tessera";
 * const fills: FillValue[] = [0, Number.NaN, 2n ** 63n - 1n, false];
 * ```
 */
export type FillValue = number | bigint | boolean;

/** Encodes one element of `dtype` as little-endian bytes. */
export function encodeScalar(dtype: DType, value: FillValue): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(SIZES[dtype]);
  const array = typedArray(dtype, bytes.buffer);
  if (dtype === "int64" || dtype === "uint64") {
    (array as BigInt64Array | BigUint64Array)[0] = BigInt(value);
  } else if (dtype === "bfloat16") {
    const f = new Float32Array([Number(value)]);
    (array as Uint16Array)[0] = new Uint16Array(f.buffer)[1];
  } else {
    (array as Float64Array)[0] = Number(value);
  }
  return bytes;
}
