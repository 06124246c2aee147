/**
 * OME-Arrow sources against the `ome-arrow` package: files it wrote from
 * seeded data (several dtypes, encodings, channels, z-planes, timepoints,
 * a multi-row file, IPC copies) read by tessera and compared with
 * `tensor_view(...).to_numpy()`; files tessera writes read back by
 * ome-arrow; OME-Zarr ↔ OME-Arrow conversion; bad input.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Aborted,
  convert,
  DecodeError,
  type DType,
  DtypeMismatch,
  InvalidArgument,
  NotFound,
  omeArrowToOmeZarr,
  omeArrowToOmeZarrConverter,
  omeZarrToOmeArrow,
  omeZarrToOmeArrowConverter,
  open,
  type Selection,
  StorageError,
  type TesseraError,
  writeOmeArrow,
  writeOmeZarr,
} from "../mod.ts";
import { ROOT, runPython, tempDir } from "./helpers.ts";

const PEER = join(ROOT, "tests", "interop", "omearrow_peer.py");

interface PeerQuery {
  t?: number | number[];
  z?: number | number[];
  c?: number | number[];
  roi?: [number, number, number, number];
  layout: string;
  dtype?: DType;
  shape: number[];
  raw: string;
}

interface PeerFile {
  path: string;
  row: number;
  format: "parquet" | "ipc";
  shape: number[];
  dtype: DType;
  encoding: string;
  channels: string[];
  cases: PeerQuery[];
}

let written: Promise<PeerFile[]> | undefined;

/** Files written by ome-arrow, with its answers (written once per process). */
function peerFiles(): Promise<PeerFile[]> {
  written ??= (async () => {
    const dir = await tempDir("tessera-omearrow-");
    await runPython([PEER, "write", dir]);
    return JSON.parse(await Deno.readTextFile(join(dir, "manifest.json"))).files;
  })();
  return written;
}

