/**
 * The streaming pipeline against tensorstore + numpy (tests/interop/pipeline_peer.py):
 * arrays written by zarr-python in every source dtype, raw zstd and blosc-zstd,
 * sharded and plain; random samples crossing chunk, shard and image edges;
 * batches mixing arrays; float32 and bfloat16 outputs.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fromDLPack, pipeline, PipelineBatch, type SampleRequest } from "../mod.ts";
import { mulberry32, peerNgff, randInt, ROOT, runPython, tempDir } from "./helpers.ts";

const PEER = join(ROOT, "tests", "interop", "pipeline_peer.py");
const SAMPLE_SHAPE = [9, 11, 10];
const SAMPLES_PER_STORE = 6;
const SAMPLES_PER_BATCH = 7;

interface StoreInfo {
  name: string;
  path: string;
  dtype: string;
  shape: number[];
  fill: number;
}

/** A sample box per array dimension: an index or [start, stop). */
type PeerBox = (number | [number, number])[];

interface Case {
  store: StoreInfo;
  box: PeerBox;
  request: SampleRequest;
}

async function writeStores(): Promise<StoreInfo[]> {
  const dir = await tempDir("tessera-pipeline-");
  return JSON.parse(await runPython([PEER, "write", dir]));
}

/** Random boxes of SAMPLE_SHAPE, many reaching past the edges; one wholly outside. */
function makeCases(stores: StoreInfo[]): Case[] {
  const rng = mulberry32(97);
  const cases: Case[] = [];
  for (const store of stores) {
    const spatial = store.shape.slice(-3);
    const names = store.shape.length === 4 ? ["c", "z", "y", "x"] : ["z", "y", "x"];
    for (let i = 0; i < SAMPLES_PER_STORE; i++) {
      const starts = spatial.map((n, d) =>
        i === 0 && store.name === "uint16-zstd-sharded"
          ? n + 3 // wholly outside: every element is the fill value
          : randInt(rng, -SAMPLE_SHAPE[d] + 1, n - 1)
      );
      const box: PeerBox = starts.map((s, d) => [s, s + SAMPLE_SHAPE[d]]);
      if (store.shape.length === 4) box.unshift(randInt(rng, 0, store.shape[0] - 1));
      const named: Record<string, number | [number, number]> = {};
      box.forEach((sel, d) => named[names[d]] = sel);
      cases.push({ store, box, request: { uri: store.path, box: named } });
    }
  }
  return cases;
}

async function expected(cases: Case[]): Promise<{ float32: Uint8Array; bfloat16: Uint8Array }> {
  const dir = await tempDir("tessera-pipeline-expected-");
  const json = join(dir, "cases.json");
  await Deno.writeTextFile(
    json,
    JSON.stringify({
      sample_shape: SAMPLE_SHAPE,
      samples: cases.map((c) => ({ path: c.store.path, box: c.box })),
    }),
  );
  await runPython([PEER, "read", json, dir]);
  return {
    float32: await Deno.readFile(join(dir, "expected-float32.bin")),
    bfloat16: await Deno.readFile(join(dir, "expected-bfloat16.bin")),
  };
}

/** Compares element bits; NaNs compare equal to NaNs whatever their payload. */
function assertSampleEqual(
  actual: Uint8Array,
  wanted: Uint8Array,
  dtype: "float32" | "bfloat16",
  what: string,
): void {
  assert.equal(actual.length, wanted.length, `${what}: byte length`);
  const size = dtype === "float32" ? 4 : 2;
  const bits = (b: Uint8Array, i: number) =>
    size === 4
      ? new DataView(b.buffer, b.byteOffset).getUint32(i * 4, true)
      : new DataView(b.buffer, b.byteOffset).getUint16(i * 2, true);
  const isNaN = (v: number) =>
    size === 4
      ? (v & 0x7f800000) === 0x7f800000 && (v & 0x7fffff) !== 0
      : (v & 0x7f80) === 0x7f80 && (v & 0x7f) !== 0;
  for (let i = 0; i < actual.length / size; i++) {
    const a = bits(actual, i);
    const w = bits(wanted, i);
    if (a !== w && !(isNaN(a) && isNaN(w))) {
      assert.fail(
        `${what}: element ${i} is 0x${a.toString(16)}, tensorstore+numpy give 0x${w.toString(16)}`,
      );
    }
  }
}

