/**
 * Pipeline benchmark: random 128³ samples from several sharded uint16 zstd
 * volumes, 16 per batch, float32 output. tessera's `pipeline()` against
 * tensorstore reading the same samples in the same run
 * (bench/pipeline_tensorstore.py) and against the plain-zstd decode limit
 * of bench/native (`limits serve`, reader `decode-limit`: every inner chunk
 * each sample touches, read and decompressed with no Zarr logic).
 *
 *     deno task bench:pipeline [--quick] [--batches N] [--rounds N] [--seed N]
 *
 * Volumes: `data/bench-pipeline/volume-<i>.zarr`, written once (a marker
 * file holds their layout). Results: bench/results/<date>-pipeline.json and
 * .md (…-pipeline-quick.* with --quick); the markdown is printed.
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensureNativeLibrary } from "../scripts/build.ts";
import { ensurePythonEnv } from "../scripts/python_env.ts";
import { CHANNEL_STYLES, synthVolume } from "../scripts/synth.ts";
import { cpuTicks, machineFacts, otherShare, revision } from "./machine.ts";
import { type Sample, SampleVolumes, type VolumeLayout } from "./sample_volumes.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DATA = join(ROOT, "data", "bench-pipeline");
const NATIVE = join(ROOT, "bench", "native");
const LIMITS = join(NATIVE, "target", "release", "limits");
const TS_SCRIPT = join(ROOT, "bench", "pipeline_tensorstore.py");

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    batches: { type: "string" },
    rounds: { type: "string" },
    seed: { type: "string", default: "20261201" },
  },
});
const QUICK = args.quick;
const BATCHES = Number(args.batches ?? (QUICK ? 3 : 12));
const ROUNDS = Number(args.rounds ?? (QUICK ? 1 : 3));
const SEED = Number(args.seed);

/** Layout of the volumes. */
const LAYOUT: VolumeLayout = {
  version: 1,
  volumes: 4,
  shape: [256, 512, 512],
  shards: [128, 256, 256],
  chunks: [64, 64, 64],
  zstdLevel: 3,
  seed: 777,
};
const SAMPLE: [number, number, number] = [128, 128, 128];
const PER_BATCH = 16;
const OUT_BYTES = 4; // float32
const SAMPLE_BYTES = SAMPLE.reduce((a, b) => a * b, 1) * OUT_BYTES;

const volumes = new SampleVolumes(DATA, LAYOUT, SAMPLE);
const request = (s: Sample) => volumes.request(s);

/** Volume `i`, synthesized whole (kept while its slabs are written). */
let synthesized: [number, Uint16Array<ArrayBuffer>] | undefined;

/** Planes `z..z+depth` of volume `i`. */
function slab(i: number, z: number, depth: number): Uint16Array<ArrayBuffer> {
  const [nz, ny, nx] = LAYOUT.shape;
  if (synthesized?.[0] !== i) {
    const style = { ...CHANNEL_STYLES[0], count: Math.round(CHANNEL_STYLES[0].count * nz / 32) };
    synthesized = [i, synthVolume(LAYOUT.shape, style, LAYOUT.seed + i)];
  }
  return synthesized[1].subarray(z * ny * nx, (z + depth) * ny * nx);
}

