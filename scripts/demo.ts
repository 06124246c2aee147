/**
 * The quick-start demo: builds the native library if needed, writes the
 * sample OME-Zarr if missing, then runs a few queries and reports what was
 * read and how fast.
 *
 *     deno task demo [--small] [--quiet]
 * @module
 */

import { parseArgs } from "node:util";
import { ensureNativeLibrary } from "./build.ts";
import { makeSample, SAMPLE, SMALL_SAMPLE } from "./make-sample.ts";
import { rng } from "./synth.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    small: { type: "boolean", default: false },
    quiet: { type: "boolean", default: false },
  },
});
const layout = values.small ? SMALL_SAMPLE : SAMPLE;
const path = values.small ? "data/sample-small.ome.zarr" : "data/sample.ome.zarr";
const marker = `${path}.complete`;

await ensureNativeLibrary();
const { open, ProgressBar } = await import("../mod.ts");

const markerText = JSON.stringify(layout);
const ready = await Deno.readTextFile(marker).then((t) => t === markerText, () => false);
if (!ready) {
  console.log(
    `writing sample ${path} (shape ${layout.shape.join("×")}, uint16, sharded zstd, 3 levels) …`,
  );
  await Deno.remove(marker).catch(() => {});
  await makeSample(path, layout, true, values.quiet);
  await Deno.writeTextFile(marker, markerText);
}

const gb = (bytes: number, ms: number) => (bytes / 1e9 / (ms / 1000)).toFixed(2);
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

using img = await open(path);
console.log(`\n${path}`);
console.log(`  axes     ${img.axes.join(", ")}`);
console.log(`  shape    ${img.shape.join(" × ")}  ${img.dtype}`);
console.log(`  channels ${img.channels?.join(", ")}`);
for (const [i, l] of img.levels.entries()) {
  console.log(
    `  level ${i}  path ${l.path}  shape ${l.shape.join("×")}  scale ${l.scale.join(", ")}`,
  );
}

const [, nc, nz, ny, nx] = img.shape;
const crop = {
  t: 0,
  c: [0, Math.min(2, nc)] as [number, number],
  z: [Math.min(10, nz - 1), Math.min(20, nz)] as [number, number],
  y: [Math.min(100, ny - 1), Math.min(612, ny)] as [number, number],
  x: [0, Math.min(512, nx)] as [number, number],
};
const query = img.scan().level(0).select(crop).cast("float32");
const plan = await query.explain();
console.log(`\nquery: t=0, c=[0,2), z=[10,20), y=[100,612), x=[0,512) → float32`);
console.log(
  `  plan: output ${plan.shape.join("×")} ${plan.dtype} (${mb(plan.outputBytes)} MB), ` +
    `${plan.shardsTouched} shards, ${plan.chunksTouched} chunks (${plan.chunksStored} stored), ` +
    `${mb(plan.bytesRead)} MB to read in ${plan.readOps} reads, ${
      mb(plan.bytesDecoded)
    } MB to decode`,
);
let started = performance.now();
{
  using view = await query.collect();
  const ms = performance.now() - started;
  const data = view.data() as Float32Array;
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum += data[i];
  console.log(
    `  read ${view.shape.join("×")} ${view.dtype}, strides [${view.strides}], mean ${
      (sum / data.length).toFixed(1)
    } ` +
      `in ${ms.toFixed(1)} ms (${gb(plan.bytesDecoded, ms)} GB/s decoded)`,
  );
}

started = performance.now();
{
  // A whole-timepoint read takes a while: a progress bar (bytes/s, ETA) on a terminal.
  const bar = new ProgressBar("  whole timepoint", { quiet: values.quiet });
  using view = await img.scan().select({ t: 0 }).collect({ onProgress: bar.counters() });
  bar.done();
  const ms = performance.now() - started;
  console.log(
    `  whole timepoint 0: ${view.shape.join("×")} ${view.dtype} (${mb(view.byteLength)} MB) in ${
      ms.toFixed(0)
    } ms ` +
      `(${gb(view.byteLength, ms)} GB/s)`,
  );
}

const random = rng(7);
const crops = 50;
const [cz, cy, cx] = [Math.min(16, nz), Math.min(256, ny), Math.min(256, nx)];
let bytes = 0;
started = performance.now();
for (let i = 0; i < crops; i++) {
  const z0 = Math.floor(random() * (nz - cz + 1));
  const y0 = Math.floor(random() * (ny - cy + 1));
  const x0 = Math.floor(random() * (nx - cx + 1));
  using view = await img.scan().select({
    t: Math.floor(random() * img.shape[0]),
    c: Math.floor(random() * nc),
    z: [z0, z0 + cz],
    y: [y0, y0 + cy],
    x: [x0, x0 + cx],
  }).collect();
  bytes += view.byteLength;
}
let ms = performance.now() - started;
console.log(
  `  ${crops} random crops ${cz}×${cy}×${cx}: ${(ms / crops).toFixed(1)} ms each (${
    (crops / (ms / 1000)).toFixed(0)
  } crops/s, ${gb(bytes, ms)} GB/s)`,
);

started = performance.now();
{
  using view = await img.scan().level(2).collect();
  ms = performance.now() - started;
  console.log(
    `  level 2, all of it: ${view.shape.join("×")} in ${ms.toFixed(0)} ms (${
      gb(view.byteLength, ms)
    } GB/s)`,
  );
}
