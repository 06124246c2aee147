/**
 * Volumes of the pipeline benchmarks (bench/pipeline.ts, bench/gpu.ts):
 * sharded uint16 zstd arrays written once under one folder (a marker file
 * holds their layout, so a changed layout rewrites them), random samples
 * wholly inside them, and the pipeline requests that read those samples.
 * @module
 */

import { join } from "node:path";
import { rng } from "../scripts/synth.ts";

/** Layout of the volumes (z, y, x); its JSON is the marker's content. */
export interface VolumeLayout {
  /** Bumped when the generated data changes. */
  version: number;
  /** How many volumes. */
  volumes: number;
  /** Shape of each volume. */
  shape: [number, number, number];
  /** Shard shape. */
  shards: number[];
  /** Inner chunk shape. */
  chunks: number[];
  /** zstd level of the inner chunks. */
  zstdLevel: number;
  /** Seed of the synthetic data. */
  seed: number;
}

/** One sample: volume index and corner (z, y, x); wholly inside the volume. */
export type Sample = [number, [number, number, number]];

/** The volumes under `dir` and the samples cut from them. */
export class SampleVolumes {
  /** Volumes of `layout` under `dir`, sampled in boxes of shape `sample`. */
  constructor(
    readonly dir: string,
    readonly layout: VolumeLayout,
    readonly sample: [number, number, number],
  ) {}

  /** Path of volume `i`. */
  path(i: number): string {
    return join(this.dir, `volume-${i}.zarr`);
  }

  /**
   * Writes the volumes unless the marker matches the layout, one shard-deep
   * slab at a time: `slab(i, z, depth)` gives planes `z..z+depth` of volume
   * `i` (asked for in order).
   */
  async ensure(
    slab: (volume: number, z: number, depth: number) => Uint16Array<ArrayBuffer>,
  ): Promise<void> {
    const marker = join(this.dir, "volumes.complete");
    const text = JSON.stringify(this.layout);
    if (await Deno.readTextFile(marker).then((t) => t === text, () => false)) return;
    const { createArray } = await import("../mod.ts");
    await Deno.remove(marker).catch(() => {});
    await Deno.mkdir(this.dir, { recursive: true });
    const { shape, shards, chunks, zstdLevel, volumes } = this.layout;
    const [nz, ny, nx] = shape;
    for (let i = 0; i < volumes; i++) {
      console.error(`writing ${this.path(i)} (${shape.join("×")} uint16) …`);
      using writer = await createArray(this.path(i), {
        shape,
        dtype: "uint16",
        chunks,
        shards,
        zstdLevel,
        dimensionNames: ["z", "y", "x"],
        overwrite: true,
      });
      for (let z = 0; z < nz; z += shards[0]) {
        const depth = Math.min(shards[0], nz - z);
        await writer.write(slab(i, z, depth), [z, 0, 0], [depth, ny, nx]);
      }
    }
    await Deno.writeTextFile(marker, text);
  }

  /** `count` batches of `perBatch` random samples drawn with `seed`. */
  batches(seed: number, count: number, perBatch: number): Sample[][] {
    const random = rng(seed);
    const pick = (n: number) => Math.floor(random() * n);
    return Array.from({ length: count }, () =>
      Array.from({ length: perBatch }, () => {
        const corner = this.layout.shape.map((n, d) => pick(n - this.sample[d] + 1));
        return [pick(this.layout.volumes), corner as [number, number, number]] as Sample;
      }));
  }

  /** The pipeline request that reads sample `s`. */
  request([v, [z, y, x]]: Sample) {
    const [dz, dy, dx] = this.sample;
    return {
      uri: this.path(v),
      box: { z: [z, z + dz], y: [y, y + dy], x: [x, x + dx] },
    } as const;
  }
}