function bytesOf(view: { data(): ArrayBufferView }): Uint8Array {
  const d = view.data();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function selectionOf(q: PeerQuery): Selection {
  const sel: Selection = {};
  for (const axis of ["t", "z", "c"] as const) {
    const v = q[axis];
    if (v === undefined) continue;
    sel[axis] = typeof v === "number" ? v : v as unknown as [number, number];
  }
  if (q.roi) {
    const [x, y, w, h] = q.roi;
    sel.y = [y, y + h];
    sel.x = [x, x + w];
  }
  return sel;
}

Deno.test("OME-Arrow files written by ome-arrow: metadata", async () => {
  for (const f of await peerFiles()) {
    using img = await open(f.path, { row: f.row });
    assert.deepEqual(img.axes, ["t", "c", "z", "y", "x"], f.path);
    assert.deepEqual(img.shape, f.shape, f.path);
    assert.equal(img.dtype, f.dtype === "uint16" || f.encoding !== "list" ? f.dtype : "uint16");
    assert.deepEqual(img.channels, f.channels, f.path);
    assert.deepEqual(img.levels[0].scale, [1, 1, 2, 0.25, 0.5], f.path);
    assert.equal(img.axisInfo[4].unit, "µm");
  }
});

Deno.test("OME-Arrow files written by ome-arrow: queries equal tensor_view().to_numpy()", async () => {
  let compared = 0;
  const formats = new Set<string>();
  const dtypes = new Set<string>();
  for (const f of await peerFiles()) {
    using img = await open(f.path, { row: f.row });
    formats.add(`${f.format}/${f.encoding}`);
    dtypes.add(f.dtype);
    for (const q of f.cases) {
      let query = img.scan().select(selectionOf(q)).layout(q.layout);
      if (q.dtype) query = query.cast(q.dtype);
      using view = await query.collect();
      const what = `${f.path} row ${f.row} ${JSON.stringify(q)}`;
      assert.deepEqual(view.shape, q.shape, what);
      assert.equal(view.layout, q.layout, what);
      const expected = await Deno.readFile(q.raw);
      assert.ok(expected.length > 0, what);
      assert.deepEqual(bytesOf(view), expected, what);
      compared++;
    }
  }
  assert.ok(compared >= 90, `compared ${compared} queries`);
  for (const need of ["parquet/list", "parquet/planes", "parquet/bytes", "ipc/list", "ipc/bytes"]) {
    assert.ok(formats.has(need), `no ${need} file among ${[...formats]}`);
  }
  assert.ok(dtypes.size >= 6, `dtypes ${[...dtypes]}`);
});

Deno.test("OME-Arrow: tiles, batches, DLPack and Arrow export work on the source", async () => {
  const f = (await peerFiles()).find((x) => x.path.endsWith("u16_bytes_zstd.ome.parquet"))!;
  using img = await open(f.path);
  const plane = img.scan().select({ t: 1, z: 2 });
  using whole = await plane.collect();
  const [nc, ny, nx] = whole.shape;
  let tiles = 0;
  for await (using tile of plane.tiles({ tile: { y: 24, x: 20 } })) {
    const { y, x } = tile.origin as Record<string, number>;
    using expected =
      await (await whole.select({ y: [y, y + tile.shape[1]], x: [x, x + tile.shape[2]] }))
        .contiguous();
    assert.deepEqual(bytesOf(tile), bytesOf(expected));
    tiles++;
  }
  assert.equal(tiles, Math.ceil(ny / 24) * Math.ceil(nx / 20));
  let seen = 0;
  for await (using batch of img.scan().select({ t: 1 }).batches({ over: "z", batchSize: 3 })) {
    assert.equal(batch.layout, "NCYX");
    for (let i = 0; i < batch.shape[0]; i++) {
      using one = await img.scan().select({ t: 1, z: batch.indices[i] }).collect();
      using item = await batch.select({ n: i }).contiguous();
      assert.deepEqual(bytesOf(item), bytesOf(one));
    }
    seen += batch.shape[0];
  }
  assert.equal(seen, f.shape[2]);
  assert.equal(nc, f.shape[1]);
  const capsule = whole.toDLPack();
  assert.ok(capsule !== null);
  const table = whole.toArrow({ channels: img.channels });
  assert.equal(table.numRows, 1);
  const plan = await plane.select({ y: [0, 10], x: [0, 10] }).explain();
  assert.equal(plan.chunksTouched, 2, "one chunk per channel for a corner ROI");
  const full = await plane.explain();
  assert.ok(full.chunksTouched > plan.chunksTouched);
});

/** Seeded values spanning a dtype. */
function synth(dtype: DType, n: number, seed: number): ArrayBufferView<ArrayBuffer> {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const make = {
    uint8: () => Uint8Array.from({ length: n }, () => next() * 256),
    uint16: () => Uint16Array.from({ length: n }, () => next() * 65536),
    int16: () => Int16Array.from({ length: n }, () => next() * 65536 - 32768),
    int32: () => Int32Array.from({ length: n }, () => next() * 2 ** 32 - 2 ** 31),
    float32: () => Float32Array.from({ length: n }, () => (next() - 0.5) * 1e4),
    float64: () => Float64Array.from({ length: n }, () => (next() - 0.5) * 1e9),
  } as Record<string, () => ArrayBufferView<ArrayBuffer>>;
  return make[dtype]();
}

Deno.test("writeOmeArrow: ome-arrow reads back what tessera wrote (dtypes, formats, compression)", async () => {
  const dir = await tempDir("tessera-omearrow-write-");
  const shape = [2, 3, 4, 37, 45];
  const n = shape.reduce((a, b) => a * b, 1);
  const cases: [DType, "parquet" | "ipc", number | null][] = [
    ["uint16", "parquet", 3],
    ["uint8", "ipc", null],
    ["int16", "parquet", null],
    ["int32", "ipc", 1],
    ["float32", "parquet", 3],
    ["float64", "parquet", 5],
  ];
  for (const [i, [dtype, format, zstdLevel]] of cases.entries()) {
    const data = synth(dtype, n, 11 + i);
    const zarr = join(dir, `${dtype}.ome.zarr`);
    await writeOmeZarr(zarr, data as never, {
      axes: ["t", "c", "z", "y", "x"],
      shape,
      dtype,
      chunks: [1, 1, 2, 16, 16],
    });
    using img = await open(zarr);
    using view = await img.scan().collect();
    const target = join(dir, `${dtype}.${format === "ipc" ? "arrow" : "ome.parquet"}`);
    await writeOmeArrow(target, view, {
      format,
      zstdLevel,
      chunks: { z: 2, y: 20, x: 16 },
      channels: ["a", "b", "c"],
      physicalSize: { z: 3, y: 0.5, x: 0.5 },
    });
    const raw = join(dir, `${dtype}.bin`);
    const info = JSON.parse(await runPython([PEER, "read", target, raw]));
    assert.deepEqual(info.shape, shape, target);
    assert.equal(info.dtype, dtype, target);
    assert.deepEqual(info.channels, ["a", "b", "c"]);
    assert.deepEqual(info.physical, [3, 0.5, 0.5]);
    assert.equal(info.type, true, "the record has ome-arrow's OME_ARROW_BYTE_STRUCT type");
    assert.deepEqual(
      await Deno.readFile(raw),
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      target,
    );
    // and tessera reads its own file back
    using back = await open(target);
    using all = await back.scan().collect();
    assert.deepEqual(bytesOf(all), new Uint8Array(data.buffer));
    await assert.rejects(() => writeOmeArrow(target, view), StorageError, "no overwrite");
  }
});

Deno.test("writeOmeArrow: views with fewer or permuted axes", async () => {
  const dir = await tempDir("tessera-omearrow-axes-");
  const f = (await peerFiles()).find((x) => x.path.endsWith("u8_bytes.ome.parquet"))!;
  using img = await open(f.path);
  using yxc = (await img.scan().select({ t: 0, z: 1 }).collect()).withLayout("YXC");
  const target = join(dir, "plane.ome.parquet");
  await writeOmeArrow(target, yxc);
  using back = await open(target);
  assert.deepEqual(back.shape, [1, f.shape[1], 1, f.shape[3], f.shape[4]]);
  using plane = await back.scan().select({ t: 0, z: 0 }).layout("YXC").collect();
  using packed = await yxc.contiguous();
  assert.deepEqual(bytesOf(plane), bytesOf(packed));
  await assert.rejects(
    async () => {
      using bad = await img.scan().select({ t: 0, z: 0 }).cast("bfloat16").collect();
      await writeOmeArrow(join(dir, "bf16.ome.parquet"), bad);
    },
    InvalidArgument,
  );
});

Deno.test("OME-Zarr → OME-Arrow → OME-Zarr keeps pixels, channels and scale", async () => {
  const dir = await tempDir("tessera-omearrow-convert-");
  const f = (await peerFiles()).find((x) => x.path.endsWith("f32_bytes_zstd.ome.parquet"))!;
  const zarr = join(dir, "back.ome.zarr");
  await omeArrowToOmeZarr(f.path, zarr, { chunks: [1, 1, 1, 16, 16] });
  const arrow = join(dir, "again.arrow");
  await omeZarrToOmeArrow(zarr, arrow);
  using a = await open(f.path);
  using z = await open(zarr);
  using b = await open(arrow);
  assert.equal(z.ngffVersion, "0.5");
  for (const img of [z, b]) {
    assert.deepEqual(img.shape, a.shape);
    assert.deepEqual(img.channels, a.channels);
    assert.deepEqual(img.levels[0].scale, a.levels[0].scale);
    using va = await a.scan().collect();
    using vb = await img.scan().collect();
    assert.deepEqual(bytesOf(vb), bytesOf(va));
  }
});

Deno.test("OME-Arrow bad input gives typed errors naming the file", async () => {
  const dir = await tempDir("tessera-omearrow-bad-");
  await runPython([PEER, "bad", dir]);
  const at = (name: string) => join(dir, name);
  const rejects = async (
    name: string,
    cls: new (...a: never[]) => TesseraError,
    pattern: RegExp,
    read = false,
  ) => {
    await assert.rejects(
      async () => {
        using img = await open(at(name));
        if (read) (await img.scan().collect())[Symbol.dispose]();
      },
      (e: unknown) => {
        assert.ok(e instanceof cls, `${name}: ${e}`);
        assert.match((e as Error).message, new RegExp(name.replace(".", "\\.")));
        assert.match((e as Error).message, pattern);
        return true;
      },
    );
  };
  using good = await open(at("good.ome.parquet"));
  assert.deepEqual(good.shape, [1, 2, 2, 20, 24]);
  await rejects("truncated.ome.parquet", DecodeError, /truncated/);
  await rejects("not_arrow.parquet", StorageError, /neither a Parquet nor an Arrow IPC file/);
  await rejects("not_ome.parquet", StorageError, /no OME-Arrow struct column/);
  await rejects("complex.ome.parquet", DtypeMismatch, /complex64/);
  await rejects("outside.ome.parquet", DecodeError, /chunks\[0\].*outside the image/);
  await rejects("short_chunk.ome.parquet", DecodeError, /chunks\[1\].*pixel values/, true);
  await assert.rejects(() => open(at("good.ome.parquet"), { row: 1 }), InvalidArgument);
  await assert.rejects(() => open(at("good.ome.parquet"), { column: "nope" }), NotFound);
  const before = await Deno.readFile(at("good.ome.parquet"));
  using again = await open(at("good.ome.parquet"));
  (await again.scan().collect())[Symbol.dispose]();
  assert.deepEqual(await Deno.readFile(at("good.ome.parquet")), before, "reading writes nothing");
});

Deno.test("convert(): OME-Zarr → OME-Arrow read by ome-arrow, and back to sharded OME-Zarr", async () => {
  const dir = await tempDir("tessera-omearrow-convert-cli-");
  const shape = [1, 2, 3, 40, 48];
  const data = synth("uint16", shape.reduce((a, b) => a * b, 1), 7);
  const zarr = join(dir, "src.ome.zarr");
  await writeOmeZarr(zarr, data as never, {
    axes: ["t", "c", "z", "y", "x"],
    shape,
    dtype: "uint16",
    chunks: [1, 1, 1, 16, 16],
    levels: 2,
  });
  const parquet = join(dir, "src.ome.parquet");
  const seen: number[] = [];
  const toArrow = await convert(zarr, parquet, { onProgress: (p) => seen.push(p.bytesDone) });
  assert.equal(toArrow.converter, omeZarrToOmeArrowConverter.name);
  assert.equal(toArrow.bytes, data.byteLength);
  assert.deepEqual(seen, [0, data.byteLength]);
  assert.match(toArrow.notes.join(" "), /only level 0 of 2/);
  const raw = join(dir, "src.bin");
  const peer = JSON.parse(await runPython([PEER, "read", parquet, raw]));
  assert.deepEqual(peer.shape, shape);
  assert.deepEqual(await Deno.readFile(raw), bytesOf({ data: () => data }));
  await assert.rejects(() => convert(zarr, parquet), StorageError, "no overwrite");

  const back = join(dir, "back.ome.zarr");
  const toZarr = await convert(parquet, back);
  assert.equal(toZarr.converter, omeArrowToOmeZarrConverter.name);
  assert.ok(toZarr.levels.length >= 1 && toZarr.levels[0].shards.length === 5, "sharded levels");
  assert.deepEqual(toZarr.levels[0].shape, shape);
  const zarrRaw = join(dir, "back.bin");
  await runPython([
    "-c",
    "import sys, zarr, numpy as np; a = zarr.open_array(sys.argv[1], mode='r'); " +
    "open(sys.argv[2], 'wb').write(np.ascontiguousarray(a[...]).tobytes())",
    join(back, "0"),
    zarrRaw,
  ]);
  assert.deepEqual(await Deno.readFile(zarrRaw), bytesOf({ data: () => data }));

  const aborted = new AbortController();
  aborted.abort(new Error("stop"));
  await assert.rejects(
    () => convert(parquet, join(dir, "never.ome.zarr"), { signal: aborted.signal }),
    Aborted,
  );
});
