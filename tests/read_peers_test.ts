/**
 * Reads every array written by tensorstore and zarr-python (tests/interop/peers.py)
 * and compares tessera's results with the peers' data and with the reference
 * slicer and cast oracle of tests/helpers.ts.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type DType, open, StorageError } from "../mod.ts";
import {
  assertElementsEqual,
  bytesOf,
  castReference,
  cellShape,
  copyTree,
  editJson,
  expectedAxes,
  mulberry32,
  type PeerCase,
  peerCase,
  peerCases,
  randInt,
  randomSelections,
  runPython,
  seedOf,
  selectionByName,
  sliceReference,
  tempDir,
} from "./helpers.ts";

const SELECTIONS_PER_CASE = 20;

/** Case families by case name (the part after `<lib>-`). */
const FAMILIES: Record<string, RegExp> = {
  "every dtype (2-D sharded)": /^dtype-/,
  "plain chunks": /^plain-/,
  "big-endian": /^bigendian-/,
  "sharded shapes (1-D, 3-D, 5-D, shard = inner, shard > array)": /^shard-/,
  "fill values (NaN, non-zero, bool true)": /^(nan-fill|fill|bool-fill)-/,
};

function familyOf(c: PeerCase): string | undefined {
  return Object.keys(FAMILIES).find((f) => FAMILIES[f].test(c.meta.case));
}

async function checkCase(c: PeerCase): Promise<void> {
  const { meta } = c;
  using img = await open(c.store);
  assert.deepEqual(img.axes, expectedAxes(meta), "axes");
  assert.deepEqual(img.shape, meta.shape, "shape");
  assert.equal(img.dtype, meta.dtype, "dtype");
  assert.equal(img.levels.length, 1, "a plain array has one level");

  {
    using view = await img.scan().collect();
    assert.deepEqual(view.shape, meta.shape, "full read shape");
    assert.deepEqual(view.axes, expectedAxes(meta), "full read axes");
    assert.equal(view.dtype, meta.dtype, "full read dtype");
    assertElementsEqual(view.data(), c.expected, meta.dtype, {
      shape: meta.shape,
      label: `${c.name} full read vs data.bin`,
    });
    // at() agrees with data() at the corners and a few random places
    const data = view.data() as ArrayLike<number | bigint>;
    const strides = view.strides;
    const rngAt = mulberry32(seedOf(`at ${c.name}`));
    const probes = [meta.shape.map(() => 0), meta.shape.map((n) => n - 1)];
    for (let k = 0; k < 5; k++) probes.push(meta.shape.map((n) => randInt(rngAt, 0, n - 1)));
    for (const idx of probes) {
      const flat = idx.reduce((a, v, d) => a + v * strides[d], 0);
      assert.ok(Object.is(view.at(...idx), data[flat]), `${c.name} at(${idx})`);
    }
  }

  const rng = mulberry32(seedOf(c.name));
  for (let k = 0; k < SELECTIONS_PER_CASE; k++) {
    const sels = randomSelections(rng, meta.shape, cellShape(meta));
    const expected = sliceReference(c.expected, meta.dtype, meta.shape, sels);
    const selection = selectionByName(img.axes, sels);
    const label = `${c.name} selection ${JSON.stringify(selection)}`;
    using view = await img.scan().select(selection).collect();
    assert.deepEqual(view.shape, expected.shape, `${label}: shape`);
    assert.deepEqual(
      view.axes,
      img.axes.filter((_, d) => typeof sels[d] !== "number"),
      `${label}: axes`,
    );
    assertElementsEqual(view.data(), expected.bytes, meta.dtype, { shape: expected.shape, label });
  }
}

for (const [family, pattern] of Object.entries(FAMILIES)) {
  Deno.test(`peers: ${family}`, async (t) => {
    const cases = (await peerCases()).filter((c) => pattern.test(c.meta.case));
    assert.ok(cases.length > 0, `no case matches ${pattern}`);
    for (const c of cases) {
      await t.step(c.name, () => checkCase(c));
    }
  });
}

Deno.test("dimension_names: lower-cased, null entries named d<i>, repeats rejected", async () => {
  const c = await peerCase("zarr-dtype-int16"); // dimension_names ["y", "x"]
  const root = await tempDir("tessera-dims-");
  const variants: [unknown, string[] | null][] = [
    [["Y", "X"], ["y", "x"]],
    [["Row", null], ["row", "d1"]],
    [null, ["d0", "d1"]],
    [["y", "Y"], null], // repeat after lower-casing
  ];
  for (const [i, [names, axes]] of variants.entries()) {
    const store = join(root, `v${i}`);
    await copyTree(c.store, store);
    await editJson(store, (j) => {
      if (names === null) delete j.dimension_names;
      else j.dimension_names = names;
    });
    if (axes === null) {
      await assert.rejects(() => open(store), StorageError, `dimension_names ${names}`);
      continue;
    }
    using img = await open(store);
    assert.deepEqual(img.axes, axes, `dimension_names ${JSON.stringify(names)}`);
    using view = await img.scan().select({ [axes[0].toUpperCase()]: [1, 5], [axes[1]]: -1 })
      .collect();
    const ref = sliceReference(c.expected, "int16", c.meta.shape, [[1, 5], -1]);
    assertElementsEqual(view.data(), ref.bytes, "int16");
  }
});

