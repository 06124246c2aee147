/**
 * Arrow images imported without a copy through the C Data Interface, from
 * pyarrow and Pillow embedded in this process: fixed-shape tensors (with
 * and without a permutation), Pillow's fixed-size-list RGBA and flat "L"
 * layouts, and arrays that cannot be tensors.
 */

import assert from "node:assert/strict";
import { DtypeMismatch, fromArrowC, InvalidArgument } from "../mod.ts";
import { embeddedPython } from "./embedded_python.ts";
import { valuesOf } from "./helpers.ts";

/** Room for one ArrowSchema (72 bytes) and one ArrowArray (80 bytes). */
function structs() {
  const schema = new BigUint64Array(9);
  const array = new BigUint64Array(10);
  const addr = (b: BigUint64Array) => Deno.UnsafePointer.value(Deno.UnsafePointer.of(b));
  return { schema, array, s: addr(schema), a: addr(array) };
}

Deno.test("fromArrowC: pyarrow fixed-shape tensors, zero copy, released with the view", async () => {
  const py = await embeddedPython();
  py.exec("import pyarrow as pa, json");
  py.exec(`
flat = (np.arange(2 * 3 * 4 * 5) * 7 % 1000).astype(np.uint16)
t = pa.fixed_shape_tensor(pa.uint16(), [3, 4, 5], dim_names=["C", "Y", "X"])
arr = pa.ExtensionArray.from_storage(t, pa.FixedSizeListArray.from_arrays(pa.array(flat), 60))
addr = arr.storage.values.buffers()[1].address
`);
  const { s, a } = structs();
  py.exec(`arr._export_to_c(${a}, ${s}); del arr, t`);
  const { view, field } = fromArrowC(s, a);
  assert.equal(field.metadata["ARROW:extension:name"], "arrow.fixed_shape_tensor");
  assert.deepEqual(view.shape, [2, 3, 4, 5]);
  assert.equal(view.layout, "NCYX");
  assert.equal(view.dtype, "uint16");
  assert.equal(String(view.address), py.eval("addr"), "zero copy");
  assert.deepEqual(valuesOf(view), JSON.parse(py.eval("json.dumps(flat.tolist())")));
  view[Symbol.dispose]();

  py.exec(`
p = (np.arange(6) - 3).astype(np.int16)
t = pa.fixed_shape_tensor(pa.int16(), [2, 3], dim_names=["Y", "X"], permutation=[1, 0])
arr = pa.ExtensionArray.from_storage(t, pa.FixedSizeListArray.from_arrays(pa.array(p), 6))
`);
  const b = structs();
  py.exec(`arr._export_to_c(${b.a}, ${b.s}); del arr`);
  using permuted = fromArrowC(b.s, b.a).view;
  // logical axis i is physical axis permutation[i]: physical (y, x) seen as (x, y)
  assert.equal(permuted.layout, "XY");
  assert.deepEqual(permuted.shape, [3, 2]);
  assert.deepEqual(valuesOf(permuted), [-3, 0, -2, 1, -1, 2]);

  const strings = structs();
  py.exec(`pa.array(["a", "b"])._export_to_c(${strings.a}, ${strings.s})`);
  assert.throws(() => fromArrowC(strings.s, strings.a, { shape: [1, 2] }), DtypeMismatch);
  const nulls = structs();
  py.exec(`pa.array([1, None], pa.uint8())._export_to_c(${nulls.a}, ${nulls.s})`);
  assert.throws(() => fromArrowC(nulls.s, nulls.a, { shape: [1, 2] }), InvalidArgument);
});

Deno.test("fromArrowC: Pillow RGBA and L images (its Arrow layouts), zero copy", async () => {
  const py = await embeddedPython();
  py.exec("import pyarrow as pa, json");
  py.exec(`
from PIL import Image
rgba = (np.arange(5 * 7 * 4) * 13 % 251).astype(np.uint8).reshape(5, 7, 4)
im = pa.array(Image.fromarray(rgba, "RGBA"))
lum = pa.array(Image.fromarray(rgba[:, :, 1].copy(), "L"))
rgba_addr, lum_addr = im.values.buffers()[1].address, lum.buffers()[1].address
`);
  const c = structs();
  py.exec(`im._export_to_c(${c.a}, ${c.s}); del im`);
  const { view, bands } = fromArrowC(c.s, c.a, { shape: [5, 7] });
  assert.deepEqual(view.shape, [5, 7, 4]);
  assert.equal(view.layout, "YXC");
  assert.deepEqual(bands, ["R", "G", "B", "A"]);
  assert.equal(String(view.address), py.eval("rgba_addr"), "zero copy");
  assert.deepEqual(valuesOf(view), JSON.parse(py.eval("json.dumps(rgba.ravel().tolist())")));
  using green = view.select({ c: 1 });
  view[Symbol.dispose]();
  const l = structs();
  py.exec(`lum._export_to_c(${l.a}, ${l.s}); del lum`);
  using flat = fromArrowC(l.s, l.a, { shape: [5, 7] }).view;
  assert.equal(flat.layout, "YX");
  assert.equal(String(flat.address), py.eval("lum_addr"), "zero copy");
  assert.deepEqual(valuesOf(flat), valuesOf(green));
  const bad = structs();
  py.exec(`pa.array(Image.fromarray(rgba, "RGBA"))._export_to_c(${bad.a}, ${bad.s})`);
  assert.throws(() => fromArrowC(bad.s, bad.a, { shape: [6, 7] }), InvalidArgument);
  const noShape = structs();
  py.exec(`pa.array(Image.fromarray(rgba, "RGBA"))._export_to_c(${noShape.a}, ${noShape.s})`);
  assert.throws(() => fromArrowC(noShape.s, noShape.a), InvalidArgument);
});
