/**
 * View and FFI overhead benchmark: the cost of the zero-copy view operations
 * (`withLayout`, `select`, `toDLPack`, `fromDLPack`) at tensor sizes from
 * 1 KB to 1 GB, and the fixed cost of a `collect()` that touches one small
 * chunk already in the page cache, broken down into its parts.
 *
 *     deno task bench:views [--iters N] [--rounds N] [--collects N] [--sizes 1KB,1MB,64MB,1GB]
 *
 * Tensors are uint8 arrays written with `createArray` whose single chunk is
 * never stored, so `collect()` only fills them with the fill value: no
 * storage, no decoding (0.1 to 1.5 s for the 1 GB one). Every
 * operation is timed one call at a time with `performance.now()` (the timer
 * itself costs about 0.1 µs, which is included), after a warm-up, with sizes
 * and operations interleaved over several rounds. Results go to
 * bench/results/<date>-views.json and .md; the markdown is printed. See
 * bench/README.md.
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createArray, fromDLPack, open, type TensorView } from "../mod.ts";
import { ensureNativeLibrary } from "../scripts/build.ts";
import { ABI_VERSION, libraryCandidates, symbols } from "../src/ffi.ts";
import { encodeDescriptor } from "../src/zarr/descriptor.ts";
import { encodeRequest } from "../src/request.ts";
import { cpuTicks, machineFacts, otherShare, revision } from "./machine.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS = join(ROOT, "bench", "results");

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    iters: { type: "string", default: "10000" },
    rounds: { type: "string", default: "20" },
    collects: { type: "string", default: "2000" },
    sizes: { type: "string", default: "1KB,1MB,64MB,1GB" },
  },
});

function intArg(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be an integer ≥ 1`);
  return n;
}

/** Timed calls per operation and size (and per FFI measurement: `COLLECTS`). */
const ITERS = intArg(args.iters, "iters");
const ROUNDS = intArg(args.rounds, "rounds");
const COLLECTS = intArg(args.collects, "collects");
/** Untimed calls before the rounds, per operation and size. */
const WARMUP = Math.min(1000, ITERS);

/** Tensor sizes: uint8, axes z, y, x (1 KB = 1024 bytes). */
const ALL_SIZES = [
  { label: "1 KB", key: "1KB", shape: [4, 16, 16] },
  { label: "1 MB", key: "1MB", shape: [16, 256, 256] },
  { label: "64 MB", key: "64MB", shape: [64, 1024, 1024] },
  { label: "1 GB", key: "1GB", shape: [64, 4096, 4096] },
] as const;
const SIZES = args.sizes.split(",").filter((s) => s).map((key) => {
  const size = ALL_SIZES.find((s) => s.key.toLowerCase() === key.trim().toLowerCase());
  if (!size) {
    throw new Error(`unknown size "${key}" (known: ${ALL_SIZES.map((s) => s.key).join(", ")})`);
  }
  return size;
});

/** Aims, in microseconds. */
const AIM_VIEW_US = 5;
const AIM_COLLECT_US = 50;
/** A line is "flat" when the largest median over sizes is at most this many times the smallest. */
const FLAT_RATIO = 1.5;

// ---------------------------------------------------------------------------
// statistics

interface Summary {
  n: number;
  median_us: number;
  p90_us: number;
  p99_us: number;
  mean_us: number;
  min_us: number;
  max_us: number;
}

function summarize(samples: number[]): Summary {
  const s = Float64Array.from(samples).sort();
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    n: s.length,
    median_us: r(q(0.5)),
    p90_us: r(q(0.9)),
    p99_us: r(q(0.99)),
    mean_us: r(mean),
    min_us: r(s[0]),
    max_us: r(s[s.length - 1]),
  };
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

// ---------------------------------------------------------------------------
// setup

if (!Deno.env.get("TESSERA_LIB")) await ensureNativeLibrary();
const libraryPath = libraryCandidates().find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
if (!libraryPath) throw new Error("native library not found; run `deno task build`");

/**
 * A second binding of the same library (the loader shares one copy), for the
 * FFI breakdown: a trivial call both ways, and `tessera_read` called
 * synchronously (the native time alone) and nonblocking (no JavaScript wrappers).
 */
