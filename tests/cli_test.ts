/**
 * The `tessera` executable: `deno task compile`'s build (compiled with
 * denort when present, else the portable folder) run from another working
 * directory on the sample store; the PNG checked against numpy + Pillow,
 * `info` against the metadata files, `convert` against zarr-python;
 * exit codes and stderr for bad input.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { buildExecutable } from "../scripts/compile.ts";
import { ROOT, runPython, tempDir } from "./helpers.ts";
import { ngff04Dir } from "./ngff04_peer.ts";
import { ensureSample } from "./sample.ts";

const EXE = join(ROOT, "dist", "tessera");
const CHECK = join(ROOT, "tests", "interop", "render_check.py");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function tessera(args: string[], cwd: string): Promise<Run> {
  const out = await new Deno.Command(EXE, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

let built: Promise<string> | undefined;
/** Builds dist/tessera once per test process; returns a fresh working directory elsewhere. */
async function setup(): Promise<{ cwd: string; sample: string }> {
  built ??= buildExecutable().then((how) => how);
  await built;
  return { cwd: await tempDir("tessera-cli-"), sample: await ensureSample() };
}

Deno.test("dist/tessera info describes the sample from another working directory", async () => {
  const { cwd, sample } = await setup();
  const text = await tessera(["info", sample], cwd);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /OME-NGFF 0\.5 image "tessera sample" \(Zarr v3\)/);
  assert.match(
    text.stdout,
    /2×3×32×1024×1024 uint16 {2}chunks 1×1×16×128×128 {2}shards 1×1×32×512×512/,
  );
  assert.match(text.stdout, /DAPI #0000FF {2}GFP #00FF00 {2}mCherry #FF0000/);
  const json = await tessera(["info", sample, "--json"], cwd);
  assert.equal(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout);
  // Shapes and chunking as the metadata files say, sizes as the files on disk add up.
  for (const [i, level] of parsed.image.levels.entries()) {
    const meta = JSON.parse(await Deno.readTextFile(join(sample, String(i), "zarr.json")));
    assert.deepEqual(level.shape, meta.shape);
    assert.deepEqual(level.shards, meta.chunk_grid.configuration.chunk_shape);
    assert.deepEqual(level.chunks, meta.codecs[0].configuration.chunk_shape);
  }
  const du = new TextDecoder().decode(
    (await new Deno.Command("du", { args: ["-sb", "--apparent-size", sample], stdout: "piped" })
      .output())
      .stdout,
  );
  const files = Number(du.split("\t")[0]);
  // du counts directory entries too (4 KiB each); the CLI counts file bytes only.
  assert.ok(
    parsed.bytesOnDisk <= files && parsed.bytesOnDisk > files * 0.95,
    `${parsed.bytesOnDisk} vs ${files}`,
  );
});

Deno.test("dist/tessera preview writes the composite numpy computes from zarr-python's read", async () => {
  const { cwd, sample } = await setup();
  const cases: [string[], number | null, number[], number][] = [
    [[], 16, [0, 1, 2], 1],
    [["--z", "max", "--c", "2,0", "--size", "200", "--t", "1"], null, [2, 0], 2],
    [["--z", "5", "--level", "2", "--c", "1"], 5, [1], 2],
  ];
  for (const [args, z, channels, level] of cases) {
    const run = await tessera(["preview", sample, "-o", "out.png", "--json", ...args], cwd);
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout);
    const t = args.includes("--t") ? 1 : 0;
    const colors = ["0000FF", "00FF00", "FF0000"];
    const lo = Math.min(...channels), hi = Math.max(...channels) + 1;
    const inRange = Array.from({ length: hi - lo }, (_, k) => lo + k);
    const spec = {
      zarr: join(sample, String(level)),
      index: [t, [lo, hi], z, null, null],
      c_axis: 0,
      y_axis: z === null ? 2 : 1,
      x_axis: z === null ? 3 : 2,
      max_size: args.includes("--size") ? 200 : 512,
      percentiles: [0.5, 99.5],
      colors: inRange.map((c) => channels.includes(c) ? colors[c] : "000000"),
      windows: null,
      png: join(cwd, "out.png"),
    };
    const py = JSON.parse(await runPython([CHECK, JSON.stringify(spec)]));
    assert.equal(py.error, undefined, py.error);
    assert.equal(py.mode, "RGB");
    assert.deepEqual([summary.width, summary.height], [py.width, py.height]);
    assert.ok(py.max_diff <= 1, `largest pixel difference ${py.max_diff}`);
    assert.ok(py.mean > 3, `image is almost black (mean ${py.mean})`);
    const expectWindows = channels.map((c) => py.windows[c - lo]);
    for (const [i, [a, b]] of summary.windows.entries()) {
      assert.ok(
        Math.abs(a - expectWindows[i][0]) < 1e-6 && Math.abs(b - expectWindows[i][1]) < 1e-6,
      );
    }
  }
  if (Deno.env.get("TESSERA_UPDATE_DOCS")) {
    await Deno.copyFile(join(cwd, "out.png"), join(ROOT, "docs", "preview.png"));
  }
});

