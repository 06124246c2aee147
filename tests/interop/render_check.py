"""Independent check of tessera's PNG thumbnails (numpy + Pillow).

    python render_check.py SPEC_JSON

SPEC_JSON names the data (a Zarr array read with zarr-python, indexed by
"index": per axis null, an index or [start, stop]; or a raw little-endian file with "dtype" and "shape"), the axis
roles of the indexed array ("c_axis" or null, "y_axis", "x_axis"), the
render settings ("max_size", "percentiles", "colors" as RRGGBB, "windows"
with null for automatic) and the PNG to check. The expected image is
computed here from the definition: rows and columns sampled every step-th
pixel (step = ceil(max(h, w) / max_size)), every other axis but the channel
axis max-projected ignoring NaN, windows from numpy's linear percentiles of
the finite projected values, channels tinted and added, clipped, times 255,
rounded. Prints JSON: the PNG's size and mode, the largest difference per
pixel component, and the windows.
"""

import json
import sys

import numpy as np
from PIL import Image


def load(spec):
    if "zarr" in spec:
        import zarr

        arr = zarr.open_array(spec["zarr"], mode="r")
        # null: the whole axis; [start, stop]: a range; an integer: one index.
        index = tuple(slice(None) if i is None else slice(*i) if isinstance(i, list) else i for i in spec["index"])
        return np.asarray(arr[index])
    data = np.fromfile(spec["raw"], dtype=np.dtype(spec["dtype"]).newbyteorder("<"))
    return data.reshape(spec["shape"])


def expected(data, spec):
    data = data.astype(np.float64)
    c, y, x = spec["c_axis"], spec["y_axis"], spec["x_axis"]
    if c is None:
        data = data[np.newaxis]
        y, x = y + 1, x + 1
        c = 0
    rest = [d for d in range(data.ndim) if d not in (c, y, x)]
    data = np.transpose(data, [c, *rest, y, x])
    h, w = data.shape[-2:]
    step = -(-max(h, w) // spec["max_size"])
    data = data[..., ::step, ::step]
    stack = data.reshape(data.shape[0], -1, *data.shape[-2:])
    with np.errstate(invalid="ignore"):
        planes = np.fmax.reduce(stack, axis=1)  # NaN never wins
    rgb = np.zeros(planes.shape[1:] + (3,))
    windows = []
    lo_p, hi_p = spec["percentiles"]
    for i, plane in enumerate(planes):
        finite = plane[np.isfinite(plane)]
        window = spec["windows"][i] if spec.get("windows") else None
        if window is None:
            window = [float(np.percentile(finite, lo_p)), float(np.percentile(finite, hi_p))] if finite.size else [0.0, 0.0]
        lo, hi = window
        windows.append([lo, hi])
        with np.errstate(invalid="ignore", divide="ignore"):
            level = np.clip((plane - lo) / (hi - lo), 0, 1) if hi > lo else (plane > lo).astype(float)
        level = np.where(np.isnan(plane), 0.0, level)
        color = spec["colors"][i % len(spec["colors"])]
        rgb += level[..., None] * (np.array([int(color[k : k + 2], 16) for k in (0, 2, 4)]) / 255.0)
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8), windows


def main():
    spec = json.loads(sys.argv[1])
    want, windows = expected(load(spec), spec)
    img = Image.open(spec["png"])
    got = np.asarray(img.convert("RGB"))
    result = {"mode": img.mode, "width": img.width, "height": img.height, "windows": windows}
    if got.shape != want.shape:
        result["error"] = f"shape {got.shape} != expected {want.shape}"
    else:
        result["max_diff"] = int(np.abs(got.astype(int) - want.astype(int)).max())
        result["mean"] = float(got.mean())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
