/**
 * Real DLPack consumers and producers in the same process: CPython is
 * embedded through python.ts, NumPy (from the test venv) imports tessera's
 * views and exports arrays that tessera imports, with no copies.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { open, type TensorView, writeOmeZarr } from "../mod.ts";
import { embeddedPython as python } from "./embedded_python.ts";
import { tempDir, valuesOf } from "./helpers.ts";

async function sample(): Promise<string> {
  const dir = await tempDir("tessera-py-");
  const path = join(dir, "img.ome.zarr");
  const data = Uint16Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => (i * 7919) % 65536);
  await writeOmeZarr(path, data, {
    axes: ["c", "z", "y", "x"],
    shape: [2, 3, 4, 5],
    dtype: "uint16",
    chunks: [1, 2, 2, 2],
    shards: [1, 2, 4, 4],
  });
  return path;
}

Deno.test("numpy.from_dlpack sees tessera's memory: same address, same values, after the view is gone", async (t) => {
  const py = await python();
  using img = await open(await sample());
  for (const dtype of ["uint16", "float32", "float64", "int8", "float16"] as const) {
    for (const versioned of [true, false]) {
      await t.step(`${dtype}, ${versioned ? "versioned" : "legacy"} capsule`, async () => {
        using base = await img.scan().select({ z: [0, 3, 2] }).cast(dtype).collect();
        const variants: [string, TensorView][] = [
          ["contiguous", base.withLayout("CZYX")],
          ["permuted", base.withLayout("YXCZ")],
          ["reversed", base.flip("x").select({ c: 1 })],
        ];
        for (const [name, view] of variants) {
          const expected = valuesOf(view);
          py.bind("t", view, { versioned });
          py.exec("a = np.from_dlpack(t)");
          assert.equal(py.eval("a.dtype.name"), dtype, name);
          assert.equal(py.eval("list(a.shape)"), `[${view.shape.join(", ")}]`, name);
          assert.equal(BigInt(py.eval("a.ctypes.data")), view.address, `${name}: zero copy`);
          const capsuleName = versioned ? "used_dltensor_versioned" : "used_dltensor";
          py.exec(
            "_gn = ctypes.pythonapi.PyCapsule_GetName; _gn.restype = ctypes.c_char_p; " +
              "_gn.argtypes = [ctypes.py_object]; cap_name = _gn(t.capsule).decode()",
          );
          assert.equal(py.eval("cap_name"), capsuleName, `${name}: numpy renamed the capsule`);
          view[Symbol.dispose](); // numpy's reference keeps the memory alive
          assert.deepEqual(
            JSON.parse(py.eval("__import__('json').dumps(a.astype('float64').ravel().tolist())")),
            expected,
            name,
          );
          py.exec("del a, t");
        }
      });
    }
  }
});

Deno.test("fromDLPack imports numpy arrays without a copy", async (t) => {
  const py = await python();
  const cases: [string, string][] = [
    ["uint16 C order", "np.arange(24, dtype=np.uint16).reshape(2, 3, 4)"],
    ["float32 transposed", "np.arange(12, dtype=np.float32).reshape(3, 4).T"],
    ["int64 reversed", "np.arange(10, dtype=np.int64)[::-2]"],
    ["float64 sliced", "np.linspace(0, 1, 30).reshape(5, 6)[1:4, ::3]"],
    ["bool", "np.array([[True, False, True], [False, False, True]])"],
  ];
  for (const [name, expression] of cases) {
    for (const versioned of [true, false]) {
      await t.step(`${name}, ${versioned ? "versioned" : "legacy"}`, () => {
        py.exec(`src = ${expression}`);
        const expected = JSON.parse(
          py.eval("__import__('json').dumps(src.astype('float64').ravel().tolist())"),
        );
        const address = BigInt(py.eval("src.ctypes.data"));
        using view = py.importTensor("src", { versioned });
        assert.equal(view.address, address, "zero copy");
        assert.deepEqual(view.shape, JSON.parse(py.eval("list(src.shape)")));
        py.exec("del src"); // the managed tensor keeps numpy's memory alive until the view goes
        assert.deepEqual(valuesOf(view), expected);
      });
    }
  }
});

Deno.test("torch.from_dlpack sees tessera's memory, bfloat16 included; torch tensors import back", async (t) => {
  const py = await python();
  py.exec("import torch, json");
  using img = await open(await sample());
  for (
    const dtype of [
      "uint8",
      "int16",
      "int32",
      "int64",
      "float16",
      "bfloat16",
      "float32",
      "float64",
    ] as const
  ) {
    await t.step(`export ${dtype}`, async () => {
      using base = await img.scan().select({ c: 1 }).cast(dtype).collect();
      const view = base.withLayout("YXZ");
      const expected = valuesOf(view);
      py.bind("t", view);
      py.exec("a = torch.from_dlpack(t)");
      assert.equal(py.eval("str(a.dtype)"), `torch.${dtype}`);
      assert.deepEqual(JSON.parse(py.eval("json.dumps(list(a.stride()))")), view.strides);
      assert.equal(BigInt(py.eval("a.data_ptr()")), view.address, "zero copy");
      view[Symbol.dispose]();
      const got = JSON.parse(py.eval("json.dumps(a.to(torch.float64).flatten().tolist())"));
      // bfloat16 values went through tessera's rounding; compare with what torch reads of the same bits.
      assert.deepEqual(got, expected.map((v) => dtype === "bfloat16" ? bf16ToNumber(v) : v));
      py.exec("del a, t");
    });
  }
  await t.step("import a permuted torch tensor", () => {
    py.exec("src = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4).permute(2, 0, 1)");
    const expected = JSON.parse(py.eval("json.dumps(src.flatten().tolist())"));
    using view = py.importTensor("src");
    assert.equal(view.address, BigInt(py.eval("src.data_ptr()")));
    assert.deepEqual(view.strides, JSON.parse(py.eval("json.dumps(list(src.stride()))")));
    py.exec("del src");
    assert.deepEqual(valuesOf(view), expected);
  });
});

/** The number a bfloat16 bit pattern (as tessera's view reports it: raw bits) stands for. */
function bf16ToNumber(bits: number): number {
  return new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
}
