/**
 * Arrow export: apache-arrow JS tables over tensor memory, the Arrow C Data
 * Interface into pyarrow embedded in this process, and IPC files read by
 * pyarrow in another process — each checked for the fixed-shape-tensor
 * extension type, its dim names and permutation, and the values.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { tableToIPC } from "apache-arrow";
import { open, type TensorView, writeOmeZarr } from "../mod.ts";
import { ensurePythonEnv } from "../scripts/python_env.ts";
import { embeddedPython } from "./embedded_python.ts";
import { tempDir, valuesOf } from "./helpers.ts";

async function image() {
  const dir = await tempDir("tessera-arrow-");
  const path = join(dir, "img.ome.zarr");
  const data = Uint16Array.from({ length: 3 * 4 * 5 * 6 }, (_, i) => (i * 31) % 1000);
  await writeOmeZarr(path, data, {
    axes: ["c", "z", "y", "x"],
    shape: [3, 4, 5, 6],
    dtype: "uint16",
    chunks: [1, 2, 2, 3],
    shards: [1, 4, 4, 6],
    channels: [{ name: "DAPI" }, { name: "GFP" }, { name: "RFP" }],
  });
  return open(path);
}

/**
 * The logical tensors of a fixed-shape-tensor array, per the canonical
 * extension (logical axis i is physical axis permutation[i]). pyarrow 26's
 * own to_numpy_ndarray() gets the shape right but not the values of
 * permuted tensors, so the tests apply the definition themselves.
 */
const TO_LOGICAL = `
def to_logical(a):
    t = a.type
    phys = np.asarray(a.storage.flatten()).reshape([len(a)] + list(t.shape))
    perm = list(t.permutation) if t.permutation is not None else list(range(len(t.shape)))
    return phys.transpose([0] + [p + 1 for p in perm])
`;
const LOGICAL = "to_logical";

Deno.test("toArrow: a fixed-shape-tensor column over the view's memory", async () => {
  using img = await image();
  using view = await img.scan().select({ z: 1 }).cast("float32").collect(); // CYX
  using permuted = view.withLayout("YXC");
  const table = permuted.toArrow({ channels: img.channels });
  const field = table.schema.fields[0];
  assert.equal(field.metadata.get("ARROW:extension:name"), "arrow.fixed_shape_tensor");
  assert.deepEqual(JSON.parse(field.metadata.get("ARROW:extension:metadata")!), {
    shape: [3, 5, 6],
    dim_names: ["c", "y", "x"],
    permutation: [1, 2, 0],
  });
  assert.deepEqual(JSON.parse(field.metadata.get("tessera:channels")!), ["DAPI", "GFP", "RFP"]);
  const values = table.getChild("tensor")!.data[0].children[0].values as Float32Array;
  assert.equal(
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(values))),
    view.address,
    "zero copy",
  );
  permuted[Symbol.dispose]();
  view[Symbol.dispose](); // the table holds its own reference
  assert.equal(
    values[7],
    Number((await img.scan().select({ z: 1, c: 0, y: 1, x: 1 }).collect()).at()),
  );
  using flipped = (await img.scan().collect()).flip("x");
  assert.throws(() => flipped.toArrow(), /contiguous\(\)/);
});

Deno.test("Arrow C Data Interface: pyarrow imports the tensor without a copy", async (t) => {
  const py = await embeddedPython();
  py.exec("import pyarrow as pa, numpy as np, json");
  py.exec(TO_LOGICAL);
  using img = await image();
  const cases: [string, (v: TensorView) => TensorView, string | undefined][] = [
    ["C order", (v) => v.withLayout("CZYX"), undefined],
    ["permuted", (v) => v.withLayout("ZYXC"), undefined],
    ["rows along c", (v) => v.withLayout("CZYX"), "c"],
  ];
  for (const [name, make, rowAxis] of cases) {
    await t.step(name, async () => {
      using base = await img.scan().collect();
      const view = make(base);
      const expected = valuesOf(view);
      using exported = view.toArrowC({ rowAxis, channels: img.channels });
      py.exec(`a = pa.Array._import_from_c(${exported.arrayAddress}, ${exported.schemaAddress})`);
      assert.equal(py.eval("a.type.extension_name"), "arrow.fixed_shape_tensor");
      const dims = rowAxis ? view.axes.filter((a) => a !== rowAxis) : view.axes;
      assert.deepEqual(
        JSON.parse(py.eval("json.dumps(list(a.type.dim_names))")),
        rowAxis ? dims : ["c", "z", "y", "x"],
      );
      assert.equal(
        py.eval("a.storage.values.buffers()[1].address"),
        String(base.address),
        "zero copy",
      );
      view[Symbol.dispose]();
      base[Symbol.dispose](); // pyarrow's reference keeps the memory alive
      py.exec(`n = ${LOGICAL}(a)`);
      const shape = rowAxis ? [view.shape[0], ...view.shape.slice(1)] : [1, ...view.shape];
      assert.deepEqual(JSON.parse(py.eval("json.dumps(list(n.shape))")), shape);
      assert.deepEqual(
        JSON.parse(py.eval("json.dumps(n.astype('float64').ravel().tolist())")),
        expected,
      );
      py.exec("del a, n");
    });
  }
});

Deno.test("Arrow IPC files written from toArrow() read back in pyarrow", async () => {
  const python = await ensurePythonEnv();
  using img = await image();
  // A permuted view of z, y, x memory: physical names z, y, x; the logical order comes from `permutation`.
  using plane = await img.scan().select({ c: 2 }).collect();
  using view = plane.withLayout("YXZ");
  const dir = await tempDir("tessera-ipc-");
  const file = join(dir, "tensor.arrow");
  await Deno.writeFile(file, tableToIPC(view.toArrow({ name: "pixels" }), "file"));
  const script = `
import json, sys, numpy as np, pyarrow as pa
${TO_LOGICAL}
t = pa.ipc.open_file(sys.argv[1]).read_all()
col = t.column("pixels").combine_chunks()
n = to_logical(col)
print(json.dumps({"ext": col.type.extension_name, "dims": list(col.type.dim_names),
  "perm": list(col.type.permutation or []), "shape": list(n.shape), "values": n.astype("float64").ravel().tolist()}))
`;
  const out = await new Deno.Command(python, {
    args: ["-c", script, file],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const got = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(got.ext, "arrow.fixed_shape_tensor");
  assert.deepEqual(got.dims, ["z", "y", "x"]);
  assert.deepEqual(got.perm, [1, 2, 0]);
  assert.deepEqual(got.shape, [1, 5, 6, 4]);
  assert.deepEqual(got.values, valuesOf(view));
});
