/**
 * Every error type of the pipeline, reached through its public API:
 * InvalidArgument, NotFound, DtypeMismatch, StorageError, DecodeError,
 * BudgetExceeded, PoolStarved, CudaError and Shutdown.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  BudgetExceeded,
  createArray,
  CudaError,
  DecodeError,
  DtypeMismatch,
  InvalidArgument,
  NotFound,
  pipeline,
  type PipelineConfig,
  PoolStarved,
  Shutdown,
  StorageError,
} from "../mod.ts";
import { tempDir } from "./helpers.ts";

const BOX = { z: [0, 4], y: [0, 4], x: [0, 4] } as const;
const CONFIG: PipelineConfig = { samplesPerBatch: 2, sampleShape: [4, 4, 4], dtype: "float32" };

/** A 16³ uint16 array, sharded 8³ with 4³ inner chunks, zstd. */
async function store(name: string): Promise<string> {
  const path = join(await tempDir("tessera-pipeline-errors-"), name);
  using w = await createArray(path, {
    shape: [16, 16, 16],
    dtype: "uint16",
    chunks: [4, 4, 4],
    shards: [8, 8, 8],
    dimensionNames: ["z", "y", "x"],
  });
  await w.write(new Uint16Array(16 ** 3).map((_, i) => i));
  return path;
}

Deno.test("pipeline settings are checked at once", () => {
  const bad: [Partial<PipelineConfig>, RegExp][] = [
    [{ samplesPerBatch: 0 }, /samplesPerBatch 0/],
    [{ samplesPerBatch: 1.5 }, /samplesPerBatch 1.5/],
    [{ sampleShape: [] }, /sampleShape/],
    [{ sampleShape: [4, -1] }, /sampleShape\[1\] -1/],
    [{ lookahead: 0 }, /lookahead 0/],
    [{ ioThreads: 0 }, /ioThreads 0/],
    [{ popTimeoutMs: -5 }, /popTimeoutMs -5/],
    [{ maxDeviceMemoryBytes: 0 }, /maxDeviceMemoryBytes 0/],
    [{ device: "tpu" }, /device "tpu" is unknown/],
  ];
  for (const [change, message] of bad) {
    assert.throws(() => pipeline({ ...CONFIG, ...change } as PipelineConfig), (e) => {
      assert.ok(e instanceof InvalidArgument, `${JSON.stringify(change)}: ${e}`);
      assert.match((e as Error).message, message);
      return true;
    });
  }
  assert.throws(
    () => pipeline({ ...CONFIG, dtype: "uint8" as "float32" }),
    (e) => e instanceof DtypeMismatch && /"uint8" is not an output dtype/.test(e.message),
  );
});

