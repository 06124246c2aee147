/**
 * Shared helpers of the tessera tests: the interop peers (tests/interop/peers.py),
 * an independent reference slicer and cast oracle in plain TypeScript, element
 * comparison and a seeded PRNG.
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensurePythonEnv } from "../scripts/python_env.ts";
import type { AxisSelection, DType, TensorView } from "../mod.ts";

/** Repository root. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));
/** The peers driver. */
export const PEERS: string = join(ROOT, "tests", "interop", "peers.py");

// ---------------------------------------------------------------------------
// python

/** Runs the venv's python with `args`; returns stdout, throws with stderr on failure. */
export async function runPython(args: string[]): Promise<string> {
  const python = await ensurePythonEnv();
  const out = await new Deno.Command(python, {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `python ${args.join(" ")} failed (exit ${out.code}):\n${dec.decode(out.stderr)}${
        dec.decode(out.stdout)
      }`,
    );
  }
  return dec.decode(out.stdout);
}

const tempDirs: string[] = [];
let cleanupRegistered = false;

/** A temporary folder removed when the test process ends. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  tempDirs.push(dir);
  if (!cleanupRegistered) {
    cleanupRegistered = true;
    globalThis.addEventListener("unload", () => {
      for (const d of tempDirs) {
        try {
          Deno.removeSync(d, { recursive: true });
        } catch {
          // already gone
        }
      }
    });
  }
  return dir;
}

// ---------------------------------------------------------------------------
// peer cases

/** `meta.json` of a case written by peers.py. */
export interface CaseMeta {
  lib: "tensorstore" | "zarr";
  case: string;
  dtype: DType;
  shape: number[];
  chunks: number[];
  inner: number[] | null;
  fill: number | boolean | "NaN" | "Infinity" | "-Infinity";
  dimension_names: string[] | null;
  endian: "little" | "big";
  codecs: string;
  absent: { outer: number; inner: number };
}

/** One array written by a peer. */
export interface PeerCase {
  /** Folder name, `<lib>-<case>`. */
  name: string;
  /** The case folder. */
  dir: string;
  /** The Zarr store. */
  store: string;
  /** Parsed meta.json. */
  meta: CaseMeta;
  /** The array as the writing library reads it back: little-endian C-order bytes. */
  expected: Uint8Array<ArrayBuffer>;
}

/**
 * A folder of peer output shared by every test module of this process: test
 * modules run one after another in one process, each with its own globals, so
 * the folder is handed on through an environment variable holding
 * `<pid>:<path>`. `complete` is the file the writer creates last. Folders left
 * by earlier, finished processes are removed.
 */
async function sharedPeerDir(
  variable: string,
  prefix: string,
  complete: string,
  write: (dir: string) => Promise<void>,
): Promise<string> {
  const held = Deno.env.get(variable);
  if (held?.startsWith(`${Deno.pid}:`)) {
    const dir = held.slice(`${Deno.pid}:`.length);
    try {
      await Deno.stat(join(dir, complete));
      return dir;
    } catch {
      // gone or incomplete: write again
    }
  }
  const dir = await Deno.makeTempDir({ prefix: `${prefix}${Deno.pid}-` });
  await removeStale(dirname(dir), prefix);
  await write(dir);
  Deno.env.set(variable, `${Deno.pid}:${dir}`);
  return dir;
}

/** Removes `<prefix><pid>-*` folders of processes that no longer run (Linux only). */
async function removeStale(parent: string, prefix: string): Promise<void> {
  if (Deno.build.os !== "linux") return;
  for await (const entry of Deno.readDir(parent)) {
    const m = entry.isDirectory && entry.name.startsWith(prefix)
      ? /^(\d+)-/.exec(entry.name.slice(prefix.length))
      : null;
    if (!m || Number(m[1]) === Deno.pid) continue;
    try {
      await Deno.stat(`/proc/${m[1]}`);
    } catch {
      await Deno.remove(join(parent, entry.name), { recursive: true }).catch(() => {});
    }
  }
}

