/**
 * Zarr v2 metadata: `.zarray`, `.zgroup` and `.zattrs`, translated into the
 * same normalised {@link ArrayMetadata} and codec chain as Zarr v3, so the
 * native library reads v2 chunks without knowing about v2:
 *
 * - `dtype` (`<u2`, `>f8`, `|b1`, …) → data type plus the `bytes` codec's endian;
 * - `order: "F"` → a `transpose` codec with the reversed axis order before `bytes`;
 * - `compressor` (zstd, zlib, gzip, blosc, lz4) → one bytes-to-bytes codec;
 * - `dimension_separator` → the `v2` chunk key encoding with that separator;
 * - `fill_value` null → zero (false), "NaN"/"Infinity"/"-Infinity" for floats;
 * - `_ARRAY_DIMENSIONS` in `.zattrs` (the xarray convention) → dimension names.
 *
 * Filters are not supported; any filter is an error naming it.
 * @module
 */

import { describeJson, parseMetadataJson } from "./json.ts";
import { join } from "node:path";
import { type DType, dtypeSize, encodeScalar } from "../dtype.ts";
import { NotFound, StorageError } from "../errors.ts";
import { type ArrayMetadata, checkChunkSize, type Codec, type NodeMetadata } from "./metadata.ts";

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Compressor ids tessera reads, as numcodecs names them. */
export const V2_COMPRESSORS: readonly string[] = ["zstd", "zlib", "gzip", "blosc", "lz4"];

const BLOSC_CNAMES = ["blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd"] as const;
/** numcodecs' blosc shuffle codes (-1 is AUTOSHUFFLE). */
const BLOSC_SHUFFLES: Record<number, "noshuffle" | "shuffle" | "bitshuffle"> = {
  0: "noshuffle",
  1: "shuffle",
  2: "bitshuffle",
};

/** A text file, or `undefined` when it does not exist. */
async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof Deno.errors.IsADirectory) {
      throw new StorageError(`${file} is a folder, expected a JSON file`);
    }
    throw new StorageError(`${file}: ${(e as Error).message}`);
  }
}

/** Whether a folder holds Zarr v2 metadata (`.zarray` or `.zgroup`). */
export async function isV2Node(path: string): Promise<boolean> {
  for (const name of [".zarray", ".zgroup"]) {
    try {
      if ((await Deno.stat(join(path, name))).isFile) return true;
    } catch {
      // not there
    }
  }
  return false;
}

/** Reads `.zattrs` (an empty object when it is absent). */
export async function readV2Attributes(path: string): Promise<Record<string, unknown>> {
  const file = join(path, ".zattrs");
  const text = await readOptional(file);
  if (text === undefined) return {};
  const json = parseMetadataJson(text, file);
  if (!isObject(json)) throw new StorageError(`${file}: attributes are not a JSON object`);
  return json;
}

/**
 * Reads the Zarr v2 node at `path`: an array (`.zarray`) or a group
 * (`.zgroup`), with the user attributes of `.zattrs`.
 */
export async function readV2Node(path: string): Promise<NodeMetadata> {
  const zarrayFile = join(path, ".zarray");
  const zarray = await readOptional(zarrayFile);
  if (zarray !== undefined) {
    const attributes = await readV2Attributes(path);
    const json = parseMetadataJson(zarray, zarrayFile, true);
    const array = parseV2Array(json, attributes, path, zarrayFile);
    return { kind: "array", array };
  }
  const zgroupFile = join(path, ".zgroup");
  const zgroup = await readOptional(zgroupFile);
  if (zgroup === undefined) {
    throw new NotFound(`${path} is not a Zarr v2 node: it has no .zarray or .zgroup`);
  }
  const json = parseMetadataJson(zgroup, zgroupFile);
  if (!isObject(json)) throw new StorageError(`${zgroupFile}: metadata is not a JSON object`);
  if (json.zarr_format !== 2) {
    throw new StorageError(
      `${zgroupFile} (Zarr v2): zarr_format is ${describeJson(json.zarr_format)}, expected 2`,
    );
  }
  return { kind: "group", group: { path, attributes: await readV2Attributes(path) } };
}

/** numpy's dtype kind letters, for messages. */
const KIND_NAMES: Record<string, string> = {
  b: "boolean",
  i: "integer",
  u: "unsigned integer",
  f: "float",
  c: "complex",
  S: "byte string",
  U: "unicode string",
  V: "raw bytes",
  O: "Python object",
  M: "datetime",
  m: "timedelta",
};

