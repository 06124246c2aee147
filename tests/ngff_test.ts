/**
 * An OME-NGFF 0.5 multiscale image written by ome-zarr-py (peers.py write-ngff):
 * metadata and every level's pixels through tessera.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL as toFileUrl } from "node:url";
import { open } from "../mod.ts";
import {
  assertElementsEqual,
  type AxisSelections,
  mulberry32,
  peerNgff,
  randomSelections,
  seedOf,
  selectionByName,
  sliceReference,
} from "./helpers.ts";

Deno.test("ngff: ome-zarr-py image", async (t) => {
  const ngff = await peerNgff();
  using img = await open(ngff.store);

  await t.step("metadata: version, axes, channels, levels", () => {
    assert.equal(img.ngffVersion, ngff.image.version);
    assert.equal(ngff.image.version, "0.5");
    assert.deepEqual(img.axes, ngff.image.axes);
    assert.deepEqual(
      img.axisInfo.map((a) => a.type),
      ["time", "channel", "space", "space", "space"],
    );
    assert.deepEqual(img.channels, ngff.image.channels);
    assert.deepEqual(img.channelInfo?.map((c) => c.color), ["0000FF", "00FF00", "FF0000"]);
    assert.deepEqual(img.channelInfo?.[0].window, { start: 100, end: 3000, min: 0, max: 65535 });
    assert.equal(img.levels.length, ngff.levels.length);
    assert.equal(img.levels.length, 3);
    ngff.levels.forEach(({ meta }, i) => {
      const level = img.levels[i];
      assert.equal(level.path, meta.path, `level ${i} path`);
      assert.equal(level.path, ngff.image.paths[i], `level ${i} path in image.json`);
      assert.deepEqual(level.shape, meta.shape, `level ${i} shape`);
      assert.deepEqual(level.scale, meta.scale, `level ${i} scale`);
      if (meta.translation) assert.deepEqual(level.translation, meta.translation);
      assert.equal(img.arrayPath(i), join(ngff.store, meta.path), `level ${i} folder`);
    });
    assert.deepEqual(img.shape, ngff.levels[0].meta.shape);
    assert.equal(img.dtype, ngff.levels[0].meta.dtype);
  });

  for (let i = 0; i < ngff.levels.length; i++) {
    await t.step(`level ${i} full read`, async () => {
      const { meta, expected } = ngff.levels[i];
      using view = await img.scan().level(i).collect();
      assert.deepEqual(view.shape, meta.shape);
      assert.deepEqual(view.axes, ngff.image.axes);
      assert.equal(view.dtype, meta.dtype);
      assertElementsEqual(view.data(), expected, meta.dtype, {
        shape: meta.shape,
        label: `level ${i} (${meta.path})`,
      });
    });
  }

  await t.step("level 1 selections", async () => {
    const { meta, expected } = ngff.levels[1];
    const rng = mulberry32(seedOf("ngff level 1"));
    const fixed: AxisSelections[] = [
      [1, [0, 3, 2], [1, 5], [3, 29, 5], [-20, -1]],
      [0, 2, undefined, 7, [0, 24, 17]],
    ];
    const all = [...fixed];
    for (let k = 0; k < 10; k++) all.push(randomSelections(rng, meta.shape, [1, 1, 2, 16, 16]));
    for (const sels of all) {
      const ref = sliceReference(expected, meta.dtype, meta.shape, sels);
      // select by upper-case names and the h/w aliases too
      const selection = selectionByName(["T", "C", "Z", "h", "w"], sels);
      const label = `level 1 ${JSON.stringify(selection)}`;
      using view = await img.scan().level(1).select(selection).collect();
      assert.deepEqual(view.shape, ref.shape, `${label}: shape`);
      assertElementsEqual(view.data(), ref.bytes, meta.dtype, { shape: ref.shape, label });
    }
  });

  await t.step("concurrent reads of every level and of selections", async () => {
    const jobs = ngff.levels.flatMap(({ meta, expected }, i) => {
      const rng = mulberry32(seedOf(`ngff concurrent ${i}`));
      return [meta.shape.map(() => undefined), randomSelections(rng, meta.shape, [1, 1, 2, 8, 8])]
        .map((sels) => ({ i, meta, expected, sels }));
    });
    const views = await Promise.all(
      jobs.map((j) => img.scan().level(j.i).select(selectionByName(img.axes, j.sels)).collect()),
    );
    try {
      jobs.forEach((j, k) => {
        const ref = sliceReference(j.expected, j.meta.dtype, j.meta.shape, j.sels);
        assertElementsEqual(views[k].data(), ref.bytes, j.meta.dtype, {
          shape: ref.shape,
          label: `level ${j.i} ${JSON.stringify(j.sels)}`,
        });
      });
    } finally {
      for (const v of views) v[Symbol.dispose]();
    }
  });

  await t.step("file: URL opens the same image", async () => {
    using byUrl = await open(toFileUrl(ngff.store));
    assert.deepEqual(byUrl.levels, img.levels);
    assert.deepEqual(byUrl.channels, img.channels);
  });

  await t.step("the last selection of an axis wins; level() keeps the selection", async () => {
    const { meta, expected } = ngff.levels[1];
    const sels: AxisSelections = [0, 1, [2, 4], [5, 9], [-3, 24]];
    const ref = sliceReference(expected, meta.dtype, meta.shape, sels);
    using view = await img.scan().select({ t: 1, y: [0, 2] }).level(1)
      .select({ t: 0, c: 1, z: [2, 4], y: [5, 9], x: [-3, 24] }).collect();
    assertElementsEqual(view.data(), ref.bytes, meta.dtype, { shape: ref.shape });
  });
});