let casesPromise: Promise<PeerCase[]> | null = null;

/**
 * Writes the peer case matrix with `peers.py write-cases` once per test
 * process (into a temp folder, shared by the test modules) and loads it.
 */
export function peerCases(): Promise<PeerCase[]> {
  if (casesPromise === null) {
    casesPromise = (async () => {
      const dir = await sharedPeerDir(
        "TESSERA_TEST_PEER_CASES",
        "tessera-peers-",
        "cases.json",
        (d) => runPython([PEERS, "write-cases", d]).then(() => {}),
      );
      const folders: string[] = JSON.parse(await Deno.readTextFile(join(dir, "cases.json")));
      return await Promise.all(folders.map(async (name) => {
        const base = join(dir, name);
        const meta: CaseMeta = JSON.parse(await Deno.readTextFile(join(base, "meta.json")));
        const expected = await Deno.readFile(join(base, "data.bin"));
        return { name, dir: base, store: join(base, "store"), meta, expected };
      }));
    })();
    casesPromise.catch(() => {
      casesPromise = null;
    });
  }
  return casesPromise;
}

/** One case by folder name. */
export async function peerCase(name: string): Promise<PeerCase> {
  const found = (await peerCases()).find((c) => c.name === name);
  if (!found) throw new Error(`peer case ${name} was not written by peers.py`);
  return found;
}

/** `image.json` of the NGFF image written by peers.py. */
export interface NgffImageJson {
  axes: string[];
  channels: string[];
  paths: string[];
  version: string;
}

/** `level<i>.json` of the NGFF image written by peers.py. */
export interface NgffLevelJson {
  dtype: DType;
  shape: number[];
  scale: number[];
  translation: number[] | null;
  path: string;
}

/** The NGFF image written by ome-zarr-py. */
export interface PeerNgff {
  dir: string;
  store: string;
  image: NgffImageJson;
  levels: { meta: NgffLevelJson; expected: Uint8Array<ArrayBuffer> }[];
}

let ngffPromise: Promise<PeerNgff> | null = null;

/** Writes the OME-NGFF image once per test process (like {@link peerCases}) and loads it. */
export function peerNgff(): Promise<PeerNgff> {
  if (ngffPromise === null) {
    ngffPromise = (async () => {
      const dir = await sharedPeerDir(
        "TESSERA_TEST_PEER_NGFF",
        "tessera-ngff-",
        "image.json",
        (d) => runPython([PEERS, "write-ngff", d]).then(() => {}),
      );
      const image: NgffImageJson = JSON.parse(await Deno.readTextFile(join(dir, "image.json")));
      const levels = await Promise.all(image.paths.map(async (_, i) => ({
        meta: JSON.parse(await Deno.readTextFile(join(dir, `level${i}.json`))) as NgffLevelJson,
        expected: await Deno.readFile(join(dir, `level${i}.bin`)),
      })));
      return { dir, store: join(dir, "ngff.ome.zarr"), image, levels };
    })();
    ngffPromise.catch(() => {
      ngffPromise = null;
    });
  }
  return ngffPromise;
}

/** Copies a folder tree (stores are small). */
export async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isDirectory) await copyTree(src, dst);
    else if (entry.isFile) await Deno.copyFile(src, dst);
  }
}

/** Rewrites `<store>/zarr.json` through `edit`. */
export async function editJson(
  store: string,
  edit: (json: Record<string, unknown>) => void,
): Promise<void> {
  const file = join(store, "zarr.json");
  const json = JSON.parse(await Deno.readTextFile(file));
  edit(json);
  await Deno.writeTextFile(file, JSON.stringify(json, null, 2));
}

