/**
 * Rich display in Jupyter (Deno kernel): the media bundles returned by the
 * `[Symbol.for("Jupyter.display")]` methods of images, queries, plans and
 * views — compact HTML tables and PNG thumbnails.
 * @module
 */

import { InvalidArgument } from "./errors.ts";
import type { Image } from "./image.ts";
import { arrayInfo } from "./info.ts";
import type { Plan, Query } from "./query.ts";
import type { RenderedPng } from "./render.ts";
import { thumbnail } from "./thumbnail.ts";
import type { TensorView } from "./tensor_view.ts";

/** The symbol the Deno Jupyter kernel calls to display a value. */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display") as never;

/**
 * A Jupyter media bundle: MIME type → content (PNG as base64).
 *
 * @example
 * ```ts
 * import { type MediaBundle, open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * const display = img as unknown as Record<symbol, () => Promise<MediaBundle>>;
 * const bundle = await display[Symbol.for("Jupyter.display")](); // what the Deno kernel calls
 * console.log(Object.keys(bundle)); // ["text/plain", "text/html", "image/png"]
 * ```
 */
export type MediaBundle = Record<string, string>;

/** Base64 of bytes (Jupyter carries PNG as base64 text). */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Escapes text for HTML. */
export function escapeHtml(text: unknown): string {
  return String(text).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** Human-readable byte count (binary units). */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

const STYLE = "border-collapse:collapse;font-family:monospace;font-size:12px";
const CELL = "padding:2px 8px;text-align:left;border-bottom:1px solid #ddd";

/** An HTML table of label/value rows (values are HTML already). */
function table(rows: [string, string][], caption?: string): string {
  const body = rows.map(([k, v]) =>
    `<tr><th style="${CELL}">${escapeHtml(k)}</th><td style="${CELL}">${v}</td></tr>`
  )
    .join("");
  const head = caption
    ? `<caption style="text-align:left;font-weight:bold">${escapeHtml(caption)}</caption>`
    : "";
  return `<table style="${STYLE}">${head}${body}</table>`;
}

function pngTag(rendered: RenderedPng, base64: string): string {
  return `<img src="data:image/png;base64,${base64}" width="${rendered.width}" height="${rendered.height}" ` +
    `style="image-rendering:pixelated;max-width:100%">`;
}

function swatch(color: string | undefined): string {
  return color
    ? `<span style="display:inline-block;width:10px;height:10px;background:#${escapeHtml(color)};` +
      `border:1px solid #888;margin-right:4px"></span>`
    : "";
}

/** Rows and plain text describing an image's metadata (no pixels read). */
export function imageRows(image: Image): [string, string][] {
  const level0 = arrayInfo(image.arrayMetadata(0));
  const rows: [string, string][] = [
    ["source", escapeHtml(image.source)],
    ["axes", escapeHtml(image.axes.join(", "))],
    ["shape", escapeHtml(image.shape.join(" × "))],
    ["dtype", escapeHtml(image.dtype)],
    [
      "levels",
      image.levels.map((l, i) => `${i}: ${escapeHtml(l.shape.join("×"))}`).join("<br>"),
    ],
    ["chunks", escapeHtml(level0.chunks.join("×"))],
  ];
  if (level0.shards) rows.push(["shards", escapeHtml(level0.shards.join("×"))]);
  rows.push(["codecs", escapeHtml(level0.codecs.join(" → "))]);
  if (image.channelInfo) {
    rows.push([
      "channels",
      image.channelInfo.map((c, i) => `${swatch(c.color)}${escapeHtml(c.name ?? `channel ${i}`)}`)
        .join("<br>"),
    ]);
  }
  if (image.ngffVersion) rows.push(["OME-NGFF", escapeHtml(image.ngffVersion)]);
  return rows;
}

function plainText(rows: [string, string][], title: string): string {
  const strip = (html: string) =>
    html.replace(/<br>/g, "; ").replace(/<[^>]+>/g, "").replace(
      /&#(\d+);/g,
      (_, n) => String.fromCharCode(Number(n)),
    );
  return [title, ...rows.map(([k, v]) => `  ${k}: ${strip(v)}`)].join("\n");
}

/** The display of an image: a metadata table beside a composite thumbnail. */
export async function displayImage(image: Image): Promise<MediaBundle> {
  const rows = imageRows(image);
  let rendered: RenderedPng;
  try {
    rendered = await thumbnail(image, { maxSize: 256, maxReadBytes: 256 << 20 });
  } catch (e) {
    if (!(e instanceof InvalidArgument)) throw e;
    rows.push(["thumbnail", `none: ${escapeHtml(e.message)}`]);
    return {
      "text/plain": plainText(rows, "tessera Image"),
      "text/html": table(rows, "tessera Image"),
    };
  }
  const png = encodeBase64(rendered.png);
  return {
    "text/plain": plainText(rows, "tessera Image"),
    "text/html": `<div style="display:flex;gap:16px;align-items:flex-start">${
      table(rows, "tessera Image")
    }${pngTag(rendered, png)}</div>`,
    "image/png": png,
  };
}

/** Rows of a plan table. */
export function planRows(plan: Plan): [string, string][] {
  return [
    ["level", String(plan.level)],
    [
      "output",
      `${escapeHtml(plan.layout)} ${escapeHtml(plan.shape.join(" × "))} ${escapeHtml(plan.dtype)}`,
    ],
    ["output bytes", formatBytes(plan.outputBytes)],
    ["shards touched", String(plan.shardsTouched)],
    ["chunks touched", String(plan.chunksTouched)],
    ["chunks stored", String(plan.chunksStored)],
    ["bytes read", formatBytes(plan.bytesRead)],
    ["read operations", String(plan.readOps)],
    ["bytes decoded", formatBytes(plan.bytesDecoded)],
  ];
}

/** The display of a plan: one table. */
export function displayPlan(plan: Plan): MediaBundle {
  const rows = planRows(plan);
  return {
    "text/plain": plainText(rows, "tessera Plan"),
    "text/html": table(rows, "tessera Plan"),
  };
}

/** Makes `plan` display as a table in Jupyter (a non-enumerable method: the plan stays plain data). */
export function displayablePlan(plan: Plan): Plan {
  Object.defineProperty(plan, JUPYTER_DISPLAY, {
    value: () => displayPlan(plan),
    enumerable: false,
  });
  return plan;
}

/** The display of a query: its plan. */
export async function displayQuery(query: Query): Promise<MediaBundle> {
  const bundle = displayPlan(await query.explain());
  return {
    "text/plain": bundle["text/plain"].replace("tessera Plan", "tessera Query"),
    "text/html": bundle["text/html"].replace(">tessera Plan<", ">tessera Query (plan)<"),
  };
}

/** Whether a view can be drawn: 2-D or 3-D after dropping size-1 axes, or 4-D with channels. */
function drawable(view: TensorView): boolean {
  const axes = view.axes.filter((_, i) => view.shape[i] > 1);
  return view.device === "cpu" && view.size > 0 && view.shape.length >= 2 &&
    (axes.length <= 3 || (axes.length === 4 && axes.includes("c")));
}

/** The display of a view: shape, dtype, layout and, for 2-D/3-D data, a PNG (max projection for 3-D). */
export async function displayView(view: TensorView): Promise<MediaBundle> {
  const rows: [string, string][] = [
    ["layout", escapeHtml(view.layout)],
    ["shape", escapeHtml(view.shape.join(" × "))],
    ["dtype", escapeHtml(view.dtype)],
    ["strides", escapeHtml(view.strides.join(", "))],
    ["contiguous", String(view.isContiguous())],
    ["device", escapeHtml(view.device)],
    ["bytes", formatBytes(view.byteLength)],
  ];
  const bundle: MediaBundle = { "text/plain": plainText(rows, "tessera TensorView") };
  if (!drawable(view)) return { ...bundle, "text/html": table(rows, "tessera TensorView") };
  const channels = view.axes.includes("c") && view.shape[view.axes.indexOf("c")] > 1;
  const rendered = await view.toPNG({ maxSize: 256, ...(channels ? {} : { channelAxis: null }) });
  const png = encodeBase64(rendered.png);
  return {
    ...bundle,
    "text/html": `<div style="display:flex;gap:16px;align-items:flex-start">${
      table(rows, "tessera TensorView")
    }${pngTag(rendered, png)}</div>`,
    "image/png": png,
  };
}
