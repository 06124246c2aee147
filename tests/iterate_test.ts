/**
 * Tiles and batches of a query, checked against values computed here from
 * the data the test wrote (element value = its C-order index in the store):
 * positions, overlap, crop/pad/drop edges, layouts, shuffles, read-ahead
 * and disposal when the consumer stops early.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type BatchView,
  createArray,
  InvalidArgument,
  open,
  Shutdown,
  type TensorView,
  type TileView,
  writeOmeZarr,
} from "../mod.ts";
import { castScalar, type IterationEvent, setIterationTrace } from "../src/iterate.ts";
import { tempDir } from "./helpers.ts";

const AXES = ["t", "c", "z", "y", "x"];
const SHAPE = [3, 2, 4, 10, 13];
const STRIDES = [1040, 520, 130, 13, 1];
const FILL = 9999;

let paths: Promise<{ ome: string; plain: string }> | undefined;

/** An OME-Zarr image (fill 0) and a plain array with fill 9999 holding the same elements. */
function stores(): Promise<{ ome: string; plain: string }> {
  paths ??= (async () => {
    const dir = await tempDir("tessera-iterate-");
    const data = Uint16Array.from({ length: 3120 }, (_, i) => i);
    const ome = join(dir, "img.ome.zarr");
    await writeOmeZarr(ome, data, {
      axes: AXES,
      shape: SHAPE,
      dtype: "uint16",
      chunks: [1, 1, 2, 4, 4],
      shards: [1, 1, 4, 8, 8],
    });
    const plain = join(dir, "plain.zarr");
    using writer = await createArray(plain, {
      shape: SHAPE,
      dtype: "uint16",
      chunks: [1, 2, 2, 5, 5],
      fillValue: FILL,
      dimensionNames: AXES,
    });
    await writer.write(data);
    return { ome, plain };
  })();
  return paths;
}

/** Store index of an element given its coordinates by axis name. */
function storeIndex(coords: Record<string, number>): number {
  return AXES.reduce((acc, a, i) => acc + (coords[a] ?? 0) * STRIDES[i], 0);
}

/** Every multi-index of `shape`, last axis fastest. */
function* indices(shape: readonly number[]): Generator<number[]> {
  const n = shape.reduce((a, b) => a * b, 1);
  for (let flat = 0; flat < n; flat++) {
    const index: number[] = [];
    let rest = flat;
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d] = rest % shape[d];
      rest = Math.floor(rest / shape[d]);
    }
    yield index;
  }
}

/**
 * Checks every element of `view`: `coords` maps a multi-index to store
 * coordinates by axis name, or to undefined where the element is padding
 * (then it must be `fill`).
 */
function assertElements(
  view: TensorView,
  coords: (index: number[]) => Record<string, number> | undefined,
  fill = 0,
) {
  for (const index of indices(view.shape)) {
    const c = coords(index);
    assert.equal(
      view.at(...index),
      c === undefined ? fill : storeIndex(c),
      `[${index}] of ${view.layout}`,
    );
  }
}

/** Store coordinates of an element of a tile: origin + index (or undefined past `extent`). */
function tileCoords(
  view: TileView,
  fixed: Record<string, number>,
  extent: Record<string, number>,
  map: (axis: string, i: number) => number = (_, i) => i,
) {
  return (index: number[]) => {
    const c: Record<string, number> = { ...fixed };
    for (let d = 0; d < index.length; d++) {
      const a = view.axes[d];
      const i = view.origin[a] + index[d];
      if (i >= extent[a]) return undefined;
      c[a] = map(a, i);
    }
    return c;
  };
}

async function all<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

function disposeAll(views: Disposable[]) {
  for (const v of views) v[Symbol.dispose]();
}

const EXTENT = { t: 3, c: 2, z: 4, y: 10, x: 13 };