Deno.test("pipeline batches equal tensorstore + numpy for every source dtype, codec and layout", async (t) => {
  const stores = await writeStores();
  assert.equal(stores.length, 33);
  const cases = makeCases(stores);
  const want = await expected(cases);
  const sampleElements = SAMPLE_SHAPE.reduce((a, b) => a * b, 1);
  for (const dtype of ["float32", "bfloat16"] as const) {
    await t.step(dtype, async () => {
      const size = dtype === "float32" ? 4 : 2;
      const wanted = want[dtype];
      await using pipe = pipeline({
        samplesPerBatch: SAMPLES_PER_BATCH,
        sampleShape: SAMPLE_SHAPE,
        dtype,
        lookahead: 3,
        ioThreads: 2,
      });
      const usable = cases.length - (cases.length % SAMPLES_PER_BATCH);
      const pushed = cases.slice(0, usable).map((c) => pipe.push(c.request));
      await Promise.all(pushed);
      const batches = usable / SAMPLES_PER_BATCH;
      for (let b = 0; b < batches; b++) {
        using batch = await pipe.pop();
        assert.ok(batch instanceof PipelineBatch);
        assert.equal(batch.index, b);
        assert.equal(batch.dtype, dtype);
        assert.deepEqual(batch.shape, [SAMPLES_PER_BATCH, ...SAMPLE_SHAPE]);
        assert.deepEqual(batch.axes, ["n", "z", "y", "x"]);
        const bytes = new Uint8Array(batch.data().buffer, 0, batch.byteLength);
        for (let s = 0; s < SAMPLES_PER_BATCH; s++) {
          const k = b * SAMPLES_PER_BATCH + s;
          const c = cases[k];
          assert.equal(batch.samples[s], c.request);
          const n = sampleElements * size;
          assertSampleEqual(
            bytes.subarray(s * n, (s + 1) * n),
            wanted.subarray(k * n, (k + 1) * n),
            dtype,
            `${c.store.name} box ${JSON.stringify(c.box)} → ${dtype}`,
          );
        }
      }
      const stats = pipe.stats();
      assert.equal(stats.pop_wait.count, batches);
      assert.equal(stats.plan.count, usable);
      assert.ok(stats.decode.count > 0 && stats.decode.bytes > 0, "decode counted");
      assert.ok(stats.io.bytes > 0 && stats.assemble.bytes >= batches * pipe.batchBytes / 2);
      assert.equal(stats.transfer.count, 0, "no transfers on the CPU");
    });
  }
});

Deno.test("pipeline: a DLPack consumer keeps its batch alive after the view is released", async () => {
  const stores = await writeStores();
  const store = stores.find((s) => s.name === "uint16-zstd-sharded")!;
  await using pipe = pipeline({ samplesPerBatch: 2, sampleShape: [4, 4, 4], dtype: "float32" });
  const box = { z: [0, 4], y: [0, 4], x: [8, 12] } as const;
  pipe.push({ uri: store.path, box });
  pipe.push({ uri: store.path, box });
  const batch = await pipe.pop();
  const copy = Array.from(batch.data() as Float32Array);
  const capsule = batch.toDLPack();
  batch.release();
  assert.equal(pipe.stats().liveBytes, pipe.batchBytes, "the capsule holds the batch");
  using imported = fromDLPack(capsule);
  assert.deepEqual(Array.from(imported.data() as Float32Array), copy);
  assert.deepEqual(imported.shape, [2, 4, 4, 4]);
  imported[Symbol.dispose]();
  assert.equal(pipe.stats().liveBytes, 0, "released with the consumer's reference");
});

Deno.test("pipeline samples every level of an OME-NGFF 0.5 image from ome-zarr-py, t and c fixed", async () => {
  const ngff = await peerNgff();
  const sample = [3, 20, 14];
  await using pipe = pipeline({ samplesPerBatch: 5, sampleShape: sample, dtype: "float32" });
  const rng = mulberry32(5);
  const wanted: number[] = [];
  const levels = ngff.levels.length;
  const uri = new URL(`file://${ngff.store}`);
  for (let i = 0; i < 5 * levels; i++) {
    const level = i % levels;
    const { meta, expected } = ngff.levels[level];
    const zarrJson = JSON.parse(await Deno.readTextFile(join(ngff.store, meta.path, "zarr.json")));
    const fill: number = zarrJson.fill_value;
    const data = new Uint16Array(expected.buffer, expected.byteOffset, expected.byteLength / 2);
    const [nt, nc, nz, ny, nx] = meta.shape;
    const t = randInt(rng, 0, nt - 1);
    const c = randInt(rng, 0, nc - 1);
    const start = [nz, ny, nx].map((n, d) => randInt(rng, -sample[d] + 1, n - 1));
    pipe.push({
      uri,
      level,
      box: {
        T: t,
        c,
        z: [start[0], start[0] + sample[0]],
        h: [start[1], start[1] + sample[1]],
        w: [start[2], start[2] + sample[2]],
      },
    });
    for (let z = start[0]; z < start[0] + sample[0]; z++) {
      for (let y = start[1]; y < start[1] + sample[1]; y++) {
        for (let x = start[2]; x < start[2] + sample[2]; x++) {
          const inside = z >= 0 && z < nz && y >= 0 && y < ny && x >= 0 && x < nx;
          wanted.push(inside ? data[(((t * nc + c) * nz + z) * ny + y) * nx + x] : fill);
        }
      }
    }
  }
  const got: number[] = [];
  for (let b = 0; b < levels; b++) {
    using batch = await pipe.pop();
    assert.deepEqual(batch.axes, ["n", "z", "y", "x"]);
    got.push(...(batch.data() as Float32Array));
  }
  assert.deepEqual(got, wanted);
});
