/**
 * Stores written by tessera, read back by tensorstore and zarr-python
 * (tests/interop/peers.py read-many) and compared byte for byte with the
 * data the test generated.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createArray, type DType, open, writeOmeZarr } from "../mod.ts";
import { dtypeSize, typedArray } from "../src/dtype.ts";
import { ensurePythonEnv } from "../scripts/python_env.ts";
import { rng } from "../scripts/synth.ts";

interface WriteCase {
  name: string;
  dtype: DType;
  shape: number[];
  chunks: number[];
  shards?: number[];
  fillValue?: number | boolean;
  endian?: "little" | "big";
  zstdLevel?: number | null;
  /** Fraction of elements set to the fill value in blocks (missing chunks). */
  holes?: boolean;
}

const CASES: WriteCase[] = [
  ...([
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "bool",
  ] as DType[])
    .map((dtype) => ({
      name: `sharded-${dtype}`,
      dtype,
      shape: [37, 45],
      chunks: [8, 8],
      shards: [16, 32],
      holes: true,
    })),
  { name: "plain-zstd-3d", dtype: "float32", shape: [20, 33, 17], chunks: [8, 16, 8] },
  {
    name: "plain-raw-1d",
    dtype: "int32",
    shape: [1000],
    chunks: [128],
    zstdLevel: null,
    fillValue: -7,
    holes: true,
  },
  {
    name: "big-endian-sharded",
    dtype: "uint16",
    shape: [50, 70],
    chunks: [16, 16],
    shards: [32, 32],
    endian: "big",
  },
  {
    name: "nan-fill",
    dtype: "float64",
    shape: [45, 37],
    chunks: [8, 8],
    shards: [32, 16],
    fillValue: NaN,
    holes: true,
  },
  {
    name: "5d",
    dtype: "uint16",
    shape: [2, 3, 5, 40, 37],
    chunks: [1, 1, 2, 16, 16],
    shards: [1, 2, 4, 32, 32],
    holes: true,
  },
  {
    name: "shard-larger-than-array",
    dtype: "int16",
    shape: [10, 13],
    chunks: [8, 8],
    shards: [32, 32],
  },
];

/** Random data over the dtype's range, with blocks of fill value when `holes`. */
function makeData(c: WriteCase, seed: number): Uint8Array<ArrayBuffer> {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const bytes = new Uint8Array(n * dtypeSize(c.dtype));
  const random = rng(seed);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
  const view = typedArray(c.dtype, bytes.buffer);
  if (c.dtype === "bool") { for (let i = 0; i < n; i++) bytes[i] &= 1; }
  if (c.dtype === "float16" || c.dtype === "float32" || c.dtype === "float64") {
    const floats = view as Float32Array;
    for (let i = 0; i < n; i++) floats[i] = (random() - 0.5) * 1e4;
    floats[0] = NaN;
    floats[1] = Infinity;
    floats[2] = -Infinity;
  }
  if (c.holes) {
    // Blank the first rows: whole chunks equal the fill value and are not stored.
    const rows = Math.min(c.shape[0], 16);
    const rowSize = n / c.shape[0];
    const fill = c.fillValue ?? 0;
    for (let i = 0; i < rows * rowSize; i++) {
      if (c.dtype === "int64" || c.dtype === "uint64") {
        (view as BigInt64Array)[i] = BigInt(Number(fill));
      } else (view as Float64Array)[i] = Number(fill);
    }
  }
  return bytes;
}

