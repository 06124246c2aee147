#!/usr/bin/env python3
"""Zarr v3 codec matrix for tessera's codec tests (tests/codecs_test.ts).

Writes one small array per codec configuration with tensorstore and with
zarr-python: `bytes` in both byte orders for every dtype, `transpose` (2-D to
4-D, chained, inside and outside `sharding_indexed`), `crc32c`, `zstd` (levels,
checksum), `gzip` (levels), `blosc` (every cname, shuffle and typesize, forced
block sizes), `sharding_indexed` variants (index at the start, index codecs
without crc32c or big-endian, nested sharding, sharding followed by a
bytes-to-bytes codec), chunk key encodings, and `numcodecs.zlib` /
`numcodecs.lz4`. Most cases have never-written chunks or shards and partial
edge chunks.

Subcommand:

  write-cases OUTDIR [--only REGEX]

Layout as in `peers.py write-cases`: OUTDIR/<lib>-<case>/{store, data.bin,
meta.json}, OUTDIR/cases.json (the folders) and OUTDIR/skipped.json (cases a
library cannot write, with the reason). data.bin is the array as the writing
library reads it back (little-endian, C order); it must equal the data that
was written, and the store must hold exactly the chunks, shards and inner
chunks that hold written data (checked on disk, nested shard indexes
included), so a "missing chunk" case really has missing chunks. A library
listed as unable to write a case is tried anyway and must still fail.
"""

from __future__ import annotations

import argparse
import gzip as gzip_module
import json
import os
import re
import shutil
import sys
import time
import tempfile
import warnings
import zlib as zlib_module
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np

from peers import (
    run_reporting,
    LIBS,
    MISSING,
    READERS,
    PeerError,
    Plan,
    cell_slices,
    fill_from_json,
    fill_to_json,
    grid,
    le_bytes,
    plan_case,
    random_data,
    same_bits,
    specials_for,
    ts_open_spec,
    write_json,
)

MULTI_BYTE = (
    "int16",
    "int32",
    "int64",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
)
BLOSC_CNAMES = ("lz4", "lz4hc", "zstd", "blosclz", "zlib", "snappy")
BLOSC_SHUFFLES = ("noshuffle", "shuffle", "bitshuffle")
# One dtype per blosc typesize.
TYPESIZE_DTYPES = {1: "uint8", 2: "int16", 4: "float32", 8: "float64"}

# Why a library does not write a configuration (the case is still read by
# tessera from the other library's store).
NO_SNAPPY = (
    "zarr-python's BloscCodec uses numcodecs' Blosc, built without snappy "
    "(ValueError: bad compressor or compressor not supported: 'snappy')"
)
TS_NO_NUMCODECS = (
    'tensorstore\'s zarr3 driver has no numcodecs.* codecs ("numcodecs.zlib" is not registered)'
)
TS_NO_SHARD_THEN_BYTES = (
    "tensorstore rejects bytes-to-bytes codecs after sharding_indexed "
    '("not compatible with subsequent bytes -> bytes codecs that apply to the entire shard")'
)
ZARR_TRANSPOSED_SHARD_CHECK = (
    "zarr-python checks the sharding inner chunk_shape against the untransposed chunk "
    "shape (ValueError: The array's `chunk_shape` ... needs to be divisible by the shard's "
    "inner `chunk_shape`), so it cannot write a non-square transpose before sharding"
)


# ---------------------------------------------------------------------------
# codec JSON


def bytes_codec(dtype: str, endian: str = "little") -> dict:
    if np.dtype(dtype).itemsize == 1:
        return {"name": "bytes"}
    return {"name": "bytes", "configuration": {"endian": endian}}


def zstd(level: int = 3, checksum: bool = False) -> dict:
    return {"name": "zstd", "configuration": {"level": level, "checksum": checksum}}


def gzip(level: int) -> dict:
    return {"name": "gzip", "configuration": {"level": level}}


CRC32C = {"name": "crc32c"}


def blosc(cname: str, shuffle: str, typesize: int, blocksize: int, clevel: int = 5) -> dict:
    return {
        "name": "blosc",
        "configuration": {
            "cname": cname,
            "clevel": clevel,
            "shuffle": shuffle,
            "typesize": typesize,
            "blocksize": blocksize,
        },
    }


def transpose(*order: int) -> dict:
    return {"name": "transpose", "configuration": {"order": list(order)}}


def index_codecs(endian: str = "little", crc: bool = True) -> list[dict]:
    return [{"name": "bytes", "configuration": {"endian": endian}}] + ([CRC32C] if crc else [])


def sharding(
    inner: tuple[int, ...] | list[int],
    codecs: list[dict],
    index: list[dict] | None = None,
    location: str = "end",
) -> dict:
    return {
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": list(inner),
            "codecs": codecs,
            "index_codecs": index if index is not None else index_codecs(),
            "index_location": location,
        },
    }


def numcodecs_zlib(level: int) -> dict:
    return {"name": "numcodecs.zlib", "configuration": {"level": level}}


def numcodecs_lz4(acceleration: int) -> dict:
    return {"name": "numcodecs.lz4", "configuration": {"acceleration": acceleration}}


def key_encoding(name: str = "default", separator: str = "/") -> dict:
    return {"name": name, "configuration": {"separator": separator}}


