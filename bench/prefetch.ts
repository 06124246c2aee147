/**
 * Does `batches({ prefetch })` overlap reading the next batches with the
 * consumer's work? A consumer that spends a fixed time per batch (waiting,
 * as a training step on another device would) iterates a zstd-compressed
 * volume with prefetch 0, 1 and 2; rounds interleave the settings. With
 * full overlap the wall time approaches max(read, work) per batch instead
 * of read + work.
 *
 *     deno task bench:prefetch [--rounds 5]
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createArray, open } from "../mod.ts";
import { ensureNativeLibrary } from "../scripts/build.ts";
import { CHANNEL_STYLES, synthVolume } from "../scripts/synth.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "5" } },
});
const rounds = Number(values.rounds);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SHAPE = [48, 512, 512];
const BATCH = 4;
const SETTINGS = [0, 1, 2];

await ensureNativeLibrary();
const dir = await Deno.makeTempDir({ prefix: "tessera-prefetch-" });
const store = join(dir, "volume.zarr");
{
  using writer = await createArray(store, {
    shape: SHAPE,
    dtype: "uint16",
    chunks: [1, 256, 256],
    shards: [4, 512, 512],
  });
  await writer.write(synthVolume(SHAPE as [number, number, number], CHANNEL_STYLES[0], 7));
}
using img = await open(store);
const query = img.scan();

/** Wall time of one pass over all batches; the consumer waits `workMs` per batch. */
async function pass(prefetch: number, workMs: number): Promise<number> {
  const started = performance.now();
  for await (using batch of query.batches({ over: "d0", batchSize: BATCH, prefetch })) {
    if (batch.shape[0] === 0) throw new Error("empty batch");
    await new Promise((resolve) => setTimeout(resolve, workMs));
  }
  return performance.now() - started;
}

// Read time per batch without any consumer work sets the work time (equal shares).
await pass(0, 0);
const readOnly: number[] = [];
for (let r = 0; r < 3; r++) readOnly.push(await pass(0, 0));
const batches = Math.ceil(SHAPE[0] / BATCH);
const readPerBatch = readOnly.sort((a, b) => a - b)[1] / batches;
const workMs = Math.max(1, Math.round(readPerBatch));

const samples = new Map<number, number[]>(SETTINGS.map((p) => [p, []]));
for (let r = 0; r < rounds; r++) {
  for (const p of r % 2 ? [...SETTINGS].reverse() : SETTINGS) {
    samples.get(p)!.push(await pass(p, workMs));
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const serial = batches * (readPerBatch + workMs);
const ideal = batches * Math.max(readPerBatch, workMs);
const rows = SETTINGS.map((p) => {
  const ms = median(samples.get(p)!);
  return {
    prefetch: p,
    medianMs: ms,
    speedupVsPrefetch0: median(samples.get(0)!) / ms,
    hidden: (serial - ms) / (serial - ideal),
  };
});

const date = new Date().toISOString().slice(0, 10);
const lines = [
  `# batches() prefetch overlap, ${date}`,
  "",
  `${
    SHAPE.join("×")
  } uint16 (zstd 3, inner chunks 1×256×256), ${batches} batches of ${BATCH} z-planes, ` +
  `consumer waits ${workMs} ms per batch (≈ the read time of one batch, ${
    readPerBatch.toFixed(1)
  } ms); ` +
  `${rounds} rounds, settings interleaved; ${navigator.hardwareConcurrency} cores.`,
  "",
  "| prefetch | median wall time | speed-up vs prefetch 0 | share of read time hidden behind work |",
  "| -------: | ---------------: | ---------------------: | ------------------------------------: |",
  ...rows.map((r) =>
    `| ${r.prefetch} | ${r.medianMs.toFixed(0)} ms | ${r.speedupVsPrefetch0.toFixed(2)}× | ${
      (100 * r.hidden).toFixed(0)
    } % |`
  ),
  "",
  `Serial (read + work) would take ${serial.toFixed(0)} ms, full overlap ${ideal.toFixed(0)} ms.`,
];
const markdown = lines.join("\n") + "\n";
await Deno.mkdir(join(ROOT, "bench", "results"), { recursive: true });
await Deno.writeTextFile(join(ROOT, "bench", "results", `${date}-prefetch.md`), markdown);
await Deno.writeTextFile(
  join(ROOT, "bench", "results", `${date}-prefetch.json`),
  JSON.stringify(
    {
      date,
      shape: SHAPE,
      batch: BATCH,
      workMs,
      readPerBatch,
      rounds,
      samples: Object.fromEntries(samples),
      rows,
    },
    null,
    2,
  ) + "\n",
);
console.log(markdown);
await Deno.remove(dir, { recursive: true });
