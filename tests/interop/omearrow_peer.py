"""The ome-arrow package as a peer of tessera's OME-Arrow support.

    python omearrow_peer.py write DIR
        Writes OME-Arrow files with ome_arrow itself from seeded synthetic
        data (several dtypes, encodings, channels, z-planes, timepoints, a
        multi-row file, an IPC copy), and for each file and query case the
        array `OMEArrow(...).tensor_view(...).to_numpy()` returns, as raw
        bytes. DIR/manifest.json lists files and cases.

    python omearrow_peer.py bad DIR
        Writes malformed OME-Arrow files (truncated, not OME-Arrow, a chunk
        with too few values, an unsupported pixel type, a chunk outside the
        image) next to the good file they derive from.

    python omearrow_peer.py hostile DIR
        Writes OME-Arrow files that lie (chunk origins and sizes off the
        grid or repeated, raw or zstd chunk bytes holding more or fewer
        pixels than their shape, huge or negative declared sizes, zstd
        bytes that are not zstd) from one good record written by ome_arrow.

    python omearrow_peer.py read FILE OUT [ROW]
        Reads an OME-Arrow file (Parquet through OMEArrow(path); Arrow IPC
        through pyarrow, then OMEArrow on the record) and writes its full
        TCZYX array (`export("numpy")` in the declared dtype) to OUT as raw
        bytes; prints the shape, dtype and channel names as JSON.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from ome_arrow import OMEArrow
from ome_arrow.export import to_ome_parquet
from ome_arrow.ingest import from_numpy

warnings.simplefilter("ignore")


def synth(shape, dtype, seed):
    """Seeded data that uses the dtype's range."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dt)
    info = np.iinfo(dt)
    lo, hi = max(info.min, -(2**31)), min(info.max, 2**31 - 1)
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(dt)


def record(arr, *, encoding, chunk_shape, compression=None, name="img"):
    """An OME-Arrow scalar written by ome_arrow from a TCZYX array."""
    kwargs = dict(
        dim_order="TCZYX",
        name=name,
        image_id=name,
        channel_names=[f"ch{i}" for i in range(arr.shape[1])],
        physical_size_x=0.5,
        physical_size_y=0.25,
        physical_size_z=2.0,
    )
    if encoding == "planes":
        return from_numpy(arr, clamp_to_uint16=True, build_chunks=False, chunk_shape=None, **kwargs)
    if encoding == "list":
        return from_numpy(arr, clamp_to_uint16=True, chunk_shape=chunk_shape, **kwargs)
    return from_numpy(
        arr,
        clamp_to_uint16=False,
        chunk_shape=chunk_shape,
        chunk_encoding="bytes",
        chunk_compression=compression,
        **kwargs,
    )


