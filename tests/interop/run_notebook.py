"""Runs a notebook headless on a Jupyter kernel and reports what each cell showed.

    python run_notebook.py NOTEBOOK KERNEL_NAME WORKDIR OUT_NOTEBOOK

Starts the kernel KERNEL_NAME (a kernelspec installed by
`deno jupyter --install --name …`) in WORKDIR with jupyter_client, sends
each code cell in turn, waits for its execute_reply and for the kernel to
report idle, and stops at the first cell that fails. The Deno kernel
(2.9) now and then publishes a cell's execute_result just after its idle
status (seen about once in thirty cells), so outputs are also collected
for GRACE seconds after idle; nbclient stops listening at idle and would
lose them. The executed notebook is written to OUT_NOTEBOOK. Prints JSON:
per code cell its execution count, output types, the MIME types of its
display data, errors, and how many outputs came after idle.
"""

import json
import queue
import sys
import time

import nbformat
from jupyter_client.manager import KernelManager

TIMEOUT = 600.0
GRACE = 1.0


def run_cell(kc, source):
    msg_id = kc.execute(source, allow_stdin=False, stop_on_error=True)
    while True:
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    outputs, late, idle_at = [], 0, None
    while True:
        wait = TIMEOUT if idle_at is None else idle_at + GRACE - time.monotonic()
        if idle_at is not None and wait <= 0:
            break
        try:
            msg = kc.get_iopub_msg(timeout=wait)
        except queue.Empty:
            if idle_at is not None:
                break
            raise TimeoutError("kernel never went idle")
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            idle_at = time.monotonic()
        elif kind in ("execute_result", "display_data", "stream", "error"):
            outputs.append(nbformat.v4.output_from_msg(msg))
            late += idle_at is not None
    return reply["content"], outputs, late


def main():
    path, kernel, workdir, out = sys.argv[1:5]
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name=kernel)
    km.start_kernel(cwd=workdir)
    kc = km.client()
    kc.start_channels()
    report, failure = [], None
    try:
        kc.wait_for_ready(timeout=120)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            reply, outputs, late = run_cell(kc, cell.source)
            cell.outputs = outputs
            cell.execution_count = reply.get("execution_count")
            report.append(
                {
                    "execution_count": cell.execution_count,
                    "status": reply["status"],
                    "output_types": [o["output_type"] for o in outputs],
                    "mime": sorted({m for o in outputs for m in o.get("data", {})}),
                    "errors": [f"{o['ename']}: {o['evalue']}" for o in outputs if o["output_type"] == "error"],
                    "late_outputs": late,
                }
            )
            if reply["status"] != "ok":
                failure = f"cell {len(report)} failed: {reply.get('ename')}: {reply.get('evalue')}"
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    nbformat.write(nb, out)
    print(json.dumps({"failure": failure, "cells": report}))


if __name__ == "__main__":
    main()
