/**
 * `info()`: what is at a path — Zarr format, node kind, and for OME-NGFF
 * images, label groups, plates and wells their metadata — read from
 * metadata files only, never from chunks.
 * @module
 */

import { join } from "node:path";
import { type DType, typedArray } from "./dtype.ts";
import { StorageError } from "./errors.ts";
import { localPath } from "./image.ts";
import { type Axis, type Channel, parseNgff } from "./ngff.ts";
import {
  listMembers,
  type Member,
  omeAttributes,
  parseLabelList,
  readLabelNames,
  readZarrNode,
} from "./zarr/hierarchy.ts";
import type { ArrayMetadata, Codec } from "./zarr/metadata.ts";
import { describeJson } from "./zarr/json.ts";

export type { Member } from "./zarr/hierarchy.ts";

/**
 * Storage layout of one array.
 *
 * @example
 * ```ts
 * import { info } from "@tessera/tessera";
 * const node = await info("data/sample.ome.zarr");
 * const level0 = node.image?.levels[0]; // a LevelSummary, which extends ArrayInfo
 * console.log(level0?.chunks, level0?.shards, level0?.codecs); // [1,1,16,128,128] [1,1,32,512,512] ["bytes","zstd"]
 * ```
 */
export interface ArrayInfo {
  /** Array shape. */
  shape: number[];
  /** Element type. */
  dtype: DType;
  /** Shape of one chunk (the inner chunk when sharded). */
  chunks: number[];
  /** Shape of one shard, when the array is sharded. */
  shards?: number[];
  /**
   * Names of the codecs one chunk is encoded with, in encoding order (inside
   * the shard when sharded), after translation for Zarr v2: a v2 array in
   * Fortran order lists `transpose`, its dtype's byte order is the `bytes`
   * codec, its compressor follows (`zstd`, `zlib`, `gzip`, `blosc`, `lz4`).
   */
  codecs: string[];
  /** Byte order of multi-byte elements as stored. */
  endian: "little" | "big";
  /**
   * Fill value: a number or boolean, `"NaN"`, `"Infinity"`, `"-Infinity"`, or a
   * decimal string for 64-bit integers beyond ±2^53.
   */
  fillValue: number | boolean | string;
  /** Chunk key encoding. */
  chunkKeyEncoding: { name: "default" | "v2"; separator: "/" | "." };
  /** Dimension names (`dimension_names`, or v2 `_ARRAY_DIMENSIONS`), when given. */
  dimensionNames?: (string | null)[];
}

/**
 * One level of a multiscale image.
 *
 * @example
 * ```ts
 * import { info } from "@tessera/tessera";
 * const { image } = await info("data/sample.ome.zarr");
 * for (const level of image?.levels ?? []) console.log(level.path, level.shape, level.scale);
 * ```
 */
export interface LevelSummary extends ArrayInfo {
  /** Path of the level's array inside the image group. */
  path: string;
  /** Physical size of one pixel along each axis. */
  scale: number[];
  /** Physical offset of the first pixel along each axis, when given. */
  translation?: number[];
}

/**
 * An OME-NGFF multiscale image (a label image included).
 *
 * @example
 * ```ts
 * import { info } from "@tessera/tessera";
 * const { image } = await info("data/sample.ome.zarr");
 * console.log(image?.version, image?.axes.map((a) => a.name), image?.channels?.length);
 * ```
 */
export interface ImageInfo {
  /** NGFF version, e.g. "0.5" or "0.4". */
  version: string;
  /** Image name, when given. */
  name?: string;
  /** Axes in array order (names lower case). */
  axes: Axis[];
  /** Levels, finest first. */
  levels: LevelSummary[];
  /** omero channels, when given. */
  channels?: Channel[];
  /** The `image-label` block (colors, properties, source) of a label image. */
  imageLabel?: Record<string, unknown>;
}

