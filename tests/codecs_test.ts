/**
 * Every Zarr v3 codec configuration of tests/interop/v3_codec_cases.py,
 * written by tensorstore and zarr-python, read by tessera: the full read
 * equals the writer's own read-back bit for bit, and random strided
 * selections equal the reference slicer. Stores written by tessera with the
 * codecs its writer supports are read back by both peers.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createArray, type DType, open, type Selection, ZarrArrayWriter } from "../mod.ts";
import { dtypeSize, typedArray } from "../src/dtype.ts";
import { parseNode } from "../src/zarr/metadata.ts";
import {
  assertElementsEqual,
  type CaseMeta,
  expectedAxes,
  mulberry32,
  PEERS,
  randomSelections,
  ROOT,
  runPython,
  seedOf,
  selectionByName,
  sliceReference,
  tempDir,
} from "./helpers.ts";

const CASES_PY = join(ROOT, "tests", "interop", "v3_codec_cases.py");
const SELECTIONS_PER_CASE = 6;
const LIBS = ["tensorstore", "zarr"] as const;
type Lib = (typeof LIBS)[number];

type CodecJson = { name: string; configuration?: Record<string, unknown> };

/** `meta.json` of a case written by v3_codec_cases.py. */
interface CodecCaseMeta extends CaseMeta {
  family: string;
  cell: number[];
  codecs_json: CodecJson[];
  chunk_key_encoding: { name: string; configuration?: { separator?: string } };
  data: "random" | "smooth";
  written_by: Lib[];
  not_written_by: Partial<Record<Lib, string>>;
  cross_read: Partial<Record<Lib, string>>;
}

interface CodecCase {
  name: string;
  store: string;
  meta: CodecCaseMeta;
  expected: Uint8Array<ArrayBuffer>;
}

interface Matrix {
  cases: CodecCase[];
  skipped: { lib: Lib; case: string; reason: string }[];
}

let matrixPromise: Promise<Matrix> | null = null;

/** Writes the codec matrix once per test module and loads it. */
function matrix(): Promise<Matrix> {
  matrixPromise ??= (async () => {
    const dir = await tempDir("tessera-codecs-");
    await runPython([CASES_PY, "write-cases", dir]);
    const folders: string[] = JSON.parse(await Deno.readTextFile(join(dir, "cases.json")));
    const skipped = JSON.parse(await Deno.readTextFile(join(dir, "skipped.json")));
    const cases = await Promise.all(folders.map(async (name) => {
      const base = join(dir, name);
      const meta = JSON.parse(await Deno.readTextFile(join(base, "meta.json")));
      const expected = await Deno.readFile(join(base, "data.bin"));
      return { name, store: join(base, "store"), meta, expected };
    }));
    return { cases, skipped };
  })();
  return matrixPromise;
}

// ---------------------------------------------------------------------------
// the matrix tessera must read

const MULTI_BYTE: DType[] = [
  "int16",
  "int32",
  "int64",
  "uint16",
  "uint32",
  "uint64",
  "float16",
  "float32",
  "float64",
];