Deno.test("peers: every case belongs to a family and both libraries wrote it", async () => {
  const cases = await peerCases();
  const orphans = cases.filter((c) => familyOf(c) === undefined).map((c) => c.name);
  assert.deepEqual(orphans, [], "cases not covered by any family");
  const names = new Set(cases.map((c) => c.meta.case));
  for (const name of names) {
    for (const lib of ["tensorstore", "zarr"]) {
      assert.ok(cases.some((c) => c.name === `${lib}-${name}`), `${lib}-${name} missing`);
    }
  }
  // the matrix covers what the read tests rely on
  const dtypes = new Set(cases.map((c) => c.meta.dtype));
  assert.equal(dtypes.size, 12, `dtypes covered: ${[...dtypes]}`);
  const ranks = new Set(cases.map((c) => c.meta.shape.length));
  for (const r of [1, 2, 3, 5]) assert.ok(ranks.has(r), `rank ${r} covered`);
  assert.ok(cases.some((c) => c.meta.endian === "big"), "big-endian covered");
  assert.ok(cases.some((c) => c.meta.inner === null), "plain chunks covered");
  assert.ok(cases.some((c) => c.meta.absent.outer > 0), "missing shards covered");
  assert.ok(cases.some((c) => c.meta.absent.inner > 0), "missing inner chunks covered");
});

// ---------------------------------------------------------------------------
// casts

const CAST_TARGETS: DType[] = ["float32", "float64", "int32", "uint8", "float16", "bfloat16"];

/** Cases cast to every target: every source dtype, NaN / non-zero / true fills, big-endian, 5-D. */
const CAST_CASES = [
  ...[
    "bool",
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
  ].map((d) => `tensorstore-dtype-${d}`),
  "zarr-nan-fill-shard-f32",
  "zarr-nan-fill-plain-f64",
  "tensorstore-bigendian-plain-zstd-f64",
  "zarr-fill-plain-f16",
  "zarr-shard-5d-u16",
  "tensorstore-bool-fill-true-shard",
  "zarr-fill-shard-u32",
  "tensorstore-plain-bytes-1d-i32",
];

Deno.test("peers: casts against the cast oracle", async (t) => {
  for (const name of CAST_CASES) {
    await t.step(name, async () => {
      const c = await peerCase(name);
      const { meta } = c;
      using img = await open(c.store);
      const rng = mulberry32(seedOf(`cast ${name}`));
      for (const to of CAST_TARGETS) {
        // whole array, then a random selection (cast fused with striding)
        const sels = [
          meta.shape.map(() => undefined),
          randomSelections(rng, meta.shape, cellShape(meta)),
        ];
        for (const s of sels) {
          const ref = sliceReference(c.expected, meta.dtype, meta.shape, s);
          const expected = castReference(ref.bytes, meta.dtype, to);
          const selection = selectionByName(img.axes, s);
          using view = await img.scan().select(selection).cast(to).collect();
          assert.equal(view.dtype, to);
          assert.deepEqual(view.shape, ref.shape);
          assertElementsEqual(bytesOf(view.data()), expected, to, {
            shape: ref.shape,
            anyNaN: true,
            label: `${name} ${meta.dtype} → ${to} ${JSON.stringify(selection)}`,
          });
        }
      }
    });
  }
});

Deno.test("cast float64 → float16 rounds once, as numpy and Float16Array do", async () => {
  // Values just off a float16 rounding tie: rounding to float32 first lands
  // exactly on the tie, and the second rounding (ties to even) goes the other
  // way, so a float64 → float32 → float16 path differs from a direct rounding.
  const values = [
    1 + 3 * 2 ** -11 - 2 ** -30, // direct: 1.0009765625; via float32: 1.001953125
    1 + 2 ** -11 + 2 ** -30, // direct: 1.0009765625; via float32: 1
    -(1 + 3 * 2 ** -11 - 2 ** -30),
    1000 + 0.25 + 2 ** -40, // direct: 1000.5; via float32: 1000
  ];
  const dir = await tempDir("tessera-f16-");
  const store = join(dir, "f64.zarr");
  const numpyBits = await runPython([
    "-c",
    `import sys, json, numpy as np, zarr
a = np.array(json.loads(sys.argv[2]), dtype=np.float64)
assert a.tolist() == json.loads(sys.argv[2])
z = zarr.create_array(store=sys.argv[1], shape=a.shape, dtype="float64", chunks=a.shape)
z[:] = a
print(json.dumps(a.astype(np.float16).view(np.uint16).tolist()))`,
    store,
    JSON.stringify(values),
  ]);
  const expected = new Uint16Array(JSON.parse(numpyBits));
  // the oracle agrees with numpy
  assertElementsEqual(
    castReference(new Uint8Array(new Float64Array(values).buffer), "float64", "float16"),
    expected,
    "float16",
    { label: "oracle vs numpy" },
  );
  using img = await open(store);
  using view = await img.scan().cast("float16").collect();
  assertElementsEqual(view.data(), expected, "float16", { label: `cast of ${values}` });
});
