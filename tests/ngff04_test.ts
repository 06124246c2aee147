/**
 * OME-NGFF 0.4 (Zarr v2) written by ome-zarr-py with FormatV04
 * (tests/interop/v2_cases.py write-ngff04): image metadata, every level's
 * pixels, the label image, a plate field, and the 0.1–0.3 forms and
 * multiscale-level transformations the reader tolerates.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { NotFound, open } from "../mod.ts";
import {
  assertElementsEqual,
  type AxisSelections,
  copyTree,
  mulberry32,
  randomSelections,
  seedOf,
  selectionByName,
  sliceReference,
  tempDir,
} from "./helpers.ts";
import { ngff04Dir } from "./ngff04_peer.ts";
import type { DType } from "../mod.ts";

interface LevelJson {
  dtype: DType;
  shape: number[];
  chunks: number[];
  scale: number[];
  translation: number[] | null;
  path: string;
}

interface ImageJson {
  version: string;
  name: string;
  axes: { name: string; type?: string; unit?: string }[];
  channels: { label: string; color: string; window: Record<string, number> }[];
  paths: string[];
  labels: string[];
  label_paths: string[];
}

async function load(dir: string, prefix: string, n: number) {
  return await Promise.all([...Array(n).keys()].map(async (i) => ({
    meta: JSON.parse(await Deno.readTextFile(join(dir, `${prefix}${i}.json`))) as LevelJson,
    expected: await Deno.readFile(join(dir, `${prefix}${i}.bin`)),
  })));
}

Deno.test("ngff 0.4: ome-zarr-py image (Zarr v2)", async (t) => {
  const dir = await ngff04Dir();
  const store = join(dir, "image.ome.zarr");
  const image: ImageJson = JSON.parse(await Deno.readTextFile(join(dir, "image.json")));
  const levels = await load(dir, "level", image.paths.length);
  using img = await open(store);

  await t.step("metadata: version, axes with types and units, channels, levels, labels", () => {
    assert.equal(image.version, "0.4");
    assert.equal(img.ngffVersion, "0.4");
    assert.deepEqual(img.axes, ["t", "c", "z", "y", "x"]);
    assert.deepEqual(img.axisInfo, image.axes);
    assert.deepEqual(img.channels, image.channels.map((c) => c.label));
    assert.deepEqual(img.channelInfo?.map((c) => c.color), image.channels.map((c) => c.color));
    assert.deepEqual(img.channelInfo?.map((c) => c.window), image.channels.map((c) => c.window));
    assert.deepEqual(img.labels, ["cells"]);
    assert.deepEqual(img.labels, image.labels);
    assert.equal(img.levels.length, 3);
    levels.forEach(({ meta }, i) => {
      assert.deepEqual(img.levels[i], {
        path: meta.path,
        shape: meta.shape,
        scale: meta.scale,
        ...(meta.translation ? { translation: meta.translation } : {}),
      }, `level ${i}`);
      assert.equal(img.arrayPath(i), join(store, meta.path));
      assert.deepEqual(img.arrayMetadata(i).chunkShape, meta.chunks);
      assert.deepEqual(img.arrayMetadata(i).keyEncoding, { name: "v2", separator: "/" });
    });
    assert.equal(img.dtype, "uint16");
  });

  for (let i = 0; i < levels.length; i++) {
    await t.step(`level ${i} full read`, async () => {
      const { meta, expected } = levels[i];
      using view = await img.scan().level(i).collect();
      assert.deepEqual(view.shape, meta.shape);
      assert.deepEqual(view.axes, img.axes);
      assertElementsEqual(view.data(), expected, meta.dtype, {
        shape: meta.shape,
        label: meta.path,
      });
    });
  }

  await t.step("level 0 and 1 selections", async () => {
    for (const level of [0, 1]) {
      const { meta, expected } = levels[level];
      const rng = mulberry32(seedOf(`ngff04 level ${level}`));
      const all: AxisSelections[] = [[1, [0, 3, 2], [1, 4], [3, 20, 5], [-9, -1]]];
      for (let k = 0; k < 10; k++) all.push(randomSelections(rng, meta.shape, meta.chunks));
      for (const sels of all) {
        const ref = sliceReference(expected, meta.dtype, meta.shape, sels);
        const selection = selectionByName(["T", "C", "Z", "h", "w"], sels);
        using view = await img.scan().level(level).select(selection).collect();
        assertElementsEqual(view.data(), ref.bytes, meta.dtype, {
          shape: ref.shape,
          label: `level ${level} ${JSON.stringify(selection)}`,
        });
      }
    }
  });

  await t.step("a level opened on its own takes the image's axes", async () => {
    const { meta, expected } = levels[1];
    using level = await open(join(store, meta.path));
    assert.deepEqual(level.axisInfo, image.axes);
    assert.equal(level.ngffVersion, undefined, "a plain array");
    using view = await level.scan().select({ c: 2, x: [3, 17, 4] }).collect();
    const ref = sliceReference(expected, meta.dtype, meta.shape, [
      undefined,
      2,
      undefined,
      undefined,
      [3, 17, 4],
    ]);
    assert.deepEqual(view.axes, ["t", "z", "y", "x"]);
    assertElementsEqual(view.data(), ref.bytes, meta.dtype, { shape: ref.shape });
  });

  await t.step("the label image opens as an NGFF 0.4 image", async () => {
    const labelLevels = await load(dir, "label", image.label_paths.length);
    using labels = await open(join(store, "labels", "cells"));
    assert.equal(labels.ngffVersion, "0.4");
    assert.equal(labels.dtype, "uint32");
    assert.deepEqual(labels.axes, ["t", "c", "z", "y", "x"]);
    assert.equal(labels.labels, undefined, "a label image has no labels of its own");
    assert.equal(labels.levels.length, labelLevels.length);
    for (const [i, { meta, expected }] of labelLevels.entries()) {
      assert.deepEqual(labels.levels[i].shape, meta.shape);
      using view = await labels.scan().level(i).collect();
      assertElementsEqual(view.data(), expected, "uint32", { shape: meta.shape });
    }
  });
});

Deno.test("ngff 0.4: plate fields open as images; plates and wells say how to open them", async () => {
  const dir = await ngff04Dir();
  const plate = join(dir, "plate.ome.zarr");
  const { field_shape: shape } = JSON.parse(await Deno.readTextFile(join(dir, "plate.json")));
  for (const [row, column] of [["A", "1"], ["A", "2"]]) {
    using field = await open(join(plate, row, column, "0"));
    assert.equal(field.ngffVersion, "0.4");
    assert.deepEqual(field.shape, shape);
    using view = await field.scan().collect();
    const expected = await Deno.readFile(join(dir, `field-${row}${column}.bin`));
    assertElementsEqual(view.data(), expected, "uint8", { shape });
  }
  await assert.rejects(() => open(plate), (e: Error) => {
    assert.ok(e instanceof NotFound && e.message.includes(plate) && e.message.includes("plate"));
    return true;
  });
  const well = join(plate, "A", "1");
  await assert.rejects(() => open(well), (e: Error) => {
    assert.ok(e instanceof NotFound && e.message.includes(well) && e.message.includes("well"));
    return true;
  });
});

Deno.test("ngff 0.1-0.3 forms and multiscale-level transformations", async (t) => {
  const dir = await ngff04Dir();
  const root = await tempDir("tessera-ngff04-variants-");
  const { meta, expected } = (await load(dir, "level", 1))[0];
  let n = 0;
  const variant = async (edit: (ms: Record<string, unknown>) => void) => {
    const store = join(root, `v${n++}`);
    await copyTree(join(dir, "image.ome.zarr"), store);
    const file = join(store, ".zattrs");
    const attrs = JSON.parse(await Deno.readTextFile(file));
    edit(attrs.multiscales[0]);
    await Deno.writeTextFile(file, JSON.stringify(attrs));
    return store;
  };

  await t.step(
    "0.3: axes as bare names get their types; no transformations → scale 1",
    async () => {
      const store = await variant((ms) => {
        ms.version = "0.3";
        ms.axes = ["t", "c", "z", "y", "x"];
        for (const d of ms.datasets as Record<string, unknown>[]) {
          delete d.coordinateTransformations;
        }
      });
      using img = await open(store);
      assert.equal(img.ngffVersion, "0.3");
      assert.deepEqual(img.axisInfo.map((a) => a.type), [
        "time",
        "channel",
        "space",
        "space",
        "space",
      ]);
      assert.deepEqual(img.levels[0].scale, [1, 1, 1, 1, 1]);
      assert.equal(img.levels[0].translation, undefined);
      using view = await img.scan().collect();
      assertElementsEqual(view.data(), expected, meta.dtype, { shape: meta.shape });
    },
  );

  await t.step("0.2: no axes means t, c, z, y, x", async () => {
    const store = await variant((ms) => {
      ms.version = "0.2";
      delete ms.axes;
    });
    using img = await open(store);
    assert.deepEqual(img.axes, ["t", "c", "z", "y", "x"]);
  });

  await t.step("multiscale-level scale and translation apply after each dataset's", async () => {
    const store = await variant((ms) => {
      ms.coordinateTransformations = [
        { type: "scale", scale: [1, 1, 2, 4, 4] },
        { type: "translation", translation: [0, 0, 10, 20, 30] },
      ];
    });
    using img = await open(store);
    const level1 = (await load(dir, "level", 2))[1].meta;
    assert.deepEqual(img.levels[1].scale, level1.scale.map((s, k) => s * [1, 1, 2, 4, 4][k]));
    assert.deepEqual(
      img.levels[1].translation,
      level1.translation!.map((v, k) => v * [1, 1, 2, 4, 4][k] + [0, 0, 10, 20, 30][k]),
    );
  });
});
