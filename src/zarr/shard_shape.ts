/**
 * Default shard shapes for written arrays.
 * @module
 */

/** Shard shape: the chunk shape doubled along space axes (z, y, x, else the last three) while it fits. */
export function shardShape(
  axes: readonly string[],
  shape: readonly number[],
  chunks: readonly number[],
  itemSize: number,
  maxBytes: number,
): number[] {
  const shard = [...chunks];
  const space = axes.flatMap((a, i) => ["z", "y", "x"].includes(a) ? [i] : []);
  const grow = space.length > 0 ? space : axes.map((_, i) => i).slice(-3);
  const bytes = () => shard.reduce((a, b) => a * b, itemSize);
  for (let changed = true; changed;) {
    changed = false;
    for (const d of [...grow].reverse()) {
      if (shard[d] >= shape[d] || bytes() * 2 > maxBytes) continue;
      shard[d] *= 2;
      changed = true;
    }
  }
  // No shard reaches further than one chunk past the array's end.
  return shard.map((n, d) => Math.min(n, Math.ceil(shape[d] / chunks[d]) * chunks[d]));
}
