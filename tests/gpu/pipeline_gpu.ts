/**
 * GPU tests of the pipeline's CUDA path; they need a CUDA device, so they
 * are not part of `deno task test`:
 *
 *     deno task test:gpu
 *
 * Consumers come from the machine's own Python (`python3` on PATH, or
 * `TESSERA_GPU_PYTHON`), embedded in this process: torch (and cupy for
 * float32) import the batches through DLPack. Stores are written by
 * tessera (zstd, sharded and plain), so no network access is needed.
 *
 * - batches on cuda:0 equal the CPU executor's bit for bit, for every
 *   source dtype and both output dtypes, samples crossing every edge;
 * - torch.from_dlpack and cupy.from_dlpack see the device pointer;
 * - a DLPack consumer keeps a released batch alive;
 * - 1000 batches leave no live batches and device memory where it started.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createArray, type DType, pipeline, type PipelineBatch } from "../../mod.ts";
import { Python } from "../../python.ts";

const SOURCES: DType[] = [
  "uint8",
  "int8",
  "uint16",
  "int16",
  "uint32",
  "int32",
  "float16",
  "float32",
];
const SAMPLE = [9, 11, 10];

async function systemPython(): Promise<Python> {
  const python = Deno.env.get("TESSERA_GPU_PYTHON") ?? "python3";
  const out = await new Deno.Command(python, {
    args: [
      "-c",
      "import site, sysconfig; print(site.getsitepackages()[0]); " +
      "print(sysconfig.get_config_var('LIBDIR') + '/' + sysconfig.get_config_var('LDLIBRARY'))",
    ],
    stdout: "piped",
  }).output();
  if (!out.success) throw new Error(`${python} could not report its site-packages`);
  const [site, library] = new TextDecoder().decode(out.stdout).trim().split("\n");
  const py = Python.load({ library, sitePackages: [site] });
  py.exec(`
import hashlib, torch
class CudaTensor:
    """A DLPack provider over a legacy capsule of device memory."""
    def __init__(self, address, device_id):
        self.capsule = _new(address, b"dltensor", None)
        self.device_id = device_id
    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        return self.capsule
    def __dlpack_device__(self):
        return (2, self.device_id)
`);
  return py;
}

/** Writes one 3-D array per source dtype, with values that exercise the casts. */
async function stores(): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "tessera-gpu-" });
  const shape = [21, 34, 27];
  const n = shape.reduce((a, b) => a * b, 1);
  const paths: string[] = [];
  for (const [i, dtype] of SOURCES.entries()) {
    const path = join(dir, `${dtype}.zarr`);
    using w = await createArray(path, {
      shape,
      dtype,
      chunks: [8, 8, 8],
      shards: i % 2 ? [16, 16, 16] : undefined,
      fillValue: 3,
      dimensionNames: ["z", "y", "x"],
    });
    const bytes = new Uint8Array(n * Number(dtype.match(/\d+/)![0]) / 8);
    let seed = 12345 + i;
    for (let k = 0; k < bytes.length; k++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      bytes[k] = seed >>> 24;
    }
    if (dtype === "float16" || dtype === "float32") {
      // Finite values only in every other element's exponent, so NaN payloads stay rare.
      const size = dtype === "float16" ? 2 : 4;
      for (let k = size - 1; k < bytes.length; k += size) bytes[k] &= 0x3f;
    }
    await w.write(new (dtype === "float16" ? Uint16Array : Uint8Array)(bytes.buffer));
    paths.push(path);
  }
  return paths;
}

function samples(paths: string[], count: number) {
  let seed = 99;
  const next = (lo: number, hi: number) => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return lo + seed % (hi - lo + 1);
  };
  return Array.from({ length: count }, (_, i) => {
    const [z, y, x] = [21, 34, 27].map((n, d) => next(-SAMPLE[d] + 1, n - 1));
    return {
      uri: paths[i % paths.length],
      box: {
        z: [z, z + SAMPLE[0]] as [number, number],
        y: [y, y + SAMPLE[1]] as [number, number],
        x: [x, x + SAMPLE[2]] as [number, number],
      },
    };
  });
}