Deno.test("dist/tessera convert turns an OME-NGFF 0.4 image into a sharded 0.5 one zarr-python reads the same", async () => {
  const { cwd } = await setup();
  const source = join(await ngff04Dir(), "image.ome.zarr");
  const run = await tessera([
    "convert",
    source,
    "v05.ome.zarr",
    "--json",
    "--quiet",
    "--shard-mb",
    "1",
  ], cwd);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, "");
  const result = JSON.parse(run.stdout);
  assert.equal(result.levels.length, 3);
  const py = JSON.parse(
    await runPython([
      "-c",
      `
import json, sys, zarr, numpy as np
src, dst = sys.argv[1], sys.argv[2]
g = zarr.open_group(dst, mode="r")
ome = g.attrs["ome"]
out = {"version": ome["version"], "format": g.metadata.zarr_format, "levels": []}
src_attrs = zarr.open_group(src, mode="r").attrs.asdict()
for s, d in zip(src_attrs["multiscales"][0]["datasets"], ome["multiscales"][0]["datasets"], strict=True):
    a, b = zarr.open_array(f"{src}/{s['path']}", mode="r"), zarr.open_array(f"{dst}/{d['path']}", mode="r")
    out["levels"].append({"equal": bool(np.array_equal(a[...], b[...])), "shards": list(b.shards or []),
                          "chunks": list(b.chunks), "scale": d["coordinateTransformations"][0]["scale"]})
out["src_scales"] = [d["coordinateTransformations"][0]["scale"] for d in src_attrs["multiscales"][0]["datasets"]]
out["channels"] = [c.get("label") for c in ome.get("omero", {}).get("channels", [])]
out["labels"] = zarr.open_group(f"{dst}/labels", mode="r").attrs["ome"]["labels"]
out["label_equal"] = []
for name in out["labels"]:
    s_attrs = zarr.open_group(f"{src}/labels/{name}", mode="r").attrs.asdict()
    d_ome = zarr.open_group(f"{dst}/labels/{name}", mode="r").attrs["ome"]
    out["label_colors"] = d_ome["image-label"].get("colors")
    out["src_label_colors"] = s_attrs["image-label"].get("colors")
    for s, d in zip(s_attrs["multiscales"][0]["datasets"], d_ome["multiscales"][0]["datasets"], strict=True):
        a = zarr.open_array(f"{src}/labels/{name}/{s['path']}", mode="r")
        b = zarr.open_array(f"{dst}/labels/{name}/{d['path']}", mode="r")
        out["label_equal"].append(bool(np.array_equal(a[...], b[...])) and a.dtype == b.dtype and b.shards is not None)
out["src_channels"] = [c.get("label") for c in src_attrs.get("omero", {}).get("channels", [])]
# ome-zarr-py, the NGFF reference reader, sees an image, a labels group and a label image.
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
nodes = list(Reader(parse_url(dst))())
out["ome_zarr_specs"] = [sorted(type(x).__name__ for x in n.specs) for n in nodes]
out["ome_zarr_equal"] = all(
    np.array_equal(np.asarray(level), zarr.open_array(f"{src}/{d['path']}", mode="r")[...])
    for level, d in zip(nodes[0].data, src_attrs["multiscales"][0]["datasets"], strict=True))
print(json.dumps(out))
`,
      source,
      join(cwd, "v05.ome.zarr"),
    ]),
  );
  assert.equal(py.version, "0.5");
  assert.equal(py.format, 3);
  assert.deepEqual(py.levels.map((l: { scale: number[] }) => l.scale), py.src_scales);
  assert.deepEqual(py.channels, py.src_channels);
  for (const [i, level] of py.levels.entries()) {
    assert.ok(level.equal, `level ${i} differs`);
    assert.deepEqual(level.shards, result.levels[i].shards);
    assert.deepEqual(level.chunks, result.levels[i].chunks);
  }
  assert.deepEqual(result.labels, ["cells"]);
  assert.deepEqual(py.labels, ["cells"]);
  assert.ok(
    py.label_equal.length > 0 && py.label_equal.every(Boolean),
    JSON.stringify(py.label_equal),
  );
  assert.deepEqual(py.label_colors, py.src_label_colors);
  assert.deepEqual(py.ome_zarr_specs, [["Multiscales", "OMERO"], ["Labels"], [
    "Label",
    "Multiscales",
  ]]);
  assert.ok(py.ome_zarr_equal);
  // The target exists now: without --overwrite that is an error, and the store stays.
  const again = await tessera(["convert", source, "v05.ome.zarr"], cwd);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists/);
});

