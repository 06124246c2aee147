/**
 * The streaming pipeline under the lifetime rules: a pipeline closed while
 * batches are still being assembled frees all its native memory; many
 * pipeline create/push/pop/release/close cycles keep resident memory flat;
 * hostile stores (tests/hostile_stores.ts) pushed into a pipeline give the
 * same typed errors from pop() as a read, and the process survives them.
 */

import assert from "node:assert/strict";
import { liveNativeBytes, open, pipeline } from "../mod.ts";
import { tempDir } from "./helpers.ts";
import { makeHostileStores } from "./hostile_stores.ts";
import { checkBox, rss, writeVolume } from "./reliability_helpers.ts";

const SHAPE: [number, number, number] = [64, 64, 64];
let volume: Promise<string> | undefined;

/** A sharded zstd volume of known values, written once. */
function store(): Promise<string> {
  volume ??= writeVolume("pipeline-lifetime.zarr", SHAPE, [32, 32, 32], [16, 16, 16]);
  return volume;
}

/** Pushes `n` samples of 8×32×32 (z, y, x) walking through the volume. */
function pushSamples(pipe: ReturnType<typeof pipeline>, path: string, n: number, from = 0) {
  for (let i = from; i < from + n; i++) {
    const z = (i * 8) % 56;
    const y = (i * 16) % 32;
    pipe.push({ uri: path, box: { z: [z, z + 8], y: [y, y + 32], x: [0, 32] } });
  }
}

Deno.test("a pipeline closed mid-flight frees its native memory", async () => {
  const path = await store();
  const baseline = liveNativeBytes();
  for (let round = 0; round < 12; round++) {
    const pipe = pipeline({
      samplesPerBatch: 4,
      sampleShape: [8, 32, 32],
      dtype: round % 2 ? "bfloat16" : "float32",
      lookahead: 4,
    });
    pushSamples(pipe, path, 48);
    if (round % 3 === 0) {
      // one batch popped and kept across close: it stays valid
      const kept = await pipe.pop();
      assert.ok(liveNativeBytes() > baseline, "batches are native memory");
      await pipe.close();
      if (round % 2 === 0) {
        const f32 = Float32Array.from(kept.data() as Float32Array);
        const u16 = Uint16Array.from(f32);
        assert.equal(checkBox(u16.subarray(0, 8 * 32 * 32), [0, 0, 0], [8, 32, 32]), undefined);
      }
      kept.release();
    } else {
      // closed at once, while its lookahead batches are being assembled
      await pipe.close();
    }
    assert.equal(liveNativeBytes(), baseline, `round ${round}: every batch freed`);
  }
});

Deno.test("pipeline create/push/pop/release/close cycles keep memory flat", async () => {
  const path = await store();
  const baseline = liveNativeBytes();
  const cycle = async (i: number) => {
    await using pipe = pipeline({ samplesPerBatch: 2, sampleShape: [8, 32, 32], dtype: "float32" });
    pushSamples(pipe, path, 6, i);
    for (let b = 0; b < 2; b++) {
      using batch = await pipe.pop();
      assert.deepEqual(batch.shape, [2, 8, 32, 32]);
    }
  };
  for (let i = 0; i < 40; i++) await cycle(i); // warm-up: pools and caches reach their size
  const before = rss();
  for (let i = 0; i < 300; i++) await cycle(i);
  const grown = rss() - before;
  assert.equal(liveNativeBytes(), baseline, "every batch freed");
  assert.ok(grown < 48 << 20, `resident memory grew by ${grown} bytes over 300 pipelines`);
});

Deno.test("hostile stores pushed into a pipeline give typed errors from pop()", async (t) => {
  const dir = await tempDir("tessera-pipeline-hostile-");
  const cases = (await makeHostileStores(dir)).filter((c) => c.error && c.action !== "info");
  const baseline = liveNativeBytes();
  let run = 0;
  for (const c of cases) {
    // the whole array as one sample (its shape, when it opens at all)
    let shape = [1];
    try {
      using img = await open(c.path);
      shape = [...img.shape];
    } catch {
      // opening fails: so must the sample
    }
    // stores whose whole-array read is refused for its size (zero or huge
    // extents) do not apply: a sample's size is fixed by sampleShape
    if (shape.some((n) => n <= 0 || n > 4096)) continue;
    run++;
    await t.step(c.name, async () => {
      await using pipe = pipeline({ samplesPerBatch: 1, sampleShape: shape, dtype: "float32" });
      pipe.push({ uri: c.path, box: {} });
      const error = await pipe.pop().then(() => undefined, (e) => e);
      assert.ok(error instanceof c.error!, `expected ${c.error!.name}, got ${error}`);
      assert.match(error.message, c.message);
    });
  }
  assert.ok(run >= 10, `${run} hostile stores pushed`);
  assert.equal(liveNativeBytes(), baseline, "no native buffer left behind");
});