/** The tessera dtype and byte order of a v2 dtype string such as `<u2` or `|b1`. */
export function parseV2Dtype(
  value: unknown,
  fail: (m: string) => never,
): { dtype: DType; endian: "little" | "big" } {
  if (Array.isArray(value)) {
    return fail(`structured dtype ${describeJson(value)} is not supported`);
  }
  if (typeof value !== "string") return fail(`dtype ${describeJson(value)} is not a string`);
  const m = /^([<>|=])([a-zA-Z])(\d+)$/.exec(value);
  const unsupported = (what: string): never =>
    fail(
      `dtype ${describeJson(value)} (${what}) is not supported ` +
        `(supported: bool, int8-64, uint8-64, float16/32/64 in either byte order)`,
    );
  const kind = value.replace(/^[<>|=]/, "")[0] ?? "";
  const what = KIND_NAMES[kind] ?? "unknown kind";
  if (!m) return unsupported(what);
  const [, order, , sizeText] = m;
  const size = Number(sizeText);
  const names: Record<string, Record<number, DType>> = {
    b: { 1: "bool" },
    i: { 1: "int8", 2: "int16", 4: "int32", 8: "int64" },
    u: { 1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64" },
    f: { 2: "float16", 4: "float32", 8: "float64" },
  };
  const dtype = names[kind]?.[size];
  if (!dtype) return unsupported(`${what} of ${size} bytes`);
  if (order === "|" && size > 1) return fail(`dtype ${describeJson(value)} needs a byte order`);
  // "=" is the writer's native order; every platform numpy writes Zarr from is little-endian.
  return { dtype, endian: order === ">" ? "big" : "little" };
}

function integerList(
  value: unknown,
  what: string,
  min: number,
  fail: (m: string) => never,
): number[] {
  if (!Array.isArray(value) || !value.every((v) => Number.isSafeInteger(v) && v >= min)) {
    return fail(`${what} ${describeJson(value)} must be a list of integers ≥ ${min}`);
  }
  if (value.length > 32) fail(`${what} has rank ${value.length}, more than 32`);
  return value as number[];
}

const SPECIAL_FLOATS: Record<string, number> = {
  NaN: NaN,
  Infinity: Infinity,
  "-Infinity": -Infinity,
};

/** Fill value bytes (little-endian) from a v2 `fill_value`; null is zero. */
export function parseV2Fill(
  value: unknown,
  dtype: DType,
  fail: (m: string) => never,
): Uint8Array<ArrayBuffer> {
  const bad = (): never => fail(`fill_value ${stringify(value)} does not fit dtype ${dtype}`);
  if (value === null || value === undefined) return encodeScalar(dtype, 0);
  if (dtype === "bool") {
    if (typeof value === "boolean") return encodeScalar(dtype, value);
    if (value === 0 || value === 1) return encodeScalar(dtype, value === 1);
    return bad();
  }
  if (dtype.startsWith("float")) {
    const v = typeof value === "string" ? SPECIAL_FLOATS[value] : value;
    if (typeof v === "bigint") return encodeScalar(dtype, Number(v));
    if (typeof v !== "number") return bad();
    return encodeScalar(dtype, v);
  }
  let v: bigint;
  if (typeof value === "bigint") v = value;
  else if (typeof value === "number" && Number.isInteger(value)) v = BigInt(value);
  else return bad();
  const bits = BigInt(8 * dtypeSize(dtype));
  const [min, max] = dtype.startsWith("u")
    ? [0n, (1n << bits) - 1n]
    : [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n];
  if (v < min || v > max) bad();
  return encodeScalar(dtype, v);
}

function stringify(value: unknown): string {
  return typeof value === "bigint" ? value.toString() : describeJson(value);
}

/** The bytes-to-bytes codec of a v2 `compressor`; `undefined` for null. */
export function parseV2Compressor(
  value: unknown,
  dtype: DType,
  fail: (m: string) => never,
): Codec | undefined {
  if (value === null || value === undefined) return undefined;
  if (!isObject(value) || typeof value.id !== "string") {
    return fail(`compressor ${describeJson(value)} is malformed`);
  }
  const int = (key: string, fallback: number, min: number, max: number): number => {
    const v = value[key] ?? fallback;
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) {
      fail(`compressor ${value.id}: ${key} ${describeJson(value[key])} is out of range`);
    }
    return v as number;
  };
  switch (value.id) {
    case "zstd":
      return {
        name: "zstd",
        level: int("level", 0, -131072, 22),
        checksum: value.checksum === true,
      };
    case "zlib":
    case "gzip": {
      // The level only matters when writing; -1 is zlib's default (6).
      const level = int("level", value.id === "gzip" ? 5 : 1, -1, 9);
      return { name: value.id, level: level === -1 ? 6 : level };
    }
    case "lz4":
      return { name: "lz4", acceleration: int("acceleration", 1, -(2 ** 31), 2 ** 31 - 1) };
    case "blosc": {
      const cname = value.cname ?? "lz4";
      if (!BLOSC_CNAMES.includes(cname as typeof BLOSC_CNAMES[number])) {
        return fail(
          `compressor blosc: cname ${describeJson(cname)} is not supported (supported: ${
            BLOSC_CNAMES.join(", ")
          })`,
        );
      }
      const code = int("shuffle", 1, -1, 2);
      const typesize = dtypeSize(dtype);
      // numcodecs' AUTOSHUFFLE (-1): bit shuffle for 1-byte items, byte shuffle otherwise.
      const shuffle = code === -1
        ? (typesize === 1 ? "bitshuffle" : "shuffle")
        : BLOSC_SHUFFLES[code];
      return {
        name: "blosc",
        cname: cname as typeof BLOSC_CNAMES[number],
        clevel: int("clevel", 5, 0, 9),
        shuffle,
        typesize,
        blocksize: int("blocksize", 0, 0, 2 ** 31 - 1),
      };
    }
    default:
      return fail(
        `compressor ${describeJson(value.id)} is not supported (supported: ${
          V2_COMPRESSORS.join(", ")
        }, or null)`,
      );
  }
}

