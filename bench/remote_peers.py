"""Python readers of the remote benchmark (bench/remote.ts): tensorstore and
zarr-python reading one Zarr v3 array from an S3 endpoint.

    remote_peers.py serve READER     (READER: tensorstore | zarr-python)

Reads one JSON line on stdin first: {"endpoint", "bucket", "key" (the
array's key prefix in the bucket), "region", "size": [dz, dy, dx],
"crops": [[z, y, x], ...]}; credentials come from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY. It opens the array once and answers {"ready": ...}.
Then one command per line:

- "check": reads every crop once and answers the sha-256 of each crop's
  bytes (C order, little-endian uint16);
- "run": reads every crop, one after another, and answers each crop's time
  in ms (time.perf_counter, from the call until a NumPy array holds it).

Readers, with their defaults:

- tensorstore: zarr3 driver on the s3 kvstore (endpoint, region,
  credentials from the environment); default context: s3_request_concurrency
  and data_copy_concurrency at their defaults, no cache_pool (so shard
  indexes are read again for every crop).
- zarr-python: zarr.open_array on an FsspecStore (s3fs, endpoint_url,
  region); zarr's default async.concurrency and codec pipeline.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import time

import numpy as np


def open_tensorstore(cfg):
    import tensorstore as ts

    spec = {
        "driver": "zarr3",
        "kvstore": {
            "driver": "s3",
            "bucket": cfg["bucket"],
            "path": cfg["key"].rstrip("/") + "/",
            "endpoint": cfg["endpoint"],
            "aws_region": cfg["region"],
            "aws_credentials": {"type": "environment"},
        },
    }
    arr = ts.open(spec, open=True, read=True).result()

    def read(z, y, x, dz, dy, dx):
        return arr[z : z + dz, y : y + dy, x : x + dx].read().result()

    return read, {"version": importlib.metadata.version("tensorstore")}


def open_zarr(cfg):
    import zarr
    from zarr.storage import FsspecStore

    store = FsspecStore.from_url(
        f"s3://{cfg['bucket']}/{cfg['key'].strip('/')}",
        storage_options={
            "endpoint_url": cfg["endpoint"],
            "key": os.environ["AWS_ACCESS_KEY_ID"],
            "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
            "client_kwargs": {"region_name": cfg["region"]},
        },
        read_only=True,
    )
    arr = zarr.open_array(store=store, mode="r")

    def read(z, y, x, dz, dy, dx):
        return np.asarray(arr[z : z + dz, y : y + dy, x : x + dx])

    return read, {
        "version": importlib.metadata.version("zarr"),
        "s3fs": importlib.metadata.version("s3fs"),
        "async_concurrency": zarr.config.get("async.concurrency"),
    }


def main(reader: str) -> int:
    cfg = json.loads(sys.stdin.readline())
    opener = {"tensorstore": open_tensorstore, "zarr-python": open_zarr}[reader]
    read, info = opener(cfg)
    dz, dy, dx = cfg["size"]
    crops = cfg["crops"]
    print(json.dumps({"ready": info}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "check":
            digests = []
            for z, y, x in crops:
                out = read(z, y, x, dz, dy, dx)
                assert out.shape == (dz, dy, dx), out.shape
                digests.append(hashlib.sha256(out.astype("<u2", copy=False).tobytes()).hexdigest())
            print(json.dumps({"sha256": digests}), flush=True)
        elif cmd == "run":
            ms = []
            for z, y, x in crops:
                started = time.perf_counter()
                read(z, y, x, dz, dy, dx)
                ms.append((time.perf_counter() - started) * 1000)
            print(json.dumps({"ms": ms}), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "serve" or sys.argv[2] not in ("tensorstore", "zarr-python"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[2]))
