/**
 * examples/quickstart.ipynb run headless on the Deno Jupyter kernel
 * (`deno jupyter --install` + jupyter_client, tests/interop/run_notebook.py):
 * every cell replies "ok" without an error output and
 * the displays hold text/html and image/png; the image's thumbnail is
 * checked against numpy + Pillow and kept as docs/notebook-thumbnail.png.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { ensureNativeLibrary } from "../scripts/build.ts";
import { ROOT, runPython, tempDir } from "./helpers.ts";
import { ensureSample } from "./sample.ts";

const KERNEL = "tessera-deno";

interface CellReport {
  execution_count: number | null;
  status: string;
  output_types: string[];
  mime: string[];
  errors: string[];
}

Deno.test("examples/quickstart.ipynb runs on the Deno kernel with HTML and PNG displays", async () => {
  await ensureNativeLibrary();
  const sample = await ensureSample();
  const install = await new Deno.Command(Deno.execPath(), {
    args: [
      "jupyter",
      "--install",
      "--name",
      KERNEL,
      "--display",
      "Deno (tessera tests)",
      "--force",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(install.success, new TextDecoder().decode(install.stderr));
  const dir = await tempDir("tessera-notebook-");
  const executed = join(dir, "quickstart.ipynb");
  const report = JSON.parse(
    await runPython([
      join(ROOT, "tests", "interop", "run_notebook.py"),
      join(ROOT, "examples", "quickstart.ipynb"),
      KERNEL,
      join(ROOT, "examples"),
      executed,
    ]),
  ) as { failure: string | null; cells: CellReport[] };
  assert.equal(report.failure, null);
  const cells = report.cells;
  assert.deepEqual(cells.map((c) => c.execution_count), cells.map((_, i) => i + 1));
  for (const c of cells) {
    assert.equal(c.status, "ok");
    assert.deepEqual(c.errors, []);
  }
  const [image, plan, plane, stack, batches, dlpack] = cells;
  for (const shown of [image, plane, stack]) {
    assert.deepEqual(shown.mime, ["image/png", "text/html", "text/plain"]);
  }
  assert.deepEqual(plan.mime, ["text/html", "text/plain"]);
  assert.ok(batches.output_types.length > 0 && batches.output_types.every((t) => t === "stream"));
  assert.deepEqual(dlpack.output_types, ["execute_result"]);

  const notebook = JSON.parse(await Deno.readTextFile(executed));
  const code = notebook.cells.filter((c: { cell_type: string }) => c.cell_type === "code");
  const data = (i: number) => code[i].outputs[0].data;
  const joined = (v: string | string[]) => Array.isArray(v) ? v.join("") : v;
  assert.match(joined(data(1)["text/html"]), /chunks touched/);
  const text = code[4].outputs.map((o: { text: string | string[] }) =>
    Array.isArray(o.text) ? o.text.join("") : o.text
  ).join("");
  assert.equal(text.trim().split("\n").length, 4, text);
  assert.match(text, /NCYX \[ 4, 3, 512, 512 \] z = \[ 0, 1, 2, 3 \]/);
  assert.match(joined(data(5)["text/plain"]), /sameMemory: .*true/);

  // The image's thumbnail: t 0, middle z of level 2 (256² is the display size), omero colors.
  const png = Uint8Array.from(atob(data(0)["image/png"]), (c) => c.charCodeAt(0));
  const thumbFile = join(dir, "thumbnail.png");
  await Deno.writeFile(thumbFile, png);
  const check = JSON.parse(
    await runPython([
      join(ROOT, "tests", "interop", "render_check.py"),
      JSON.stringify({
        zarr: join(sample, "2"),
        index: [0, null, 16, null, null],
        c_axis: 0,
        y_axis: 1,
        x_axis: 2,
        max_size: 256,
        percentiles: [0.5, 99.5],
        colors: ["0000FF", "00FF00", "FF0000"],
        windows: null,
        png: thumbFile,
      }),
    ]),
  );
  assert.equal(check.error, undefined, check.error);
  assert.deepEqual([check.width, check.height], [256, 256]);
  assert.ok(check.max_diff <= 1, `largest pixel difference ${check.max_diff}`);
  await Deno.writeFile(join(ROOT, "docs", "notebook-thumbnail.png"), png);
});