async function ensureLimits(): Promise<void> {
  if (await Deno.stat(LIMITS).then(() => true, () => false)) return;
  console.error(`building ${LIMITS} (cargo build --release in ${NATIVE}) …`);
  const status = await new Deno.Command("cargo", {
    args: ["build", "--release", "--bin", "limits"],
    cwd: NATIVE,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) throw new Error(`cargo build in ${NATIVE} failed`);
}

/** Inner chunks a sample touches, as "volume:z,y,x" keys. */
function chunksOf([v, corner]: Sample): string[] {
  const ranges = corner.map((c, d) => {
    const first = Math.floor(c / LAYOUT.chunks[d]);
    const last = Math.floor((c + SAMPLE[d] - 1) / LAYOUT.chunks[d]);
    return Array.from({ length: last - first + 1 }, (_, i) => first + i);
  });
  const keys: string[] = [];
  for (const z of ranges[0]) {
    for (const y of ranges[1]) {
      for (const x of ranges[2]) {
        keys.push(`${v}:${z},${y},${x}`);
      }
    }
  }
  return keys;
}

const sum64 = (a: Float32Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
};

interface TesseraRound {
  wallMs: number;
  batchMs: number[];
  stats: unknown;
}

/** Reads the first batch once: its sum and per-sample sums, to compare with tensorstore's. */
async function tesseraCheck(batches: Sample[][]): Promise<{ sum: number; sampleSums: number[] }> {
  const { pipeline } = await import("../mod.ts");
  await using pipe = pipeline({
    samplesPerBatch: PER_BATCH,
    sampleShape: SAMPLE,
    dtype: "float32",
  });
  for (const s of batches[0]) pipe.push(request(s));
  using batch = await pipe.pop();
  const data = batch.data() as Float32Array;
  const n = SAMPLE_BYTES / OUT_BYTES;
  return {
    sum: sum64(data),
    sampleSums: Array.from(
      { length: PER_BATCH },
      (_, i) => sum64(data.subarray(i * n, (i + 1) * n)),
    ),
  };
}

/** One timed round: a new pipeline, every sample pushed, every batch popped and disposed. */
async function tesseraRound(batches: Sample[][]): Promise<TesseraRound> {
  const { pipeline } = await import("../mod.ts");
  await using pipe = pipeline({
    samplesPerBatch: PER_BATCH,
    sampleShape: SAMPLE,
    dtype: "float32",
    lookahead: 2,
  });
  const started = performance.now();
  for (const batch of batches) for (const s of batch) pipe.push(request(s));
  const batchMs: number[] = [];
  let last = started;
  for (let b = 0; b < batches.length; b++) {
    using _batch = await pipe.pop();
    const now = performance.now();
    batchMs.push(now - last);
    last = now;
  }
  return { wallMs: performance.now() - started, batchMs, stats: pipe.stats() };
}

/** One run of bench/pipeline_tensorstore.py: an untimed check batch, then `rounds` timed rounds. */
async function runTensorstore(python: string, batches: Sample[][], rounds: number) {
  const dir = await Deno.makeTempDir({ prefix: "tessera-bench-pipeline-" });
  const cases = join(dir, "cases.json");
  await Deno.writeTextFile(
    cases,
    JSON.stringify({
      stores: Array.from({ length: LAYOUT.volumes }, (_, i) => volumes.path(i)),
      sample: SAMPLE,
      rounds,
      batches,
    }),
  );
  const out = await new Deno.Command(python, { args: [TS_SCRIPT, cases], stderr: "inherit" })
    .output();
  await Deno.remove(dir, { recursive: true });
  if (!out.success) throw new Error(`${TS_SCRIPT} failed (exit ${out.code})`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The decode limit: `limits serve` with one case per volume holding that volume's samples. */
class LimitPeer {
  #child = new Deno.Command(LIMITS, {
    args: ["serve"],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  #writer = this.#child.stdin.getWriter();
  #reader = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  #buffered = "";
  #volumes: number[] = [];
  info: unknown;

  // deno-lint-ignore no-explicit-any
  async #request(message: unknown): Promise<any> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
    while (!this.#buffered.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("limits exited early");
      this.#buffered += value;
    }
    const nl = this.#buffered.indexOf("\n");
    const reply = JSON.parse(this.#buffered.slice(0, nl));
    this.#buffered = this.#buffered.slice(nl + 1);
    if (reply.error) throw new Error(`limits: ${reply.error}`);
    return reply;
  }

  async start(batches: Sample[][]): Promise<void> {
    const stores: Record<string, string> = {};
    const cases: Record<string, { reads: [number, number][][] }> = {};
    for (let v = 0; v < LAYOUT.volumes; v++) {
      stores[`v${v}`] = volumes.path(v);
      cases[`s${v}`] = { reads: [] };
    }
    for (const [v, corner] of batches.flat()) {
      cases[`s${v}`].reads.push(corner.map((c, d) => [c, c + SAMPLE[d]]));
    }
    this.#volumes = Object.keys(stores).map((_, v) => v).filter((v) =>
      cases[`s${v}`].reads.length > 0
    );
    this.info = await this.#request({ stores, readers: ["decode-limit"], cases });
  }

  /** One timed round: every sample's chunks, volume by volume; the sum of the read times. */
  async round(): Promise<number> {
    let total = 0;
    for (const v of this.#volumes) {
      const reply = await this.#request({
        op: "run",
        reader: "decode-limit",
        store: `v${v}`,
        case: `s${v}`,
        check: false,
        limit: null,
      });
      total += (reply.ms as number[]).reduce((a, b) => a + b, 0);
    }
    return total;
  }

  async close(): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify({ op: "quit" }) + "\n"));
    await this.#writer.close();
    this.#reader.releaseLock();
    await this.#child.status;
  }
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------------------

