/**
 * Zarr v2 arrays written by zarr-python and tensorstore's `zarr` driver
 * (tests/interop/v2_cases.py write-v2-cases) read by tessera: full reads
 * against the peers' data, random selections and casts against the
 * reference slicer and cast oracle of tests/helpers.ts, and the errors for
 * v2 features tessera does not read.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DecodeError, info, NotFound, open, StorageError } from "../mod.ts";
import {
  assertElementsEqual,
  bytesOf,
  type CaseMeta,
  castReference,
  copyTree,
  expectedAxes,
  mulberry32,
  randomSelections,
  ROOT,
  runPython,
  seedOf,
  selectionByName,
  sliceReference,
  snapshotTree,
  tempDir,
} from "./helpers.ts";

const V2_CASES = join(ROOT, "tests", "interop", "v2_cases.py");
const SELECTIONS_PER_CASE = 10;

/** `meta.json` of a v2 case: the peers.py fields plus the v2 specifics. */
interface V2Meta extends CaseMeta {
  zarr_format: 2;
  v2_dtype: string;
  order: "C" | "F";
  separator: "." | "/";
  compressor: Record<string, unknown> | null;
  fill_json: unknown;
}

interface V2Case {
  name: string;
  store: string;
  meta: V2Meta;
  expected: Uint8Array<ArrayBuffer>;
}

let casesPromise: Promise<V2Case[]> | null = null;

/** Writes the v2 matrix once for this module and loads it. */
function v2Cases(): Promise<V2Case[]> {
  casesPromise ??= (async () => {
    const dir = await tempDir("tessera-v2-cases-");
    await runPython([V2_CASES, "write-v2-cases", dir]);
    const names: string[] = JSON.parse(await Deno.readTextFile(join(dir, "cases.json")));
    return await Promise.all(names.map(async (name) => ({
      name,
      store: join(dir, name, "store"),
      meta: JSON.parse(await Deno.readTextFile(join(dir, name, "meta.json"))) as V2Meta,
      expected: await Deno.readFile(join(dir, name, "data.bin")),
    })));
  })();
  return casesPromise;
}

async function v2Case(name: string): Promise<V2Case> {
  const found = (await v2Cases()).find((c) => c.name === name);
  if (!found) throw new Error(`v2 case ${name} was not written by v2_cases.py`);
  return found;
}

/** Case families by case name (the part after `<lib>-`). */
const FAMILIES: Record<string, RegExp> = {
  "every dtype, little-endian": /^dtype-/,
  "big-endian dtypes": /^bigendian-/,
  "Fortran order": /^forder-/,
  '"/" dimension separator': /^slash-/,
  "fill values (NaN, ±Infinity, null, bool, 64-bit extremes)": /^fill-/,
  "blosc (every cname, shuffle none/byte/bit/auto, typesize 1-8, blocks)": /^blosc-/,
  "lz4": /^lz4-/,
  "zero-dimensional": /^scalar-/,
};

async function checkCase(c: V2Case): Promise<void> {
  const { meta } = c;
  using img = await open(c.store);
  assert.deepEqual(img.axes, expectedAxes(meta), "axes (from _ARRAY_DIMENSIONS, else d<i>)");
  assert.deepEqual(img.shape, meta.shape, "shape");
  assert.equal(img.dtype, meta.dtype, "dtype");
  assert.equal(img.levels.length, 1, "a plain array has one level");
  assert.equal(img.ngffVersion, undefined);

  const plan = await img.scan().explain();
  const chunks = meta.shape.reduce((n, s, d) => n * Math.ceil(s / meta.chunks[d]), 1);
  assert.equal(plan.chunksTouched, chunks, "chunks touched by a full read");
  assert.equal(plan.chunksStored, chunks - meta.absent.outer, "missing chunks are not stored");
  {
    using view = await img.scan().collect();
    assert.deepEqual(view.shape, meta.shape, "full read shape");
    assertElementsEqual(view.data(), c.expected, meta.dtype, {
      shape: meta.shape,
      label: `${c.name} (${meta.codecs}) full read vs data.bin`,
    });
  }
  const rng = mulberry32(seedOf(`v2 ${c.name}`));
  for (let k = 0; k < SELECTIONS_PER_CASE; k++) {
    const sels = randomSelections(rng, meta.shape, meta.chunks);
    const expected = sliceReference(c.expected, meta.dtype, meta.shape, sels);
    const selection = selectionByName(img.axes, sels);
    const label = `${c.name} selection ${JSON.stringify(selection)}`;
    using view = await img.scan().select(selection).collect();
    assert.deepEqual(view.shape, expected.shape, `${label}: shape`);
    assertElementsEqual(view.data(), expected.bytes, meta.dtype, { shape: expected.shape, label });
  }
}

