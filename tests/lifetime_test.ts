/**
 * Lifetimes: 100 000 collect/dispose cycles and 10 000 DLPack export/delete
 * cycles keep resident memory flat and hold no native buffer afterwards;
 * views used after dispose throw instead of touching freed memory; the
 * FinalizationRegistry frees views users forget (a child process run with
 * `--v8-flags=--expose-gc`).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { liveNativeBytes, open, Shutdown } from "../mod.ts";
import { ROOT } from "./helpers.ts";
import { checkBox, rss, writeVolume } from "./reliability_helpers.ts";

const SHAPE: [number, number, number] = [8, 256, 256];
let volume: Promise<string> | undefined;
const store = () => volume ??= writeVolume("lifetime.zarr", SHAPE, [4, 128, 128], [4, 32, 32]);
const TOLERANCE = 48 << 20;

Deno.test("100 000 collect/dispose cycles keep memory flat", async () => {
  using img = await open(await store());
  const query = img.scan().select({ z: 3, y: [32, 64], x: [64, 96] });
  const cycle = async (i: number) => {
    using view = await query.collect();
    if (i % 1000 === 0) {
      assert.equal(checkBox(view.data() as Uint16Array, [3, 32, 64], [1, 32, 32]), undefined);
    }
  };
  for (let i = 0; i < 2000; i++) await cycle(i); // warm-up: pools, JIT, heap
  const baseline = liveNativeBytes();
  const before = rss();
  for (let i = 0; i < 100_000; i++) await cycle(i);
  const grown = rss() - before;
  assert.equal(liveNativeBytes(), baseline, "no native buffer left behind");
  assert.ok(grown < TOLERANCE, `resident memory grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
});

Deno.test("10 000 DLPack export/delete cycles keep memory flat", async () => {
  using img = await open(await store());
  const query = img.scan().select({ z: 5, y: [0, 32], x: [0, 32] });
  const deleterOf = (capsule: Deno.PointerObject) =>
    new Deno.UnsafeFnPointer(
      Deno.UnsafePointer.create(new Deno.UnsafePointerView(capsule).getBigUint64(16))!,
      { parameters: ["pointer"], result: "void" } as const,
    );
  // Each cycle: a fresh view, exported, the view disposed first, then the
  // consumer's single deleter call (DLManagedTensorVersioned.deleter at byte
  // 16) frees the memory; a capsule that leaked would keep its buffer alive.
  const cycle = async () => {
    const view = await query.collect();
    const capsule = view.toDLPack({ versioned: true });
    view[Symbol.dispose]();
    deleterOf(capsule).call(capsule);
  };
  for (let i = 0; i < 500; i++) await cycle();
  const baseline = liveNativeBytes();
  const before = rss();
  for (let i = 0; i < 10_000; i++) await cycle();
  const grown = rss() - before;
  assert.equal(liveNativeBytes(), baseline, "every exported buffer was freed by its deleter");
  assert.ok(grown < TOLERANCE, `resident memory grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
  // a capsule keeps its memory alive after the view is gone
  const view = await query.collect();
  const capsule = view.toDLPack({ versioned: false });
  const held = liveNativeBytes();
  view[Symbol.dispose]();
  assert.equal(liveNativeBytes(), held, "the capsule still holds the buffer");
  new Deno.UnsafeFnPointer(
    Deno.UnsafePointer.create(new Deno.UnsafePointerView(capsule).getBigUint64(56))!,
    { parameters: ["pointer"], result: "void" } as const,
  ).call(capsule); // legacy DLManagedTensor: deleter at byte 56
  assert.equal(liveNativeBytes(), baseline);
});

Deno.test("views used after dispose throw and never expose freed memory", async () => {
  using img = await open(await store());
  const view = await img.scan().select({ z: 0 }).collect();
  const data = view.data() as Uint16Array;
  const derived = view.select({ y: [0, 2] });
  assert.equal(data.length, 256 * 256);
  view[Symbol.dispose]();
  assert.equal(data.length, 0, "typed arrays taken earlier are detached, not dangling");
  assert.throws(() => view.data(), Shutdown);
  assert.throws(() => view.toDLPack(), Shutdown);
  assert.throws(() => view.at(0, 0), Shutdown);
  await assert.rejects(view.contiguous(), Shutdown);
  // a derived view holds its own reference: still readable
  assert.equal((derived.data() as Uint16Array).length, 2 * 256);
  derived[Symbol.dispose]();
  view[Symbol.dispose](); // disposing twice is harmless
});

Deno.test("the FinalizationRegistry frees views that were never disposed", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      join(ROOT, "tests", "finalizer_child.ts"),
      await store(),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const { baseline, held, after } = JSON.parse(text);
  assert.ok(held > baseline, `forgotten views held ${held - baseline} bytes before collection`);
  assert.equal(after, baseline, "every forgotten view and import was freed by the finalizers");
});