/** Every file under a folder with its bytes' SHA-256 and mtime, for "unchanged" checks. */
export async function snapshotTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      const key = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory) {
        out.set(key + "/", "dir");
        await walk(path, key);
      } else {
        const bytes = await Deno.readFile(path);
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
        const stat = await Deno.stat(path);
        out.set(
          key,
          `${
            Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")
          } ${stat.mtime?.getTime()}`,
        );
      }
    }
  };
  await walk(root, "");
  return out;
}

// ---------------------------------------------------------------------------
// dtypes

const SIZES: Record<DType, number> = {
  bool: 1,
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  float16: 2,
  bfloat16: 2,
  int32: 4,
  uint32: 4,
  float32: 4,
  int64: 8,
  uint64: 8,
  float64: 8,
};

/** Bytes per element. */
export function itemSize(dtype: DType): number {
  return SIZES[dtype];
}

/** A typed array reading `bytes` as elements of `dtype` (copies when unaligned). */
export function typedView(
  dtype: DType,
  bytes: Uint8Array,
): ArrayLike<number | bigint> & { length: number } {
  const size = SIZES[dtype];
  let b = bytes;
  if (b.byteOffset % size !== 0) b = b.slice();
  const n = b.byteLength / size;
  const buf = b.buffer as ArrayBuffer;
  switch (dtype) {
    case "bool":
    case "uint8":
      return new Uint8Array(buf, b.byteOffset, n);
    case "int8":
      return new Int8Array(buf, b.byteOffset, n);
    case "int16":
      return new Int16Array(buf, b.byteOffset, n);
    case "uint16":
    case "bfloat16":
      return new Uint16Array(buf, b.byteOffset, n);
    case "int32":
      return new Int32Array(buf, b.byteOffset, n);
    case "uint32":
      return new Uint32Array(buf, b.byteOffset, n);
    case "int64":
      return new BigInt64Array(buf, b.byteOffset, n);
    case "uint64":
      return new BigUint64Array(buf, b.byteOffset, n);
    case "float16":
      return new Float16Array(buf, b.byteOffset, n);
    case "float32":
      return new Float32Array(buf, b.byteOffset, n);
    case "float64":
      return new Float64Array(buf, b.byteOffset, n);
  }
}

/** The bytes behind a typed array. */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

// ---------------------------------------------------------------------------
// reference slicer

/** A selection per axis, in store order; `undefined` keeps the whole axis. */
export type AxisSelections = readonly (AxisSelection | undefined)[];

/** Source indices of one axis selection, and whether the axis stays. */
export function axisIndices(
  sel: AxisSelection | undefined,
  size: number,
): { indices: number[]; keep: boolean } {
  if (sel === undefined) return { indices: [...Array(size).keys()], keep: true };
  if (typeof sel === "number") {
    const i = sel < 0 ? sel + size : sel;
    if (!(i >= 0 && i < size)) throw new RangeError(`reference: index ${sel} outside ${size}`);
    return { indices: [i], keep: false };
  }
  const start = sel[0] < 0 ? sel[0] + size : sel[0];
  const stop = sel[1] < 0 ? sel[1] + size : sel[1];
  const step = sel[2] ?? 1;
  if (!(step >= 1 && start >= 0 && stop <= size && start < stop)) {
    throw new RangeError(`reference: [${sel}] is not a valid selection of size ${size}`);
  }
  const indices: number[] = [];
  for (let i = start; i < stop; i += step) indices.push(i);
  return { indices, keep: true };
}

/**
 * The independent oracle of selections: picks `sels` out of full C-order
 * `data` of `shape` and returns the C-order output bytes and output shape
 * (axes selected by an index are dropped).
 */
