/**
 * One rank of tests/rank_test.ts's multi-process check: reads its share of
 * `batches()` over z of the test's store and prints, as JSON, the items it
 * got (`z@y` per slot) and the sum of every element it read.
 *
 * Usage: deno run -A tests/rank_child.ts STORE RANK WORLD_SIZE SEED UNEVEN
 */

import { open } from "../mod.ts";

const [store, rank, worldSize, seed, uneven] = Deno.args;
using img = await open(store);
const items: string[] = [];
let sum = 0;
for await (
  using b of img.scan().select({ t: 0, c: 0 }).batches({
    over: "z",
    batchSize: 4,
    tile: { y: 2 },
    shuffle: true,
    seed: Number(seed),
    rank: Number(rank),
    worldSize: Number(worldSize),
    uneven: uneven as "pad" | "drop",
  })
) {
  b.indices.forEach((z, s) => items.push(`${z}@${b.origins![s].y}`));
  for (const v of b.data() as Uint16Array) sum += v;
}
console.log(JSON.stringify({ items, sum }));
