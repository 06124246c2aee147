/**
 * Read benchmark: tessera against zarrita (same Deno process), tensorstore,
 * zarr-python and zarr-python with the zarrs codec pipeline
 * (bench/peers_bench.py), and the zarrs crate (bench/native, zarrs-read), with
 * two reference limits (bench/native, limits): the same inner chunks read and
 * decompressed by plain zstd / c-blosc with no Zarr logic, and memcpy.
 *
 *     deno task bench [--quick] [--rounds N] [--crops N] [--chunks N] [--seed N]
 *                     [--readers tessera,zarrita,...] [--stores zstd,blosc]
 *
 * Data: a 256×1024×1024 uint16 volume stored twice, sharded (64×512×512
 * shards, 64³ inner chunks), zstd 3 and blosc lz4 (bench/volumes.ts). Cases:
 * the whole volume, random 64×256×256 crops, single inner-chunk reads. Every
 * reader first reads the whole volume and the first crops and chunks of every
 * store once (a warm-up whose checksums must match tessera's on the zstd
 * store), then the timed rounds run round-robin over the readers, store by
 * store and case by case, the order rotating each round. Results go to
 * bench/results/<date>.json and .md (…-quick.* with --quick); the markdown is
 * printed. See bench/README.md.
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as zarr from "zarrita";
import { FileSystemStore } from "@zarrita/storage";
import { ensureNativeLibrary } from "../scripts/build.ts";
import { ensurePythonEnv } from "../scripts/python_env.ts";
import { rng } from "../scripts/synth.ts";
import {
  ensureVolumes,
  folderBytes,
  STORE_NAMES,
  type StoreName,
  storePath,
  VOLUMES,
} from "./volumes.ts";
import { cpuTicks, machineFacts, otherShare, revision } from "./machine.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS = join(ROOT, "bench", "results");
const PEERS_SCRIPT = join(ROOT, "bench", "peers_bench.py");
const NATIVE = join(ROOT, "bench", "native");
const NATIVE_BIN = join(NATIVE, "target", "release");
const BENCH_REQUIREMENTS = join(ROOT, "bench", "requirements.txt");
const BENCH_SITE = join(ROOT, ".venv", "bench-site");

const ALL_READERS = [
  "tessera",
  "zarrita",
  "tensorstore",
  "zarr-python",
  "zarr-python+zarrs",
  "zarrs",
  "decode-limit",
  "memcpy",
] as const;
type ReaderName = typeof ALL_READERS[number];
const PY_READERS: readonly ReaderName[] = ["tensorstore", "zarr-python", "zarr-python+zarrs"];
const LIMIT_READERS: readonly ReaderName[] = ["decode-limit", "memcpy"];

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    crops: { type: "string" },
    chunks: { type: "string" },
    seed: { type: "string", default: "20240611" },
    readers: { type: "string", default: ALL_READERS.join(",") },
    stores: { type: "string", default: STORE_NAMES.join(",") },
  },
});

function intArg(value: string | undefined, fallback: number, name: string, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}`);
  return n;
}

const QUICK = args.quick;
const ROUNDS = intArg(args.rounds, QUICK ? 1 : 3, "rounds");
const N_CROPS = intArg(args.crops, QUICK ? 5 : 200, "crops");
const N_CHUNKS = intArg(args.chunks, QUICK ? 10 : 100, "chunks");
const SEED = intArg(args.seed, 0, "seed", 0);
/** Crops and chunks read (and checked) by every reader before the timed rounds. */
const N_CHECK = 8;
const CROP = [64, 256, 256] as const;

const READERS = args.readers.split(",").filter((r) => r) as ReaderName[];
for (const r of READERS) {
  if (!ALL_READERS.includes(r)) {
    throw new Error(`unknown reader "${r}" (known: ${ALL_READERS.join(", ")})`);
  }
}
if (READERS[0] !== "tessera") throw new Error("--readers must start with tessera (the reference)");
const STORES = args.stores.split(",").filter((s) => s) as StoreName[];
for (const s of STORES) {
  if (!STORE_NAMES.includes(s)) {
    throw new Error(`unknown store "${s}" (known: ${STORE_NAMES.join(", ")})`);
  }
}
if (STORES[0] !== "zstd") throw new Error("--stores must start with zstd (the reference)");

