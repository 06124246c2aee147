/**
 * Bad input gives the typed error class with a message naming the input.
 * Stores are copied to a temporary folder before they are corrupted, and the
 * peer stores are checked to be unchanged afterwards.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DecodeError,
  DtypeMismatch,
  InvalidArgument,
  NotFound,
  open,
  Shutdown,
  StorageError,
  TesseraError,
} from "../mod.ts";
import type { DType } from "../mod.ts";
import {
  assertElementsEqual,
  copyTree,
  editJson,
  type PeerCase,
  peerCase,
  snapshotTree,
  tempDir,
} from "./helpers.ts";

// deno-lint-ignore no-explicit-any
type ErrorClass = new (...args: any[]) => Error;

/** Awaits `fn`, which must throw an instance of `cls` whose message contains every fragment. */
async function expectError(
  fn: () => unknown,
  cls: ErrorClass,
  ...fragments: string[]
): Promise<Error> {
  let error: unknown;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, `expected ${cls.name}, nothing was thrown`);
  assert.ok(
    error instanceof cls,
    `expected ${cls.name}, got ${(error as Error)?.constructor?.name}: ${
      (error as Error)?.message ?? error
    }`,
  );
  assert.ok(error instanceof TesseraError, "every error is a TesseraError");
  assert.equal(error.name, error.constructor.name, "error name is its class name");
  for (const f of fragments) {
    assert.ok(error.message.includes(f), `message ${JSON.stringify(error.message)} lacks ${f}`);
  }
  return error;
}

/** A copy of a peer store in a fresh temp folder, and a check that the original stays unchanged. */
async function copyOf(c: PeerCase, name: string): Promise<string> {
  const dir = join(await tempDir("tessera-errors-"), name);
  await copyTree(c.store, dir);
  return dir;
}

/** The first stored chunk file under `store/c`, as a path. */
async function firstChunkFile(store: string): Promise<string> {
  const walk = async (dir: string): Promise<string | undefined> => {
    const entries = [];
    for await (const e of Deno.readDir(dir)) entries.push(e);
    entries.sort((a, b) => Number(a.name) - Number(b.name));
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isFile) return path;
      const found = await walk(path);
      if (found) return found;
    }
    return undefined;
  };
  const found = await walk(join(store, "c"));
  if (!found) throw new Error(`${store} has no stored chunk`);
  return found;
}

/** Selection (per axis name) of the region of the chunk stored at `file`. */
function chunkRegion(
  store: string,
  file: string,
  axes: readonly string[],
  chunks: readonly number[],
  shape: readonly number[],
): Record<string, [number, number]> {
  const coords = file.slice(join(store, "c").length + 1).split("/").map(Number);
  const sel: Record<string, [number, number]> = {};
  axes.forEach((a, d) => {
    sel[a] = [coords[d] * chunks[d], Math.min((coords[d] + 1) * chunks[d], shape[d])];
  });
  return sel;
}

// crc32c (Castagnoli), for rewriting a shard index with a valid checksum
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