Deno.test("dist/tessera bench --json times the three cases", async () => {
  const { cwd, sample } = await setup();
  const run = await tessera(
    [
      "bench",
      sample,
      "--level",
      "2",
      "--rounds",
      "1",
      "--crops",
      "3",
      "--crop",
      "16,64,64",
      "--json",
      "-q",
    ],
    cwd,
  );
  assert.equal(run.code, 0, run.stderr);
  const { results } = JSON.parse(run.stdout);
  assert.deepEqual(results.map((r: { name: string }) => r.name), [
    "whole level 2",
    "crop 1×1×16×64×64",
    "one chunk 1×1×16×128×128",
  ]);
  assert.deepEqual(results[0].shape, [2, 3, 32, 256, 256]);
  for (const r of results) assert.ok(r.medianMs > 0 && r.bytesPerSecond > 0);
});

Deno.test("dist/tessera exit codes: 2 for bad command lines, 1 for bad input, errors on stderr", async () => {
  const { cwd, sample } = await setup();
  const cases: [string[], number, RegExp][] = [
    [[], 2, /Usage: tessera <command>/],
    [["frobnicate"], 2, /unknown command "frobnicate"/],
    [["preview", sample], 2, /output file is required/],
    [["info"], 2, /expected 1 argument, got 0/],
    [["info", sample, "--bogus"], 2, /Unknown option '--bogus'/],
    [["preview", sample, "-o", "x.png", "--z", "banana"], 2, /--z must be an integer/],
    [["info", join(cwd, "missing.zarr")], 1, /NotFound: .*missing\.zarr/],
    [["preview", sample, "-o", "x.png", "--z", "99"], 1, /InvalidArgument: .*axis "z"/],
    [
      ["preview", sample, "-o", "x.png", "--level", "7"],
      1,
      /InvalidArgument: level 7 does not exist/,
    ],
    [["convert", join(cwd, "missing.zarr"), "out.zarr"], 1, /NotFound/],
  ];
  for (const [args, code, message] of cases) {
    const run = await tessera(args, cwd);
    assert.equal(run.code, code, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, message, args.join(" "));
    assert.equal(run.stdout, "", args.join(" "));
  }
  // Through a symlink elsewhere (as when linked into ~/.local/bin), the launcher still finds its runtime.
  await Deno.symlink(EXE, join(cwd, "tessera-link"));
  const linked = await new Deno.Command(join(cwd, "tessera-link"), {
    args: ["info", sample],
    stdout: "piped",
  })
    .output();
  assert.ok(linked.success);
  assert.match(new TextDecoder().decode(linked.stdout), /OME-NGFF 0\.5 image/);
  for (const command of ["info", "preview", "convert", "bench"]) {
    const run = await tessera([command, "--help"], cwd);
    assert.equal(run.code, 0);
    assert.match(run.stdout, new RegExp(`^Usage: tessera ${command} `));
  }
});

Deno.test("dist/tessera convert stops on Ctrl-C (SIGINT): exit code 130", async () => {
  const { cwd, sample } = await setup();
  const child = new Deno.Command(EXE, {
    args: ["convert", sample, "cancelled.ome.zarr", "--quiet"],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Wait until the first level's array exists, i.e. copying has started.
  const started = performance.now();
  while (!(await Deno.stat(join(cwd, "cancelled.ome.zarr", "0", "zarr.json")).catch(() => null))) {
    assert.ok(performance.now() - started < 60_000, "convert never started");
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGINT");
  const out = await child.output();
  assert.equal(out.code, 130);
  // The signal reached the native read or write, or the check between shards.
  assert.match(new TextDecoder().decode(out.stderr), /AbortError: .*(aborted|partial output)/);
  // It stopped early: the group metadata (written last) is not there.
  assert.equal(
    await Deno.stat(join(cwd, "cancelled.ome.zarr", "zarr.json")).catch(() => null),
    null,
  );
});
