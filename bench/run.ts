/**
 * Read benchmark: tessera against zarrita (same Deno process), tensorstore and
 * zarr-python (bench/peers_bench.py) on level 0 of the sample OME-Zarr.
 *
 *     deno task bench [--quick] [--rounds N] [--crops N] [--chunks N] [--seed N]
 *                     [--readers tessera,zarrita,tensorstore,zarr-python]
 *
 * Cases: a whole timepoint, random 16×256×256 crops of one channel, and single
 * inner-chunk reads. Every reader first reads the whole timepoint and the first
 * crops and chunks once (a warm-up whose checksums must match tessera's), then
 * the timed rounds run round-robin over the readers, case by case. Results go
 * to bench/results/<date>.json and .md (…-quick.* with --quick); the markdown
 * table is printed. See bench/README.md.
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as zarr from "zarrita";
import { FileSystemStore } from "@zarrita/storage";
import { ensureNativeLibrary } from "../scripts/build.ts";
import { makeSample, SAMPLE } from "../scripts/make-sample.ts";
import { ensurePythonEnv } from "../scripts/python_env.ts";
import { rng } from "../scripts/synth.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SAMPLE_PATH = join(ROOT, "data", "sample.ome.zarr");
const RESULTS = join(ROOT, "bench", "results");
const PEERS_SCRIPT = join(ROOT, "bench", "peers_bench.py");

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    crops: { type: "string" },
    chunks: { type: "string" },
    seed: { type: "string", default: "20240611" },
    readers: { type: "string", default: "tessera,zarrita,tensorstore,zarr-python" },
  },
});

function intArg(value: string | undefined, fallback: number, name: string, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}`);
  return n;
}

const QUICK = args.quick;
const ROUNDS = intArg(args.rounds, QUICK ? 2 : 7, "rounds");
const N_CROPS = intArg(args.crops, QUICK ? 10 : 50, "crops");
const N_CHUNKS = intArg(args.chunks, QUICK ? 10 : 50, "chunks");
const SEED = intArg(args.seed, 0, "seed", 0);
/** Crops and chunks read (and checked) by every reader before the timed rounds. */
const N_CHECK = 8;
const CROP = [16, 256, 256] as const;

const ALL_READERS = ["tessera", "zarrita", "tensorstore", "zarr-python"] as const;
type ReaderName = typeof ALL_READERS[number];
const PY_READERS: readonly ReaderName[] = ["tensorstore", "zarr-python"];
const READERS = args.readers.split(",").filter((r) => r) as ReaderName[];
for (const r of READERS) {
  if (!ALL_READERS.includes(r)) {
    throw new Error(`unknown reader "${r}" (known: ${ALL_READERS.join(", ")})`);
  }
}
if (READERS[0] !== "tessera") throw new Error("--readers must start with tessera (the reference)");

// ---------------------------------------------------------------------------
// setup: native library, sample (same marker convention as scripts/demo.ts)

await ensureNativeLibrary();
const { open } = await import("../mod.ts");

{
  const marker = `${SAMPLE_PATH}.complete`;
  const markerText = JSON.stringify(SAMPLE);
  const ready = await Deno.readTextFile(marker).then((t) => t === markerText, () => false);
  if (!ready) {
    console.error(`writing sample ${SAMPLE_PATH} (shape ${SAMPLE.shape.join("×")}) …`);
    await Deno.remove(marker).catch(() => {});
    await makeSample(SAMPLE_PATH, SAMPLE, true);
    await Deno.writeTextFile(marker, markerText);
  }
}

// ---------------------------------------------------------------------------
// cases

/** One entry per dimension: an index (drops the dimension) or [start, stop). */
type Sel = (number | [number, number])[];

interface Case {
  name: "whole" | "crops" | "chunks";
  title: string;
  /** What one timed sample is. */
  sample: string;
  reads: Sel[];
  /** Output bytes of one read. */
  bytesPerRead: number;
}

using img = await open(SAMPLE_PATH);
const level0 = img.levels[0];
if (img.dtype !== "uint16" || level0.shape.join() !== SAMPLE.shape.join()) {
  throw new Error(
    `${SAMPLE_PATH}: expected uint16 ${SAMPLE.shape}, got ${img.dtype} ${level0.shape}`,
  );
}
const [nt, nc, nz, ny, nx] = level0.shape;
const [, , cz, cy, cx] = SAMPLE.chunks;