Deno.test("errors: paths, metadata and selections", async (t) => {
  const plain = await peerCase("zarr-plain-zstd-3d-f32");
  const before = await snapshotTree(plain.store);

  await t.step("missing path → NotFound", async () => {
    const missing = join(await tempDir("tessera-errors-"), "no-such.zarr");
    await expectError(() => open(missing), NotFound, missing);
  });

  await t.step("a folder that is not a Zarr store → StorageError", async () => {
    const dir = await tempDir("tessera-errors-");
    await Deno.writeTextFile(join(dir, "notes.txt"), "not zarr");
    await expectError(() => open(dir), StorageError, dir, "zarr.json");
  });

  await t.step("a file instead of a folder → StorageError", async () => {
    const file = join(plain.dir, "meta.json");
    await expectError(() => open(file), StorageError, file);
  });

  await t.step("a Zarr v2 store → StorageError saying v2", async () => {
    const dir = await tempDir("tessera-errors-");
    await Deno.writeTextFile(join(dir, ".zarray"), "{}");
    await expectError(() => open(dir), StorageError, dir, "v2");
  });

  await t.step("URL of an unsupported scheme → InvalidArgument", async () => {
    await expectError(() => open("ftp://example.org/a.zarr"), InvalidArgument, "ftp://");
  });

  await t.step("zarr.json with invalid JSON → StorageError", async () => {
    const store = await copyOf(plain, "bad-json");
    await Deno.writeTextFile(join(store, "zarr.json"), '{"zarr_format": 3, "node_type": ');
    await expectError(() => open(store), StorageError, join(store, "zarr.json"), "JSON");
  });

  for (const codec of ["zfp", "packbits"]) {
    await t.step(`unsupported codec ${codec} → StorageError naming it`, async () => {
      const store = await copyOf(plain, `codec-${codec}`);
      await editJson(store, (j) => {
        (j.codecs as unknown[])[1] = { name: codec, configuration: { level: 5 } };
      });
      await expectError(() => open(store), StorageError, join(store, "zarr.json"), `"${codec}"`);
    });
  }

  await t.step("unsupported codec inside a shard → StorageError naming it", async () => {
    const shard = await peerCase("zarr-shard-3d-f32");
    const store = await copyOf(shard, "shard-codec");
    await editJson(store, (j) => {
      const sharding = (j.codecs as { configuration: { codecs: unknown[] } }[])[0];
      sharding.configuration.codecs[1] = { name: "bitround", configuration: { keepbits: 8 } };
    });
    await expectError(() => open(store), StorageError, join(store, "zarr.json"), `"bitround"`);
  });

  await t.step("unsupported data_type complex64 → StorageError naming it", async () => {
    const store = await copyOf(plain, "complex");
    await editJson(store, (j) => {
      j.data_type = "complex64";
    });
    await expectError(() => open(store), StorageError, join(store, "zarr.json"), "complex64");
  });

  await t.step("a plain group without multiscales → NotFound", async () => {
    const dir = await tempDir("tessera-errors-");
    await Deno.writeTextFile(
      join(dir, "zarr.json"),
      JSON.stringify({ zarr_format: 3, node_type: "group", attributes: { other: 1 } }),
    );
    await expectError(() => open(dir), NotFound, dir, "multiscales");
  });

  using img = await open(plain.store); // z 20, y 33, x 17
  const source = plain.store;

  await t.step("index beyond the axis → InvalidArgument naming the axis", async () => {
    await expectError(() => img.scan().select({ y: 33 }).collect(), InvalidArgument, `"y"`, "33");
    await expectError(() => img.scan().select({ z: -21 }).collect(), InvalidArgument, `"z"`, "-21");
    await expectError(() => img.scan().select({ x: 1.5 }).collect(), InvalidArgument, `"x"`);
  });

  await t.step("[start, stop] outside the axis → InvalidArgument", async () => {
    await expectError(
      () => img.scan().select({ x: [10, 18] }).collect(),
      InvalidArgument,
      `"x"`,
      "18",
      source,
    );
    await expectError(() => img.scan().select({ x: [-18, 3] }).explain(), InvalidArgument, `"x"`);
    await expectError(() => img.scan().select({ y: [5, 5] }).collect(), InvalidArgument, `"y"`);
    await expectError(() => img.scan().select({ y: [6, 5] }).collect(), InvalidArgument, `"y"`);
  });

  await t.step("step 0 or negative → InvalidArgument", async () => {
    await expectError(() => img.scan().select({ z: [0, 4, 0] }).collect(), InvalidArgument, "step");
    await expectError(() => img.scan().select({ z: [0, 4, -1] }).collect(), InvalidArgument, `"z"`);
  });

  await t.step("malformed selection → InvalidArgument", async () => {
    const bad = [1, 2, 3, 4] as unknown as [number, number];
    await expectError(() => img.scan().select({ z: bad }).collect(), InvalidArgument, `"z"`);
  });

  await t.step("unknown axis name → InvalidArgument naming the axis", async () => {
    await expectError(() => img.scan().select({ q: 1 }), InvalidArgument, `"q"`, "z, y, x");
    await expectError(() => img.scan().select({ t: 0 }), InvalidArgument, `"t"`);
  });

  await t.step("wrong dtype name in cast → DtypeMismatch", async () => {
    await expectError(() => img.scan().cast("float8" as DType), DtypeMismatch, "float8");
    await expectError(() => img.scan().cast("Float32" as DType), DtypeMismatch, "Float32");
  });

  await t.step("level out of range → InvalidArgument", async () => {
    await expectError(() => img.scan().level(1), InvalidArgument, "level 1", source);
    await expectError(() => img.scan().level(-1), InvalidArgument, "level -1");
  });

  await t.step("unavailable device → TesseraError naming it", async () => {
    await expectError(() => img.scan().collect({ device: "cuda" }), TesseraError, `"cuda"`);
  });

  await t.step("the peer store is unchanged", async () => {
    assert.deepEqual(await snapshotTree(plain.store), before);
  });
});

