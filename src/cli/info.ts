/**
 * `tessera info <store>`: the node at a path as a tree — kind, axes,
 * levels with shapes, chunks, shards, codecs and size on disk.
 * @module
 */

import { join } from "node:path";
import { formatBytes } from "../display.ts";
import { type ArrayInfo, info, type NodeInfo } from "../info.ts";
import type { Command } from "./command.ts";

/** Bytes of the files under `path` (the file itself when it is one). */
export async function sizeOnDisk(path: string): Promise<number> {
  const stat = await Deno.lstat(path);
  if (!stat.isDirectory) return stat.isFile ? stat.size : 0;
  let total = 0;
  for await (const entry of Deno.readDir(path)) total += await sizeOnDisk(join(path, entry.name));
  return total;
}

function arrayLine(a: ArrayInfo): string {
  return [
    `${a.shape.join("×")} ${a.dtype}`,
    `chunks ${a.chunks.join("×")}`,
    ...(a.shards ? [`shards ${a.shards.join("×")}`] : []),
    a.codecs.join(" → "),
  ].join("  ");
}

/** The tree text of {@link info}'s answer with sizes on disk. */
export function formatInfo(node: NodeInfo, total: number, levelSizes: number[]): string {
  const lines: string[] = [];
  const zarr = `Zarr v${node.zarrFormat}`;
  if (node.kind === "image" && node.image) {
    const im = node.image;
    lines.push(
      `${node.path}  OME-NGFF ${im.version} image${im.name ? ` "${im.name}"` : ""} (${zarr}), ${
        formatBytes(total)
      } on disk`,
    );
    lines.push(
      `  axes      ${
        im.axes.map((a) =>
          `${a.name}${a.type || a.unit ? ` (${[a.type, a.unit].filter(Boolean).join(", ")})` : ""}`
        )
          .join("  ")
      }`,
    );
    if (im.channels) {
      lines.push(
        `  channels  ${
          im.channels.map((c, i) => `${c.name ?? i}${c.color ? ` #${c.color}` : ""}`).join("  ")
        }`,
      );
    }
    im.levels.forEach((l, i) => {
      const last = i === im.levels.length - 1 && !node.labels?.length;
      lines.push(
        `  ${last ? "└─" : "├─"} ${l.path}  ${arrayLine(l)}  scale ${l.scale.join(",")}  ${
          formatBytes(levelSizes[i] ?? 0)
        }`,
      );
    });
    if (node.labels?.length) lines.push(`  └─ labels  ${node.labels.join(", ")}`);
  } else if (node.kind === "array" && node.array) {
    lines.push(`${node.path}  array (${zarr}), ${formatBytes(total)} on disk`);
    lines.push(`  └─ ${arrayLine(node.array)}`);
  } else if (node.kind === "plate" && node.plate) {
    const p = node.plate;
    lines.push(
      `${node.path}  OME-NGFF plate${p.name ? ` "${p.name}"` : ""} (${zarr}), ${
        formatBytes(total)
      } on disk`,
    );
    lines.push(`  rows ${p.rows.join(",")}  columns ${p.columns.join(",")}`);
    p.wells.forEach((w, i) =>
      lines.push(
        `  ${i === p.wells.length - 1 ? "└─" : "├─"} ${w.path}  fields ${w.fields.join(", ")}`,
      )
    );
  } else {
    lines.push(`${node.path}  ${node.kind} (${zarr}), ${formatBytes(total)} on disk`);
    const members = node.kind === "well"
      ? node.well?.images.map((i) => i.path) ?? []
      : node.kind === "labels"
      ? node.labels ?? []
      : node.members?.map((m) => `${m.name} (${m.kind})`) ?? [];
    members.forEach((m, i) => lines.push(`  ${i === members.length - 1 ? "└─" : "├─"} ${m}`));
  }
  return lines.join("\n");
}

/** The `info` command. */
export const infoCommand: Command = {
  name: "info",
  summary: "describe a store: tree, axes, shapes, chunks, codecs, size on disk",
  help: `Usage: tessera info <store> [--json]

Describes the Zarr node at <store> (an OME-Zarr image, a plain Zarr v2/v3
array, a plate, a well or a group) from its metadata, without reading
pixels: axes, channels, every level's shape, dtype, chunk and shard shape,
codecs, and the size on disk.

Options:
  --json    print the description as JSON (info() plus sizes in bytes)
  -h, --help`,
  options: {},
  positionals: 1,
  async run([store], values, ctx) {
    const node = await info(store);
    const total = await sizeOnDisk(node.path);
    const levelSizes = node.image
      ? await Promise.all(node.image.levels.map((l) => sizeOnDisk(join(node.path, l.path))))
      : [];
    if (values.json) {
      ctx.out(
        JSON.stringify({ ...node, bytesOnDisk: total, levelBytesOnDisk: levelSizes }, null, 2),
      );
    } else {
      ctx.out(formatInfo(node, total, levelSizes));
    }
    return 0;
  },
};
