/**
 * Splitting an epoch between the ranks of a data-parallel job, with the rule
 * of PyTorch's `DistributedSampler`: rank `r` of `W` takes the positions
 * `r, r + W, r + 2W, …` of the epoch order. When the item count `N` is not a
 * multiple of `W`, `"pad"` (DistributedSampler's default) gives every rank
 * `⌈N / W⌉` items by wrapping around to the start of the epoch order (the
 * first `⌈N / W⌉·W − N` items are seen twice), and `"drop"`
 * (`drop_last=True`) gives every rank `⌊N / W⌋` items, leaving out the last
 * `N mod W` of the epoch order. Either way every rank has the same count, so
 * ranks stay in step, and every rank computes its share alone: no
 * coordinator.
 * @module
 */

import { InvalidArgument } from "./errors.ts";

/** How a rank's share is computed: rank in [0, worldSize) and the rule for uneven counts. */
export interface RankSplit {
  /** This process's rank, in [0, worldSize). */
  rank: number;
  /** Number of ranks. */
  worldSize: number;
  /** Item counts not divisible by worldSize: `"pad"` (repeat from the start) or `"drop"` (leave out the tail). */
  uneven: "pad" | "drop";
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Checks `rank`, `worldSize` and `uneven` of `what`'s options; both absent
 * mean a single rank. Throws {@link InvalidArgument} naming the bad value.
 */
export function checkRankSplit(
  options: { rank?: unknown; worldSize?: unknown; uneven?: unknown },
  what: string,
): RankSplit {
  const { rank, worldSize, uneven } = options;
  if (rank === undefined && worldSize === undefined) {
    if (uneven !== undefined) throw new InvalidArgument(`${what} uneven needs worldSize and rank`);
    return { rank: 0, worldSize: 1, uneven: "pad" };
  }
  if (worldSize === undefined || rank === undefined) {
    throw new InvalidArgument(
      `${what} ${rank === undefined ? "worldSize" : "rank"} needs ${
        rank === undefined ? "rank" : "worldSize"
      } too`,
    );
  }
  if (
    typeof worldSize !== "number" || !Number.isInteger(worldSize) || worldSize < 1 ||
    worldSize > 2 ** 31
  ) {
    throw new InvalidArgument(
      `${what} worldSize ${describe(worldSize)} must be an integer in [1, 2^31]`,
    );
  }
  if (typeof rank !== "number" || !Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new InvalidArgument(
      `${what} rank ${
        describe(rank)
      } must be an integer in [0, ${worldSize}) (worldSize ${worldSize})`,
    );
  }
  if (uneven !== undefined && uneven !== "pad" && uneven !== "drop") {
    throw new InvalidArgument(`${what} uneven ${describe(uneven)} must be "pad" or "drop"`);
  }
  return { rank, worldSize, uneven: uneven ?? "pad" };
}

/** How many of `count` items each rank takes. */
export function shareLength(count: number, split: RankSplit): number {
  return split.uneven === "drop"
    ? Math.floor(count / split.worldSize)
    : Math.ceil(count / split.worldSize);
}

/** The epoch-order position of a rank's `k`-th item (`k < shareLength`). */
export function sharePosition(k: number, count: number, split: RankSplit): number {
  return (split.rank + k * split.worldSize) % count;
}