Deno.test("errors: corrupt chunks and shards → DecodeError", async (t) => {
  const plain = await peerCase("zarr-plain-zstd-3d-f32");
  const sharded = await peerCase("tensorstore-shard-3d-f32");
  const before = [await snapshotTree(plain.store), await snapshotTree(sharded.store)];

  await t.step("corrupt zstd chunk names the chunk file", async () => {
    const store = await copyOf(plain, "corrupt-chunk");
    const file = await firstChunkFile(store);
    const bytes = await Deno.readFile(file);
    for (let i = 0; i < 8; i++) bytes[i] ^= 0xa5; // zstd frame magic and header
    await Deno.writeFile(file, bytes);
    using img = await open(store);
    const region = chunkRegion(store, file, img.axes, plain.meta.chunks, plain.meta.shape);
    await expectError(() => img.scan().collect(), DecodeError, file);
    await expectError(() => img.scan().select(region).collect(), DecodeError, file);
    // other chunks still read: decoding is per chunk
    using view = await img.scan().select({ z: [16, 20] }).collect();
    using ref = await open(plain.store);
    using expected = await ref.scan().select({ z: [16, 20] }).collect();
    assertElementsEqual(view.data(), expected.data(), "float32");
  });

  const shardFile = async (store: string) => await firstChunkFile(store);

  await t.step("truncated shard", async () => {
    const store = await copyOf(sharded, "truncated");
    const file = await shardFile(store);
    const bytes = await Deno.readFile(file);
    await Deno.writeFile(file, bytes.subarray(0, bytes.length >> 1));
    using img = await open(store);
    await expectError(() => img.scan().collect(), DecodeError, file);
    await expectError(() => img.scan().explain(), DecodeError, file);
  });

  await t.step("shard shorter than its index", async () => {
    const store = await copyOf(sharded, "tiny");
    const file = await shardFile(store);
    await Deno.writeFile(file, new Uint8Array(10));
    using img = await open(store);
    await expectError(() => img.scan().collect(), DecodeError, file);
  });

  await t.step("shard index with a wrong crc32c mentions the checksum", async () => {
    const store = await copyOf(sharded, "crc");
    const file = await shardFile(store);
    const bytes = await Deno.readFile(file);
    bytes[bytes.length - 12] ^= 0x01; // inside the last 20 bytes: index entries
    await Deno.writeFile(file, bytes);
    using img = await open(store);
    const e = await expectError(() => img.scan().collect(), DecodeError, file);
    assert.match(e.message, /checksum/);
  });

  await t.step("stored crc32c itself flipped", async () => {
    const store = await copyOf(sharded, "crc2");
    const file = await shardFile(store);
    const bytes = await Deno.readFile(file);
    bytes[bytes.length - 1] ^= 0x80;
    await Deno.writeFile(file, bytes);
    using img = await open(store);
    const e = await expectError(() => img.scan().collect(), DecodeError, file);
    assert.match(e.message, /checksum/);
  });

  await t.step("index entry outside the shard (valid crc32c)", async () => {
    const store = await copyOf(sharded, "range");
    const file = await shardFile(store);
    const bytes = await Deno.readFile(file);
    const meta = sharded.meta;
    const n = meta.chunks.reduce((a, c, d) => a * (c / meta.inner![d]), 1);
    const start = bytes.length - (16 * n + 4);
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    // find a stored entry and point it past the end of the shard
    let k = 0;
    while (dv.getBigUint64(start + 16 * k, true) === 0xffffffffffffffffn) k++;
    dv.setBigUint64(start + 16 * k, BigInt(bytes.length), true);
    dv.setUint32(bytes.length - 4, crc32c(bytes.subarray(start, bytes.length - 4)), true);
    await Deno.writeFile(file, bytes);
    using img = await open(store);
    await expectError(() => img.scan().collect(), DecodeError, file, "outside");
  });

  await t.step("corrupt inner chunk names the shard", async () => {
    const store = await copyOf(sharded, "inner");
    const file = await shardFile(store);
    const bytes = await Deno.readFile(file);
    const meta = sharded.meta;
    const n = meta.chunks.reduce((a, c, d) => a * (c / meta.inner![d]), 1);
    const start = bytes.length - (16 * n + 4);
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    // corrupt the zstd header of every stored inner chunk
    for (let k = 0; k < n; k++) {
      const offset = dv.getBigUint64(start + 16 * k, true);
      if (offset === 0xffffffffffffffffn) continue;
      for (let i = 0; i < 4; i++) bytes[Number(offset) + i] ^= 0xff;
    }
    await Deno.writeFile(file, bytes);
    using img = await open(store);
    await expectError(() => img.scan().collect(), DecodeError, file);
  });

  await t.step("the peer stores are unchanged", async () => {
    assert.deepEqual(await snapshotTree(plain.store), before[0]);
    assert.deepEqual(await snapshotTree(sharded.store), before[1]);
  });
});