for (const [family, pattern] of Object.entries(FAMILIES)) {
  Deno.test(`v2 peers: ${family}`, async (t) => {
    const cases = (await v2Cases()).filter((c) => pattern.test(c.meta.case));
    assert.ok(cases.length > 0, `no case matches ${pattern}`);
    for (const c of cases) await t.step(c.name, () => checkCase(c));
  });
}

Deno.test("v2 peers: the matrix covers what the v2 reader translates", async () => {
  const cases = await v2Cases();
  const orphans = cases.filter((c) => !Object.values(FAMILIES).some((f) => f.test(c.meta.case)));
  assert.deepEqual(orphans.map((c) => c.name), [], "cases not covered by any family");
  const metas = cases.map((c) => c.meta);
  const has = (f: (m: V2Meta) => boolean, what: string) => assert.ok(metas.some(f), what);
  for (const lib of ["zarr", "tensorstore"]) {
    for (const order of ["C", "F"]) {
      has((m) => m.lib === lib && m.order === order, `${lib} order ${order}`);
    }
    for (const sep of [".", "/"]) has((m) => m.lib === lib && m.separator === sep, `${lib} ${sep}`);
    has((m) => m.lib === lib && m.fill_json === null, `${lib} fill null`);
    has((m) => m.lib === lib && m.fill_json === "NaN", `${lib} fill NaN`);
  }
  assert.equal(new Set(metas.map((m) => m.dtype)).size, 12, "every dtype");
  const bigEndian = new Set(metas.filter((m) => m.v2_dtype.startsWith(">")).map((m) => m.dtype));
  assert.equal(bigEndian.size, 9, `big-endian dtypes: ${[...bigEndian]}`);
  const ids = new Set(metas.map((m) => m.compressor?.id ?? null));
  assert.deepEqual(
    [...ids].sort(),
    ["blosc", "gzip", "lz4", "zlib", "zstd", null].sort(),
    "compressors",
  );
  const blosc = metas.filter((m) => m.compressor?.id === "blosc").map((m) => m.compressor!);
  for (const cname of ["lz4", "zstd", "blosclz", "zlib", "lz4hc"]) {
    assert.ok(blosc.some((b) => b.cname === cname), `blosc ${cname}`);
  }
  for (const shuffle of [0, 1, 2, -1]) {
    for (const size of [1, 2, 4, 8]) {
      assert.ok(
        metas.some((m) =>
          m.compressor?.id === "blosc" && m.compressor.shuffle === shuffle &&
          Number(m.v2_dtype.slice(2)) === size
        ),
        `blosc shuffle ${shuffle} with typesize ${size}`,
      );
    }
  }
  for (const rank of [0, 1, 2, 3, 4]) has((m) => m.shape.length === rank, `rank ${rank}`);
  has((m) => m.absent.outer > 0, "missing chunks");
  has((m) => m.shape.some((s, d) => s % m.chunks[d] !== 0), "partial edge chunks");
  has((m) => m.dimension_names !== null, "_ARRAY_DIMENSIONS");
});