const raw = Deno.dlopen(libraryPath, {
  abi_sync: { ...symbols.tessera_abi_version, name: "tessera_abi_version" },
  abi_nonblocking: {
    ...symbols.tessera_abi_version,
    name: "tessera_abi_version",
    nonblocking: true,
  },
  array_open: { ...symbols.tessera_array_open, name: "tessera_array_open" },
  array_free: { ...symbols.tessera_array_free, name: "tessera_array_free" },
  read_sync: { ...symbols.tessera_read, name: "tessera_read", nonblocking: false },
  read_nonblocking: { ...symbols.tessera_read, name: "tessera_read", nonblocking: true },
  buffer_free: { ...symbols.tessera_buffer_free, name: "tessera_buffer_free" },
}).symbols;
if (raw.abi_sync() !== ABI_VERSION) throw new Error("native library ABI mismatch; rebuild it");

const loadBefore = Deno.loadavg();
const ticksBefore = await cpuTicks();
const started = performance.now();
const dir = await Deno.makeTempDir({ prefix: "tessera-bench-views-" });

interface SizeCase {
  label: string;
  shape: readonly number[];
  bytes: number;
  view: TensorView;
  collectMs: number;
}

/** One uint8 array per size, its chunk never stored: collect() is a fill, no I/O, no decode. */
async function makeView(label: string, shape: readonly number[]): Promise<SizeCase> {
  const path = join(dir, `${label.replace(" ", "")}.zarr`);
  const writer = await createArray(path, {
    shape: [...shape],
    dtype: "uint8",
    chunks: [...shape],
    dimensionNames: ["z", "y", "x"],
  });
  writer[Symbol.dispose]();
  using image = await open(path);
  const t0 = performance.now();
  const view = await image.scan().collect();
  const collectMs = performance.now() - t0;
  return { label, shape, bytes: view.byteLength, view, collectMs };
}

const cases: SizeCase[] = [];
for (const s of SIZES) cases.push(await makeView(s.label, s.shape));

// ---------------------------------------------------------------------------
// view operations

const OPS = ["withLayout", "select", "toDLPack", "fromDLPack", "round trip"] as const;
type Op = typeof OPS[number];
const OP_TITLES: Record<Op, string> = {
  "withLayout": '`withLayout("XZY")` + dispose',
  "select": "`select({ z: 1, y: [1, -1, 2], x: [null, null, -1] })` + dispose",
  "toDLPack": "`toDLPack()` (released untimed via `fromDLPack` + dispose)",
  "fromDLPack": "`fromDLPack(ptr)` + dispose (runs the deleter; `toDLPack` untimed)",
  "round trip": "`toDLPack()` + `fromDLPack(ptr)` + dispose",
};

/** Runs `n` calls of `op` on `view`; pushes each timed part (µs) to `out` when given. */
function runOp(op: Op, view: TensorView, n: number, out?: number[]): void {
  for (let i = 0; i < n; i++) {
    let t0: number, t1: number;
    switch (op) {
      case "withLayout": {
        t0 = performance.now();
        view.withLayout("XZY")[Symbol.dispose]();
        t1 = performance.now();
        break;
      }
      case "select": {
        t0 = performance.now();
        view.select({ z: 1, y: [1, -1, 2], x: [null, null, -1] })[Symbol.dispose]();
        t1 = performance.now();
        break;
      }
      case "toDLPack": {
        t0 = performance.now();
        const managed = view.toDLPack();
        t1 = performance.now();
        fromDLPack(managed)[Symbol.dispose]();
        break;
      }
      case "fromDLPack": {
        const managed = view.toDLPack();
        t0 = performance.now();
        fromDLPack(managed)[Symbol.dispose]();
        t1 = performance.now();
        break;
      }
      case "round trip": {
        t0 = performance.now();
        fromDLPack(view.toDLPack())[Symbol.dispose]();
        t1 = performance.now();
        break;
      }
    }
    out?.push((t1 - t0) * 1000);
  }
}

// Timer cost: two back-to-back performance.now() calls.
const timerSamples: number[] = [];
for (let i = 0; i < ITERS; i++) {
  const t0 = performance.now();
  const t1 = performance.now();
  timerSamples.push((t1 - t0) * 1000);
}