Deno.test("tiles: positions in row-major order, values, overlap, crop, pad and drop", async (t) => {
  const { ome, plain } = await stores();
  using img = await open(ome);
  const query = img.scan().select({ t: 1, c: 1 }); // ZYX

  await t.step("crop (default): smaller edge tiles", async () => {
    const tiles = await all(query.tiles({ tile: { y: 4, x: 5 } }));
    try {
      assert.deepEqual(
        tiles.map((v) => [v.origin.y, v.origin.x]),
        [[0, 0], [0, 5], [0, 10], [4, 0], [4, 5], [4, 10], [8, 0], [8, 5], [8, 10]],
      );
      assert.deepEqual(tiles.map((v) => v.shape.join("x")), [
        "4x4x5",
        "4x4x5",
        "4x4x3",
        "4x4x5",
        "4x4x5",
        "4x4x3",
        "4x2x5",
        "4x2x5",
        "4x2x3",
      ]);
      for (const v of tiles) {
        assert.equal(v.layout, "ZYX");
        assert.equal(v.origin.z, 0);
        assertElements(v, tileCoords(v, { t: 1, c: 1 }, EXTENT));
      }
    } finally {
      disposeAll(tiles);
    }
  });

  await t.step("overlap: neighbours share pixels (stride = tile − overlap)", async () => {
    const tiles = await all(query.tiles({ tile: { h: 4, w: 5 }, overlap: { y: 1, x: 2 } }));
    try {
      const ys = [...new Set(tiles.map((v) => v.origin.y))];
      const xs = [...new Set(tiles.map((v) => v.origin.x))];
      assert.deepEqual(ys, [0, 3, 6]); // 6 + 4 = 10: no further tile
      assert.deepEqual(xs, [0, 3, 6, 9]); // 9 + 5 > 13: cropped to 4
      assert.equal(tiles.length, 12);
      assert.deepEqual(tiles[3].shape, [4, 4, 4]);
      for (const v of tiles) assertElements(v, tileCoords(v, { t: 1, c: 1 }, EXTENT));
      // The last column of tile (0,0) overlapping the first of tile (0,3): same elements.
      assert.equal(tiles[0].at(2, 1, 3), tiles[1].at(2, 1, 0));
    } finally {
      disposeAll(tiles);
    }
  });

  await t.step("pad: full-size tiles, the fill value past the edge", async () => {
    const tiles = await all(query.tiles({ tile: { y: 4, x: 5 }, edge: "pad" }));
    try {
      assert.equal(tiles.length, 9);
      for (const v of tiles) {
        assert.deepEqual(v.shape, [4, 4, 5]);
        assert.ok(v.isContiguous());
        assertElements(v, tileCoords(v, { t: 1, c: 1 }, EXTENT), 0);
      }
    } finally {
      disposeAll(tiles);
    }
  });

  await t.step("pad with a non-zero fill value, converted by the query's cast", async () => {
    using plainImg = await open(plain);
    for (const [dtype, fill] of [["uint16", FILL], ["float32", FILL], ["int8", 15]] as const) {
      const q = plainImg.scan().select({ t: 2, z: 3 }).cast(dtype); // CYX
      const tiles = await all(q.tiles({ tile: { y: 8, x: 8 }, edge: "pad" }));
      try {
        assert.equal(tiles.length, 4);
        for (const v of tiles) {
          assert.deepEqual(v.shape, [2, 8, 8]);
          assert.equal(v.dtype, dtype);
          const coords = tileCoords(v, { t: 2, z: 3 }, EXTENT);
          for (const index of indices(v.shape)) {
            const c = coords(index);
            const expected = c === undefined ? fill : storeIndex(c);
            const want = dtype === "int8" && c !== undefined ? (expected << 24) >> 24 : expected;
            assert.equal(v.at(...index), want, `[${index}] ${dtype}`);
          }
        }
      } finally {
        disposeAll(tiles);
      }
    }
  });

  await t.step("drop: only whole tiles", async () => {
    const tiles = await all(query.tiles({ tile: { y: 4, x: 5 }, edge: "drop" }));
    try {
      assert.deepEqual(tiles.map((v) => [v.origin.y, v.origin.x]), [[0, 0], [0, 5], [4, 0], [
        4,
        5,
      ]]);
      for (const v of tiles) assert.deepEqual(v.shape, [4, 4, 5]);
    } finally {
      disposeAll(tiles);
    }
    assert.equal((await all(query.tiles({ tile: { y: 11 }, edge: "drop" }))).length, 0);
  });

  await t.step("a tile larger than the axis: one tile, cropped or padded", async () => {
    const [cropped] = await all(query.tiles({ tile: { x: 20 } }));
    assert.deepEqual(cropped.shape, [4, 10, 13]);
    cropped[Symbol.dispose]();
    const [padded] = await all(query.tiles({ tile: { x: 20 }, edge: "pad" }));
    assert.deepEqual(padded.shape, [4, 10, 20]);
    assertElements(padded, tileCoords(padded, { t: 1, c: 1 }, EXTENT));
    padded[Symbol.dispose]();
  });
});

