/**
 * Rank-sharded epochs (`rank`/`worldSize` of `batches()` and `pipeline()`):
 * each rank's share follows PyTorch's DistributedSampler (checked against
 * torch itself), shares are disjoint and cover the single-rank epoch, the
 * same seed gives the same split, batches hold the right elements, separate
 * processes agree, and bad arguments are InvalidArgument naming the value.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type BatchOptions, InvalidArgument, open, pipeline, writeOmeZarr } from "../mod.ts";
import { checkRankSplit, shareLength, sharePosition } from "../src/rank.ts";
import { ROOT, runPython, tempDir } from "./helpers.ts";

// Element value = its C-order index in the store: z·20 + y·5 + x.
const SHAPE = [1, 1, 37, 4, 5];

let store: Promise<string> | undefined;
function makeStore(): Promise<string> {
  store ??= (async () => {
    const path = join(await tempDir("tessera-rank-"), "img.ome.zarr");
    await writeOmeZarr(path, Uint16Array.from({ length: 740 }, (_, i) => i), {
      axes: ["t", "c", "z", "y", "x"],
      shape: SHAPE,
      dtype: "uint16",
      chunks: [1, 1, 4, 4, 5],
      shards: [1, 1, 8, 4, 5],
    });
    return path;
  })();
  return store;
}

/** The positions each rank takes, from tessera's split. */
function positions(count: number, rank: number, worldSize: number, uneven: "pad" | "drop") {
  const split = checkRankSplit({ rank, worldSize, uneven }, "test");
  return Array.from(
    { length: shareLength(count, split) },
    (_, k) => sharePosition(k, count, split),
  );
}

Deno.test("the split equals torch's DistributedSampler", async () => {
  const cases: [number, number][] = [[0, 3], [1, 4], [7, 1], [10, 5], [37, 3], [37, 4], [5, 8], [
    100,
    7,
  ]];
  const script = `
import json, sys
from torch.utils.data.distributed import DistributedSampler
out = []
for n, w in json.loads(sys.argv[1]):
    for drop in (False, True):
        out.append([list(DistributedSampler(range(n), num_replicas=w, rank=r, shuffle=False,
                                            drop_last=drop)) for r in range(w)])
print(json.dumps(out))
`;
  const torch = JSON.parse(await runPython(["-c", script, JSON.stringify(cases)]));
  let i = 0;
  for (const [n, w] of cases) {
    for (const uneven of ["pad", "drop"] as const) {
      const ours = Array.from({ length: w }, (_, r) => positions(n, r, w, uneven));
      assert.deepEqual(ours, torch[i++], `N ${n}, worldSize ${w}, ${uneven}`);
    }
  }
});

/** Items (`z@y`) of one rank's epoch; checks every element of every batch. */
async function epoch(options: Partial<BatchOptions>): Promise<string[]> {
  using img = await open(await makeStore());
  const out: string[] = [];
  for await (
    using b of img.scan().select({ t: 0, c: 0 }).batches({
      over: "z",
      batchSize: 4,
      tile: { y: 2 },
      ...options,
    })
  ) {
    assert.deepEqual(b.shape.slice(1), [2, 5]);
    const data = b.data() as Uint16Array;
    b.indices.forEach((z, s) => {
      const y0 = b.origins![s].y;
      out.push(`${z}@${y0}`);
      for (let y = 0; y < 2; y++) {
        for (let x = 0; x < 5; x++) {
          assert.equal(data[s * 10 + y * 5 + x], z * 20 + (y0 + y) * 5 + x, `z ${z} y ${y0 + y}`);
        }
      }
    });
  }
  return out;
}

Deno.test("batches: rank shares are disjoint, cover the epoch and follow the seed", async () => {
  // 37 z × 2 tiles = 74 items.
  for (const shuffle of [false, true]) {
    const seed = shuffle ? 11 : undefined;
    const whole = await epoch({ shuffle, seed });
    assert.equal(whole.length, 74);
    assert.equal(new Set(whole).size, 74);
    for (const worldSize of [2, 3, 5]) {
      for (const uneven of ["pad", "drop"] as const) {
        const shares = [];
        for (let rank = 0; rank < worldSize; rank++) {
          shares.push(await epoch({ shuffle, seed, rank, worldSize, uneven }));
        }
        const per = uneven === "pad" ? Math.ceil(74 / worldSize) : Math.floor(74 / worldSize);
        const what = `shuffle ${shuffle}, worldSize ${worldSize}, ${uneven}`;
        assert.ok(shares.every((s) => s.length === per), `${what}: equal counts`);
        // Rank r holds positions r, r + W, … of the single-rank epoch order.
        shares.forEach((s, r) =>
          assert.deepEqual(s, s.map((_, k) => whole[(r + k * worldSize) % 74]), what)
        );
        const all = shares.flat();
        if (uneven === "pad") {
          assert.deepEqual(new Set(all), new Set(whole), `${what}: union is the epoch`);
          // The only repeats are the padding: the first items of the epoch order.
          assert.deepEqual(
            all.filter((x, i) => all.indexOf(x) !== i).sort(),
            whole.slice(0, per * worldSize - 74).sort(),
          );
        } else {
          assert.equal(new Set(all).size, all.length, `${what}: disjoint`);
          // The last N mod W items of the epoch order are left out.
          assert.deepEqual([...all].sort(), whole.slice(0, per * worldSize).sort(), what);
        }
      }
    }
  }
  // Same seed, same split; another seed, another split.
  const a = await epoch({ shuffle: true, seed: 3, rank: 1, worldSize: 3 });
  assert.deepEqual(await epoch({ shuffle: true, seed: 3, rank: 1, worldSize: 3 }), a);
  assert.notDeepEqual(await epoch({ shuffle: true, seed: 4, rank: 1, worldSize: 3 }), a);
  // Fewer items than ranks: "drop" leaves every rank empty, "pad" gives each one.
  using img = await open(await makeStore());
  const q = img.scan().select({ t: 0, c: 0, z: [0, 2] });
  let n = 0;
  for await (
    using _ of q.batches({ over: "z", batchSize: 1, rank: 3, worldSize: 4, uneven: "drop" })
  ) n++;
  assert.equal(n, 0);
  const padded: number[] = [];
  for await (using b of q.batches({ over: "z", batchSize: 1, rank: 3, worldSize: 4 })) {
    padded.push(...b.indices);
  }
  assert.deepEqual(padded, [1]);
});