/**
 * Validates a parsed `.zarray` and translates it; `attributes` are the
 * array's `.zattrs`, `file` names the `.zarray` in messages.
 */
export function parseV2Array(
  json: unknown,
  attributes: Record<string, unknown>,
  path: string,
  file: string,
): ArrayMetadata {
  const fail = (what: string): never => {
    throw new StorageError(`${file} (Zarr v2): ${what}`);
  };
  if (!isObject(json)) return fail("metadata is not a JSON object");
  if (json.zarr_format !== 2) {
    return fail(`zarr_format is ${describeJson(json.zarr_format)}, expected 2`);
  }
  const shape = integerList(json.shape, "shape", 0, fail);
  const chunkShape = integerList(json.chunks, "chunks", 1, fail);
  if (chunkShape.length !== shape.length) {
    fail(`chunks has rank ${chunkShape.length}, shape has rank ${shape.length}`);
  }
  checkChunkSize(chunkShape, "chunks", fail);
  const { dtype, endian } = parseV2Dtype(json.dtype, fail);
  const filters = json.filters;
  if (filters !== null && filters !== undefined) {
    if (!Array.isArray(filters)) fail(`filters ${describeJson(filters)} is not a list`);
    if ((filters as unknown[]).length > 0) {
      const ids = (filters as unknown[]).map((f) => isObject(f) ? String(f.id) : describeJson(f));
      fail(
        `${ids.length > 1 ? "filters" : "filter"} ${ids.map((id) => describeJson(id)).join(", ")} ${
          ids.length > 1 ? "are" : "is"
        } not supported (tessera reads Zarr v2 arrays without filters)`,
      );
    }
  }
  const order = json.order ?? "C";
  if (order !== "C" && order !== "F") fail(`order ${describeJson(order)} must be "C" or "F"`);
  const separator = json.dimension_separator ?? ".";
  if (separator !== "." && separator !== "/") {
    fail(`dimension_separator ${describeJson(separator)} must be "." or "/"`);
  }
  const codecs: Codec[] = [];
  if (order === "F" && shape.length > 1) {
    codecs.push({ name: "transpose", order: [...shape.keys()].reverse() });
  }
  codecs.push({ name: "bytes", endian });
  const compressor = parseV2Compressor(json.compressor, dtype, fail);
  if (compressor) codecs.push(compressor);

  let dimensionNames: (string | null)[] | undefined;
  const dims = attributes._ARRAY_DIMENSIONS;
  if (dims !== undefined) {
    if (
      !Array.isArray(dims) || dims.length !== shape.length ||
      !dims.every((d) => typeof d === "string")
    ) {
      throw new StorageError(
        `${join(path, ".zattrs")} (Zarr v2): _ARRAY_DIMENSIONS ${
          describeJson(dims)
        } do not match the ` +
          `shape ${describeJson(shape)}`,
      );
    }
    dimensionNames = dims as string[];
  }
  return {
    path,
    shape,
    dtype,
    chunkShape,
    fill: parseV2Fill(json.fill_value, dtype, fail),
    keyEncoding: { name: "v2", separator: separator as "." | "/" },
    codecs,
    ...(dimensionNames ? { dimensionNames } : {}),
    attributes,
  };
}
