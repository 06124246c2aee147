/**
 * Zarr v3 metadata: reading `zarr.json`, validating it, and normalising
 * arrays to {@link ArrayMetadata}.
 * @module
 */

import { describeJson, parseMetadataJson } from "./json.ts";
import { join } from "node:path";
import { type DType, DTYPES, encodeScalar } from "../dtype.ts";
import { NotFound, StorageError } from "../errors.ts";
import { isV2Node, readV2Node } from "./v2.ts";

/** A normalised codec. */
export type Codec =
  | { name: "bytes"; endian: "little" | "big" }
  | { name: "zstd"; level: number; checksum: boolean }
  | { name: "crc32c" }
  | { name: "gzip"; level: number }
  | { name: "zlib"; level: number }
  | {
    name: "blosc";
    cname: "blosclz" | "lz4" | "lz4hc" | "snappy" | "zlib" | "zstd";
    clevel: number;
    shuffle: "noshuffle" | "shuffle" | "bitshuffle";
    typesize: number;
    blocksize: number;
  }
  | { name: "lz4"; acceleration: number }
  | { name: "transpose"; order: number[] }
  | {
    name: "sharding_indexed";
    chunkShape: number[];
    codecs: Codec[];
    indexCodecs: Codec[];
    indexLocation: "start" | "end";
  };

/** A Zarr array's metadata, validated. */
export interface ArrayMetadata {
  /** Folder of the array. */
  path: string;
  /** Array shape. */
  shape: number[];
  /** Element type. */
  dtype: DType;
  /** Shape of one chunk of the regular grid (the shard shape when sharded). */
  chunkShape: number[];
  /** Fill value as little-endian bytes of one element. */
  fill: Uint8Array<ArrayBuffer>;
  /** Chunk key encoding. */
  keyEncoding: { name: "default" | "v2"; separator: "/" | "." };
  /** Codec chain in encoding order. */
  codecs: Codec[];
  /** `dimension_names`, when given. */
  dimensionNames?: (string | null)[];
  /** User attributes. */
  attributes: Record<string, unknown>;
}

/** A Zarr group's metadata. */
export interface GroupMetadata {
  /** Folder of the group. */
  path: string;
  /** User attributes. */
  attributes: Record<string, unknown>;
}

/** A node of a Zarr hierarchy. */
export type NodeMetadata =
  | { kind: "array"; array: ArrayMetadata }
  | { kind: "group"; group: GroupMetadata };

type Json = Record<string, unknown>;

/** Data types a Zarr v3 array may hold (every tessera dtype but bfloat16). */
const STORED_DTYPES: readonly DType[] = DTYPES.filter((d) => d !== "bfloat16");

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads and parses `<path>/zarr.json`. */
export async function readNode(path: string): Promise<NodeMetadata> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new NotFound(`${path} does not exist`);
    throw new StorageError(`${path}: ${(e as Error).message}`);
  }
  if (!info.isDirectory) {
    throw new StorageError(`${path} is not a Zarr store (not a folder)`);
  }
  const file = join(path, "zarr.json");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new StorageError(`${file}: ${(e as Error).message}`);
    }
    if (await isV2Node(path)) return readV2Node(path);
    throw new StorageError(
      `${path} is not a Zarr store: it has no zarr.json (nor Zarr v2 .zarray/.zgroup)`,
    );
  }
  return parseNode(parseMetadataJson(text, file, true), path, file);
}

/** Validates a parsed `zarr.json` (`file` names it in messages). */
export function parseNode(json: unknown, path: string, file: string): NodeMetadata {
  const fail = (what: string): never => {
    throw new StorageError(`${file}: ${what}`);
  };
  if (!isObject(json)) return fail("metadata is not a JSON object");
  if (json.zarr_format !== 3) {
    return fail(`zarr_format is ${describeJson(json.zarr_format)}, expected 3`);
  }
  const attributes = json.attributes === undefined ? {} : json.attributes;
  if (!isObject(attributes)) return fail("attributes is not an object");
  if (json.node_type === "group") return { kind: "group", group: { path, attributes } };
  if (json.node_type !== "array") {
    return fail(`node_type ${describeJson(json.node_type)} is unknown`);
  }

  const shape = integerList(json.shape, "shape", 0, fail);
  const dtype = STORED_DTYPES.find((d) => d === json.data_type);
  if (!dtype) {
    return fail(
      `data_type ${describeJson(json.data_type)} is not supported (supported: ${
        STORED_DTYPES.join(", ")
      })`,
    );
  }
  const grid = json.chunk_grid;
  if (!isObject(grid) || grid.name !== "regular" || !isObject(grid.configuration)) {
    return fail(`chunk_grid ${describeJson(grid)} is not supported (only "regular")`);
  }
  const chunkShape = integerList(grid.configuration.chunk_shape, "chunk_shape", 1, fail);
  if (chunkShape.length !== shape.length) {
    fail(`chunk_shape has rank ${chunkShape.length}, shape has rank ${shape.length}`);
  }
  checkChunkSize(chunkShape, "chunk_shape", fail);
  if (Array.isArray(json.storage_transformers) && json.storage_transformers.length > 0) {
    fail("storage_transformers are not supported");
  }
  const dimensionNames = json.dimension_names;
  if (dimensionNames !== undefined && dimensionNames !== null) {
    if (
      !Array.isArray(dimensionNames) || dimensionNames.length !== shape.length ||
      !dimensionNames.every((n) => n === null || typeof n === "string")
    ) fail(`dimension_names ${describeJson(dimensionNames)} do not match the shape`);
  }
  const array: ArrayMetadata = {
    path,
    shape,
    dtype,
    chunkShape,
    fill: parseFill(json.fill_value, dtype, fail),
    keyEncoding: parseKeyEncoding(json.chunk_key_encoding, fail),
    codecs: parseCodecs(json.codecs, shape.length, "codecs", fail),
    dimensionNames: (dimensionNames ?? undefined) as (string | null)[] | undefined,
    attributes,
  };
  checkSharding(array.codecs, chunkShape, fail);
  return { kind: "array", array };
}