for (const c of cases) for (const op of OPS) runOp(op, c.view, WARMUP);
const viewSamples = new Map<string, number[]>();
for (let round = 0; round < ROUNDS; round++) {
  const n = Math.ceil(ITERS / ROUNDS);
  for (let k = 0; k < cases.length; k++) {
    const c = cases[(k + round) % cases.length];
    for (const op of OPS) {
      const key = `${op}|${c.label}`;
      if (!viewSamples.has(key)) viewSamples.set(key, []);
      runOp(op, c.view, n, viewSamples.get(key));
    }
  }
}

const views: Record<string, Record<string, Summary>> = {};
const flatness: Record<
  string,
  { median_ratio: number; p90_ratio: number; mean_ratio: number; flat: boolean; flat_mean: boolean }
> = {};
for (const op of OPS) {
  views[op] = {};
  for (const c of cases) views[op][c.label] = summarize(viewSamples.get(`${op}|${c.label}`)!);
  const medians = cases.map((c) => views[op][c.label].median_us);
  const p90s = cases.map((c) => views[op][c.label].p90_us);
  const means = cases.map((c) => views[op][c.label].mean_us);
  const ratio = (xs: number[]) => round3(Math.max(...xs) / Math.min(...xs));
  flatness[op] = {
    median_ratio: ratio(medians),
    p90_ratio: ratio(p90s),
    mean_ratio: ratio(means),
    flat: ratio(medians) <= FLAT_RATIO,
    flat_mean: ratio(means) <= FLAT_RATIO,
  };
}
for (const c of cases) c.view[Symbol.dispose]();

// ---------------------------------------------------------------------------
// FFI overhead of a small collect()

const TINY = { shape: [64, 64], chunks: [64, 64], dtype: "uint16" } as const;
const tinyData = Uint16Array.from({ length: 64 * 64 }, (_, i) => ((i * 2654435761) >>> 20) & 0xfff);

async function tinyArray(name: string, stored: boolean) {
  const path = join(dir, name);
  using writer = await createArray(path, {
    shape: [...TINY.shape],
    dtype: TINY.dtype,
    chunks: [...TINY.chunks],
    dimensionNames: ["y", "x"],
  });
  if (stored) await writer.write(tinyData);
  const descriptor = encodeDescriptor(writer.metadata);
  const fill = new Uint8Array(writer.metadata.fill);
  const pathBytes = new TextEncoder().encode(writer.metadata.path);
  const slot = new BigUint64Array(1);
  const err = new Uint8Array(4096);
  const status = raw.array_open(
    pathBytes,
    BigInt(pathBytes.length),
    descriptor,
    BigInt(descriptor.length),
    fill,
    BigInt(fill.length),
    slot,
    err,
    BigInt(err.length),
  );
  if (status !== 0) throw new Error(`tessera_array_open failed with status ${status}`);
  const handle = Deno.UnsafePointer.create(slot[0])!;
  const image = await open(path);
  return { path, handle, image, query: image.scan() };
}

const stored = await tinyArray("tiny-stored.zarr", true);
const missing = await tinyArray("tiny-missing.zarr", false);
const chunkFile = join(stored.path, "c", "0", "0");
const chunkBytes = (await Deno.stat(chunkFile)).size;
const request = encodeRequest("uint16", [
  { start: 0, count: 64, step: 1, keep: true },
  { start: 0, count: 64, step: 1, keep: true },
]);
const readSlot = new BigUint64Array(1);
const readErr = new Uint8Array(4096);

function rawReadSync(handle: Deno.PointerObject): number {
  const t0 = performance.now();
  const status = raw.read_sync(
    handle,
    request,
    BigInt(request.length),
    null,
    readSlot,
    readErr,
    BigInt(readErr.length),
  );
  const t1 = performance.now();
  if (status !== 0) throw new Error(`tessera_read failed with status ${status}`);
  raw.buffer_free(Deno.UnsafePointer.create(readSlot[0]));
  return t1 - t0;
}

