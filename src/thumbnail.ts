/**
 * Thumbnails of images: one plane (or a max projection) of a well-sized
 * level, channels composited with their omero colors.
 * @module
 */

import { dtypeSize } from "./dtype.ts";
import { InvalidArgument } from "./errors.ts";
import type { Image } from "./image.ts";
import { DEFAULT_COLORS, type RenderedPng, type RenderOptions } from "./render.ts";
import type { Selection } from "./query.ts";

/**
 * Options of {@link thumbnail}.
 *
 * @example
 * ```ts
 * import { type ThumbnailOptions, open, thumbnail } from "@tessera/tessera";
 * const options: ThumbnailOptions = { maxSize: 256, t: 1, z: "max", channels: [0, 2] };
 * using img = await open("data/sample.ome.zarr");
 * const { png } = await thumbnail(img, options);
 * ```
 */
export interface ThumbnailOptions extends Pick<RenderOptions, "percentiles" | "windows"> {
  /** Longest side in pixels (default 512). */
  maxSize?: number;
  /** Level to read; default the coarsest whose rows and columns still reach `maxSize` (else level 0). */
  level?: number;
  /** Time index (default 0). */
  t?: number;
  /** Z index; default the middle plane. `"max"` projects every plane. */
  z?: number | "max";
  /** Channel indices to composite (default all, up to 64). */
  channels?: readonly number[];
  /** Colors per composited channel ("RRGGBB"); default the omero colors, else red, green, blue, … */
  colors?: readonly string[];
  /** Refuse ({@link InvalidArgument}) to read more than this many bytes (default 1 GiB). */
  maxReadBytes?: number;
}

/** Picks the coarsest level whose y and x still reach `maxSize` pixels on the longer side. */
export function thumbnailLevel(image: Image, maxSize: number): number {
  const y = image.axes.indexOf("y"), x = image.axes.indexOf("x");
  const side = (shape: number[]) =>
    Math.max(y >= 0 ? shape[y] : 1, x >= 0 ? shape[x] : shape[shape.length - 1]);
  for (let i = image.levels.length - 1; i >= 0; i--) {
    if (side(image.levels[i].shape) >= maxSize) return i;
  }
  return 0;
}

/**
 * A PNG thumbnail of an image: time point `t`, plane `z` (default: the
 * middle one), the chosen channels tinted with their omero colors and
 * contrast-stretched between percentiles, all composited natively.
 *
 * @example
 * ```ts
 * import { open, thumbnail } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * const { png, width, height } = await thumbnail(img, { maxSize: 256, z: "max" });
 * await Deno.writeFile("thumb.png", png);
 * ```
 */
export async function thumbnail(
  image: Image,
  options: ThumbnailOptions = {},
): Promise<RenderedPng> {
  const maxSize = options.maxSize ?? 512;
  const level = options.level ?? thumbnailLevel(image, maxSize);
  const shape = image.levels[level]?.shape;
  if (!shape) {
    throw new InvalidArgument(
      `level ${level} does not exist: ${image.source} has levels 0..${image.levels.length - 1}`,
    );
  }
  const selection: Selection = {};
  const size = (axis: string) => shape[image.axes.indexOf(axis)];
  if (image.axes.includes("t")) selection.t = options.t ?? 0;
  if (image.axes.includes("z") && options.z !== "max") {
    selection.z = options.z ?? Math.floor(size("z") / 2);
  }
  const hasC = image.axes.includes("c");
  const channels = options.channels ?? (hasC ? [...Array(Math.min(size("c"), 64)).keys()] : [0]);
  if (channels.length === 0) throw new InvalidArgument(`thumbnail of ${image.source}: no channels`);
  const { colors, windows } = options;
  const colorOf = (i: number) =>
    colors?.[i] ?? image.channelInfo?.[channels[i]]?.color ??
      (channels.length === 1 ? "FFFFFF" : DEFAULT_COLORS[i % DEFAULT_COLORS.length]);
  if (hasC) {
    for (const c of channels) {
      if (!Number.isInteger(c) || c < 0 || c >= size("c")) {
        throw new InvalidArgument(
          `thumbnail of ${image.source}: channel ${c} is outside 0..${size("c") - 1}`,
        );
      }
    }
    // One read of the channel range; channels in it that were not chosen are drawn black.
    selection.c = [Math.min(...channels), Math.max(...channels) + 1];
  }
  const bytes = image.axes.reduce((n, axis, d) => {
    const s = selection[axis];
    return n * (s === undefined ? shape[d] : typeof s === "number" ? 1 : s[1] - s[0]);
  }, dtypeSize(image.dtype));
  const limit = options.maxReadBytes ?? 2 ** 30;
  if (bytes > limit) {
    throw new InvalidArgument(
      `thumbnail of ${image.source} would read ${bytes} bytes from level ${level} ` +
        `(maxReadBytes ${limit}); choose a coarser level, one z plane or fewer channels`,
    );
  }
  if (!hasC) {
    using plane = await image.scan().level(level).select(selection).collect();
    return await plane.toPNG({
      maxSize,
      channelAxis: null,
      colors: [colorOf(0)],
      ...(windows ? { windows } : {}),
      ...(options.percentiles ? { percentiles: options.percentiles } : {}),
    });
  }
  const [lo, hi] = selection.c as [number, number];
  using stack = await image.scan().level(level).select(selection).collect();
  const inRange = Array.from({ length: hi - lo }, (_, k) => channels.indexOf(lo + k));
  const rendered = await stack.toPNG({
    maxSize,
    channelAxis: "c",
    colors: inRange.map((i) => i < 0 ? "000000" : colorOf(i)),
    windows: inRange.map((i) => i < 0 ? null : windows?.[i] ?? null),
    ...(options.percentiles ? { percentiles: options.percentiles } : {}),
  });
  return { ...rendered, windows: channels.map((c) => rendered.windows[c - lo]) };
}
