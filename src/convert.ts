/**
 * Format conversion. Each {@link Converter} handles one (source, target)
 * pair; {@link convert} runs the first whose `accepts` says yes. Built in:
 * OME-Zarr (NGFF 0.4 on Zarr v2, or 0.5) → OME-Zarr 0.5 on Zarr v3 with
 * sharding, and OME-Zarr ↔ OME-Arrow (src/omearrow_convert.ts). Other
 * formats register their converters in {@link CONVERTERS}.
 * @module
 */

import { join } from "node:path";
import { dtypeSize } from "./dtype.ts";
import { Aborted, InvalidArgument, NotFound } from "./errors.ts";
import { type Image, localPath, open } from "./image.ts";
import { arrayInfo, type ImageInfo, info } from "./info.ts";
import { createArray, prepareTarget } from "./zarr/create.ts";
import { shardShape } from "./zarr/shard_shape.ts";
import { omeArrowToOmeZarrConverter, omeZarrToOmeArrowConverter } from "./omearrow_convert.ts";

/**
 * Progress of a conversion: bytes of pixels copied so far, of the total.
 *
 * @example
 * ```ts
 * import { convert } from "@tessera/tessera";
 * await convert("v04.ome.zarr", "v05.ome.zarr", {
 *   onProgress: ({ bytesDone, bytesTotal }) => console.log(`${(100 * bytesDone / bytesTotal).toFixed(0)}%`),
 * });
 * ```
 */
export interface ConvertProgress {
  /** Bytes copied. */
  bytesDone: number;
  /** Bytes to copy in all. */
  bytesTotal: number;
}

/**
 * Options of {@link convert}.
 *
 * @example
 * ```ts
 * import { type ConvertOptions, convert } from "@tessera/tessera";
 * const controller = new AbortController();
 * const options: ConvertOptions = { shardBytes: 64 << 20, zstdLevel: 5, signal: controller.signal };
 * await convert("v04.ome.zarr", "v05.ome.zarr", options);
 * ```
 */
export interface ConvertOptions {
  /** Largest uncompressed shard in bytes (default 16 MiB); shards grow from the chunk shape up to it. */
  shardBytes?: number;
  /** zstd level of the output (default 3). */
  zstdLevel?: number;
  /** Replace an existing Zarr store at the target. */
  overwrite?: boolean;
  /** Called after each written box. */
  onProgress?: (progress: ConvertProgress) => void;
  /** Stops the conversion (native reads and writes stop between chunks); it rejects with `Aborted`, and arrays left behind carry the incomplete marker. */
  signal?: AbortSignal;
}

/**
 * What a conversion did.
 *
 * @example
 * ```ts
 * import { convert } from "@tessera/tessera";
 * const result = await convert("v04.ome.zarr", "v05.ome.zarr");
 * for (const level of result.levels) console.log(level.path, level.shards);
 * console.log(result.labels); // label images converted with it
 * ```
 */
export interface ConvertResult {
  /** Name of the converter that ran. */
  converter: string;
  /** The source path. */
  source: string;
  /** The target path. */
  target: string;
  /** Bytes of pixels copied. */
  bytes: number;
  /** Per level of the image: path, shape, chunk and shard shape of the output. */
  levels: { path: string; shape: number[]; chunks: number[]; shards: number[] }[];
  /** Label images converted with it (under `labels/`). */
  labels: string[];
  /** What the source held that the target does not, when anything. */
  notes: string[];
}

/**
 * One conversion between formats. `accepts` must decide from paths and
 * metadata only (no pixels); `run` writes the target.
 *
 * @example
 * ```ts
 * import { type Converter, CONVERTERS } from "@tessera/tessera";
 * const arrowToZarr: Converter = {
 *   name: "ome-arrow→ome-zarr",
 *   description: "OME-Arrow → OME-Zarr 0.5",
 *   accepts: (source) => Promise.resolve(source.endsWith(".arrow")),
 *   run: (source, target) => {
 *     throw new Error(`not written yet: ${source} → ${target}`);
 *   },
 * };
 * CONVERTERS.push(arrowToZarr);
 * ```
 */
export interface Converter {
  /** Short name, e.g. "ome-zarr→ome-zarr-0.5". */
  readonly name: string;
  /** What it converts, for help texts. */
  readonly description: string;
  /** Whether this converter handles `source` → `target`. */
  accepts(source: string, target: string): Promise<boolean>;
  /** Converts. */
  run(source: string, target: string, options: ConvertOptions): Promise<ConvertResult>;
}

