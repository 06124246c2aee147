/**
 * Writes the sample OME-Zarr 0.5 image: 5-D (t, c, z, y, x) uint16, three
 * channels of blobs and noise, sharded zstd, three levels.
 *
 *     deno task sample [--out data/sample.ome.zarr] [--small] [--force] [--quiet]
 * @module
 */

import { parseArgs } from "node:util";
import { createOmeZarr } from "../mod.ts";
import { ProgressBar } from "../src/progress_bar.ts";
import { CHANNEL_STYLES, synthVolume } from "./synth.ts";

/** Shape and chunking of the sample. */
export interface SampleLayout {
  /** [t, c, z, y, x]. */
  shape: [number, number, number, number, number];
  /** Inner chunk shape. */
  chunks: number[];
  /** Shard shape. */
  shards: number[];
}

/** The default sample: 2 × 3 × 32 × 1024 × 1024 (≈ 400 MB raw, ≈ 200 MB stored). */
export const SAMPLE: SampleLayout = {
  shape: [2, 3, 32, 1024, 1024],
  chunks: [1, 1, 16, 128, 128],
  shards: [1, 1, 32, 512, 512],
};

/** A small sample for quick checks: 2 × 3 × 8 × 256 × 256. */
export const SMALL_SAMPLE: SampleLayout = {
  shape: [2, 3, 8, 256, 256],
  chunks: [1, 1, 8, 64, 64],
  shards: [1, 1, 8, 128, 128],
};

/** Writes the sample image to `path`, with a progress bar on a terminal unless `quiet`. */
export async function makeSample(
  path: string,
  layout: SampleLayout = SAMPLE,
  overwrite = false,
  quiet = false,
): Promise<void> {
  const [nt, nc, nz, ny, nx] = layout.shape;
  const started = performance.now();
  using writer = await createOmeZarr(path, {
    axes: [
      { name: "t", type: "time", unit: "second" },
      { name: "c", type: "channel" },
      { name: "z", type: "space", unit: "micrometer" },
      { name: "y", type: "space", unit: "micrometer" },
      { name: "x", type: "space", unit: "micrometer" },
    ],
    shape: layout.shape,
    dtype: "uint16",
    chunks: layout.chunks,
    shards: layout.shards,
    levels: 3,
    scale: [60, 1, 2, 0.5, 0.5],
    name: "tessera sample",
    channels: [
      { name: "DAPI", color: "0000FF", window: { start: 200, end: 3000, min: 0, max: 65535 } },
      { name: "GFP", color: "00FF00", window: { start: 150, end: 1500, min: 0, max: 65535 } },
      { name: "mCherry", color: "FF0000", window: { start: 100, end: 5000, min: 0, max: 65535 } },
    ].slice(0, nc),
    overwrite,
  });
  const volumeBytes = nz * ny * nx * 2;
  const bar = new ProgressBar("sample", { quiet });
  for (let t = 0; t < nt; t++) {
    for (let c = 0; c < nc; c++) {
      const volume = synthVolume(
        [nz, ny, nx],
        CHANNEL_STYLES[c % CHANNEL_STYLES.length],
        1000 + c,
        t,
      );
      await writer.writeLevel0(volume, [t, c, 0, 0, 0], [1, 1, nz, ny, nx]);
      const done = t * nc + c + 1;
      bar.update(done, nt * nc, done * volumeBytes);
      if (!bar.visible && !quiet) {
        console.log(`  level 0: wrote t=${t} c=${c} (${done}/${nt * nc} volumes)`);
      }
    }
  }
  bar.done();
  await writer.buildPyramid();
  if (!quiet) {
    console.log(
      `  levels 1–2 built; sample written in ${
        ((performance.now() - started) / 1000).toFixed(1)
      } s`,
    );
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string", default: "data/sample.ome.zarr" },
      small: { type: "boolean", default: false },
      force: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
    },
  });
  if (!values.quiet) console.log(`writing ${values.out} …`);
  await makeSample(values.out, values.small ? SMALL_SAMPLE : SAMPLE, values.force, values.quiet);
}