async function rawReadNonblocking(handle: Deno.PointerObject): Promise<number> {
  const t0 = performance.now();
  const status = await raw.read_nonblocking(
    handle,
    request,
    BigInt(request.length),
    null,
    readSlot,
    readErr,
    BigInt(readErr.length),
  );
  const t1 = performance.now();
  if (status !== 0) throw new Error(`tessera_read failed with status ${status}`);
  raw.buffer_free(Deno.UnsafePointer.create(readSlot[0]));
  return t1 - t0;
}

async function timeCollect(query: typeof stored.query): Promise<number> {
  const t0 = performance.now();
  const view = await query.collect();
  const t1 = performance.now();
  view[Symbol.dispose]();
  return t1 - t0;
}

async function timeExplain(query: typeof stored.query): Promise<number> {
  const t0 = performance.now();
  await query.explain();
  return performance.now() - t0;
}

const FFI = {
  "ffi sync": {
    title: "trivial FFI call, synchronous (`tessera_abi_version`)",
    run: () => {
      const t0 = performance.now();
      raw.abi_sync();
      return Promise.resolve(performance.now() - t0);
    },
  },
  "ffi nonblocking": {
    title: "trivial FFI call, nonblocking (`tessera_abi_version`, awaited)",
    run: async () => {
      const t0 = performance.now();
      await raw.abi_nonblocking();
      return performance.now() - t0;
    },
  },
  "native read missing": {
    title: "`tessera_read`, synchronous, missing chunk (native time; no I/O, no decode)",
    run: () => Promise.resolve(rawReadSync(missing.handle)),
  },
  "native read stored": {
    title: "`tessera_read`, synchronous, stored chunk (native time: file read + zstd + copy)",
    run: () => Promise.resolve(rawReadSync(stored.handle)),
  },
  "raw read nonblocking": {
    title: "`tessera_read`, nonblocking, stored chunk (no JavaScript wrappers)",
    run: () => rawReadNonblocking(stored.handle),
  },
  "collect missing": {
    title: "`collect()`, missing chunk (no I/O, no decode)",
    run: () => timeCollect(missing.query),
  },
  "collect stored": {
    title: "`collect()`, stored chunk (cached file, zstd)",
    run: () => timeCollect(stored.query),
  },
  "explain stored": {
    title: "`explain()`, stored chunk (nonblocking; counts, reads nothing)",
    run: () => timeExplain(stored.query),
  },
} as const;
type FfiKey = keyof typeof FFI;
const FFI_KEYS = Object.keys(FFI) as FfiKey[];

for (const key of FFI_KEYS) for (let i = 0; i < Math.min(200, COLLECTS); i++) await FFI[key].run();
const ffiSamples = new Map<FfiKey, number[]>(FFI_KEYS.map((k) => [k, []]));
for (let round = 0; round < ROUNDS; round++) {
  const n = Math.ceil(COLLECTS / ROUNDS);
  for (let k = 0; k < FFI_KEYS.length; k++) {
    const key = FFI_KEYS[(k + round) % FFI_KEYS.length];
    const out = ffiSamples.get(key)!;
    for (let i = 0; i < n; i++) out.push((await FFI[key].run()) * 1000);
  }
}
const ffi = Object.fromEntries(FFI_KEYS.map((k) => [k, summarize(ffiSamples.get(k)!)])) as Record<
  FfiKey,
  Summary
>;

for (const t of [stored, missing]) {
  raw.array_free(t.handle);
  t.image[Symbol.dispose]();
}
await Deno.remove(dir, { recursive: true });
const elapsedS = (performance.now() - started) / 1000;
const loadAfter = Deno.loadavg();
const busyDuring = otherShare(ticksBefore, await cpuTicks());

// ---------------------------------------------------------------------------
// report

const date = new Date().toISOString().slice(0, 10);
const machine = {
  ...await machineFacts(),
  loadavg_before: loadBefore.map(round3),
  loadavg_after: loadAfter.map(round3),
  /** Share of all cores kept busy by other processes while this ran (Linux only). */
  other_cpu_busy_during: busyDuring === undefined ? undefined : round3(busyDuring),
};

