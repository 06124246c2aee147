"""Runs a notebook headless with nbclient and reports what each cell showed.

    python run_notebook.py NOTEBOOK KERNEL_NAME WORKDIR OUT_NOTEBOOK

nbclient starts the kernel (KERNEL_NAME, a kernelspec installed by
`deno jupyter --install --name …`), sends each code cell, waits for its
execute_reply and for the kernel to go idle, and raises on a cell error.
The executed notebook is written to OUT_NOTEBOOK. Prints JSON: per code
cell, its output types, the MIME types of its display data, and any error.
"""

import json
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main():
    path, kernel, workdir, out = sys.argv[1:5]
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=600,
        startup_timeout=120,
        resources={"metadata": {"path": workdir}},
    )
    failure = None
    try:
        client.execute()
    except CellExecutionError as e:
        failure = str(e)
    nbformat.write(nb, out)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        cells.append(
            {
                "execution_count": cell.get("execution_count"),
                "output_types": [o["output_type"] for o in outputs],
                "mime": sorted({m for o in outputs for m in o.get("data", {})}),
                "errors": [f"{o.get('ename')}: {o.get('evalue')}" for o in outputs if o["output_type"] == "error"],
            }
        )
    print(json.dumps({"failure": failure, "cells": cells}))


if __name__ == "__main__":
    main()
