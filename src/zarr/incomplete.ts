/**
 * The incomplete-write marker: a file that exists in a store while tessera
 * writes it and stays behind when a write is interrupted (a crash, an
 * error, an aborted signal), so that readers refuse the store instead of
 * reading chunks that were never written as the fill value.
 * @module
 */

import { join } from "node:path";
import { StorageError } from "../errors.ts";

/** Name of the marker file inside an array or image folder. */
export const INCOMPLETE_MARKER = ".tessera-incomplete";

/** Puts the marker into `dir`, saying what is being written. */
export async function markIncomplete(dir: string, what: string): Promise<void> {
  const text = JSON.stringify({ incomplete: what, since: new Date().toISOString() }) + "\n";
  await Deno.writeTextFile(join(dir, INCOMPLETE_MARKER), text);
}

/** Removes the marker from `dir` (a missing marker is fine). */
export async function clearIncomplete(dir: string): Promise<void> {
  await Deno.remove(join(dir, INCOMPLETE_MARKER)).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

/** Throws a {@link StorageError} naming `dir` when it holds the marker. */
export async function checkComplete(dir: string): Promise<void> {
  const marker = join(dir, INCOMPLETE_MARKER);
  const present = await Deno.lstat(marker).then(() => true, () => false);
  if (present) {
    throw new StorageError(
      `${dir} is incomplete: ${marker} marks a write that was interrupted or failed before ` +
        `every chunk was written; write the data again (or delete the store)`,
    );
  }
}

/**
 * Which outer chunks (shards) of an array have been written: the array is
 * complete once every one of them was written by a write that succeeded.
 */
export class Coverage {
  readonly #grid: number[];
  readonly #done: Uint8Array;
  #remaining: number;

  /** Coverage of an array of `shape` in chunks of `chunkShape`, none written yet. */
  constructor(shape: readonly number[], chunkShape: readonly number[]) {
    this.#grid = shape.map((n, d) => Math.ceil(n / chunkShape[d]));
    this.#remaining = this.#grid.reduce((a, b) => a * b, 1);
    this.#done = new Uint8Array(this.#remaining);
  }

  /** Whether every chunk was written. */
  get complete(): boolean {
    return this.#remaining === 0;
  }

  /**
   * Marks (or, with `written` false, unmarks) the chunks of the chunk-aligned
   * box `[origin, origin + shape)`, `chunkShape` being the grid's.
   */
  set(
    origin: readonly number[],
    shape: readonly number[],
    chunkShape: readonly number[],
    written: boolean,
  ): void {
    const lo = origin.map((o, d) => Math.floor(o / chunkShape[d]));
    const hi = origin.map((o, d) => Math.ceil((o + shape[d]) / chunkShape[d]));
    if (lo.some((l, d) => l >= hi[d])) return;
    const index = [...lo];
    for (;;) {
      let linear = 0;
      for (let d = 0; d < index.length; d++) linear = linear * this.#grid[d] + index[d];
      const was = this.#done[linear] === 1;
      if (was !== written) {
        this.#done[linear] = written ? 1 : 0;
        this.#remaining += written ? -1 : 1;
      }
      let d = index.length - 1;
      while (d >= 0 && ++index[d] === hi[d]) {
        index[d] = lo[d];
        d--;
      }
      if (d < 0) return;
    }
  }
}
