/**
 * Layout algebra, zero-copy view operations, contiguous copies and DLPack
 * export/import, checked against values computed here from the data the
 * test wrote (element value = its C-order index in the store).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createArray,
  fromDLPack,
  InvalidArgument,
  open,
  type TensorView,
  writeOmeZarr,
} from "../mod.ts";
import { dtypeSize, typedArray } from "../src/dtype.ts";
import { tempDir } from "./helpers.ts";

const SHAPE = [2, 3, 4, 5, 6]; // t c z y x
const STRIDES = [360, 120, 30, 6, 1];

async function image() {
  const dir = await tempDir("tessera-views-");
  const path = join(dir, "img.ome.zarr");
  const data = Uint16Array.from({ length: 720 }, (_, i) => i);
  await writeOmeZarr(path, data, {
    axes: ["t", "c", "z", "y", "x"],
    shape: SHAPE,
    dtype: "uint16",
    chunks: [1, 1, 2, 2, 4],
    shards: [1, 1, 4, 4, 4],
  });
  return open(path);
}

/** Store index of an element given its coordinates by axis name. */
function storeIndex(coords: Record<string, number>): number {
  return ["t", "c", "z", "y", "x"].reduce((acc, a, i) => acc + (coords[a] ?? 0) * STRIDES[i], 0);
}

/** Checks every element of `view` against the store index its coordinates name (`fixed` for dropped axes). */
function assertMatchesStore(
  view: TensorView,
  fixed: Record<string, number>,
  map: (axis: string, i: number) => number = (_, i) => i,
) {
  const n = view.shape.reduce((a, b) => a * b, 1);
  for (let flat = 0; flat < n; flat++) {
    let rest = flat;
    const index: number[] = [];
    const coords: Record<string, number> = { ...fixed };
    for (let d = view.shape.length - 1; d >= 0; d--) {
      index[d] = rest % view.shape[d];
      rest = Math.floor(rest / view.shape[d]);
      coords[view.axes[d]] = map(view.axes[d], index[d]);
    }
    assert.equal(view.at(...index), storeIndex(coords), `[${index}] of ${view.layout}`);
  }
}

Deno.test("query layouts are fused into assembly", async (t) => {
  using img = await image();
  await t.step("default: store order, or CYX when t and z are indices", async () => {
    using all = await img.scan().collect();
    assert.equal(all.layout, "TCZYX");
    using plane = await img.scan().select({ t: 1, z: 2 }).collect();
    assert.equal(plane.layout, "CYX");
    assert.deepEqual(plane.shape, [3, 5, 6]);
    assertMatchesStore(plane, { t: 1, z: 2 });
  });
  await t.step("permutations, aliases, and single-index axes kept as size 1", async () => {
    using zyxc = await img.scan().select({ t: 0 }).layout("ZYXC").collect();
    assert.deepEqual(zyxc.shape, [4, 5, 6, 3]);
    assert.ok(zyxc.isContiguous());
    assertMatchesStore(zyxc, { t: 0 });
    using chw = await img.scan().select({ t: 1, z: 3 }).layout("HWC").collect();
    assert.deepEqual(chw.axes, ["y", "x", "c"]);
    assertMatchesStore(chw, { t: 1, z: 3 });
    using tz = await img.scan().select({ t: 1, z: 3, x: [1, 6, 2] }).layout("TZCYX").collect();
    assert.deepEqual(tz.shape, [1, 1, 3, 5, 3]);
    assertMatchesStore(
      tz,
      { t: 1, z: 3 },
      (a, i) => a === "t" ? 1 : a === "z" ? 3 : a === "x" ? 1 + 2 * i : i,
    );
  });
  await t.step("a layout that leaves out a kept axis names it", async () => {
    await assert.rejects(img.scan().layout("CYX").collect(), (e: unknown) => {
      assert.ok(e instanceof InvalidArgument && /"t"/.test(e.message), String(e));
      return true;
    });
    assert.throws(() => img.scan().layout("TCZYQ"), InvalidArgument);
    assert.throws(() => img.scan().layout("TCZYXX"), InvalidArgument);
  });
});

Deno.test("views: withLayout, select, flip share memory; contiguous copies only when needed", async () => {
  using img = await image();
  using base = await img.scan().select({ t: 1 }).collect(); // CZYX
  using permuted = base.withLayout("ZYXC");
  assert.equal(permuted.address, base.address, "withLayout is zero copy");
  assert.ok(!permuted.isContiguous());
  assertMatchesStore(permuted, { t: 1 });
  using sub = base.select({ c: 2, y: [1, 5, 2], x: [-3, null] });
  assert.deepEqual(sub.shape, [4, 2, 3]);
  assertMatchesStore(sub, { t: 1, c: 2 }, (a, i) => a === "y" ? 1 + 2 * i : a === "x" ? 3 + i : i);
  using flipped = base.flip("x").slice("z", null, null, -2);
  assert.deepEqual(flipped.shape, [3, 2, 5, 6]);
  assert.ok(flipped.strides[3] < 0 && flipped.strides[1] < 0);
  assertMatchesStore(flipped, { t: 1 }, (a, i) => a === "x" ? 5 - i : a === "z" ? 3 - 2 * i : i);
  using same = await base.contiguous();
  assert.equal(same.address, base.address, "contiguous() of a packed view does not copy");
  using copy = await flipped.contiguous();
  assert.notEqual(copy.address, flipped.address, "contiguous() of a strided view copies");
  assert.ok(copy.isContiguous());
  assertMatchesStore(copy, { t: 1 }, (a, i) => a === "x" ? 5 - i : a === "z" ? 3 - 2 * i : i);
  assert.throws(() => flipped.data(), InvalidArgument);
  assert.throws(() => base.withLayout("ZYX"), /"c"/);
  // Disposing the source leaves derived views usable: each holds its own reference.
  base[Symbol.dispose]();
  assert.equal(permuted.at(0, 0, 0, 2), storeIndex({ t: 1, c: 2 }));
});

Deno.test("DLPack: export and import round trip, producer disposed first, every dtype", async (t) => {
  const dir = await tempDir("tessera-dlpack-");
  for (
    const dtype of [
      "uint8",
      "int16",
      "uint16",
      "int32",
      "float32",
      "float64",
      "int64",
      "bool",
    ] as const
  ) {
    await t.step(dtype, async () => {
      using writer = await createArray(join(dir, `${dtype}.zarr`), {
        shape: [3, 4],
        dtype,
        chunks: [2, 2],
      });
      const data = new Uint8Array(12 * dtypeSize(dtype));
      for (let i = 0; i < data.length; i++) data[i] = (i * 37) & (dtype === "bool" ? 1 : 0x7f);
      await writer.write(typedArray(dtype, data.buffer));
      using img = await open(join(dir, `${dtype}.zarr`));
      using view = await img.scan().collect();
      for (const versioned of [true, false]) {
        const transposed = view.withLayout("d1,d0");
        const pointer = transposed.toDLPack({ versioned });
        const address = transposed.address;
        transposed[Symbol.dispose](); // the capsule keeps the memory alive
        using back = fromDLPack(pointer, { versioned, axes: ["d1", "d0"] });
        assert.equal(back.dtype, dtype);
        assert.deepEqual(back.shape, [4, 3]);
        assert.deepEqual(back.strides, [1, 4]);
        assert.equal(back.address, address);
        for (let i = 0; i < 3; i++) {
          for (let j = 0; j < 4; j++) assert.equal(back.at(j, i), view.at(i, j));
        }
      }
    });
  }
});