Deno.test("v2 peers: casts of v2 arrays against the cast oracle", async (t) => {
  const names = [
    "zarr-forder-bigendian-f64",
    "tensorstore-fill-null-i32",
    "zarr-blosc-lz4-auto-ts8",
    "tensorstore-fill-nan-f32",
    "zarr-fill-max-u64",
  ];
  for (const name of names) {
    await t.step(name, async () => {
      const c = await v2Case(name);
      const { meta } = c;
      using img = await open(c.store);
      const rng = mulberry32(seedOf(`v2 cast ${name}`));
      for (const to of ["float32", "int16", "uint8", "float16"] as const) {
        const sels = randomSelections(rng, meta.shape, meta.chunks);
        const ref = sliceReference(c.expected, meta.dtype, meta.shape, sels);
        using view = await img.scan().select(selectionByName(img.axes, sels)).cast(to).collect();
        assertElementsEqual(bytesOf(view.data()), castReference(ref.bytes, meta.dtype, to), to, {
          shape: ref.shape,
          anyNaN: true,
          label: `${name} ${meta.dtype} → ${to}`,
        });
      }
    });
  }
});

// ---------------------------------------------------------------------------
// errors

/** Rewrites `<store>/<file>` (a JSON file) through `edit`. */
async function editV2(
  store: string,
  file: string,
  edit: (json: Record<string, unknown>) => void,
): Promise<void> {
  const path = join(store, file);
  const json = JSON.parse(await Deno.readTextFile(path));
  edit(json);
  await Deno.writeTextFile(path, JSON.stringify(json));
}

/** Awaits `fn`, which must reject with `cls` and a message containing every fragment. */
async function expectError(
  fn: () => Promise<unknown>,
  cls: new (...args: never[]) => Error,
  ...fragments: string[]
): Promise<void> {
  const error = await fn().then(() => undefined, (e) => e);
  assert.ok(error instanceof cls, `expected ${cls.name}, got ${error}`);
  for (const f of fragments) {
    assert.ok(error.message.includes(f), `message ${JSON.stringify(error.message)} lacks ${f}`);
  }
}