def normalize_codecs(codecs: list[dict], itemsize: int) -> list[dict]:
    """Codecs with defaults spelled out, for comparing intended and written metadata."""
    out = []
    for c in codecs:
        name = c["name"]
        cfg = dict(c.get("configuration") or {})
        if name == "bytes":
            cfg = {} if itemsize == 1 else {"endian": cfg.get("endian", "little")}
        elif name == "sharding_indexed":
            cfg = {
                "chunk_shape": list(cfg["chunk_shape"]),
                "codecs": normalize_codecs(cfg["codecs"], itemsize),
                "index_codecs": normalize_codecs(
                    cfg.get("index_codecs") or index_codecs(), 8
                ),
                "index_location": cfg.get("index_location", "end"),
            }
        elif name == "transpose":
            cfg = {"order": list(cfg["order"])}
        elif name == "blosc" and cfg.get("shuffle") == "noshuffle":
            cfg.pop("typesize", None)  # tensorstore drops it: unused without shuffling
        out.append({"name": name, "configuration": cfg})
    return out


def summarize(codecs: list[dict]) -> str:
    """A one-line description of a codec chain."""
    parts = []
    for c in codecs:
        name, cfg = c["name"], c.get("configuration") or {}
        if name == "bytes":
            parts.append(f"bytes({cfg['endian']})" if "endian" in cfg else "bytes")
        elif name == "transpose":
            parts.append(f"transpose{cfg['order']}")
        elif name == "zstd":
            parts.append(f"zstd({cfg['level']}{', checksum' if cfg.get('checksum') else ''})")
        elif name == "gzip":
            parts.append(f"gzip({cfg['level']})")
        elif name == "blosc":
            parts.append(
                f"blosc({cfg['cname']}, {cfg['shuffle']}, clevel {cfg['clevel']}, "
                f"typesize {cfg.get('typesize', '-')}, blocksize {cfg.get('blocksize', 0)})"
            )
        elif name == "sharding_indexed":
            index = summarize(cfg.get("index_codecs") or index_codecs())
            parts.append(
                f"sharding_indexed[{'x'.join(map(str, cfg['chunk_shape']))}: "
                f"{summarize(cfg['codecs'])}; index {index} at {cfg.get('index_location', 'end')}]"
            )
        elif name.startswith("numcodecs."):
            parts.append(f"{name}({json.dumps(cfg, sort_keys=True)})")
        else:
            parts.append(name)
    return " > ".join(parts)


# ---------------------------------------------------------------------------
# cases


@dataclass
class CodecCase:
    name: str
    family: str
    dtype: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]  # regular chunk grid (the shard shape when sharded)
    codecs: list[dict]  # Zarr v3 codec chain, in encoding order
    keys: dict = field(default_factory=key_encoding)
    fill: Any = 0
    # "random": full-range random data; "smooth": compressible data with a
    # random band, so compressors see both compressible and incompressible blocks
    data: str = "random"
    skip_fraction: float = 0.25  # fraction of the smallest stored units never written
    skip_outer: int = 1  # whole outer chunks / shards never written
    not_written_by: dict[str, str] = field(default_factory=dict)  # lib -> why
    extra_specials: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.dtype == "bool":
            self.fill = bool(self.fill)
        elif self.dtype.startswith("float") and not isinstance(self.fill, str):
            self.fill = float(self.fill)
        levels = chunk_levels(self.codecs, list(range(len(self.shape))))
        for outer, inner in zip([list(self.chunks)] + levels, levels):
            if any(o % i for o, i in zip(outer, inner)):
                raise PeerError(f"case {self.name}: inner chunk {inner} does not divide {outer}")
        self.levels = levels

    # attributes plan_case (peers.py) uses
    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def cell(self) -> tuple[int, ...]:
        """Smallest stored unit, in array coordinates (the innermost chunk)."""
        return tuple(self.levels[-1]) if self.levels else self.chunks

    @property
    def inner(self) -> list[int] | None:
        """Inner chunk of the outermost sharding codec, in array coordinates."""
        return self.levels[0] if self.levels else None

    @property
    def libs(self) -> tuple[str, ...]:
        return tuple(lib for lib in LIBS if lib not in self.not_written_by)

    @property
    def endian(self) -> str:
        """Byte order of the elements (the innermost bytes codec)."""
        chain = self.codecs
        while True:
            for c in chain:
                if c["name"] == "sharding_indexed":
                    chain = c["configuration"]["codecs"]
                    break
                if c["name"] == "bytes":
                    return (c.get("configuration") or {}).get("endian", "little")
            else:
                return "little"


def chunk_levels(codecs: list[dict], perm: list[int]) -> list[list[int]]:
    """Inner chunk shapes of nested sharding codecs, in array coordinates.

    `perm[i]` is the array dimension that dimension i of the codec's input
    holds (transposes before a sharding codec permute the shard it sees).
    """
    for c in codecs:
        if c["name"] == "transpose":
            perm = [perm[o] for o in c["configuration"]["order"]]
        elif c["name"] == "sharding_indexed":
            inner = c["configuration"]["chunk_shape"]
            logical = [0] * len(perm)
            for i, d in enumerate(perm):
                logical[d] = inner[i]
            return [logical] + chunk_levels(c["configuration"]["codecs"], perm)
    return []