export function sliceReference(
  data: Uint8Array,
  dtype: DType,
  shape: readonly number[],
  sels: AxisSelections,
): { bytes: Uint8Array<ArrayBuffer>; shape: number[] } {
  const size = SIZES[dtype];
  const rank = shape.length;
  assert.equal(data.byteLength, shape.reduce((a, b) => a * b, 1) * size, "reference: data size");
  const axes = shape.map((n, d) => axisIndices(sels[d], n));
  const outShape = axes.filter((a) => a.keep).map((a) => a.indices.length);
  const count = axes.reduce((a, b) => a * b.indices.length, 1);
  const out = new Uint8Array(count * size);
  const strides = new Array<number>(rank);
  let acc = 1;
  for (let d = rank - 1; d >= 0; d--) {
    strides[d] = acc;
    acc *= shape[d];
  }
  const pos = new Array<number>(rank).fill(0);
  for (let k = 0; k < count; k++) {
    let flat = 0;
    for (let d = 0; d < rank; d++) flat += axes[d].indices[pos[d]] * strides[d];
    out.set(data.subarray(flat * size, flat * size + size), k * size);
    for (let d = rank - 1; d >= 0; d--) {
      if (++pos[d] < axes[d].indices.length) break;
      pos[d] = 0;
    }
  }
  return { bytes: out, shape: outShape };
}

/** Per-axis selections as a tessera selection keyed by axis name. */
export function selectionByName(
  axes: readonly string[],
  sels: AxisSelections,
): Record<string, AxisSelection> {
  const out: Record<string, AxisSelection> = {};
  axes.forEach((a, d) => {
    if (sels[d] !== undefined) out[a] = sels[d]!;
  });
  return out;
}

// ---------------------------------------------------------------------------
// comparison

function isFloat(dtype: DType): boolean {
  return dtype.startsWith("float") || dtype === "bfloat16";
}

function isNaNBits(dtype: DType, bytes: Uint8Array, at: number): boolean {
  const dv = new DataView(bytes.buffer, bytes.byteOffset + at, SIZES[dtype]);
  switch (dtype) {
    case "float16":
      return (dv.getUint16(0, true) & 0x7c00) === 0x7c00 && (dv.getUint16(0, true) & 0x3ff) !== 0;
    case "bfloat16":
      return (dv.getUint16(0, true) & 0x7f80) === 0x7f80 && (dv.getUint16(0, true) & 0x7f) !== 0;
    case "float32":
      return Number.isNaN(dv.getFloat32(0, true));
    case "float64":
      return Number.isNaN(dv.getFloat64(0, true));
    default:
      return false;
  }
}

/** One element formatted for messages. */
export function formatElement(dtype: DType, bytes: Uint8Array, index: number): string {
  const size = SIZES[dtype];
  const one = bytes.slice(index * size, index * size + size);
  const hex = Array.from(one).reverse().map((b) => b.toString(16).padStart(2, "0")).join("");
  let value: string;
  if (dtype === "bfloat16") {
    const f = new Float32Array(new Uint32Array([(one[0] | (one[1] << 8)) << 16]).buffer)[0];
    value = String(f);
  } else {
    const v = typedView(dtype, one)[0];
    value = Object.is(v, -0) ? "-0" : String(v);
  }
  return `${value} (0x${hex})`;
}

function multiIndex(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = flat % shape[d];
    flat = Math.floor(flat / shape[d]);
  }
  return idx;
}

/** Options of {@link assertElementsEqual}. */
export interface CompareOptions {
  /** Shape, to report multi-indices. */
  shape?: readonly number[];
  /** Any NaN equals any NaN (for casts, where NaN payloads may differ). Default: bitwise. */
  anyNaN?: boolean;
  /** Prefix of failure messages. */
  label?: string;
}

/**
 * Asserts two element arrays of `dtype` are equal bit for bit (so NaN equals
 * NaN of the same bits, and -0 differs from +0); reports the first differing
 * index with both values and how many elements differ.
 */