def cases_for(shape):
    """Query cases: ome_arrow tensor_view arguments (JSON-able)."""
    t, c, z, y, x = shape
    return [
        {"t": 0, "z": 0, "layout": "CYX"},
        {"t": t - 1, "z": z - 1, "c": c - 1, "layout": "YX"},
        {"t": 0, "z": z // 2, "roi": [3, 5, x // 2, y // 3], "layout": "CYX"},
        {"t": [0, t], "z": [0, z], "layout": "TZCYX"},
        {"t": 0, "z": [0, z, 2], "c": [0, c], "roi": [x // 4, 1, x // 2, y - 2], "layout": "ZCYX"},
        {"t": [0, t], "z": 0, "roi": [1, 2, 7, 9], "layout": "TYXC"},
        {"t": 0, "z": 0, "layout": "YXC", "dtype": "float32"},
    ]


def as_index(v):
    if isinstance(v, list):
        return slice(*v)
    return v


def expected(obj, case):
    kw = {k: as_index(case[k]) for k in ("t", "z", "c") if k in case}
    if "roi" in case:
        kw["roi"] = tuple(case["roi"])
    if "dtype" in case:
        kw["dtype"] = np.dtype(case["dtype"])
    view = obj.tensor_view(layout=case["layout"], **kw)
    return np.ascontiguousarray(view.to_numpy())


def write_table(scalars, path, fmt, row_group_size=None):
    arr = pa.array([s.as_py() for s in scalars], type=scalars[0].type)
    table = pa.table({"ome_arrow": arr})
    table = table.replace_schema_metadata({"ome.arrow.type": "ome.arrow"})
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd", row_group_size=row_group_size)
    else:
        with pa.ipc.new_file(path, table.schema) as w:
            w.write_table(table)


def cmd_write(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = [
        # name, shape (t c z y x), dtype, encoding, chunk (z y x), compression
        ("u16_list", (2, 3, 4, 37, 53), "uint16", "list", (2, 16, 16), None),
        ("u16_planes", (2, 2, 3, 40, 33), "uint16", "planes", None, None),
        ("u8_bytes", (1, 3, 5, 45, 61), "uint8", "bytes", (2, 16, 32), None),
        ("u16_bytes_zstd", (3, 2, 4, 64, 48), "uint16", "bytes", (4, 32, 32), "zstd"),
        ("i16_bytes_lz4", (2, 2, 3, 33, 70), "int16", "bytes", (1, 20, 20), "lz4"),
        ("f32_bytes_zstd", (2, 2, 3, 31, 29), "float32", "bytes", (3, 8, 16), "zstd"),
        ("f64_bytes", (1, 2, 2, 17, 19), "float64", "bytes", (1, 17, 19), None),
        ("i32_bytes_zstd", (1, 1, 6, 24, 24), "int32", "bytes", (2, 10, 10), "zstd"),
    ]
    manifest = {"files": []}
    for i, (name, shape, dtype, enc, chunk, comp) in enumerate(specs):
        data = synth(shape, dtype, seed=100 + i)
        scalar = record(data, encoding=enc, chunk_shape=chunk, compression=comp, name=name)
        path = out / f"{name}.ome.parquet"
        to_ome_parquet(scalar, str(path), column_name="ome_arrow")
        entries = [(path, OMEArrow(str(path)), 0, "parquet")]
        if enc in ("list", "bytes") and i % 2 == 0:
            ipc = out / f"{name}.arrow"
            write_table([scalar], ipc, "ipc")
            entries.append((ipc, OMEArrow(scalar), 0, "ipc"))
        for file_path, obj, row, fmt in entries:
            manifest["files"].append(
                emit(out, obj, file_path, row, fmt, shape, dtype, enc)
            )
    # Several records in one Parquet file, one row group each.
    shape = (1, 2, 2, 30, 20)
    scalars = [
        record(synth(shape, "uint16", seed=900 + r), encoding="bytes", chunk_shape=(1, 16, 16),
               compression="zstd", name=f"row{r}")
        for r in range(3)
    ]
    multi = out / "multi.ome.parquet"
    write_table(scalars, multi, "parquet", row_group_size=1)
    for row in (0, 2):
        obj = OMEArrow(str(multi), row_index=row)
        manifest["files"].append(emit(out, obj, multi, row, "parquet", shape, "uint16", "bytes"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


def emit(out, obj, path, row, fmt, shape, dtype, enc):
    cases = []
    for k, case in enumerate(cases_for(shape)):
        arr = expected(obj, case)
        raw = out / f"{path.name}.r{row}.case{k}.bin"
        raw.write_bytes(arr.tobytes())
        cases.append({**case, "shape": list(arr.shape), "dtype": str(arr.dtype), "raw": str(raw)})
    return {
        "path": str(path),
        "row": row,
        "format": fmt,
        "shape": list(shape),
        "dtype": dtype,
        "encoding": enc,
        "channels": [f"ch{i}" for i in range(shape[1])],
        "cases": cases,
    }


def cmd_bad(out_dir):
    """Malformed OME-Arrow files: each the smallest change that breaks one rule."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = synth((1, 2, 2, 20, 24), "uint16", seed=7)
    good = record(data, encoding="list", chunk_shape=(1, 16, 16), name="bad")
    rec = good.as_py()
    good_path = out / "good.ome.parquet"
    to_ome_parquet(good, str(good_path), column_name="ome_arrow")
    raw = good_path.read_bytes()
    (out / "truncated.ome.parquet").write_bytes(raw[: len(raw) // 2])
    (out / "not_arrow.parquet").write_bytes(b"this is not a parquet file at all")
    pq.write_table(
        pa.table({"image": pa.array([{"a": 1, "b": "x"}])}), out / "not_ome.parquet"
    )
    short = dict(rec, chunks=[dict(ch) for ch in rec["chunks"]])
    short["chunks"][1]["pixels"] = short["chunks"][1]["pixels"][:-5]
    write_table([pa.scalar(short, type=good.type)], out / "short_chunk.ome.parquet", "parquet")
    wrong = dict(rec, pixels_meta=dict(rec["pixels_meta"], type="complex64"))
    write_table([pa.scalar(wrong, type=good.type)], out / "complex.ome.parquet", "parquet")
    outside = dict(rec, chunks=[dict(ch) for ch in rec["chunks"]])
    outside["chunks"][0]["x"] = 20
    write_table([pa.scalar(outside, type=good.type)], out / "outside.ome.parquet", "parquet")


def cmd_hostile(out_dir):
    """OME-Arrow files that lie about their chunks, sizes or payloads."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shape = (1, 2, 2, 20, 24)
    data = synth(shape, "uint16", seed=8)
    for comp in (None, "zstd"):
        good = record(data, encoding="bytes", chunk_shape=(1, 16, 16), compression=comp,
                      name="hostile")
        tag = comp or "raw"
        to_ome_parquet(good, str(out / f"good_{tag}.ome.parquet"), column_name="ome_arrow")
        rec = good.as_py()

        def put(name, change):
            r = dict(rec, pixels_meta=dict(rec["pixels_meta"]),
                     chunks=[dict(ch) for ch in rec["chunks"]])
            change(r)
            write_table([pa.scalar(r, type=good.type)], out / f"{name}_{tag}.ome.parquet",
                        "parquet")

        def pack(ch, arr):
            raw = np.ascontiguousarray(arr, dtype="<u2").tobytes()
            return pa.Codec("zstd").compress(raw, asbytes=True) if comp else raw

        def plane(ch, dy=0):
            return data[ch["t"], ch["c"], ch["z"]:ch["z"] + ch["shape_z"],
                        ch["y"]:ch["y"] + ch["shape_y"] + dy, ch["x"]:ch["x"] + ch["shape_x"]]

        def more(r):
            ch = r["chunks"][1]
            ch["pixel_bytes"] = pack(ch, np.concatenate([plane(ch), plane(ch)], axis=1))

        def fewer(r):
            ch = r["chunks"][1]
            ch["pixel_bytes"] = pack(ch, plane(ch)[:, :-1])

        def off_grid(r):
            r["chunks"][1]["x"] = 8

        def repeated(r):
            first = r["chunks"][0]
            dims = ("shape_z", "shape_y", "shape_x")
            twin = next(ch for ch in r["chunks"][1:] if all(ch[k] == first[k] for k in dims))
            for k in ("t", "c", "z", "y", "x"):
                twin[k] = first[k]

        def too_wide(r):
            r["chunks"][0]["shape_x"] = 24

        put("more_pixels", more)
        put("fewer_pixels", fewer)
        put("off_grid", off_grid)
        put("repeated", repeated)
        put("too_wide", too_wide)
    rec = record(data, encoding="bytes", chunk_shape=(1, 16, 16), compression="zstd",
                 name="hostile")
    base = rec.as_py()

    def put_meta(name, change):
        r = dict(base, pixels_meta=dict(base["pixels_meta"]),
                 chunks=[dict(ch) for ch in base["chunks"]])
        change(r)
        write_table([pa.scalar(r, type=rec.type)], out / f"{name}.ome.parquet", "parquet")

    def not_zstd(r):
        r["chunks"][2]["pixel_bytes"] = b"\x28\xb5\x2f\xfd" + bytes(range(200))

    def huge(r):
        r["pixels_meta"]["size_y"] = 1 << 30
        r["pixels_meta"]["size_x"] = 1 << 30

    def big(r):
        # only the full chunks stay, so the rest follows the chunk grid
        r["pixels_meta"]["size_y"] = 1 << 19
        r["pixels_meta"]["size_x"] = 1 << 19
        r["chunks"] = [ch for ch in r["chunks"] if ch["shape_y"] == ch["shape_x"] == 16]

    def negative(r):
        r["pixels_meta"]["size_z"] = -2

    put_meta("not_zstd", not_zstd)
    put_meta("huge_shape", huge)
    put_meta("big_shape", big)
    put_meta("negative_shape", negative)


def cmd_read(path, out, row=0):
    path = str(path)
    if path.endswith(".parquet"):
        obj = OMEArrow(path, row_index=row)
    else:
        with pa.OSFile(path, "rb") as f:
            table = pa.ipc.open_file(f).read_all()
        col = table.column(0).combine_chunks()
        obj = OMEArrow(col[row])
    meta = obj.data["pixels_meta"].as_py()
    arr = obj.export("numpy", dtype=np.dtype(meta["type"]))
    Path(out).write_bytes(np.ascontiguousarray(arr).tobytes())
    print(json.dumps({
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "channels": [ch["name"] for ch in meta["channels"]],
        "physical": [meta["physical_size_z"], meta["physical_size_y"], meta["physical_size_x"]],
        "type": obj.data.type == __import__("ome_arrow.meta", fromlist=["x"]).OME_ARROW_BYTE_STRUCT,
    }))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        cmd_write(sys.argv[2])
    elif sys.argv[1] == "bad":
        cmd_bad(sys.argv[2])
    elif sys.argv[1] == "hostile":
        cmd_hostile(sys.argv[2])
    elif sys.argv[1] == "read":
        cmd_read(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    else:
        raise SystemExit(f"unknown command {sys.argv[1]}")
