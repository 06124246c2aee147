/**
 * The benchmark's datasets: one synthetic uint16 microscopy-like volume stored
 * twice, as sharded Zarr v3 arrays that differ only in the inner chunks'
 * compressor.
 *
 * - `data/bench/volume-zstd.zarr`: written by tessera (`createArray` +
 *   shard-aligned `write` slabs), zstd level 3.
 * - `data/bench/volume-blosc.zarr`: the same array copied by tensorstore
 *   (`bench/peers_bench.py blosc-copy`) with blosc lz4, byte shuffle,
 *   typesize 2, clevel 5, same shard and inner chunk shapes.
 *
 * `data/bench/volumes.complete` holds the JSON of {@link VOLUMES}; when it
 * matches, the stores are reused.
 *
 *     deno run -A bench/volumes.ts [--force]     (bench/run.ts calls ensureVolumes)
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CHANNEL_STYLES, synthVolume } from "../scripts/synth.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const BENCH_DATA = join(ROOT, "data", "bench");

/** Layout of the benchmark volume (z, y, x). */
export const VOLUMES = {
  version: 1,
  shape: [256, 1024, 1024] as [number, number, number],
  shards: [64, 512, 512],
  chunks: [64, 64, 64],
  dtype: "uint16" as const,
  seed: 4242,
  /** Gaussian blobs (nuclei-like) at the density of the sample's first channel. */
  blobsPer32Planes: CHANNEL_STYLES[0].count,
  stores: {
    zstd: { path: "volume-zstd.zarr", codec: "zstd level 3 (no checksum)" },
    blosc: {
      path: "volume-blosc.zarr",
      codec: "blosc lz4, clevel 5, byte shuffle, typesize 2, blocksize 0 (automatic)",
    },
  },
};

export type StoreName = keyof typeof VOLUMES.stores;
export const STORE_NAMES = Object.keys(VOLUMES.stores) as StoreName[];

/** Absolute path of one store. */
export function storePath(name: StoreName): string {
  return join(BENCH_DATA, VOLUMES.stores[name].path);
}

async function run(cmd: string, args: string[], what: string, env?: Record<string, string>) {
  const status = await new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) {
    throw new Error(`${what}: \`${cmd} ${args.join(" ")}\` exited ${status.code}`);
  }
}

/** Writes both stores (replacing earlier ones). `python` must have tensorstore. */
export async function makeVolumes(python: string): Promise<void> {
  // Imported here: the native library must be built first (scripts/build.ts).
  const { createArray } = await import("../mod.ts");
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
  const [nz, ny, nx] = VOLUMES.shape;
  await Deno.mkdir(BENCH_DATA, { recursive: true });
  const style = {
    ...CHANNEL_STYLES[0],
    count: Math.round(VOLUMES.blobsPer32Planes * nz / 32),
  };
  console.error(`  synthesising ${VOLUMES.shape.join("×")} uint16 …`);
  const volume = synthVolume([nz, ny, nx], style, VOLUMES.seed);
  console.error(`  … done (${elapsed()}); writing ${storePath("zstd")}`);
  {
    using writer = await createArray(storePath("zstd"), {
      shape: VOLUMES.shape,
      dtype: VOLUMES.dtype,
      chunks: VOLUMES.chunks,
      shards: VOLUMES.shards,
      zstdLevel: 3,
      dimensionNames: ["z", "y", "x"],
      overwrite: true,
    });
    // One slab of whole shards at a time (z is the slowest dimension).
    for (let z = 0; z < nz; z += VOLUMES.shards[0]) {
      const depth = Math.min(VOLUMES.shards[0], nz - z);
      const slab = volume.subarray(z * ny * nx, (z + depth) * ny * nx);
      await writer.write(slab, [z, 0, 0], [depth, ny, nx]);
    }
  }
  console.error(`  … done (${elapsed()}); writing ${storePath("blosc")} with tensorstore`);
  await run(python, [
    join(ROOT, "bench", "peers_bench.py"),
    "blosc-copy",
    storePath("zstd"),
    storePath("blosc"),
    "--clevel",
    "5",
    "--cname",
    "lz4",
  ], "blosc copy");
  console.error(`  … done (${elapsed()})`);
}

/** Writes the stores unless the marker says they are there. */
export async function ensureVolumes(python: string, force = false): Promise<void> {
  const marker = join(BENCH_DATA, "volumes.complete");
  const markerText = JSON.stringify(VOLUMES);
  const ready = !force &&
    await Deno.readTextFile(marker).then((t) => t === markerText, () => false);
  if (ready) return;
  console.error(`writing the benchmark volumes in ${BENCH_DATA} …`);
  await Deno.remove(marker).catch(() => {});
  await makeVolumes(python);
  await Deno.writeTextFile(marker, markerText);
}

/** Bytes on disk under a folder. */
export async function folderBytes(path: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(path)) {
    const p = join(path, entry.name);
    if (entry.isDirectory) total += await folderBytes(p);
    else if (entry.isFile) total += (await Deno.stat(p)).size;
  }
  return total;
}

if (import.meta.main) {
  const { ensureNativeLibrary } = await import("../scripts/build.ts");
  const { ensurePythonEnv } = await import("../scripts/python_env.ts");
  await ensureNativeLibrary();
  await ensureVolumes(await ensurePythonEnv(), Deno.args.includes("--force"));
  for (const name of STORE_NAMES) {
    console.log(`${storePath(name)}: ${(await folderBytes(storePath(name)) / 1e6).toFixed(0)} MB`);
  }
}