/** Largest number of elements of one chunk (the native library's bound on every allocation). */
export const MAX_CHUNK_ELEMENTS = 2 ** 31;

/** Fails when a chunk of `shape` would hold more than {@link MAX_CHUNK_ELEMENTS} elements. */
export function checkChunkSize(shape: number[], what: string, fail: (m: string) => never): void {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n > MAX_CHUNK_ELEMENTS) {
    fail(`${what} [${shape}] has ${n} elements per chunk, more than 2^31`);
  }
}

function integerList(
  value: unknown,
  what: string,
  min: number,
  fail: (m: string) => never,
): number[] {
  if (
    !Array.isArray(value) ||
    !value.every((v) => Number.isSafeInteger(v) && v >= min)
  ) {
    return fail(`${what} ${describeJson(value)} must be a list of integers ≥ ${min}`);
  }
  if (value.length > 32) fail(`${what} has rank ${value.length}, more than 32`);
  return value as number[];
}

function parseKeyEncoding(
  value: unknown,
  fail: (m: string) => never,
): ArrayMetadata["keyEncoding"] {
  if (!isObject(value)) return fail("chunk_key_encoding is missing");
  const config = isObject(value.configuration) ? value.configuration : {};
  if (value.name !== "default" && value.name !== "v2") {
    return fail(`chunk_key_encoding ${describeJson(value.name)} is not supported`);
  }
  const separator = config.separator ?? (value.name === "default" ? "/" : ".");
  if (separator !== "/" && separator !== ".") {
    return fail(`chunk key separator ${describeJson(separator)} is not supported`);
  }
  return { name: value.name, separator };
}

const SPECIAL_FLOATS: Record<string, number> = {
  NaN: NaN,
  Infinity: Infinity,
  "-Infinity": -Infinity,
};

function parseFill(
  value: unknown,
  dtype: DType,
  fail: (m: string) => never,
): Uint8Array<ArrayBuffer> {
  const bad = () => fail(`fill_value ${String(value)} does not fit data_type ${dtype}`);
  if (typeof value === "string" && /^0x[0-9a-fA-F]+$/.test(value)) {
    // Raw bits, big-endian hex: store them little-endian.
    const hex = value.slice(2).padStart(2 * encodeScalar(dtype, 0).length, "0");
    const bytes = hex.match(/../g)!.map((h) => parseInt(h, 16)).reverse();
    if (bytes.length !== encodeScalar(dtype, 0).length) bad();
    return new Uint8Array(bytes);
  }
  if (dtype === "bool") {
    if (typeof value !== "boolean") bad();
    return encodeScalar(dtype, value as boolean);
  }
  if (dtype.startsWith("float")) {
    const v = typeof value === "string" ? SPECIAL_FLOATS[value] : value;
    if (typeof v !== "number") bad();
    return encodeScalar(dtype, v as number);
  }
  if (typeof value !== "bigint" && !Number.isInteger(value)) bad();
  const v = BigInt(value as number | bigint);
  const bits = BigInt(8 * encodeScalar(dtype, 0).length);
  const [min, max] = dtype.startsWith("u")
    ? [0n, (1n << bits) - 1n]
    : [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n];
  if (v < min || v > max) bad();
  return encodeScalar(dtype, v);
}

const SUPPORTED = [
  "bytes",
  "zstd",
  "crc32c",
  "gzip",
  "blosc",
  "transpose",
  "sharding_indexed",
  "numcodecs.zlib",
  "numcodecs.lz4",
];
const BLOSC_CNAMES = ["blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd"];
const BLOSC_SHUFFLES = ["noshuffle", "shuffle", "bitshuffle"];