Deno.test("tiles on any axis, with layouts and stepped selections", async (t) => {
  const { ome } = await stores();
  using img = await open(ome);

  await t.step("tiles on z (and c): other axes whole", async () => {
    const tiles = await all(img.scan().select({ t: 0 }).tiles({ tile: { z: 3 } }));
    try {
      assert.deepEqual(tiles.map((v) => v.origin.z), [0, 3]);
      assert.deepEqual(tiles.map((v) => v.shape), [[2, 3, 10, 13], [2, 1, 10, 13]]);
      for (const v of tiles) assertElements(v, tileCoords(v, { t: 0 }, EXTENT));
    } finally {
      disposeAll(tiles);
    }
    const both = await all(
      img.scan().select({ t: 2 }).tiles({ tile: { c: 1, z: 2 }, edge: "pad" }),
    );
    try {
      assert.deepEqual(both.map((v) => [v.origin.c, v.origin.z]), [[0, 0], [0, 2], [1, 0], [
        1,
        2,
      ]]);
      for (const v of both) assertElements(v, tileCoords(v, { t: 2 }, EXTENT));
    } finally {
      disposeAll(both);
    }
  });

  await t.step("query layouts: tiles in output order, positions row-major over it", async () => {
    const q = img.scan().select({ t: 1, c: 0 }).layout("YXZ");
    const tiles = await all(q.tiles({ tile: { z: 3, x: 8 }, edge: "pad" }));
    try {
      // Output axes Y, X, Z: x is the outer tiled axis, z the inner.
      assert.deepEqual(tiles.map((v) => [v.origin.x, v.origin.z]), [[0, 0], [0, 3], [8, 0], [
        8,
        3,
      ]]);
      for (const v of tiles) {
        assert.equal(v.layout, "YXZ");
        assert.deepEqual(v.shape, [10, 8, 3]);
        assertElements(v, tileCoords(v, { t: 1, c: 0 }, EXTENT));
      }
    } finally {
      disposeAll(tiles);
    }
  });

  await t.step("stepped selections: origins in the query's output coordinates", async () => {
    const q = img.scan().select({ t: 0, c: 1, z: 2, x: [1, 13, 2] }); // YX, x = 1, 3, …, 11
    using whole = await q.collect();
    const tiles = await all(q.tiles({ tile: { x: 4, y: 6 }, edge: "pad" }));
    try {
      assert.deepEqual(tiles.map((v) => [v.origin.y, v.origin.x]), [[0, 0], [0, 4], [6, 0], [
        6,
        4,
      ]]);
      for (const v of tiles) {
        assert.deepEqual(v.shape, [6, 4]);
        assertElements(
          v,
          tileCoords(
            v,
            { t: 0, c: 1, z: 2 },
            { ...EXTENT, x: 6 },
            (a, i) => a === "x" ? 1 + 2 * i : i,
          ),
        );
        // The same elements as the collected query at the tile's origin.
        for (const [i, j] of indices(v.shape)) {
          const y = v.origin.y + i, x = v.origin.x + j;
          if (y < 10 && x < 6) assert.equal(v.at(i, j), whole.at(y, x));
        }
      }
    } finally {
      disposeAll(tiles);
    }
  });

  await t.step("tiles cover the output exactly once without overlap", async () => {
    const q = img.scan().select({ z: [1, 4] });
    using whole = await q.collect();
    const seen = new Map<string, number>();
    for await (using v of q.tiles({ tile: { t: 2, y: 3, x: 5 }, prefetch: 3 })) {
      for (const index of indices(v.shape)) {
        const at = index.map((i, d) => i + v.origin[v.axes[d]]);
        const key = at.join(",");
        assert.ok(!seen.has(key), key);
        seen.set(key, Number(v.at(...index)));
        assert.equal(v.at(...index), whole.at(...at));
      }
    }
    assert.equal(seen.size, whole.size);
  });
});

/** Store coordinates of slot `s` of a batch over `over` (no tiles). */
function batchCoords(view: BatchView, over: string, fixed: Record<string, number>) {
  return (index: number[]) => {
    const c: Record<string, number> = { ...fixed, [over]: view.indices[index[0]] };
    for (let d = 1; d < index.length; d++) c[view.axes[d]] = index[d];
    return c;
  };
}

