#!/usr/bin/env python3
"""Write Zarr v2 arrays and OME-NGFF 0.4 images with real peers for the tessera
interop tests (the Zarr v2 counterpart of peers.py, whose helpers it reuses).

Subcommands:

  write-v2-cases OUTDIR  Write a matrix of Zarr v2 arrays with zarr-python and
                         tensorstore's `zarr` driver (C and F order, "." and
                         "/" separators, every dtype in both byte orders, NaN /
                         null / non-zero fills, zstd, zlib, gzip, blosc, lz4 or
                         no compressor, missing chunks, partial edge chunks,
                         0-D to 4-D), each next to its expected data.
  write-ngff04 OUTDIR    Write an OME-NGFF 0.4 image (5-D, 3 levels, omero
                         channels, one label image) and an HCS plate (2 wells,
                         1 field each) with ome-zarr-py's FormatV04.

Output layout follows peers.py write-cases / write-ngff; see README.md next to
this file. All raw dumps are little-endian, C-order.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402  (the v3 driver next to this file)
from peers import (  # noqa: E402
    PeerError,
    fill_from_json,
    fill_to_json,
    le_bytes,
    same_bits,
    write_json,
)

LIBS = ("tensorstore", "zarr")

# numcodecs compressor configurations, as they appear in .zarray
ZSTD = {"id": "zstd", "level": 1}
ZLIB = {"id": "zlib", "level": 1}
ZLIB9 = {"id": "zlib", "level": 9}
GZIP = {"id": "gzip", "level": 5}
LZ4 = {"id": "lz4", "acceleration": 1}


def blosc(cname: str, shuffle: int, clevel: int = 5, blocksize: int = 0) -> dict:
    return {
        "id": "blosc",
        "cname": cname,
        "clevel": clevel,
        "shuffle": shuffle,
        "blocksize": blocksize,
    }


@dataclass
class V2Case:
    name: str
    dtype: str  # numpy name, e.g. "uint16"
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    compressor: dict | None = None
    endian: str = "little"
    order: str = "C"
    separator: str = "."
    fill: Any = 0  # JSON form: number | "NaN" | "Infinity" | "-Infinity" | bool | None
    dimension_names: list[str] | None = None  # written as .zattrs _ARRAY_DIMENSIONS
    skip_fraction: float = 0.25
    libs: tuple[str, ...] = LIBS
    # replace most full-range random values by low-entropy ones, so that
    # compressors really compress (blosc stores incompressible blocks raw)
    compressible: bool = True
    extra_specials: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.fill is None or isinstance(self.fill, str):
            return
        if self.dtype == "bool":
            self.fill = bool(self.fill)
        elif self.dtype.startswith("float"):
            self.fill = float(self.fill)

    @property
    def np_dtype(self) -> np.dtype:
        """The stored dtype, byte order included."""
        dt = np.dtype(self.dtype)
        if dt.itemsize == 1:
            return dt
        return dt.newbyteorder("<" if self.endian == "little" else ">")

    @property
    def v2_dtype(self) -> str:
        """The .zarray dtype string, e.g. "<u2", ">f8", "|b1"."""
        return self.np_dtype.str

    @property
    def effective_fill(self) -> Any:
        """The fill value readers use: null reads as zero (false)."""
        if self.fill is None:
            return False if self.dtype == "bool" else 0
        return self.fill

    def as_v3_case(self) -> peers.Case:
        """The planning view of peers.py (random data, absent cells, specials)."""
        return peers.Case(
            name=self.name,
            dtype=self.dtype,
            shape=self.shape,
            chunks=self.chunks,
            fill=self.effective_fill,
            skip_fraction=self.skip_fraction,
            skip_outer=0,
            extra_specials=self.extra_specials,
        )

    def codecs_summary(self) -> str:
        parts = [f"order {self.order}", f"{self.endian}-endian"]
        c = self.compressor
        if c is None:
            parts.append("no compressor")
        elif c["id"] == "blosc":
            parts.append(
                f"blosc({c['cname']}, shuffle {c['shuffle']}, clevel {c['clevel']},"
                f" blocksize {c['blocksize']})"
            )
        else:
            parts.append(json.dumps(c, sort_keys=True))
        return ", ".join(parts)


def build_v2_cases() -> list[V2Case]:
    cases: list[V2Case] = []
    # Every dtype, little-endian (1-byte types as "|"), 2-D, zstd, partial edges.
    for dt in peers.DTYPES:
        cases.append(
            V2Case(
                name=f"dtype-{dt}",
                dtype=dt,
                shape=(29, 35),
                chunks=(8, 16),
                compressor=ZSTD,
                dimension_names=["y", "x"] if dt.startswith("int") else None,
                compressible=False,
            )
        )
    # Every multi-byte dtype big-endian, with a different compressor each.
    be_compressors = [None, ZLIB, GZIP, blosc("lz4", 1), blosc("zstd", 2), ZSTD]
    for i, dt in enumerate(d for d in peers.DTYPES if np.dtype(d).itemsize > 1):
        cases.append(
            V2Case(
                name=f"bigendian-{dt}",
                dtype=dt,
                shape=(300,),
                chunks=(64,),
                endian="big",
                compressor=be_compressors[i % len(be_compressors)],
            )
        )
    cases += [
        # Fortran order: 2-D, 3-D with "/", 4-D, big-endian
        V2Case(
            name="forder-2d-i16",
            dtype="int16",
            shape=(30, 41),
            chunks=(16, 8),
            order="F",
            compressor=blosc("lz4", 1),
            dimension_names=["row", "col"],
        ),
        V2Case(
            name="forder-slash-3d-f32",
            dtype="float32",
            shape=(9, 20, 13),
            chunks=(4, 8, 5),
            order="F",
            separator="/",
            compressor=ZLIB,
            dimension_names=["z", "y", "x"],
        ),
        V2Case(
            name="forder-4d-u8",
            dtype="uint8",
            shape=(3, 5, 10, 12),
            chunks=(2, 2, 4, 5),
            order="F",
            compressor=GZIP,
        ),
        V2Case(
            name="forder-bigendian-f64",
            dtype="float64",
            shape=(17, 23),
            chunks=(8, 8),
            order="F",
            endian="big",
            compressor=ZSTD,
        ),
        # "/" separator, C order
        V2Case(
            name="slash-3d-u16",
            dtype="uint16",
            shape=(6, 25, 19),
            chunks=(2, 8, 8),
            separator="/",
            compressor=ZSTD,
        ),
        V2Case(
            name="slash-4d-i32",
            dtype="int32",
            shape=(2, 3, 11, 9),
            chunks=(1, 2, 4, 4),
            separator="/",
            dimension_names=["t", "c", "y", "x"],
        ),
        # fill values
        V2Case(
            name="fill-nan-f32",
            dtype="float32",
            shape=(40, 23),
            chunks=(16, 8),
            fill="NaN",
            compressor=blosc("zstd", 1),
        ),
        V2Case(
            name="fill-nan-slash-f64",
            dtype="float64",
            shape=(33,),
            chunks=(5,),
            fill="NaN",
            separator="/",
        ),
        V2Case(
            name="fill-inf-f16",
            dtype="float16",
            shape=(20, 21),
            chunks=(8, 8),
            fill="Infinity",
            compressor=ZLIB,
        ),
        V2Case(
            name="fill-neginf-f32",
            dtype="float32",
            shape=(20, 21),
            chunks=(8, 8),
            fill="-Infinity",
            endian="big",
        ),
        V2Case(
            name="fill-null-i32",
            dtype="int32",
            shape=(30, 30),
            chunks=(8, 8),
            fill=None,
            compressor=ZSTD,
        ),
        V2Case(
            name="fill-null-f64",
            dtype="float64",
            shape=(30, 7),
            chunks=(8, 8),
            fill=None,
            order="F",
        ),
        V2Case(
            name="fill-null-bool",
            dtype="bool",
            shape=(33, 20),
            chunks=(16, 16),
            fill=None,
        ),
        V2Case(
            name="fill-true-bool",
            dtype="bool",
            shape=(33, 20),
            chunks=(8, 16),
            fill=True,
            compressor=blosc("blosclz", 2),
        ),
        V2Case(
            name="fill-neg-i16",
            dtype="int16",
            shape=(50,),
            chunks=(7,),
            fill=-1234,
            endian="big",
            compressor=ZLIB9,
        ),
        V2Case(
            name="fill-float-f32",
            dtype="float32",
            shape=(12, 12),
            chunks=(5, 5),
            fill=-0.5,
        ),
        # 64-bit fills beyond 2**53 (JSON numbers a float64 parser rounds)
        V2Case(
            name="fill-max-u64",
            dtype="uint64",
            shape=(40,),
            chunks=(8,),
            fill=(1 << 64) - 1,
        ),
        V2Case(
            name="fill-min-i64",
            dtype="int64",
            shape=(40,),
            chunks=(8,),
            fill=-(1 << 63) + 1,
            compressor=ZSTD,
        ),
        # lz4 (numcodecs framing); tensorstore has no lz4 compressor
        V2Case(
            name="lz4-2d-f32",
            dtype="float32",
            shape=(30, 31),
            chunks=(8, 16),
            compressor=LZ4,
            libs=("zarr",),
        ),
        V2Case(
            name="lz4-3d-u8",
            dtype="uint8",
            shape=(5, 20, 21),
            chunks=(2, 8, 8),
            compressor=LZ4,
            order="F",
            libs=("zarr",),
        ),
        # zero-dimensional (key "0")
        V2Case(
            name="scalar-f64",
            dtype="float64",
            shape=(),
            chunks=(),
            compressor=ZSTD,
            skip_fraction=0.0,
        ),
    ]
    # blosc: every cname, shuffle none / byte / bit / auto (-1), typesize 1/2/4/8
    cnames = ["lz4", "zstd", "blosclz", "zlib", "lz4hc"]
    typesizes = {1: "uint8", 2: "int16", 4: "float32", 8: "int64"}
    k = 0
    for size, dt in typesizes.items():
        for shuffle in (0, 1, 2, -1):
            cname = cnames[k % len(cnames)]
            k += 1
            shuffle_name = {0: "noshuffle", 1: "byte", 2: "bit", -1: "auto"}[shuffle]
            cases.append(
                V2Case(
                    name=f"blosc-{cname}-{shuffle_name}-ts{size}",
                    dtype=dt,
                    shape=(45, 37),
                    chunks=(16, 32),
                    compressor=blosc(cname, shuffle),
                )
            )
    cases += [
        # chunks of 125 KiB: blosc splits them into 32 KiB blocks, the last one short
        V2Case(
            name="blosc-bigchunk-zstd-byte-f32",
            dtype="float32",
            shape=(200, 300),
            chunks=(128, 250),
            compressor=blosc("zstd", 1, clevel=1),
            skip_fraction=0.0,
        ),
        # lz4 at clevel 1: 64 KiB blocks, bit shuffle with a short last block
        V2Case(
            name="blosc-blocks-lz4-bit-u16",
            dtype="uint16",
            shape=(300, 200),
            chunks=(200, 170),
            compressor=blosc("lz4", 2, clevel=1),
        ),
        # an explicit block size
        V2Case(
            name="blosc-blocksize-zstd-bit-i16",
            dtype="int16",
            shape=(100, 90),
            chunks=(64, 63),
            compressor=blosc("zstd", 2, clevel=3, blocksize=4096),
        ),
        # clevel 0: blosc stores the bytes uncompressed (memcpy flag)
        V2Case(
            name="blosc-clevel0-i32",
            dtype="int32",
            shape=(40, 40),
            chunks=(16, 16),
            compressor=blosc("lz4", 1, clevel=0),
        ),
        # compressible data in a big-endian, F-order array with blosc
        V2Case(
            name="blosc-forder-bigendian-u32",
            dtype="uint32",
            shape=(30, 50),
            chunks=(16, 32),
            order="F",
            endian="big",
            compressor=blosc("zlib", 1, clevel=9),
        ),
    ]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases


# ---------------------------------------------------------------------------
# writers and readers


def make_compressible(case: V2Case, plan: peers.Plan, seed: int) -> None:
    """Overwrites ~90% of the written elements with short runs of small values,
    keeping the special values (min/max, NaN, ±inf, -0, subnormals) in place."""
    dt = np.dtype(case.dtype)
    if not case.compressible or dt == np.bool_ or plan.expected.ndim == 0:
        return
    rng = np.random.default_rng(seed)
    exp = plan.expected
    bits = np.dtype(f"u{dt.itemsize}")
    specials = np.array(peers.specials_for(dt), dtype=dt).view(bits)
    keep = np.isin(exp.view(bits), specials)
    idx = np.arange(exp.size).reshape(exp.shape)
    smooth = ((idx // 7) % 23 + 1).astype(dt)
    written = np.zeros(exp.shape, dtype=bool)
    for c in plan.written_cells:
        written[peers.cell_slices(c, case.chunks, case.shape)] = True
    mask = written & ~keep & (rng.random(exp.shape) < 0.9)
    exp[mask] = smooth[mask]


def write_attrs(store: str, case: V2Case) -> None:
    if case.dimension_names is not None:
        write_json(
            os.path.join(store, ".zattrs"),
            {"_ARRAY_DIMENSIONS": case.dimension_names},
        )


def write_ts_v2(case: V2Case, plan: peers.Plan, store: str) -> None:
    import tensorstore as ts

    metadata = {
        "shape": list(case.shape),
        "chunks": list(case.chunks),
        "dtype": case.v2_dtype,
        "compressor": case.compressor,
        "order": case.order,
        "fill_value": case.fill,
        "filters": None,
        "dimension_separator": case.separator,
    }
    arr = ts.open(
        {
            "driver": "zarr",
            "kvstore": {"driver": "file", "path": store.rstrip("/") + "/"},
            "metadata": metadata,
            "create": True,
            "delete_existing": True,
        }
    ).result()
    txn = ts.Transaction()
    tarr = arr.with_transaction(txn)
    for c in plan.written_cells:
        sl = peers.cell_slices(c, case.chunks, case.shape)
        tarr[sl].write(plan.expected[sl]).result()
    txn.commit_async().result()
    write_attrs(store, case)  # tensorstore writes no .zattrs


def write_zarr_v2(case: V2Case, plan: peers.Plan, store: str) -> None:
    import numcodecs
    import zarr

    fill = None if case.fill is None else fill_from_json(case.fill, np.dtype(case.dtype))
    attributes = (
        {"_ARRAY_DIMENSIONS": case.dimension_names}
        if case.dimension_names is not None
        else None
    )
    arr = zarr.create_array(
        store=store,
        shape=case.shape,
        dtype=case.np_dtype,
        chunks=case.chunks,
        zarr_format=2,
        filters=None,
        compressors=numcodecs.get_codec(dict(case.compressor))
        if case.compressor
        else None,
        fill_value=fill,
        order=case.order,
        chunk_key_encoding={"name": "v2", "separator": case.separator},
        attributes=attributes,
        overwrite=True,
    )
    for c in plan.written_cells:
        sl = peers.cell_slices(c, case.chunks, case.shape)
        arr[sl] = plan.expected[sl]


def read_ts_v2(store: str) -> tuple[np.ndarray, Any]:
    import tensorstore as ts

    arr = ts.open(
        {"driver": "zarr", "kvstore": {"driver": "file", "path": store.rstrip("/") + "/"}},
        open=True,
        read=True,
    ).result()
    return np.asarray(arr.read().result()), fill_to_json(arr.fill_value)


def read_zarr_v2(store: str) -> tuple[np.ndarray, Any]:
    import zarr

    arr = zarr.open_array(store=store, mode="r", zarr_format=2)
    return np.asarray(arr[...]), fill_to_json(arr.metadata.fill_value)


WRITERS = {"tensorstore": write_ts_v2, "zarr": write_zarr_v2}
READERS = {"tensorstore": read_ts_v2, "zarr": read_zarr_v2}


def check_v2_layout(case: V2Case, plan: peers.Plan, store: str) -> dict:
    """Every written chunk is stored and every never-written chunk is absent."""
    written = set(plan.written_cells)
    absent = 0
    for idx in product(*(range(g) for g in peers.grid(case.shape, case.chunks))):
        key = case.separator.join(str(i) for i in idx) if idx else "0"
        exists = os.path.isfile(os.path.join(store, *key.split("/")))
        if exists != (idx in written):
            raise PeerError(
                f"{store}: chunk {key} exists={exists}, expected {idx in written}"
            )
        absent += not exists
    return {"outer": absent, "inner": 0}


def cmd_write_v2_cases(outdir: str) -> None:
    os.makedirs(outdir, exist_ok=True)
    folders: list[str] = []
    for ci, case in enumerate(build_v2_cases()):
        plan = peers.plan_case(case.as_v3_case(), seed=2000 + ci)
        make_compressible(case, plan, seed=3000 + ci)
        for lib in case.libs:
            folder = f"{lib}-{case.name}"
            base = os.path.join(outdir, folder)
            if os.path.exists(base):
                shutil.rmtree(base)
            os.makedirs(base)
            store = os.path.join(base, "store")
            try:
                WRITERS[lib](case, plan, store)
                data, fill_json = READERS[lib](store)
            except Exception as e:
                raise PeerError(f"{lib} failed on v2 case {case.name} ({store}): {e}") from e
            with open(os.path.join(store, ".zarray")) as f:
                zarray = json.load(f)
            if zarray.get("zarr_format") != 2 or zarray.get("order") != case.order:
                raise PeerError(f"{lib} {case.name}: unexpected .zarray {zarray}")
            if data.shape != case.shape or data.dtype.name != case.dtype:
                raise PeerError(
                    f"{lib} {case.name}: read back {data.dtype}{data.shape}, "
                    f"wrote {case.dtype}{case.shape}"
                )
            if not same_bits(data, plan.expected):
                raise PeerError(f"{lib} {case.name}: read-back differs from written data")
            if fill_json != case.fill and not (case.fill is None and fill_json is None):
                raise PeerError(
                    f"{lib} {case.name}: fill read back as {fill_json!r}, wrote {case.fill!r}"
                )
            # the other peer agrees (where it can read the compressor)
            for other in LIBS:
                if other == lib or other not in case.libs:
                    continue
                other_data, _ = READERS[other](store)
                if not same_bits(other_data, plan.expected):
                    raise PeerError(f"{other} reads {lib}'s {case.name} differently")
            absent = check_v2_layout(case, plan, store)
            with open(os.path.join(base, "data.bin"), "wb") as f:
                f.write(le_bytes(data))
            write_json(
                os.path.join(base, "meta.json"),
                {
                    "lib": lib,
                    "case": case.name,
                    "dtype": case.dtype,
                    "shape": list(case.shape),
                    "chunks": list(case.chunks),
                    "inner": None,
                    "fill": case.effective_fill,
                    "dimension_names": case.dimension_names,
                    "endian": case.endian,
                    "codecs": case.codecs_summary(),
                    "absent": absent,
                    "zarr_format": 2,
                    "v2_dtype": zarray["dtype"],
                    "order": case.order,
                    "separator": case.separator,
                    "compressor": zarray["compressor"],
                    "fill_json": zarray["fill_value"],
                },
            )
            folders.append(folder)
    write_json(os.path.join(outdir, "cases.json"), folders)
    print(f"wrote {len(folders)} Zarr v2 arrays to {outdir}")


# ---------------------------------------------------------------------------
# OME-NGFF 0.4

NGFF_AXES = [
    {"name": "t", "type": "time", "unit": "second"},
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space", "unit": "micrometer"},
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]
NGFF_CHANNELS = [
    {
        "label": "Hoechst",
        "color": "0000FF",
        "active": True,
        "window": {"start": 10, "end": 2000, "min": 0, "max": 65535},
    },
    {
        "label": "Actin",
        "color": "FFFFFF",
        "active": True,
        "window": {"start": 0, "end": 30000, "min": 0, "max": 65535},
    },
    {
        "label": "Tubulin",
        "color": "FF00FF",
        "active": False,
        "window": {"start": 5, "end": 500, "min": 0, "max": 65535},
    },
]


def nearest_pyramid(level0: np.ndarray, n: int) -> list[np.ndarray]:
    """Levels halving y and x by nearest neighbour, so every level is exact."""
    return [level0[..., :: 2**i, :: 2**i].copy() for i in range(n)]


def dump_levels(root: str, outdir: str, prefix: str, pyramid: list[np.ndarray]) -> list[dict]:
    """Checks every level of a multiscale group against `pyramid` and dumps it."""
    import zarr

    with open(os.path.join(root, ".zattrs")) as f:
        ms = json.load(f)["multiscales"][0]
    if ms.get("version") != "0.4":
        raise PeerError(f"{root}: ome-zarr did not write NGFF 0.4 multiscales: {ms}")
    levels = []
    for i, ds in enumerate(ms["datasets"]):
        arr = zarr.open_array(store=root, path=ds["path"], mode="r", zarr_format=2)
        data = np.asarray(arr[...])
        if not same_bits(data, pyramid[i]):
            raise PeerError(f"{root}/{ds['path']}: read-back differs from level {i}")
        transforms = ds["coordinateTransformations"]
        level = {
            "dtype": data.dtype.name,
            "shape": list(data.shape),
            "chunks": list(arr.chunks),
            "scale": next(t["scale"] for t in transforms if t["type"] == "scale"),
            "translation": next(
                (t["translation"] for t in transforms if t["type"] == "translation"),
                None,
            ),
            "path": ds["path"],
            "compressor": arr.metadata.compressor.get_config()
            if arr.metadata.compressor
            else None,
        }
        with open(os.path.join(outdir, f"{prefix}{i}.bin"), "wb") as f:
            f.write(le_bytes(data))
        write_json(os.path.join(outdir, f"{prefix}{i}.json"), level)
        levels.append(level)
    return levels


def cmd_write_ngff04(outdir: str) -> None:
    # ome-zarr-py 0.18 writes NGFF 0.5 (Zarr v3) by default; FormatV04 on a
    # zarr_format=2 group writes 0.4: .zgroup/.zattrs with "multiscales"
    # (version inside multiscales[0]), v2 arrays with "/" chunk keys.
    import zarr
    from numcodecs import Blosc
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import (
        write_multiscale,
        write_multiscale_labels,
        write_plate_metadata,
        write_well_metadata,
    )

    fmt = FormatV04()
    os.makedirs(outdir, exist_ok=True)

    # -- image with labels ---------------------------------------------------
    root = os.path.join(outdir, "image.ome.zarr")
    if os.path.exists(root):
        shutil.rmtree(root)
    rng = np.random.default_rng(404)
    shape = (2, 3, 5, 48, 40)
    level0 = rng.integers(0, 65535, size=shape, dtype=np.uint16, endpoint=True)
    level0.reshape(-1)[:2] = [0, 65535]
    pyramid = nearest_pyramid(level0, 3)
    group = zarr.open_group(root, mode="w", zarr_format=2)
    write_multiscale(
        pyramid,
        group,
        fmt=fmt,
        axes=NGFF_AXES,
        name="tessera-ngff04",
        scale={"t": 2.0, "c": 1.0, "z": 1.5, "y": 0.25, "x": 0.25},
        storage_options=[
            # the level-0 compressor applies to every level (ome-zarr-py)
            {
                "chunks": (1, 1, 2, 16, 16),
                "compressor": Blosc(cname="zstd", clevel=5, shuffle=Blosc.SHUFFLE),
            },
            {"chunks": (1, 2, 3, 16, 8)},
            {"chunks": (2, 3, 5, 12, 10)},
        ],
        metadata={"omero": {"channels": NGFF_CHANNELS, "rdefs": {"model": "color"}}},
    )
    labels0 = (rng.integers(0, 6, size=(2, 1, 5, 48, 40))).astype(np.uint32)
    labels0.reshape(-1)[0] = 4000000000
    label_pyramid = nearest_pyramid(labels0, 2)
    write_multiscale_labels(
        label_pyramid,
        group,
        name="cells",
        fmt=fmt,
        axes=NGFF_AXES,
        storage_options={"chunks": (1, 1, 5, 16, 16)},
        label_metadata={
            "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}],
            "properties": [{"label-value": 1, "class": "nucleus"}],
            "source": {"image": "../../"},
        },
    )
    with open(os.path.join(root, ".zattrs")) as f:
        attrs = json.load(f)
    ms = attrs["multiscales"][0]
    levels = dump_levels(root, outdir, "level", pyramid)
    label_root = os.path.join(root, "labels", "cells")
    label_levels = dump_levels(label_root, outdir, "label", label_pyramid)
    with open(os.path.join(root, "labels", ".zattrs")) as f:
        label_names = json.load(f)["labels"]
    write_json(
        os.path.join(outdir, "image.json"),
        {
            "version": ms["version"],
            "name": ms.get("name"),
            "axes": ms["axes"],
            "channels": attrs["omero"]["channels"],
            "paths": [lv["path"] for lv in levels],
            "labels": label_names,
            "label_paths": [lv["path"] for lv in label_levels],
        },
    )

    # -- HCS plate: one row, two columns, one field per well -----------------
    plate = os.path.join(outdir, "plate.ome.zarr")
    if os.path.exists(plate):
        shutil.rmtree(plate)
    rows, columns = ["A"], ["1", "2"]
    wells = ["A/1", "A/2"]
    pgroup = zarr.open_group(plate, mode="w", zarr_format=2)
    write_plate_metadata(
        pgroup,
        rows,
        columns,
        wells,
        fmt=fmt,
        field_count=1,
        name="tessera-plate",
        acquisitions=[{"id": 0, "name": "first"}],
    )
    fields = {}
    for w, well in enumerate(wells):
        row, col = well.split("/")
        wgroup = pgroup.require_group(row).require_group(col)
        write_well_metadata(wgroup, [{"path": "0", "acquisition": 0}], fmt=fmt)
        field_group = wgroup.require_group("0")
        data = np.full((1, 2, 1, 16, 16), w + 1, dtype=np.uint8)
        data[0, 1] += 10
        write_multiscale(
            [data],
            field_group,
            fmt=fmt,
            axes=NGFF_AXES,
            storage_options={"chunks": (1, 1, 1, 16, 16)},
        )
        fields[well] = ["0"]
        with open(os.path.join(outdir, f"field-{row}{col}.bin"), "wb") as f:
            f.write(le_bytes(data))
    with open(os.path.join(plate, ".zattrs")) as f:
        plate_attrs = json.load(f)["plate"]
    write_json(
        os.path.join(outdir, "plate.json"),
        {
            "plate": plate_attrs,
            "fields": fields,
            "field_shape": [1, 2, 1, 16, 16],
        },
    )
    print(f"wrote {root} ({len(levels)} levels, labels {label_names}) and {plate}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("write-v2-cases", help="write the Zarr v2 case matrix")
    p.add_argument("outdir")
    p = sub.add_parser("write-ngff04", help="write an OME-NGFF 0.4 image and plate")
    p.add_argument("outdir")
    args = ap.parse_args(argv)
    actions = {
        "write-v2-cases": lambda: cmd_write_v2_cases(args.outdir),
        "write-ngff04": lambda: cmd_write_ngff04(args.outdir),
    }
    return peers.run_reporting("v2_cases.py", args.cmd, actions[args.cmd])


if __name__ == "__main__":
    sys.exit(main())