function parseCodecs(
  value: unknown,
  rank: number,
  where: string,
  fail: (m: string) => never,
): Codec[] {
  if (!Array.isArray(value) || value.length === 0) return fail(`${where} must be a non-empty list`);
  return value.map((entry): Codec => {
    const raw = typeof entry === "string" ? { name: entry } : entry;
    if (!isObject(raw) || typeof raw.name !== "string") {
      return fail(`${where}: codec ${describeJson(entry)} is malformed`);
    }
    const c = isObject(raw.configuration) ? raw.configuration : {};
    switch (raw.name) {
      case "bytes": {
        const endian = c.endian ?? "little";
        if (endian !== "little" && endian !== "big") {
          fail(`${where}: bytes endian ${describeJson(endian)}`);
        }
        return { name: "bytes", endian: endian as "little" | "big" };
      }
      case "zstd": {
        const level = c.level ?? 0;
        if (!Number.isInteger(level)) fail(`${where}: zstd level ${describeJson(level)}`);
        return { name: "zstd", level: level as number, checksum: c.checksum === true };
      }
      case "crc32c":
        return { name: "crc32c" };
      case "gzip":
      case "numcodecs.zlib": {
        const level = c.level ?? (raw.name === "gzip" ? 5 : 1);
        if (!Number.isInteger(level) || (level as number) < 0 || (level as number) > 9) {
          fail(`${where}: ${raw.name} level ${describeJson(level)}`);
        }
        return { name: raw.name === "gzip" ? "gzip" : "zlib", level: level as number };
      }
      case "numcodecs.lz4": {
        const acceleration = c.acceleration ?? 1;
        if (!Number.isInteger(acceleration)) {
          fail(`${where}: lz4 acceleration ${describeJson(acceleration)}`);
        }
        return { name: "lz4", acceleration: acceleration as number };
      }
      case "blosc": {
        const cname = c.cname ?? "lz4";
        // Zarr v3 spells shuffle as a name; numcodecs-style integers (0, 1, 2) are accepted too.
        const shuffle = typeof c.shuffle === "number"
          ? BLOSC_SHUFFLES[c.shuffle]
          : c.shuffle ?? "noshuffle";
        if (typeof cname !== "string" || !BLOSC_CNAMES.includes(cname)) {
          fail(`${where}: blosc cname ${describeJson(cname)}`);
        }
        if (typeof shuffle !== "string" || !BLOSC_SHUFFLES.includes(shuffle)) {
          fail(`${where}: blosc shuffle ${describeJson(c.shuffle)}`);
        }
        const numbers = {
          clevel: c.clevel ?? 5,
          typesize: c.typesize ?? 1,
          blocksize: c.blocksize ?? 0,
        };
        for (const [key, v] of Object.entries(numbers)) {
          if (!Number.isInteger(v) || (v as number) < 0) {
            fail(`${where}: blosc ${key} ${describeJson(v)}`);
          }
        }
        return {
          name: "blosc",
          cname: cname as "lz4",
          clevel: numbers.clevel as number,
          shuffle: shuffle as "shuffle",
          typesize: numbers.typesize as number,
          blocksize: numbers.blocksize as number,
        };
      }
      case "transpose": {
        let order = c.order;
        if (order === "C") order = [...Array(rank).keys()];
        if (order === "F") order = [...Array(rank).keys()].reverse();
        const list = integerList(order, `${where}: transpose order`, 0, fail);
        if (list.length !== rank || new Set(list).size !== rank || list.some((o) => o >= rank)) {
          fail(
            `${where}: transpose order ${describeJson(order)} is not a permutation of 0..${
              rank - 1
            }`,
          );
        }
        return { name: "transpose", order: list };
      }
      case "sharding_indexed": {
        const chunkShape = integerList(c.chunk_shape, `${where}: sharding chunk_shape`, 1, fail);
        if (chunkShape.length !== rank) {
          fail(`${where}: sharding chunk_shape rank ${chunkShape.length} ≠ ${rank}`);
        }
        const location = c.index_location ?? "end";
        if (location !== "start" && location !== "end") {
          fail(`${where}: index_location ${describeJson(location)}`);
        }
        const indexCodecs = c.index_codecs ??
          [{ name: "bytes", configuration: { endian: "little" } }, {
            name: "crc32c",
          }];
        return {
          name: "sharding_indexed",
          chunkShape,
          codecs: parseCodecs(c.codecs, rank, `${where}: sharding codecs`, fail),
          indexCodecs: parseCodecs(indexCodecs, rank + 1, `${where}: index_codecs`, fail),
          indexLocation: location as "start" | "end",
        };
      }
      default:
        return fail(
          `${where}: codec ${describeJson(raw.name)} is not supported (supported: ${
            SUPPORTED.join(", ")
          })`,
        );
    }
  });
}

/** Checks that every shard divides into its inner chunks (as the shard sees them: after transposes). */
function checkSharding(codecs: Codec[], chunkShape: number[], fail: (m: string) => never): void {
  let shape = chunkShape;
  for (const codec of codecs) {
    if (codec.name === "transpose") shape = codec.order.map((o) => shape[o]);
    if (codec.name !== "sharding_indexed") continue;
    codec.chunkShape.forEach((inner, d) => {
      if (shape[d] % inner !== 0) {
        fail(
          `shard shape ${describeJson(shape)} is not a multiple of inner chunk shape ${
            describeJson(codec.chunkShape)
          }`,
        );
      }
    });
    checkSharding(codec.codecs, codec.chunkShape, fail);
  }
}