Deno.test("errors: use after dispose", async (t) => {
  const c = await peerCase("zarr-shard-5d-u16");

  await t.step("view.data() after dispose throws; earlier typed arrays become empty", async () => {
    using img = await open(c.store);
    const view = await img.scan().collect();
    const data = view.data();
    assert.equal(data.length, c.expected.length / 2);
    view[Symbol.dispose]();
    assert.equal(data.length, 0, "typed array taken before dispose is empty");
    assert.equal(data.byteLength, 0);
    assert.throws(() => view.data(), TesseraError);
    assert.throws(() => view.at(0, 0, 0, 0, 0), TesseraError);
    view[Symbol.dispose](); // disposing twice is harmless
  });

  await t.step("collect and explain on a disposed image throw", async () => {
    const img = await open(c.store);
    img[Symbol.dispose]();
    await expectError(() => img.scan().collect(), TesseraError, c.store);
    await expectError(() => img.scan().explain(), TesseraError, c.store);
  });

  await t.step("a read in flight when the image is disposed completes", async () => {
    const img = await open(c.store);
    const pending = img.scan().collect();
    img[Symbol.dispose]();
    using view = await pending;
    assertElementsEqual(view.data(), c.expected, "uint16");
  });

  await t.step("views outlive their image", async () => {
    const img = await open(c.store);
    using view = await img.scan().collect();
    img[Symbol.dispose]();
    assertElementsEqual(view.data(), c.expected, "uint16");
  });
});

Deno.test("errors: a disposed image throws Shutdown (documented class for closed objects)", async () => {
  // src/errors.ts: Shutdown is "The object was closed or disposed before the call."
  const c = await peerCase("zarr-shard-5d-u16");
  const img = await open(c.store);
  img[Symbol.dispose]();
  await expectError(() => img.scan().collect(), Shutdown, c.store);
});

Deno.test("errors: a bigint in a selection → InvalidArgument, not a TypeError", async () => {
  // Every failure should be a TesseraError (src/errors.ts); building the
  // message with JSON.stringify must not throw on the bad input itself.
  const c = await peerCase("zarr-dtype-float32");
  using img = await open(c.store);
  const bad = [1n, 3n] as unknown as [number, number];
  await expectError(() => img.scan().select({ d0: bad }).collect(), InvalidArgument, `"d0"`);
});