Deno.test("batches: worldSize processes together read the single-rank epoch", async () => {
  const path = await makeStore();
  const child = join(ROOT, "tests", "rank_child.ts");
  const run = async (rank: number, worldSize: number, uneven: string) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", child, path, String(rank), String(worldSize), "21", uneven],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assert.ok(out.success, dec.decode(out.stderr));
    return JSON.parse(dec.decode(out.stdout)) as { items: string[]; sum: number };
  };
  const [single, ...ranks] = await Promise.all([
    run(0, 1, "pad"),
    ...[0, 1, 2, 3].map((r) => run(r, 4, "drop")),
  ]);
  // 74 items over 4 ranks, dropping the last 2 of the epoch order.
  const union = ranks.flatMap((r) => r.items);
  assert.equal(union.length, 72);
  assert.equal(new Set(union).size, 72);
  assert.deepEqual([...union].sort(), single.items.slice(0, 72).sort());
  // Element sums: every item's elements read once by exactly one rank.
  const itemSum = (item: string) => {
    const [z, y0] = item.split("@").map(Number);
    let s = 0;
    for (let y = y0; y < y0 + 2; y++) for (let x = 0; x < 5; x++) s += z * 20 + y * 5 + x;
    return s;
  };
  assert.equal(single.sum, single.items.reduce((s, i) => s + itemSum(i), 0));
  ranks.forEach((r) => assert.equal(r.sum, r.items.reduce((s, i) => s + itemSum(i), 0)));
});

Deno.test("pipeline: ranks keep disjoint shares of the pushed samples", async () => {
  const uri = await makeStore();
  // 36 samples in a seeded order; 3 ranks × 4 batches of 3.
  const zs = Array.from({ length: 36 }, (_, i) => (i * 17) % 37);
  const worldSize = 3;
  const shares: number[][] = [];
  for (let rank = 0; rank < worldSize; rank++) {
    await using pipe = pipeline({
      samplesPerBatch: 3,
      sampleShape: [4, 5],
      dtype: "float32",
      rank,
      worldSize,
    });
    for (const z of zs) pipe.push({ uri, box: { t: 0, c: 0, z, y: [0, 4], x: [0, 5] } });
    const got: number[] = [];
    for (let b = 0; b < 4; b++) {
      using batch = await pipe.pop();
      const data = batch.data() as Float32Array;
      batch.samples.forEach((s, i) => {
        const z = s.box.z as number;
        got.push(z);
        for (let e = 0; e < 20; e++) assert.equal(data[i * 20 + e], z * 20 + e);
      });
    }
    assert.equal(pipe.stats().pendingSamples, 0, "nothing left for this rank");
    shares.push(got);
  }
  shares.forEach((s, r) => assert.deepEqual(s, zs.filter((_, i) => i % worldSize === r)));
  assert.deepEqual(shares.flat().sort((a, b) => a - b), [...zs].sort((a, b) => a - b));
});

Deno.test("rank arguments: InvalidArgument naming the value", async () => {
  using img = await open(await makeStore());
  const q = img.scan().select({ t: 0, c: 0 });
  const bad: [Partial<BatchOptions>, RegExp][] = [
    [{ rank: 0 }, /rank needs worldSize/],
    [{ worldSize: 2 }, /worldSize needs rank/],
    [{ rank: 2, worldSize: 2 }, /rank 2 must be an integer in \[0, 2\)/],
    [{ rank: -1, worldSize: 2 }, /rank -1/],
    [{ rank: 0.5, worldSize: 2 }, /rank 0.5/],
    [{ rank: 0, worldSize: 0 }, /worldSize 0 must be an integer/],
    [{ rank: 0, worldSize: "2" as unknown as number }, /worldSize "2"/],
    [{ rank: 0, worldSize: 2, uneven: "wrap" as "pad" }, /uneven "wrap" must be "pad" or "drop"/],
    [{ uneven: "drop" }, /uneven needs worldSize/],
    [{ rank: 0, worldSize: 2, shuffle: true }, /needs a seed, the same on every rank/],
  ];
  for (const [options, message] of bad) {
    assert.throws(
      () => q.batches({ over: "z", batchSize: 2, ...options }),
      (e: unknown) => e instanceof InvalidArgument && message.test(e.message),
      JSON.stringify(options),
    );
  }
  // A single rank needs no seed.
  for await (
    using _ of q.batches({ over: "z", batchSize: 40, rank: 0, worldSize: 1, shuffle: true })
  ) {
    // one batch
  }
  for (
    const [config, message] of [
      [{ rank: 1 }, /pipeline rank needs worldSize/],
      [{ rank: 3, worldSize: 3 }, /pipeline rank 3/],
      [{ rank: 0, worldSize: 1.5 }, /pipeline worldSize 1.5/],
    ] as const
  ) {
    assert.throws(
      () => pipeline({ samplesPerBatch: 1, sampleShape: [4, 5], dtype: "float32", ...config }),
      (e: unknown) => e instanceof InvalidArgument && message.test(e.message),
      JSON.stringify(config),
    );
  }
});
