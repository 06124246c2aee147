"""tensorstore side of the pipeline benchmark (bench/pipeline.ts).

    pipeline_tensorstore.py CASES.json

CASES.json: {"stores": [path, ...], "sample": [dz, dy, dx], "rounds": n,
"batches": [[[store index, [z, y, x]], ...], ...]}. Each store is opened once
(zarr3 driver, file kvstore, default context: no chunk cache) as a float32
view (`ts.cast`). A batch is read by issuing every sample's read at once
(`view[box].read()`), then waiting for each future and copying the result
into its slot of a preallocated [n, dz, dy, dx] float32 array. The first
batch is read once untimed; its float64 sum and the sums of every sample in
it are reported for comparison with tessera. Then `rounds` timed passes over
all batches; prints one JSON document: per-round and per-batch times (ms,
time.perf_counter), versions and threads.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import time

import numpy as np
import tensorstore as ts


def main(path: str) -> int:
    with open(path) as f:
        cases = json.load(f)
    dz, dy, dx = cases["sample"]
    views = [
        ts.cast(
            ts.open(
                {"driver": "zarr3", "kvstore": {"driver": "file", "path": p.rstrip("/") + "/"}},
                open=True,
                read=True,
            ).result(),
            ts.float32,
        )
        for p in cases["stores"]
    ]
    batches = cases["batches"]
    n = len(batches[0])
    out = np.empty((n, dz, dy, dx), dtype=np.float32)

    def read_batch(batch) -> None:
        futures = [
            views[s][z : z + dz, y : y + dy, x : x + dx].read() for s, (z, y, x) in batch
        ]
        for i, fut in enumerate(futures):
            out[i] = fut.result()

    read_batch(batches[0])
    check = {
        "sum": float(out.sum(dtype=np.float64)),
        "sample_sums": [float(out[i].sum(dtype=np.float64)) for i in range(n)],
    }
    rounds = []
    for _ in range(cases["rounds"]):
        per_batch = []
        for batch in batches:
            started = time.perf_counter()
            read_batch(batch)
            per_batch.append((time.perf_counter() - started) * 1000)
        rounds.append(per_batch)
    print(
        json.dumps(
            {
                "check": check,
                "rounds": rounds,
                "version": importlib.metadata.version("tensorstore"),
                "numpy": np.__version__,
                "python": platform.python_version(),
                "threads": os.cpu_count(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
