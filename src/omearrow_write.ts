/**
 * Writing OME-Arrow files from tensors, and converting images between
 * OME-Zarr and OME-Arrow.
 * @module
 */

import { dtypeCode } from "./dtype.ts";
import { errorFromStatus, InvalidArgument } from "./errors.ts";
import { native } from "./ffi.ts";
import { localPath, open } from "./image.ts";
import { writeOmeZarr } from "./ome_zarr.ts";
import type { TensorView } from "./tensor_view.ts";

/**
 * Options of {@link writeOmeArrow}.
 *
 * @example
 * ```ts
 * import { type OmeArrowWriteOptions, open, writeOmeArrow } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * using view = await img.scan().select({ t: 0 }).collect();
 * const options: OmeArrowWriteOptions = { format: "ipc", chunks: { z: 1, y: 256, x: 256 } };
 * await writeOmeArrow("sample.arrow", view, options);
 * ```
 */
export interface OmeArrowWriteOptions {
  /** Container: Parquet or Arrow IPC (default: "ipc" for .arrow/.feather/.ipc paths, else "parquet"). */
  format?: "parquet" | "ipc";
  /** Chunk shape over z, y, x (default { z: 1, y: 512, x: 512 }, cut to the image). */
  chunks?: { z?: number; y?: number; x?: number };
  /** zstd level of each chunk's bytes, or null to store them raw (default 3). */
  zstdLevel?: number | null;
  /** Channel names (default C0, C1, …). */
  channels?: string[];
  /** Physical pixel size per spatial axis (default 1). */
  physicalSize?: { z?: number; y?: number; x?: number };
  /** Unit of the physical sizes (default "µm"). */
  unit?: string;
  /** Record name (default "unknown"). */
  name?: string;
  /** Record id (default "unnamed"). */
  id?: string;
  /** Name of the struct column (default "ome_arrow", what ome-arrow reads by default). */
  column?: string;
  /** Replace an existing file (default false). */
  overwrite?: boolean;
}

const AXES = ["t", "c", "z", "y", "x"] as const;

/**
 * Writes a view as one OME-Arrow record (the `ome-arrow` package's
 * byte-chunk schema: chunks of typed, optionally zstd-compressed bytes,
 * any dtype but bfloat16). The view's axes must be among t, c, z, y, x
 * and include y and x; missing axes have size 1.
 *
 * @example
 * ```ts
 * import { open, writeOmeArrow } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * using view = await img.scan().select({ t: 0, z: [0, 4] }).collect();
 * await writeOmeArrow("sample.ome.parquet", view, { channels: ["DAPI", "GFP", "mCherry"] });
 * ```
 */
export async function writeOmeArrow(
  path: string | URL,
  view: TensorView,
  options: OmeArrowWriteOptions = {},
): Promise<void> {
  const target = localPath(path);
  const extra = view.axes.filter((a) => !(AXES as readonly string[]).includes(a));
  if (extra.length > 0 || !view.axes.includes("y") || !view.axes.includes("x")) {
    throw new InvalidArgument(
      `${target}: OME-Arrow needs axes among t, c, z, y, x including y and x; the view has ${
        view.axes.join(", ")
      }`,
    );
  }
  if (view.dtype === "bfloat16") {
    throw new InvalidArgument(`${target}: OME-Arrow has no bfloat16 pixel type; cast first`);
  }
  const format = options.format ?? (/\.(arrow|feather|ipc)$/i.test(target) ? "ipc" : "parquet");
  if (format !== "parquet" && format !== "ipc") {
    throw new InvalidArgument(
      `${target}: format ${JSON.stringify(format)} is not "parquet" or "ipc"`,
    );
  }
  const shape = AXES.map((a) => view.axes.includes(a) ? view.shape[view.axes.indexOf(a)] : 1);
  const channels = options.channels ?? Array.from({ length: shape[1] }, (_, i) => `C${i}`);
  if (channels.length !== shape[1]) {
    throw new InvalidArgument(
      `${target}: ${channels.length} channel names for ${shape[1]} channels`,
    );
  }
  const chunk = [
    options.chunks?.z ?? 1,
    options.chunks?.y ?? 512,
    options.chunks?.x ?? 512,
  ];
  if (!chunk.every((n) => Number.isSafeInteger(n) && n > 0)) {
    throw new InvalidArgument(`${target}: chunk sizes ${chunk} must be positive integers`);
  }
  const level = options.zstdLevel === undefined ? 3 : options.zstdLevel;
  if (level !== null && !(Number.isInteger(level) && level >= 1 && level <= 22)) {
    throw new InvalidArgument(`${target}: zstdLevel ${level} must be 1..22 or null`);
  }
  const order = AXES.filter((a) => view.axes.includes(a)).join("").toUpperCase();
  using ordered = view.withLayout(order);
  using packed = await ordered.contiguous();
  const words = BigInt64Array.from([
    dtypeCode(view.dtype),
    ...shape,
    ...chunk,
    format === "ipc" ? 1 : 0,
    level ?? -1,
    options.overwrite ? 1 : 0,
  ], BigInt);
  const p = options.physicalSize ?? {};
  const physical = Float64Array.from([p.z ?? 1, p.y ?? 1, p.x ?? 1]);
  const enc = new TextEncoder();
  const text = enc.encode(
    [
      options.name ?? "unknown",
      options.id ?? "unnamed",
      options.column ?? "ome_arrow",
      options.unit ?? "µm",
      ...channels,
    ].join("\0"),
  );
  const pathBytes = enc.encode(target);
  const err = new Uint8Array(4096);
  const status = await native().tessera_omearrow_write(
    pathBytes,
    BigInt(pathBytes.length),
    Deno.UnsafePointer.create(packed.address),
    BigInt(packed.byteLength),
    words,
    BigInt(words.length),
    physical,
    text,
    BigInt(text.length),
    err,
    BigInt(err.length),
  );
  if (status !== 0) {
    const end = err.indexOf(0);
    throw errorFromStatus(status, new TextDecoder().decode(err.subarray(0, end)));
  }
}