async function sha256(batch: PipelineBatch): Promise<string> {
  const bytes = new Uint8Array(batch.data().buffer, 0, batch.byteLength);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("cuda batches equal the CPU executor's for every source and output dtype; torch and cupy see them", async () => {
  const py = await systemPython();
  const paths = await stores();
  const pushed = samples(paths, 8 * SOURCES.length);
  for (const dtype of ["float32", "bfloat16"] as const) {
    const config = { samplesPerBatch: 8, sampleShape: SAMPLE, dtype };
    await using cpu = pipeline(config);
    await using gpu = pipeline({ ...config, device: "cuda:0" });
    for (const s of pushed) {
      cpu.push(s);
      gpu.push(s);
    }
    for (let b = 0; b < SOURCES.length; b++) {
      using host = await cpu.pop();
      using device = await gpu.pop();
      assert.equal(device.device, "cuda:0");
      const capsule = device.toDLPack({ versioned: false });
      const address = Deno.UnsafePointer.value(capsule);
      py.exec(`t = torch.from_dlpack(CudaTensor(${address}, 0))`);
      assert.equal(py.eval("t.device.type"), "cuda");
      assert.equal(BigInt(py.eval("t.data_ptr()")), device.address, "zero copy");
      assert.equal(py.eval("list(t.shape)"), `[8, ${SAMPLE.join(", ")}]`);
      const digest = py.eval(
        "hashlib.sha256(t.cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()",
      );
      assert.equal(digest, await sha256(host), `${dtype} batch ${b} (${SOURCES[b]})`);
      py.exec("del t");
      if (dtype === "float32") {
        const again = Deno.UnsafePointer.value(device.toDLPack({ versioned: false }));
        py.exec(`import cupy\nc = cupy.from_dlpack(CudaTensor(${again}, 0))`);
        assert.equal(BigInt(py.eval("c.data.ptr")), device.address, "cupy: zero copy");
        const cupyDigest = py.eval(
          "hashlib.sha256(cupy.asnumpy(c).view('uint8').tobytes()).hexdigest()",
        );
        assert.equal(cupyDigest, await sha256(host));
        py.exec("del c");
      }
    }
  }
});

Deno.test("cuda: a DLPack consumer keeps a released batch alive; 1000 batches leave no device memory behind", async () => {
  const py = await systemPython();
  const [path] = await stores();
  await using pipe = pipeline({
    samplesPerBatch: 4,
    sampleShape: [16, 16, 16],
    dtype: "float32",
    device: "cuda",
  });
  const push = (n: number) => {
    for (let i = 0; i < n; i++) {
      const z = i % 10 - 3;
      pipe.push({ uri: path, box: { z: [z, z + 16], y: [0, 16], x: [-4, 12] } });
    }
  };
  push(4);
  const batch = await pipe.pop();
  const capsule = Deno.UnsafePointer.value(batch.toDLPack({ versioned: false }));
  batch.release();
  assert.equal(pipe.stats().liveBytes, 4 * 16 ** 3 * 4, "the capsule holds the batch");
  py.exec(`t = torch.from_dlpack(CudaTensor(${capsule}, 0))\ns = float(t.sum())\ndel t`);
  assert.equal(pipe.stats().liveBytes, 0, "freed with the consumer's reference");

  const free = () => Number(py.eval("torch.cuda.mem_get_info()[0]"));
  for (let i = 0; i < 50; i++) {
    push(4);
    (await pipe.pop()).release();
  }
  const before = free();
  for (let i = 0; i < 1000; i++) {
    push(4);
    using b = await pipe.pop();
    assert.equal(b.device, "cuda:0");
  }
  assert.equal(pipe.stats().liveBytes, 0);
  const lost = before - free();
  assert.ok(lost < 16 << 20, `device memory fell by ${lost} bytes over 1000 batches`);
});
