"""Writes the seed corpora of the fuzz targets from real encoders: c-blosc
frames, zstd/gzip/zlib/lz4 streams from numcodecs, and shards written by
zarr-python (index at start and end, with and without crc32c, nested).
Each seed starts with the configuration bytes its target reads (see
rust/src/fuzz_entry.rs). Run with the test venv's python:

    .venv/bin/python rust/fuzz/seeds.py
"""

import os
import struct
import tempfile

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)


def put(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def sample(n, dtype):
    ramp = np.arange(n) % 50
    return (ramp + rng.integers(0, 4, n)).astype(dtype)


# blosc frames: every internal codec, each shuffle, a few type sizes
for cname in ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]:
    for shuffle in [0, 1, 2]:
        for dtype in ["u1", "<u2", "<f4"]:
            raw = sample(300, dtype).tobytes()
            codec = numcodecs.Blosc(cname=cname, clevel=5, shuffle=shuffle, blocksize=256)
            put("blosc_frame", f"{cname}-{shuffle}-{dtype[-2:]}", codec.encode(raw))
put("blosc_frame", "memcpyed", numcodecs.Blosc(cname="lz4", clevel=0).encode(b"x" * 64))

# bytes-to-bytes chains: pick byte (see fuzz_entry::bytes_codecs), size, payload
raw = sample(512, "<u2").tobytes()
size = struct.pack("<H", len(raw))
streams = {
    0: bytes(numcodecs.Zstd(level=1).encode(raw)),
    1: numcodecs.GZip(level=1).encode(raw),
    2: numcodecs.Zlib(level=1).encode(raw),
    3: numcodecs.LZ4().encode(raw),
    4: numcodecs.Blosc(cname="zstd", shuffle=1).encode(raw),
    6: numcodecs.Zstd(level=3, checksum=True).encode(raw),
}
for pick, stream in streams.items():
    put("bytes_codecs", f"codec-{pick}", bytes([pick]) + size + bytes(stream))
crc = numcodecs.CRC32C()
put("bytes_codecs", "crc32c", bytes([5]) + size + bytes(crc.encode(raw)))
put("bytes_codecs", "zstd-crc32c", bytes([0x80 | (0 << 4) | 5]) + size + bytes(crc.encode(streams[0])))


# shards written by zarr-python: a 1-D uint8 array stored as one shard
def shard_bytes(n_inner, flags):
    length = 4 * n_inner
    index_codecs = [BytesCodec(endian="big" if flags & 2 else "little")]
    if flags & 4:
        index_codecs.append(Crc32cCodec())
    location = "start" if flags & 1 else "end"
    leaf = [BytesCodec()] + ([ZstdCodec(level=1)] if flags & 16 else [])
    inner = leaf
    if flags & 8:
        inner = [ShardingCodec(chunk_shape=(2,), codecs=leaf, index_codecs=index_codecs,
                               index_location="end" if flags & 1 else "start")]
    with tempfile.TemporaryDirectory() as d:
        a = zarr.create_array(
            store=d, shape=(length,), dtype="uint8", chunks=(length,), fill_value=7,
            serializer=ShardingCodec(chunk_shape=(4,), codecs=inner,
                                     index_codecs=index_codecs, index_location=location),
            compressors=None, filters=None)
        data = sample(length, "u1")
        data[4:8] = 7  # one inner chunk holds only the fill value: missing
        a[:] = data
        with open(os.path.join(d, "c", "0"), "rb") as f:
            return f.read()


for flags in [0, 1, 2, 4, 5, 7, 8, 9, 13, 16, 17, 20, 29]:
    n_inner = 3 + flags % 5
    put("shard", f"flags-{flags}", bytes([flags, n_inner - 1]) + shard_bytes(n_inner, flags))

# descriptors: a plain zstd chain and a sharded one, as TypeScript encodes them
def words(*ws):
    return b"".join(struct.pack("<q", w) for w in ws)


put("descriptor", "plain", bytes([2]) + b"\x07\x00" + words(1, 2, 6, 0, 47, 10, 20, 5, 8, 2, 1, 0, 2, 3, 0))
put("descriptor", "sharded", bytes([1]) + b"\x07" + words(
    1, 1, 5, 0, 47, 16, 16, 1, 5, 4, 0, 1, 1, 0, 2, 1, 0, 3))
print("seeds written to", os.path.join(HERE, "corpus"))