def build_cases() -> list[CodecCase]:
    cases: list[CodecCase] = []
    add = cases.append

    # --- bytes: both byte orders for every multi-byte dtype; plain chunks,
    # partial edges, never-written chunks.
    for dt in MULTI_BYTE:
        for endian in ("little", "big"):
            add(
                CodecCase(
                    f"bytes-{endian}-{dt}",
                    "bytes",
                    dt,
                    (13, 21),
                    (5, 8),
                    [bytes_codec(dt, endian)],
                    skip_outer=2,
                )
            )
    for dt in ("bool", "int8", "uint8"):
        add(CodecCase(f"bytes-{dt}", "bytes", dt, (13, 21), (5, 8), [bytes_codec(dt)]))

    # --- transpose: 2-D to 4-D, chained, inside and outside sharding.
    add(
        CodecCase(
            "transpose-2d-10",
            "transpose",
            "int32",
            (13, 21),
            (5, 8),
            [transpose(1, 0), bytes_codec("int32")],
            fill=-7,
        )
    )
    add(
        CodecCase(
            "transpose-3d-201-big-zstd",
            "transpose",
            "uint16",
            (7, 9, 11),
            (4, 4, 6),
            [transpose(2, 0, 1), bytes_codec("uint16", "big"), zstd()],
        )
    )
    add(
        CodecCase(
            "transpose-3d-120-gzip",
            "transpose",
            "float64",
            (6, 10, 7),
            (4, 4, 4),
            [transpose(1, 2, 0), bytes_codec("float64"), gzip(5)],
            fill="NaN",
        )
    )
    add(
        CodecCase(
            "transpose-4d-3021",
            "transpose",
            "float32",
            (3, 5, 6, 7),
            (2, 3, 4, 4),
            [transpose(3, 0, 2, 1), bytes_codec("float32")],
        )
    )
    add(
        CodecCase(
            "transpose-4d-chained",
            "transpose",
            "int16",
            (4, 5, 6, 3),
            (3, 4, 4, 2),
            [transpose(1, 2, 3, 0), transpose(2, 0, 3, 1), bytes_codec("int16")],
        )
    )
    add(
        CodecCase(
            "transpose-inside-shard-3d",
            "transpose",
            "uint32",
            (10, 12, 9),
            (8, 8, 6),
            [sharding((4, 4, 3), [transpose(2, 1, 0), bytes_codec("uint32"), zstd()])],
        )
    )
    add(
        CodecCase(
            "transpose-inside-shard-4d",
            "transpose",
            "int8",
            (3, 6, 10, 9),
            (2, 4, 8, 6),
            [sharding((1, 2, 4, 3), [transpose(0, 3, 1, 2), bytes_codec("int8"), CRC32C])],
            fill=-7,
        )
    )
    # transpose before sharding: the shard codec sees the transposed shard,
    # so chunk_shape is given in transposed order.
    add(
        CodecCase(
            "transpose-outside-shard-2d",
            "transpose",
            "float32",
            (20, 30),
            (8, 8),
            [transpose(1, 0), sharding((4, 4), [bytes_codec("float32"), zstd()])],
        )
    )
    add(
        CodecCase(
            "transpose-outside-shard-2d-nonsquare",
            "transpose",
            "uint16",
            (20, 30),
            (8, 12),
            [transpose(1, 0), sharding((6, 4), [bytes_codec("uint16")])],
            not_written_by={"zarr": ZARR_TRANSPOSED_SHARD_CHECK},
        )
    )
    add(
        CodecCase(
            "transpose-outside-shard-3d",
            "transpose",
            "int32",
            (9, 10, 12),
            (4, 4, 8),
            [transpose(2, 0, 1), sharding((4, 2, 2), [bytes_codec("int32")])],
        )
    )
    add(
        CodecCase(
            "transpose-outside-and-inside-shard-3d",
            "transpose",
            "int16",
            (9, 10, 12),
            (4, 4, 8),
            [
                transpose(1, 0, 2),
                sharding((2, 2, 4), [transpose(2, 1, 0), bytes_codec("int16", "big"), zstd()]),
            ],
        )
    )

    # --- crc32c
    add(
        CodecCase(
            "crc32c-after-zstd",
            "crc32c",
            "int64",
            (13, 21),
            (5, 8),
            [bytes_codec("int64"), zstd(), CRC32C],
            data="smooth",
        )
    )
    add(
        CodecCase(
            "crc32c-only",
            "crc32c",
            "uint16",
            (13, 21),
            (5, 8),
            [bytes_codec("uint16"), CRC32C],
        )
    )
    add(
        CodecCase(
            "crc32c-before-zstd",
            "crc32c",
            "float32",
            (13, 21),
            (5, 8),
            [bytes_codec("float32"), CRC32C, zstd()],
            data="smooth",
        )
    )
    add(
        CodecCase(
            "crc32c-after-zstd-in-shard",
            "crc32c",
            "int16",
            (30, 41),
            (16, 16),
            [sharding((8, 4), [bytes_codec("int16"), zstd(), CRC32C])],
            data="smooth",
        )
    )

    # --- zstd
    add(
        CodecCase(
            "zstd-checksum",
            "zstd",
            "float64",
            (30, 41),
            (16, 16),
            [bytes_codec("float64"), zstd(3, True)],
            data="smooth",
        )
    )
    add(
        CodecCase(
            "zstd-no-checksum",
            "zstd",
            "int32",
            (30, 41),
            (16, 16),
            [bytes_codec("int32"), zstd(3, False)],
            data="smooth",
        )
    )
    add(
        CodecCase(
            "zstd-negative-level",
            "zstd",
            "uint8",
            (30, 41),
            (16, 16),
            [bytes_codec("uint8"), zstd(-3)],
            data="smooth",
        )
    )
    add(
        CodecCase(
            "zstd-level19-checksum-in-shard",
            "zstd",
            "uint16",
            (30, 41),
            (16, 32),
            [sharding((8, 8), [bytes_codec("uint16", "big"), zstd(19, True)])],
            data="smooth",
        )
    )

    # --- gzip
    for level, dt in ((0, "int16"), (1, "float32"), (6, "uint64"), (9, "bool")):
        add(
            CodecCase(
                f"gzip-{level}",
                "gzip",
                dt,
                (30, 41),
                (16, 16),
                [bytes_codec(dt), gzip(level)],
                data="smooth",
            )
        )
    add(
        CodecCase(
            "gzip-9-big-in-shard",
            "gzip",
            "float64",
            (30, 41),
            (16, 32),
            [sharding((8, 8), [bytes_codec("float64", "big"), gzip(9)])],
            data="smooth",
        )
    )

    # --- blosc: every cname × shuffle; the typesize (1/2/4/8, from the dtype)
    # rotates so that every shuffle meets every typesize. Chunks of 23×41
    # elements (943, not a multiple of 8: c-blosc leaves such a block
    # unbitshuffled) with a requested blocksize of 256 or 1024 bytes.
    # c-blosc 1.x splits blocks into typesize streams for every cname but zstd
    # when blocksize / typesize >= 128, and then raises the blocksize to at
    # least 64 KiB (one block per chunk here); otherwise the blocksize holds
    # and a chunk has several blocks and a partial last one. The two
    # "split-multiblock" cases have chunks over 64 KiB to get split blocks and
    # a partial, unsplit last block.
    sizes = (1, 2, 4, 8)
    for ci, cname in enumerate(BLOSC_CNAMES):
        for si, shuffle in enumerate(BLOSC_SHUFFLES):
            typesize = sizes[(ci + si) % 4]
            dt = TYPESIZE_DTYPES[typesize]
            blocksize = 256 if (ci + si) % 2 == 0 else 1024
            add(
                CodecCase(
                    f"blosc-{cname}-{shuffle}-t{typesize}",
                    "blosc",
                    dt,
                    (40, 50),
                    (23, 41),
                    [bytes_codec(dt), blosc(cname, shuffle, typesize, blocksize)],
                    data="smooth",
                    not_written_by={"zarr": NO_SNAPPY} if cname == "snappy" else {},
                )
            )
    add(
        CodecCase(
            "blosc-lz4-split-multiblock-t4",
            "blosc",
            "float32",
            (300, 256),
            (224, 256),
            [bytes_codec("float32"), blosc("lz4", "shuffle", 4, 1024)],
            data="smooth",
            skip_outer=0,
            skip_fraction=0.0,
        )
    )
    add(
        CodecCase(
            "blosc-blosclz-split-multiblock-noshuffle-t2",
            "blosc",
            "int16",
            (300, 256),
            (200, 256),
            [bytes_codec("int16"), blosc("blosclz", "noshuffle", 2, 1024)],
            data="smooth",
            skip_outer=0,
            skip_fraction=0.0,
        )
    )
    add(
        CodecCase(
            "blosc-lz4-shuffle-t8-int64-random",
            "blosc",
            "int64",
            (40, 50),
            (24, 40),
            [bytes_codec("int64"), blosc("lz4", "shuffle", 8, 1024)],
        )
    )
    add(
        CodecCase(
            "blosc-clevel0-t4",
            "blosc",
            "uint32",
            (40, 50),
            (24, 40),
            [bytes_codec("uint32"), blosc("lz4", "shuffle", 4, 256, clevel=0)],
            data="smooth",
        )
    )
    add(
        CodecCase(
            "blosc-auto-blocksize-bitshuffle-t2",
            "blosc",
            "float16",
            (70, 90),
            (64, 64),
            [bytes_codec("float16"), blosc("zstd", "bitshuffle", 2, 0)],
            data="smooth",
        )
    )
    add(
        CodecCase(
            "blosc-big-endian-shuffle-t8",
            "blosc",
            "float64",
            (40, 50),
            (24, 40),
            [bytes_codec("float64", "big"), blosc("blosclz", "shuffle", 8, 1024)],
            data="smooth",
        )
    )
    add(
        CodecCase(
            "blosc-in-shard-bitshuffle-t2",
            "blosc",
            "uint16",
            (60, 70),
            (32, 64),
            [sharding((16, 16), [bytes_codec("uint16"), blosc("lz4", "bitshuffle", 2, 128)])],
            data="smooth",
        )
    )

    # --- sharding_indexed variants
    add(
        CodecCase(
            "shard-index-start",
            "sharding",
            "int32",
            (30, 41),
            (16, 16),
            [sharding((4, 8), [bytes_codec("int32"), zstd()], location="start")],
        )
    )
    add(
        CodecCase(
            "shard-index-start-3d-gzip",
            "sharding",
            "float32",
            (9, 20, 17),
            (4, 8, 8),
            [sharding((2, 4, 4), [bytes_codec("float32"), gzip(4)], location="start")],
            fill="NaN",
        )
    )
    add(
        CodecCase(
            "shard-index-no-crc32c",
            "sharding",
            "uint16",
            (30, 41),
            (16, 16),
            [sharding((8, 4), [bytes_codec("uint16")], index=index_codecs(crc=False))],
        )
    )
    add(
        CodecCase(
            "shard-index-big-endian",
            "sharding",
            "float32",
            (30, 41),
            (16, 16),
            [sharding((8, 8), [bytes_codec("float32"), zstd()], index=index_codecs("big"))],
        )
    )
    add(
        CodecCase(
            "shard-index-big-endian-no-crc32c-start",
            "sharding",
            "int64",
            (30, 41),
            (16, 16),
            [
                sharding(
                    (4, 8),
                    [bytes_codec("int64", "big")],
                    index=index_codecs("big", crc=False),
                    location="start",
                )
            ],
        )
    )
    add(
        CodecCase(
            "shard-nested-2d",
            "sharding",
            "uint16",
            (37, 45),
            (32, 32),
            [sharding((16, 16), [sharding((4, 8), [bytes_codec("uint16"), zstd()])])],
            skip_fraction=0.4,
        )
    )
    add(
        CodecCase(
            "shard-nested-3d-mixed-index",
            "sharding",
            "float64",
            (9, 20, 17),
            (8, 16, 16),
            [
                sharding(
                    (4, 8, 8),
                    [
                        sharding(
                            (2, 4, 4),
                            [bytes_codec("float64"), gzip(1)],
                            index=index_codecs("big", crc=False),
                            location="start",
                        )
                    ],
                )
            ],
            fill=-1.5,
        )
    )
    add(
        CodecCase(
            "shard-nested-three-levels-1d",
            "sharding",
            "int8",
            (500,),
            (128,),
            [
                sharding(
                    (32,),
                    [sharding((8,), [bytes_codec("int8"), zstd()], location="start")],
                    index=index_codecs(crc=False),
                )
            ],
            skip_fraction=0.4,
        )
    )
    add(
        CodecCase(
            "shard-then-gzip",
            "sharding",
            "int32",
            (30, 41),
            (16, 16),
            [sharding((8, 8), [bytes_codec("int32")]), gzip(5)],
            not_written_by={"tensorstore": TS_NO_SHARD_THEN_BYTES},
        )
    )
    add(
        CodecCase(
            "shard-then-zstd-crc32c-index-start",
            "sharding",
            "float32",
            (30, 41),
            (16, 16),
            [
                sharding((4, 8), [bytes_codec("float32"), zstd()], location="start"),
                zstd(),
                CRC32C,
            ],
            not_written_by={"tensorstore": TS_NO_SHARD_THEN_BYTES},
        )
    )
    add(
        CodecCase(
            "shard-nested-inner-then-zstd",
            "sharding",
            "uint16",
            (37, 45),
            (32, 32),
            [sharding((16, 16), [sharding((4, 8), [bytes_codec("uint16")]), zstd()])],
            not_written_by={"tensorstore": TS_NO_SHARD_THEN_BYTES},
        )
    )

    # --- chunk key encodings
    add(
        CodecCase(
            "keys-default-dot-3d",
            "keys",
            "int16",
            (7, 9, 11),
            (3, 4, 5),
            [bytes_codec("int16"), zstd()],
            keys=key_encoding("default", "."),
            skip_outer=3,
        )
    )
    add(
        CodecCase(
            "keys-default-dot-shard-2d",
            "keys",
            "uint32",
            (30, 41),
            (16, 16),
            [sharding((8, 8), [bytes_codec("uint32")])],
            keys=key_encoding("default", "."),
        )
    )
    add(
        CodecCase(
            "keys-v2-dot-2d",
            "keys",
            "float32",
            (13, 21),
            (5, 8),
            [bytes_codec("float32")],
            keys=key_encoding("v2", "."),
            skip_outer=2,
        )
    )
    add(
        CodecCase(
            "keys-v2-slash-3d-shard",
            "keys",
            "uint32",
            (10, 20, 30),
            (8, 8, 16),
            [sharding((4, 4, 8), [bytes_codec("uint32"), zstd()])],
            keys=key_encoding("v2", "/"),
        )
    )
    add(
        CodecCase(
            "keys-v2-dot-1d-shard",
            "keys",
            "int64",
            (300,),
            (64,),
            [sharding((16,), [bytes_codec("int64")])],
            keys=key_encoding("v2", "."),
        )
    )
    add(
        CodecCase(
            "keys-v2-slash-1d",
            "keys",
            "uint8",
            (100,),
            (16,),
            [bytes_codec("uint8")],
            keys=key_encoding("v2", "/"),
            skip_outer=2,
        )
    )
    for enc, sep in (("default", "/"), ("v2", ".")):
        add(
            CodecCase(
                f"keys-{enc}-rank0",
                "keys",
                "float64",
                (),
                (),
                [bytes_codec("float64"), zstd()],
                keys=key_encoding(enc, sep),
                skip_fraction=0.0,
                skip_outer=0,
            )
        )

    # --- numcodecs codecs (zarr-python only)
    add(
        CodecCase(
            "numcodecs-zlib-1",
            "numcodecs",
            "int32",
            (30, 41),
            (16, 16),
            [bytes_codec("int32"), numcodecs_zlib(1)],
            data="smooth",
            not_written_by={"tensorstore": TS_NO_NUMCODECS},
        )
    )
    add(
        CodecCase(
            "numcodecs-zlib-9-big-in-shard",
            "numcodecs",
            "float64",
            (30, 41),
            (16, 16),
            [sharding((8, 8), [bytes_codec("float64", "big"), numcodecs_zlib(9)])],
            data="smooth",
            not_written_by={"tensorstore": TS_NO_NUMCODECS},
        )
    )
    add(
        CodecCase(
            "numcodecs-lz4-1",
            "numcodecs",
            "float32",
            (30, 41),
            (16, 16),
            [bytes_codec("float32"), numcodecs_lz4(1)],
            data="smooth",
            not_written_by={"tensorstore": TS_NO_NUMCODECS},
        )
    )
    add(
        CodecCase(
            "numcodecs-lz4-10-in-shard",
            "numcodecs",
            "int64",
            (30, 41),
            (16, 16),
            [sharding((8, 4), [bytes_codec("int64"), numcodecs_lz4(10)])],
            data="smooth",
            not_written_by={"tensorstore": TS_NO_NUMCODECS},
        )
    )

    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases


