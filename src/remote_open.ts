/**
 * Opening images in remote stores: the metadata of an OME-NGFF group or a
 * plain Zarr v3/v2 array is read through a native {@link RemoteStore} (the
 * same parsers as local stores), and each level's reader is a native array
 * under that store.
 * @module
 */

import { NotFound, StorageError } from "./errors.ts";
import { Image, type LevelReader, type OpenOptions } from "./image.ts";
import { NativeArray } from "./native.ts";
import { type LevelInfo, parseNgff } from "./ngff.ts";
import { RemoteStore } from "./remote.ts";
import { encodeDescriptor } from "./zarr/descriptor.ts";
import { parseLabelList } from "./zarr/hierarchy.ts";
import { describeJson, parseMetadataJson } from "./zarr/json.ts";
import { type ArrayMetadata, type NodeMetadata, parseNode } from "./zarr/metadata.ts";
import { parseV2Array } from "./zarr/v2.ts";

/** A remote node and the file its attributes came from. */
interface RemoteNode {
  node: NodeMetadata;
  attributesFile: string;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const child = (prefix: string, name: string) => (prefix === "" ? name : `${prefix}/${name}`);

/** Reads the node at `prefix` (Zarr v3 `zarr.json` first, then v2); `undefined` when there is none. */
async function readRemoteNode(store: RemoteStore, prefix: string): Promise<RemoteNode | undefined> {
  const path = store.keyUrl(prefix);
  const v3 = await store.getText(child(prefix, "zarr.json"));
  if (v3 !== undefined) {
    const file = store.keyUrl(child(prefix, "zarr.json"));
    return { node: parseNode(parseMetadataJson(v3, file, true), path, file), attributesFile: file };
  }
  // Zarr v2: its three metadata objects at once (one round trip).
  const attributesFile = store.keyUrl(child(prefix, ".zattrs"));
  const [zarray, zgroup, zattrs] = await Promise.all(
    [".zarray", ".zgroup", ".zattrs"].map((name) => store.getText(child(prefix, name))),
  );
  if (zarray === undefined && zgroup === undefined) return undefined;
  let attributes: Record<string, unknown> = {};
  if (zattrs !== undefined) {
    const json = parseMetadataJson(zattrs, attributesFile);
    if (!isObject(json)) {
      throw new StorageError(`${attributesFile}: attributes are not a JSON object`);
    }
    attributes = json;
  }
  if (zarray !== undefined) {
    const file = store.keyUrl(child(prefix, ".zarray"));
    const array = parseV2Array(parseMetadataJson(zarray, file, true), attributes, path, file);
    return { node: { kind: "array", array }, attributesFile };
  }
  const file = store.keyUrl(child(prefix, ".zgroup"));
  const json = parseMetadataJson(zgroup!, file);
  if (!isObject(json) || json.zarr_format !== 2) {
    throw new StorageError(`${file} (Zarr v2): zarr_format is not 2 (${describeJson(json)})`);
  }
  return { node: { kind: "group", group: { path, attributes } }, attributesFile };
}

/** An image in a remote store: levels read through its native store. */
class RemoteImage extends Image {
  readonly #store: RemoteStore;
  readonly #prefixes: string[];

  constructor(
    store: RemoteStore,
    prefixes: string[],
    ...rest: ConstructorParameters<typeof Image>
  ) {
    super(...rest);
    this.#store = store;
    this.#prefixes = prefixes;
  }

  protected override openLevel(level: number): LevelReader {
    const meta = this.arrayMetadata(level);
    return new NativeArray(meta.path, encodeDescriptor(meta), meta.fill, {
      store: this.#store.pointer,
      prefix: this.#prefixes[level],
    });
  }

  override [Symbol.dispose](): void {
    super[Symbol.dispose]();
    this.#store[Symbol.dispose]();
  }
}

/**
 * Opens the image at the remote `url` (see {@link open}): an OME-NGFF
 * group or a plain Zarr array, with `options` configuring the store.
 */
export async function openRemote(url: string, options: OpenOptions): Promise<Image> {
  const store = new RemoteStore(url, options);
  try {
    const root = await readRemoteNode(store, "");
    if (!root) {
      throw new NotFound(
        `${store.url} is not a Zarr store (or does not exist): it has no zarr.json (nor Zarr v2 .zarray/.zgroup)`,
      );
    }
    if (root.node.kind === "array") {
      const a = root.node.array;
      const names = a.shape.map((_, i) => (a.dimensionNames?.[i] ?? `d${i}`).toLowerCase());
      if (new Set(names).size !== names.length) {
        throw new StorageError(
          `${store.url}: dimension_names ${describeJson(a.dimensionNames)} repeat`,
        );
      }
      const level = { path: ".", shape: a.shape, scale: a.shape.map(() => 1) };
      return new RemoteImage(store, [""], store.url, [a], [level], names.map((name) => ({ name })));
    }
    const ngff = parseNgff(root.node.group.attributes, root.attributesFile);
    if (!ngff) {
      throw new NotFound(
        `${store.url} is a Zarr group without OME-NGFF multiscales; open one of its arrays instead`,
      );
    }
    const levels: LevelInfo[] = [];
    const prefixes = ngff.datasets.map((d) => d.path.replace(/^\.\/|\/+$/g, ""));
    // Every level and the labels group at once: one or two round trips in all.
    const [labelsNode, ...nodes] = await Promise.all(
      ["labels", ...prefixes].map((p) => readRemoteNode(store, p)),
    );
    const arrays: ArrayMetadata[] = nodes.map((found, i) => {
      const levelUrl = store.keyUrl(prefixes[i]);
      if (!found) throw new NotFound(`${levelUrl}: multiscale level does not exist`);
      if (found.node.kind !== "array") {
        throw new StorageError(`${levelUrl}: multiscale level is not an array`);
      }
      const a = found.node.array;
      if (a.shape.length !== ngff.axes.length) {
        throw new StorageError(
          `${levelUrl}: rank ${a.shape.length} differs from the ${ngff.axes.length} NGFF axes`,
        );
      }
      return a;
    });
    arrays.forEach((a, i) => {
      if (a.dtype !== arrays[0].dtype) {
        throw new StorageError(
          `${store.keyUrl(prefixes[i])}: dtype ${a.dtype} differs from level 0 (${
            arrays[0].dtype
          })`,
        );
      }
      const d = ngff.datasets[i];
      levels.push({
        path: d.path,
        shape: a.shape,
        scale: d.scale,
        ...(d.translation ? { translation: d.translation } : {}),
      });
    });
    const labels = labelsNode?.node.kind === "group"
      ? parseLabelList(labelsNode.node.group.attributes, labelsNode.attributesFile)
      : undefined;
    return new RemoteImage(
      store,
      prefixes,
      store.url,
      arrays,
      levels,
      ngff.axes,
      ngff.channels,
      ngff.version,
      labels,
    );
  } catch (e) {
    store[Symbol.dispose]();
    throw e;
  }
}
