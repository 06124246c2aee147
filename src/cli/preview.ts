/**
 * `tessera preview <store> -o out.png`: a composite PNG of one plane (or a
 * max projection) of an image.
 * @module
 */

import { open } from "../image.ts";
import { thumbnail } from "../thumbnail.ts";
import { type Command, intListOption, intOption, UsageError } from "./command.ts";

/** The `preview` command. */
export const previewCommand: Command = {
  name: "preview",
  summary: "write a composite PNG of a plane or a max projection",
  help: `Usage: tessera preview <store> -o <out.png> [--z N|max] [--c 0,1] [--t N]
                       [--level N] [--size N] [--json]

Writes an RGB PNG of one plane of the image at <store>: channels tinted with
their omero colors (else red, green, blue, …), contrast from the 0.5th and
99.5th percentiles, composited in the native library.

Options:
  -o, --output FILE   PNG file to write (required)
  --z N|max           z plane (default: the middle one), or "max" for a max projection
  --c LIST            channel indices, comma-separated (default: all)
  --t N               time point (default 0)
  --level N           resolution level (default: the coarsest that still reaches --size)
  --size N            longest side in pixels (default 512)
  --json              print what was written as JSON
  -h, --help`,
  options: {
    output: { type: "string", short: "o" },
    z: { type: "string" },
    c: { type: "string" },
    t: { type: "string" },
    level: { type: "string" },
    size: { type: "string" },
  },
  positionals: 1,
  async run([store], values, ctx) {
    const output = values.output;
    if (typeof output !== "string" || output === "") {
      throw new UsageError("the output file is required (-o out.png)", this);
    }
    const z = values.z === "max" ? "max" : intOption(this, values, "z");
    const t = intOption(this, values, "t");
    const level = intOption(this, values, "level");
    const maxSize = intOption(this, values, "size", 1);
    const channels = intListOption(this, values, "c");
    using image = await open(store);
    const rendered = await thumbnail(image, {
      ...(z !== undefined ? { z } : {}),
      ...(t !== undefined ? { t } : {}),
      ...(level !== undefined ? { level } : {}),
      ...(maxSize !== undefined ? { maxSize } : {}),
      ...(channels ? { channels } : {}),
    });
    await Deno.writeFile(output, rendered.png);
    const summary = {
      output,
      width: rendered.width,
      height: rendered.height,
      bytes: rendered.png.length,
      windows: rendered.windows,
    };
    ctx.out(
      values.json
        ? JSON.stringify(summary, null, 2)
        : `wrote ${output} (${rendered.width}×${rendered.height}, ${rendered.png.length} bytes; windows ${
          rendered.windows.map(([lo, hi]) => `${Math.round(lo)}–${Math.round(hi)}`).join(", ")
        })`,
    );
    return 0;
  },
};
