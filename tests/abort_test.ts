/**
 * Cancellation with `AbortSignal` (collect, tiles, batches, writes) and
 * crash-safe writers: aborted calls reject with `Aborted` after the native
 * work stopped and freed its memory; interrupted writes leave the
 * destination absent or marked incomplete, and readers refuse marked stores.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Aborted,
  type Counters,
  createArray,
  liveNativeBytes,
  open,
  StorageError,
  TesseraError,
  writeOmeZarr,
} from "../mod.ts";
import { INCOMPLETE_MARKER } from "../src/zarr/incomplete.ts";
import { ROOT, tempDir } from "./helpers.ts";
import { checkBox, volumeData, writeVolume } from "./reliability_helpers.ts";

const SHAPE: [number, number, number] = [32, 512, 512];
let volume: Promise<string> | undefined;
const store = () => volume ??= writeVolume("abort.zarr", SHAPE, [4, 128, 128], [4, 64, 64]);

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

Deno.test("collect: an aborted read stops early, rejects with Aborted and frees its memory", async () => {
  using img = await open(await store());
  const query = img.scan();
  // warm up: handles and pools exist before the baseline is taken
  (await query.select({ z: 0 }).collect())[Symbol.dispose]();
  const baseline = liveNativeBytes();

  const already = new AbortController();
  already.abort();
  await assert.rejects(query.collect({ signal: already.signal }), Aborted);

  const controller = new AbortController();
  let last: Counters | undefined;
  const reason = new Error("user stopped it");
  const pending = query.collect({ signal: controller.signal, onProgress: (c) => last = c });
  controller.abort(reason);
  const error = await pending.then(() => undefined, (e) => e);
  assert.ok(error instanceof Aborted, `got ${error}`);
  assert.ok(error instanceof TesseraError);
  assert.equal(error.name, "AbortError");
  assert.equal(error.cause, reason);
  assert.match(error.message, /read of .*abort\.zarr was aborted/);
  assert.ok(last, "final counters reported");
  assert.ok(
    last.outerDone < last.outerTotal,
    `native work stopped early: ${last.outerDone} of ${last.outerTotal} shards done`,
  );
  assert.equal(liveNativeBytes(), baseline, "the aborted output buffer was freed");

  // the same query still reads correctly afterwards
  using view = await query.collect({ signal: new AbortController().signal });
  assert.equal(checkBox(view.data() as Uint16Array, [0, 0, 0], SHAPE), undefined);
});

Deno.test("tiles and batches: aborting stops the iteration and frees read-ahead", async () => {
  using img = await open(await store());
  const baseline = liveNativeBytes();
  for (const kind of ["tiles", "batches"] as const) {
    const controller = new AbortController();
    const iterable = kind === "tiles"
      ? img.scan().tiles({ tile: { y: 128, x: 128 }, prefetch: 3, signal: controller.signal })
      : img.scan().batches({ over: "z", batchSize: 4, prefetch: 3, signal: controller.signal });
    let seen = 0;
    await assert.rejects(
      (async () => {
        for await (using _item of iterable) {
          if (++seen === 2) controller.abort();
        }
      })(),
      Aborted,
    );
    assert.equal(seen, 2, `${kind}: nothing is yielded after the abort`);
    assert.equal(liveNativeBytes(), baseline, `${kind}: read-ahead buffers were freed`);
  }
  assert.throws(
    () => img.scan().tiles({ tile: { y: 8 }, signal: "stop" as unknown as AbortSignal }),
    /signal "stop" must be an AbortSignal/,
  );
});

Deno.test("write: an aborted write leaves the incomplete marker, which readers refuse", async () => {
  const dir = await tempDir("tessera-abort-write-");
  const path = join(dir, "partial.zarr");
  const data = volumeData(SHAPE);
  using writer = await createArray(path, {
    shape: SHAPE,
    dtype: "uint16",
    chunks: [4, 64, 64],
    dimensionNames: ["z", "y", "x"],
  });
  const controller = new AbortController();
  const pending = writer.write(data, undefined, undefined, { signal: controller.signal });
  controller.abort();
  await assert.rejects(pending, Aborted);
  assert.ok(await exists(join(path, INCOMPLETE_MARKER)), "marker left behind");
  await assert.rejects(open(path), (e) => {
    assert.ok(e instanceof StorageError);
    assert.match(e.message, /partial\.zarr is incomplete: .*\.tessera-incomplete/);
    return true;
  });

  // writing half is not enough; writing the rest completes the array
  await writer.write(data.subarray(0, 16 * 512 * 512), [0, 0, 0], [16, 512, 512]);
  assert.ok(await exists(join(path, INCOMPLETE_MARKER)), "half the chunks are still unwritten");
  await writer.write(data.subarray(16 * 512 * 512), [16, 0, 0], [16, 512, 512]);
  assert.ok(!(await exists(join(path, INCOMPLETE_MARKER))), "marker removed once complete");
  using img = await open(path);
  using view = await img.scan().collect();
  assert.equal(checkBox(view.data() as Uint16Array, [0, 0, 0], SHAPE), undefined);
});

Deno.test("write: finish() declares a sparse array complete; refused after a failed write", async () => {
  const dir = await tempDir("tessera-sparse-");
  const path = join(dir, "sparse.zarr");
  using writer = await createArray(path, {
    shape: [128, 128],
    dtype: "uint8",
    chunks: [64, 64],
    fillValue: 3,
  });
  await writer.write(new Uint8Array(64 * 64).fill(7), [0, 64], [64, 64]);
  await assert.rejects(open(path), StorageError, "three chunks unwritten: still marked");
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(
    writer.write(new Uint8Array(64 * 64), [64, 0], [64, 64], { signal: controller.signal }),
    Aborted,
  );
  await assert.rejects(writer.finish(), /after a failed write/);
  await writer.write(new Uint8Array(64 * 64).fill(9), [64, 0], [64, 64]);
  await writer.finish();
  assert.ok(!(await exists(join(path, INCOMPLETE_MARKER))), "marker removed by finish()");
  using img = await open(path);
  using view = await img.scan().collect();
  const got = view.data() as Uint8Array;
  const expected = (y: number, x: number) => y < 64 ? (x >= 64 ? 7 : 3) : (x < 64 ? 9 : 3);
  for (const [y, x] of [[0, 0], [0, 127], [127, 0], [127, 127], [63, 64], [64, 63]]) {
    assert.equal(got[y * 128 + x], expected(y, x), `pixel ${y},${x}`);
  }
});

Deno.test("writeOmeZarr: an aborted or failed conversion leaves nothing at the destination", async () => {
  const dir = await tempDir("tessera-abort-convert-");
  const path = join(dir, "image.ome.zarr");
  const options = {
    axes: ["z", "y", "x"],
    shape: SHAPE,
    dtype: "uint16" as const,
    chunks: [4, 64, 64],
    levels: 3,
  };
  const controller = new AbortController();
  const pending = writeOmeZarr(path, volumeData(SHAPE), { ...options, signal: controller.signal });
  setTimeout(() => controller.abort(), 5);
  await assert.rejects(pending, Aborted);
  assert.deepEqual([...Deno.readDirSync(dir)], [], "no destination and no temporary folder");

  // an existing store is only replaced once the new one is complete
  await writeOmeZarr(path, volumeData(SHAPE), options);
  const again = new AbortController();
  again.abort();
  await assert.rejects(
    writeOmeZarr(path, new Uint16Array(SHAPE[0] * SHAPE[1] * SHAPE[2]), {
      ...options,
      overwrite: true,
      signal: again.signal,
    }),
    Aborted,
  );
  using img = await open(path);
  using view = await img.scan().collect();
  assert.equal(checkBox(view.data() as Uint16Array, [0, 0, 0], SHAPE), undefined);
});

Deno.test("writers killed mid-write (SIGKILL) leave marked or absent destinations", async () => {
  const dir = await tempDir("tessera-kill-");
  for (const mode of ["array", "image"]) {
    const path = join(dir, `${mode}.zarr`);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "tests", "interrupted_writer.ts"), mode, path],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let said = "";
    while (!said.includes("writing")) {
      const { value, done } = await reader.read();
      if (done) break;
      said += value;
    }
    child.kill("SIGKILL");
    await child.status;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      said += value;
    }
    assert.ok(!said.includes("done"), `${mode}: the writer was killed before it finished`);
    if (mode === "array") {
      assert.ok(await exists(join(path, "c", "0", "0", "0")), "array: its first box was stored");
      assert.ok(await exists(join(path, INCOMPLETE_MARKER)), "array: marker left behind");
      await assert.rejects(open(path), StorageError);
    } else {
      assert.ok(!(await exists(path)), "image: destination absent");
      const leftovers = [...Deno.readDirSync(dir)].filter((e) => e.name.includes(".tessera-tmp-"));
      for (const tmp of leftovers) await assert.rejects(open(join(dir, tmp.name)), StorageError);
    }
  }
});