const viewAims = (["withLayout", "toDLPack", "fromDLPack"] as const).map((op) => {
  const worst = Math.max(...cases.map((c) => views[op][c.label].median_us));
  return {
    op,
    flat: flatness[op].flat,
    median_ratio: flatness[op].median_ratio,
    mean_ratio: flatness[op].mean_ratio,
    flat_mean: flatness[op].flat_mean,
    worst_median_us: worst,
    under_aim: worst < AIM_VIEW_US,
    met: flatness[op].flat && worst < AIM_VIEW_US,
  };
});
const collectAim = {
  median_us: ffi["collect stored"].median_us,
  met: ffi["collect stored"].median_us < AIM_COLLECT_US,
};

const report = {
  date,
  elapsed_s: round3(elapsedS),
  commit: await revision(),
  machine,
  config: {
    iterations_per_op_and_size: ROUNDS * Math.ceil(ITERS / ROUNDS),
    warmup_per_op_and_size: WARMUP,
    rounds: ROUNDS,
    collects_per_measurement: ROUNDS * Math.ceil(COLLECTS / ROUNDS),
    tensors: cases.map((c) => ({
      label: c.label,
      dtype: "uint8",
      shape: c.shape,
      bytes: c.bytes,
      fill_collect_ms: round3(c.collectMs),
    })),
    tiny: { ...TINY, codecs: "bytes, zstd level 3", chunk_bytes_on_disk: chunkBytes },
    timer: "performance.now() around each call; its own cost is included",
    timer_cost: summarize(timerSamples),
    flat_ratio: FLAT_RATIO,
    aims_us: { view_ops: AIM_VIEW_US, collect: AIM_COLLECT_US },
  },
  views: Object.fromEntries(OPS.map((op) => [op, { title: OP_TITLES[op], ...views[op] }])),
  flatness,
  ffi: Object.fromEntries(FFI_KEYS.map((k) => [k, { title: FFI[k].title, ...ffi[k] }])),
  aims: { views: viewAims, collect: collectAim },
};

const us = (x: number) => x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
const sizeText = (bytes: number) =>
  bytes >= 2 ** 30
    ? `${bytes / 2 ** 30} GiB`
    : bytes >= 2 ** 20
    ? `${bytes / 2 ** 20} MiB`
    : `${bytes / 2 ** 10} KiB`;
const yes = (b: boolean) => b ? "**met**" : "**missed**";