// ---------------------------------------------------------------------------
// setup: native library, bench binaries, Python peers, volumes

/** Newest modification time under `path` (files only; `target` folders skipped). */
async function newest(path: string): Promise<number> {
  const info = await Deno.stat(path);
  if (info.isFile) return info.mtime?.getTime() ?? 0;
  let t = 0;
  for await (const entry of Deno.readDir(path)) {
    if (entry.name !== "target") t = Math.max(t, await newest(join(path, entry.name)));
  }
  return t;
}

/** Builds bench/native (cargo build --release, output shown) unless its binaries are newer. */
async function ensureBenchNative(): Promise<void> {
  const bins = ["zarrs-read", "limits"].map((b) => join(NATIVE_BIN, b));
  const built = await Promise.all(
    bins.map((b) => Deno.stat(b).then((i) => i.mtime?.getTime() ?? 0, () => 0)),
  );
  if (Math.min(...built) > 0 && Math.min(...built) >= await newest(NATIVE)) return;
  console.error(`building the benchmark's native peers (cargo build --release in ${NATIVE}) …`);
  const status = await new Deno.Command("cargo", {
    args: ["build", "--release"],
    cwd: NATIVE,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) throw new Error(`cargo build --release in ${NATIVE} failed`);
}

/** Installs bench/requirements.txt (zarrs-python) into .venv/bench-site when it changed. */
async function ensureBenchPython(python: string): Promise<void> {
  const requirements = await Deno.readFile(BENCH_REQUIREMENTS);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", requirements));
  const hash = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  const stamp = join(BENCH_SITE, ".bench-stamp");
  if ((await Deno.readTextFile(stamp).catch(() => ""))?.trim() === hash) return;
  console.error(`installing ${BENCH_REQUIREMENTS} into ${BENCH_SITE} …`);
  await Deno.remove(BENCH_SITE, { recursive: true }).catch(() => {});
  const status = await new Deno.Command(python, {
    args: [
      "-m",
      "pip",
      "install",
      "--disable-pip-version-check",
      "--no-deps",
      "--target",
      BENCH_SITE,
      "-r",
      BENCH_REQUIREMENTS,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) throw new Error(`pip install -r ${BENCH_REQUIREMENTS} failed`);
  await Deno.writeTextFile(stamp, hash + "\n");
}

await ensureNativeLibrary();
const { open } = await import("../mod.ts");
if (READERS.some((r) => r === "zarrs" || LIMIT_READERS.includes(r))) await ensureBenchNative();
const python = await ensurePythonEnv();
if (READERS.includes("zarr-python+zarrs")) await ensureBenchPython(python);
await ensureVolumes(python);

// ---------------------------------------------------------------------------
// cases

/** One [start, stop) per dimension (z, y, x). */
type Sel = [number, number][];
type CaseName = "whole" | "slab" | "crops" | "chunks";

interface Case {
  name: CaseName;
  title: string;
  /** What one timed sample is. */
  sample: string;
  reads: Sel[];
  /** Output bytes of one read. */
  bytesPerRead: number;
}

const [NZ, NY, NX] = VOLUMES.shape;
const CHUNK = VOLUMES.chunks;

function buildCases(): Case[] {
  const random = rng(SEED);
  const pick = (n: number) => Math.floor(random() * n);
  const crops: Sel[] = [];
  for (let i = 0; i < N_CROPS; i++) {
    const [z0, y0, x0] = [pick(NZ - CROP[0] + 1), pick(NY - CROP[1] + 1), pick(NX - CROP[2] + 1)];
    crops.push([[z0, z0 + CROP[0]], [y0, y0 + CROP[1]], [x0, x0 + CROP[2]]]);
  }
  // Distinct inner chunks, in a seeded random order.
  const grid = [NZ / CHUNK[0], NY / CHUNK[1], NX / CHUNK[2]];
  const total = grid[0] * grid[1] * grid[2];
  const order = Array.from({ length: total }, (_, i) => i);
  for (let i = total - 1; i > 0; i--) {
    const j = pick(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const chunks: Sel[] = order.slice(0, Math.min(N_CHUNKS, total)).map((flat) => {
    const c = [Math.floor(flat / (grid[1] * grid[2])), Math.floor(flat / grid[2]) % grid[1]];
    c.push(flat % grid[2]);
    return c.map((ci, d) => [ci * CHUNK[d], (ci + 1) * CHUNK[d]] as [number, number]);
  });
  const elements = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  // --quick reads one slab of shards instead of the whole volume (a quarter of it).
  const SZ = VOLUMES.shards[0];
  const big: Case = QUICK
    ? {
      name: "slab",
      title: `first shard slab (${SZ}×${NY}×${NX})`,
      sample: "one read",
      reads: [[[0, SZ], [0, NY], [0, NX]]],
      bytesPerRead: SZ * NY * NX * 2,
    }
    : {
      name: "whole",
      title: `whole volume (${NZ}×${NY}×${NX})`,
      sample: "one read",
      reads: [[[0, NZ], [0, NY], [0, NX]]],
      bytesPerRead: NZ * NY * NX * 2,
    };
  return [
    big,
    {
      name: "crops",
      title: `${crops.length} random crops (${CROP.join("×")})`,
      sample: `all ${crops.length} crops, one after another`,
      reads: crops,
      bytesPerRead: elements(CROP) * 2,
    },
    {
      name: "chunks",
      title: `single inner chunk (${CHUNK.join("×")}), ${chunks.length} of them`,
      sample: "one read (latency)",
      reads: chunks,
      bytesPerRead: elements(CHUNK) * 2,
    },
  ];
}

const CASES = buildCases();

// ---------------------------------------------------------------------------
// readers

const CHECK_MOD = 251; // must match bench/peers_bench.py and bench/native/src/lib.rs

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
  /** Per read: both sums, the first only (second null), or null when not comparable. */
  checksums?: ([number, number | null] | null)[];
  shapes?: (number[] | null)[];
}

interface Reader {
  name: ReaderName;
  /** Limits are reference rows, not readers: no Zarr logic, no assembled output. */
  limit: boolean;
  version: string;
  threads: number;
  how: string;
  openMs: Partial<Record<StoreName, number>>;
  /** Stores this reader could not open, and why. */
  openErrors: Partial<Record<StoreName, string>>;
  /** Runs the first `n` reads of a case on a store. */
  run(store: StoreName, c: Case, n: number, check: boolean): Promise<RunResult>;
}

function importVersion(specifier: string): string {
  const map = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));
  const target: string = map.imports?.[specifier] ?? "";
  return target.slice(target.lastIndexOf("@") + 1) || "unknown";
}

const errorText = (e: unknown) => e instanceof Error ? e.message : String(e);

async function tesseraReader(): Promise<Reader> {
  const threads = Number(Deno.env.get("TESSERA_THREADS")) || navigator.hardwareConcurrency;
  const version = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json"))).version;
  const images: Partial<Record<StoreName, Awaited<ReturnType<typeof open>>>> = {};
  const openMs: Reader["openMs"] = {};
  const openErrors: Reader["openErrors"] = {};
  for (const store of STORES) {
    const started = performance.now();
    try {
      const img = await open(storePath(store));
      if (img.dtype !== "uint16" || img.shape.join() !== VOLUMES.shape.join()) {
        throw new Error(`expected uint16 ${VOLUMES.shape}, got ${img.dtype} ${img.shape}`);
      }
      images[store] = img;
      openMs[store] = performance.now() - started;
    } catch (e) {
      openErrors[store] = errorText(e);
    }
  }
  return {
    name: "tessera",
    limit: false,
    version,
    threads,
    how: `open() once per store, then per read scan().select({ z, y, x }).collect(); Rust worker ` +
      `pool (TESSERA_THREADS, default: all cores = ${navigator.hardwareConcurrency})`,
    openMs,
    openErrors,
    async run(store, c, n, check) {
      const img = images[store];
      if (!img) throw new Error(`${store} not open: ${openErrors[store]}`);
      const out: RunResult = { ms: [], checksums: [], shapes: [] };
      for (const sel of c.reads.slice(0, n)) {
        const selection = { z: sel[0], y: sel[1], x: sel[2] };
        const started = performance.now();
        using view = await img.scan().select(selection).collect();
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
  const arrays: Partial<Record<StoreName, zarr.Array<"uint16", FileSystemStore>>> = {};
  const openMs: Reader["openMs"] = {};
  const openErrors: Reader["openErrors"] = {};
  for (const store of STORES) {
    const started = performance.now();
    try {
      const arr = await zarr.open(new FileSystemStore(storePath(store)), { kind: "array" });
      if (!arr.is("uint16")) throw new Error(`expected uint16, got ${arr.dtype}`);
      arrays[store] = arr;
      openMs[store] = performance.now() - started;
    } catch (e) {
      openErrors[store] = errorText(e);
    }
  }
  return {
    name: "zarrita",
    limit: false,
    version: `${importVersion("zarrita")} (@zarrita/storage ${importVersion("@zarrita/storage")})`,
    threads: 1,
    how: "JS main thread: zstd and blosc in WebAssembly (numcodecs.js); shard indexes cached " +
      "per opened array; file reads through node:fs promises",
    openMs,
    openErrors,
    async run(store, c, n, check) {
      const arr = arrays[store];
      if (!arr) throw new Error(`${store} not open: ${openErrors[store]}`);
      const out: RunResult = { ms: [], checksums: [], shapes: [] };
      for (const sel of c.reads.slice(0, n)) {
        const selection = sel.map(([a, b]) => zarr.slice(a, b));
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

/**
 * A long-lived peer process answering one JSON line per command line: the
 * Python peers (bench/peers_bench.py serve) and the native ones
 * (bench/native: zarrs-read serve, limits serve) speak the same protocol.
 */
class PeerProcess {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  // deno-lint-ignore no-explicit-any
  info: any;

  constructor(
    readonly label: string,
    cmd: string,
    cmdArgs: string[],
    env?: Record<string, string>,
  ) {
    this.#child = new Deno.Command(cmd, {
      args: cmdArgs,
      cwd: ROOT,
      env,
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
    if (next.done) throw new Error(`${this.label} exited early (see its stderr above)`);
    const reply = JSON.parse(next.value);
    if (reply.error) throw new Error(`${reply.error}\n${reply.trace ?? ""}`.trim());
    return reply;
  }

  async start(readers: ReaderName[]): Promise<void> {
    this.info = await this.request({
      stores: Object.fromEntries(STORES.map((s) => [s, storePath(s)])),
      readers,
      cases: Object.fromEntries(CASES.map((c) => [c.name, { reads: c.reads }])),
    });
  }

  async close(): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify({ op: "quit" }) + "\n"));
    await this.#writer.close();
    const status = await this.#child.status;
    if (!status.success) throw new Error(`${this.label} exited with ${status.code}`);
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** A reader served by this process; `describe` fills in what the setup reply says. */
  reader(
    name: ReaderName,
    describe: Pick<Reader, "version" | "threads" | "how" | "openMs" | "openErrors">,
  ): Reader {
    return {
      name,
      limit: LIMIT_READERS.includes(name),
      ...describe,
      // The check pass reads a prefix of the case's list: `limit` says how long.
      run: (store, c, n, check) =>
        this.request({ op: "run", reader: name, store, case: c.name, check, limit: n }),
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

const idleStart = await cpuTicks(["self"]);
await new Promise((resolve) => setTimeout(resolve, 1000));
const busyBefore = otherShare(idleStart, await cpuTicks(["self"]));
const loadBefore = Deno.loadavg();
const t0 = performance.now();
const readers: Reader[] = [];
/** Keyed `reader` (could not start) or `reader/store`. */
const failures: Record<string, string> = {};
const processes: PeerProcess[] = [];

for (const name of READERS) {
  try {
    if (name === "tessera") readers.push(await tesseraReader());
    else if (name === "zarrita") readers.push(await zarritaReader());
  } catch (e) {
    failures[name] = `open failed: ${errorText(e)}`;
  }
}
const pyWanted = READERS.filter((r) => PY_READERS.includes(r));
if (pyWanted.length > 0) {
  const pythonPath = [BENCH_SITE, Deno.env.get("PYTHONPATH")].filter((p) => p).join(":");
  const peers = new PeerProcess("bench/peers_bench.py", python, [PEERS_SCRIPT, "serve"], {
    PYTHONPATH: pythonPath,
  });
  processes.push(peers);
  await peers.start(pyWanted);
  const info = peers.info;
  const tail = `numpy ${info.versions.numpy}, Python ${info.python}`;
  const versions: Record<string, string> = {
    "tensorstore": `${info.versions.tensorstore}, ${tail}`,
    "zarr-python": `${info.versions.zarr} (numcodecs ${info.versions.numcodecs}), ${tail}`,
    "zarr-python+zarrs": `zarrs-python ${info.versions.zarrs}, zarr ${info.versions.zarr}, ${tail}`,
  };
  for (const name of pyWanted) {
    readers.push(peers.reader(name, {
      version: versions[name],
      threads: info.threads[name].threads,
      how: info.threads[name].how,
      openMs: info.open_ms[name] ?? {},
      openErrors: info.open_errors[name] ?? {},
    }));
  }
}
if (READERS.includes("zarrs")) {
  const zarrs = new PeerProcess("zarrs-read", join(NATIVE_BIN, "zarrs-read"), ["serve"]);
  processes.push(zarrs);
  await zarrs.start(["zarrs"]);
  const info = zarrs.info;
  readers.push(zarrs.reader("zarrs", {
    version: `${info.version} (Rust crate)`,
    threads: info.threads,
    how: info.how,
    openMs: info.open_ms,
    openErrors: {},
  }));
}
const limitsWanted = READERS.filter((r) => LIMIT_READERS.includes(r));
if (limitsWanted.length > 0) {
  const limits = new PeerProcess("limits", join(NATIVE_BIN, "limits"), ["serve"]);
  processes.push(limits);
  await limits.start(limitsWanted);
  const info = limits.info;
  for (const name of limitsWanted) {
    readers.push(limits.reader(name, {
      version: name === "memcpy"
        ? "Rust slice copy"
        : `zstd crate (libzstd ${info.zstd}), c-blosc ${info.blosc}`,
      threads: info.threads,
      how: info.how[name],
      openMs: Object.fromEntries(STORES.map((s) => [s, info.open_ms[name]])),
      openErrors: {},
    }));
  }
}
// Stores every reader opened: [reader, store] pairs still in the race.
const active = new Set<string>();
for (const r of readers) {
  for (const s of STORES) {
    if (r.openErrors[s]) failures[`${r.name}/${s}`] = `open failed: ${r.openErrors[s]}`;
    else active.add(`${r.name}/${s}`);
  }
}
console.error(
  `cases: ${CASES.map((c) => `${c.name} ×${c.reads.length}`).join(", ")}; ${ROUNDS} rounds; ` +
    `stores: ${STORES.join(", ")}; readers: ${readers.map((r) => r.name).join(", ")}`,
);

const pids: (number | "self")[] = ["self", ...processes.map((p) => p.pid)];
const ticksStart = await cpuTicks(pids);

// Check pass (and warm-up): every reader reads the whole volume and the first
// crops and chunks of every store once; checksums and shapes must equal
// tessera's on the zstd store (the same data in every store).
const reference: Partial<Record<CaseName, RunResult>> = {};
const checked: Record<string, { reads: number; compared: number; ok: boolean }> = {};
for (const store of STORES) {
  for (const reader of readers) {
    const key = `${reader.name}/${store}`;
    if (!active.has(key)) continue;
    let reads = 0;
    let compared = 0;
    try {
      for (const c of CASES) {
        const n = c.name === "crops" || c.name === "chunks"
          ? Math.min(N_CHECK, c.reads.length)
          : c.reads.length;
        const r = await reader.run(store, c, n, true);
        if (reader.name === "tessera" && store === "zstd") {
          reference[c.name] = r;
        } else {
          const ref = reference[c.name]!;
          for (let i = 0; i < n; i++) {
            const [got, want] = [r.checksums?.[i], ref.checksums![i]!];
            const [gotShape, wantShape] = [r.shapes?.[i]?.join("×"), ref.shapes![i]!.join("×")];
            if (!got) continue;
            const same = got[0] === want[0] && (got[1] === null || got[1] === want[1]) &&
              (gotShape === undefined || gotShape === wantShape);
            if (!same) {
              throw new Error(
                `${c.name} read ${i} (${JSON.stringify(c.reads[i])}) differs from tessera on ` +
                  `zstd: shape ${gotShape ?? "?"} vs ${wantShape}, checksum [${got}] vs [${want}]`,
              );
            }
            compared++;
          }
        }
        reads += n;
      }
      checked[key] = { reads, compared, ok: true };
      console.error(
        reader.name === "tessera" && store === "zstd"
          ? `  check ${key}: ${reads} reads (the reference)`
          : `  check ${key}: ${reads} reads, ${compared} compared with tessera's: agree`,
      );
    } catch (e) {
      const message = errorText(e);
      failures[key] = `check failed: ${message}`;
      checked[key] = { reads, compared, ok: false };
      console.error(`  check ${key}: FAILED: ${message}`);
      if (reader.name === "tessera" && store === "zstd") throw e;
      active.delete(key);
    }
  }
}

// Timed rounds: store by store, case by case, readers round-robin, the order
// rotating each round.
type Samples = { samples: number[]; opMs: number[] };
const samples: Record<string, Record<string, Record<string, Samples>>> = {};
for (const s of STORES) {
  samples[s] = {};
  for (const c of CASES) {
    samples[s][c.name] = {};
    for (const r of readers) samples[s][c.name][r.name] = { samples: [], opMs: [] };
  }
}
for (let round = 0; round < ROUNDS; round++) {
  for (const store of STORES) {
    const live = readers.filter((r) => active.has(`${r.name}/${store}`));
    for (const c of CASES) {
      const order = live.map((_, i) => live[(i + round) % live.length]);
      for (const reader of order) {
        const { ms } = await reader.run(store, c, c.reads.length, false);
        const s = samples[store][c.name][reader.name];
        if (c.name === "crops") {
          s.samples.push(ms.reduce((a, b) => a + b, 0));
          s.opMs.push(...ms);
        } else {
          s.samples.push(...ms);
        }
      }
    }
  }
  console.error(
    `  round ${round + 1}/${ROUNDS} done (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
  );
}
const busyDuring = otherShare(ticksStart, await cpuTicks(pids));
for (const p of processes) await p.close();
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
  /** Crops: the median of single crop reads over all rounds. */
  crop_median_ms?: number;
  median_ms: number;
  min_ms: number;
  gb_per_s: number;
  ops_per_s: number;
}

const results: Record<string, Record<string, Record<string, Summary>>> = {};
/** reader median / tessera median, same store and case (> 1: tessera is faster). */
const ratios: Record<string, Record<string, Record<string, number>>> = {};
for (const store of STORES) {
  results[store] = {};
  ratios[store] = {};
  for (const c of CASES) {
    results[store][c.name] = {};
    ratios[store][c.name] = {};
    for (const r of readers) {
      const { samples: xs, opMs } = samples[store][c.name][r.name];
      if (xs.length === 0) continue;
      const med = median(xs);
      const readsPerSample = c.name === "crops" ? c.reads.length : 1;
      results[store][c.name][r.name] = {
        samples_ms: xs.map(round3),
        ...(c.name === "crops" ? { crop_median_ms: round3(median(opMs)) } : {}),
        median_ms: round3(med),
        min_ms: round3(Math.min(...xs)),
        gb_per_s: round3((c.bytesPerRead * readsPerSample) / 1e9 / (med / 1000)),
        ops_per_s: round3(readsPerSample / (med / 1000)),
      };
    }
    const base = results[store][c.name].tessera?.median_ms;
    for (const r of readers) {
      const s = results[store][c.name][r.name];
      if (r.name !== "tessera" && s && base) {
        ratios[store][c.name][r.name] = round3(s.median_ms / base);
      }
    }
  }
}

const date = new Date().toISOString().slice(0, 10);
const storeBytes: Record<string, number> = {};
for (const s of STORES) storeBytes[s] = await folderBytes(storePath(s));

const machine = {
  ...await machineFacts(),
  /** 1, 5 and 15 minute load averages before and after the timed part. */
  loadavg_before: loadBefore.map(round3),
  loadavg_after: loadAfter.map(round3),
  /**
   * Share of all cores kept busy by other processes: over 1 s just before the
   * run, and during the checks and timed rounds (this process and the peer
   * processes excluded). Linux only.
   */
  other_cpu_busy_before: busyBefore === undefined ? undefined : round3(busyBefore),
  other_cpu_busy_during: busyDuring === undefined ? undefined : round3(busyDuring),
};

const limitsInfo = processes.find((p) => p.label === "limits")?.info;
const report = {
  date,
  quick: QUICK,
  elapsed_s: round3(elapsedS),
  commit: await revision(),
  machine,
  config: {
    shape: VOLUMES.shape,
    dtype: VOLUMES.dtype,
    shards: VOLUMES.shards,
    chunks: VOLUMES.chunks,
    stores: Object.fromEntries(STORES.map((s) => [s, {
      path: `data/bench/${VOLUMES.stores[s].path}`,
      codec: VOLUMES.stores[s].codec,
      bytes_on_disk: storeBytes[s],
      ...(limitsInfo?.stores?.[s] ?? {}),
    }])),
    rounds: ROUNDS,
    seed: SEED,
    checked_reads_per_case: N_CHECK,
  },
  readers: Object.fromEntries(readers.map((r) => [r.name, {
    limit: r.limit,
    version: r.version,
    threads: r.threads,
    how: r.how,
    open_ms: Object.fromEntries(Object.entries(r.openMs).map(([k, v]) => [k, round3(v ?? 0)])),
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
  ratio_note: "reader median / tessera median on the same store and case: for readers, tessera " +
    "speed / reader speed (> 1: tessera is faster); for the limits, the fraction of the limit " +
    "tessera reaches (1: tessera is as fast as the limit)",
  ratios,
};

// ---------------------------------------------------------------------------
// markdown

function fmtMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(2)} ms`;
}

const LABELS: Record<ReaderName, string> = {
  "tessera": "**tessera**",
  "zarrita": "zarrita",
  "tensorstore": "tensorstore",
  "zarr-python": "zarr-python",
  "zarr-python+zarrs": "zarr-python + zarrs pipeline",
  "zarrs": "zarrs (Rust crate)",
  "decode-limit": "_limit: read + decompress only_",
  "memcpy": "_limit: memcpy_",
};
const pct = (x: number | undefined) => x === undefined ? "?" : `${(x * 100).toFixed(0)} %`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;

const md: string[] = [];
md.push(`# tessera read benchmark, ${date}${QUICK ? " (quick)" : ""}`);
md.push("");
md.push(
  `${machine.cores} cores${machine.cpu ? ` (${machine.cpu})` : ""}, ` +
    `${machine.memory_gb.toFixed(0)} GiB, ${machine.os}, Deno ${machine.deno.deno}` +
    `${report.commit ? `, tessera ${report.commit}` : ""}. ` +
    `One ${VOLUMES.shape.join("×")} uint16 volume (${mb(NZ * NY * NX * 2)}), sharded: shards ` +
    `${VOLUMES.shards.join("×")}, inner chunks ${VOLUMES.chunks.join("×")}, stored as ` +
    STORES.map((s) => `${VOLUMES.stores[s].codec} (${mb(storeBytes[s])})`).join(" and ") +
    `; files in the page cache. ${ROUNDS} round${ROUNDS === 1 ? "" : "s"}, readers interleaved; ` +
    `${elapsedS.toFixed(0)} s in all.`,
);
md.push("");
md.push(
  `Load: other processes kept ${pct(busyDuring)} of all cores busy during the run ` +
    `(${pct(busyBefore)} just before it); load average ${loadBefore[0].toFixed(2)} before, ` +
    `${loadAfter[0].toFixed(2)} after.`,
);
if ((busyBefore ?? 0) > 0.1 || (busyDuring ?? 0) > 0.05) {
  md.push("");
  md.push(
    "**Note:** the machine was not quiet; timings may be noisy. Repeat on an idle machine " +
      "before drawing conclusions.",
  );
}
for (const store of STORES) {
  md.push("");
  md.push(`## ${store}: ${VOLUMES.stores[store].codec}`);
  md.push("");
  md.push("| case | reader | median | min | throughput | time / tessera's |");
  md.push("| --- | --- | ---: | ---: | ---: | ---: |");
  for (const c of CASES) {
    for (const r of readers) {
      const s = results[store][c.name][r.name];
      if (!s) continue;
      const throughput = c.name === "chunks"
        ? `${s.ops_per_s.toFixed(0)} reads/s, ${s.gb_per_s.toFixed(2)} GB/s`
        : c.name === "crops"
        ? `${s.ops_per_s.toFixed(1)} crops/s, ${s.gb_per_s.toFixed(2)} GB/s`
        : `${s.gb_per_s.toFixed(2)} GB/s`;
      const q = ratios[store][c.name][r.name];
      const ratio = r.name === "tessera"
        ? "1"
        : q === undefined
        ? "–"
        : r.limit
        ? `${q.toFixed(2)} (tessera at ${pct(q)})`
        : `${q.toFixed(2)}×`;
      md.push(
        `| ${c.title} | ${LABELS[r.name]} | ${fmtMs(s.median_ms)} | ${
          fmtMs(s.min_ms)
        } | ${throughput} | ${ratio} |`,
      );
    }
  }
}
md.push("");
md.push(
  `Samples: ${CASES[0].name === "whole" ? "whole volume" : "slab"}, one read each round; ` +
    "crops, all crops of a round read one after " +
    "another; chunks, each read (median latency). Last column: the row's median ÷ tessera's on " +
    "the same store and case — for a reader, how many times faster tessera is (> 1: tessera is " +
    "faster); for a limit, the fraction of it tessera reaches. GB/s counts output bytes (uint16, " +
    "decompressed), also for the limits (the decode limit of a crop decompresses every inner " +
    "chunk the crop touches, about 3× its output).",
);
md.push("");
md.push("| reader | version | threads |");
md.push("| --- | --- | --- |");
for (const r of readers) {
  md.push(`| ${LABELS[r.name]} | ${r.version} | ${r.threads}: ${r.how} |`);
}
md.push("");
md.push(
  `Checked before timing, on every store: each reader's ${CASES[0].name} read and first ` +
    `${N_CHECK} crops and chunks have the shape and checksums (sum and position-weighted sum) of ` +
    `tessera's reads of the zstd store; the decode limit is checked on the sum of the ` +
    `${CASES[0].name} and on the chunks.`,
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