function buildCases(): Case[] {
  const random = rng(SEED);
  const pick = (n: number) => Math.floor(random() * n);
  const crops: Sel[] = [];
  for (let i = 0; i < N_CROPS; i++) {
    const [z0, y0, x0] = [pick(nz - CROP[0] + 1), pick(ny - CROP[1] + 1), pick(nx - CROP[2] + 1)];
    crops.push([pick(nt), pick(nc), [z0, z0 + CROP[0]], [y0, y0 + CROP[1]], [x0, x0 + CROP[2]]]);
  }
  // Distinct inner chunks, in a seeded random order.
  const grid = [nt, nc, nz / cz, ny / cy, nx / cx];
  const total = grid.reduce((a, b) => a * b, 1);
  const order = Array.from({ length: total }, (_, i) => i);
  for (let i = total - 1; i > 0; i--) {
    const j = pick(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const chunks: Sel[] = order.slice(0, Math.min(N_CHUNKS, total)).map((flat) => {
    const c: number[] = [];
    for (let d = grid.length - 1; d >= 0; d--) {
      c[d] = flat % grid[d];
      flat = Math.floor(flat / grid[d]);
    }
    return [c[0], c[1], [c[2] * cz, (c[2] + 1) * cz], [c[3] * cy, (c[3] + 1) * cy], [
      c[4] * cx,
      (c[4] + 1) * cx,
    ]];
  });
  return [
    {
      name: "whole",
      title: `whole timepoint (t=0, ${nc}×${nz}×${ny}×${nx})`,
      sample: "one read",
      reads: [[0, [0, nc], [0, nz], [0, ny], [0, nx]]],
      bytesPerRead: nc * nz * ny * nx * 2,
    },
    {
      name: "crops",
      title: `${crops.length} random crops (1 ch, ${CROP.join("×")})`,
      sample: `all ${crops.length} crops, one after another`,
      reads: crops,
      bytesPerRead: CROP[0] * CROP[1] * CROP[2] * 2,
    },
    {
      name: "chunks",
      title: `single inner chunk (1×${cz}×${cy}×${cx}), ${chunks.length} of them`,
      sample: "one read (latency)",
      reads: chunks,
      bytesPerRead: cz * cy * cx * 2,
    },
  ];
}

const CASES = buildCases();

// ---------------------------------------------------------------------------
// readers

const CHECK_MOD = 251; // must match bench/peers_bench.py

/** [sum, sum of value × (flat C-order index % 251 + 1)]; exact below 2^53. */
function checksum(a: Uint16Array): [number, number] {
  let s1 = 0;
  let s2 = 0;
  let w = 1;
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    s1 += v;
    s2 += v * w;
    if (++w > CHECK_MOD) w = 1;
  }
  return [s1, s2];
}

function isCOrder(shape: readonly number[], stride: readonly number[]): boolean {
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== acc) return false;
    acc *= shape[d];
  }
  return true;
}

interface RunResult {
  ms: number[];
  checksums?: [number, number][];
  shapes?: number[][];
}

interface Reader {
  name: ReaderName;
  version: string;
  threads: number;
  how: string;
  openMs: number;
  run(c: Case, reads: Sel[], check: boolean): Promise<RunResult>;
}

function importVersion(specifier: string): string {
  const map = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));
  const target: string = map.imports?.[specifier] ?? "";
  return target.slice(target.lastIndexOf("@") + 1) || "unknown";
}

function tesseraReader(): Reader {
  const axes = img.axes;
  const threads = Number(Deno.env.get("TESSERA_THREADS")) || navigator.hardwareConcurrency;
  const version = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json"))).version;
  return {
    name: "tessera",
    version,
    threads,
    how:
      `Rust worker pool (TESSERA_THREADS, default: all cores = ${navigator.hardwareConcurrency})`,
    openMs: 0,
    async run(_c, reads, check) {
      const out: RunResult = { ms: [], checksums: [], shapes: [] };
      for (const sel of reads) {
        const selection = Object.fromEntries(axes.map((a, d) => [a, sel[d]]));
        const started = performance.now();
        using view = await img.scan().level(0).select(selection).collect();
        out.ms.push(performance.now() - started);
        if (check) {
          if (!view.isContiguous()) throw new Error(`tessera: view is not C-order`);
          out.checksums!.push(checksum(view.data() as Uint16Array));
          out.shapes!.push([...view.shape]);
        }
      }
      return out;
    },
  };
}