/** Cases (other than the blosc grid, checked by coverage) and who must write them. */
const REQUIRED: Record<string, readonly Lib[]> = {
  ...Object.fromEntries(
    MULTI_BYTE.flatMap((d) => [[`bytes-little-${d}`, LIBS], [`bytes-big-${d}`, LIBS]]),
  ),
  "bytes-bool": LIBS,
  "bytes-int8": LIBS,
  "bytes-uint8": LIBS,
  "transpose-2d-10": LIBS,
  "transpose-3d-201-big-zstd": LIBS,
  "transpose-3d-120-gzip": LIBS,
  "transpose-4d-3021": LIBS,
  "transpose-4d-chained": LIBS,
  "transpose-inside-shard-3d": LIBS,
  "transpose-inside-shard-4d": LIBS,
  "transpose-outside-shard-2d": LIBS,
  "transpose-outside-shard-2d-nonsquare": ["tensorstore"],
  "transpose-outside-shard-3d": LIBS,
  "transpose-outside-and-inside-shard-3d": LIBS,
  "crc32c-after-zstd": LIBS,
  "crc32c-only": LIBS,
  "crc32c-before-zstd": LIBS,
  "crc32c-after-zstd-in-shard": LIBS,
  "zstd-checksum": LIBS,
  "zstd-no-checksum": LIBS,
  "zstd-negative-level": LIBS,
  "zstd-level19-checksum-in-shard": LIBS,
  "gzip-0": LIBS,
  "gzip-1": LIBS,
  "gzip-6": LIBS,
  "gzip-9": LIBS,
  "gzip-9-big-in-shard": LIBS,
  "blosc-lz4-shuffle-t8-int64-random": LIBS,
  "blosc-clevel0-t4": LIBS,
  "blosc-auto-blocksize-bitshuffle-t2": LIBS,
  "blosc-big-endian-shuffle-t8": LIBS,
  "blosc-in-shard-bitshuffle-t2": LIBS,
  "shard-index-start": LIBS,
  "shard-index-start-3d-gzip": LIBS,
  "shard-index-no-crc32c": LIBS,
  "shard-index-big-endian": LIBS,
  "shard-index-big-endian-no-crc32c-start": LIBS,
  "shard-nested-2d": LIBS,
  "shard-nested-3d-mixed-index": LIBS,
  "shard-nested-three-levels-1d": LIBS,
  "shard-then-gzip": ["zarr"],
  "shard-then-zstd-crc32c-index-start": ["zarr"],
  "shard-nested-inner-then-zstd": ["zarr"],
  "keys-default-dot-3d": LIBS,
  "keys-default-dot-shard-2d": LIBS,
  "keys-v2-dot-2d": LIBS,
  "keys-v2-slash-3d-shard": LIBS,
  "keys-v2-dot-1d-shard": LIBS,
  "keys-v2-slash-1d": LIBS,
  "keys-default-rank0": LIBS,
  "keys-v2-rank0": LIBS,
  "numcodecs-zlib-1": ["zarr"],
  "numcodecs-zlib-9-big-in-shard": ["zarr"],
  "numcodecs-lz4-1": ["zarr"],
  "numcodecs-lz4-10-in-shard": ["zarr"],
};

/** Configurations a peer cannot write (see the reasons in v3_codec_cases.py). */
const EXPECTED_SKIPS: Record<Lib, RegExp> = {
  tensorstore: /^(shard-then-|shard-nested-inner-then-|numcodecs-)/,
  zarr: /^(transpose-outside-shard-2d-nonsquare|blosc-snappy-)/,
};

const BLOSC_CNAMES = ["lz4", "lz4hc", "zstd", "blosclz", "zlib", "snappy"];
const BLOSC_SHUFFLES = ["noshuffle", "shuffle", "bitshuffle"];
const FAMILIES = [
  "bytes",
  "transpose",
  "crc32c",
  "zstd",
  "gzip",
  "blosc",
  "sharding",
  "keys",
  "numcodecs",
];

/** Every codec of a chain, nested sharding codecs included. */
function flatCodecs(codecs: CodecJson[]): CodecJson[] {
  return codecs.flatMap((c) =>
    c.name === "sharding_indexed" ? [c, ...flatCodecs(c.configuration!.codecs as CodecJson[])] : [c]
  );
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Files under a folder, zarr.json excluded. */
async function chunkFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) out.push(...await chunkFiles(path));
    else if (e.name !== "zarr.json") out.push(path);
  }
  return out;
}

/** Features of the Blosc1 frames stored as chunks under `store` (their 16-byte headers). */
async function bloscHeaders(store: string): Promise<string[]> {
  const out: string[] = [];
  for (const file of await chunkFiles(store)) {
    const b = await Deno.readFile(file);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const [flags, typesize] = [b[2], b[3]];
    const [nbytes, blocksize] = [dv.getInt32(4, true), dv.getInt32(8, true)];
    const blocks = Math.ceil(nbytes / blocksize);
    const last = nbytes - (blocks - 1) * blocksize;
    const features = [];
    if (flags & 0x02) features.push("memcpyed");
    else {
      features.push(flags & 0x10 ? "unsplit" : "split");
      if (blocks > 1) features.push("multiblock");
      if (last < blocksize) features.push("partial-last");
      const odd = (blocksize / typesize) % 8 !== 0 || (last / typesize) % 8 !== 0;
      if (flags & 0x04 && odd) features.push("bitshuffle-odd-count");
    }
    out.push(features.join(" "));
  }
  return out;
}