/** Whether this machine has a CUDA driver library (then the CUDA path is tested by test:gpu). */
function hasCudaDriver(): boolean {
  for (const name of ["libcuda.so.1", "libcuda.so"]) {
    try {
      Deno.dlopen(name, {}).close();
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

Deno.test("pipeline device cuda: a clear CudaError without a driver or device, batches on the device with one", async () => {
  const unknown = "cuda:4096";
  assert.throws(
    () => pipeline({ ...CONFIG, device: unknown }),
    (e) =>
      e instanceof CudaError && e.message.includes(`"${unknown}"`) &&
      /libcuda|does not exist/.test(e.message),
  );
  if (!hasCudaDriver()) {
    for (const device of ["cuda", "cuda:0", "cuda:1"]) {
      assert.throws(
        () => pipeline({ ...CONFIG, device }),
        (e) =>
          e instanceof CudaError && e.message.includes(`"${device}"`) &&
          e.message.includes("no CUDA driver: libcuda.so.1"),
      );
    }
    return;
  }
  // With a driver (GPU machines; tests/gpu/ checks the contents): the batch lives on the device.
  const path = await store("cuda.zarr");
  await using pipe = pipeline({ ...CONFIG, device: "cuda" });
  pipe.push({ uri: path, box: BOX });
  pipe.push({ uri: path, box: BOX });
  using batch = await pipe.pop();
  assert.equal(batch.device, "cuda:0");
  assert.throws(() => batch.data(), CudaError);
  assert.equal(pipe.stats().transfer.count, 1);
});

Deno.test("pipeline push: malformed samples, budget, unknown images and levels, shapes", async () => {
  const path = await store("a.zarr");
  {
    await using pipe = pipeline({ ...CONFIG, maxDeviceMemoryBytes: 500 });
    assert.throws(
      () => pipe.push({ uri: path, box: BOX }),
      (e) =>
        e instanceof BudgetExceeded &&
        /needs 512 bytes .*maxDeviceMemoryBytes is 500/.test(e.message),
    );
  }
  await using pipe = pipeline({ ...CONFIG, popTimeoutMs: 2000 });
  assert.throws(() => pipe.push({ uri: 5 as unknown as string, box: BOX }), InvalidArgument);
  assert.throws(() => pipe.push({ uri: path, box: { z: [4, 4] } }), /z.*stop > start/);
  assert.throws(() => pipe.push({ uri: path, level: -1, box: BOX }), InvalidArgument);
  await assert.rejects(pipe.push({ uri: join(path, "missing.zarr"), box: BOX }), NotFound);
  await assert.rejects(
    pipe.push({ uri: path, level: 3, box: BOX }),
    (e) => e instanceof NotFound && /level 3 does not exist/.test(e.message),
  );
  await assert.rejects(
    pipe.push({ uri: path, box: { q: [0, 4] } }),
    (e) => e instanceof InvalidArgument && /axis "q"/.test(e.message),
  );
  await assert.rejects(
    pipe.push({ uri: path, box: { z: [0, 5], y: [0, 4], x: [0, 4] } }),
    (e) =>
      e instanceof InvalidArgument && /shape \[5,4,4\].*sampleShape is \[4,4,4\]/.test(e.message),
  );
  await assert.rejects(
    pipe.push({ uri: path, box: { z: 99, y: [0, 4], x: [0, 4] } }),
    (e) => e instanceof InvalidArgument && /outside/.test(e.message),
  );
  // The failed samples make batches whose pop reports the sample's error.
  await assert.rejects(pipe.pop(), NotFound);
  await assert.rejects(pipe.pop(), InvalidArgument);
});

Deno.test("pipeline pop: corrupt chunks are DecodeError, unreadable ones StorageError", async () => {
  const path = await store("b.zarr");
  await using pipe = pipeline({ ...CONFIG, samplesPerBatch: 1 });
  // Shard c/0/0/0: keep its index, overwrite the first inner chunk's bytes.
  const shard = join(path, "c", "0", "0", "0");
  const bytes = await Deno.readFile(shard);
  bytes.fill(0xab, 0, 16);
  await Deno.writeFile(shard, bytes);
  pipe.push({ uri: path, box: BOX });
  await assert.rejects(pipe.pop(), (e) => e instanceof DecodeError && e.message.includes(shard));
  // A shard path that is a folder cannot be read.
  const other = join(path, "c", "1", "1", "1");
  await Deno.remove(other);
  await Deno.mkdir(other);
  pipe.push({ uri: path, box: { z: [8, 12], y: [8, 12], x: [8, 12] } });
  await assert.rejects(pipe.pop(), (e) => e instanceof StorageError && e.message.includes(other));
  // The pipeline keeps working after failed batches.
  pipe.push({ uri: path, box: { z: [12, 16], y: [0, 4], x: [0, 4] } });
  using batch = await pipe.pop();
  assert.equal((batch.data() as Float32Array)[0], 12 * 256);
});

Deno.test("pipeline pop: PoolStarved names the setting to raise", async () => {
  const path = await store("c.zarr");
  {
    await using pipe = pipeline({ ...CONFIG, popTimeoutMs: 50 });
    pipe.push({ uri: path, box: BOX });
    await assert.rejects(
      pipe.pop(),
      (e) =>
        e instanceof PoolStarved &&
        /1 samples pushed.*samplesPerBatch 2.*popTimeoutMs/.test(e.message),
    );
    // A push while pop() waits completes the batch.
    const popped = pipe.pop();
    await new Promise((r) => setTimeout(r, 10));
    pipe.push({ uri: path, box: BOX });
    using batch = await popped;
    assert.deepEqual(batch.shape, [2, 4, 4, 4]);
  }
  {
    const bytes = 2 * 64 * 4;
    await using pipe = pipeline({ ...CONFIG, maxDeviceMemoryBytes: bytes, popTimeoutMs: 5000 });
    for (let i = 0; i < 4; i++) pipe.push({ uri: path, box: BOX });
    const first = await pipe.pop();
    await assert.rejects(
      pipe.pop(),
      (e) =>
        e instanceof PoolStarved &&
        /release popped batches.*raise maxDeviceMemoryBytes/.test(e.message),
    );
    first.release();
    using second = await pipe.pop();
    assert.equal(second.index, 1);
  }
});

Deno.test("pipeline close: Shutdown for later calls and for a waiting pop", async () => {
  const path = await store("d.zarr");
  const pipe = pipeline(CONFIG);
  pipe.push({ uri: path, box: BOX });
  const waiting = assert.rejects(pipe.pop(), Shutdown);
  await pipe.close();
  await waiting;
  assert.throws(() => pipe.push({ uri: path, box: BOX }), Shutdown);
  await assert.rejects(pipe.pop(), Shutdown);
  await pipe.close(); // idempotent
  // Batches popped before close stay valid; unpopped ones are released.
  const other = pipeline({ ...CONFIG, samplesPerBatch: 1 });
  other.push({ uri: path, box: BOX });
  other.push({ uri: path, box: BOX });
  using kept = await other.pop();
  await other.close();
  assert.equal((kept.data() as Float32Array)[1], 1);
});

Deno.test("pipeline: 1000 batches leave no live batches and flat memory", async () => {
  const path = await store("e.zarr");
  await using pipe = pipeline({
    samplesPerBatch: 4,
    sampleShape: [6, 6, 6],
    dtype: "bfloat16",
    lookahead: 3,
  });
  const run = async (batches: number) => {
    for (let b = 0; b < batches; b++) {
      for (let s = 0; s < 4; s++) {
        const z = (b * 4 + s) % 14 - 2;
        pipe.push({ uri: path, box: { z: [z, z + 6], y: [3, 9], x: [-1, 5] } });
      }
      using batch = await pipe.pop();
      assert.equal(batch.index, pipe.stats().pop_wait.count - 1);
    }
  };
  await run(100); // warm-up: pools and caches reach their size
  const before = Deno.memoryUsage().rss;
  await run(1000);
  const grown = Deno.memoryUsage().rss - before;
  assert.equal(pipe.stats().liveBytes, 0, "every batch released");
  assert.equal(pipe.stats().queuedBatches, 0);
  assert.ok(grown < 32 << 20, `resident memory grew by ${grown} bytes over 1000 batches`);
});