Deno.test("batches over an axis: leading axis n, short last batch", async (t) => {
  const { ome } = await stores();
  using img = await open(ome);

  await t.step("over t", async () => {
    const batches = await all(img.scan().batches({ batchSize: 2, over: "t" }));
    try {
      assert.deepEqual(batches.map((b) => b.shape), [[2, 2, 4, 10, 13], [1, 2, 4, 10, 13]]);
      assert.deepEqual(batches.map((b) => b.indices), [[0, 1], [2]]);
      for (const b of batches) {
        assert.equal(b.layout, "NCZYX");
        assert.equal(b.origins, undefined);
        assertElements(b, batchCoords(b, "t", {}));
      }
    } finally {
      disposeAll(batches);
    }
  });

  await t.step("over z of one time point, query layout and cast kept", async () => {
    const q = img.scan().select({ t: 2, y: [2, 8] }).layout("ZYXC").cast("float32");
    const batches = await all(q.batches({ batchSize: 3, over: "Z", prefetch: 0 }));
    try {
      assert.deepEqual(batches.map((b) => b.shape), [[3, 6, 13, 2], [1, 6, 13, 2]]);
      for (const b of batches) {
        assert.equal(b.layout, "NYXC");
        assert.equal(b.dtype, "float32");
        assertElements(b, (index) => {
          const c = batchCoords(b, "z", { t: 2 })(index);
          return { ...c, y: c.y + 2 };
        });
      }
    } finally {
      disposeAll(batches);
    }
  });

  await t.step("a batch larger than the axis: one short batch", async () => {
    const batches = await all(
      img.scan().select({ t: 0, z: 1 }).batches({ batchSize: 8, over: "c" }),
    );
    assert.equal(batches.length, 1);
    assert.deepEqual(batches[0].shape, [2, 10, 13]);
    assert.equal(batches[0].layout, "NYX");
    assertElements(batches[0], batchCoords(batches[0], "c", { t: 0, z: 1 }));
    disposeAll(batches);
  });
});