Deno.test("codecs: the case matrix is complete, and every skipped writer is documented", async () => {
  const { cases, skipped } = await matrix();
  const names = new Set(cases.map((c) => c.name));
  const missing: string[] = [];
  for (const [name, libs] of Object.entries(REQUIRED)) {
    for (const lib of libs) if (!names.has(`${lib}-${name}`)) missing.push(`${lib}-${name}`);
  }
  assert.deepEqual(missing, [], "required cases not written");
  for (const c of cases) {
    assert.ok(FAMILIES.includes(c.meta.family), `${c.name}: family ${c.meta.family}`);
    assert.equal(c.name, `${c.meta.lib}-${c.meta.case}`);
    // who wrote what: written_by lists this writer, the others are documented skips
    assert.ok(c.meta.written_by.includes(c.meta.lib), `${c.name}: written_by`);
    for (const lib of LIBS) {
      assert.equal(
        c.meta.written_by.includes(lib) || typeof c.meta.not_written_by[lib] === "string",
        true,
        `${c.name}: ${lib} neither wrote the case nor has a documented reason`,
      );
      if (c.meta.written_by.includes(lib)) {
        assert.ok(names.has(`${lib}-${c.meta.case}`), `${lib}-${c.meta.case} missing`);
      }
    }
  }
  // skips: exactly the expected ones, each with a reason
  for (const s of skipped) {
    assert.match(s.case, EXPECTED_SKIPS[s.lib], `${s.lib} unexpectedly skipped ${s.case}`);
    assert.ok(s.reason.length > 20, `${s.lib} ${s.case}: reason`);
  }
  for (const [name, libs] of Object.entries(REQUIRED)) {
    for (const lib of LIBS) {
      if (libs.includes(lib)) continue;
      assert.ok(
        skipped.some((s) => s.lib === lib && s.case === name),
        `${lib} ${name}: skip not documented`,
      );
    }
  }

  // blosc: every cname × shuffle, every shuffle × typesize 1/2/4/8, forced
  // block sizes giving several blocks per chunk, each written by every peer
  // that can (snappy: tensorstore only).
  const blosc = cases.filter((c) => c.meta.family === "blosc");
  const configs = blosc.map((c) => ({
    c,
    cfg: flatCodecs(c.meta.codecs_json).find((k) => k.name === "blosc")!.configuration!,
  }));
  for (const cname of BLOSC_CNAMES) {
    for (const shuffle of BLOSC_SHUFFLES) {
      for (const lib of cname === "snappy" ? ["tensorstore"] : LIBS) {
        assert.ok(
          configs.some(({ c, cfg }) =>
            c.meta.lib === lib && cfg.cname === cname && cfg.shuffle === shuffle
          ),
          `blosc ${cname}/${shuffle} by ${lib}`,
        );
      }
    }
  }
  for (const shuffle of ["shuffle", "bitshuffle"]) {
    for (const typesize of [1, 2, 4, 8]) {
      assert.ok(
        configs.some(({ cfg, c }) =>
          cfg.shuffle === shuffle && cfg.typesize === typesize &&
          dtypeSize(c.meta.dtype) === typesize
        ),
        `blosc ${shuffle} typesize ${typesize}`,
      );
    }
  }
  // What c-blosc actually wrote (it adjusts the requested blocksize): frames
  // with several blocks and a partial last block, split into typesize
  // streams or not, bitshuffled blocks whose element count is not a
  // multiple of 8, and memcpyed frames.
  const frames = new Set<string>();
  for (const c of blosc.filter((c) => c.meta.inner === null)) {
    for (const header of await bloscHeaders(c.store)) frames.add(header);
  }
  for (
    const want of [
      /^split multiblock partial-last/,
      /^unsplit multiblock partial-last/,
      /bitshuffle-odd-count/,
      /^memcpyed/,
    ]
  ) {
    assert.ok([...frames].some((f) => want.test(f)), `blosc frames: ${want} in ${[...frames]}`);
  }
  // missing chunks / shards / inner chunks and partial edges in several families
  for (const f of ["bytes", "transpose", "blosc", "sharding", "keys"]) {
    const fam = cases.filter((c) => c.meta.family === f);
    assert.ok(fam.some((c) => c.meta.absent.outer > 0), `${f}: missing chunks or shards`);
    assert.ok(
      fam.some((c) => c.meta.shape.some((n, d) => n % c.meta.chunks[d] !== 0)),
      `${f}: partial edge chunks`,
    );
  }
  for (const f of ["transpose", "sharding", "keys"]) {
    assert.ok(
      cases.some((c) => c.meta.family === f && c.meta.absent.inner > 0),
      `${f}: missing inner chunks`,
    );
  }
  // the peers agree with each other on every store both can read
  for (const c of cases) {
    for (const [lib, result] of Object.entries(c.meta.cross_read)) {
      assert.equal(result, "ok", `${lib} reading ${c.name}`);
    }
  }
});

