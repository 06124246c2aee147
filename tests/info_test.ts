/**
 * info(): NGFF 0.5 (peers.py write-ngff) and 0.4 images with labels
 * (v2_cases.py write-ngff04), the HCS plate and its wells, plain Zarr v2 and
 * v3 arrays and groups — all from metadata, as plain JSON.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  createArray,
  createOmeZarr,
  info,
  type NodeInfo,
  NotFound,
  open,
  StorageError,
} from "../mod.ts";
import { copyTree, peerNgff, tempDir } from "./helpers.ts";
import { ngff04Dir } from "./ngff04_peer.ts";

/** info() of `path`, checked to survive a JSON round trip unchanged. */
async function infoJson(path: string | URL): Promise<NodeInfo> {
  const result = await info(path);
  assert.deepEqual(JSON.parse(JSON.stringify(result)), result, "info() is plain JSON");
  return result;
}

Deno.test("info: OME-NGFF 0.5 image (Zarr v3, sharded level 0)", async () => {
  const ngff = await peerNgff();
  const result = await infoJson(ngff.store);
  assert.equal(result.path, ngff.store);
  assert.equal(result.zarrFormat, 3);
  assert.equal(result.node, "group");
  assert.equal(result.kind, "image");
  assert.equal(result.labels, undefined, "no labels group");
  const image = result.image!;
  assert.equal(image.version, "0.5");
  assert.equal(image.name, "tessera-ngff");
  assert.deepEqual(image.axes.map((a) => a.name), ngff.image.axes);
  assert.deepEqual(image.channels?.map((c) => c.name), ngff.image.channels);
  assert.equal(image.levels.length, ngff.levels.length);
  ngff.levels.forEach(({ meta }, i) => {
    const level = image.levels[i];
    assert.equal(level.path, meta.path);
    assert.deepEqual(level.shape, meta.shape);
    assert.equal(level.dtype, meta.dtype);
    assert.deepEqual(level.scale, meta.scale);
    assert.deepEqual(level.chunkKeyEncoding, { name: "default", separator: "/" });
  });
  // peers.py: level 0 sharded (inner 1,1,2,16,16 in shards 1,1,4,32,32), the others plain
  assert.deepEqual(image.levels[0].chunks, [1, 1, 2, 16, 16]);
  assert.deepEqual(image.levels[0].shards, [1, 1, 4, 32, 32]);
  assert.deepEqual(image.levels[1].chunks, [1, 1, 2, 16, 16]);
  assert.equal(image.levels[1].shards, undefined);
  for (const level of image.levels) {
    assert.equal(level.codecs[0], "bytes", `level ${level.path} codecs ${level.codecs}`);
    assert.ok(level.codecs.includes("zstd"), `level ${level.path} codecs ${level.codecs}`);
  }

  // its level 0 is a sharded Zarr v3 array
  const s0 = await infoJson(join(ngff.store, ngff.levels[0].meta.path));
  assert.equal(s0.kind, "array");
  assert.equal(s0.zarrFormat, 3);
  assert.deepEqual(s0.array?.shards, [1, 1, 4, 32, 32]);
  assert.deepEqual(s0.array?.dimensionNames, ngff.image.axes);
});

Deno.test("info and open: labels of an NGFF 0.5 image (labels/zarr.json)", async () => {
  const store = join(await tempDir("tessera-info-v3-labels-"), "image.ome.zarr");
  using _writer = await createOmeZarr(store, {
    axes: ["c", "y", "x"],
    shape: [2, 16, 16],
    dtype: "uint8",
    chunks: [1, 8, 8],
    levels: 2,
  });
  await Deno.mkdir(join(store, "labels"));
  await Deno.writeTextFile(
    join(store, "labels", "zarr.json"),
    JSON.stringify({
      zarr_format: 3,
      node_type: "group",
      attributes: { ome: { version: "0.5", labels: ["nuclei", "cells"] } },
    }),
  );
  const result = await infoJson(store);
  assert.equal(result.zarrFormat, 3);
  assert.deepEqual(result.labels, ["nuclei", "cells"]);
  assert.deepEqual(result.image?.levels.map((l) => l.shape), [[2, 16, 16], [2, 8, 8]]);
  assert.deepEqual((await infoJson(join(store, "labels"))).labels, ["nuclei", "cells"]);
  using img = await open(store);
  assert.deepEqual(img.labels, ["nuclei", "cells"]);
});