/** Independent mulberry32 + Fisher–Yates, as documented on `BatchOptions.seed`. */
function referenceOrder(n: number, seed: number): number[] {
  let a = seed;
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor((next() / 2 ** 32) * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

Deno.test("batches: shuffles are reproducible, every item exactly once", async () => {
  const { ome } = await stores();
  using img = await open(ome);
  const q = img.scan().select({ t: 0, c: 0, y: [0, 2], x: [0, 2] }); // ZYX, z = 4
  const order = async (seed?: number, batchSize = 3) => {
    const out: number[] = [];
    for await (using b of q.batches({ over: "z", batchSize, shuffle: true, seed })) {
      assertElements(b, batchCoords(b, "z", { t: 0, c: 0 }));
      out.push(...b.indices);
    }
    return out;
  };
  const a = await order(7);
  assert.deepEqual(a, await order(7), "same seed, same order");
  assert.deepEqual(a, await order(7, 1), "the order does not depend on the batch size");
  assert.deepEqual(a, referenceOrder(4, 7), "mulberry32 + Fisher–Yates");
  assert.deepEqual([...a].sort(), [0, 1, 2, 3]);
  // Over 48 (z, tile) items: different seeds give different orders.
  const items = async (seed: number) => {
    const out: string[] = [];
    for await (
      using b of img.scan().select({ t: 1 }).batches({
        over: "z",
        batchSize: 5,
        tile: { y: 4, x: 4 },
        shuffle: true,
        seed,
      })
    ) {
      b.indices.forEach((z, s) => out.push(`${z}@${b.origins![s].y},${b.origins![s].x}`));
    }
    return out;
  };
  const [s1, s2, s1again] = [await items(1), await items(2), await items(1)];
  assert.equal(s1.length, 48);
  assert.equal(new Set(s1).size, 48, "every item exactly once");
  assert.deepEqual(s1, s1again);
  assert.notDeepEqual(s1, s2);
  assert.deepEqual([...s1].sort(), [...s2].sort());
  // Without a seed the order is random but still a permutation.
  assert.deepEqual((await order()).sort(), [0, 1, 2, 3]);
});

Deno.test("batches of (index, tile) pairs: tile-major, padded, shuffled", async () => {
  const { plain } = await stores();
  using img = await open(plain);
  const q = img.scan().select({ c: 1, z: 0 }); // TYX: t and z not both indices, store order
  const check = (b: BatchView) => {
    assert.equal(b.layout, "NYX");
    assert.deepEqual(b.shape.slice(1), [6, 8]);
    assertElements(b, (index) => {
      const o = b.origins![index[0]];
      const y = o.y + index[1], x = o.x + index[2];
      return y < 10 && x < 13 ? { t: b.indices[index[0]], c: 1, z: 0, y, x } : undefined;
    }, FILL);
  };
  const natural = await all(q.batches({ over: "t", batchSize: 4, tile: { y: 6, x: 8 } }));
  try {
    // 4 tiles × 3 time points = 12 items: for each tile, t = 0, 1, 2.
    assert.deepEqual(natural.map((b) => b.indices), [[0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2]]);
    assert.deepEqual(
      natural.flatMap((b) => b.origins!.map((o) => `${o.y},${o.x}`)),
      ["0,0", "0,0", "0,0", "0,8", "0,8", "0,8", "6,0", "6,0", "6,0", "6,8", "6,8", "6,8"],
    );
    natural.forEach(check);
  } finally {
    disposeAll(natural);
  }
  for await (
    using b of q.batches({
      over: "t",
      batchSize: 5,
      tile: { y: 6, x: 8 },
      shuffle: true,
      seed: 123,
      prefetch: 2,
    })
  ) check(b);
  const dropped = await all(
    q.batches({ over: "t", batchSize: 4, tile: { y: 6, x: 8 }, edge: "drop" }),
  );
  assert.deepEqual(dropped.map((b) => b.shape), [[3, 6, 8]]);
  disposeAll(dropped);
});

/** "start"/"yield" events as "start0", "yield0", …. */
function steps(events: IterationEvent[]): string[] {
  return events.flatMap((e) =>
    e.kind === "start" || e.kind === "yield" ? [`${e.kind}${e.item}`] : []
  );
}

Deno.test("prefetch: reads start before the current batch is handed out", async () => {
  const { ome } = await stores();
  using img = await open(ome);
  const q = img.scan().select({ c: 0 }); // TZYX
  const run = async (prefetch: number) => {
    const events: IterationEvent[] = [];
    setIterationTrace((e) => events.push(e));
    const startedWhileHeld: number[] = [];
    try {
      for await (using b of q.batches({ over: "z", batchSize: 1, prefetch })) {
        const item = b.indices[0];
        // Give the read-ahead time to run while the consumer "works".
        await new Promise((resolve) => setTimeout(resolve, 20));
        startedWhileHeld.push(
          events.filter((e) => e.kind === "start" && e.item > item).length,
        );
      }
    } finally {
      setIterationTrace(undefined);
    }
    return { events, startedWhileHeld };
  };
  const ahead = await run(2);
  // While batch k is held, batches k+1 and k+2 (those that exist) are being read.
  assert.deepEqual(ahead.startedWhileHeld, [2, 2, 1, 0]);
  assert.deepEqual(
    steps(ahead.events),
    ["start0", "start1", "start2", "yield0", "start3", "yield1", "yield2", "yield3"],
  );
  const serial = await run(0);
  assert.deepEqual(serial.startedWhileHeld, [0, 0, 0, 0]);
  assert.deepEqual(
    steps(serial.events),
    ["start0", "yield0", "start1", "yield1", "start2", "yield2", "start3", "yield3"],
  );
  // Tiles read ahead the same way.
  const events: IterationEvent[] = [];
  setIterationTrace((e) => events.push(e));
  try {
    for await (using _ of q.select({ t: 0, z: 0 }).tiles({ tile: { x: 4 }, prefetch: 1 })) {
      // consume
    }
  } finally {
    setIterationTrace(undefined);
  }
  assert.deepEqual(
    steps(events),
    ["start0", "start1", "yield0", "start2", "yield1", "start3", "yield2", "yield3"],
  );
});

Deno.test("stopping early disposes the batches read ahead", async () => {
  const { ome } = await stores();
  using img = await open(ome);
  const events: IterationEvent[] = [];
  setIterationTrace((e) => events.push(e));
  let held: BatchView | undefined;
  try {
    for await (using b of img.scan().batches({ over: "z", batchSize: 1, prefetch: 2 })) {
      held = b;
      break;
    }
  } finally {
    setIterationTrace(undefined);
  }
  const discarded = events.flatMap((e) => e.kind === "discard" ? [e] : []);
  assert.deepEqual(discarded.map((e) => e.item), [1, 2]);
  for (const { view } of discarded) {
    assert.throws(() => view.at(0, 0, 0, 0, 0), Shutdown, "memory of a discarded batch freed");
  }
  assert.throws(() => held!.at(0, 0, 0, 0, 0), Shutdown, "`using` disposed the held batch");
  // A consumer that throws: same clean-up, the error passes through.
  await assert.rejects(async () => {
    for await (using _ of img.scan().tiles({ tile: { x: 2 }, prefetch: 3 })) {
      throw new Error("consumer failed");
    }
  }, /consumer failed/);
  // The image still reads.
  using after = await img.scan().select({ t: 2, c: 1, z: 3 }).collect();
  assert.equal(after.at(9, 12), 3119);
});

Deno.test("a failed read surfaces in order; reads in flight finish", async () => {
  const { ome } = await stores();
  const img = await open(ome);
  const iterator = img.scan().batches({ over: "z", batchSize: 1, prefetch: 1 });
  const first = await iterator.next();
  assert.ok(!first.done);
  first.value[Symbol.dispose]();
  img[Symbol.dispose](); // batch 1 is already being read: it completes
  const second = await iterator.next();
  assert.ok(!second.done);
  assert.deepEqual(second.value.indices, [1]);
  assert.equal(second.value.at(0, 2, 1, 9, 12), storeIndex({ t: 2, c: 1, z: 1, y: 9, x: 12 }));
  second.value[Symbol.dispose]();
  await assert.rejects(iterator.next(), Shutdown);
  assert.deepEqual(await iterator.next(), { done: true, value: undefined });
});

Deno.test("one native request per run of consecutive indices; copies only when assembled", async () => {
  const { ome } = await stores();
  using img = await open(ome);
  const reads = async (iterable: AsyncIterable<TensorView>) => {
    const events: IterationEvent[] = [];
    setIterationTrace((e) => events.push(e));
    try {
      for await (using _ of iterable) {
        // consume
      }
    } finally {
      setIterationTrace(undefined);
    }
    return events.flatMap((e) =>
      e.kind === "read" ? [`${e.requests}${e.assembled ? "+" : ""}`] : []
    );
  };
  const q = img.scan().select({ c: 1 }); // TZYX
  // Natural order: each batch is one request, the native output itself.
  assert.deepEqual(await reads(q.batches({ over: "z", batchSize: 3 })), ["1", "1"]);
  // Shuffled: one request per run of consecutive indices, assembled.
  const order = referenceOrder(4, 5);
  const runs = (items: number[]) =>
    items.filter((v, i) => i === 0 || v !== items[i - 1] + 1).length;
  assert.deepEqual(
    await reads(q.batches({ over: "z", batchSize: 4, shuffle: true, seed: 5 })),
    [`${runs(order)}${runs(order) > 1 ? "+" : ""}`],
  );
  // Tiles: interior tiles are the native output; padded edge tiles are assembled.
  assert.deepEqual(
    await reads(q.select({ t: 0, z: 0 }).tiles({ tile: { y: 4, x: 8 }, edge: "pad" })),
    ["1", "1+", "1", "1+", "1+", "1+"],
  );
  // Batches of tiles, natural order (tile-major): a run per tile in each batch.
  assert.deepEqual(
    await reads(q.select({ z: 0 }).batches({ over: "t", batchSize: 4, tile: { y: 5, x: 13 } })),
    ["2+", "1"],
  );
});

Deno.test("bad options are InvalidArgument naming the option", async () => {
  const { ome } = await stores();
  using img = await open(ome);
  const q = img.scan().select({ t: 0 }); // CZYX
  const bad: [() => unknown, RegExp][] = [
    [() => q.tiles(undefined as never), /tiles options/],
    [() => q.tiles({} as never), /tile/],
    [() => q.tiles({ tile: {} }), /tile names no axis/],
    [() => q.tiles({ tile: { y: 0 } }), /tile extent 0 of axis "y"/],
    [() => q.tiles({ tile: { y: 2.5 } }), /tile extent 2.5/],
    [() => q.tiles({ tile: { q: 4 } }), /tile: "q" is not an axis/],
    [() => q.tiles({ tile: { t: 1 } }), /tile: axis "t" is selected as a single index/],
    [() => q.tiles({ tile: { y: 4, Y: 4 } }), /twice/],
    [() => q.tiles({ tile: { y: 4 }, overlap: { y: 4 } }), /overlap 4 of axis "y"/],
    [() => q.tiles({ tile: { y: 4 }, overlap: { x: 1 } }), /overlap names axis "x"/],
    [() => q.tiles({ tile: { y: 4 }, edge: "wrap" as never }), /edge "wrap"/],
    [() => q.tiles({ tile: { y: 4 }, prefetch: -1 }), /prefetch -1/],
    [() => q.tiles({ tile: { y: 4 }, tileSize: 3 } as never), /option "tileSize" is unknown/],
    [() => q.batches({ batchSize: 0, over: "z" }), /batchSize 0/],
    [() => q.batches({ over: "z" } as never), /batchSize/],
    [() => q.batches({ batchSize: 2 } as never), /over undefined/],
    [() => q.batches({ batchSize: 2, over: "t" }), /over: axis "t"/],
    [() => q.batches({ batchSize: 2, over: "z", tile: { z: 2 } }), /tile names axis "z"/],
    [
      () => q.batches({ batchSize: 2, over: "z", tile: { y: 4 }, edge: "crop" as never }),
      /edge "crop"/,
    ],
    [() => q.batches({ batchSize: 2, over: "z", overlap: { y: 1 } }), /overlap needs tile/],
    [() => q.batches({ batchSize: 2, over: "z", shuffle: 1 as never }), /shuffle 1/],
    [() => q.batches({ batchSize: 2, over: "z", shuffle: true, seed: 2 ** 32 }), /seed/],
    [() => q.batches({ batchSize: 2, over: "z", prefetch: 1.5 }), /prefetch 1.5/],
  ];
  for (const [call, message] of bad) {
    assert.throws(call, (e: unknown) => {
      assert.ok(e instanceof InvalidArgument, String(e));
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("fill values convert like the native cast", () => {
  const bytes = (dtype: Parameters<typeof castScalar>[1], value: number | bigint) => {
    const b = new Uint8Array(8);
    const view = new DataView(b.buffer);
    if (dtype === "float32") view.setFloat32(0, Number(value), true);
    else if (dtype === "float64") view.setFloat64(0, Number(value), true);
    else if (dtype === "int64") view.setBigInt64(0, BigInt(value), true);
    else view.setUint16(0, Number(value), true);
    return b;
  };
  const as = (out: Uint8Array, read: (v: DataView) => number | bigint) =>
    read(new DataView(out.buffer));
  const f = (v: number, to: Parameters<typeof castScalar>[2]) =>
    castScalar(bytes("float64", v), "float64", to);
  assert.equal(as(f(-3.7, "int8"), (v) => v.getInt8(0)), -3);
  assert.equal(as(f(1e9, "int16"), (v) => v.getInt16(0, true)), 32767);
  assert.equal(as(f(NaN, "uint32"), (v) => v.getUint32(0, true)), 0);
  assert.equal(as(f(-1e30, "int64"), (v) => v.getBigInt64(0, true)), -(2n ** 63n));
  assert.equal(as(f(NaN, "bool"), (v) => v.getUint8(0)), 1);
  assert.equal(as(f(1.00390625, "bfloat16"), (v) => v.getUint16(0, true)), 0x3f80); // tie → even
  assert.equal(as(f(1.0039062500001, "bfloat16"), (v) => v.getUint16(0, true)), 0x3f81);
  assert.equal(as(f(65520, "float16"), (v) => v.getUint16(0, true)), 0x7c00); // rounds to inf
  const u = castScalar(bytes("uint16", 9999), "uint16", "int8");
  assert.equal(as(u, (v) => v.getInt8(0)), 15);
  const big = castScalar(bytes("int64", 2n ** 60n + 1n), "int64", "float32");
  assert.equal(as(big, (v) => v.getFloat32(0, true)), 2 ** 60);
  const wrap = castScalar(bytes("int64", -1n), "int64", "uint16");
  assert.equal(as(wrap, (v) => v.getUint16(0, true)), 65535);
});
