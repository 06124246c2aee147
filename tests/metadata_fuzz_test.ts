/**
 * Property fuzzing of the metadata parsers, which run in TypeScript:
 * zarr.json (v3 arrays and groups), .zarray/.zattrs (v2), and OME-NGFF
 * multiscales (0.4 and 0.5). Seeds are real documents written by
 * zarr-python's and tessera's writers; each iteration mutates one (a value
 * swapped for a hostile one, a key dropped, the text cut or a byte changed)
 * and parses it. Every outcome must be a parsed node or a TesseraError
 * naming the file; a parsed array must also be accepted or rejected by the
 * native descriptor decoder with a typed error. Anything else (TypeError,
 * RangeError, a hang, a crash) fails with the input that caused it.
 *
 * `TESSERA_FUZZ_ITERATIONS` sets the iterations per seed (default 400);
 * `TESSERA_FUZZ_SEED` the PRNG seed (default 1).
 */

import assert from "node:assert/strict";
import { TesseraError } from "../mod.ts";
import { NativeArray } from "../src/native.ts";
import { parseNgff } from "../src/ngff.ts";
import { encodeDescriptor } from "../src/zarr/descriptor.ts";
import { parseMetadataJson } from "../src/zarr/json.ts";
import { type ArrayMetadata, parseNode } from "../src/zarr/metadata.ts";
import { parseV2Array } from "../src/zarr/v2.ts";
import { mulberry32 } from "./helpers.ts";

const ITERATIONS = Number(Deno.env.get("TESSERA_FUZZ_ITERATIONS") ?? 400);
const SEED = Number(Deno.env.get("TESSERA_FUZZ_SEED") ?? 1);

/** Seeds: real metadata documents (zarr-python 3.1 and tessera's writers, NGFF 0.4/0.5). */
const SEEDS: Record<string, unknown> = {
  "v3-sharded-array": {
    zarr_format: 3,
    node_type: "array",
    shape: [2, 64, 64],
    data_type: "uint16",
    chunk_grid: { name: "regular", configuration: { chunk_shape: [1, 32, 32] } },
    chunk_key_encoding: { name: "default", configuration: { separator: "/" } },
    fill_value: 0,
    codecs: [{
      name: "sharding_indexed",
      configuration: {
        chunk_shape: [1, 16, 16],
        codecs: [{ name: "bytes", configuration: { endian: "little" } }, {
          name: "zstd",
          configuration: { level: 0, checksum: false },
        }],
        index_codecs: [{ name: "bytes", configuration: { endian: "little" } }, {
          name: "crc32c",
        }],
        index_location: "end",
      },
    }],
    attributes: {},
    dimension_names: ["c", "y", "x"],
    storage_transformers: [],
  },
  "v3-plain-array": {
    zarr_format: 3,
    node_type: "array",
    shape: [10, 20],
    data_type: "float32",
    chunk_grid: { name: "regular", configuration: { chunk_shape: [5, 8] } },
    chunk_key_encoding: { name: "v2", configuration: { separator: "." } },
    fill_value: "NaN",
    codecs: [
      { name: "transpose", configuration: { order: [1, 0] } },
      { name: "bytes", configuration: { endian: "big" } },
      {
        name: "blosc",
        configuration: { cname: "lz4", clevel: 5, shuffle: "shuffle", typesize: 4, blocksize: 0 },
      },
      { name: "crc32c" },
    ],
    attributes: { note: "x" },
  },
  "v2-array": {
    zarr_format: 2,
    shape: [30, 40],
    chunks: [10, 16],
    dtype: "<i8",
    fill_value: -9223372036854775808n,
    order: "F",
    compressor: { id: "blosc", cname: "zstd", clevel: 3, shuffle: 2, blocksize: 0 },
    filters: null,
    dimension_separator: "/",
  },
  "ngff-0.5-group": {
    zarr_format: 3,
    node_type: "group",
    attributes: {
      ome: {
        version: "0.5",
        multiscales: [{
          name: "img",
          axes: [
            { name: "c", type: "channel" },
            { name: "z", type: "space", unit: "micrometer" },
            { name: "y", type: "space", unit: "micrometer" },
            { name: "x", type: "space", unit: "micrometer" },
          ],
          datasets: [0, 1].map((i) => ({
            path: String(i),
            coordinateTransformations: [
              { type: "scale", scale: [1, 0.5, 0.25 * 2 ** i, 0.25 * 2 ** i] },
              { type: "translation", translation: [0, 0, 0.5 * i, 0.5 * i] },
            ],
          })),
          coordinateTransformations: [{ type: "scale", scale: [1, 1, 1, 1] }],
        }],
        omero: {
          channels: [{ label: "DAPI", color: "0000FF", window: { start: 0, end: 1000 } }],
        },
      },
    },
  },
  "ngff-0.4-zattrs": {
    multiscales: [{
      version: "0.4",
      axes: [{ name: "y", type: "space" }, { name: "x", type: "space" }],
      datasets: [{ path: "0", coordinateTransformations: [{ type: "scale", scale: [1, 1] }] }],
    }],
  },
};