/**
 * One well of a plate.
 *
 * @example
 * ```ts
 * import { info } from "@tessera/tessera";
 * const { plate } = await info("plate.ome.zarr");
 * for (const well of plate?.wells ?? []) console.log(well.path, well.fields);
 * ```
 */
export interface PlateWell {
  /** Path of the well group inside the plate, e.g. "A/1". */
  path: string;
  /** Row name. */
  row: string;
  /** Column name. */
  column: string;
  /** Index into the plate's rows. */
  rowIndex: number;
  /** Index into the plate's columns. */
  columnIndex: number;
  /** Paths of the well's fields (images) inside the well group. */
  fields: string[];
  /** Number of fields. */
  fieldCount: number;
}

/**
 * An OME-NGFF high-content-screening plate.
 *
 * @example
 * ```ts
 * import { info } from "@tessera/tessera";
 * const { plate } = await info("plate.ome.zarr");
 * console.log(plate?.rows, plate?.columns, plate?.wells.length);
 * ```
 */
export interface PlateInfo {
  /** NGFF version, when given. */
  version?: string;
  /** Plate name, when given. */
  name?: string;
  /** Row names, in order. */
  rows: string[];
  /** Column names, in order. */
  columns: string[];
  /** Wells, as listed by the plate, with their fields (read from each well). */
  wells: PlateWell[];
  /** The plate's `field_count` (most fields in any well), when given. */
  fieldCount?: number;
  /** Acquisitions, when given. */
  acquisitions?: { id: number; name?: string; maximumFieldCount?: number }[];
}

/**
 * An OME-NGFF well.
 *
 * @example
 * ```ts
 * import { info } from "@tessera/tessera";
 * const { well } = await info("plate.ome.zarr/A/1");
 * console.log(well?.images.map((i) => i.path));
 * ```
 */
export interface WellInfo {
  /** NGFF version, when given. */
  version?: string;
  /** Fields (images) of the well. */
  images: { path: string; acquisition?: number }[];
}

/**
 * What {@link info} reports about a path: plain JSON, no bigints.
 *
 * @example
 * ```ts
 * import { info } from "@tessera/tessera";
 * const node = await info("data/sample.ome.zarr");
 * console.log(node.zarrFormat, node.node, node.kind); // 3 "group" "image"
 * ```
 */