await ensureNativeLibrary();
const python = await ensurePythonEnv();
await volumes.ensure(slab);
synthesized = undefined; // the last volume, no longer needed
await ensureLimits();
const batches = volumes.batches(SEED, BATCHES, PER_BATCH);
const samples = BATCHES * PER_BATCH;
const perSampleChunks = batches.flat().reduce((n, s) => n + chunksOf(s).length, 0);
const distinctChunks = batches.reduce((n, b) => n + new Set(b.flatMap(chunksOf)).size, 0);

const idle = await cpuTicks(["self"]);
await new Promise((r) => setTimeout(r, 1000));
const busyBefore = otherShare(idle, await cpuTicks(["self"]));
console.error(`timing ${samples} samples in ${BATCHES} batches, ${ROUNDS} rounds …`);
// Rounds interleave the readers, the order rotating each round, so that a change
// in the machine's load does not favour one of them.
const tesseraCheckSums = await tesseraCheck(batches);
const limitPeer = new LimitPeer();
await limitPeer.start(batches);
const tesseraRounds: TesseraRound[] = [];
const tsRounds: number[][] = [];
let tsCheck: { sum: number; sample_sums: number[] } | undefined;
let tsVersion = "";
const limitRounds: number[] = [];
const runners = [
  async () => tesseraRounds.push(await tesseraRound(batches)),
  async () => {
    const run = await runTensorstore(python, batches, 1);
    tsCheck ??= run.check;
    tsVersion = run.version;
    tsRounds.push(run.rounds[0]);
  },
  async () => limitRounds.push(await limitPeer.round()),
];
for (let r = 0; r < ROUNDS; r++) {
  for (let k = 0; k < runners.length; k++) await runners[(r + k) % runners.length]();
}
await limitPeer.close();
const tessera = { rounds: tesseraRounds, check: tesseraCheckSums };
const tensorstore = { rounds: tsRounds, check: tsCheck!, version: tsVersion };
const limit = { roundsMs: limitRounds, info: limitPeer.info };

const maxRel = Math.max(
  Math.abs(tessera.check.sum - tensorstore.check.sum) / Math.abs(tensorstore.check.sum),
  ...tessera.check.sampleSums.map((s, i) =>
    Math.abs(s - tensorstore.check.sample_sums[i]) / Math.abs(tensorstore.check.sample_sums[i])
  ),
);
if (maxRel > 1e-6) {
  throw new Error(`first batch differs between tessera and tensorstore (relative ${maxRel})`);
}

const tesseraMs = median(tessera.rounds.map((r) => r.wallMs));
const tsMs = median(
  (tensorstore.rounds as number[][]).map((r) => r.reduce((a, b) => a + b, 0)),
);
const limitMs = median(limit.roundsMs);
const limitDedupMs = limitMs * distinctChunks / perSampleChunks;
const outBytes = samples * SAMPLE_BYTES;
const rate = (ms: number) => ({
  ms,
  samplesPerS: samples / (ms / 1000),
  outputGBps: outBytes / (ms / 1000) / 1e9,
});
const rows = {
  tessera: rate(tesseraMs),
  tensorstore: rate(tsMs),
  decodeLimitPerSample: rate(limitMs),
  decodeLimitDistinctEstimate: rate(limitDedupMs),
};
const date = new Date().toISOString().slice(0, 10);
const stats = tessera.rounds[tessera.rounds.length - 1].stats as Record<
  string,
  { ms: number; bytes: number; count: number }
>;
const report = {
  date,
  revision: await revision(),
  machine: await machineFacts(),
  otherProcessesBusyBefore: busyBefore,
  layout: LAYOUT,
  sample: SAMPLE,
  samplesPerBatch: PER_BATCH,
  batches: BATCHES,
  rounds: ROUNDS,
  seed: SEED,
  dtype: "float32",
  chunkDecodes: { perSample: perSampleChunks, distinctPerBatch: distinctChunks },
  results: rows,
  ratios: {
    tesseraVsTensorstore: tsMs / tesseraMs,
    tesseraShareOfPerSampleLimit: limitMs / tesseraMs,
    tesseraShareOfDistinctChunkLimit: limitDedupMs / tesseraMs,
  },
  raw: {
    tessera: tessera.rounds,
    tensorstore: { rounds: tensorstore.rounds, version: tensorstore.version },
    limit,
  },
  check: { firstBatchMaxRelativeDifference: maxRel },
};

