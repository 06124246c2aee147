#!/usr/bin/env python3
"""Time tensorstore, zarr-python and zarr-python with the zarrs codec pipeline
on the cases of the tessera benchmark.

The case list comes from bench/run.ts as JSON:

    {"stores": {"<store>": "<path of a Zarr v3 array>", ...},
     "cases": {"<name>": {"reads": [<selection>, ...]}, ...},
     "readers": ["tensorstore", "zarr-python", "zarr-python+zarrs"]}

where a selection holds one entry per dimension: an integer (an index, which
drops the dimension) or [start, stop]. Every reader opens every store.

Each read is timed on its own with time.perf_counter, from the call to the
moment a NumPy array holding the result exists; interpreter start-up, imports
and opening the arrays are not timed. Nothing but JSON is written to stdout.

Two modes:

  serve            Read the case list as the first line of stdin, open the
                   readers and answer {"ready": ...}; then answer one JSON line
                   per command line:
                     {"op": "run", "reader": "tensorstore", "store": "zstd",
                      "case": "crops", "check": false, "limit": null}
                   -> {"ms": [<one per read>], "checksums": [...], "shapes": [...]}
                   (checksums and shapes only when "check" is true; "limit"
                   reads only the first reads of the case), and
                     {"op": "quit"}.
                   bench/run.ts uses this to interleave the peers with the
                   readers in its own process.
  run CASES.json   Standalone: a check pass, then --rounds rounds over every
                   store, case and reader, and one JSON document on stdout.
  blosc-copy SRC DST
                   Writes DST, a copy of the sharded Zarr v3 array SRC with the
                   same shard and inner chunk shapes, its inner chunks
                   compressed with blosc (lz4, byte shuffle, typesize = the
                   element size, clevel 5 unless --clevel), with tensorstore.

zarr-python+zarrs needs the `zarrs` package (zarrs-python); bench/run.ts
installs it next to .venv and puts it on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

READERS = ("tensorstore", "zarr-python", "zarr-python+zarrs")
CHECK_MOD = 251  # must match bench/run.ts
CHECK_BLOCK = CHECK_MOD * 8192


def checksum(a: np.ndarray) -> list[int]:
    """[sum of elements, sum of element * (flat C-order index % 251 + 1)]."""
    flat = np.ascontiguousarray(a).reshape(-1)
    weights = np.arange(CHECK_BLOCK, dtype=np.int64) % CHECK_MOD + 1
    s1 = 0
    s2 = 0
    for start in range(0, flat.size, CHECK_BLOCK):
        block = flat[start : start + CHECK_BLOCK].astype(np.int64)
        s1 += int(block.sum())
        s2 += int(block @ weights[: block.size])
    return [s1, s2]


def to_index(sel: list[Any]) -> tuple[Any, ...]:
    return tuple(s if isinstance(s, int) else slice(s[0], s[1]) for s in sel)


def open_tensorstore(store: str) -> Callable[[tuple[Any, ...]], np.ndarray]:
    import tensorstore as ts

    arr = ts.open(
        {
            "driver": "zarr3",
            "kvstore": {"driver": "file", "path": store.rstrip("/") + "/"},
            "open": True,
        },
        read=True,
    ).result()
    return lambda index: arr[index].read().result()


def open_zarr(store: str) -> Callable[[tuple[Any, ...]], np.ndarray]:
    import zarr

    arr = zarr.open_array(store=store, mode="r", zarr_format=3)
    pipeline = type(arr._async_array.codec_pipeline).__name__
    if pipeline != "BatchedCodecPipeline":
        raise RuntimeError(f"zarr-python opened {store} with {pipeline}, not its default pipeline")
    return lambda index: np.asarray(arr[index])


ZARRS_CONFIG = {
    "codec_pipeline.path": "zarrs.ZarrsCodecPipeline",
    # Fail instead of falling back to zarr-python's own pipeline.
    "codec_pipeline.strict": True,
}


def open_zarr_zarrs(store: str) -> Callable[[tuple[Any, ...]], np.ndarray]:
    """zarr-python with zarrs-python's codec pipeline: the pipeline is chosen
    when the array is opened, so only this array uses it."""
    import zarr
    import zarrs  # noqa: F401  (the pipeline class is imported by path)

    with zarr.config.set(ZARRS_CONFIG):
        arr = zarr.open_array(store=store, mode="r", zarr_format=3)
    pipeline = arr._async_array.codec_pipeline
    if type(pipeline).__name__ != "ZarrsCodecPipeline" or getattr(pipeline, "impl", None) is None:
        raise RuntimeError(f"zarrs codec pipeline not in use for {store} ({pipeline!r:.200})")
    return lambda index: np.asarray(arr[index])


OPENERS = {
    "tensorstore": open_tensorstore,
    "zarr-python": open_zarr,
    "zarr-python+zarrs": open_zarr_zarrs,
}


def info() -> dict[str, Any]:
    cores = os.cpu_count() or 1
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = cores
    versions = {}
    for package in ("tensorstore", "zarr", "numpy", "numcodecs", "zarrs"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    import zarr

    concurrency = zarr.config.get("async.concurrency")
    max_workers = zarr.config.get("threading.max_workers")
    pool = max_workers if max_workers is not None else min(32, affinity + 4)
    return {
        "python": platform.python_version(),
        "versions": versions,
        "cpu_count": cores,
        "threads": {
            "tensorstore": {
                "threads": affinity,
                "how": "default context: data_copy_concurrency is 'shared', one thread per "
                f"available core ({affinity} here), for decoding and copying; file reads on "
                "the shared file_io_concurrency pool; no chunk cache (cache_pool 0 bytes)",
            },
            "zarr-python": {
                "threads": pool,
                "how": "asyncio event loop on zarr's I/O thread with "
                f"async.concurrency={concurrency}; decoding and file reads through asyncio.to_thread on the default "
                f"executor (threading.max_workers={max_workers}: min(32, cores + 4) = {pool} "
                "threads)",
            },
            "zarr-python+zarrs": {
                "threads": max_workers if max_workers is not None else affinity,
                "how": "zarr-python's indexing and event loop; each read's chunks are fetched, "
                "decoded and copied into the output by zarrs (Rust) in one asyncio.to_thread "
                "call, on a rayon pool of threading.max_workers threads "
                f"({max_workers}: rayon's default, one per core = {affinity}); "
                "codec_pipeline.strict=True (no fallback), other zarrs-python options default "
                "(checksums validated, no direct I/O)",
            },
        },
    }


class Peers:
    def __init__(self, spec: dict[str, Any], readers: tuple[str, ...]) -> None:
        self.cases = {
            name: [to_index(sel) for sel in case["reads"]]
            for name, case in spec["cases"].items()
        }
        self.stores: dict[str, str] = spec["stores"]
        self.readers: dict[tuple[str, str], Callable[[tuple[Any, ...]], np.ndarray]] = {}
        self.open_ms: dict[str, dict[str, float]] = {}
        self.open_errors: dict[str, dict[str, str]] = {}
        for name in readers:
            for store, path in self.stores.items():
                started = time.perf_counter()
                try:
                    self.readers[(name, store)] = OPENERS[name](path)
                except Exception as e:  # reported per reader and store; run.ts decides
                    self.open_errors.setdefault(name, {})[store] = f"opening {path}: {e!r}"
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                self.open_ms.setdefault(name, {})[store] = elapsed

    def run(
        self, reader: str, store: str, case: str, check: bool, limit: int | None = None
    ) -> dict[str, Any]:
        if (reader, store) not in self.readers:
            error = self.open_errors.get(reader, {}).get(store, "not opened")
            raise RuntimeError(f"{reader} has no array for {store}: {error}")
        read = self.readers[(reader, store)]
        ms: list[float] = []
        checksums: list[list[int]] = []
        shapes: list[list[int]] = []
        for index in self.cases[case][:limit]:
            started = time.perf_counter()
            data = read(index)
            ms.append((time.perf_counter() - started) * 1000)
            if check:
                checksums.append(checksum(data))
                shapes.append(list(data.shape))
            del data
        out: dict[str, Any] = {"ms": ms}
        if check:
            out["checksums"] = checksums
            out["shapes"] = shapes
        return out


def emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve() -> int:
    line = sys.stdin.readline()
    if not line:
        return 1
    spec = json.loads(line)
    try:
        peers = Peers(spec, tuple(spec.get("readers", READERS)))
    except Exception as e:  # reported to run.ts, which fails the run
        emit({"error": f"opening {spec['store']}: {e!r}", "trace": traceback.format_exc()})
        return 1
    emit({"ready": True, "open_ms": peers.open_ms, "open_errors": peers.open_errors, **info()})
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        if command.get("op") == "quit":
            break
        try:
            emit(
                peers.run(
                    command["reader"],
                    command["store"],
                    command["case"],
                    bool(command.get("check")),
                    command.get("limit"),
                )
            )
        except Exception as e:
            where = f"{command.get('store')}/{command.get('case')}"
            emit(
                {
                    "error": f"{command.get('reader')} on {where}: {e!r}",
                    "trace": traceback.format_exc(),
                }
            )
    return 0


def standalone(path: str, rounds: int, readers: tuple[str, ...]) -> int:
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    peers = Peers(spec, readers)
    result: dict[str, Any] = {
        "open_ms": peers.open_ms,
        "open_errors": peers.open_errors,
        **info(),
        "rounds": rounds,
        "readers": {},
    }
    live = [(r, s) for r in readers for s in peers.stores if (r, s) in peers.readers]
    for reader, store in live:
        result["readers"].setdefault(reader, {})[store] = {
            case: {"check": peers.run(reader, store, case, True), "rounds": []}
            for case in peers.cases
        }
    for r in range(rounds):
        for store in peers.stores:
            for case in peers.cases:
                order = readers[r % len(readers) :] + readers[: r % len(readers)]
                for reader in order:
                    if (reader, store) in peers.readers:
                        ms = peers.run(reader, store, case, False)["ms"]
                        result["readers"][reader][store][case]["rounds"].append(ms)
    emit(result)
    return 0


def blosc_copy(src: str, dst: str, clevel: int, cname: str) -> int:
    """Copies a sharded Zarr v3 array, recompressing its inner chunks with blosc."""
    import tensorstore as ts

    with open(os.path.join(src, "zarr.json"), encoding="utf-8") as f:
        meta = json.load(f)
    (sharding,) = meta["codecs"]
    if sharding["name"] != "sharding_indexed":
        raise SystemExit(f"{src}: not a sharded array")
    typesize = np.dtype(meta["data_type"]).itemsize
    config = sharding["configuration"]
    metadata = {
        **{k: v for k, v in meta.items() if k not in ("codecs", "attributes")},
        "codecs": [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": config["chunk_shape"],
                    "codecs": [
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        {
                            "name": "blosc",
                            "configuration": {
                                "cname": cname,
                                "clevel": clevel,
                                "shuffle": "shuffle",
                                "typesize": typesize,
                                "blocksize": 0,
                            },
                        },
                    ],
                    "index_codecs": config["index_codecs"],
                    "index_location": config.get("index_location", "end"),
                },
            }
        ],
    }
    source = ts.open(
        {"driver": "zarr3", "kvstore": {"driver": "file", "path": src.rstrip("/") + "/"}},
        read=True,
    ).result()
    target = ts.open(
        {
            "driver": "zarr3",
            "kvstore": {"driver": "file", "path": dst.rstrip("/") + "/"},
            "metadata": metadata,
        },
        create=True,
        delete_existing=True,
    ).result()
    # One slab of whole shards at a time along the first dimension.
    step = meta["chunk_grid"]["configuration"]["chunk_shape"][0]
    for start in range(0, source.shape[0], step):
        stop = min(start + step, source.shape[0])
        target[start:stop].write(source[start:stop].read().result()).result()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("serve", help="answer commands from bench/run.ts on stdin")
    run = sub.add_parser("run", help="time every case and print one JSON document")
    run.add_argument("cases", help="case list (JSON)")
    run.add_argument("--rounds", type=int, default=3)
    run.add_argument("--readers", default=",".join(READERS))
    copy = sub.add_parser("blosc-copy", help="copy a sharded array with blosc inner chunks")
    copy.add_argument("src")
    copy.add_argument("dst")
    copy.add_argument("--clevel", type=int, default=5)
    copy.add_argument("--cname", default="lz4")
    args = parser.parse_args()
    if args.mode == "serve":
        return serve()
    if args.mode == "blosc-copy":
        return blosc_copy(args.src, args.dst, args.clevel, args.cname)
    readers = tuple(r for r in args.readers.split(",") if r)
    unknown = [r for r in readers if r not in OPENERS]
    if unknown:
        parser.error(f"unknown readers {unknown}; known: {list(OPENERS)}")
    return standalone(args.cases, args.rounds, readers)


if __name__ == "__main__":
    sys.exit(main())
