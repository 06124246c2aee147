"""ome-arrow side of `deno task bench:omearrow` (bench/omearrow.ts).

    python omearrow_peer.py make DIR T C Z Y X
        Seeded uint16 microscopy-like data: DIR/image.bin (raw TCZYX) and the
        same image written by ome-arrow as OME-Arrow Parquet, in its default
        encoding (DIR/list.ome.parquet: numeric chunk lists of 1×512×512 plus
        planes, Parquet zstd) and its byte-chunk encoding
        (DIR/bytes.ome.parquet: zstd chunk bytes, 1×256×256).

    python omearrow_peer.py time FILE QUERIES.json ROUNDS
        Times OMEArrow(FILE) (open) and, for each query, tensor_view(...)
        .to_numpy() on the opened object; prints JSON with the medians (ms).
"""

import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from ome_arrow import OMEArrow
from ome_arrow.export import to_ome_parquet
from ome_arrow.ingest import from_numpy

warnings.simplefilter("ignore")


def make(out, shape):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    t, c, z, y, x = shape
    yy, xx = np.mgrid[0:y, 0:x]
    base = (1000 + 800 * np.sin(yy / 37.0) * np.cos(xx / 53.0)).astype(np.float32)
    data = np.empty(shape, dtype=np.uint16)
    for ti in range(t):
        for ci in range(c):
            for zi in range(z):
                noise = rng.normal(0, 60, size=(y, x)).astype(np.float32)
                data[ti, ci, zi] = np.clip(base * (1 + 0.1 * ci) + noise + 20 * zi, 0, 65535)
    (out / "image.bin").write_bytes(data.tobytes())
    names = [f"ch{i}" for i in range(c)]
    rec = from_numpy(data, dim_order="TCZYX", channel_names=names)
    to_ome_parquet(rec, str(out / "list.ome.parquet"), column_name="ome_arrow")
    rec = from_numpy(
        data,
        dim_order="TCZYX",
        channel_names=names,
        clamp_to_uint16=False,
        chunk_shape=(1, 256, 256),
        chunk_encoding="bytes",
        chunk_compression="zstd",
    )
    to_ome_parquet(rec, str(out / "bytes.ome.parquet"), column_name="ome_arrow")


def timed(fn, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(path, queries_file, rounds):
    queries = json.loads(Path(queries_file).read_text())
    result = {"open_ms": timed(lambda: OMEArrow(path), max(1, rounds // 4))}
    obj = OMEArrow(path)
    result["queries"] = {}
    for q in queries:
        positions = q["positions"]
        k = [0]

        def one():
            t, z, y, x = positions[k[0] % len(positions)]
            k[0] += 1
            roi = None if q["size"] is None else (x, y, q["size"], q["size"])
            obj.tensor_view(t=t, z=z, roi=roi, layout="CYX").to_numpy()

        one()  # warm-up
        result["queries"][q["name"]] = timed(one, rounds)
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], tuple(int(v) for v in sys.argv[3:8]))
    elif sys.argv[1] == "time":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]}")
