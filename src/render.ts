/**
 * PNG thumbnails of views: axis roles and channel styles are decided here,
 * the pixels are composited and encoded in the native library
 * (`rust/src/render.rs`): the row and column axes are sampled to fit
 * `maxSize`, every other axis but the channel axis is max-projected, each
 * channel is scaled by its contrast window, tinted and added.
 * @module
 */

import { InvalidArgument } from "./errors.ts";
import { native } from "./ffi.ts";
import { check, errorBuffer, NativeBuffer, takePointer } from "./native.ts";

/**
 * Options of {@link TensorView.toPNG} and {@link thumbnail}.
 *
 * @example
 * ```ts
 * import { type RenderOptions, open } from "@tessera/tessera";
 * const options: RenderOptions = { colors: ["FF00FF", "00FF00", "00FFFF"], windows: [[100, 2000], null, null], maxSize: 256 };
 * using img = await open("data/sample.ome.zarr");
 * using plane = await img.scan().select({ t: 0, z: 16 }).collect();
 * const { png } = await plane.toPNG(options);
 * ```
 */
export interface RenderOptions {
  /** The channel axis; default "c" when the view has one, `null` for none. */
  channelAxis?: string | null;
  /** A color per channel as "RRGGBB" hex; default white for one channel, else red, green, blue, … */
  colors?: readonly string[];
  /** A contrast window `[black, full]` per channel; `null` (default) takes it from `percentiles`. */
  windows?: readonly (readonly [number, number] | null)[];
  /** Percentiles (0–100) of each projected channel that map to black and full color (default [0.5, 99.5]). */
  percentiles?: readonly [number, number];
  /** Longest side of the PNG in pixels (default 512, at most 4096); rows and columns are sampled to fit. */
  maxSize?: number;
}

/**
 * A rendered PNG.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * using plane = await img.scan().select({ t: 0, z: 16 }).collect();
 * const rendered = await plane.toPNG();
 * console.log(rendered.width, rendered.height, rendered.windows);
 * await Deno.writeFile("plane.png", rendered.png);
 * ```
 */
export interface RenderedPng {
  /** The PNG file. */
  png: Uint8Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** The contrast window used for each channel. */
  windows: [number, number][];
}

/** Default channel colors, in order, when the metadata gives none. */
export const DEFAULT_COLORS: readonly string[] = [
  "FF0000",
  "00FF00",
  "0000FF",
  "FFFF00",
  "FF00FF",
  "00FFFF",
  "FFFFFF",
];

function parseColor(color: string, i: number): [number, number, number] {
  if (!/^[0-9a-fA-F]{6}$/.test(color)) {
    throw new InvalidArgument(`color ${JSON.stringify(color)} of channel ${i} is not RRGGBB hex`);
  }
  const v = parseInt(color, 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

/**
 * Renders a strided view (`layout`: `[dtype, rank, offset, shape…, strides…]`
 * over `buffer`, axis names `axes`) as an RGB PNG.
 */
export async function renderView(
  buffer: NativeBuffer,
  layout: BigInt64Array<ArrayBuffer>,
  axes: readonly string[],
  shape: readonly number[],
  options: RenderOptions = {},
): Promise<RenderedPng> {
  const where = `rendering a view with axes [${axes}]`;
  if (axes.length < 2) throw new InvalidArgument(`${where}: a PNG needs at least 2 axes`);
  const x = axes.includes("x") ? axes.indexOf("x") : axes.length - 1;
  const y = axes.includes("y")
    ? axes.indexOf("y")
    : [...axes.keys()].filter((i) => i !== x).at(-1)!;
  const channelName = options.channelAxis === undefined
    ? (axes.includes("c") ? "c" : null)
    : options.channelAxis;
  const c = channelName === null ? -1 : axes.indexOf(channelName.toLowerCase());
  if (channelName !== null && c < 0) {
    throw new InvalidArgument(`${where}: channel axis "${channelName}" is not one of them`);
  }
  if (c === x || c === y) {
    throw new InvalidArgument(`${where}: channel axis "${channelName}" is the row or column axis`);
  }
  const nc = c < 0 ? 1 : shape[c];
  if (nc > 64) throw new InvalidArgument(`${where}: ${nc} channels (at most 64 can be composited)`);
  const colors = options.colors ?? (nc === 1 ? ["FFFFFF"] : DEFAULT_COLORS);
  const maxSize = options.maxSize ?? 512;
  if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > 4096) {
    throw new InvalidArgument(`${where}: maxSize ${maxSize} must be an integer in 1..4096`);
  }
  const [pLo, pHi] = options.percentiles ?? [0.5, 99.5];
  if (!(pLo >= 0 && pLo < pHi && pHi <= 100)) {
    throw new InvalidArgument(`${where}: percentiles [${pLo}, ${pHi}] must be 0 ≤ lo < hi ≤ 100`);
  }
  const params = [maxSize, pLo, pHi, c, y, x];
  for (let i = 0; i < nc; i++) {
    const window = options.windows?.[i] ?? null;
    if (window !== null && !(window.length === 2 && window.every(Number.isFinite))) {
      throw new InvalidArgument(`${where}: window of channel ${i} must be two finite numbers`);
    }
    params.push(...parseColor(colors[i % colors.length], i), ...(window ?? [NaN, NaN]));
  }
  const words = Float64Array.from(params);
  const info = new Float64Array(2 + 2 * nc);
  const slot = new BigUint64Array(1);
  const err = errorBuffer();
  check(
    await native().tessera_render_png(
      buffer.handle,
      layout,
      BigInt(layout.length),
      words,
      BigInt(words.length),
      info,
      BigInt(info.length),
      slot,
      err,
      BigInt(err.length),
    ),
    err,
  );
  using file = new NativeBuffer(takePointer(slot));
  return {
    png: new Uint8Array(file.arrayBuffer).slice(),
    width: info[0],
    height: info[1],
    windows: Array.from({ length: nc }, (_, i) => [info[2 + 2 * i], info[3 + 2 * i]]),
  };
}