const HOSTILE: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  2 ** 31,
  2 ** 53,
  2 ** 63,
  -(2 ** 63),
  1e308,
  -1e308,
  "",
  "NaN",
  "Infinity",
  "0x7fffffffffffffff",
  "\u0000",
  "../../etc",
  [],
  [0],
  [-1],
  [2 ** 62, 2 ** 62],
  Array(40).fill(1),
  {},
  { name: "bytes" },
  { name: "sharding_indexed", configuration: {} },
  9223372036854775807n,
  -1n,
];

type Mutation = (value: unknown, rng: () => number) => unknown;

function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof value !== "object" || value === null) return [prefix];
  const keys = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  return [
    prefix,
    ...keys.flatMap((k) => paths((value as Record<string, unknown>)[k], [...prefix, k])),
  ];
}

function clone(value: unknown): unknown {
  return structuredClone(value);
}

function pick<T>(items: readonly T[], rng: () => number): T {
  return items[Math.floor(rng() * items.length)];
}

function setAt(root: unknown, path: (string | number)[], value: unknown, remove = false): unknown {
  if (path.length === 0) return value;
  const out = clone(root) as Record<string | number, unknown>;
  let node = out;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (remove && !Array.isArray(node)) delete node[last];
  else node[last] = value;
  return out;
}

const mutations: Mutation[] = [
  (v, rng) => setAt(v, pick(paths(v), rng), pick(HOSTILE, rng)),
  (v, rng) => setAt(v, pick(paths(v), rng), undefined, true),
  (v, rng) => {
    // copy one subtree over another
    const all = paths(v);
    const from = pick(all, rng);
    let sub: unknown = v;
    for (const k of from) sub = (sub as Record<string | number, unknown>)[k];
    return setAt(v, pick(all, rng), clone(sub));
  },
];

/** Text-level mutations of the serialized document. */
function mutateText(text: string, rng: () => number): string {
  const at = Math.floor(rng() * text.length);
  switch (Math.floor(rng() * 3)) {
    case 0:
      return text.slice(0, at);
    case 1:
      return text.slice(0, at) + String.fromCharCode(Math.floor(rng() * 128)) + text.slice(at + 1);
    default:
      return text.slice(0, at) + pick(["9".repeat(30), "-", "1e999", '"', "]"], rng) +
        text.slice(at);
  }
}

function serialize(value: unknown): string {
  const raw = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
  return JSON.stringify(value, (_, v) => typeof v === "bigint" ? raw(v.toString()) : v) ?? "null";
}

/** Parses `text` as the seed's kind of document; throws only TesseraErrors (or a bug). */
function parse(kind: string, text: string): ArrayMetadata | undefined {
  const file = `/fuzz/${kind}`;
  const json = parseMetadataJson(text, file, true);
  if (kind.startsWith("v2")) return parseV2Array(json, {}, "/fuzz", file);
  if (kind === "ngff-0.4-zattrs") {
    // .zattrs is any JSON object; the v2 reader checks that before parseNgff
    if (typeof json === "object" && json !== null && !Array.isArray(json)) {
      parseNgff(json as Record<string, unknown>, file);
    }
    return undefined;
  }
  if (kind.startsWith("ngff")) {
    const node = parseNode(json, "/fuzz", file);
    if (node.kind === "group") parseNgff(node.group.attributes, file);
    return undefined;
  }
  const node = parseNode(json, "/fuzz", file);
  return node.kind === "array" ? node.array : undefined;
}

Deno.test("metadata parsers: mutated real documents give nodes or TesseraErrors", () => {
  const rng = mulberry32(SEED);
  let parsed = 0, rejected = 0, opened = 0;
  for (const [kind, seed] of Object.entries(SEEDS)) {
    assert.ok(parse(kind, serialize(seed)) !== undefined || !kind.includes("array"), kind);
    for (let i = 0; i < ITERATIONS; i++) {
      let text: string;
      if (rng() < 0.7) {
        let doc = seed;
        const rounds = 1 + Math.floor(rng() * 3);
        for (let r = 0; r < rounds; r++) doc = pick(mutations, rng)(doc, rng);
        text = serialize(doc);
      } else {
        text = mutateText(serialize(seed), rng);
      }
      try {
        const meta = parse(kind, text);
        parsed++;
        if (meta) {
          // the native decoder must agree or refuse with a typed error
          try {
            new NativeArray("/nonexistent/fuzz", encodeDescriptor(meta), meta.fill)[
              Symbol.dispose
            ]();
            opened++;
          } catch (e) {
            if (!(e instanceof TesseraError)) throw e;
          }
        }
      } catch (e) {
        if (!(e instanceof TesseraError)) {
          assert.fail(`${kind}: ${e} for input ${text.slice(0, 2000)}`);
        }
        assert.match(e.message, /\/fuzz/, `the error names the file: ${e.message}`);
        rejected++;
      }
    }
  }
  console.log(`metadata fuzz: ${parsed} parsed (${opened} opened natively), ${rejected} rejected`);
  assert.ok(rejected > 0 && parsed > 0);
});

Deno.test("metadata parsers: regressions found by the fuzzer", () => {
  // a bigint (a 64-bit fill value kept exact by the JSON parse) inside a
  // value an error message quoted: JSON.stringify threw a TypeError
  const seed = SEEDS["v2-array"] as Record<string, unknown>;
  const zarray = { ...seed, filters: seed };
  assert.throws(
    () => parse("v2-array", serialize(zarray)),
    (e) => e instanceof TesseraError && /\/fuzz\/v2-array.*-9223372036854775808/.test(e.message),
  );
});
