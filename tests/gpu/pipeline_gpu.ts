/**
 * GPU tests of the pipeline's CUDA path; they need a CUDA device, so they
 * are not part of `deno task test`:
 *
 *     deno task test:gpu
 *
 * Without a usable device, libnvrtc or nvCOMP they fail at the first test
 * with the reason. Consumers come from the machine's own Python (`python3`
 * on PATH, or `TESSERA_GPU_PYTHON`), embedded in this process: torch and
 * cupy import the batches through DLPack. Stores are written by
 * zarr-python from the test venv (tests/interop/pipeline_peer.py).
 *
 * - batches on cuda:0 equal the CPU executor's bit for bit, for every
 *   source dtype and both output dtypes, raw zstd and blosc-zstd (shuffle,
 *   no shuffle, bitshuffle) stores, sharded and plain, plus codecs decoded
 *   on the CPU (blosc-lz4, gzip), samples crossing every edge; with nvCOMP
 *   and with `TESSERA_NVCOMP=off` (zstd decoded on the CPU);
 * - torch.from_dlpack and cupy.from_dlpack see the device pointer and the values;
 * - a DLPack consumer keeps a released batch alive;
 * - 1000 batches leave no live batches and device memory where it started.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { pipeline, type PipelineBatch } from "../../mod.ts";
import { Python } from "../../python.ts";
import { ROOT, runPython, tempDir } from "../helpers.ts";

const PEER = join(ROOT, "tests", "interop", "pipeline_peer.py");

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

interface StoreInfo {
  name: string;
  path: string;
  shape: number[];
}

/** Stores of every source dtype × zstd / blosc-zstd × sharded / plain, and the device extras. */
async function stores(): Promise<StoreInfo[]> {
  const dir = await tempDir("tessera-gpu-");
  const all: StoreInfo[] = [];
  for (const command of ["write", "write-device"]) {
    const out = await runPython([PEER, command, join(dir, command)]);
    all.push(...(JSON.parse(out) as StoreInfo[]).filter((s) => s.shape.length === 3));
  }
  return all;
}

function samples(stores: StoreInfo[], count: number) {
  let seed = 99;
  const next = (lo: number, hi: number) => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return lo + seed % (hi - lo + 1);
  };
  return Array.from({ length: count }, (_, i) => {
    const store = stores[i % stores.length];
    const [z, y, x] = store.shape.map((n, d) => next(-SAMPLE[d] + 1, n - 1));
    return {
      uri: store.path,
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

Deno.test("cuda: the device, libnvrtc and nvCOMP are usable", async () => {
  let pipe;
  try {
    pipe = pipeline({
      samplesPerBatch: 1,
      sampleShape: SAMPLE,
      dtype: "float32",
      device: "cuda:0",
    });
  } catch (e) {
    throw new Error(`deno task test:gpu needs a CUDA device: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const nvcomp = pipe.stats().cuda?.nvcomp ?? 0;
  await pipe.close();
  assert.ok(
    nvcomp >= 5000,
    "nvCOMP 5 was not found: install nvidia-libnvcomp-cu13 into .venv or set TESSERA_NVCOMP",
  );
});

for (const nvcomp of [true, false]) {
  Deno.test(`cuda batches equal the CPU executor's (nvCOMP ${nvcomp ? "on" : "off"}); torch and cupy see them`, async () => {
    const py = await systemPython();
    const all = await stores();
    const perBatch = 8;
    const pushed = samples(all, perBatch * all.length);
    if (nvcomp) Deno.env.delete("TESSERA_NVCOMP");
    else Deno.env.set("TESSERA_NVCOMP", "off");
    try {
      for (const dtype of ["float32", "bfloat16"] as const) {
        const config = { samplesPerBatch: perBatch, sampleShape: SAMPLE, dtype };
        await using cpu = pipeline(config);
        await using gpu = pipeline({ ...config, device: "cuda:0" });
        for (const s of pushed) {
          cpu.push(s);
          gpu.push(s);
        }
        for (let b = 0; b < all.length; b++) {
          using host = await cpu.pop();
          using device = await gpu.pop();
          assert.equal(device.device, "cuda:0");
          const capsule = device.toDLPack({ versioned: false });
          const address = Deno.UnsafePointer.value(capsule);
          py.exec(`t = torch.from_dlpack(CudaTensor(${address}, 0))`);
          assert.equal(py.eval("t.device.type"), "cuda");
          assert.equal(BigInt(py.eval("t.data_ptr()")), device.address, "zero copy");
          assert.equal(py.eval("list(t.shape)"), `[${perBatch}, ${SAMPLE.join(", ")}]`);
          const digest = py.eval(
            "hashlib.sha256(t.cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()",
          );
          assert.equal(digest, await sha256(host), `${dtype} batch ${b}`);
          py.exec("del t");
          if (dtype === "float32" && nvcomp) {
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
        const counters = gpu.stats().cuda!;
        // Blosc-lz4, gzip and bitshuffled chunks always decode on the CPU.
        assert.ok(counters.cpuChunks > 0 && counters.deviceChunks > 0, JSON.stringify(counters));
        if (nvcomp) assert.ok(counters.nvcomp >= 5000 && counters.deviceFrames > 0);
        else assert.ok(counters.nvcomp === 0 && counters.deviceFrames === 0);
      }
    } finally {
      Deno.env.delete("TESSERA_NVCOMP");
    }
  });
}

Deno.test("cuda: a DLPack consumer keeps a released batch alive; 1000 batches leave no device memory behind", async () => {
  const py = await systemPython();
  const path = (await stores()).find((s) => s.name === "uint16-zstd-sharded")!.path;
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
  assert.ok(pipe.stats().cuda!.deviceFrames > 0, "decoded by nvCOMP");
  const lost = before - free();
  assert.ok(lost < 16 << 20, `device memory fell by ${lost} bytes over 1000 batches`);
});
