/**
 * Generates hostile stores: valid arrays written by tessera, then damaged
 * the way broken or malicious stores are (truncated shards, index entries
 * past the end, overlapping or 2^63-sized ranges, checksum mismatches,
 * chunks decoding to the wrong size, lying Blosc headers, impossible
 * shapes, dtype/fill mismatches, symlinks out of the store, non-UTF-8
 * names). Each case says which typed error reading it must give and what
 * the message must name. Nothing here is committed as binary data.
 *
 *     deno run -A tests/hostile_stores.ts <folder>   # writes them and lists the cases
 * @module
 */

import { join } from "node:path";
import {
  BudgetExceeded,
  createArray,
  DecodeError,
  InvalidArgument,
  NotFound,
  StorageError,
  type TesseraError,
} from "../mod.ts";

/** One hostile store and the error reading it must give. */
export interface HostileCase {
  /** What is wrong with it. */
  name: string;
  /** Folder to open. */
  path: string;
  /** What is done with it: open, read everything, or list it with info(). */
  action: "open" | "collect" | "info";
  /** Error class expected; absent when the action must succeed. */
  error?: new (...args: never[]) => TesseraError;
  /** Must match the message (the file at fault and the problem), or the JSON of info()'s result. */
  message: RegExp;
}

/** CRC-32C (Castagnoli), as the shard index checksum uses. */
export function crc32c(bytes: Uint8Array): number {
  let crc = ~0;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

const SHAPE = [8, 64, 64];
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const data = () => Uint16Array.from({ length: 8 * 64 * 64 }, (_, i) => (i * 7919) & 0xffff);

async function sharded(path: string): Promise<string> {
  using w = await createArray(path, {
    shape: SHAPE,
    dtype: "uint16",
    chunks: [4, 16, 16],
    shards: [4, 32, 32],
  });
  await w.write(data());
  return join(path, "c", "0", "0", "0");
}

/** Rewrites entries of the shard index at the end of `file` (2×2 inner chunks, crc32c) and its checksum. */
async function editIndex(file: string, edit: (index: BigUint64Array) => void): Promise<void> {
  const bytes = await Deno.readFile(file);
  const start = bytes.length - 68;
  const entries = new BigUint64Array(bytes.slice(start, start + 64).buffer);
  edit(entries);
  bytes.set(new Uint8Array(entries.buffer), start);
  new DataView(bytes.buffer).setUint32(start + 64, crc32c(bytes.subarray(start, start + 64)), true);
  await Deno.writeFile(file, bytes);
}

function arrayJson(extra: Record<string, unknown>): Record<string, unknown> {
  return {
    zarr_format: 3,
    node_type: "array",
    shape: [4, 16],
    data_type: "uint16",
    chunk_grid: { name: "regular", configuration: { chunk_shape: [4, 16] } },
    chunk_key_encoding: { name: "default", configuration: { separator: "/" } },
    fill_value: 0,
    codecs: [{ name: "bytes", configuration: { endian: "little" } }],
    ...extra,
  };
}

/** A hand-written array (`zarr.json` from `extra` over a 4×16 uint16 default) with chunk `c/0/0`. */
async function handmade(
  path: string,
  extra: Record<string, unknown>,
  chunk?: Uint8Array,
): Promise<string> {
  await Deno.mkdir(join(path, "c", "0"), { recursive: true });
  await Deno.writeTextFile(join(path, "zarr.json"), JSON.stringify(arrayJson(extra)));
  const file = join(path, "c", "0", "0");
  if (chunk) await Deno.writeFile(file, chunk);
  return file;
}

async function gzip(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A Blosc1 frame header (16 bytes) followed by `payload`. */
function bloscFrame(
  h: { flags: number; typesize: number; nbytes: number; blocksize: number; cbytes: number },
  payload: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(16 + payload.length);
  const v = new DataView(out.buffer);
  out.set([2, 1, h.flags, h.typesize]);
  v.setUint32(4, h.nbytes >>> 0, true);
  v.setUint32(8, h.blocksize >>> 0, true);
  v.setUint32(12, h.cbytes >>> 0, true);
  out.set(payload, 16);
  return out;
}

const CHUNK_BYTES = 4 * 16 * 2;
const BLOSC = [{ name: "bytes", configuration: { endian: "little" } }, {
  name: "blosc",
  configuration: { cname: "lz4", clevel: 5, shuffle: "noshuffle", typesize: 2, blocksize: 0 },
}];

/** Writes every hostile store under `dir` and returns the cases. */
export async function makeHostileStores(dir: string): Promise<HostileCase[]> {
  const cases: HostileCase[] = [];
  const add = (c: HostileCase) => cases.push(c);
  const at = (name: string) => join(dir, name);

  // --- shards -------------------------------------------------------------
  {
    const file = await sharded(at("truncated-shard"));
    const bytes = await Deno.readFile(file);
    await Deno.writeFile(file, bytes.subarray(0, bytes.length - 100));
    add({
      name: "truncated shard",
      path: at("truncated-shard"),
      action: "collect",
      error: DecodeError,
      message: new RegExp(`${esc(file)}.*checksum mismatch.*truncated or corrupt`),
    });
  }
  {
    const file = await sharded(at("tiny-shard"));
    await Deno.writeFile(file, new Uint8Array(10));
    add({
      name: "shard shorter than its index",
      path: at("tiny-shard"),
      action: "collect",
      error: DecodeError,
      message: new RegExp(`${esc(file)}.*10 bytes is shorter than its 68-byte index`),
    });
  }
  const indexCases: [string, (e: BigUint64Array, len: bigint) => void, string][] = [
    ["index offset past the end", (e, len) => e[0] = len + 100n, "inner chunk 0: range offset"],
    [
      "index nbytes 2^63",
      (e) => e[3] = 2n ** 63n,
      "inner chunk 1: range .* length 9223372036854775808 is outside",
    ],
    ["index offset and nbytes 2^63", (e) => {
      e[0] = 2n ** 63n;
      e[1] = 2n ** 63n;
    }, "inner chunk 0: range offset 9223372036854775808"],
    ["overlapping index ranges", (e) => {
      e[2] = e[0] + 1n;
      e[3] = e[1];
    }, "inner chunks 0 and 1 overlap"],
  ];
  for (const [i, [name, edit, message]] of indexCases.entries()) {
    const path = at(`index-${i}`);
    const file = await sharded(path);
    const len = BigInt((await Deno.stat(file)).size);
    await editIndex(file, (e) => edit(e, len));
    add({
      name,
      path,
      action: "collect",
      error: DecodeError,
      message: new RegExp(`${esc(file)}.*${message}`),
    });
  }
  {
    const file = await sharded(at("index-crc"));
    const bytes = await Deno.readFile(file);
    bytes[bytes.length - 20] ^= 0x10;
    await Deno.writeFile(file, bytes);
    add({
      name: "shard index crc32c mismatch",
      path: at("index-crc"),
      action: "collect",
      error: DecodeError,
      message: new RegExp(`${esc(file)}.*shard index checksum mismatch`),
    });
  }

  // --- chunk payloads -----------------------------------------------------
  const raw = new Uint8Array(CHUNK_BYTES).map((_, i) => i);
  {
    const withCrc = new Uint8Array(CHUNK_BYTES + 4);
    withCrc.set(raw);
    new DataView(withCrc.buffer).setUint32(CHUNK_BYTES, crc32c(raw) ^ 1, true);
    const file = await handmade(at("chunk-crc"), {
      codecs: [{ name: "bytes", configuration: { endian: "little" } }, { name: "crc32c" }],
    }, withCrc);
    add({
      name: "chunk crc32c mismatch",
      path: at("chunk-crc"),
      action: "collect",
      error: DecodeError,
      message: new RegExp(`${esc(file)}.*crc32c`),
    });
  }
  const GZIP = [{ name: "bytes", configuration: { endian: "little" } }, {
    name: "gzip",
    configuration: { level: 1 },
  }];
  for (const [name, size] of [["more", CHUNK_BYTES * 4], ["fewer", CHUNK_BYTES / 2]] as const) {
    const file = await handmade(
      at(`gzip-${name}`),
      { codecs: GZIP },
      await gzip(new Uint8Array(size)),
    );
    add({
      name: `gzip chunk decoding to ${name} bytes than declared`,
      path: at(`gzip-${name}`),
      action: "collect",
      error: DecodeError,
      message: new RegExp(`${esc(file)}.*gzip`),
    });
  }
  {
    const file = await handmade(at("raw-short"), {}, raw.subarray(0, 100));
    add({
      name: "uncompressed chunk of the wrong size",
      path: at("raw-short"),
      action: "collect",
      error: DecodeError,
      message: new RegExp(`${esc(file)}.*chunk holds 100 bytes, expected ${CHUNK_BYTES}`),
    });
  }
  const frames: [string, Uint8Array, string][] = [
    [
      "blosc header declaring 2 GB",
      bloscFrame({
        flags: 2,
        typesize: 2,
        nbytes: 0x7fffffe0,
        blocksize: 4096,
        cbytes: 16 + CHUNK_BYTES,
      }, raw),
      "blosc",
    ],
    [
      "blosc cbytes beyond the frame",
      bloscFrame({
        flags: 2,
        typesize: 2,
        nbytes: CHUNK_BYTES,
        blocksize: CHUNK_BYTES,
        cbytes: 1 << 30,
      }, raw),
      "blosc",
    ],
    [
      "blosc frame shorter than declared",
      bloscFrame({
        flags: 2,
        typesize: 2,
        nbytes: CHUNK_BYTES,
        blocksize: CHUNK_BYTES,
        cbytes: 16 + CHUNK_BYTES,
      }, raw.subarray(0, 20)),
      "blosc",
    ],
    [
      "blosc block size 0",
      bloscFrame({
        flags: 1,
        typesize: 2,
        nbytes: CHUNK_BYTES,
        blocksize: 0,
        cbytes: 16 + 4 + CHUNK_BYTES,
      }, raw),
      "blosc",
    ],
    [
      "blosc block offsets past the end",
      bloscFrame({
        flags: 1 | 0x20,
        typesize: 2,
        nbytes: CHUNK_BYTES,
        blocksize: CHUNK_BYTES,
        cbytes: 24,
      }, new Uint8Array([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0])),
      "blosc",
    ],
  ];
  for (const [i, [name, frame, message]] of frames.entries()) {
    const file = await handmade(at(`blosc-${i}`), { codecs: BLOSC }, frame);
    add({
      name,
      path: at(`blosc-${i}`),
      action: "collect",
      error: DecodeError,
      message: new RegExp(`${esc(file)}.*${message}`),
    });
  }

  // --- metadata -----------------------------------------------------------
  const metaCases: [string, Record<string, unknown>, string, "open" | "collect"][] = [
    ["negative shape", { shape: [-4, 16] }, "shape", "open"],
    [
      "zero chunk shape",
      { chunk_grid: { name: "regular", configuration: { chunk_shape: [0, 16] } } },
      "chunk_shape",
      "open",
    ],
    [
      "huge chunk shape",
      {
        shape: [2 ** 40, 16],
        chunk_grid: { name: "regular", configuration: { chunk_shape: [2 ** 40, 16] } },
      },
      "chunk",
      "open",
    ],
    ["shape beyond 2^53", { shape: [2 ** 60, 16] }, "shape", "open"],
    [
      "rank 40",
      {
        shape: Array(40).fill(1),
        chunk_grid: { name: "regular", configuration: { chunk_shape: Array(40).fill(1) } },
      },
      "rank",
      "open",
    ],
    ["fill value out of range for uint16", { fill_value: 70000 }, "fill_value", "open"],
    ["fractional fill value for uint16", { fill_value: 1.5 }, "fill_value", "open"],
    ["string fill value for uint16", { fill_value: "abc" }, "fill_value", "open"],
    ["bool fill value for uint16", { fill_value: true }, "fill_value", "open"],
    ["unknown data type", { data_type: "uint12" }, "data_type", "open"],
    ["metadata that is not an object", { zarr_format: [3] }, "zarr_format", "open"],
  ];
  for (const [i, [name, extra, message, action]] of metaCases.entries()) {
    const path = at(`meta-${i}`);
    await handmade(path, extra);
    add({
      name,
      path,
      action,
      error: StorageError,
      message: new RegExp(`${esc(join(path, "zarr.json"))}.*${message}`, "s"),
    });
  }
  {
    const path = at("huge-read");
    await handmade(path, {
      shape: [2 ** 40, 2 ** 12],
      chunk_grid: { name: "regular", configuration: { chunk_shape: [64, 64] } },
    });
    add({
      name: "a read of a huge array is refused before allocating",
      path,
      action: "collect",
      error: BudgetExceeded,
      message: new RegExp(`reading ${esc(path)}.*cannot allocate 9007199254740992 bytes`),
    });
  }
  {
    const path = at("zero-extent");
    await handmade(path, { shape: [0, 16] });
    add({
      name: "zero-extent array",
      path,
      action: "collect",
      error: InvalidArgument,
      message: new RegExp(`axis "d0" \\(size 0\\) in ${esc(path)}: the axis is empty`),
    });
  }
  {
    const path = at("v2-fill");
    await Deno.mkdir(path, { recursive: true });
    await Deno.writeTextFile(
      join(path, ".zarray"),
      JSON.stringify({
        zarr_format: 2,
        shape: [4],
        chunks: [4],
        dtype: "<u2",
        fill_value: "abc",
        order: "C",
        compressor: null,
        filters: null,
      }),
    );
    add({
      name: "Zarr v2 dtype/fill mismatch",
      path,
      action: "open",
      error: StorageError,
      message: new RegExp(`${esc(join(path, ".zarray"))}.*fill_value`),
    });
  }

  // --- the file system ----------------------------------------------------
  {
    const path = at("symlink-file");
    const file = await handmade(path, {});
    const outside = at("outside-secret");
    await Deno.writeFile(outside, raw);
    await Deno.symlink(outside, file);
    add({
      name: "chunk symlink leading outside the store",
      path,
      action: "collect",
      error: StorageError,
      message: new RegExp(`${esc(file)}.*leads outside the store`),
    });
  }
  {
    const path = at("symlink-folder");
    await handmade(path, {});
    const elsewhere = at("elsewhere");
    await Deno.mkdir(elsewhere);
    await Deno.writeFile(join(elsewhere, "0"), raw);
    await Deno.remove(join(path, "c", "0"), { recursive: true });
    await Deno.symlink(elsewhere, join(path, "c", "0"));
    add({
      name: "chunk folder symlink leading outside the store",
      path,
      action: "collect",
      error: StorageError,
      message: new RegExp(`${esc(join(path, "c", "0", "0"))}.*leads outside the store`),
    });
  }
  {
    const path = at("ngff-nul");
    await Deno.mkdir(path, { recursive: true });
    await Deno.writeTextFile(
      join(path, "zarr.json"),
      JSON.stringify({
        zarr_format: 3,
        node_type: "group",
        attributes: {
          ome: {
            version: "0.5",
            multiscales: [{
              axes: [{ name: "y" }, { name: "x" }],
              datasets: [{
                path: "0\u0000x",
                coordinateTransformations: [{ type: "scale", scale: [1, 1] }],
              }],
            }],
          },
        },
      }),
    );
    add({
      name: "NGFF dataset path with a NUL byte",
      path,
      action: "open",
      error: StorageError,
      message: new RegExp(
        `${esc(join(path, "zarr.json"))}.*dataset path "0\\\\u0000x" is not allowed`,
      ),
    });
  }
  {
    // a group whose member folders have names that are not UTF-8
    const path = at("non-utf8");
    await Deno.mkdir(path, { recursive: true });
    await Deno.writeTextFile(
      join(path, "zarr.json"),
      JSON.stringify({ zarr_format: 3, node_type: "group", attributes: {} }),
    );
    const made = await new Deno.Command("python3", {
      args: [
        "-c",
        "import os, sys; d = os.fsencode(sys.argv[1]); os.mkdir(os.path.join(d, b'\\xff\\xfe')); " +
        "open(os.path.join(d, b'\\xff\\xfe', b'zarr.json'), 'w').write('{\"zarr_format\": 3, \"node_type\": \"group\"}')",
        path,
      ],
    }).output();
    if (!made.success) throw new Error(new TextDecoder().decode(made.stderr));
    add({
      name: "group with a non-UTF-8 member name (listed by info)",
      path,
      action: "info",
      message: /"members":\[\{"name":"\\ufffd\\ufffd","kind":"group"\}\]|"members":\[\]/,
    });
    add({
      name: "opening a group with a non-UTF-8 member name",
      path,
      action: "open",
      error: NotFound,
      message: new RegExp(`${esc(path)} is a Zarr group without OME-NGFF multiscales`),
    });
  }
  return cases;
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (!dir) throw new Error("usage: deno run -A tests/hostile_stores.ts <folder>");
  for (const c of await makeHostileStores(dir)) {
    console.log(`${c.name}: ${c.path} → ${c.error?.name ?? "succeeds"} ${c.message}`);
  }
}
