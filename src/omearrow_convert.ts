/**
 * The OME-Arrow converters of {@link convert}: OME-Zarr → OME-Arrow
 * (Parquet or Arrow IPC, level 0) and OME-Arrow → OME-Zarr 0.5 (sharded
 * zstd, with a pyramid), wrapping {@link omeZarrToOmeArrow} and
 * {@link omeArrowToOmeZarr}.
 * @module
 */

import { join } from "node:path";
import { dtypeSize } from "./dtype.ts";
import type { Converter, ConvertOptions, ConvertResult } from "./convert.ts";
import { Aborted } from "./errors.ts";
import { localPath, open } from "./image.ts";
import { info } from "./info.ts";
import { omeArrowToOmeZarr, omeZarrToOmeArrow } from "./omearrow_write.ts";
import { shardShape } from "./zarr/shard_shape.ts";

const ARROW_FILE = /\.(parquet|arrow|feather|ipc)$/i;

async function isFile(path: string): Promise<boolean> {
  return await Deno.stat(path).then((s) => s.isFile, () => false);
}

async function isZarrNode(path: string): Promise<boolean> {
  const found = (name: string) => Deno.stat(join(path, name)).then(() => true, () => false);
  return await found("zarr.json") || await found(".zattrs") || await found(".zgroup");
}

function throwIfAborted(signal: AbortSignal | undefined, target: string): void {
  if (signal?.aborted) {
    throw new Aborted(`conversion to ${target} was aborted`, { cause: signal.reason });
  }
}

/** Bytes of pixels of level 0 of the image at `path`. */
async function levelZeroBytes(path: string): Promise<number> {
  using image = await open(path);
  return image.shape.reduce((a, b) => a * b, dtypeSize(image.dtype));
}

/** Levels of a pyramid halving y and x down to about 256 pixels. */
function pyramidLevels(shape: readonly number[]): number {
  let levels = 1;
  for (let side = Math.max(shape[3], shape[4]); side > 256; side = Math.ceil(side / 2)) levels++;
  return levels;
}

/**
 * OME-Zarr image → one OME-Arrow record (level 0; the container from the
 * target's extension: `.parquet` → Parquet, `.arrow`/`.feather`/`.ipc` →
 * Arrow IPC).
 *
 * @example
 * ```ts
 * import { convert } from "@tessera/tessera";
 * const result = await convert("image.ome.zarr", "image.ome.parquet");
 * console.log(result.converter, result.notes);
 * ```
 */
export const omeZarrToOmeArrowConverter: Converter = {
  name: "ome-zarr→ome-arrow",
  description: "OME-Zarr image → OME-Arrow (.ome.parquet, or .arrow IPC; level 0)",
  async accepts(source: string, target: string): Promise<boolean> {
    return ARROW_FILE.test(target) && await isZarrNode(localPath(source));
  },
  async run(source: string, target: string, options: ConvertOptions): Promise<ConvertResult> {
    const src = localPath(source);
    const dst = localPath(target);
    throwIfAborted(options.signal, dst);
    const described = await info(src);
    const bytes = await levelZeroBytes(src);
    options.onProgress?.({ bytesDone: 0, bytesTotal: bytes });
    await omeZarrToOmeArrow(src, dst, {
      format: /\.parquet$/i.test(dst) ? "parquet" : "ipc",
      overwrite: options.overwrite ?? false,
      ...(options.zstdLevel !== undefined ? { zstdLevel: options.zstdLevel } : {}),
    });
    throwIfAborted(options.signal, dst);
    options.onProgress?.({ bytesDone: bytes, bytesTotal: bytes });
    const levels = described.image?.levels.length ?? 1;
    const labels = described.labels ?? [];
    return {
      converter: this.name,
      source: src,
      target: dst,
      bytes,
      levels: [],
      labels: [],
      notes: [
        ...(levels > 1
          ? [`only level 0 of ${levels} is written: a record holds one resolution`]
          : []),
        ...(labels.length > 0 ? [`label images are not converted: ${labels.join(", ")}`] : []),
      ],
    };
  },
};

/**
 * OME-Arrow record (row 0) → OME-Zarr 0.5 on Zarr v3, sharded zstd, with a
 * pyramid of coarser levels.
 *
 * @example
 * ```ts
 * import { convert } from "@tessera/tessera";
 * const result = await convert("image.ome.parquet", "image.ome.zarr", { zstdLevel: 5 });
 * for (const level of result.levels) console.log(level.path, level.shape, level.shards);
 * ```
 */
export const omeArrowToOmeZarrConverter: Converter = {
  name: "ome-arrow→ome-zarr-0.5",
  description: "OME-Arrow (.ome.parquet or .arrow IPC, row 0) → OME-Zarr 0.5 (sharded zstd)",
  async accepts(source: string, target: string): Promise<boolean> {
    return !ARROW_FILE.test(target) && await isFile(localPath(source));
  },
  async run(source: string, target: string, options: ConvertOptions): Promise<ConvertResult> {
    const src = localPath(source);
    const dst = localPath(target);
    throwIfAborted(options.signal, dst);
    using image = await open(src);
    const bytes = image.shape.reduce((a, b) => a * b, dtypeSize(image.dtype));
    options.onProgress?.({ bytesDone: 0, bytesTotal: bytes });
    // Chunks of one plane of up to 512², shards grown from them up to shardBytes.
    const chunks = [1, 1, 1, Math.min(512, image.shape[3]), Math.min(512, image.shape[4])];
    const shards = shardShape(
      image.axes,
      image.shape,
      chunks,
      dtypeSize(image.dtype),
      options.shardBytes ?? 16 << 20,
    );
    await omeArrowToOmeZarr(src, dst, {
      chunks,
      shards,
      levels: pyramidLevels(image.shape),
      overwrite: options.overwrite ?? false,
      ...(options.zstdLevel !== undefined ? { zstdLevel: options.zstdLevel } : {}),
    });
    throwIfAborted(options.signal, dst);
    options.onProgress?.({ bytesDone: bytes, bytesTotal: bytes });
    const written = await info(dst);
    const levels = (written.image?.levels ?? []).map((l) => ({
      path: l.path,
      shape: l.shape,
      chunks: l.chunks,
      shards: l.shards ?? [],
    }));
    return {
      converter: this.name,
      source: src,
      target: dst,
      bytes,
      levels,
      labels: [],
      notes: [],
    };
  },
};
