/**
 * GPU pipeline benchmark: random 128³ samples from 4 sharded uint16 zstd
 * volumes of 512³, 16 per batch, float32 output, with `device: "cuda"`
 * (pinned merged reads, one host→device copy, nvCOMP zstd decode, one
 * assembly launch per batch). Reported next to, from the same run:
 * - the decode-only nvCOMP rate on the same chunks: the device time of
 *   the decode step (CUDA events around nvCOMP's batched call), as output
 *   GB/s were decoding all the pipeline did — the limit;
 * - the CPU executor (`device: "cpu"`) on the same samples.
 *
 *     deno task bench:gpu [--batches N] [--cpu-batches N] [--rounds N] [--seed N]
 *
 * Needs a CUDA device, libnvrtc and nvCOMP (see README, "CUDA path");
 * without them it exits at once with the reason. Volumes:
 * `data/bench-gpu/volume-<i>.zarr`, written once. Results:
 * bench/results/<date>-gpu.json and .md; the markdown is printed.
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensureNativeLibrary } from "../scripts/build.ts";
import { CHANNEL_STYLES, synthVolume } from "../scripts/synth.ts";
import { machineFacts, revision } from "./machine.ts";
import { type Sample, SampleVolumes, type VolumeLayout } from "./sample_volumes.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DATA = join(ROOT, "data", "bench-gpu");

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    batches: { type: "string", default: "64" },
    "cpu-batches": { type: "string", default: "8" },
    rounds: { type: "string", default: "3" },
    seed: { type: "string", default: "20261201" },
  },
});
const BATCHES = Number(args.batches);
const CPU_BATCHES = Math.min(Number(args["cpu-batches"]), BATCHES);
const ROUNDS = Number(args.rounds);
const SEED = Number(args.seed);

/** Layout of the volumes. */
const LAYOUT: VolumeLayout = {
  version: 1,
  volumes: 4,
  shape: [512, 512, 512],
  shards: [256, 256, 256],
  chunks: [64, 64, 64],
  zstdLevel: 3,
  seed: 4242,
};
const SAMPLE: [number, number, number] = [128, 128, 128];
const PER_BATCH = 16;
const SAMPLE_BYTES = SAMPLE.reduce((a, b) => a * b, 1) * 4; // float32

await ensureNativeLibrary();
const { CudaError, pipeline } = await import("../mod.ts");

// Without a device there is nothing to measure: say why and stop.
try {
  await pipeline({ samplesPerBatch: 1, sampleShape: [1], dtype: "float32", device: "cuda" })
    .close();
} catch (e) {
  if (!(e instanceof CudaError)) throw e;
  console.error(`bench:gpu needs a CUDA device: ${e.message}`);
  Deno.exit(1);
}

const volumes = new SampleVolumes(DATA, LAYOUT, SAMPLE);
const request = (s: Sample) => volumes.request(s);

/** Planes `z..z+depth` of volume `i`, synthesized slab by slab (a quarter volume at a time). */
function slab(i: number, z: number, depth: number): Uint16Array<ArrayBuffer> {
  const [, ny, nx] = LAYOUT.shape;
  const style = {
    ...CHANNEL_STYLES[0],
    count: Math.round(CHANNEL_STYLES[0].count * depth / 32),
  };
  return synthVolume([depth, ny, nx], style, LAYOUT.seed + i * 1000 + z);
}

interface Round {
  wallMs: number;
  stats: ReturnType<Awaited<ReturnType<typeof pipeline>>["stats"]>;
}

/** One timed round: a new pipeline, every sample pushed, every batch popped and released. */
async function round(device: "cpu" | "cuda", batches: Sample[][]): Promise<Round> {
  await using pipe = pipeline({
    samplesPerBatch: PER_BATCH,
    sampleShape: SAMPLE,
    dtype: "float32",
    device,
    lookahead: 3,
    maxDeviceMemoryBytes: 16 * 2 ** 30,
  });
  const started = performance.now();
  for (const batch of batches) for (const s of batch) pipe.push(request(s));
  for (let b = 0; b < batches.length; b++) {
    using _batch = await pipe.pop();
  }
  return { wallMs: performance.now() - started, stats: pipe.stats() };
}