async function checkCase(c: CodecCase): Promise<void> {
  const { meta } = c;
  using img = await open(c.store);
  assert.deepEqual(img.shape, meta.shape, "shape");
  assert.equal(img.dtype, meta.dtype, "dtype");
  assert.deepEqual(img.axes, expectedAxes(meta), "axes");
  {
    using view = await img.scan().collect();
    assert.deepEqual(view.shape, meta.shape, "full read shape");
    assertElementsEqual(view.data(), c.expected, meta.dtype, {
      shape: meta.shape,
      label: "full read vs data.bin",
    });
  }
  const rng = mulberry32(seedOf(`codecs ${c.name}`));
  for (let k = 0; k < SELECTIONS_PER_CASE; k++) {
    const sels = randomSelections(rng, meta.shape, meta.cell);
    const expected = sliceReference(c.expected, meta.dtype, meta.shape, sels);
    const selection = selectionByName(img.axes, sels);
    const label = `selection ${JSON.stringify(selection)}`;
    using view = await img.scan().select(selection).collect();
    assert.deepEqual(view.shape, expected.shape, `${label}: shape`);
    assertElementsEqual(view.data(), expected.bytes, meta.dtype, { shape: expected.shape, label });
  }
}

for (const family of FAMILIES) {
  Deno.test(`codecs: ${family}`, async (t) => {
    const cases = (await matrix()).cases.filter((c) => c.meta.family === family);
    assert.ok(cases.length > 0, `no ${family} case`);
    for (const c of cases) {
      await t.step(c.name, async () => {
        try {
          await checkCase(c);
        } catch (e) {
          const err = e as Error;
          throw new Error(
            `${c.name} (written by ${c.meta.lib}; ${c.meta.dtype} [${c.meta.shape}] chunks ` +
              `[${c.meta.chunks}] keys ${JSON.stringify(c.meta.chunk_key_encoding)}; ` +
              `${c.meta.codecs}): ${err.constructor.name}: ${err.message}`,
            { cause: e },
          );
        }
      });
    }
  });
}

// ---------------------------------------------------------------------------
// tessera's writer, read back by the peers

interface WriteCase {
  name: string;
  dtype: DType;
  shape: number[];
  /** Chunk grid (the shard shape when sharded). */
  chunks: number[];
  /** A full zarr.json codec chain, written through ZarrArrayWriter; else createArray. */
  codecs?: CodecJson[];
  create?: { shards?: number[]; zstdLevel?: number | null; endian?: "little" | "big" };
  keys?: { name: "default" | "v2"; separator: "/" | "." };
  fill?: number;
  /** Peers that read this configuration (tensorstore has no numcodecs.* codecs and no
   * bytes-to-bytes codecs after sharding_indexed). */
  readers: readonly Lib[];
  /** Times the whole array is written (over itself), for timing-dependent failures. */
  writes?: number;
}