async function zarritaReader(): Promise<Reader> {
  const started = performance.now();
  const arr = await zarr.open(new FileSystemStore(join(SAMPLE_PATH, level0.path)), {
    kind: "array",
  });
  const openMs = performance.now() - started;
  if (!arr.is("uint16")) throw new Error(`zarrita: expected uint16, got ${arr.dtype}`);
  return {
    name: "zarrita",
    version: `${importVersion("zarrita")} (@zarrita/storage ${importVersion("@zarrita/storage")})`,
    threads: 1,
    how: "JS main thread: zstd in WebAssembly (numcodecs.js); shard indexes cached per opened " +
      "array; file reads through node:fs promises",
    openMs,
    async run(_c, reads, check) {
      const out: RunResult = { ms: [], checksums: [], shapes: [] };
      for (const sel of reads) {
        const selection = sel.map((s) => typeof s === "number" ? s : zarr.slice(s[0], s[1]));
        const t0 = performance.now();
        const chunk = await zarr.get(arr, selection);
        out.ms.push(performance.now() - t0);
        if (check) {
          if (!isCOrder(chunk.shape, chunk.stride)) {
            throw new Error(`zarrita: result strides [${chunk.stride}] are not C-order`);
          }
          out.checksums!.push(checksum(chunk.data));
          out.shapes!.push([...chunk.shape]);
        }
      }
      return out;
    },
  };
}

/** The Python peers, one long-lived process answering one JSON line per command. */
class PythonPeers {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  info: {
    python: string;
    versions: Record<string, string | null>;
    threads: Record<string, { threads: number; how: string }>;
    open_ms: Record<string, number>;
  } | undefined;

  constructor(python: string) {
    this.#child = new Deno.Command(python, {
      args: [PEERS_SCRIPT, "serve"],
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = lines(this.#child.stdout)[Symbol.asyncIterator]();
  }

  // deno-lint-ignore no-explicit-any
  async request(message: unknown): Promise<any> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
    const next = await this.#lines.next();
    if (next.done) throw new Error("bench/peers_bench.py exited early (see its stderr above)");
    const reply = JSON.parse(next.value);
    if (reply.error) throw new Error(`${reply.error}\n${reply.trace ?? ""}`);
    return reply;
  }

  async start(store: string, readers: string[], cases: Case[]): Promise<void> {
    this.info = await this.request({
      store,
      readers,
      cases: Object.fromEntries(cases.map((c) => [c.name, { reads: c.reads }])),
    });
  }

  async close(): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify({ op: "quit" }) + "\n"));
    await this.#writer.close();
    const status = await this.#child.status;
    if (!status.success) throw new Error(`bench/peers_bench.py exited with ${status.code}`);
  }

  get pid(): number {
    return this.#child.pid;
  }

  reader(name: ReaderName): Reader {
    const info = this.info!;
    const version = name === "tensorstore"
      ? `${info.versions.tensorstore}`
      : `${info.versions.zarr} (numcodecs ${info.versions.numcodecs})`;
    return {
      name,
      version: `${version}, numpy ${info.versions.numpy}, Python ${info.python}`,
      threads: info.threads[name].threads,
      how: info.threads[name].how,
      openMs: info.open_ms[name],
      // The check pass reads a prefix of the case's list: `limit` says how long.
      run: (c, reads, check) =>
        this.request({ op: "run", reader: name, case: c.name, check, limit: reads.length }),
    };
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
    }
  }
  if (buffer) yield buffer;
}

// ---------------------------------------------------------------------------
// run

interface CpuTicks {
  busy: number;
  total: number;
  /** Ticks of the processes asked about (this one and the Python peers). */
  own: number;
}

/** CPU ticks from Linux's /proc: the machine's busy and total, and those of `pids`. */
async function cpuTicks(pids: (number | "self")[]): Promise<CpuTicks | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  try {
    const f = (await Deno.readTextFile("/proc/stat")).split("\n")[0].trim().split(/\s+/)
      .slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    let own = 0;
    for (const pid of pids) {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // from field 3, state
      own += Number(fields[11]) + Number(fields[12]); // utime, stime
    }
    return { busy: total - f[3] - f[4], total, own };
  } catch {
    return undefined;
  }
}

