/**
 * Concurrency: many overlapping collect() calls at once give the bytes the
 * store holds (checked against the generating function) and the same bytes
 * as serial calls; aborting half of them frees their memory; and a big read
 * never blocks the event loop (a timer keeps firing during it).
 */

import assert from "node:assert/strict";
import { Aborted, liveNativeBytes, open } from "../mod.ts";
import { mulberry32 } from "./helpers.ts";
import { checkBox, rss, writeVolume } from "./reliability_helpers.ts";

const SHAPE: [number, number, number] = [16, 512, 512];
let volume: Promise<string> | undefined;
const store = () => volume ??= writeVolume("concurrent.zarr", SHAPE, [8, 128, 128], [4, 32, 32]);

/** 64 overlapping boxes `[origin, shape]` over the middle of the volume. */
function boxes(): { origin: number[]; shape: number[] }[] {
  const rng = mulberry32(64);
  return Array.from({ length: 64 }, () => {
    const shape = [
      4 + Math.floor(rng() * 8),
      96 + Math.floor(rng() * 96),
      96 + Math.floor(rng() * 96),
    ];
    const origin = shape.map((n, d) => Math.floor(rng() * (SHAPE[d] - n)));
    return { origin, shape };
  });
}

const selection = (b: { origin: number[]; shape: number[] }) => ({
  z: [b.origin[0], b.origin[0] + b.shape[0]] as [number, number],
  y: [b.origin[1], b.origin[1] + b.shape[1]] as [number, number],
  x: [b.origin[2], b.origin[2] + b.shape[2]] as [number, number],
});

Deno.test("64 concurrent overlapping collect() calls equal serial calls and the stored data", async () => {
  using img = await open(await store());
  const list = boxes();
  const serial: Uint16Array[] = [];
  for (const b of list) {
    using view = await img.scan().select(selection(b)).collect();
    serial.push((view.data() as Uint16Array).slice());
  }
  const views = await Promise.all(list.map((b) => img.scan().select(selection(b)).collect()));
  try {
    views.forEach((view, i) => {
      const data = view.data() as Uint16Array;
      assert.equal(checkBox(data, list[i].origin, list[i].shape), undefined, `box ${i}`);
      assert.deepEqual(data, serial[i], `box ${i} equals its serial read`);
    });
  } finally {
    for (const v of views) v[Symbol.dispose]();
  }
});

Deno.test("aborting half of 64 concurrent reads frees their memory; the others are intact", async () => {
  using img = await open(await store());
  const list = boxes();
  (await img.scan().select(selection(list[0])).collect())[Symbol.dispose]();
  const baseline = liveNativeBytes();
  const controllers = list.map(() => new AbortController());
  const pending = list.map((b, i) =>
    img.scan().select(selection(b)).collect({ signal: controllers[i].signal })
  );
  controllers.forEach((c, i) => i % 2 === 1 && c.abort());
  const settled = await Promise.allSettled(pending);
  let kept = 0;
  for (const [i, s] of settled.entries()) {
    if (i % 2 === 1) {
      assert.equal(s.status, "rejected", `read ${i} was aborted`);
      assert.ok((s as PromiseRejectedResult).reason instanceof Aborted);
      continue;
    }
    assert.equal(s.status, "fulfilled", `read ${i} completed`);
    using view = (s as PromiseFulfilledResult<Awaited<(typeof pending)[0]>>).value;
    assert.equal(checkBox(view.data() as Uint16Array, list[i].origin, list[i].shape), undefined);
    kept += view.byteLength;
  }
  assert.ok(kept > 0);
  assert.equal(liveNativeBytes(), baseline, "aborted and disposed outputs are all freed");
});

Deno.test("a big read does not block the event loop: a timer keeps firing", async () => {
  using img = await open(await store());
  const query = img.scan().cast("float64"); // 32 MB of output, ~0.1-1 s of decoding
  (await query.select({ z: 0 }).collect())[Symbol.dispose]();
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const before = rss();
  try {
    const started = performance.now();
    let during = 0;
    const read = query.collect().then((v) => {
      during = ticks;
      return v;
    });
    // A blocking call would return only when the read is done, so its
    // promise would settle before any timer; here the timer comes first.
    const first = await Promise.race([
      read.then(() => "read"),
      new Promise((resolve) => setTimeout(() => resolve("timer"), 0)),
    ]);
    using view = await read;
    const elapsed = performance.now() - started;
    assert.equal(view.byteLength, SHAPE[0] * SHAPE[1] * SHAPE[2] * 8);
    assert.equal(first, "timer", `the read (${elapsed.toFixed(0)} ms) let a timer run first`);
    assert.ok(during >= 1, `${during} timer ticks during a ${elapsed.toFixed(0)} ms read`);
  } finally {
    clearInterval(timer);
  }
  assert.ok(rss() - before < 512 << 20);
});