/** Origins of the boxes of `box` shape that tile `shape`, row-major. */
function* boxes(shape: readonly number[], box: readonly number[]): Generator<number[]> {
  const counts = shape.map((n, d) => Math.ceil(n / box[d]));
  const total = counts.reduce((a, b) => a * b, 1);
  for (let i = 0; i < total; i++) {
    let rest = i;
    const origin = new Array<number>(shape.length);
    for (let d = shape.length - 1; d >= 0; d--) {
      origin[d] = (rest % counts[d]) * box[d];
      rest = Math.floor(rest / counts[d]);
    }
    yield origin;
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/**
 * OME-Zarr image (NGFF 0.4 or 0.5) → OME-Zarr 0.5, Zarr v3, sharded, zstd.
 *
 * @example
 * ```ts
 * import { omeZarrToSharded } from "@tessera/tessera";
 * if (await omeZarrToSharded.accepts("v04.ome.zarr", "v05.ome.zarr")) {
 *   await omeZarrToSharded.run("v04.ome.zarr", "v05.ome.zarr", { overwrite: true });
 * }
 * ```
 */
export const omeZarrToSharded: Converter = {
  name: "ome-zarr→ome-zarr-0.5",
  description:
    "OME-Zarr image (NGFF 0.4 on Zarr v2, or 0.5) → OME-Zarr 0.5 (Zarr v3, sharded zstd)",
  async accepts(source: string, target: string): Promise<boolean> {
    const src = localPath(source);
    if (!(await exists(join(src, ".zattrs")) || await exists(join(src, "zarr.json")))) return false;
    return !/\.(arrow|parquet)$/i.test(target);
  },
  async run(source: string, target: string, options: ConvertOptions): Promise<ConvertResult> {
    const described = await info(source);
    if (described.kind !== "image" || !described.image) {
      throw new InvalidArgument(
        `${described.path} is a Zarr ${described.kind}, not an OME-NGFF image; only images are converted`,
      );
    }
    const dst = localPath(target);
    if (dst === described.path) {
      throw new InvalidArgument(`convert: ${dst} is both source and target`);
    }
    // The image, then its label images (each an NGFF image of its own) under labels/.
    const labels = described.labels ?? [];
    const jobs = [{ node: described, dst }];
    for (const name of labels) {
      const node = await info(join(described.path, "labels", name));
      if (node.kind !== "image") {
        throw new InvalidArgument(`${node.path}: label "${name}" is not an OME-NGFF image`);
      }
      jobs.push({ node, dst: join(dst, "labels", name) });
    }
    const progress: ConvertProgress = {
      bytesDone: 0,
      bytesTotal: jobs.reduce(
        (sum, { node }) =>
          sum + node.image!.levels.reduce(
            (a, l) => a + l.shape.reduce((x, y) => x * y, dtypeSize(l.dtype)),
            0,
          ),
        0,
      ),
    };
    await prepareTarget(dst, options.overwrite ?? false);
    let levels: ConvertResult["levels"] = [];
    for (const [i, job] of jobs.entries()) {
      using image = await open(job.node.path);
      const copied = await copyLevels(image, job.dst, options, progress);
      if (i === 0) levels = copied;
      await writeImageGroup(job.dst, job.node.image!);
    }
    if (labels.length > 0) await writeGroup(join(dst, "labels"), { version: "0.5", labels });
    return {
      converter: this.name,
      source: described.path,
      target: dst,
      bytes: progress.bytesDone,
      levels,
      labels,
      notes: [],
    };
  },
};

/** Writes a Zarr v3 group's `zarr.json` with `attributes.ome`. */
async function writeGroup(path: string, ome: Record<string, unknown>): Promise<void> {
  await Deno.mkdir(path, { recursive: true });
  await Deno.writeTextFile(
    join(path, "zarr.json"),
    JSON.stringify({ zarr_format: 3, node_type: "group", attributes: { ome } }, null, 2),
  );
}

/** The NGFF 0.5 group metadata of a converted image: levels "0", "1", …, same axes, scales, channels. */
async function writeImageGroup(path: string, ngff: ImageInfo): Promise<void> {
  const datasets = ngff.levels.map((l, i) => ({
    path: String(i),
    coordinateTransformations: [
      { type: "scale", scale: l.scale },
      ...(l.translation ? [{ type: "translation", translation: l.translation }] : []),
    ],
  }));
  await writeGroup(path, {
    version: "0.5",
    multiscales: [{
      ...(ngff.name !== undefined ? { name: ngff.name } : {}),
      axes: ngff.axes,
      datasets,
    }],
    ...(ngff.channels
      ? {
        omero: {
          channels: ngff.channels.map((c) => ({
            ...(c.name !== undefined ? { label: c.name } : {}),
            ...(c.color ? { color: c.color } : {}),
            ...(c.window ? { window: c.window } : {}),
            active: true,
          })),
        },
      }
      : {}),
    // NGFF 0.4 kept a version inside image-label; 0.5 has it once, above.
    ...(ngff.imageLabel ? { "image-label": { ...ngff.imageLabel, version: undefined } } : {}),
  });
}

/** Copies every level of `image` into sharded v3 arrays "0", "1", … under `dst`. */
async function copyLevels(
  image: Image,
  dst: string,
  options: ConvertOptions,
  progress: ConvertProgress,
): Promise<ConvertResult["levels"]> {
  const item = dtypeSize(image.dtype);
  const levels: ConvertResult["levels"] = [];
  for (let i = 0; i < image.levels.length; i++) {
    const meta = arrayInfo(image.arrayMetadata(i));
    const shape = image.levels[i].shape;
    const chunks = meta.chunks.map((c, d) => Math.min(c, shape[d]));
    const shards = shardShape(image.axes, shape, chunks, item, options.shardBytes ?? 16 << 20);
    const fill = meta.fillValue;
    using writer = await createArray(join(dst, String(i)), {
      shape,
      dtype: image.dtype,
      chunks,
      shards,
      fillValue: typeof fill !== "string"
        ? fill
        : /^-?\d+$/.test(fill)
        ? BigInt(fill)
        : Number(fill),
      dimensionNames: [...image.axes],
      ...(options.zstdLevel !== undefined ? { zstdLevel: options.zstdLevel } : {}),
    });
    for (const origin of boxes(shape, shards)) {
      if (options.signal?.aborted) {
        throw new Aborted(
          `conversion to ${dst} was aborted (the partial output is left there, marked incomplete)`,
          { cause: options.signal.reason },
        );
      }
      const count = origin.map((o, d) => Math.min(shards[d], shape[d] - o));
      const selection = Object.fromEntries(
        image.axes.map((a, d) => [a, [origin[d], origin[d] + count[d]] as [number, number]]),
      );
      // No axis is a single index, so the output keeps the store's axis order.
      using box = await image.scan().level(i).select(selection).collect({ signal: options.signal });
      await writer.write(box.data(), origin, count, { signal: options.signal });
      progress.bytesDone += box.byteLength;
      options.onProgress?.({ ...progress });
    }
    levels.push({ path: String(i), shape, chunks, shards });
  }
  return levels;
}

/**
 * The converters {@link convert} tries, in order: OME-Zarr → OME-Zarr 0.5
 * sharded, OME-Zarr → OME-Arrow, OME-Arrow → OME-Zarr 0.5. A new format
 * adds its converter here.
 *
 * @example
 * ```ts
 * import { CONVERTERS } from "@tessera/tessera";
 * for (const c of CONVERTERS) console.log(c.name, "—", c.description);
 * ```
 */
export const CONVERTERS: Converter[] = [
  omeZarrToSharded,
  omeZarrToOmeArrowConverter,
  omeArrowToOmeZarrConverter,
];

/**
 * Converts `source` into `target` with the first converter of
 * {@link CONVERTERS} that accepts the pair.
 *
 * @example
 * ```ts
 * import { convert } from "@tessera/tessera";
 * const result = await convert("image-v04.ome.zarr", "image-v05.ome.zarr", {
 *   onProgress: ({ bytesDone, bytesTotal }) => console.log(bytesDone / bytesTotal),
 * });
 * console.log(result.levels); // shapes, chunks and shards written
 * ```
 */
export async function convert(
  source: string,
  target: string,
  options: ConvertOptions = {},
): Promise<ConvertResult> {
  if (!(await exists(localPath(source)))) throw new NotFound(`${source} does not exist`);
  for (const converter of CONVERTERS) {
    if (await converter.accepts(source, target)) {
      return await converter.run(source, target, options);
    }
  }
  throw new InvalidArgument(
    `no converter handles ${source} → ${target}; available: ${
      CONVERTERS.map((c) => c.description).join("; ")
    }`,
  );
}