const f = (v: number, d = 1) => v.toFixed(d);
const line = (name: string, r: ReturnType<typeof rate>, how: string) =>
  `| ${name} | ${f(r.ms, 0)} ms | ${f(r.samplesPerS)} | ${f(r.outputGBps, 2)} | ${how} |`;
const md = [
  `# Pipeline benchmark, ${date}${QUICK ? " (quick)" : ""}`,
  "",
  `${LAYOUT.volumes} sharded uint16 zstd-${LAYOUT.zstdLevel} volumes of ${
    LAYOUT.shape.join("×")
  } (shards ${LAYOUT.shards.join("×")}, inner chunks ${LAYOUT.chunks.join("×")}); ${samples} ` +
  `random ${SAMPLE.join("×")} samples (seed ${SEED}) in ${BATCHES} batches of ${PER_BATCH}, ` +
  `float32 output (${
    f(SAMPLE_BYTES * PER_BATCH / 2 ** 20, 0)
  } MiB per batch). Median of ${ROUNDS} ` +
  `rounds (readers interleaved, order rotating); ${report.machine.cores} cores (${
    report.machine.cpu ?? "unknown CPU"
  }); other ` +
  `processes kept ${
    busyBefore === undefined ? "?" : f(100 * busyBefore, 0)
  } % of the cores busy just before. Revision ${report.revision ?? "unknown"}.`,
  "",
  "| reader | all batches | samples/s | output GB/s | how |",
  "| ------ | ----------: | --------: | ----------: | --- |",
  line(
    "tessera `pipeline()`",
    rows.tessera,
    "push all samples, pop and dispose each batch; lookahead 2, all cores",
  ),
  line(
    `tensorstore ${tensorstore.version}`,
    rows.tensorstore,
    "per batch: 16 concurrent `ts.cast(view, float32)[box].read()`, copied into one array; no cache",
  ),
  line(
    "_limit: read + zstd, per sample_",
    rows.decodeLimitPerSample,
    "bench/native `decode-limit`: every inner chunk of every sample, no assembly",
  ),
  line(
    "_limit, distinct chunks (estimate)_",
    rows.decodeLimitDistinctEstimate,
    `the line above × ${distinctChunks}/${perSampleChunks} (chunks distinct within a batch / per sample)`,
  ),
  "",
  `- tessera / tensorstore: **${f(report.ratios.tesseraVsTensorstore, 2)}×**`,
  `- tessera vs the per-sample decode limit: **${
    f(100 * report.ratios.tesseraShareOfPerSampleLimit, 0)
  } %**; vs the distinct-chunk estimate: **${
    f(100 * report.ratios.tesseraShareOfDistinctChunkLimit, 0)
  } %**`,
  `- tessera decodes each inner chunk once per batch (${distinctChunks} decodes where a reader ` +
  `that works sample by sample does ${perSampleChunks}); tensorstore and the per-sample limit ` +
  `do the latter.`,
  `- tessera stage totals, last round (thread time summed over workers): io ${
    f(stats.io.ms, 0)
  } ms / ${f(stats.io.bytes / 2 ** 20, 0)} MiB, decode ${
    f(stats.decode.ms, 0)
  } ms / ${stats.decode.count} chunks, assemble ${f(stats.assemble.ms, 0)} ms, pop wait ${
    f(stats.pop_wait.ms, 0)
  } ms.`,
  `- First batch checked: tessera's and tensorstore's per-sample sums agree (max relative ` +
  `difference ${maxRel.toExponential(1)}).`,
].join("\n") + "\n";

const name = `${date}-pipeline${QUICK ? "-quick" : ""}`;
await Deno.mkdir(join(ROOT, "bench", "results"), { recursive: true });
await Deno.writeTextFile(
  join(ROOT, "bench", "results", `${name}.json`),
  JSON.stringify(report, null, 2) + "\n",
);
await Deno.writeTextFile(join(ROOT, "bench", "results", `${name}.md`), md);
console.log(md);
