#!/usr/bin/env python3
"""Time tensorstore and zarr-python on the cases of the tessera benchmark.

The case list comes from bench/run.ts as JSON:

    {"store": "<path of the Zarr v3 array>",
     "cases": {"<name>": {"reads": [<selection>, ...]}, ...}}

where a selection holds one entry per dimension: an integer (an index, which
drops the dimension) or [start, stop].

Each read is timed on its own with time.perf_counter, from the call to the
moment a NumPy array holding the result exists; interpreter start-up, imports
and opening the arrays are not timed. Nothing but JSON is written to stdout.

Two modes:

  serve            Read the case list as the first line of stdin, open the
                   readers and answer {"ready": ...}; then answer one JSON line
                   per command line:
                     {"op": "run", "reader": "tensorstore", "case": "crops",
                      "check": false, "limit": null}
                   -> {"ms": [<one per read>], "checksums": [...], "shapes": [...]}
                   (checksums and shapes only when "check" is true; "limit"
                   reads only the first reads of the case), and
                     {"op": "quit"}.
                   bench/run.ts uses this to interleave the peers with the
                   readers in its own process.
  run CASES.json   Standalone: a check pass, then --rounds rounds over every
                   case and reader, and one JSON document on stdout.
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

READERS = ("tensorstore", "zarr-python")
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
    return lambda index: np.asarray(arr[index])


OPENERS = {"tensorstore": open_tensorstore, "zarr-python": open_zarr}


def info() -> dict[str, Any]:
    cores = os.cpu_count() or 1
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = cores
    versions = {}
    for package in ("tensorstore", "zarr", "numpy", "numcodecs"):
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
                f"async.concurrency={concurrency}; zstd decoding and file reads through asyncio.to_thread on the default "
                f"executor (threading.max_workers={max_workers}: min(32, cores + 4) = {pool} "
                "threads)",
            },
        },
    }


class Peers:
    def __init__(self, spec: dict[str, Any], readers: tuple[str, ...]) -> None:
        self.cases = {
            name: [to_index(sel) for sel in case["reads"]]
            for name, case in spec["cases"].items()
        }
        self.readers: dict[str, Callable[[tuple[Any, ...]], np.ndarray]] = {}
        self.open_ms: dict[str, float] = {}
        for name in readers:
            started = time.perf_counter()
            self.readers[name] = OPENERS[name](spec["store"])
            self.open_ms[name] = (time.perf_counter() - started) * 1000

    def run(
        self, reader: str, case: str, check: bool, limit: int | None = None
    ) -> dict[str, Any]:
        read = self.readers[reader]
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
    emit({"ready": True, "open_ms": peers.open_ms, **info()})
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
                    command["case"],
                    bool(command.get("check")),
                    command.get("limit"),
                )
            )
        except Exception as e:
            emit(
                {
                    "error": f"{command.get('reader')} on {command.get('case')}: {e!r}",
                    "trace": traceback.format_exc(),
                }
            )
    return 0


def standalone(path: str, rounds: int, readers: tuple[str, ...]) -> int:
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    peers = Peers(spec, readers)
    result: dict[str, Any] = {"open_ms": peers.open_ms, **info(), "rounds": rounds, "readers": {}}
    for reader in readers:
        result["readers"][reader] = {
            case: {"check": peers.run(reader, case, True), "rounds": []} for case in peers.cases
        }
    for r in range(rounds):
        for case in peers.cases:
            order = readers[r % len(readers) :] + readers[: r % len(readers)]
            for reader in order:
                ms = peers.run(reader, case, False)["ms"]
                result["readers"][reader][case]["rounds"].append(ms)
    emit(result)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("serve", help="answer commands from bench/run.ts on stdin")
    run = sub.add_parser("run", help="time every case and print one JSON document")
    run.add_argument("cases", help="case list (JSON)")
    run.add_argument("--rounds", type=int, default=3)
    run.add_argument("--readers", default=",".join(READERS))
    args = parser.parse_args()
    if args.mode == "serve":
        return serve()
    readers = tuple(r for r in args.readers.split(",") if r)
    unknown = [r for r in readers if r not in OPENERS]
    if unknown:
        parser.error(f"unknown readers {unknown}; known: {list(OPENERS)}")
    return standalone(args.cases, args.rounds, readers)


if __name__ == "__main__":
    sys.exit(main())
