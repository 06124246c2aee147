/**
 * A writer that the crash-safety test kills mid-write: `array <path>` writes
 * a 256 MB array in boxes, `image <path>` converts the same volume to an
 * OME-Zarr image with writeOmeZarr. Prints "writing" once the array's first
 * box is stored (before the conversion starts, for the image) and "done" when
 * it finished.
 * @module
 */

import { createArray, writeOmeZarr } from "../mod.ts";

const [mode, path] = Deno.args;
const shape = [128, 1024, 1024];
const data = new Uint16Array(shape[0] * shape[1] * shape[2]);
for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 16;
const say = (text: string) => Deno.stdout.writeSync(new TextEncoder().encode(text + "\n"));

if (mode === "array") {
  using writer = await createArray(path, { shape, dtype: "uint16", chunks: [8, 256, 256] });
  const plane = 1024 * 1024;
  for (let z = 0; z < shape[0]; z += 8) {
    await writer.write(data.subarray(z * plane, (z + 8) * plane), [z, 0, 0], [8, 1024, 1024]);
    if (z === 0) say("writing"); // the first box is stored: the array is now partly written
  }
} else {
  say("writing");
  await writeOmeZarr(path, data, {
    axes: ["z", "y", "x"],
    shape,
    dtype: "uint16",
    chunks: [8, 256, 256],
    levels: 3,
  });
}
say("done");