# ---------------------------------------------------------------------------
# data


def smooth_values(dt: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Slowly varying values that compress well (with and without shuffling)."""
    n = int(np.prod(shape, dtype=np.int64))
    lin = np.arange(n, dtype=np.int64)
    if dt == np.bool_:
        v = (lin // 13) % 2 == 1
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        base = int(info.max) // 3 if dt.itemsize > 1 else 0
        v = (base + (lin // 7) % 97).astype(dt)
    else:
        v = (np.round(np.sin(lin / 23.0) * 1000.0, 1)).astype(dt)
    return v.reshape(shape)


def plan(case: CodecCase, seed: int) -> Plan:
    """Cells to write and the data, from peers.plan_case; compressible data
    for "smooth" cases (a random band kept, special values put back)."""
    p = plan_case(case, seed)
    if case.data == "random" or not case.shape:
        return p
    dt = case.np_dtype
    rng = np.random.default_rng(seed + 1)
    fill = fill_from_json(case.fill, dt)
    written = np.zeros(case.shape, dtype=bool)
    for c in p.written_cells:
        written[cell_slices(c, case.cell, case.shape)] = True
    lin = np.arange(written.size).reshape(case.shape)
    band = (lin // 64) % 5 == 2
    smooth = smooth_values(dt, case.shape)
    noisy = random_data(rng, dt, case.shape)
    data = np.where(band, noisy, smooth)
    # special values (min/max, NaN, ±inf, subnormals, -0) at spread positions
    flat = np.flatnonzero(written.ravel())
    specials = specials_for(dt) + case.extra_specials
    picks = flat[np.linspace(0, len(flat) - 1, num=min(len(specials), len(flat))).astype(int)]
    dv = data.reshape(-1)
    for v, at in zip(specials, picks):
        dv[at] = dt.type(v)
    expected = np.where(written, data, np.full(case.shape, fill, dtype=dt)).astype(dt)
    for c in p.written_cells:
        block = expected[cell_slices(c, case.cell, case.shape)]
        if same_bits(block, np.full(block.shape, fill, dtype=dt)):
            block.reshape(-1)[0] = dt.type(not fill) if dt == np.bool_ else dt.type(1)
    return Plan(expected, p.written_cells, p.absent_outer, p.absent_cells)


# ---------------------------------------------------------------------------
# writers


def array_metadata(case: CodecCase) -> dict:
    return {
        "shape": list(case.shape),
        "data_type": case.dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(case.chunks)}},
        "chunk_key_encoding": case.keys,
        "fill_value": case.fill,
        "codecs": case.codecs,
    }


def write_tensorstore(case: CodecCase, data: np.ndarray, store: str) -> None:
    """One write of the whole array; chunks equal to the fill value are not stored."""
    import tensorstore as ts

    spec = ts_open_spec(store)
    spec.update({"metadata": array_metadata(case), "create": True, "delete_existing": True})
    arr = ts.open(spec).result()
    arr.write(data).result()


def write_zarr(case: CodecCase, data: np.ndarray, store: str) -> None:
    """create_array with the chain split into filters / serializer /
    compressors; chunks equal to the fill value are not stored."""
    import zarr
    from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec
    from zarr.registry import get_codec_class

    objs = [get_codec_class(c["name"]).from_dict(c) for c in case.codecs]
    filters = [o for o in objs if isinstance(o, ArrayArrayCodec)]
    serializer = [o for o in objs if isinstance(o, ArrayBytesCodec)]
    compressors = [o for o in objs if isinstance(o, BytesBytesCodec)]
    if len(serializer) != 1 or len(filters) + 1 + len(compressors) != len(objs):
        raise PeerError(f"case {case.name}: cannot split the codec chain for zarr-python")
    arr = zarr.create_array(
        store=store,
        shape=case.shape,
        dtype=case.dtype,
        chunks=case.chunks,
        shards=None,
        filters=filters or None,
        serializer=serializer[0],
        compressors=compressors or None,
        fill_value=fill_from_json(case.fill, case.np_dtype),
        chunk_key_encoding=case.keys,
        overwrite=True,
    )
    arr[...] = data


WRITERS = {"tensorstore": write_tensorstore, "zarr": write_zarr}


# ---------------------------------------------------------------------------
# on-disk checks: exactly the chunks holding written data are stored


def chunk_key(keys: dict, coords: tuple[int, ...]) -> str:
    sep = keys["configuration"]["separator"]
    if keys["name"] == "default":
        return sep.join(["c"] + [str(c) for c in coords])
    return sep.join(str(c) for c in coords) if coords else "0"


def undo_bytes_codecs(codecs: list[dict], raw: bytes) -> bytes:
    """Decodes bytes-to-bytes codecs (those following a sharding codec)."""
    import numcodecs

    for c in reversed(codecs):
        name = c["name"]
        if name == "crc32c":
            raw = raw[:-4]
        elif name == "gzip":
            raw = gzip_module.decompress(raw)
        elif name == "numcodecs.zlib":
            raw = zlib_module.decompress(raw)
        elif name == "zstd":
            raw = bytes(numcodecs.Zstd().decode(raw))
        else:
            raise PeerError(f"layout check: no decoder for {name} after sharding")
    return raw


class Layout:
    """Which chunks, shards and inner chunks must be stored: those holding written cells."""

    def __init__(self, case: CodecCase, plan_: Plan):
        self.case = case
        cell_grid = grid(case.shape, case.cell)
        self.written = np.zeros(cell_grid, dtype=bool)
        for c in plan_.written_cells:
            self.written[c] = True

    def holds_data(self, origin: list[int], size: list[int]) -> bool:
        cell = self.case.cell
        sl = tuple(slice(o // c, -(-(o + s) // c)) for o, s, c in zip(origin, size, cell))
        return bool(self.written[sl].any()) if sl else bool(self.written.any())

    def check_chunk(self, codecs, raw, origin, shape, perm, where) -> None:
        """Checks the shard indexes inside one stored chunk, recursively."""
        for k, c in enumerate(codecs):
            if c["name"] == "transpose":
                perm = [perm[o] for o in c["configuration"]["order"]]
            elif c["name"] == "sharding_indexed":
                shard = undo_bytes_codecs(codecs[k + 1 :], raw)
                self.check_shard(c["configuration"], shard, origin, shape, perm, where)
                return
            else:
                return

    def check_shard(self, cfg, shard, origin, shape, perm, where) -> None:
        inner_t = cfg["chunk_shape"]
        shard_t = [shape[d] for d in perm]
        grid_t = [s // i for s, i in zip(shard_t, inner_t)]
        n = int(np.prod(grid_t, dtype=np.int64))
        index_spec = cfg.get("index_codecs") or index_codecs()
        endian = index_spec[0].get("configuration", {}).get("endian", "little")
        crc = any(c["name"] == "crc32c" for c in index_spec)
        size = 16 * n + (4 if crc else 0)
        if cfg.get("index_location", "end") == "start":
            index = shard[: 16 * n]
        else:
            index = shard[len(shard) - size : len(shard) - size + 16 * n]
        entries = np.frombuffer(index, dtype=("<u8" if endian == "little" else ">u8"))
        entries = entries.reshape(n, 2)
        for k, g in enumerate(product(*(range(x) for x in grid_t))):
            sub_origin = list(origin)
            sub_shape = list(shape)
            for i, d in enumerate(perm):
                sub_origin[d] = origin[d] + g[i] * inner_t[i]
                sub_shape[d] = inner_t[i]
            off, nbytes = int(entries[k, 0]), int(entries[k, 1])
            present = not (off == MISSING and nbytes == MISSING)
            in_bounds = all(o < s for o, s in zip(sub_origin, self.case.shape))
            should = in_bounds and self.holds_data(sub_origin, sub_shape)
            if present != should:
                raise PeerError(
                    f"{where}: inner chunk at {sub_origin} present={present}, expected {should}"
                )
            if present:
                inner = shard[off : off + nbytes]
                self.check_chunk(cfg["codecs"], inner, sub_origin, sub_shape, perm, where)

    def check(self, store: str) -> dict:
        case = self.case
        absent_outer = 0
        absent_inner = 0
        outer_grid = grid(case.shape, case.chunks)
        present_outer = np.zeros(outer_grid, dtype=bool)
        for o in product(*(range(g) for g in outer_grid)):
            origin = [i * c for i, c in zip(o, case.chunks)]
            path = os.path.join(store, *chunk_key(case.keys, o).split("/"))
            exists = os.path.isfile(path)
            should = self.holds_data(origin, list(case.chunks))
            if exists != should:
                raise PeerError(f"{store}: chunk {o} exists={exists}, expected {should}")
            if not exists:
                absent_outer += 1
                continue
            present_outer[o] = True
            with open(path, "rb") as f:
                raw = f.read()
            identity = list(range(len(case.shape)))
            where = f"{store}: chunk {o}"
            self.check_chunk(case.codecs, raw, origin, list(case.chunks), identity, where)
        for cidx in product(*(range(g) for g in self.written.shape)):
            if self.written[cidx]:
                continue
            o = tuple(ci * c // oc for ci, c, oc in zip(cidx, case.cell, case.chunks))
            absent_inner += bool(present_outer[o])
        return {"outer": absent_outer, "inner": absent_inner}


# ---------------------------------------------------------------------------
# subcommand


def written_codecs(store: str) -> tuple[list[dict], dict]:
    with open(os.path.join(store, "zarr.json")) as f:
        meta = json.load(f)
    return meta["codecs"], meta["chunk_key_encoding"]


def cross_read(lib: str, case: CodecCase, store: str, expected: np.ndarray) -> str:
    try:
        data, _fill = READERS[lib](store, None)
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        return f"error: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return "ok" if same_bits(data, expected) else "differs"


def confirm_cannot_write(lib: str, case: CodecCase, data: np.ndarray, reason: str) -> None:
    """A documented skip must still hold: the library must fail to write the case."""
    with tempfile.TemporaryDirectory(prefix="tessera-skip-") as tmp:
        try:
            WRITERS[lib](case, data, os.path.join(tmp, "store"))
        except Exception:  # noqa: BLE001 - the expected failure
            return
    raise PeerError(
        f"{lib} now writes case {case.name}; drop it from not_written_by ({reason})"
    )


def cmd_write_cases(outdir: str, only: str | None) -> None:
    started = time.monotonic()
    # zarr-python warns about numcodecs codecs and sharding followed by compression
    warnings.filterwarnings("ignore", module=r"zarr\.")
    os.makedirs(outdir, exist_ok=True)
    folders: list[str] = []
    skipped: list[dict] = []
    for ci, case in enumerate(build_cases()):
        if only and not re.search(only, case.name):
            continue
        p = plan(case, seed=5000 + ci)
        for lib, reason in case.not_written_by.items():
            confirm_cannot_write(lib, case, p.expected, reason)
            skipped.append({"lib": lib, "case": case.name, "reason": reason})
        for lib in case.libs:
            folder = f"{lib}-{case.name}"
            base = os.path.join(outdir, folder)
            if os.path.exists(base):
                shutil.rmtree(base)
            os.makedirs(base)
            store = os.path.join(base, "store")
            try:
                WRITERS[lib](case, p.expected, store)
                data, fill_json = READERS[lib](store, None)
            except Exception as e:
                raise PeerError(f"{lib} failed on case {case.name} ({store}): {e}") from e
            if data.shape != case.shape or data.dtype.name != case.dtype:
                raise PeerError(
                    f"{lib} {case.name}: read back {data.dtype}{data.shape}, "
                    f"wrote {case.dtype}{case.shape}"
                )
            if not same_bits(data, p.expected):
                raise PeerError(f"{lib} {case.name}: read-back differs from the written data")
            if fill_json != case.fill:
                raise PeerError(f"{lib} {case.name}: fill read back as {fill_json!r}")
            codecs_json, keys_json = written_codecs(store)
            itemsize = case.np_dtype.itemsize
            if normalize_codecs(codecs_json, itemsize) != normalize_codecs(case.codecs, itemsize):
                raise PeerError(
                    f"{lib} {case.name}: wrote codecs {json.dumps(codecs_json)}, "
                    f"asked for {json.dumps(case.codecs)}"
                )
            if keys_json["name"] != case.keys["name"] or keys_json.get("configuration", {}).get(
                "separator", "/" if case.keys["name"] == "default" else "."
            ) != case.keys["configuration"]["separator"]:
                raise PeerError(f"{lib} {case.name}: wrote chunk_key_encoding {keys_json}")
            absent = Layout(case, p).check(store)
            others = {
                other: cross_read(other, case, store, p.expected)
                for other in LIBS
                if other != lib and other in case.libs
            }
            with open(os.path.join(base, "data.bin"), "wb") as f:
                f.write(le_bytes(data))
            write_json(
                os.path.join(base, "meta.json"),
                {
                    "lib": lib,
                    "case": case.name,
                    "family": case.family,
                    "dtype": case.dtype,
                    "shape": list(case.shape),
                    "chunks": list(case.chunks),
                    "inner": case.inner,
                    "cell": list(case.cell),
                    "fill": fill_to_json(fill_from_json(case.fill, case.np_dtype)),
                    "dimension_names": None,
                    "endian": case.endian,
                    "codecs": summarize(codecs_json),
                    "codecs_json": codecs_json,
                    "chunk_key_encoding": keys_json,
                    "data": case.data,
                    "absent": absent,
                    "written_by": list(case.libs),
                    "not_written_by": case.not_written_by,
                    "cross_read": others,
                },
            )
            folders.append(folder)
    write_json(os.path.join(outdir, "cases.json"), folders)
    write_json(os.path.join(outdir, "skipped.json"), skipped)
    print(f"wrote {len(folders)} arrays to {outdir} in {time.monotonic() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("write-cases", help="write the Zarr v3 codec case matrix")
    p.add_argument("outdir")
    p.add_argument("--only", help="write only cases whose name matches this regex")
    args = ap.parse_args(argv)
    return run_reporting(
        "v3_codec_cases.py", args.cmd, lambda: cmd_write_cases(args.outdir, args.only)
    )


if __name__ == "__main__":
    sys.exit(main())