const B = (endian = "little"): CodecJson => ({ name: "bytes", configuration: { endian } });
const ZSTD: CodecJson = { name: "zstd", configuration: { level: 3, checksum: false } };
const CRC: CodecJson = { name: "crc32c" };
const gz = (level: number): CodecJson => ({ name: "gzip", configuration: { level } });
const shard = (
  inner: number[],
  codecs: CodecJson[],
  index: CodecJson[] = [B(), CRC],
  location = "end",
): CodecJson => ({
  name: "sharding_indexed",
  configuration: { chunk_shape: inner, codecs, index_codecs: index, index_location: location },
});

const WRITE_CASES: WriteCase[] = [
  {
    name: "create-zstd-sharded-u16",
    dtype: "uint16",
    shape: [37, 45],
    chunks: [16, 32],
    create: { shards: [16, 32] },
    readers: LIBS,
  },
  {
    name: "create-raw-big-f64",
    dtype: "float64",
    shape: [30, 41],
    chunks: [16, 16],
    create: { zstdLevel: null, endian: "big" },
    readers: LIBS,
  },
  {
    name: "create-zstd-i64",
    dtype: "int64",
    shape: [300],
    chunks: [64],
    create: { zstdLevel: 9 },
    fill: -7,
    readers: LIBS,
  },
  {
    name: "gzip-i32",
    dtype: "int32",
    shape: [30, 41],
    chunks: [16, 16],
    codecs: [B(), gz(6)],
    readers: LIBS,
  },
  {
    name: "gzip-in-shard-index-start-f32",
    dtype: "float32",
    shape: [30, 41],
    chunks: [16, 16],
    codecs: [shard([8, 4], [B("big"), gz(1)], [B(), CRC], "start")],
    readers: LIBS,
  },
  {
    name: "numcodecs-zlib-u16",
    dtype: "uint16",
    shape: [30, 41],
    chunks: [16, 16],
    codecs: [B(), { name: "numcodecs.zlib", configuration: { level: 5 } }],
    readers: ["zarr"],
  },
  {
    name: "crc32c-after-zstd-f64",
    dtype: "float64",
    shape: [30, 41],
    chunks: [16, 16],
    codecs: [B(), ZSTD, CRC],
    readers: LIBS,
  },
  {
    name: "transpose-3d-u32",
    dtype: "uint32",
    shape: [7, 9, 11],
    chunks: [4, 4, 6],
    codecs: [{ name: "transpose", configuration: { order: [2, 0, 1] } }, B(), ZSTD],
    readers: LIBS,
  },
  {
    name: "transpose-inside-shard-i16",
    dtype: "int16",
    shape: [10, 12, 9],
    chunks: [8, 8, 6],
    codecs: [shard([4, 4, 3], [
      { name: "transpose", configuration: { order: [1, 2, 0] } },
      B("big"),
    ])],
    readers: LIBS,
  },
  {
    name: "index-big-no-crc32c-u8",
    dtype: "uint8",
    shape: [30, 41],
    chunks: [16, 16],
    codecs: [shard([8, 8], [{ name: "bytes" }, ZSTD], [B("big")])],
    readers: LIBS,
  },
  {
    name: "nested-shard-f32",
    dtype: "float32",
    shape: [37, 45],
    chunks: [32, 32],
    codecs: [shard([16, 16], [shard([4, 8], [B(), ZSTD], [B(), CRC], "start")])],
    readers: LIBS,
  },
  {
    name: "shard-then-gzip-i32",
    dtype: "int32",
    shape: [30, 41],
    chunks: [16, 16],
    codecs: [shard([8, 8], [B()]), gz(5)],
    readers: ["zarr"],
  },
  // "." separators: 64 chunks (shards) of 32 KiB whose keys share everything
  // up to the last "." ("0.0" … "0.63", "c.0.0.0" … "c.0.0.63"), written in
  // parallel; written several times because a clash between parallel chunk
  // writes depends on timing.
  {
    name: "keys-v2-dot-u8",
    dtype: "uint8",
    shape: [1, 1 << 21],
    chunks: [1, 1 << 15],
    codecs: [{ name: "bytes" }],
    keys: { name: "v2", separator: "." },
    readers: LIBS,
    writes: 8,
  },
  {
    name: "keys-default-dot-shard-u32",
    dtype: "uint32",
    shape: [1, 1, 1 << 19],
    chunks: [1, 1, 1 << 13],
    codecs: [shard([1, 1, 1 << 11], [B()])],
    keys: { name: "default", separator: "." },
    readers: LIBS,
    writes: 8,
  },
];