/** The first batch on both devices, compared bit for bit. */
async function check(batches: Sample[][]): Promise<void> {
  const first = async (device: "cpu" | "cuda") => {
    await using pipe = pipeline({
      samplesPerBatch: PER_BATCH,
      sampleShape: SAMPLE,
      dtype: "float32",
      device,
    });
    for (const s of batches[0]) pipe.push(request(s));
    using batch = await pipe.pop();
    return new Uint8Array((batch.data() as Float32Array).slice().buffer);
  };
  const [cpu, gpu] = [await first("cpu"), await first("cuda")];
  if (cpu.length !== gpu.length || cpu.some((b, i) => b !== gpu[i])) {
    throw new Error("the first batch differs between the CUDA path and the CPU executor");
  }
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------------------

await volumes.ensure(slab);
const batches = volumes.batches(SEED, BATCHES, PER_BATCH);
await check(batches);
console.error(`timing ${BATCHES} batches on cuda (${ROUNDS} rounds), ${CPU_BATCHES} on the CPU …`);
const gpuRounds: Round[] = [];
const cpuRounds: Round[] = [];
for (let r = 0; r < ROUNDS; r++) {
  gpuRounds.push(await round("cuda", batches));
  cpuRounds.push(await round("cpu", batches.slice(0, CPU_BATCHES)));
}

const rate = (ms: number, n: number) => ({
  ms,
  samplesPerS: n * PER_BATCH / (ms / 1000),
  outputGBps: n * PER_BATCH * SAMPLE_BYTES / (ms / 1000) / 1e9,
});
const gpuMs = median(gpuRounds.map((r) => r.wallMs));
const cpuMs = median(cpuRounds.map((r) => r.wallMs));
// The decode limit: nvCOMP's device time for the round's chunks.
const decodeMs = median(gpuRounds.map((r) => r.stats.cuda!.deviceDecodeMs));
const decodedBytes = gpuRounds[0].stats.cuda!.deviceDecodedBytes;
const rows = {
  cuda: rate(gpuMs, BATCHES),
  nvcompDecodeOnly: {
    ...rate(decodeMs, BATCHES),
    decodedGBps: decodedBytes / (decodeMs / 1000) / 1e9,
  },
  cpu: rate(cpuMs, CPU_BATCHES),
};
const date = new Date().toISOString().slice(0, 10);
const last = gpuRounds[gpuRounds.length - 1].stats;
const report = {
  date,
  revision: await revision(),
  machine: await machineFacts(),
  layout: LAYOUT,
  sample: SAMPLE,
  samplesPerBatch: PER_BATCH,
  batches: BATCHES,
  cpuBatches: CPU_BATCHES,
  rounds: ROUNDS,
  seed: SEED,
  dtype: "float32",
  results: rows,
  ratios: {
    cudaShareOfDecodeLimit: decodeMs / gpuMs,
    cudaVsCpu: rows.cuda.outputGBps / rows.cpu.outputGBps,
  },
  raw: { cuda: gpuRounds, cpu: cpuRounds },
};

const f = (v: number, d = 1) => v.toFixed(d);
const line = (name: string, r: ReturnType<typeof rate>, how: string) =>
  `| ${name} | ${f(r.ms, 0)} ms | ${f(r.samplesPerS)} | ${f(r.outputGBps, 2)} | ${how} |`;
const md = [
  `# GPU pipeline benchmark, ${date}`,
  "",
  `${LAYOUT.volumes} sharded uint16 zstd-${LAYOUT.zstdLevel} volumes of ${
    LAYOUT.shape.join("×")
  } (shards ${LAYOUT.shards.join("×")}, inner chunks ${LAYOUT.chunks.join("×")}); random ` +
  `${SAMPLE.join("×")} samples (seed ${SEED}), ${PER_BATCH} per batch, float32 output ` +
  `(${f(SAMPLE_BYTES * PER_BATCH / 2 ** 20, 0)} MiB per batch). Median of ${ROUNDS} rounds; ` +
  `nvCOMP ${last.cuda!.nvcomp}; ${report.machine.cores} cores (${
    report.machine.cpu ?? "unknown CPU"
  }). Revision ${report.revision ?? "unknown"}.`,
  "",
  "| reader | batches | samples/s | output GB/s | how |",
  "| ------ | ------: | --------: | ----------: | --- |",
  line(
    `tessera \`pipeline()\`, cuda (${BATCHES} batches)`,
    rows.cuda,
    "pinned merged reads, one copy up, nvCOMP zstd, one assembly launch per batch; lookahead 3",
  ),
  line(
    "_limit: nvCOMP decode only_",
    rows.nvcompDecodeOnly,
    `device time of the batched zstd decode of the same chunks (${
      f(rows.nvcompDecodeOnly.decodedGBps, 1)
    } GB/s decoded)`,
  ),
  line(
    `tessera \`pipeline()\`, cpu (${CPU_BATCHES} batches)`,
    rows.cpu,
    "the CPU executor on the first batches of the same samples",
  ),
  "",
  `- cuda vs the nvCOMP decode limit: **${f(100 * report.ratios.cudaShareOfDecodeLimit, 0)} %**`,
  `- cuda vs the CPU executor: **${f(report.ratios.cudaVsCpu, 1)}×**`,
  `- cuda stage totals, last round: io ${f(last.io.ms, 0)} ms / ${
    f(last.io.bytes / 2 ** 20, 0)
  } MiB (thread time), transfer ${f(last.transfer.ms, 0)} ms, decode ${
    f(last.decode.ms, 0)
  } ms, assemble ${f(last.assemble.ms, 0)} ms (device time), pop wait ${
    f(last.pop_wait.ms, 0)
  } ms; ${last.cuda!.deviceFrames} zstd frames on the device, ${
    last.cuda!.cpuChunks
  } chunks on the CPU.`,
  "- First batch checked: the CUDA path equals the CPU executor bit for bit.",
].join("\n") + "\n";

await Deno.mkdir(join(ROOT, "bench", "results"), { recursive: true });
await Deno.writeTextFile(
  join(ROOT, "bench", "results", `${date}-gpu.json`),
  JSON.stringify(report, null, 2) + "\n",
);
await Deno.writeTextFile(join(ROOT, "bench", "results", `${date}-gpu.md`), md);
console.log(md);