Deno.test("v2 errors: unsupported features name the feature and the file", async (t) => {
  const source = await v2Case("zarr-dtype-int16");
  const before = await snapshotTree(source.store);
  const root = await tempDir("tessera-v2-errors-");
  let n = 0;
  const variant = async (edit: (j: Record<string, unknown>) => void, file = ".zarray") => {
    const store = join(root, `v${n++}`);
    await copyTree(source.store, store);
    await editV2(store, file, edit);
    return store;
  };
  const rejects = async (
    edit: (j: Record<string, unknown>) => void,
    cls: new (...args: never[]) => Error,
    ...fragments: string[]
  ) => {
    const store = await variant(edit);
    await expectError(() => open(store), cls, join(store, ".zarray"), ...fragments);
    await expectError(() => info(store), cls, join(store, ".zarray"), ...fragments);
  };

  for (const dtype of ["<c8", "|S10", "<U4", "<M8[ns]", "|O", "|V8", "<f16", ">c16"]) {
    await t.step(`dtype ${dtype}`, () =>
      rejects(
        (j) => {
          j.dtype = dtype;
        },
        StorageError,
        JSON.stringify(dtype),
        "not supported",
      ));
  }
  await t.step("structured dtype", () =>
    rejects(
      (j) => {
        j.dtype = [["a", "<i4"], ["b", "<f4"]];
      },
      StorageError,
      "structured dtype",
    ));
  await t.step("filters", async () => {
    await rejects(
      (j) => {
        j.filters = [{ id: "delta", dtype: "<i2" }];
      },
      StorageError,
      '"delta"',
      "not supported",
    );
    await rejects(
      (j) => {
        j.filters = [{ id: "fixedscaleoffset", offset: 0, scale: 1, dtype: "<i2" }, {
          id: "shuffle",
          elementsize: 2,
        }];
      },
      StorageError,
      '"fixedscaleoffset"',
      '"shuffle"',
    );
  });
  for (const id of ["bz2", "lzma", "zfpy", "blosc2", "imagecodecs_jpeg2k"]) {
    await t.step(`compressor ${id}`, () =>
      rejects(
        (j) => {
          j.compressor = { id, level: 1 };
        },
        StorageError,
        `compressor "${id}"`,
        "not supported",
      ));
  }
  await t.step("blosc with an unknown cname or shuffle", async () => {
    await rejects(
      (j) => {
        j.compressor = { id: "blosc", cname: "brotli", clevel: 5, shuffle: 1 };
      },
      StorageError,
      "brotli",
    );
    await rejects(
      (j) => {
        j.compressor = { id: "blosc", cname: "lz4", clevel: 5, shuffle: 3 };
      },
      StorageError,
      "shuffle",
    );
  });
  await t.step("malformed .zarray fields", async () => {
    await rejects(
      (j) => {
        j.order = "K";
      },
      StorageError,
      "order",
    );
    await rejects(
      (j) => {
        j.dimension_separator = "-";
      },
      StorageError,
      "dimension_separator",
    );
    await rejects(
      (j) => {
        j.zarr_format = 3;
      },
      StorageError,
      "zarr_format",
    );
    await rejects(
      (j) => {
        j.chunks = [8];
      },
      StorageError,
      "rank",
    );
    await rejects(
      (j) => {
        j.chunks = [0, 8];
      },
      StorageError,
      "chunks",
    );
    await rejects(
      (j) => {
        j.fill_value = 40000;
      },
      StorageError,
      "fill_value 40000",
      "int16",
    );
    await rejects(
      (j) => {
        j.fill_value = "NaN";
      },
      StorageError,
      "fill_value",
    );
  });
  await t.step("invalid JSON in .zarray and .zattrs", async () => {
    const store = await variant(() => {});
    await Deno.writeTextFile(join(store, ".zarray"), "{ not json");
    await expectError(() => open(store), StorageError, join(store, ".zarray"), "JSON");
    const store2 = await variant(() => {});
    await Deno.writeTextFile(join(store2, ".zattrs"), "[1, 2]");
    await expectError(() => open(store2), StorageError, join(store2, ".zattrs"));
  });
  await t.step("_ARRAY_DIMENSIONS that do not match the shape", async () => {
    const store = await variant((j) => {
      j._ARRAY_DIMENSIONS = ["x"];
    }, ".zattrs");
    await expectError(() => open(store), StorageError, join(store, ".zattrs"), "_ARRAY_DIMENSIONS");
  });
  await t.step("filters: [] and missing optional fields read normally", async () => {
    const store = await variant((j) => {
      j.filters = [];
      delete j.dimension_separator;
      delete j.order;
    });
    using img = await open(store);
    using view = await img.scan().collect();
    assertElementsEqual(view.data(), source.expected, "int16");
  });
  await t.step("a corrupt chunk → DecodeError naming the chunk", async () => {
    const store = await variant(() => {});
    await Deno.writeFile(join(store, "1.1"), new Uint8Array([1, 2, 3, 4, 5]));
    using img = await open(store);
    await expectError(() => img.scan().collect(), DecodeError, "1.1");
  });
  await t.step(
    "a v2 group without multiscales → NotFound; bad .zgroup → StorageError",
    async () => {
      const group = join(root, "group");
      await Deno.mkdir(group);
      await Deno.writeTextFile(join(group, ".zgroup"), '{"zarr_format": 2}');
      await copyTree(source.store, join(group, "arr"));
      await expectError(() => open(group), NotFound, group, "multiscales");
      using img = await open(join(group, "arr"));
      assert.deepEqual(img.shape, source.meta.shape);
      await Deno.writeTextFile(join(group, ".zgroup"), '{"zarr_format": 3}');
      await expectError(() => open(group), StorageError, join(group, ".zgroup"), "zarr_format");
    },
  );
  assert.deepEqual(await snapshotTree(source.store), before, "the peer store is unchanged");
});