/**
 * Options of {@link omeZarrToOmeArrow}.
 *
 * @example
 * ```ts
 * import { type ConvertToOmeArrowOptions, omeZarrToOmeArrow } from "@tessera/tessera";
 * const options: ConvertToOmeArrowOptions = { format: "parquet", zstdLevel: 3, overwrite: true };
 * await omeZarrToOmeArrow("image.ome.zarr", "image.ome.parquet", options);
 * ```
 */
export type ConvertToOmeArrowOptions = Omit<OmeArrowWriteOptions, "channels" | "physicalSize">;

/**
 * Converts level 0 of an OME-Zarr image (any of the axes t, c, z, y, x) to
 * an OME-Arrow file, keeping channel names and physical pixel sizes. The
 * image is read whole into memory.
 *
 * @example
 * ```ts
 * import { omeZarrToOmeArrow } from "@tessera/tessera";
 * await omeZarrToOmeArrow("image.ome.zarr", "image.ome.parquet");
 * ```
 */
export async function omeZarrToOmeArrow(
  source: string | URL,
  target: string | URL,
  options: ConvertToOmeArrowOptions = {},
): Promise<void> {
  using image = await open(source);
  using view = await image.scan().layout(
    image.axes.filter((a) => (AXES as readonly string[]).includes(a)).join(""),
  ).collect();
  const scaleOf = (axis: string) => {
    const i = image.axes.indexOf(axis);
    return i < 0 ? undefined : image.levels[0].scale[i];
  };
  const unit = image.axisInfo.find((a) => a.name === "x")?.unit;
  await writeOmeArrow(target, view, {
    ...options,
    ...(image.channels ? { channels: image.channels } : {}),
    physicalSize: { z: scaleOf("z"), y: scaleOf("y"), x: scaleOf("x") },
    ...(options.unit ?? unit ? { unit: options.unit ?? unit } : {}),
  });
}

/**
 * Options of {@link omeArrowToOmeZarr}.
 *
 * @example
 * ```ts
 * import { type ConvertToOmeZarrOptions, omeArrowToOmeZarr } from "@tessera/tessera";
 * const options: ConvertToOmeZarrOptions = { row: 0, levels: 3, overwrite: true };
 * await omeArrowToOmeZarr("image.ome.parquet", "image.ome.zarr", options);
 * ```
 */
export interface ConvertToOmeZarrOptions {
  /** The record to convert (default 0). */
  row?: number;
  /** Chunk shape over t, c, z, y, x (default 1, 1, 1, 512, 512, cut to the image). */
  chunks?: number[];
  /** Shard shape over t, c, z, y, x (default: unsharded). */
  shards?: number[];
  /** Pyramid levels (default 1). */
  levels?: number;
  /** zstd level, or null for none (default 3). */
  zstdLevel?: number | null;
  /** Replace an existing Zarr store (default false). */
  overwrite?: boolean;
}

/**
 * Converts an OME-Arrow record to an OME-Zarr 0.5 image with axes t, c, z,
 * y, x, keeping channel names, physical sizes and units. The image is read
 * whole into memory.
 *
 * @example
 * ```ts
 * import { omeArrowToOmeZarr } from "@tessera/tessera";
 * await omeArrowToOmeZarr("image.ome.parquet", "image.ome.zarr");
 * ```
 */
export async function omeArrowToOmeZarr(
  source: string | URL,
  target: string | URL,
  options: ConvertToOmeZarrOptions = {},
): Promise<void> {
  using image = await open(source, { row: options.row ?? 0 });
  using view = await image.scan().layout("TCZYX").collect();
  const shape = [...view.shape];
  const chunks = options.chunks ?? [1, 1, 1, Math.min(512, shape[3]), Math.min(512, shape[4])];
  await writeOmeZarr(localPath(target), view.data(), {
    axes: image.axisInfo,
    shape,
    dtype: view.dtype,
    chunks,
    ...(options.shards ? { shards: options.shards } : {}),
    levels: options.levels ?? 1,
    scale: image.levels[0].scale,
    ...(image.channelInfo ? { channels: image.channelInfo } : {}),
    ...(options.zstdLevel !== undefined ? { zstdLevel: options.zstdLevel } : {}),
    ...(options.overwrite ? { overwrite: true } : {}),
  });
}
