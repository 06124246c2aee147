/**
 * Query.explain() on sharded (and plain) peer stores: the plan's shape, dtype
 * and axes match collect(), and its chunk, byte and read counts match what
 * the test computes on its own from the array's shape, the chunk grid and the
 * shard indexes on disk.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type AxisSelection, type Counters, type DType, open } from "../mod.ts";
import {
  assertElementsEqual,
  axisIndices,
  type AxisSelections,
  itemSize,
  mulberry32,
  type PeerCase,
  peerCase,
  randomSelections,
  seedOf,
  selectionByName,
  sliceReference,
} from "./helpers.ts";

const MISSING = 0xffffffffffffffffn;

/** A shard on disk: its size and index entries (null when the inner chunk is absent). */
interface ShardOnDisk {
  size: number;
  indexSize: number;
  entries: ({ offset: number; nbytes: number } | null)[];
}

function product(xs: readonly number[]): number {
  return xs.reduce((a, b) => a * b, 1);
}

function unique(xs: number[]): number[] {
  return [...new Set(xs)];
}

/** Reads what the test needs of a store: shard files and their indexes (or plain chunk sizes). */
class Layout {
  readonly #cache = new Map<string, ShardOnDisk | null>();
  constructor(readonly c: PeerCase) {}

  get inner(): number[] {
    return this.c.meta.inner ?? this.c.meta.chunks;
  }

  /** Inner chunks per shard, along each axis. */
  get perShard(): number[] {
    return this.c.meta.chunks.map((s, d) => s / this.inner[d]);
  }

  file(outer: readonly number[]): string {
    return join(this.c.store, "c", ...outer.map(String));
  }

  shard(outer: readonly number[]): ShardOnDisk | null {
    const key = outer.join("/");
    if (this.#cache.has(key)) return this.#cache.get(key)!;
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(this.file(outer));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      this.#cache.set(key, null);
      return null;
    }
    let result: ShardOnDisk;
    if (this.c.meta.inner === null) {
      result = { size: bytes.length, indexSize: 0, entries: [] };
    } else {
      const n = product(this.perShard);
      const indexSize = 16 * n + 4;
      const dv = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - indexSize);
      const entries = [];
      for (let k = 0; k < n; k++) {
        const offset = dv.getBigUint64(16 * k, true);
        const nbytes = dv.getBigUint64(16 * k + 8, true);
        entries.push(
          offset === MISSING && nbytes === MISSING
            ? null
            : { offset: Number(offset), nbytes: Number(nbytes) },
        );
      }
      result = { size: bytes.length, indexSize, entries };
    }
    this.#cache.set(key, result);
    return result;
  }

  /** What a read of `sels` must touch, computed from the grid and the files. */
  expect(sels: AxisSelections) {
    const { meta } = this.c;
    const inner = this.inner;
    const innerPerAxis = meta.shape.map((n, d) =>
      unique(axisIndices(sels[d], n).indices.map((i) => Math.floor(i / inner[d])))
    );
    const outerPerAxis = meta.shape.map((n, d) =>
      unique(axisIndices(sels[d], n).indices.map((i) => Math.floor(i / meta.chunks[d])))
    );
    const chunksTouched = product(innerPerAxis.map((a) => a.length));
    const shardsTouched = product(outerPerAxis.map((a) => a.length));
    let chunksStored = 0;
    let minBytes = 0; // index reads plus every stored chunk's bytes
    let maxBytes = 0; // whole files
    let minOps = 0;
    let maxOps = 0;
    const perShard = new Map<string, { outer: number[]; stored: number }>();
    const pos = innerPerAxis.map(() => 0);
    for (let k = 0; k < chunksTouched; k++) {
      const cell = innerPerAxis.map((a, d) => a[pos[d]]);
      const outer = cell.map((ci, d) => Math.floor((ci * inner[d]) / meta.chunks[d]));
      const shard = this.shard(outer);
      const key = outer.join("/");
      if (!perShard.has(key)) perShard.set(key, { outer, stored: 0 });
      if (shard) {
        if (meta.inner === null) {
          chunksStored++;
          minBytes += shard.size;
          perShard.get(key)!.stored++;
        } else {
          const local = cell.map((ci, d) => ci - outer[d] * this.perShard[d]);
          let linear = 0;
          for (let d = 0; d < local.length; d++) linear = linear * this.perShard[d] + local[d];
          const entry = shard.entries[linear];
          if (entry) {
            chunksStored++;
            minBytes += entry.nbytes;
            perShard.get(key)!.stored++;
          }
        }
      }
      for (let d = pos.length - 1; d >= 0; d--) {
        if (++pos[d] < innerPerAxis[d].length) break;
        pos[d] = 0;
      }
    }
    for (const { outer, stored } of perShard.values()) {
      const shard = this.shard(outer);
      if (!shard) continue;
      maxBytes += shard.size;
      if (meta.inner === null) {
        minOps += 1;
        maxOps += 1;
      } else {
        minBytes += shard.indexSize;
        // one index read, then at least one and at most `stored` merged range reads
        minOps += 1 + (stored > 0 ? 1 : 0);
        maxOps += 1 + stored;
      }
    }
    assert.equal(perShard.size, shardsTouched, "test: shards seen = shards touched");
    const decoded = chunksStored * product(inner) * itemSize(meta.dtype);
    return {
      chunksTouched,
      shardsTouched,
      chunksStored,
      minBytes,
      maxBytes,
      minOps,
      maxOps,
      decoded,
      shards: [...perShard.values()],
    };
  }
}