/** Share of all cores that other processes kept busy between two readings. */
function otherShare(a: CpuTicks | undefined, b: CpuTicks | undefined): number | undefined {
  if (!a || !b || b.total <= a.total) return undefined;
  return Math.max(0, (b.busy - a.busy - (b.own - a.own)) / (b.total - a.total));
}

const idleStart = await cpuTicks(["self"]);
await new Promise((resolve) => setTimeout(resolve, 1000));
const busyBefore = otherShare(idleStart, await cpuTicks(["self"]));
const loadBefore = Deno.loadavg();
const t0 = performance.now();
const readers: Reader[] = [];
const failures: Record<string, string> = {};
let peers: PythonPeers | undefined;

for (const name of READERS) {
  try {
    if (name === "tessera") readers.push(tesseraReader());
    else if (name === "zarrita") readers.push(await zarritaReader());
  } catch (e) {
    failures[name] = `open failed: ${e instanceof Error ? e.message : e}`;
  }
}
const pyWanted = READERS.filter((r) => PY_READERS.includes(r));
if (pyWanted.length > 0) {
  const python = await ensurePythonEnv();
  peers = new PythonPeers(python);
  await peers.start(join(SAMPLE_PATH, level0.path), pyWanted, CASES);
  for (const name of pyWanted) readers.push(peers.reader(name));
}
console.error(
  `cases: ${CASES.map((c) => `${c.name} ×${c.reads.length}`).join(", ")}; ${ROUNDS} rounds; ` +
    `readers: ${readers.map((r) => r.name).join(", ")}`,
);

const pids: (number | "self")[] = peers ? ["self", peers.pid] : ["self"];
const ticksStart = await cpuTicks(pids);

// Check pass (and warm-up): every reader reads the whole timepoint and the
// first crops and chunks once; checksums and shapes must equal tessera's.
const reference: Record<string, RunResult> = {};
const checked: Record<string, { reads: number; ok: boolean }> = {};
for (const reader of [...readers]) {
  let reads = 0;
  try {
    for (const c of CASES) {
      const subset = c.name === "whole" ? c.reads : c.reads.slice(0, N_CHECK);
      const r = await reader.run(c, subset, true);
      if (reader.name === "tessera") {
        reference[c.name] = r;
      } else {
        const ref = reference[c.name];
        for (let i = 0; i < subset.length; i++) {
          const [got, want] = [r.checksums![i], ref.checksums![i]];
          const [gotShape, wantShape] = [r.shapes![i].join("×"), ref.shapes![i].join("×")];
          if (got[0] !== want[0] || got[1] !== want[1] || gotShape !== wantShape) {
            throw new Error(
              `${c.name} read ${i} (${JSON.stringify(subset[i])}) differs from tessera: ` +
                `shape ${gotShape} vs ${wantShape}, checksum [${got}] vs [${want}]`,
            );
          }
        }
      }
      reads += subset.length;
    }
    checked[reader.name] = { reads, ok: true };
    console.error(`  check ${reader.name}: ${reads} reads agree with tessera`);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    failures[reader.name] = `check failed: ${message}`;
    checked[reader.name] = { reads, ok: false };
    console.error(`  check ${reader.name}: FAILED: ${message}`);
    if (reader.name === "tessera") throw e;
    readers.splice(readers.indexOf(reader), 1);
  }
}

