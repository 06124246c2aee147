/**
 * Stores shared by the reliability tests (cancellation, concurrency,
 * lifetimes): sharded uint16 volumes whose every element is a known
 * function of its coordinates, so results are checked against that
 * function rather than against another tessera read.
 * @module
 */

import { join } from "node:path";
import { createArray } from "../mod.ts";
import { tempDir } from "./helpers.ts";

/** The element stored at (z, y, x): a cheap hash, so zstd has work to do. */
export function valueAt(z: number, y: number, x: number): number {
  let h = Math.imul(z * 73856093 ^ y * 19349663 ^ x * 83492791, 0x9e3779b1);
  h ^= h >>> 15;
  return h & 0xffff;
}

/** A volume of `shape` filled with {@link valueAt}. */
export function volumeData(shape: readonly [number, number, number]): Uint16Array<ArrayBuffer> {
  const [nz, ny, nx] = shape;
  const data = new Uint16Array(nz * ny * nx);
  let i = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) data[i++] = valueAt(z, y, x);
  }
  return data;
}

/** Writes a sharded zstd uint16 array of `shape` (axes z, y, x) and returns its path. */
export async function writeVolume(
  name: string,
  shape: [number, number, number],
  shards: [number, number, number],
  chunks: [number, number, number],
): Promise<string> {
  const path = join(await tempDir("tessera-reliability-"), name);
  using writer = await createArray(path, {
    shape,
    dtype: "uint16",
    chunks,
    shards,
    zstdLevel: 1,
    dimensionNames: ["z", "y", "x"],
  });
  await writer.write(volumeData(shape));
  return path;
}

/** Checks that `data` (C order over z, y, x boxes starting at `origin`) matches {@link valueAt}. */
export function checkBox(
  data: Uint16Array,
  origin: readonly number[],
  shape: readonly number[],
): string | undefined {
  const [oz, oy, ox] = origin;
  const [nz, ny, nx] = shape;
  let i = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        const want = valueAt(oz + z, oy + y, ox + x);
        if (data[i] !== want) {
          return `element (${oz + z}, ${oy + y}, ${ox + x}) is ${data[i]}, expected ${want}`;
        }
      }
    }
  }
  return undefined;
}

/** Resident set size of this process, in bytes. */
export function rss(): number {
  return Deno.memoryUsage().rss;
}
