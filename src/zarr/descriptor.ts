/**
 * Packs array metadata into the numeric descriptor the native library reads
 * (layout documented in rust/src/spec.rs).
 * @module
 */

import { dtypeCode } from "../dtype.ts";
import type { ArrayMetadata, Codec } from "./metadata.ts";

const DESCRIPTOR_VERSION = 1;
const CODEC_IDS = {
  bytes: 1,
  zstd: 2,
  crc32c: 3,
  transpose: 4,
  sharding_indexed: 5,
  gzip: 6,
  zlib: 7,
  blosc: 8,
  lz4: 9,
} as const;
const BLOSC_CNAMES = ["blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd"];
const BLOSC_SHUFFLES = ["noshuffle", "shuffle", "bitshuffle"];

function chain(codecs: Codec[]): number[] {
  const words: number[] = [codecs.length];
  for (const codec of codecs) {
    words.push(CODEC_IDS[codec.name]);
    switch (codec.name) {
      case "bytes":
        words.push(codec.endian === "big" ? 1 : 0);
        break;
      case "zstd":
        words.push(codec.level, codec.checksum ? 1 : 0);
        break;
      case "crc32c":
        break;
      case "gzip":
      case "zlib":
        words.push(codec.level);
        break;
      case "blosc":
        words.push(
          BLOSC_CNAMES.indexOf(codec.cname),
          codec.clevel,
          BLOSC_SHUFFLES.indexOf(codec.shuffle),
          codec.typesize,
          codec.blocksize,
        );
        break;
      case "lz4":
        words.push(codec.acceleration);
        break;
      case "transpose":
        words.push(...codec.order);
        break;
      case "sharding_indexed":
        words.push(
          ...codec.chunkShape,
          codec.indexLocation === "start" ? 1 : 0,
          ...chain(codec.codecs),
          ...chain(codec.indexCodecs),
        );
        break;
    }
  }
  return words;
}

/** The descriptor of an array. */
export function encodeDescriptor(meta: ArrayMetadata): BigInt64Array<ArrayBuffer> {
  const words = [
    DESCRIPTOR_VERSION,
    meta.shape.length,
    dtypeCode(meta.dtype),
    meta.keyEncoding.name === "v2" ? 1 : 0,
    meta.keyEncoding.separator.charCodeAt(0),
    ...meta.shape,
    ...meta.chunkShape,
    ...chain(meta.codecs),
  ];
  return BigInt64Array.from(words, BigInt);
}
