/**
 * Real DLPack consumers and producers in the same process: CPython is
 * embedded through python.ts, NumPy (from the test venv) imports tessera's
 * views and exports arrays that tessera imports, with no copies.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { open, type TensorView, writeOmeZarr } from "../mod.ts";
import { Python } from "../python.ts";
import { ensurePythonEnv } from "../scripts/python_env.ts";
import { tempDir } from "./helpers.ts";

/** The embedded interpreter, with the test venv's packages on its path. */
async function python(): Promise<Python> {
  const venvPython = await ensurePythonEnv();
  const out = await new Deno.Command(venvPython, {
    args: ["-c", "import site, sys; print(site.getsitepackages()[0]); print(sys.version_info[1])"],
    stdout: "piped",
  }).output();
  const [sitePackages, minor] = new TextDecoder().decode(out.stdout).trim().split("\n");
  const library = [
    `/usr/lib/x86_64-linux-gnu/libpython3.${minor}.so.1.0`,
    `/usr/lib/aarch64-linux-gnu/libpython3.${minor}.so.1.0`,
    `/usr/local/lib/libpython3.${minor}.so.1.0`,
  ].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (!library) {
    throw new Error(
      `no shared libpython3.${minor} to embed; install it (Debian: apt-get install libpython3.${minor})`,
    );
  }
  const py = Python.load({ library, sitePackages: [sitePackages] });
  py.exec("import numpy as np, ctypes");
  return py;
}

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

/** The view's elements in C order of its shape, as plain numbers. */
function valuesOf(view: TensorView): number[] {
  const out: number[] = [];
  const index = view.shape.map(() => 0);
  const n = view.shape.reduce((a, b) => a * b, 1);
  for (let k = 0; k < n; k++) {
    out.push(Number(view.at(...index)));
    for (let d = view.shape.length - 1; d >= 0; d--) {
      if (++index[d] < view.shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
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