export function assertElementsEqual(
  actual: ArrayBufferView | Uint8Array,
  expected: ArrayBufferView | Uint8Array,
  dtype: DType,
  options: CompareOptions = {},
): void {
  const a = bytesOf(actual);
  const e = bytesOf(expected);
  const size = SIZES[dtype];
  const label = options.label ? `${options.label}: ` : "";
  assert.equal(
    a.byteLength,
    e.byteLength,
    `${label}byte length ${a.byteLength} (${
      a.byteLength / size
    } elements), expected ${e.byteLength} (${e.byteLength / size} elements)`,
  );
  const n = a.byteLength / size;
  let first = -1;
  let differ = 0;
  for (let i = 0; i < n; i++) {
    const at = i * size;
    let same = true;
    for (let b = 0; b < size; b++) {
      if (a[at + b] !== e[at + b]) {
        same = false;
        break;
      }
    }
    if (!same && options.anyNaN && isFloat(dtype)) {
      same = isNaNBits(dtype, a, at) && isNaNBits(dtype, e, at);
    }
    if (!same) {
      differ++;
      if (first < 0) first = i;
    }
  }
  if (first >= 0) {
    const where = options.shape ? ` [${multiIndex(first, options.shape)}]` : "";
    assert.fail(
      `${label}${differ} of ${n} ${dtype} elements differ; first at flat index ${first}${where}: ` +
        `actual ${formatElement(dtype, a, first)}, expected ${formatElement(dtype, e, first)}`,
    );
  }
}

// ---------------------------------------------------------------------------
// cast oracle

const INT_BITS: Partial<Record<DType, [number, boolean]>> = {
  int8: [8, true],
  int16: [16, true],
  int32: [32, true],
  int64: [64, true],
  uint8: [8, false],
  uint16: [16, false],
  uint32: [32, false],
  uint64: [64, false],
};

/** An integer value rounded to the nearest float32 (ties to even), exactly. */
export function bigintToFloat32(b: bigint): number {
  const neg = b < 0n;
  const m = neg ? -b : b;
  if (m < 1n << 53n) return Math.fround(Number(b));
  const bits = m.toString(2).length;
  const shift = BigInt(bits - 24);
  let q = m >> shift;
  const rem = m - (q << shift);
  const half = 1n << (shift - 1n);
  if (rem > half || (rem === half && (q & 1n) === 1n)) q += 1n;
  const v = Number(q) * 2 ** Number(shift);
  return neg ? -v : v;
}

/**
 * float64 value → bfloat16 bits, rounded once to nearest even: round to
 * float32 with "round to odd" (keeps the sticky information), then to
 * bfloat16 with ties to even, which is exact for a 24-bit intermediate.
 */
