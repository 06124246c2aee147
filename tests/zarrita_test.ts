/**
 * zarrita (an independent JavaScript Zarr reader) as a second oracle: the same
 * peer stores read through zarrita and through tessera must give the same
 * elements for the same selections.
 */

import assert from "node:assert/strict";
import * as zarr from "zarrita";
import { FileSystemStore } from "@zarrita/storage";
import { open } from "../mod.ts";
import type { AxisSelection } from "../mod.ts";
import {
  assertElementsEqual,
  type AxisSelections,
  cellShape,
  itemSize,
  mulberry32,
  peerCase,
  randomSelections,
  seedOf,
  selectionByName,
  typedView,
} from "./helpers.ts";

/**
 * Stores compared with zarrita: sharded (bytes + zstd inside, crc32c index)
 * and plain zstd / bytes-only chunks, big-endian, every rank in the matrix,
 * NaN and non-zero fills, never-written shards and inner chunks. zarrita
 * 0.7.5 reads every codec (zstd through numcodecs' wasm build) and every
 * dtype of the matrix; `bool` arrays come back as a BoolArray whose bytes are
 * compared directly.
 */
const CASES = [
  "zarr-dtype-bool",
  "tensorstore-dtype-int8",
  "zarr-dtype-int64",
  "tensorstore-dtype-uint64",
  "zarr-dtype-float16",
  "tensorstore-dtype-float64",
  "zarr-plain-zstd-3d-f32",
  "tensorstore-plain-bytes-1d-i32",
  "zarr-plain-zstd-5d-i8",
  "tensorstore-bigendian-shard-i16",
  "zarr-bigendian-plain-zstd-f64",
  "tensorstore-bigendian-plain-bytes-u64",
  "tensorstore-shard-3d-f32",
  "zarr-shard-5d-u16",
  "zarr-shard-1d-i64",
  "tensorstore-nan-fill-shard-f32",
  "zarr-fill-shard-u32",
  "tensorstore-bool-fill-true-shard",
  "tensorstore-shard-bigger-than-array-u16",
];

function toZarrita(sel: AxisSelection | undefined): number | zarr.Slice | null {
  if (sel === undefined) return null;
  if (typeof sel === "number") return sel;
  return zarr.slice(sel[0], sel[1], sel[2] ?? 1);
}

function cStrides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = acc;
    acc *= shape[d];
  }
  return out;
}

Deno.test("zarrita agrees with tessera", async (t) => {
  for (const name of CASES) {
    await t.step(name, async () => {
      const c = await peerCase(name);
      const { meta } = c;
      const arr = await zarr.open(new FileSystemStore(c.store), { kind: "array" });
      assert.deepEqual(arr.shape, meta.shape, "zarrita shape");
      using img = await open(c.store);
      const rng = mulberry32(seedOf(`zarrita ${name}`));
      const selections: AxisSelections[] = [meta.shape.map(() => undefined)];
      for (let k = 0; k < 4; k++) {
        selections.push(randomSelections(rng, meta.shape, cellShape(meta)));
      }
      for (const sels of selections) {
        const selection = selectionByName(img.axes, sels);
        const label = `${name} ${JSON.stringify(selection)}`;
        const z = await zarr.get(arr, sels.map(toZarrita));
        using view = await img.scan().select(selection).collect();
        if (sels.every((s) => typeof s === "number")) {
          // every axis indexed: zarrita returns the bare scalar, tessera a 0-D view
          assert.deepEqual(view.shape, [], `${label}: 0-D shape`);
          const one = new Uint8Array(itemSize(meta.dtype));
          const slot = typedView(meta.dtype, one) as unknown as { [i: number]: unknown };
          slot[0] = typeof z === "boolean" ? Number(z) : z;
          assertElementsEqual(view.data(), one, meta.dtype, { label });
          continue;
        }
        assert.ok(typeof z === "object" && z !== null && "data" in z, `${label}: zarrita chunk`);
        assert.deepEqual(view.shape, z.shape, `${label}: shape`);
        assert.deepEqual(z.stride, cStrides(z.shape), `${label}: zarrita result is C order`);
        const zdata = z.data as unknown as ArrayBufferView;
        assertElementsEqual(view.data(), zdata, meta.dtype, { shape: view.shape, label });
      }
    });
  }
});
