/**
 * Run by tests/lifetime_test.ts with `--v8-flags=--expose-gc`: makes views
 * (some with typed arrays taken from them) and DLPack imports it never
 * disposes, drops them, collects garbage and prints the native bytes still
 * held before and after as JSON.
 * @module
 */

import { fromDLPack, liveNativeBytes, open } from "../mod.ts";

const gc = (globalThis as unknown as { gc: () => void }).gc;
const img = await open(Deno.args[0]);
const query = img.scan().select({ z: [0, 2] });
const settle = async () => {
  for (let i = 0; i < 20; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
};
await settle();
const baseline = liveNativeBytes();
/** Makes the views and imports in a frame of its own, which is gone when it returns. */
async function forget(): Promise<void> {
  let sum = 0;
  for (let i = 0; i < 200; i++) {
    const view = await query.collect(); // never disposed
    if (i % 2 === 0) sum += (view.data() as Uint16Array)[i]; // an ArrayBuffer now holds it
    if (i % 10 === 0) fromDLPack(view.toDLPack(), { axes: ["z", "y", "x"] }); // imported, forgotten
  }
  console.error(`checksum ${sum}`);
}
await forget();
const held = liveNativeBytes();
await settle();
console.log(JSON.stringify({ baseline, held, after: liveNativeBytes() }));