Deno.test("info: OME-NGFF 0.4 image with labels (Zarr v2)", async (t) => {
  const dir = await ngff04Dir();
  const store = join(dir, "image.ome.zarr");
  const expected = JSON.parse(await Deno.readTextFile(join(dir, "image.json")));

  await t.step("the image", async () => {
    const result = await infoJson(pathToFileURL(store));
    assert.equal(result.zarrFormat, 2);
    assert.equal(result.kind, "image");
    assert.deepEqual(result.labels, ["cells"]);
    const image = result.image!;
    assert.equal(image.version, "0.4");
    assert.equal(image.name, expected.name);
    assert.deepEqual(image.axes, expected.axes);
    assert.deepEqual(image.channels?.map((c) => c.name), ["Hoechst", "Actin", "Tubulin"]);
    assert.equal(image.imageLabel, undefined);
    for (const [i, level] of image.levels.entries()) {
      const meta = JSON.parse(await Deno.readTextFile(join(dir, `level${i}.json`)));
      assert.equal(level.path, meta.path);
      assert.deepEqual(level.shape, meta.shape);
      assert.deepEqual(level.chunks, meta.chunks);
      assert.equal(level.shards, undefined);
      assert.equal(level.dtype, "uint16");
      assert.deepEqual(level.codecs, ["bytes", "blosc"], "blosc from ome-zarr's storage options");
      assert.deepEqual(level.chunkKeyEncoding, { name: "v2", separator: "/" });
      assert.deepEqual(level.scale, meta.scale);
      assert.deepEqual(level.translation, meta.translation);
      assert.equal(level.fillValue, 0);
    }
  });

  await t.step("its labels group and label image", async () => {
    const labels = await infoJson(join(store, "labels"));
    assert.deepEqual(
      { zarrFormat: labels.zarrFormat, kind: labels.kind, labels: labels.labels },
      { zarrFormat: 2, kind: "labels", labels: ["cells"] },
    );
    const cells = await infoJson(join(store, "labels", "cells"));
    assert.equal(cells.kind, "image");
    assert.equal(cells.image?.levels[0].dtype, "uint32");
    assert.deepEqual(cells.image?.levels.map((l) => l.path), expected.label_paths);
    assert.deepEqual(cells.image?.imageLabel?.colors, [{
      "label-value": 1,
      rgba: [255, 0, 0, 255],
    }]);
    assert.deepEqual(cells.image?.imageLabel?.source, { image: "../../" });
  });

  await t.step("a level is a plain Zarr v2 array", async () => {
    const s0 = await infoJson(join(store, "s0"));
    assert.equal(s0.zarrFormat, 2);
    assert.equal(s0.node, "array");
    assert.equal(s0.kind, "array");
    const level0 = JSON.parse(await Deno.readTextFile(join(dir, "level0.json")));
    assert.deepEqual(s0.array?.shape, level0.shape);
    assert.deepEqual(s0.array?.chunks, level0.chunks);
    assert.equal(s0.array?.dimensionNames, undefined, "no _ARRAY_DIMENSIONS");
  });
});

Deno.test("info: HCS plate and well (NGFF 0.4)", async () => {
  const dir = await ngff04Dir();
  const store = join(dir, "plate.ome.zarr");
  const expected = JSON.parse(await Deno.readTextFile(join(dir, "plate.json")));
  const result = await infoJson(store);
  assert.equal(result.zarrFormat, 2);
  assert.equal(result.kind, "plate");
  assert.deepEqual(result.plate, {
    version: "0.4",
    name: "tessera-plate",
    rows: ["A"],
    columns: ["1", "2"],
    wells: [
      {
        path: "A/1",
        row: "A",
        column: "1",
        rowIndex: 0,
        columnIndex: 0,
        fields: ["0"],
        fieldCount: 1,
      },
      {
        path: "A/2",
        row: "A",
        column: "2",
        rowIndex: 0,
        columnIndex: 1,
        fields: ["0"],
        fieldCount: 1,
      },
    ],
    fieldCount: 1,
    acquisitions: [{ id: 0, name: "first" }],
  });
  assert.deepEqual(
    result.plate?.wells.map((w) => w.path),
    expected.plate.wells.map((w: { path: string }) => w.path),
  );

  const well = await infoJson(join(store, "A", "2"));
  assert.equal(well.kind, "well");
  assert.deepEqual(well.well, { version: "0.4", images: [{ path: "0", acquisition: 0 }] });

  const field = await infoJson(join(store, "A", "2", "0"));
  assert.equal(field.kind, "image");
  assert.deepEqual(field.image?.levels[0].shape, expected.field_shape);

  const row = await infoJson(join(store, "A"));
  assert.equal(row.kind, "group");
  assert.deepEqual(row.members, [{ name: "1", kind: "group" }, { name: "2", kind: "group" }]);

  // a plate listing a well that is not there
  const broken = join(await tempDir("tessera-info-plate-"), "plate.ome.zarr");
  await copyTree(store, broken);
  await Deno.remove(join(broken, "A", "2"), { recursive: true });
  await assert.rejects(() => info(broken), (e: Error) => {
    assert.ok(e instanceof NotFound || e instanceof StorageError, String(e));
    assert.ok(e.message.includes(join(broken, "A", "2")), e.message);
    return true;
  });
});

