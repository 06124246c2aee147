"""Peer side of tests/pipeline_test.ts.

write OUTDIR
    Writes Zarr v3 arrays with zarr-python: every source dtype of the
    pipeline (u8, i8, u16, i16, u32, i32, f16, f32) × raw zstd and
    blosc-zstd (byte shuffle) × sharded and plain chunks, each 3-D
    (z, y, x) with a non-zero fill value and some chunks left unstored,
    plus one 4-D (c, z, y, x) uint16 array. Prints a JSON list of
    {name, path, dtype, shape, fill}.

write-device OUTDIR
    Writes the extra stores of the GPU tests (tests/gpu/pipeline_gpu.ts):
    uint16 and float32, sharded, as blosc-zstd without shuffle and with
    bitshuffle, blosc-lz4 and gzip (the last three decode on the CPU in
    the CUDA path). Prints the same JSON list.

read CASES_JSON OUTDIR
    CASES_JSON: {"sample_shape": [...], "samples": [{"path", "box":
    [[start, stop] | index, ...]}]}. Reads each box with tensorstore (the
    part inside the array; the rest is the array's fill value, read from
    its metadata), casts with numpy to float32 and to bfloat16 (rounded
    once, to nearest even, from the exact value) and writes
    OUTDIR/expected-float32.bin and OUTDIR/expected-bfloat16.bin (samples
    concatenated, C order, little endian).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float16", "float32"]
SHAPE = (21, 34, 27)
CHUNKS = (8, 8, 8)
SHARDS = (16, 16, 16)


def random_data(rng: np.random.Generator, dtype: np.dtype, shape) -> np.ndarray:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    data = (rng.standard_normal(shape) * 1000).astype(dtype)
    flat = data.reshape(-1)
    specials = [np.nan, np.inf, -np.inf, -0.0, np.finfo(dtype).tiny / 4, np.finfo(dtype).max]
    flat[rng.integers(0, flat.size, size=len(specials))] = np.array(specials, dtype=dtype)
    # Values that need rounding to bfloat16, including ties.
    flat[:64] = (1.0 + np.arange(64) * 2.0**-9).astype(dtype)
    return data


def fill_of(dtype: np.dtype):
    return 1.5 if dtype.kind == "f" else 3


def write(outdir: str, device_extras: bool = False) -> None:
    import zarr
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    rng = np.random.default_rng(20261201)
    stores = []

    def create(name, shape, dtype, chunks, shards, compressor, dims):
        dt = np.dtype(dtype)
        path = os.path.join(outdir, name + ".zarr")
        arr = zarr.create_array(
            store=path,
            shape=shape,
            dtype=dtype,
            chunks=chunks,
            shards=shards,
            compressors=compressor,
            fill_value=fill_of(dt),
            dimension_names=dims,
            config={"write_empty_chunks": False},
        )
        data = random_data(rng, dt, shape)
        # One corner holds only the fill value: its chunks are not stored.
        data[(slice(None),) * (len(shape) - 3) + (slice(0, 8), slice(0, 8), slice(0, 16))] = fill_of(dt)
        arr[...] = data
        stores.append(
            {"name": name, "path": path, "dtype": dtype, "shape": list(shape), "fill": fill_of(dt)}
        )

    if device_extras:
        extras = {
            "blosc-noshuffle": BloscCodec(cname="zstd", clevel=3, shuffle="noshuffle"),
            "blosc-bitshuffle": BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
            "blosc-lz4": BloscCodec(cname="lz4", clevel=3, shuffle="shuffle"),
            "gzip": GzipCodec(level=3),
        }
        for dtype in ("uint16", "float32"):
            for codec, compressor in extras.items():
                create(f"{dtype}-{codec}-sharded", SHAPE, dtype, CHUNKS, SHARDS, compressor,
                       ["z", "y", "x"])
        print(json.dumps(stores))
        return
    for dtype in DTYPES:
        for codec in ("zstd", "blosc"):
            for sharded in (True, False):
                compressor = (
                    ZstdCodec(level=3)
                    if codec == "zstd"
                    else BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
                )
                name = f"{dtype}-{codec}-{'sharded' if sharded else 'plain'}"
                create(name, SHAPE, dtype, CHUNKS, SHARDS if sharded else None, compressor,
                       ["z", "y", "x"])
    create("uint16-czyx", (3,) + SHAPE, "uint16", (1,) + CHUNKS, (1,) + SHARDS,
           ZstdCodec(level=3), ["c", "z", "y", "x"])
    print(json.dumps(stores))


def bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even to bfloat16 (8 significant bits, subnormals below 2^-126)."""
    x = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        _, e = np.frexp(x)
        q = np.maximum(e - 8, -133)
        r = np.ldexp(np.rint(np.ldexp(x, -q)), q)
        f = r.astype(np.float32)
    bits = (f.view(np.uint32) >> 16).astype(np.uint16)
    bits[np.isnan(x)] = 0x7FC0
    return bits


def read(cases_json: str, outdir: str) -> None:
    import tensorstore as ts

    with open(cases_json) as f:
        cases = json.load(f)
    arrays = {}
    f32, bf16 = [], []
    for sample in cases["samples"]:
        path = sample["path"]
        if path not in arrays:
            arrays[path] = ts.open(
                {"driver": "zarr3", "kvstore": {"driver": "file", "path": path + "/"}},
                open=True,
                read=True,
            ).result()
        arr = arrays[path]
        shape = arr.shape
        fill = np.asarray(arr.fill_value, dtype=arr.dtype.numpy_dtype)
        out_shape, src, dst, inside = [], [], [], True
        for d, sel in enumerate(sample["box"]):
            if isinstance(sel, int):
                src.append(sel)
                continue
            start, stop = sel
            out_shape.append(stop - start)
            lo, hi = max(start, 0), min(stop, shape[d])
            inside = inside and lo < hi
            src.append(slice(lo, max(lo, hi)))
            dst.append(slice(lo - start, max(lo, hi) - start))
        out = np.full(out_shape, fill, dtype=arr.dtype.numpy_dtype)
        if inside:
            out[tuple(dst)] = arr[tuple(src)].read().result()
        f32.append(out.astype(np.float32))
        bf16.append(bfloat16_bits(out))
    np.concatenate([a.reshape(-1) for a in f32]).astype("<f4").tofile(
        os.path.join(outdir, "expected-float32.bin"))
    np.concatenate([a.reshape(-1) for a in bf16]).astype("<u2").tofile(
        os.path.join(outdir, "expected-bfloat16.bin"))


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "write":
        write(argv[1])
    elif len(argv) == 2 and argv[0] == "write-device":
        write(argv[1], device_extras=True)
    elif len(argv) == 3 and argv[0] == "read":
        read(argv[1], argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