/**
 * Random elements (finite floats), with the first chunk (shard) of the grid
 * left at the fill value so that it is not stored.
 */
function writeData(c: WriteCase, seed: number): Uint8Array<ArrayBuffer> {
  const n = product(c.shape);
  const size = dtypeSize(c.dtype);
  const bytes = new Uint8Array(n * size);
  const rng = mulberry32(seed);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rng() * 256);
  const view = typedArray(c.dtype, bytes.buffer);
  if (c.dtype.startsWith("float")) {
    const f = view as Float32Array;
    for (let i = 0; i < n; i++) f[i] = Math.round((rng() - 0.5) * 2e4) / 8;
  }
  // the first chunk: C-order indices i with every coordinate below the chunk shape
  const inner = c.chunks.map((ch, d) => Math.min(ch, c.shape[d]));
  const strides = c.shape.map((_, d) => product(c.shape.slice(d + 1)));
  for (let k = 0; k < product(inner); k++) {
    let i = 0;
    let rest = k;
    for (let d = c.shape.length - 1; d >= 0; d--) {
      i += (rest % inner[d]) * strides[d];
      rest = Math.floor(rest / inner[d]);
    }
    if (c.dtype === "int64" || c.dtype === "uint64") {
      (view as BigInt64Array)[i] = BigInt(c.fill ?? 0);
    } else (view as Float64Array)[i] = c.fill ?? 0;
  }
  return bytes;
}

async function createStore(c: WriteCase, store: string): Promise<ZarrArrayWriter> {
  if (!c.codecs) {
    return await createArray(store, {
      shape: c.shape,
      dtype: c.dtype,
      chunks: c.create?.shards ? c.chunks.map((n) => n / 2) : c.chunks,
      ...(c.create?.shards ? { shards: c.create.shards } : {}),
      ...(c.create?.zstdLevel !== undefined ? { zstdLevel: c.create.zstdLevel } : {}),
      ...(c.create?.endian ? { endian: c.create.endian } : {}),
      ...(c.fill !== undefined ? { fillValue: c.fill } : {}),
    });
  }
  const json = {
    zarr_format: 3,
    node_type: "array",
    shape: c.shape,
    data_type: c.dtype,
    chunk_grid: { name: "regular", configuration: { chunk_shape: c.chunks } },
    chunk_key_encoding: {
      name: c.keys?.name ?? "default",
      configuration: { separator: c.keys?.separator ?? "/" },
    },
    fill_value: c.fill ?? 0,
    codecs: c.codecs,
    attributes: {},
  };
  await Deno.mkdir(store, { recursive: true });
  const file = join(store, "zarr.json");
  await Deno.writeTextFile(file, JSON.stringify(json, null, 2));
  const node = parseNode(json, store, file);
  assert.equal(node.kind, "array");
  return new ZarrArrayWriter((node as { kind: "array"; array: ZarrArrayWriter["metadata"] }).array);
}

