/**
 * PNG rendering and Jupyter display bundles: `TensorView.toPNG` checked
 * against numpy + Pillow on generated data (float with NaN and infinities,
 * permuted int16 with fixed and automatic windows), typed errors for bad
 * options, and the media bundles of images, queries, plans and views.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createArray, InvalidArgument, open, thumbnail } from "../mod.ts";
import { ROOT, runPython, tempDir } from "./helpers.ts";

const CHECK = join(ROOT, "tests", "interop", "render_check.py");
const DISPLAY = Symbol.for("Jupyter.display");

type Displayable = { [DISPLAY](): Promise<Record<string, string>> | Record<string, string> };

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function check(spec: Record<string, unknown>) {
  return JSON.parse(await runPython([CHECK, JSON.stringify(spec)]));
}

Deno.test("toPNG: max projection of float32 with NaN and infinities matches numpy", async () => {
  const dir = await tempDir("tessera-render-");
  const shape = [3, 37, 53];
  const random = rng(7);
  const data = Float32Array.from({ length: 3 * 37 * 53 }, () => (random() - 0.3) * 1000);
  data[5] = NaN, data[37 * 53 + 5] = NaN, data[2 * 37 * 53 + 5] = NaN; // NaN in every plane
  data[100] = Infinity, data[200] = -Infinity, data[300] = NaN;
  using writer = await createArray(join(dir, "f.zarr"), {
    shape,
    dtype: "float32",
    chunks: [2, 16, 16],
    dimensionNames: ["z", "y", "x"],
  });
  await writer.write(data);
  await Deno.writeFile(join(dir, "f.raw"), new Uint8Array(data.buffer));
  using img = await open(join(dir, "f.zarr"));
  using view = await img.scan().collect();
  const rendered = await view.toPNG({ maxSize: 20, percentiles: [2, 98] });
  await Deno.writeFile(join(dir, "f.png"), rendered.png);
  const py = await check({
    raw: join(dir, "f.raw"),
    dtype: "float32",
    shape,
    c_axis: null,
    y_axis: 1,
    x_axis: 2,
    max_size: 20,
    percentiles: [2, 98],
    colors: ["FFFFFF"],
    windows: null,
    png: join(dir, "f.png"),
  });
  assert.equal(py.error, undefined, py.error);
  assert.deepEqual([rendered.width, rendered.height], [py.width, py.height]);
  assert.deepEqual([rendered.width, rendered.height], [18, 13]); // step 3
  assert.ok(py.max_diff <= 1, `largest difference ${py.max_diff}`);
  assert.ok(Math.abs(rendered.windows[0][0] - py.windows[0][0]) < 1e-3);
  assert.ok(Math.abs(rendered.windows[0][1] - py.windows[0][1]) < 1e-3);
});

Deno.test("toPNG: a permuted int16 view composites its channels like numpy", async () => {
  const dir = await tempDir("tessera-render-");
  const shape = [2, 40, 30];
  const random = rng(11);
  const data = Int16Array.from(
    { length: 2 * 40 * 30 },
    (_, i) => Math.round((random() - 0.5) * 2000 + (i % 30) * 20),
  );
  using writer = await createArray(join(dir, "i.zarr"), {
    shape,
    dtype: "int16",
    chunks: [1, 16, 16],
    dimensionNames: ["c", "y", "x"],
  });
  await writer.write(data);
  await Deno.writeFile(join(dir, "i.raw"), new Uint8Array(data.buffer));
  using img = await open(join(dir, "i.zarr"));
  using cyx = await img.scan().collect();
  using yxc = cyx.withLayout("YXC"); // strides (30, 1, 1200): the renderer goes by axis name
  const options = {
    colors: ["FF8000", "00A0FF"],
    windows: [[-500, 900] as [number, number], null],
    maxSize: 64,
  };
  const rendered = await yxc.toPNG(options);
  await Deno.writeFile(join(dir, "i.png"), rendered.png);
  const py = await check({
    raw: join(dir, "i.raw"),
    dtype: "int16",
    shape,
    c_axis: 0,
    y_axis: 1,
    x_axis: 2,
    max_size: 64,
    percentiles: [0.5, 99.5],
    colors: options.colors,
    windows: options.windows,
    png: join(dir, "i.png"),
  });
  assert.equal(py.error, undefined, py.error);
  assert.deepEqual([py.width, py.height], [30, 40]);
  assert.ok(py.max_diff <= 1, `largest difference ${py.max_diff}`);
  assert.deepEqual(rendered.windows[0], [-500, 900]);
  assert.ok(Math.abs(rendered.windows[1][1] - py.windows[1][1]) < 1e-9);
});

Deno.test("toPNG and thumbnail: bad options are InvalidArgument errors naming the option", async () => {
  const dir = await tempDir("tessera-render-");
  using writer = await createArray(join(dir, "u.zarr"), {
    shape: [4, 8, 8],
    dtype: "uint8",
    chunks: [4, 8, 8],
    dimensionNames: ["c", "y", "x"],
  });
  await writer.write(Uint8Array.from({ length: 256 }, (_, i) => i));
  using img = await open(join(dir, "u.zarr"));
  using view = await img.scan().collect();
  using row = view.select({ c: 0, y: 0 });
  const cases: [() => Promise<unknown>, RegExp][] = [
    [() => view.toPNG({ maxSize: 0 }), /maxSize 0/],
    [() => view.toPNG({ channelAxis: "q" }), /channel axis "q"/],
    [() => view.toPNG({ channelAxis: "x" }), /row or column axis/],
    [() => view.toPNG({ colors: ["red"] }), /color "red" of channel 0/],
    [() => view.toPNG({ percentiles: [50, 10] }), /percentiles \[50, 10\]/],
    [() => view.toPNG({ windows: [[0, NaN]] }), /window of channel 0/],
    [() => row.toPNG(), /at least 2 axes/],
    [() => thumbnail(img, { channels: [5] }), /channel 5 is outside 0..3/],
    [() => thumbnail(img, { level: 3 }), /level 3 does not exist/],
    [
      () => thumbnail(img, { maxReadBytes: 100 }),
      /would read 256 bytes from level 0 \(maxReadBytes 100\)/,
    ],
  ];
  for (const [call, message] of cases) {
    await assert.rejects(
      call,
      (e: Error) => e instanceof InvalidArgument && message.test(e.message),
    );
  }
});

Deno.test("Jupyter display: image table and thumbnail, query and plan tables, view PNG", async () => {
  const dir = await tempDir("tessera-render-");
  using writer = await createArray(join(dir, "v.zarr"), {
    shape: [2, 3, 4, 32, 48],
    dtype: "uint16",
    chunks: [1, 1, 2, 16, 16],
    shards: [1, 1, 4, 32, 48],
    dimensionNames: ["t", "c", "z", "y", "x"],
  });
  await writer.write(
    Uint16Array.from({ length: 2 * 3 * 4 * 32 * 48 }, (_, i) => (i * 7919) % 4096),
  );
  using img = await open(join(dir, "v.zarr"));
  const image = await (img as unknown as Displayable)[DISPLAY]();
  assert.deepEqual(Object.keys(image).sort(), ["image/png", "text/html", "text/plain"]);
  assert.match(image["text/html"], /<th[^>]*>shards<\/th><td[^>]*>1×1×4×32×48<\/td>/);
  assert.match(image["text/html"], /sharding_indexed|bytes → zstd/);
  assert.match(image["text/html"], /<img src="data:image\/png;base64,/);
  const png = Uint8Array.from(atob(image["image/png"]), (c) => c.charCodeAt(0));
  assert.deepEqual([...png.subarray(1, 4)], [80, 78, 71]); // "PNG"
  const query = img.scan().select({ t: 1, z: [0, 2] });
  const shown = await (query as unknown as Displayable)[DISPLAY]();
  assert.match(shown["text/html"], /tessera Query/);
  assert.match(shown["text/plain"], /output: CZYX 3 × 2 × 32 × 48 uint16/);
  const plan = await query.explain();
  assert.equal(Object.keys(plan).includes(String(DISPLAY)), false);
  assert.equal(JSON.parse(JSON.stringify(plan)).chunksTouched, plan.chunksTouched);
  const table = await (plan as unknown as Displayable)[DISPLAY]();
  assert.match(
    table["text/html"],
    new RegExp(`chunks touched</th><td[^>]*>${plan.chunksTouched}<`),
  );
  using plane = await img.scan().select({ t: 0, z: 1 }).collect();
  const view = await (plane as unknown as Displayable)[DISPLAY]();
  assert.deepEqual(Object.keys(view).sort(), ["image/png", "text/html", "text/plain"]);
  assert.match(view["text/plain"], /layout: CYX\n {2}shape: 3 × 32 × 48\n {2}dtype: uint16/);
  using all = await img.scan().collect(); // 5-D with two non-trivial non-channel axes: no PNG
  const big = await (all as unknown as Displayable)[DISPLAY]();
  assert.deepEqual(Object.keys(big).sort(), ["text/html", "text/plain"]);
});