async function checkPlan(
  c: PeerCase,
  layout: Layout,
  sels: AxisSelections,
  cast?: DType,
): Promise<
  { plan: Awaited<ReturnType<typeof explainOf>>; expected: ReturnType<Layout["expect"]> }
> {
  const { meta } = c;
  using img = await open(c.store);
  const selection = selectionByName(img.axes, sels);
  const label = `${c.name} ${JSON.stringify(selection)}${cast ? ` cast ${cast}` : ""}`;
  const plan = await explainOf(img, selection, cast);
  const expected = layout.expect(sels);

  let final: Counters | undefined;
  let query = img.scan().select(selection);
  if (cast) query = query.cast(cast);
  using view = await query.collect({ onProgress: (p) => (final = p) });
  assert.deepEqual(plan.shape, [...view.shape], `${label}: plan shape = collect shape`);
  assert.deepEqual(plan.axes, [...view.axes], `${label}: plan axes`);
  assert.equal(plan.layout, view.layout, `${label}: plan layout`);
  assert.equal(plan.dtype, view.dtype, `${label}: plan dtype`);
  assert.equal(plan.dtype, cast ?? meta.dtype, `${label}: plan dtype`);
  assert.equal(plan.outputBytes, view.byteLength, `${label}: outputBytes`);
  assert.equal(plan.level, 0);
  assert.equal(plan.path, c.store);

  assert.equal(plan.shardsTouched, expected.shardsTouched, `${label}: shardsTouched`);
  assert.equal(plan.chunksTouched, expected.chunksTouched, `${label}: chunksTouched`);
  assert.equal(plan.chunksStored, expected.chunksStored, `${label}: chunksStored`);
  assert.ok(plan.chunksStored <= plan.chunksTouched, `${label}: stored ≤ touched`);
  assert.ok(
    plan.bytesRead >= expected.minBytes && plan.bytesRead <= expected.maxBytes,
    `${label}: bytesRead ${plan.bytesRead} not in [${expected.minBytes}, ${expected.maxBytes}] ` +
      `(indexes + stored chunks … shard files on disk)`,
  );
  assert.ok(
    plan.readOps >= expected.minOps && plan.readOps <= expected.maxOps,
    `${label}: readOps ${plan.readOps} not in [${expected.minOps}, ${expected.maxOps}]`,
  );
  assert.equal(plan.bytesDecoded, expected.decoded, `${label}: bytesDecoded`);

  // the read itself touches what the plan said
  assert.ok(final, `${label}: onProgress was called`);
  assert.equal(final.outerTotal, plan.shardsTouched, `${label}: collect outerTotal`);
  assert.equal(final.outerDone, plan.shardsTouched, `${label}: collect outerDone`);
  assert.equal(final.chunksTouched, plan.chunksTouched, `${label}: collect chunksTouched`);
  assert.equal(final.chunksStored, plan.chunksStored, `${label}: collect chunksStored`);
  assert.equal(final.bytesRead, plan.bytesRead, `${label}: collect bytesRead`);
  assert.equal(final.readOps, plan.readOps, `${label}: collect readOps`);
  assert.equal(final.bytesDecoded, plan.bytesDecoded, `${label}: collect bytesDecoded`);
  assert.equal(final.bytesWritten, 0, `${label}: a read writes nothing`);

  if (!cast) {
    const ref = sliceReference(c.expected, meta.dtype, meta.shape, sels);
    assertElementsEqual(view.data(), ref.bytes, meta.dtype, { shape: ref.shape, label });
  }
  return { plan, expected };
}

async function explainOf(
  img: Awaited<ReturnType<typeof open>>,
  selection: Record<string, AxisSelection>,
  cast?: DType,
) {
  let q = img.scan().select(selection);
  if (cast) q = q.cast(cast);
  return await q.explain();
}

/** Selections of one shard's region (clipped to the array), and of a strict part of it. */
function shardBox(c: PeerCase, outer: readonly number[], shrink: boolean): AxisSelections {
  const { shape, chunks } = c.meta;
  return outer.map((o, d) => {
    const start = o * chunks[d];
    const stop = Math.min(start + chunks[d], shape[d]);
    if (!shrink || stop - start < 3) return [start, stop] as const;
    return [start + 1, stop - 1] as const;
  });
}

function outerGrid(c: PeerCase): number[][] {
  const g = c.meta.shape.map((n, d) => Math.ceil(n / c.meta.chunks[d]));
  const out: number[][] = [];
  const pos = g.map(() => 0);
  for (let k = 0; k < product(g); k++) {
    out.push([...pos]);
    for (let d = pos.length - 1; d >= 0; d--) {
      if (++pos[d] < g[d]) break;
      pos[d] = 0;
    }
  }
  return out;
}