// Timed rounds: case by case, readers round-robin, the order rotating each round.
const samples: Record<string, Record<string, { samples: number[]; opMs: number[][] }>> = {};
for (const c of CASES) {
  samples[c.name] = {};
  for (const r of readers) samples[c.name][r.name] = { samples: [], opMs: [] };
}
for (let round = 0; round < ROUNDS; round++) {
  for (const c of CASES) {
    const order = readers.map((_, i) => readers[(i + round) % readers.length]);
    for (const reader of order) {
      const { ms } = await reader.run(c, c.reads, false);
      const s = samples[c.name][reader.name];
      if (c.name === "crops") {
        s.samples.push(ms.reduce((a, b) => a + b, 0));
        s.opMs.push(ms);
      } else {
        s.samples.push(...ms);
      }
    }
  }
  console.error(
    `  round ${round + 1}/${ROUNDS} done (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
  );
}
const busyDuring = otherShare(ticksStart, await cpuTicks(pids));
await peers?.close();
const elapsedS = (performance.now() - t0) / 1000;
const loadAfter = Deno.loadavg();

// ---------------------------------------------------------------------------
// summary

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const round3 = (x: number) => Math.round(x * 1000) / 1000;

interface Summary {
  samples_ms: number[];
  crop_ms?: number[][];
  median_ms: number;
  min_ms: number;
  gb_per_s: number;
  ops_per_s: number;
}

const results: Record<string, Record<string, Summary>> = {};
const ratios: Record<string, Record<string, number>> = {};
for (const c of CASES) {
  results[c.name] = {};
  ratios[c.name] = {};
  for (const r of readers) {
    const { samples: xs, opMs } = samples[c.name][r.name];
    const med = median(xs);
    const readsPerSample = c.name === "crops" ? c.reads.length : 1;
    results[c.name][r.name] = {
      samples_ms: xs.map(round3),
      ...(c.name === "crops" ? { crop_ms: opMs.map((row) => row.map(round3)) } : {}),
      median_ms: round3(med),
      min_ms: round3(Math.min(...xs)),
      gb_per_s: round3((c.bytesPerRead * readsPerSample) / 1e9 / (med / 1000)),
      ops_per_s: round3(readsPerSample / (med / 1000)),
    };
  }
  const base = results[c.name].tessera.median_ms;
  for (const r of readers) {
    if (r.name !== "tessera") {
      ratios[c.name][r.name] = round3(results[c.name][r.name].median_ms / base);
    }
  }
}

async function commandText(cmd: string, cmdArgs: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(cmd, { args: cmdArgs, cwd: ROOT, stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

const cpuModel = Deno.build.os === "linux"
  ? (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(/model name\s*:\s*(.*)/)?.[1]
  : undefined;
const commit = await commandText("git", ["rev-parse", "--short", "HEAD"]);
const dirty = await commandText("git", ["status", "--porcelain"]);
const date = new Date().toISOString().slice(0, 10);

const machine = {
  cores: navigator.hardwareConcurrency,
  cpu: cpuModel,
  memory_gb: round3(Deno.systemMemoryInfo().total / 2 ** 30),
  os: `${Deno.build.os} ${Deno.osRelease()} (${Deno.build.arch})`,
  deno: Deno.version,
  /** 1, 5 and 15 minute load averages before and after the timed part. */
  loadavg_before: loadBefore.map(round3),
  loadavg_after: loadAfter.map(round3),
  /**
   * Share of all cores kept busy by other processes: over 1 s just before the
   * run, and during the checks and timed rounds (this process and the Python
   * peers excluded). Linux only.
   */
  other_cpu_busy_before: busyBefore === undefined ? undefined : round3(busyBefore),
  other_cpu_busy_during: busyDuring === undefined ? undefined : round3(busyDuring),
};

const report = {
  date,
  quick: QUICK,
  elapsed_s: round3(elapsedS),
  commit: commit ? `${commit}${dirty ? " (uncommitted changes)" : ""}` : undefined,
  machine,
  config: {
    store: `data/sample.ome.zarr/${level0.path}`,
    shape: level0.shape,
    dtype: img.dtype,
    shards: SAMPLE.shards,
    chunks: SAMPLE.chunks,
    rounds: ROUNDS,
    seed: SEED,
    checked_reads_per_case: N_CHECK,
  },
  readers: Object.fromEntries(readers.map((r) => [r.name, {
    version: r.version,
    threads: r.threads,
    how: r.how,
    open_ms: round3(r.openMs),
  }])),
  failures,
  checks: checked,
  cases: Object.fromEntries(CASES.map((c) => [c.name, {
    title: c.title,
    sample: c.sample,
    bytes_per_read: c.bytesPerRead,
    reads: c.reads,
  }])),
  results,
  ratio_note: "tessera speed / peer speed = peer median / tessera median; > 1: tessera is faster",
  ratios,
};

function fmtMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(2)} ms`;
}

const md: string[] = [];
md.push(`# tessera read benchmark, ${date}${QUICK ? " (quick)" : ""}`);
md.push("");
md.push(
  `${machine.cores} cores${machine.cpu ? ` (${machine.cpu})` : ""}, ` +
    `${machine.memory_gb.toFixed(0)} GiB, ${machine.os}, Deno ${machine.deno.deno}` +
    `${report.commit ? `, tessera ${report.commit}` : ""}. ` +
    `Level 0 of data/sample.ome.zarr: ${level0.shape.join("×")} uint16, shards ` +
    `${SAMPLE.shards.join("×")}, inner chunks ${SAMPLE.chunks.join("×")}, zstd 3; files in the ` +
    `page cache. ${ROUNDS} rounds, readers interleaved; ${elapsedS.toFixed(0)} s in all.`,
);
const pct = (x: number | undefined) => x === undefined ? "?" : `${(x * 100).toFixed(0)} %`;
if ((busyBefore ?? 0) > 0.1 || (busyDuring ?? 0) > 0.05) {
  md.push("");
  md.push(
    `**Note:** other processes kept ${pct(busyDuring)} of all cores busy during the run ` +
      `(${pct(busyBefore)} just before it); timings may be noisy.`,
  );
}
md.push("");
md.push("| case | reader | median | min | throughput | tessera speed / reader speed |");
md.push("| --- | --- | ---: | ---: | ---: | ---: |");
for (const c of CASES) {
  for (const r of readers) {
    const s = results[c.name][r.name];
    const throughput = c.name === "chunks"
      ? `${s.ops_per_s.toFixed(0)} reads/s`
      : c.name === "crops"
      ? `${s.ops_per_s.toFixed(0)} crops/s, ${s.gb_per_s.toFixed(2)} GB/s`
      : `${s.gb_per_s.toFixed(2)} GB/s`;
    const ratio = r.name === "tessera" ? "1" : `${ratios[c.name][r.name].toFixed(2)}×`;
    md.push(
      `| ${c.title} | ${r.name} | ${fmtMs(s.median_ms)} | ${
        fmtMs(s.min_ms)
      } | ${throughput} | ${ratio} |`,
    );
  }
}
md.push("");
md.push(
  "Samples: whole timepoint, one read each round; crops, all crops of a round read one after " +
    "another; chunks, each read (median latency). Ratio = peer median / tessera median " +
    "(> 1: tessera is faster). GB/s counts output bytes (uint16, decompressed).",
);
md.push("");
md.push("| reader | version | threads |");
md.push("| --- | --- | --- |");
for (const r of readers) md.push(`| ${r.name} | ${r.version} | ${r.threads}: ${r.how} |`);
md.push("");
md.push(
  `Checked before timing: every reader's whole timepoint and first ${N_CHECK} crops and chunks ` +
    `have tessera's shape and checksum (sum and position-weighted sum).`,
);
for (const [name, why] of Object.entries(failures)) md.push(`\n**${name} left out**: ${why}`);
const markdown = md.join("\n") + "\n";

/** JSON with arrays of numbers (and of such arrays) kept on one line. */
function toJson(value: unknown, indent = ""): string {
  const flat = (v: unknown): boolean =>
    v === null || typeof v !== "object" || (Array.isArray(v) && v.every(flat));
  if (flat(value)) {
    return Array.isArray(value)
      ? `[${value.map((v) => toJson(v)).join(", ")}]`
      : JSON.stringify(value ?? null);
  }
  const inner = indent + "  ";
  if (Array.isArray(value)) {
    return `[\n${value.map((v) => inner + toJson(v, inner)).join(",\n")}\n${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) =>
    v !== undefined
  );
  if (entries.length === 0) return "{}";
  return `{\n${
    entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${toJson(v, inner)}`).join(",\n")
  }\n${indent}}`;
}

await Deno.mkdir(RESULTS, { recursive: true });
const stem = join(RESULTS, `${date}${QUICK ? "-quick" : ""}`);
await Deno.writeTextFile(`${stem}.json`, toJson(report) + "\n");
await Deno.writeTextFile(`${stem}.md`, markdown);
// Leave the files as `deno fmt` would (deno task check runs `deno fmt --check`).
const fmt = await new Deno.Command(Deno.execPath(), {
  args: ["fmt", "--quiet", `${stem}.json`, `${stem}.md`],
  cwd: ROOT,
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!fmt.success) console.error(`deno fmt ${stem}.md failed; the file is left as written`);
console.log(await Deno.readTextFile(`${stem}.md`));
console.error(`wrote ${stem}.json and ${stem}.md`);
if (Object.keys(failures).length > 0) Deno.exit(1);