export function float64ToBfloat16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if (Number.isFinite(f[0]) && f[0] !== x) {
    if (Math.abs(f[0]) > Math.abs(x)) u[0] -= 1; // step toward zero: truncation
    u[0] |= 1; // round to odd
  } else if (!Number.isFinite(f[0]) && Number.isFinite(x)) {
    u[0] = (x < 0 ? 0x80000000 : 0) | 0x7f7fffff; // overflow: largest odd finite
  }
  return ((u[0] + 0x7fff + ((u[0] >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 value of a source element (as the library converts to f32 first). */
function toFloat32(v: number | bigint): number {
  return typeof v === "bigint" ? bigintToFloat32(v) : Math.fround(v);
}

/**
 * The cast oracle: converts elements the way the library documents
 * (rust/src/cast.rs): integers wrap (two's complement, like numpy astype),
 * float → integer truncates and saturates with NaN → 0 (Rust `as`),
 * float64 → float32 / float16 round to nearest even as `Math.fround` /
 * `Float16Array` do, integer → float rounds the exact value, bool is 0/1 and
 * anything non-zero (NaN included) becomes true, bfloat16 is the source
 * value rounded once to nearest even (64-bit integers first round to float64).
 */
export function castReference(
  bytes: Uint8Array,
  from: DType,
  to: DType,
): Uint8Array<ArrayBuffer> {
  const src = typedView(from, bytes);
  const n = src.length;
  const out = new Uint8Array(n * SIZES[to]);
  const dst = typedView(to, out) as unknown as { [i: number]: number | bigint };
  const fromBool = from === "bool";
  const fromFloat = isFloat(from);
  const target = INT_BITS[to];
  for (let i = 0; i < n; i++) {
    let v = src[i];
    if (fromBool) v = v !== 0 ? 1 : 0;
    if (to === "bool") {
      dst[i] = (typeof v === "bigint" ? v !== 0n : v !== 0) ? 1 : 0;
    } else if (target) {
      const [bits, signed] = target;
      let r: bigint;
      if (!fromFloat) {
        r = signed ? BigInt.asIntN(bits, BigInt(v)) : BigInt.asUintN(bits, BigInt(v));
      } else {
        const f = v as number;
        const bb = BigInt(bits);
        const min = signed ? -(1n << (bb - 1n)) : 0n;
        const max = signed ? (1n << (bb - 1n)) - 1n : (1n << bb) - 1n;
        if (Number.isNaN(f)) r = 0n;
        else if (f === Infinity) r = max;
        else if (f === -Infinity) r = min;
        else {
          r = BigInt(Math.trunc(f));
          if (r < min) r = min;
          if (r > max) r = max;
        }
      }
      dst[i] = bits === 64 ? r : Number(r);
    } else if (to === "float64") {
      dst[i] = Number(v);
    } else if (to === "float32") {
      dst[i] = toFloat32(v);
    } else if (to === "float16") {
      // Integers go through float32 (exact for every value that stays finite in
      // float16); floats round once, directly, as numpy does.
      dst[i] = typeof v === "bigint" ? bigintToFloat32(v) : v;
    } else if (to === "bfloat16") {
      dst[i] = float64ToBfloat16Bits(Number(v));
    } else {
      throw new Error(`castReference: no target ${to}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// random

/** mulberry32: a small seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed from a string (FNV-1a). */
export function seedOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** An integer in [lo, hi]. */
export function randInt(rng: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

/**
 * A random selection per axis: whole axes, indices (some negative) that drop
 * the axis, `[start, stop]` (some negative) and `[start, stop, step]` with
 * steps from 1 to beyond a chunk.
 */
export function randomSelections(
  rng: () => number,
  shape: readonly number[],
  chunk: readonly number[],
): (AxisSelection | undefined)[] {
  return shape.map((n, d) => {
    const r = rng();
    if (r < 0.15) return undefined;
    if (r < 0.35) {
      const i = randInt(rng, 0, n - 1);
      return rng() < 0.4 ? i - n : i;
    }
    const start = randInt(rng, 0, n - 1);
    const stop = randInt(rng, start + 1, n);
    const s = rng() < 0.3 && start > 0 ? start - n : start;
    const e = rng() < 0.3 && stop < n ? stop - n : stop;
    if (r < 0.6) return [s, e] as const;
    const step = rng() < 0.3 ? randInt(rng, chunk[d], 2 * chunk[d] + 3) : randInt(rng, 1, 5);
    return [s, e, step] as const;
  });
}

/** Shape of an array's smallest stored unit: the inner chunk when sharded. */
export function cellShape(meta: CaseMeta): number[] {
  return meta.inner ?? meta.chunks;
}

/** Axis names tessera should report for a case. */
export function expectedAxes(meta: CaseMeta): string[] {
  return meta.shape.map((_, i) => (meta.dimension_names?.[i] ?? `d${i}`).toLowerCase());
}

/** The view's elements in C order of its shape, as plain numbers (read with `at`). */
export function valuesOf(view: TensorView): number[] {
  const out: number[] = [];
  const index = view.shape.map(() => 0);
  for (let k = 0; k < view.size; k++) {
    out.push(Number(view.at(...index)));
    for (let d = view.shape.length - 1; d >= 0; d--) {
      if (++index[d] < view.shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}