const md: string[] = [];
md.push(`# tessera view and FFI overhead, ${date}`);
md.push("");
md.push(
  `${machine.cores} cores${machine.cpu ? ` (${machine.cpu})` : ""}, ` +
    `${machine.memory_gb.toFixed(0)} GiB, ${machine.os}, Deno ${machine.deno.deno}` +
    `${report.commit ? `, tessera ${report.commit}` : ""}. Load average ` +
    `${loadBefore[0].toFixed(2)} before, ${loadAfter[0].toFixed(2)} after; ` +
    `${elapsedS.toFixed(0)} s in all` +
    (busyDuring === undefined
      ? "."
      : `; other processes kept ${(busyDuring * 100).toFixed(0)} % of all cores busy meanwhile.`),
);
if ((busyDuring ?? 0) > 0.05) {
  md.push("");
  md.push(
    "**Note:** the machine was not quiet; timings may be noisy. Repeat on an idle machine " +
      "before drawing conclusions.",
  );
}
md.push("");
md.push("## Zero-copy view operations");
md.push("");
md.push(
  `uint8 tensors of shape ${
    cases.map((c) => `${c.shape.join("×")} (${sizeText(c.bytes)})`).join(", ")
  }, ` +
    `each the fill of an array whose one chunk is not stored. ` +
    `${report.config.iterations_per_op_and_size} timed calls per operation and size ` +
    `(after ${WARMUP} untimed), in ${ROUNDS} interleaved rounds; each call timed alone with ` +
    `\`performance.now()\` (two back-to-back calls: median ` +
    `${us(report.config.timer_cost.median_us)} µs, included). Cells: median / p90, µs.`,
);
md.push("");
md.push(
  `| operation | ${
    cases.map((c) => c.label).join(" | ")
  } | max/min of medians | flat (≤ ${FLAT_RATIO}) |`,
);
md.push(`| --- | ${cases.map(() => "---:").join(" | ")} | ---: | --- |`);
for (const op of OPS) {
  md.push(
    `| ${OP_TITLES[op]} | ${
      cases.map((c) => `${us(views[op][c.label].median_us)} / ${us(views[op][c.label].p90_us)}`)
        .join(" | ")
    } | ${flatness[op].median_ratio.toFixed(2)} | ${flatness[op].flat ? "yes" : "no"} |`,
  );
}
md.push("");
md.push(
  "Tails: mean / p99, µs. The mean is the amortized cost: it includes the garbage collections " +
    "the calls cause (each view wraps its memory in an `ArrayBuffer` of the tensor's full size, " +
    "which V8 counts as external memory), and stalls from other processes.",
);
md.push("");
md.push(`| operation | ${cases.map((c) => c.label).join(" | ")} | max/min of means |`);
md.push(`| --- | ${cases.map(() => "---:").join(" | ")} | ---: |`);
for (const op of OPS) {
  md.push(
    `| ${op} | ${
      cases.map((c) => `${us(views[op][c.label].mean_us)} / ${us(views[op][c.label].p99_us)}`)
        .join(" | ")
    } | ${flatness[op].mean_ratio.toFixed(2)} |`,
  );
}
md.push("");
md.push("## FFI overhead of a small read");
md.push("");
md.push(
  `A ${TINY.shape.join("×")} ${TINY.dtype} array in one chunk (bytes + zstd 3, ` +
    `${chunkBytes} bytes on disk, in the page cache), and the same array with the chunk missing. ` +
    `${report.config.collects_per_measurement} timed calls per row (after 200 untimed), ` +
    `rows interleaved over ${ROUNDS} rounds; each view is disposed after its clock stops. ` +
    "The `tessera_*` rows call the library through a second `Deno.dlopen` binding, with no " +
    "TypeScript wrapper.",
);
md.push("");
md.push("| measurement | median µs | p90 µs | mean µs |");
md.push("| --- | ---: | ---: | ---: |");
for (const k of FFI_KEYS) {
  md.push(
    `| ${FFI[k].title} | ${us(ffi[k].median_us)} | ${us(ffi[k].p90_us)} | ${us(ffi[k].mean_us)} |`,
  );
}
const m = (k: FfiKey) => ffi[k].median_us;
md.push("");
md.push(
  `Breakdown of the median \`collect()\` of the stored chunk (${us(m("collect stored"))} µs): ` +
    `native read ${us(m("native read stored"))} µs (with the chunk missing, no I/O or decode: ` +
    `${us(m("native read missing"))} µs); nonblocking FFI round trip ` +
    `${us(m("raw read nonblocking") - m("native read stored"))} µs (raw nonblocking read minus ` +
    `the synchronous one; a trivial nonblocking call takes ${us(m("ffi nonblocking"))} µs); ` +
    `TypeScript around the call (query resolution, progress counters, buffer wrapping) ` +
    `${us(m("collect stored") - m("raw read nonblocking"))} µs.`,
);
md.push("");
md.push("## Aims");
md.push("");
for (const a of viewAims) {
  md.push(
    `- \`${a.op}\` O(1) and under ${AIM_VIEW_US} µs: ${yes(a.met)} — max/min of medians over ` +
      `sizes ${a.median_ratio.toFixed(2)} (${a.flat ? "flat" : "not flat"}), slowest median ` +
      `${us(a.worst_median_us)} µs; max/min of means ${a.mean_ratio.toFixed(2)}` +
      `${a.flat_mean ? "" : " (above 1.5: the amortized cost, collections included, differs)"}.`,
  );
}
md.push(
  `- \`collect()\` of one small cached chunk under ${AIM_COLLECT_US} µs: ${
    yes(collectAim.met)
  } — ` +
    `median ${us(collectAim.median_us)} µs.`,
);
const markdown = md.join("\n") + "\n";

await Deno.mkdir(RESULTS, { recursive: true });
const stem = join(RESULTS, `${date}-views`);
await Deno.writeTextFile(`${stem}.json`, JSON.stringify(report, null, 2) + "\n");
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