Deno.test("info: plain Zarr v2 and v3 arrays and groups", async (t) => {
  const root = await tempDir("tessera-info-plain-");

  await t.step("a v2 array: order F, big-endian, NaN fill, / keys, _ARRAY_DIMENSIONS", async () => {
    const store = join(root, "v2.zarr");
    await Deno.mkdir(store);
    await Deno.writeTextFile(
      join(store, ".zarray"),
      JSON.stringify({
        zarr_format: 2,
        shape: [4, 5, 6],
        chunks: [2, 5, 3],
        dtype: ">f4",
        fill_value: "NaN",
        order: "F",
        filters: null,
        compressor: { id: "zlib", level: 4 },
        dimension_separator: "/",
      }),
    );
    await Deno.writeTextFile(
      join(store, ".zattrs"),
      JSON.stringify({ _ARRAY_DIMENSIONS: ["z", "y", "x"] }),
    );
    const result = await infoJson(store);
    assert.deepEqual(result, {
      path: store,
      zarrFormat: 2,
      node: "array",
      kind: "array",
      array: {
        shape: [4, 5, 6],
        dtype: "float32",
        chunks: [2, 5, 3],
        codecs: ["transpose", "bytes", "zlib"],
        endian: "big",
        fillValue: "NaN",
        chunkKeyEncoding: { name: "v2", separator: "/" },
        dimensionNames: ["z", "y", "x"],
      },
    });
  });

  await t.step("a v2 uint64 array whose fill is beyond 2^53; a null fill", async () => {
    const store = join(root, "u64.zarr");
    await Deno.mkdir(store);
    const zarray = (fill: string) =>
      `{"zarr_format": 2, "shape": [3], "chunks": [3], "dtype": "<u8", "fill_value": ${fill},
        "order": "C", "filters": null, "compressor": null}`;
    await Deno.writeTextFile(join(store, ".zarray"), zarray("18446744073709551615"));
    assert.equal((await infoJson(store)).array?.fillValue, "18446744073709551615");
    await Deno.writeTextFile(join(store, ".zarray"), zarray("null"));
    assert.equal((await infoJson(store)).array?.fillValue, 0);
  });

  await t.step("a v3 array written by tessera", async () => {
    const store = join(root, "v3.zarr");
    using _writer = await createArray(store, {
      shape: [10, 20],
      dtype: "int16",
      chunks: [5, 8],
      fillValue: -3,
      dimensionNames: ["y", "x"],
    });
    const result = await infoJson(store);
    assert.equal(result.zarrFormat, 3);
    assert.equal(result.kind, "array");
    assert.deepEqual(result.array?.shape, [10, 20]);
    assert.deepEqual(result.array?.chunks, [5, 8]);
    assert.equal(result.array?.shards, undefined);
    assert.equal(result.array?.fillValue, -3);
    assert.deepEqual(result.array?.dimensionNames, ["y", "x"]);
    assert.equal(result.array?.codecs[0], "bytes");
  });

  await t.step("plain groups list their members; errors name the path", async () => {
    const group = join(root, "group");
    await Deno.mkdir(join(group, "sub"), { recursive: true });
    await Deno.writeTextFile(join(group, ".zgroup"), '{"zarr_format": 2}');
    await Deno.writeTextFile(join(group, "sub", ".zgroup"), '{"zarr_format": 2}');
    await Deno.mkdir(join(group, "not-zarr"));
    await copyTree(join(root, "v2.zarr"), join(group, "arr"));
    const result = await infoJson(group);
    assert.equal(result.kind, "group");
    assert.deepEqual(result.members, [
      { name: "arr", kind: "array" },
      { name: "sub", kind: "group" },
    ]);
    const missing = join(root, "missing");
    await assert.rejects(() => info(missing), NotFound);
    await assert.rejects(() => info(join(group, "not-zarr")), StorageError);
  });
});