const SHARDED = [
  "tensorstore-shard-3d-f32",
  "zarr-shard-5d-u16",
  "tensorstore-dtype-uint16",
  "zarr-dtype-float64",
  "zarr-shard-1d-i64",
  "tensorstore-shard-eq-inner-u32",
  "zarr-shard-bigger-than-array-u16",
  "zarr-nan-fill-shard-f32",
  "tensorstore-bigendian-shard-i16",
];

Deno.test("explain: sharded stores", async (t) => {
  for (const name of SHARDED) {
    await t.step(name, async () => {
      const c = await peerCase(name);
      assert.ok(c.meta.inner, `${name} is sharded`);
      const layout = new Layout(c);
      const { meta } = c;
      // whole array, random selections, one with a cast
      await checkPlan(c, layout, meta.shape.map(() => undefined));
      const rng = mulberry32(seedOf(`explain ${name}`));
      for (let k = 0; k < 8; k++) {
        await checkPlan(c, layout, randomSelections(rng, meta.shape, layout.inner));
      }
      await checkPlan(c, layout, randomSelections(rng, meta.shape, layout.inner), "float32");

      // inside one stored shard: one index read plus merged ranges; these
      // shards are far smaller than any merge gap, so the ranges merge into one
      const stored = outerGrid(c).filter((o) => layout.shard(o) !== null);
      assert.ok(stored.length > 0);
      for (const outer of [stored[0], stored[stored.length - 1]]) {
        for (const shrink of [false, true]) {
          const { plan, expected } = await checkPlan(c, layout, shardBox(c, outer, shrink));
          assert.equal(plan.shardsTouched, 1);
          const file = layout.shard(outer)!;
          assert.ok(plan.bytesRead <= file.size, `bytesRead ≤ shard file size ${file.size}`);
          assert.equal(plan.readOps, expected.chunksStored > 0 ? 2 : 1, "index + one merged read");
        }
      }
    });
  }
});

Deno.test("explain: never-written regions store nothing", async (t) => {
  for (const name of SHARDED) {
    const c = await peerCase(name);
    const layout = new Layout(c);
    const absent = outerGrid(c).filter((o) => layout.shard(o) === null);
    if (c.meta.absent.outer > 0) {
      assert.ok(absent.length > 0, `${name}: meta says a shard is absent`);
    }
    for (const outer of absent.slice(0, 2)) {
      await t.step(`${name} absent shard ${outer}`, async () => {
        const { plan } = await checkPlan(c, layout, shardBox(c, outer, false));
        assert.equal(plan.chunksStored, 0);
        assert.ok(plan.chunksTouched > 0);
        assert.equal(plan.bytesRead, 0);
        assert.equal(plan.readOps, 0);
        assert.equal(plan.bytesDecoded, 0);
      });
    }
    // an absent inner chunk inside a stored shard: only the index is read
    const inner = layout.inner;
    let found: { outer: number[]; cell: AxisSelections } | undefined;
    for (const outer of outerGrid(c)) {
      const shard = layout.shard(outer);
      if (!shard) continue;
      const per = layout.perShard;
      for (let k = 0; k < shard.entries.length && !found; k++) {
        if (shard.entries[k] !== null) continue;
        const local: number[] = [];
        let rest = k;
        for (let d = per.length - 1; d >= 0; d--) {
          local[d] = rest % per[d];
          rest = Math.floor(rest / per[d]);
        }
        const start = local.map((l, d) => (outer[d] * per[d] + l) * inner[d]);
        if (start.some((s, d) => s >= c.meta.shape[d])) continue; // past the array edge
        found = {
          outer,
          cell: start.map((s, d) => [s, Math.min(s + inner[d], c.meta.shape[d])] as const),
        };
      }
      if (found) break;
    }
    if (found) {
      const { outer, cell } = found;
      await t.step(`${name} absent inner chunk in shard ${outer}`, async () => {
        const { plan } = await checkPlan(c, layout, cell);
        assert.equal(plan.chunksTouched, 1);
        assert.equal(plan.chunksStored, 0);
        assert.equal(plan.readOps, 1, "the index only");
        assert.equal(plan.bytesRead, layout.shard(outer)!.indexSize);
        assert.equal(plan.bytesDecoded, 0);
      });
    }
  }
});

Deno.test("explain: plain chunks", async (t) => {
  for (const name of ["zarr-plain-zstd-3d-f32", "tensorstore-plain-bytes-1d-i32"]) {
    await t.step(name, async () => {
      const c = await peerCase(name);
      const layout = new Layout(c);
      const { meta } = c;
      const { plan } = await checkPlan(c, layout, meta.shape.map(() => undefined));
      assert.equal(plan.shardsTouched, plan.chunksTouched, "plain: every chunk is an outer chunk");
      assert.equal(plan.readOps, plan.chunksStored, "plain: one read per stored chunk");
      const rng = mulberry32(seedOf(`explain ${name}`));
      for (let k = 0; k < 6; k++) {
        await checkPlan(c, layout, randomSelections(rng, meta.shape, meta.chunks));
      }
    });
  }
});
