/**
 * OME-NGFF image metadata: multiscales (axes, levels, scales) and omero
 * channels, read from a Zarr v3 group's `attributes.ome` (NGFF 0.5) or a Zarr
 * v2 group's `.zattrs` (NGFF 0.4, with 0.1–0.3 tolerated: bare axis names,
 * implicit t/c/z/y/x axes).
 * @module
 */

import { StorageError } from "./errors.ts";
import { describeJson } from "./zarr/json.ts";

/**
 * One axis of an NGFF image.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * const axes = img.axisInfo; // e.g. { name: "z", type: "space", unit: "micrometer" }
 * console.log(axes.filter((a) => a.type === "space").map((a) => a.name));
 * ```
 */
export interface Axis {
  /** Lower-case name, e.g. "t", "c", "z", "y", "x". */
  name: string;
  /** "time", "channel", "space", or another type when given. */
  type?: string;
  /** Physical unit, when given. */
  unit?: string;
}

/**
 * One resolution level of a multiscale image.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * for (const level of img.levels) console.log(level.path, level.shape, level.scale);
 * ```
 */
export interface LevelInfo {
  /** Path of the level's array inside the group. */
  path: string;
  /** Shape of the level's array. */
  shape: number[];
  /** Physical size of one pixel along each axis. */
  scale: number[];
  /** Physical offset of the first pixel along each axis, when given. */
  translation?: number[];
}

/**
 * An omero channel.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * for (const ch of img.channelInfo ?? []) console.log(ch.name, ch.color, ch.window?.start, ch.window?.end);
 * ```
 */
export interface Channel {
  /** Channel label. */
  name?: string;
  /** Display colour as RRGGBB hex. */
  color?: string;
  /** Display window. */
  window?: { start: number; end: number; min?: number; max?: number };
}

/** The multiscales and omero metadata of a group, without array shapes. */
export interface NgffImageMetadata {
  /** NGFF version string. */
  version: string;
  /** Image name, when given. */
  name?: string;
  /** Axes in array order. */
  axes: Axis[];
  /** Levels (without shapes), finest first. */
  datasets: { path: string; scale: number[]; translation?: number[] }[];
  /** Channels from omero, when given. */
  channels?: Channel[];
}

/** Axis types implied by the names of NGFF 0.3 axes (which are bare names). */
const AXIS_TYPES: Record<string, string> = {
  t: "time",
  c: "channel",
  z: "space",
  y: "space",
  x: "space",
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Finds OME-NGFF image metadata in group attributes; `undefined` when there is none. */
export function parseNgff(
  attributes: Record<string, unknown>,
  file: string,
): NgffImageMetadata | undefined {
  const ome = isObject(attributes.ome) ? attributes.ome : attributes;
  const multiscales = ome.multiscales;
  if (multiscales === undefined) return undefined;
  const fail = (what: string): never => {
    throw new StorageError(`${file}: OME-NGFF ${what}`);
  };
  if (!Array.isArray(multiscales) || multiscales.length === 0 || !isObject(multiscales[0])) {
    return fail("multiscales must be a non-empty list");
  }
  const ms = multiscales[0];
  const version = String(ome.version ?? ms.version ?? "unknown");
  // NGFF 0.1 and 0.2 have no axes: their images are always 5-D t, c, z, y, x.
  const rawAxes = ms.axes === undefined && (version === "0.1" || version === "0.2")
    ? ["t", "c", "z", "y", "x"]
    : ms.axes;
  if (!Array.isArray(rawAxes) || rawAxes.length === 0) {
    return fail("multiscales[0].axes is missing");
  }
  const axes: Axis[] = rawAxes.map((a, i) => {
    // NGFF 0.3 lists axes as names; their types follow from the names.
    const axis = typeof a === "string" ? { name: a, type: AXIS_TYPES[a.toLowerCase()] } : a;
    if (!isObject(axis) || typeof axis.name !== "string") return fail(`axis ${i} has no name`);
    return {
      name: axis.name.toLowerCase(),
      ...(typeof axis.type === "string" ? { type: axis.type } : {}),
      ...(typeof axis.unit === "string" ? { unit: axis.unit } : {}),
    };
  });
  if (new Set(axes.map((a) => a.name)).size !== axes.length) fail("axis names repeat");
  if (!Array.isArray(ms.datasets) || ms.datasets.length === 0) {
    return fail("multiscales[0].datasets is missing");
  }
  const root = transforms(ms.coordinateTransformations, axes.length, "multiscales[0]", fail);
  const datasets = ms.datasets.map((d, i) => {
    if (!isObject(d) || typeof d.path !== "string" || d.path === "") {
      return fail(`dataset ${i} has no path`);
    }
    if (
      d.path.split("/").some((part) => part === ".." || part === "") ||
      [...d.path].some((ch) => ch < " " || ch === "\\")
    ) {
      fail(`dataset path ${describeJson(d.path)} is not allowed`);
    }
    const t = transforms(d.coordinateTransformations, axes.length, `dataset ${d.path}`, fail);
    const scale = t.scale ?? axes.map(() => 1);
    // Transformations of the whole multiscale apply after the dataset's own.
    const translation = t.translation || root.translation
      ? axes.map((_, k) =>
        (t.translation?.[k] ?? 0) * (root.scale?.[k] ?? 1) + (root.translation?.[k] ?? 0)
      )
      : undefined;
    return {
      path: d.path,
      scale: root.scale ? scale.map((s, k) => s * root.scale![k]) : scale,
      ...(translation ? { translation } : {}),
    };
  });
  const omero = isObject(ome.omero) ? ome.omero : undefined;
  const channels = Array.isArray(omero?.channels)
    ? omero.channels.map((c): Channel => {
      const ch = isObject(c) ? c : {};
      const w = isObject(ch.window) ? ch.window : undefined;
      return {
        ...(typeof ch.label === "string" ? { name: ch.label } : {}),
        ...(typeof ch.color === "string" ? { color: ch.color } : {}),
        ...(w && typeof w.start === "number" && typeof w.end === "number"
          ? {
            window: {
              start: w.start,
              end: w.end,
              ...(typeof w.min === "number" ? { min: w.min } : {}),
              ...(typeof w.max === "number" ? { max: w.max } : {}),
            },
          }
          : {}),
      };
    })
    : undefined;
  return {
    version,
    ...(typeof ms.name === "string" ? { name: ms.name } : {}),
    axes,
    datasets,
    ...(channels ? { channels } : {}),
  };
}

function transforms(
  value: unknown,
  rank: number,
  where: string,
  fail: (m: string) => never,
): { scale?: number[]; translation?: number[] } {
  if (value === undefined) return {};
  if (!Array.isArray(value)) return fail(`${where}: coordinateTransformations is not a list`);
  const out: { scale?: number[]; translation?: number[] } = {};
  for (const t of value) {
    if (!isObject(t)) continue;
    const key = t.type === "scale" ? "scale" : t.type === "translation" ? "translation" : undefined;
    if (!key) continue;
    const v = t[key];
    if (!Array.isArray(v) || v.length !== rank || !v.every((x) => typeof x === "number")) {
      fail(`${where}: ${key} ${describeJson(v)} must list ${rank} numbers`);
    }
    out[key] = v as number[];
  }
  return out;
}
