/**
 * Zarr hierarchies of either format: which format a node uses, where its
 * attributes live, its members, and the OME-NGFF attribute block of a group.
 * @module
 */

import { dirname, join } from "node:path";
import { NotFound, StorageError } from "../errors.ts";
import { type Axis, parseNgff } from "../ngff.ts";
import { type NodeMetadata, readNode } from "./metadata.ts";
import { isV2Node } from "./v2.ts";
import { describeJson } from "./json.ts";

/** A node with the Zarr format it was read from. */
export interface ZarrNode {
  /** Zarr format: 2 (`.zarray`/`.zgroup`/`.zattrs`) or 3 (`zarr.json`). */
  format: 2 | 3;
  /** The file holding the node's user attributes (`zarr.json` or `.zattrs`). */
  attributesFile: string;
  /** The parsed node. */
  node: NodeMetadata;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** The Zarr format of the node at `path`, or `undefined` when it is not a Zarr node. */
export async function zarrFormatOf(path: string): Promise<2 | 3 | undefined> {
  if (await isFile(join(path, "zarr.json"))) return 3;
  if (await isV2Node(path)) return 2;
  return undefined;
}

/** Reads the node at `path` (Zarr v3 first, then v2), with its format. */
export async function readZarrNode(path: string): Promise<ZarrNode> {
  const node = await readNode(path); // throws NotFound / StorageError for non-nodes
  const format = (await zarrFormatOf(path)) ?? 3;
  return {
    format,
    attributesFile: join(path, format === 3 ? "zarr.json" : ".zattrs"),
    node,
  };
}

/** Reads the node at `path`, or `undefined` when the folder is missing or holds no Zarr node. */
export async function readZarrNodeIfAny(path: string): Promise<ZarrNode | undefined> {
  if ((await zarrFormatOf(path)) === undefined) return undefined;
  return await readZarrNode(path);
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The OME-NGFF block of group attributes: `attributes.ome` (NGFF 0.5, Zarr v3)
 * or the attributes themselves (NGFF ≤ 0.4, Zarr v2).
 */
export function omeAttributes(attributes: Record<string, unknown>): Record<string, unknown> {
  return isObject(attributes.ome) ? attributes.ome : attributes;
}

/**
 * A direct member of a group.
 *
 * @example
 * ```ts
 * import { info } from "@tessera/tessera";
 * const node = await info("some/group.zarr");
 * for (const m of node.members ?? []) console.log(m.name, m.kind);
 * ```
 */
export interface Member {
  /** Folder name inside the group. */
  name: string;
  /** Node kind. */
  kind: "array" | "group";
}

/**
 * Direct members of a group: sub-folders holding a Zarr node of either
 * format, sorted by name. Only metadata files are looked at.
 */
export async function listMembers(path: string): Promise<Member[]> {
  const members: Member[] = [];
  try {
    for await (const entry of Deno.readDir(path)) {
      if (!entry.isDirectory || entry.name.startsWith(".")) continue;
      const child = join(path, entry.name);
      if (await isFile(join(child, "zarr.json"))) {
        const text = await Deno.readTextFile(join(child, "zarr.json")).catch(() => "");
        let kind: Member["kind"] | undefined;
        try {
          const json = JSON.parse(text);
          if (json?.node_type === "array" || json?.node_type === "group") kind = json.node_type;
        } catch {
          // not a readable node: left out
        }
        if (kind) members.push({ name: entry.name, kind });
      } else if (await isFile(join(child, ".zarray"))) {
        members.push({ name: entry.name, kind: "array" });
      } else if (await isFile(join(child, ".zgroup"))) {
        members.push({ name: entry.name, kind: "group" });
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new NotFound(`${path} does not exist`);
    throw new StorageError(`${path}: ${(e as Error).message}`);
  }
  return members.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Names of the label images of an NGFF image at `imagePath`: the `labels`
 * list of its `labels` group (`labels/.zattrs` or `labels/zarr.json`).
 * `undefined` when the image has no `labels` group.
 */
export async function readLabelNames(imagePath: string): Promise<string[] | undefined> {
  const labelsPath = join(imagePath, "labels");
  const found = await readZarrNodeIfAny(labelsPath);
  if (!found) return undefined;
  if (found.node.kind !== "group") {
    throw new StorageError(`${labelsPath}: the NGFF labels node is an array, expected a group`);
  }
  return parseLabelList(found.node.group.attributes, found.attributesFile);
}

/** The `labels` list of a labels group's attributes (empty when absent). */
export function parseLabelList(attributes: Record<string, unknown>, file: string): string[] {
  const labels = omeAttributes(attributes).labels;
  if (labels === undefined) return [];
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === "string")) {
    throw new StorageError(`${file}: OME-NGFF labels ${describeJson(labels)} must list names`);
  }
  return labels as string[];
}

/**
 * The NGFF axes of an array that is a level of the multiscale image in its
 * parent folder, or `undefined` when it is not one (or the parent's metadata
 * cannot be read: the array itself is what was asked for).
 */
export async function ngffAxesOfLevel(
  arrayPath: string,
  rank: number,
): Promise<Axis[] | undefined> {
  const parent = dirname(arrayPath);
  if (parent === arrayPath) return undefined;
  try {
    const found = await readZarrNodeIfAny(parent);
    if (found?.node.kind !== "group") return undefined;
    const ngff = parseNgff(found.node.group.attributes, found.attributesFile);
    const isLevel = ngff?.datasets.some((d) => join(parent, d.path) === arrayPath);
    return isLevel && ngff!.axes.length === rank ? ngff!.axes : undefined;
  } catch {
    return undefined;
  }
}
