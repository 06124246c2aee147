/**
 * `tessera convert <src> <dst>`: format conversion through the converters
 * of src/convert.ts, with a progress bar.
 * @module
 */

import { convert, CONVERTERS } from "../convert.ts";
import { formatBytes } from "../display.ts";
import { ProgressBar } from "../progress_bar.ts";
import { type Command, intOption } from "./command.ts";

/** The `convert` command. */
export const convertCommand: Command = {
  name: "convert",
  summary: "convert a store (OME-Zarr 0.4/v2 → OME-Zarr 0.5/v3 sharded; OME-Zarr ↔ OME-Arrow)",
  help: `Usage: tessera convert <source> <target> [--shard-mb N] [--zstd N]
                       [--overwrite] [--quiet] [--json]

Converts <source> into <target>. Conversions:
${CONVERTERS.map((c) => `  ${c.description}`).join("\n")}
Between OME-Zarr stores, every level and every label image under labels/
is copied as it is (no resampling); chunk shapes are kept and shards grow
from them along z, y and x up to --shard-mb. A target ending in .parquet
gets level 0 as an OME-Arrow Parquet record (.arrow, .feather, .ipc:
Arrow IPC); an OME-Arrow source becomes OME-Zarr 0.5 with a pyramid.

Options:
  --shard-mb N   largest uncompressed shard in MiB (default 16)
  --zstd N       zstd level (default 3)
  --overwrite    replace an existing store or file at <target>
  -q, --quiet    no progress bar
  --json         print the result as JSON
  -h, --help`,
  options: {
    "shard-mb": { type: "string" },
    zstd: { type: "string" },
    overwrite: { type: "boolean" },
  },
  positionals: 2,
  async run([source, target], values, ctx) {
    const shardMb = intOption(this, values, "shard-mb", 1);
    const zstd = intOption(this, values, "zstd", 1);
    const bar = new ProgressBar("convert", { quiet: Boolean(values.quiet) });
    const result = await convert(source, target, {
      ...(shardMb !== undefined ? { shardBytes: shardMb << 20 } : {}),
      ...(zstd !== undefined ? { zstdLevel: zstd } : {}),
      overwrite: Boolean(values.overwrite),
      signal: ctx.signal,
      onProgress: ({ bytesDone, bytesTotal }) => bar.update(bytesDone, bytesTotal, bytesDone),
    });
    bar.done();
    if (values.json) {
      ctx.out(JSON.stringify(result, null, 2));
      return 0;
    }
    ctx.out(
      `converted ${result.source} → ${result.target} (${formatBytes(result.bytes)} of pixels)`,
    );
    for (const l of result.levels) {
      ctx.out(
        `  ${l.path}  ${l.shape.join("×")}  chunks ${l.chunks.join("×")}  shards ${
          l.shards.join("×")
        }`,
      );
    }
    if (result.labels.length > 0) ctx.out(`  labels/  ${result.labels.join(", ")}`);
    for (const note of result.notes) ctx.out(`  note: ${note}`);
    return 0;
  },
};