export interface NodeInfo {
  /** The local path described. */
  path: string;
  /** Zarr format of the node (2: `.zarray`/`.zgroup`, 3: `zarr.json`). */
  zarrFormat: 2 | 3;
  /** Kind of node in the Zarr hierarchy. */
  node: "array" | "group";
  /**
   * What the node is: a plain `array`, an OME-NGFF `image` (label images
   * included), the `labels` group of an image, a `plate`, a `well`, or
   * another `group`.
   */
  kind: "array" | "image" | "labels" | "plate" | "well" | "group";
  /** Layout of an array node. */
  array?: ArrayInfo;
  /** Multiscales, axes, levels and channels of an image. */
  image?: ImageInfo;
  /**
   * Label image names: for an image, those of its `labels` group (present when
   * the image has one); for a `labels` group, its list.
   */
  labels?: string[];
  /** Plate layout, for a plate. */
  plate?: PlateInfo;
  /** Fields, for a well. */
  well?: WellInfo;
  /** Direct members (arrays and groups) of a plain group. */
  members?: Member[];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Describes the Zarr node at `source` (a local path or `file://` URL) without
 * reading pixels: its Zarr format and kind; for OME-NGFF images the version,
 * axes, levels (shape, dtype, chunk and shard shape, codecs, scale),
 * channels and label names; for labels groups their names; for HCS plates
 * the rows, columns and wells with their fields; for wells their fields.
 * Labels and plates are listed here although they cannot be queried yet.
 *
 * @example
 * ```ts
 * import { info } from "@tessera/tessera";
 * const node = await info("data/sample.ome.zarr");
 * if (node.kind === "image") console.log(node.image!.levels.map((l) => l.shape));
 * ```
 */
export async function info(source: string | URL): Promise<NodeInfo> {
  const path = localPath(source);
  const { format, node, attributesFile } = await readZarrNode(path);
  const base = { path, zarrFormat: format };
  if (node.kind === "array") {
    return { ...base, node: "array", kind: "array", array: arrayInfo(node.array) };
  }
  const attributes = node.group.attributes;
  const ome = omeAttributes(attributes);
  const ngff = parseNgff(attributes, attributesFile);
  if (ngff) {
    const levels = await Promise.all(ngff.datasets.map(async (d) => {
      const levelPath = join(path, d.path);
      const level = await readZarrNode(levelPath);
      if (level.node.kind !== "array") {
        throw new StorageError(`${levelPath}: multiscale level is not an array`);
      }
      return {
        path: d.path,
        ...arrayInfo(level.node.array),
        scale: d.scale,
        ...(d.translation ? { translation: d.translation } : {}),
      };
    }));
    const imageLabel = ome["image-label"];
    const labels = await readLabelNames(path);
    return {
      ...base,
      node: "group",
      kind: "image",
      image: {
        version: ngff.version,
        ...(ngff.name !== undefined ? { name: ngff.name } : {}),
        axes: ngff.axes,
        levels,
        ...(ngff.channels ? { channels: ngff.channels } : {}),
        ...(isObject(imageLabel) ? { imageLabel } : {}),
      },
      ...(labels ? { labels } : {}),
    };
  }
  if (ome.plate !== undefined) {
    return {
      ...base,
      node: "group",
      kind: "plate",
      plate: await plateInfo(ome, path, attributesFile),
    };
  }
  if (ome.well !== undefined) {
    return { ...base, node: "group", kind: "well", well: parseWell(ome, attributesFile) };
  }
  if (ome.labels !== undefined) {
    return {
      ...base,
      node: "group",
      kind: "labels",
      labels: parseLabelList(attributes, attributesFile),
    };
  }
  return { ...base, node: "group", kind: "group", members: await listMembers(path) };
}

/** The storage layout of an array's metadata. */
export function arrayInfo(meta: ArrayMetadata): ArrayInfo {
  const sharding = meta.codecs.find((c) => c.name === "sharding_indexed");
  const chain = sharding?.name === "sharding_indexed" ? sharding.codecs : meta.codecs;
  const bytes = chain.find((c): c is Extract<Codec, { name: "bytes" }> => c.name === "bytes");
  return {
    shape: meta.shape,
    dtype: meta.dtype,
    chunks: sharding?.name === "sharding_indexed" ? sharding.chunkShape : meta.chunkShape,
    ...(sharding ? { shards: meta.chunkShape } : {}),
    codecs: chain.map((c) => c.name),
    endian: bytes?.endian ?? "little",
    fillValue: fillValue(meta.dtype, meta.fill),
    chunkKeyEncoding: meta.keyEncoding,
    ...(meta.dimensionNames ? { dimensionNames: meta.dimensionNames } : {}),
  };
}

function fillValue(dtype: DType, bytes: Uint8Array): number | boolean | string {
  const copy = bytes.slice();
  const v = typedArray(dtype, copy.buffer)[0];
  if (dtype === "bool") return v !== 0;
  if (typeof v === "bigint") {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v.toString();
  }
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "Infinity";
  if (v === -Infinity) return "-Infinity";
  return v as number;
}

/** Name of a plate row or column: `{ name }` (NGFF ≥ 0.3) or a bare string. */
function names(value: unknown, what: string, fail: (m: string) => never): string[] {
  if (!Array.isArray(value)) return fail(`plate ${what} must be a list`);
  return value.map((v, i) => {
    const name = isObject(v) ? v.name : v;
    if (typeof name !== "string") return fail(`plate ${what}[${i}] has no name`);
    return name;
  });
}

async function plateInfo(ome: Json, path: string, file: string): Promise<PlateInfo> {
  const fail = (what: string): never => {
    throw new StorageError(`${file}: OME-NGFF ${what}`);
  };
  const plate = ome.plate;
  if (!isObject(plate)) return fail("plate is not an object");
  const rows = names(plate.rows, "rows", fail);
  const columns = names(plate.columns, "columns", fail);
  if (!Array.isArray(plate.wells)) return fail("plate wells must be a list");
  const listed = plate.wells.map((w, i) => {
    const well = typeof w === "string" ? { path: w } : w;
    if (!isObject(well) || typeof well.path !== "string") {
      return fail(`plate wells[${i}] has no path`);
    }
    const parts = well.path.split("/");
    if (parts.length !== 2 || parts.some((p) => p === "" || p === "." || p === "..")) {
      return fail(`plate well path ${describeJson(well.path)} is not <row>/<column>`);
    }
    const rowIndex = Number.isInteger(well.rowIndex)
      ? well.rowIndex as number
      : rows.indexOf(parts[0]);
    const columnIndex = Number.isInteger(well.columnIndex)
      ? well.columnIndex as number
      : columns.indexOf(parts[1]);
    if (!(rowIndex >= 0 && rowIndex < rows.length)) {
      return fail(`plate well ${well.path}: row ${describeJson(parts[0])} is not a plate row`);
    }
    if (!(columnIndex >= 0 && columnIndex < columns.length)) {
      return fail(
        `plate well ${well.path}: column ${describeJson(parts[1])} is not a plate column`,
      );
    }
    return { path: well.path, rowIndex, columnIndex };
  });
  const wells = await mapLimited(listed, 16, async (w): Promise<PlateWell> => {
    const wellPath = join(path, w.path);
    const found = await readZarrNode(wellPath);
    if (found.node.kind !== "group") {
      throw new StorageError(`${wellPath}: plate well is an array, expected a group`);
    }
    const fields = parseWell(omeAttributes(found.node.group.attributes), found.attributesFile)
      .images.map((image) => image.path);
    return {
      path: w.path,
      row: rows[w.rowIndex],
      column: columns[w.columnIndex],
      rowIndex: w.rowIndex,
      columnIndex: w.columnIndex,
      fields,
      fieldCount: fields.length,
    };
  });
  const acquisitions = Array.isArray(plate.acquisitions)
    ? plate.acquisitions.filter(isObject).map((a) => ({
      id: Number(a.id),
      ...(typeof a.name === "string" ? { name: a.name } : {}),
      ...(Number.isInteger(a.maximumfieldcount)
        ? { maximumFieldCount: a.maximumfieldcount as number }
        : {}),
    }))
    : undefined;
  const version = plate.version ?? ome.version;
  return {
    ...(typeof version === "string" ? { version } : {}),
    ...(typeof plate.name === "string" ? { name: plate.name } : {}),
    rows,
    columns,
    wells,
    ...(Number.isInteger(plate.field_count) ? { fieldCount: plate.field_count as number } : {}),
    ...(acquisitions ? { acquisitions } : {}),
  };
}

function parseWell(ome: Json, file: string): WellInfo {
  const fail = (what: string): never => {
    throw new StorageError(`${file}: OME-NGFF ${what}`);
  };
  const well = ome.well;
  if (!isObject(well)) return fail("well is not an object");
  if (!Array.isArray(well.images)) return fail("well images must be a list");
  const images = well.images.map((image, i) => {
    if (!isObject(image) || typeof image.path !== "string" || image.path === "") {
      return fail(`well images[${i}] has no path`);
    }
    return {
      path: image.path,
      ...(Number.isInteger(image.acquisition) ? { acquisition: image.acquisition as number } : {}),
    };
  });
  const version = well.version ?? ome.version;
  return { ...(typeof version === "string" ? { version } : {}), images };
}

/** `fn` over `items` with at most `limit` calls in flight, results in order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