Deno.test("codecs: stores written by tessera read back equal in tensorstore and zarr-python", async (t) => {
  const dir = await tempDir("tessera-codecs-write-");
  const data = new Map<string, Uint8Array<ArrayBuffer>>();
  const jobs: { store: string; lib: Lib; out: string }[] = [];
  const failures = new Map<string, Error>();
  for (const [k, c] of WRITE_CASES.entries()) {
    const store = join(dir, `${c.name}.zarr`);
    const bytes = writeData(c, 900 + k);
    data.set(c.name, bytes);
    try {
      using writer = await createStore(c, store);
      for (let w = 0; w < (c.writes ?? 1); w++) {
        await writer.write(typedArray(c.dtype, bytes.buffer));
      }
    } catch (e) {
      failures.set(c.name, e as Error);
      continue;
    }
    for (const lib of c.readers) jobs.push({ store, lib, out: join(dir, `${c.name}.${lib}`) });
  }
  const list = join(dir, "read-many.json");
  await Deno.writeTextFile(list, JSON.stringify(jobs));
  await runPython([PEERS, "read-many", list]);
  for (const c of WRITE_CASES) {
    await t.step(c.name, async () => {
      const failed = failures.get(c.name);
      if (failed) throw new Error(`tessera could not write ${c.name}: ${failed.message}`);
      const expected = data.get(c.name)!;
      for (const lib of c.readers) {
        const meta = JSON.parse(await Deno.readTextFile(join(dir, `${c.name}.${lib}.json`)));
        assert.equal(meta.dtype, c.dtype, `${lib} dtype`);
        assert.deepEqual(meta.shape, c.shape, `${lib} shape`);
        assertElementsEqual(
          await Deno.readFile(join(dir, `${c.name}.${lib}.bin`)),
          expected,
          c.dtype,
          { shape: c.shape, label: `${c.name} read by ${lib}` },
        );
      }
      using img = await open(join(dir, `${c.name}.zarr`));
      using view = await img.scan().collect();
      assertElementsEqual(view.data(), expected, c.dtype, {
        shape: c.shape,
        label: `${c.name} read by tessera`,
      });
      // the blank first chunk was not stored, the next one was
      const first: Selection = Object.fromEntries(
        img.axes.map((a, d) => [a, [0, c.chunks[d]] as const]),
      );
      const plan = await img.scan().select(first).explain();
      assert.equal(
        plan.chunksStored,
        0,
        `${c.name}: chunks equal to the fill value are not stored`,
      );
      assert.ok(plan.chunksTouched > 0);
    });
  }
});

Deno.test("codecs: tessera's writer refuses codecs it cannot encode", async () => {
  const dir = await tempDir("tessera-codecs-refuse-");
  for (
    const codec of [
      {
        name: "blosc",
        configuration: {
          cname: "lz4",
          clevel: 5,
          shuffle: "shuffle",
          typesize: 2,
          blocksize: 0,
        },
      },
      { name: "numcodecs.lz4", configuration: { acceleration: 1 } },
    ]
  ) {
    const c: WriteCase = {
      name: codec.name,
      dtype: "uint16",
      shape: [8, 8],
      chunks: [4, 4],
      codecs: [B(), codec],
      readers: [],
    };
    const store = join(dir, `${codec.name}.zarr`);
    await assert.rejects(async () => {
      using writer = await createStore(c, store);
      await writer.write(typedArray("uint16", writeData(c, 1).buffer));
    }, new RegExp(codec.name === "blosc" ? "blosc" : "lz4"));
  }
});

Deno.test("codecs: a shard followed by gzip decodes however small its inner chunks are", async () => {
  // One shard of 300×256 uint8 with 1×1 inner chunks, then gzip: the decoded
  // shard (76,800 data bytes + a 1.2 MB index) is 16 times the chunk's
  // element bytes. zarr-python writes and reads this store too, but takes
  // about 25 s, so tessera writes it here.
  const dir = await tempDir("tessera-codecs-tiny-inner-");
  const c: WriteCase = {
    name: "shard-1x1-then-gzip",
    dtype: "uint8",
    shape: [300, 256],
    chunks: [300, 256],
    codecs: [shard([1, 1], [{ name: "bytes" }]), gz(1)],
    readers: [],
  };
  const data = new Uint8Array(product(c.shape)).map((_, i) => (i % 251) + 1);
  const store = join(dir, "store");
  {
    using writer = await createStore(c, store);
    await writer.write(data);
  }
  using img = await open(store);
  using view = await img.scan().collect();
  assertElementsEqual(view.data(), data, "uint8", { shape: c.shape, label: c.name });
});