async function readWithPeers(
  python: string,
  dir: string,
  entries: { store: string; path?: string; lib: string; out: string }[],
): Promise<void> {
  const list = join(dir, "read-many.json");
  await Deno.writeTextFile(list, JSON.stringify(entries));
  const out = await new Deno.Command(python, {
    args: [new URL("./interop/peers.py", import.meta.url).pathname, "read-many", list],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`peers.py read-many failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
}

function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: byte length`);
  const i = actual.findIndex((b, k) => b !== expected[k]);
  assert.equal(i, -1, `${what}: first difference at byte ${i}`);
}

Deno.test("stores written by tessera read back equal in tensorstore and zarr-python", async (t) => {
  const python = await ensurePythonEnv();
  const dir = await Deno.makeTempDir({ prefix: "tessera-write-" });
  const expected = new Map<string, Uint8Array<ArrayBuffer>>();
  const entries = [];
  for (const [k, c] of CASES.entries()) {
    const store = join(dir, `${c.name}.zarr`);
    const data = makeData(c, 100 + k);
    expected.set(c.name, data);
    using writer = await createArray(store, {
      shape: c.shape,
      dtype: c.dtype,
      chunks: c.chunks,
      ...(c.shards ? { shards: c.shards } : {}),
      ...(c.fillValue !== undefined ? { fillValue: c.fillValue } : {}),
      ...(c.endian ? { endian: c.endian } : {}),
      ...(c.zstdLevel !== undefined ? { zstdLevel: c.zstdLevel } : {}),
    });
    await writer.write(typedArray(c.dtype, data.buffer));
    for (const lib of ["tensorstore", "zarr"]) {
      entries.push({ store, lib, out: join(dir, `${c.name}.${lib}`) });
    }
  }
  await readWithPeers(python, dir, entries);
  for (const c of CASES) {
    await t.step(c.name, async () => {
      for (const lib of ["tensorstore", "zarr"]) {
        const meta = JSON.parse(await Deno.readTextFile(join(dir, `${c.name}.${lib}.json`)));
        assert.equal(meta.dtype, c.dtype, `${lib} dtype`);
        assert.deepEqual(meta.shape, c.shape, `${lib} shape`);
        assertSameBytes(
          await Deno.readFile(join(dir, `${c.name}.${lib}.bin`)),
          expected.get(c.name)!,
          lib,
        );
      }
      // tessera reads its own store back too.
      using img = await open(join(dir, `${c.name}.zarr`));
      using view = await img.scan().collect();
      const data = view.data();
      assertSameBytes(
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
        expected.get(c.name)!,
        "tessera",
      );
    });
  }
  await t.step("chunks equal to the fill value are not stored", async () => {
    // Rows 0..16 were set to the fill value: their inner chunks (8×8) must be missing.
    using img = await open(join(dir, "sharded-uint16.zarr"));
    const blank = await img.scan().select({ d0: [0, 16] }).explain();
    assert.equal(blank.chunksTouched, 2 * Math.ceil(45 / 8));
    assert.equal(blank.chunksStored, 0);
    const rest = await img.scan().select({ d0: [16, 37] }).explain();
    assert.equal(rest.chunksStored, rest.chunksTouched);
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an OME-Zarr written by tessera reads back equal per level in both peers", async () => {
  const python = await ensurePythonEnv();
  const dir = await Deno.makeTempDir({ prefix: "tessera-ngff-" });
  const store = join(dir, "image.ome.zarr");
  const shape = [2, 3, 5, 40, 37];
  const data = new Uint16Array(shape.reduce((a, b) => a * b, 1));
  const random = rng(5);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(random() * 65536);
  await writeOmeZarr(store, data, {
    axes: ["t", "c", "z", "y", "x"],
    shape,
    dtype: "uint16",
    chunks: [1, 1, 2, 16, 16],
    shards: [1, 1, 4, 32, 32],
    levels: 3,
    channels: [{ name: "a" }, { name: "b" }, { name: "c" }],
  });
  using img = await open(store);
  const entries = [];
  for (const [i, level] of img.levels.entries()) {
    for (const lib of ["tensorstore", "zarr"]) {
      entries.push({ store, path: level.path, lib, out: join(dir, `level${i}.${lib}`) });
    }
  }
  await readWithPeers(python, dir, entries);
  for (const [i, level] of img.levels.entries()) {
    using view = await img.scan().level(i).collect();
    const mine = view.data();
    for (const lib of ["tensorstore", "zarr"]) {
      const meta = JSON.parse(await Deno.readTextFile(join(dir, `level${i}.${lib}.json`)));
      assert.deepEqual(meta.shape, level.shape);
      assertSameBytes(
        await Deno.readFile(join(dir, `level${i}.${lib}.bin`)),
        new Uint8Array(mine.buffer, mine.byteOffset, mine.byteLength),
        `level ${i} (${lib})`,
      );
    }
  }
  // Level 1 is the 2×2 block mean of level 0 in y and x (partial edge blocks averaged over what exists).
  using level1 = await img.scan().level(1).select({ t: 1, c: 2, z: 4 }).collect();
  const [ny, nx] = [shape[3], shape[4]];
  const base = ((1 * 3 + 2) * 5 + 4) * ny * nx;
  for (const [y, x] of [[0, 0], [7, 11], [19, 18]]) {
    const values = [];
    for (let dy = 0; dy < 2; dy++) {
      for (let dx = 0; dx < 2; dx++) {
        if (2 * y + dy < ny && 2 * x + dx < nx) {
          values.push(data[base + (2 * y + dy) * nx + 2 * x + dx]);
        }
      }
    }
    assert.equal(
      level1.at(y, x),
      Math.round(values.reduce((a, b) => a + b, 0) / values.length),
      `mean at ${y},${x}`,
    );
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("writing never replaces an existing path unless asked, and never a non-Zarr folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tessera-guard-" });
  const options = { shape: [4], dtype: "uint8" as const, chunks: [2] };
  await Deno.writeTextFile(join(dir, "keep.txt"), "user data");
  await assert.rejects(createArray(dir, options), /already exists/);
  await assert.rejects(createArray(dir, { ...options, overwrite: true }), /not a Zarr store/);
  assert.equal(await Deno.readTextFile(join(dir, "keep.txt")), "user data");
  const store = join(dir, "a.zarr");
  (await createArray(store, options))[Symbol.dispose]();
  await assert.rejects(createArray(store, options), /already exists/);
  (await createArray(store, { ...options, overwrite: true }))[Symbol.dispose]();
  await Deno.remove(dir, { recursive: true });
});
