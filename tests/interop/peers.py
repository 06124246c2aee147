#!/usr/bin/env python3
"""Drive real Zarr v3 peers (tensorstore, zarr-python, ome-zarr-py) for the
tessera interop tests.

Subcommands:

  write-cases OUTDIR   Write a matrix of Zarr v3 arrays with tensorstore and
                       zarr-python, plus the expected data of each array.
  read-many JSONFILE   Read arrays (e.g. written by tessera) with a peer and
                       dump their contents as raw little-endian bytes.
  write-ngff OUTDIR    Write an OME-NGFF 0.5 multiscale image with ome-zarr-py.

All raw dumps are little-endian, C-order. See README.md next to this file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import sys
import traceback
from dataclasses import dataclass, field
from itertools import product
from collections.abc import Callable
from typing import Any

import numpy as np

LIBS = ("tensorstore", "zarr")
DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
)
MISSING = (1 << 64) - 1  # shard index entry of an absent inner chunk
ZSTD_LEVEL = 3


class PeerError(Exception):
    pass


# ---------------------------------------------------------------------------
# helpers


def le_bytes(a: np.ndarray) -> bytes:
    """Raw little-endian C-order bytes of an array."""
    a = np.asarray(a)
    return np.ascontiguousarray(
        a.astype(a.dtype.newbyteorder("<"), copy=False)
    ).tobytes(order="C")


def fill_to_json(v: Any) -> Any:
    """number | "NaN" | "Infinity" | "-Infinity" | bool (null if unknown)."""
    if v is None:
        return None
    v = np.asarray(v).item() if isinstance(v, (np.ndarray, np.generic)) else v
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    raise PeerError(f"unsupported fill value {v!r}")


def fill_from_json(v: Any, dtype: np.dtype) -> Any:
    if v == "NaN":
        return dtype.type(np.nan)
    if v == "Infinity":
        return dtype.type(np.inf)
    if v == "-Infinity":
        return dtype.type(-np.inf)
    return dtype.type(v)


def write_json(path: str, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def grid(shape: tuple[int, ...], chunk: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(ceil_div(s, c) for s, c in zip(shape, chunk))


def cell_slices(idx: tuple[int, ...], chunk: tuple[int, ...], shape: tuple[int, ...]):
    return tuple(
        slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunk, shape)
    )


# ---------------------------------------------------------------------------
# case matrix


@dataclass
class Case:
    name: str
    dtype: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]  # outer chunk (= shard when sharded)
    inner: tuple[int, ...] | None = None  # inner chunk when sharded
    compress: bool = True  # zstd after bytes (inside the shard when sharded)
    endian: str = "little"
    fill: Any = 0  # JSON form: number | "NaN" | bool
    dimension_names: list[str] | None = None
    # fraction of (inner) chunks never written
    skip_fraction: float = 0.25
    # number of whole outer chunks / shards never written
    skip_outer: int = 1
    libs: tuple[str, ...] = LIBS
    extra_specials: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.dtype == "bool":
            self.fill = bool(self.fill)
        elif self.dtype.startswith("float") and not isinstance(self.fill, str):
            self.fill = float(self.fill)

    @property
    def sharded(self) -> bool:
        return self.inner is not None

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def cell(self) -> tuple[int, ...]:
        """Smallest unit that is stored or absent."""
        return self.inner if self.inner is not None else self.chunks

    def codecs_summary(self) -> str:
        inner = "bytes" + (f"({self.endian})" if self.np_dtype.itemsize > 1 else "")
        if self.compress:
            inner += "+zstd"
        if self.sharded:
            return f"sharding_indexed[{inner}; index bytes+crc32c at end]"
        return inner


def build_cases() -> list[Case]:
    cases: list[Case] = []
    # Every dtype: 2-D, sharded, partial edge shards and inner chunks, one
    # whole shard and ~25% of the inner chunks never written, full value range.
    for dt in DTYPES:
        cases.append(
            Case(
                name=f"dtype-{dt}",
                dtype=dt,
                shape=(37, 45),
                chunks=(16, 32),
                inner=(8, 8),
                dimension_names=["y", "x"] if dt.startswith("int") else None,
            )
        )
    cases += [
        # plain (unsharded) chunks, bytes + zstd, 3-D with partial edges
        Case(
            name="plain-zstd-3d-f32",
            dtype="float32",
            shape=(20, 33, 17),
            chunks=(8, 16, 8),
            dimension_names=["z", "y", "x"],
        ),
        # plain chunks, bytes codec only, 1-D, non-zero fill value
        Case(
            name="plain-bytes-1d-i32",
            dtype="int32",
            shape=(1000,),
            chunks=(128,),
            compress=False,
            fill=-7,
        ),
        # plain chunks, bytes codec only, 2-D uint8
        Case(
            name="plain-bytes-2d-u8",
            dtype="uint8",
            shape=(50, 61),
            chunks=(16, 16),
            compress=False,
            fill=42,
            dimension_names=["row", "col"],
        ),
        # big-endian bytes codec, plain chunks with zstd
        Case(
            name="bigendian-plain-zstd-f64",
            dtype="float64",
            shape=(30, 41),
            chunks=(16, 16),
            endian="big",
        ),
        # big-endian bytes codec only (no compression), 8-byte integers
        Case(
            name="bigendian-plain-bytes-u64",
            dtype="uint64",
            shape=(300,),
            chunks=(64,),
            compress=False,
            endian="big",
        ),
        # big-endian inner bytes codec inside a shard
        Case(
            name="bigendian-shard-i16",
            dtype="int16",
            shape=(50, 70),
            chunks=(32, 32),
            inner=(16, 16),
            endian="big",
            fill=-1234,
        ),
        # sharded 1-D
        Case(
            name="shard-1d-i64",
            dtype="int64",
            shape=(1000,),
            chunks=(256,),
            inner=(32,),
            dimension_names=["x"],
        ),
        # sharded 3-D
        Case(
            name="shard-3d-f32",
            dtype="float32",
            shape=(17, 50, 33),
            chunks=(8, 32, 32),
            inner=(4, 16, 8),
            dimension_names=["z", "y", "x"],
        ),
        # sharded 5-D (t, c, z, y, x)
        Case(
            name="shard-5d-u16",
            dtype="uint16",
            shape=(2, 3, 5, 40, 37),
            chunks=(1, 2, 4, 32, 32),
            inner=(1, 1, 2, 16, 16),
            dimension_names=["t", "c", "z", "y", "x"],
            skip_outer=3,
        ),
        # plain 5-D
        Case(
            name="plain-zstd-5d-i8",
            dtype="int8",
            shape=(3, 2, 4, 9, 11),
            chunks=(2, 1, 3, 4, 8),
            dimension_names=["t", "c", "z", "y", "x"],
            skip_outer=0,
        ),
        # fill NaN, data with NaN / +inf / -inf, sharded
        Case(
            name="nan-fill-shard-f32",
            dtype="float32",
            shape=(45, 37),
            chunks=(32, 16),
            inner=(8, 8),
            fill="NaN",
            dimension_names=["y", "x"],
        ),
        # fill NaN, plain chunks
        Case(
            name="nan-fill-plain-f64",
            dtype="float64",
            shape=(40, 23),
            chunks=(16, 8),
            fill="NaN",
        ),
        # non-zero fill value in a sharded array
        Case(
            name="fill-shard-u32",
            dtype="uint32",
            shape=(60, 50),
            chunks=(32, 32),
            inner=(8, 16),
            fill=4000000000,
        ),
        # boolean with fill true
        Case(
            name="bool-fill-true-shard",
            dtype="bool",
            shape=(33, 70),
            chunks=(16, 64),
            inner=(8, 16),
            fill=True,
        ),
        # float16 with non-zero fill, plain zstd
        Case(
            name="fill-plain-f16",
            dtype="float16",
            shape=(25, 26),
            chunks=(10, 10),
            fill=-1.5,
        ),
        # shard == inner chunk (one inner chunk per shard)
        Case(
            name="shard-eq-inner-u32",
            dtype="uint32",
            shape=(50, 50),
            chunks=(16, 16),
            inner=(16, 16),
            skip_fraction=0.0,
            skip_outer=3,
        ),
        # single shard larger than the whole array
        Case(
            name="shard-bigger-than-array-u16",
            dtype="uint16",
            shape=(10, 13),
            chunks=(32, 32),
            inner=(8, 8),
            skip_outer=0,
        ),
        # no inner chunk missing at all, single-chunk plain array
        Case(
            name="plain-single-chunk-f32",
            dtype="float32",
            shape=(7, 9),
            chunks=(7, 9),
            skip_fraction=0.0,
            skip_outer=0,
        ),
    ]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases


def specials_for(dt: np.dtype) -> list[Any]:
    if dt == np.bool_:
        return [True, False]
    if dt.kind in "iu":
        info = np.iinfo(dt)
        vals = [info.min, info.max, 0, 1, info.max - 1]
        if dt.kind == "i":
            vals += [-1, info.min + 1]
        return vals
    info = np.finfo(dt)
    return [
        info.max,
        info.min,
        info.tiny,
        info.smallest_subnormal,
        -0.0,
        np.nan,
        np.inf,
        -np.inf,
        1.0,
        -1.0,
    ]


def random_data(rng: np.random.Generator, dt: np.dtype, shape) -> np.ndarray:
    if dt == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    # floats: wide magnitudes, both signs, kept finite for the dtype
    limit = float(np.log10(np.finfo(dt).max)) - 1
    mant = rng.standard_normal(shape)
    exp = rng.uniform(-limit / 2, limit / 2, size=shape)
    return (mant * np.power(10.0, exp)).astype(dt)


@dataclass
class Plan:
    expected: np.ndarray
    written_cells: list[tuple[int, ...]]  # cells (inner chunks / chunks) written
    absent_outer: set[tuple[int, ...]]  # outer chunks never touched
    absent_cells: list[tuple[int, ...]]  # cells never written


def plan_case(case: Case, seed: int) -> Plan:
    rng = np.random.default_rng(seed)
    dt = case.np_dtype
    full = random_data(rng, dt, case.shape)
    fill = fill_from_json(case.fill, dt)

    outer_grid = grid(case.shape, case.chunks)
    outer_all = list(product(*(range(g) for g in outer_grid)))
    n_skip_outer = min(case.skip_outer, max(len(outer_all) - 1, 0))
    skip_outer_idx = rng.choice(len(outer_all), size=n_skip_outer, replace=False)
    absent_outer = {outer_all[i] for i in skip_outer_idx}

    cell = case.cell
    cell_grid = grid(case.shape, cell)
    cells = list(product(*(range(g) for g in cell_grid)))
    written: list[tuple[int, ...]] = []
    absent: list[tuple[int, ...]] = []
    for c in cells:
        # outer chunk containing this cell
        start = [i * s for i, s in zip(c, cell)]
        o = tuple(st // ch for st, ch in zip(start, case.chunks))
        if o in absent_outer or rng.random() < case.skip_fraction:
            absent.append(c)
        else:
            written.append(c)
    if not written:
        raise PeerError(f"case {case.name}: nothing written")

    expected = np.full(case.shape, fill, dtype=dt)
    mask = np.zeros(case.shape, dtype=bool)
    for c in written:
        sl = cell_slices(c, cell, case.shape)
        expected[sl] = full[sl]
        mask[sl] = True

    # Put the extreme values (min/max, NaN, +-inf, subnormals, -0) inside
    # written cells, spread over the array.
    specials = specials_for(dt) + case.extra_specials
    flat = np.flatnonzero(mask.ravel())
    picks = np.linspace(0, len(flat) - 1, num=min(len(specials), len(flat))).astype(int)
    ev = expected.reshape(-1)
    for v, p in zip(specials, picks):
        ev[flat[p]] = dt.type(v)
    # Make sure no written cell is entirely equal to the fill value (a peer may
    # legitimately skip storing such a chunk).
    for c in written:
        sl = cell_slices(c, cell, case.shape)
        block = expected[sl]
        if same_bits(block, np.full(block.shape, fill, dtype=dt)):
            block.reshape(-1)[0] = dt.type(not fill) if dt == np.bool_ else dt.type(1)
    return Plan(expected, written, absent_outer, absent)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.shape == b.shape
        and a.dtype.name == b.dtype.name
        and le_bytes(a) == le_bytes(b)
    )


# ---------------------------------------------------------------------------
# writers


def bytes_codec_json(case: Case) -> dict:
    if case.np_dtype.itemsize > 1:
        return {"name": "bytes", "configuration": {"endian": case.endian}}
    return {"name": "bytes"}


def ts_open_spec(path: str) -> dict:
    return {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": path.rstrip("/") + "/"},
    }


def write_tensorstore(case: Case, plan: Plan, store: str) -> None:
    import tensorstore as ts

    array_codecs = [bytes_codec_json(case)]
    if case.compress:
        array_codecs.append(
            {"name": "zstd", "configuration": {"level": ZSTD_LEVEL, "checksum": False}}
        )
    if case.sharded:
        codecs = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": list(case.inner),
                    "codecs": array_codecs,
                    "index_codecs": [
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "crc32c"},
                    ],
                    "index_location": "end",
                },
            }
        ]
    else:
        codecs = array_codecs
    metadata: dict[str, Any] = {
        "shape": list(case.shape),
        "data_type": case.dtype,
        "chunk_grid": {
            "name": "regular",
            "configuration": {"chunk_shape": list(case.chunks)},
        },
        "chunk_key_encoding": {"name": "default"},
        "fill_value": case.fill,
        "codecs": codecs,
    }
    if case.dimension_names is not None:
        metadata["dimension_names"] = case.dimension_names
    spec = ts_open_spec(store)
    spec.update({"metadata": metadata, "create": True, "delete_existing": True})
    arr = ts.open(spec).result()
    txn = ts.Transaction()
    tarr = arr.with_transaction(txn)
    for c in plan.written_cells:
        sl = cell_slices(c, case.cell, case.shape)
        tarr[sl].write(plan.expected[sl]).result()
    txn.commit_async().result()


def write_zarr(case: Case, plan: Plan, store: str) -> None:
    import zarr
    from zarr.codecs import BytesCodec, ZstdCodec

    endian = case.endian if case.np_dtype.itemsize > 1 else None
    fill = fill_from_json(case.fill, case.np_dtype)
    arr = zarr.create_array(
        store=store,
        shape=case.shape,
        dtype=case.dtype,
        chunks=case.inner if case.sharded else case.chunks,
        shards=case.chunks if case.sharded else None,
        filters=None,
        compressors=ZstdCodec(level=ZSTD_LEVEL) if case.compress else None,
        serializer=BytesCodec(endian=endian),
        fill_value=fill,
        dimension_names=case.dimension_names,
        overwrite=True,
    )
    for c in plan.written_cells:
        sl = cell_slices(c, case.cell, case.shape)
        arr[sl] = plan.expected[sl]


# ---------------------------------------------------------------------------
# readers


def read_tensorstore(store: str, path: str | None) -> tuple[np.ndarray, Any]:
    import tensorstore as ts

    full = os.path.join(store, path) if path else store
    arr = ts.open({**ts_open_spec(full), "open": True}, read=True).result()
    data = arr.read().result()
    return np.asarray(data), fill_to_json(arr.fill_value)


def read_zarr(store: str, path: str | None) -> tuple[np.ndarray, Any]:
    import zarr

    arr = zarr.open_array(store=store, path=path or "", mode="r", zarr_format=3)
    data = arr[...]
    return np.asarray(data), fill_to_json(arr.metadata.fill_value)


READERS: dict[str, Callable[[str, str | None], tuple[np.ndarray, Any]]] = {
    "tensorstore": read_tensorstore,
    "zarr": read_zarr,
}


# ---------------------------------------------------------------------------
# on-disk checks: absent chunks must really be absent


def chunk_key(store: str, idx: tuple[int, ...]) -> str:
    return os.path.join(store, "c", *(str(i) for i in idx))


def check_layout(case: Case, plan: Plan, store: str) -> dict:
    """Verify which chunks / inner chunks are stored; return counts."""
    outer_grid = grid(case.shape, case.chunks)
    outer_all = list(product(*(range(g) for g in outer_grid)))
    absent_cells = set(plan.absent_cells)
    n_absent_outer = 0
    n_absent_inner = 0
    for o in outer_all:
        p = chunk_key(store, o)
        exists = os.path.isfile(p)
        if not case.sharded:
            should = o not in absent_cells
            if exists != should:
                raise PeerError(
                    f"{store}: chunk {o} exists={exists}, expected exists={should}"
                )
            n_absent_outer += not exists
            continue
        if o in plan.absent_outer:
            if exists:
                raise PeerError(f"{store}: shard {o} was never written but exists")
            n_absent_outer += 1
            continue
        per_shard = tuple(s // i for s, i in zip(case.chunks, case.inner))
        cells = [
            tuple(oi * ps + li for oi, ps, li in zip(o, per_shard, local))
            for local in product(*(range(g) for g in per_shard))
        ]
        in_bounds = [
            all(ci * ii < s for ci, ii, s in zip(c, case.inner, case.shape))
            for c in cells
        ]
        if not exists:
            if any(ib and c not in absent_cells for c, ib in zip(cells, in_bounds)):
                raise PeerError(f"{store}: shard {o} holds written data but is absent")
            n_absent_outer += 1
            continue
        with open(p, "rb") as f:
            raw = f.read()
        n = len(cells)
        index = raw[len(raw) - (16 * n + 4) : len(raw) - 4]
        entries = [struct.unpack_from("<QQ", index, 16 * k) for k in range(n)]
        for c, ib, (off, nbytes) in zip(cells, in_bounds, entries):
            present = not (off == MISSING and nbytes == MISSING)
            should = ib and c not in absent_cells
            if present != should:
                raise PeerError(
                    f"{store}: inner chunk {c} present={present}, expected {should}"
                )
            if ib and not present:
                n_absent_inner += 1
    return {"outer": n_absent_outer, "inner": n_absent_inner}


# ---------------------------------------------------------------------------
# subcommands


def cmd_write_cases(outdir: str) -> None:
    os.makedirs(outdir, exist_ok=True)
    folders: list[str] = []
    for ci, case in enumerate(build_cases()):
        plan = plan_case(case, seed=1000 + ci)
        for lib in case.libs:
            folder = f"{lib}-{case.name}"
            base = os.path.join(outdir, folder)
            if os.path.exists(base):
                shutil.rmtree(base)
            os.makedirs(base)
            store = os.path.join(base, "store")
            try:
                (write_tensorstore if lib == "tensorstore" else write_zarr)(
                    case, plan, store
                )
                data, fill_json = READERS[lib](store, None)
            except Exception as e:
                raise PeerError(
                    f"{lib} failed on case {case.name} ({store}): {e}"
                ) from e
            if data.shape != case.shape or data.dtype.name != case.dtype:
                raise PeerError(
                    f"{lib} {case.name}: read back {data.dtype}{data.shape}, "
                    f"wrote {case.dtype}{case.shape}"
                )
            if not same_bits(data, plan.expected):
                bad = np.flatnonzero(
                    np.frombuffer(le_bytes(data), np.uint8)
                    != np.frombuffer(le_bytes(plan.expected), np.uint8)
                )
                raise PeerError(
                    f"{lib} {case.name}: read-back differs from written data "
                    f"({len(bad)} bytes differ, first at byte {bad[0]})"
                )
            if fill_json != case.fill or isinstance(fill_json, bool) != isinstance(
                case.fill, bool
            ):
                raise PeerError(
                    f"{lib} {case.name}: fill read back as {fill_json!r}, wrote {case.fill!r}"
                )
            absent = check_layout(case, plan, store)
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
                    "inner": list(case.inner) if case.inner else None,
                    "fill": case.fill,
                    "dimension_names": case.dimension_names,
                    "endian": case.endian,
                    "codecs": case.codecs_summary(),
                    "absent": absent,
                },
            )
            folders.append(folder)
    write_json(os.path.join(outdir, "cases.json"), folders)
    print(f"wrote {len(folders)} arrays to {outdir}")


def cmd_read_many(jsonfile: str) -> None:
    with open(jsonfile) as f:
        jobs = json.load(f)
    if not isinstance(jobs, list):
        raise PeerError(f"{jsonfile}: expected a JSON list")
    for job in jobs:
        store = job.get("store")
        path = job.get("path") or None
        lib = job.get("lib")
        out = job.get("out")
        where = f"{store}" + (f" (path {path!r})" if path else "")
        if lib not in READERS:
            raise PeerError(
                f"{where}: unknown lib {lib!r} (use one of {list(READERS)})"
            )
        if not store or not out:
            raise PeerError(f"bad job {job!r}: 'store' and 'out' are required")
        try:
            data, fill = READERS[lib](store, path)
        except Exception as e:
            raise PeerError(
                f"{lib} could not read {where}: {type(e).__name__}: {e}"
            ) from e
        if data.dtype.name not in DTYPES:
            raise PeerError(f"{lib} read {where}: unsupported dtype {data.dtype}")
        with open(out + ".bin", "wb") as f:
            f.write(le_bytes(data))
        write_json(
            out + ".json",
            {"dtype": data.dtype.name, "shape": list(data.shape), "fill": fill},
        )


NGFF_AXES = ["t", "c", "z", "y", "x"]
NGFF_CHANNELS = [
    {
        "label": "DAPI",
        "color": "0000FF",
        "window": {"start": 100, "end": 3000, "min": 0, "max": 65535},
    },
    {
        "label": "GFP",
        "color": "00FF00",
        "window": {"start": 50, "end": 5000, "min": 0, "max": 65535},
    },
    {
        "label": "mCherry",
        "color": "FF0000",
        "window": {"start": 0, "end": 40000, "min": 0, "max": 65535},
    },
]


def cmd_write_ngff(outdir: str) -> None:
    # The pinned ome-zarr-py (0.18) writes OME-NGFF 0.5 itself (Zarr v3 group,
    # metadata under attributes["ome"]); FormatV05 is its default format.
    # Level paths are "s0", "s1", ... (reported in image.json / level<i>.json).
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscale

    os.makedirs(outdir, exist_ok=True)
    root = os.path.join(outdir, "ngff.ome.zarr")
    if os.path.exists(root):
        shutil.rmtree(root)

    rng = np.random.default_rng(7)
    shape = (2, 3, 5, 64, 48)
    level0 = rng.integers(0, 65535, size=shape, dtype=np.uint16, endpoint=True)
    level0.reshape(-1)[:2] = [0, 65535]
    # Pyramid computed here (nearest neighbour in y/x) so the data is exact.
    pyramid = [level0, level0[..., ::2, ::2].copy(), level0[..., ::4, ::4].copy()]
    group = zarr.open_group(root, mode="w", zarr_format=3)
    write_multiscale(
        pyramid,
        group,
        fmt=FormatV05(),
        axes=NGFF_AXES,
        name="tessera-ngff",
        scale={"t": 1.0, "c": 1.0, "z": 2.0, "y": 0.5, "x": 0.5},
        storage_options=[
            # level 0 sharded, the others plain chunks
            {"chunks": (1, 1, 2, 16, 16), "shards": (1, 1, 4, 32, 32)},
            {"chunks": (1, 1, 2, 16, 16)},
            {"chunks": (1, 1, 5, 16, 16)},
        ],
        metadata={"omero": {"channels": NGFF_CHANNELS, "rdefs": {"model": "color"}}},
    )

    with open(os.path.join(root, "zarr.json")) as f:
        meta = json.load(f)
    ome = meta.get("attributes", {}).get("ome")
    if not ome or ome.get("version") != "0.5":
        raise PeerError(f"{root}: ome-zarr did not write NGFF 0.5 metadata: {meta}")
    ms = ome["multiscales"][0]
    axes = [a["name"] for a in ms["axes"]]
    if axes != NGFF_AXES:
        raise PeerError(f"{root}: unexpected axes {axes}")
    labels = [c["label"] for c in ome["omero"]["channels"]]
    paths = []
    for i, ds in enumerate(ms["datasets"]):
        data, _fill = read_zarr(root, ds["path"])
        if not same_bits(data, pyramid[i]):
            raise PeerError(
                f"{root}/{ds['path']}: read-back differs from written level {i}"
            )
        transforms = ds["coordinateTransformations"]
        scale = next(t["scale"] for t in transforms if t["type"] == "scale")
        translation = next(
            (t["translation"] for t in transforms if t["type"] == "translation"), None
        )
        with open(os.path.join(outdir, f"level{i}.bin"), "wb") as f:
            f.write(le_bytes(data))
        write_json(
            os.path.join(outdir, f"level{i}.json"),
            {
                "dtype": data.dtype.name,
                "shape": list(data.shape),
                "scale": scale,
                "translation": translation,
                "path": ds["path"],
            },
        )
        paths.append(ds["path"])
    write_json(
        os.path.join(outdir, "image.json"),
        {"axes": axes, "channels": labels, "paths": paths, "version": ome["version"]},
    )
    print(f"wrote {root} ({len(paths)} levels)")


def run_reporting(prog: str, cmd: str, action) -> int:
    """Runs one subcommand: 0 on success; any failure is printed (with a
    traceback when TESSERA_PEERS_TRACEBACK is set) and gives 1."""
    try:
        action()
    except Exception as e:  # noqa: BLE001 - report every failure, exit non-zero
        if os.environ.get("TESSERA_PEERS_TRACEBACK"):
            traceback.print_exc()
        print(f"{prog} {cmd}: error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("write-cases", help="write the Zarr v3 case matrix")
    p.add_argument("outdir")
    p = sub.add_parser("read-many", help="read arrays listed in a JSON file")
    p.add_argument("jsonfile")
    p = sub.add_parser(
        "write-ngff", help="write an OME-NGFF 0.5 image with ome-zarr-py"
    )
    p.add_argument("outdir")
    args = ap.parse_args(argv)
    actions = {
        "write-cases": lambda: cmd_write_cases(args.outdir),
        "read-many": lambda: cmd_read_many(args.jsonfile),
        "write-ngff": lambda: cmd_write_ngff(args.outdir),
    }
    return run_reporting("peers.py", args.cmd, actions[args.cmd])


if __name__ == "__main__":
    sys.exit(main())
