/**
 * Hostile OME-Arrow files (written by `omearrow_peer.py hostile` from a
 * record ome-arrow made): chunk origins and sizes that lie, raw and zstd
 * chunk bytes holding more or fewer pixels than their shape, bytes that
 * are not zstd, negative and huge declared sizes. Each gives the typed
 * error naming the file and the problem, leaves no native buffer behind,
 * and a huge declared shape allocates nothing by its size.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { BudgetExceeded, DecodeError, liveNativeBytes, open, type TesseraError } from "../mod.ts";
import { ROOT, runPython, tempDir } from "./helpers.ts";
import { rss } from "./reliability_helpers.ts";

const PEER = join(ROOT, "tests", "interop", "omearrow_peer.py");

type Case = [
  name: string,
  stage: "open" | "collect",
  error: new (...a: never[]) => TesseraError,
  message: RegExp,
];

const CASES: Case[] = [
  ...["raw", "zstd"].flatMap((tag): Case[] => [
    [
      `more_pixels_${tag}`,
      "collect",
      DecodeError,
      /chunks\[1\].*(holds \d+ pixel values where its shape|zstd)/,
    ],
    [`fewer_pixels_${tag}`, "collect", DecodeError, /chunks\[1\].*holds \d+ pixel values/],
    [`off_grid_${tag}`, "open", DecodeError, /chunks\[1\].*does not follow the chunk grid/],
    [`repeated_${tag}`, "open", DecodeError, /repeats the chunk at/],
    [`too_wide_${tag}`, "open", DecodeError, /chunks\[0\].*(outside the image|chunk grid)/],
  ]),
  ["not_zstd", "collect", DecodeError, /chunks\[2\].*zstd/],
  ["negative_shape", "open", DecodeError, /size_z is -2/],
  ["huge_shape", "open", DecodeError, /sizes .* are too large/],
];

let written: Promise<string> | undefined;

/** The hostile files, written once per process. */
function hostileFiles(): Promise<string> {
  written ??= (async () => {
    const dir = await tempDir("tessera-omearrow-hostile-");
    await runPython([PEER, "hostile", dir]);
    return dir;
  })();
  return written;
}

Deno.test("hostile OME-Arrow files give typed errors naming the file", async (t) => {
  const dir = await hostileFiles();
  const baseline = liveNativeBytes();
  for (const tag of ["raw", "zstd"]) {
    using good = await open(join(dir, `good_${tag}.ome.parquet`));
    (await good.scan().collect())[Symbol.dispose]();
  }
  for (const [name, stage, error, message] of CASES) {
    await t.step(name, async () => {
      const file = join(dir, `${name}.ome.parquet`);
      const got = await (async () => {
        using img = await open(file);
        assert.equal(stage, "collect", "open must fail");
        (await img.scan().collect())[Symbol.dispose]();
      })().then(() => undefined, (e) => e);
      assert.ok(got instanceof error, `expected ${error.name}, got ${got}`);
      assert.ok(got.message.includes(file), `names the file: ${got.message}`);
      assert.match(got.message, message);
      assert.equal(liveNativeBytes(), baseline, "no native buffer left behind");
    });
  }
});

Deno.test("an OME-Arrow file declaring a huge shape allocates nothing by it", async () => {
  const dir = await hostileFiles();
  const file = join(dir, "big_shape.ome.parquet");
  const before = rss();
  using img = await open(file);
  assert.deepEqual(img.shape, [1, 2, 2, 1 << 19, 1 << 19]);
  // the stored (full) chunks still read; the rest is fill
  using good = await open(join(dir, "good_zstd.ome.parquet"));
  const box = { t: 0, c: 1, z: 1, y: [0, 24], x: [0, 30] } as const;
  using got = await img.scan().select(box).collect();
  using want = await good.scan().select({ ...box, y: [0, 20], x: [0, 24] }).collect();
  const g = got.data() as Uint16Array;
  const w = want.data() as Uint16Array;
  for (let y = 0; y < 24; y++) {
    for (let x = 0; x < 30; x++) {
      assert.equal(g[y * 30 + x], y < 16 && x < 16 ? w[y * 24 + x] : 0, `y ${y} x ${x}`);
    }
  }
  // the whole image (2 TiB) is refused before anything is allocated
  await assert.rejects(img.scan().collect(), BudgetExceeded);
  const grown = rss() - before;
  assert.ok(grown < 128 << 20, `resident memory grew by ${grown} bytes`);
});

Deno.test("Arrow IPC files the fuzzer found give a DecodeError naming the file (regressions)", async () => {
  // inputs the omearrow fuzz target crashed on: two configuration bytes, then the file
  const cases: [string, RegExp][] = [
    ["ipc-buffer-past-body", /outside its block/],
    ["ipc-buffer-misaligned", /malformed Arrow IPC record batch|not 8-byte aligned/],
  ];
  const dir = await tempDir("tessera-omearrow-ipc-");
  const baseline = liveNativeBytes();
  for (const [name, message] of cases) {
    const found = await Deno.readFile(join(ROOT, "rust", "fuzz", "regressions", "omearrow", name));
    const file = join(dir, `${name}.arrow`);
    await Deno.writeFile(file, found.subarray(2));
    await assert.rejects(
      open(file),
      (e) => e instanceof DecodeError && e.message.includes(file) && message.test(e.message),
    );
  }
  assert.equal(liveNativeBytes(), baseline);
});
