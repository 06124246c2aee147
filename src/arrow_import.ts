/**
 * Arrow images into tensors without a copy, through the Arrow C Data
 * Interface: an `arrow.fixed_shape_tensor` column, or the layouts Pillow
 * exports (a fixed-size list per pixel, or one value per pixel-channel).
 * @module
 */

import { dtypeFromCode } from "./dtype.ts";
import { errorFromStatus, InvalidArgument } from "./errors.ts";
import { native } from "./ffi.ts";
import { NativeBuffer } from "./native.ts";
import { TensorView } from "./tensor_view.ts";

/**
 * Options of {@link fromArrowC}.
 *
 * @example
 * ```ts
 * import { fromArrowC } from "@tessera/tessera";
 * declare const schema: bigint, array: bigint; // addresses given to pyarrow's _export_to_c
 * const { view } = fromArrowC(schema, array, { shape: [480, 640], bands: 3 });
 * ```
 */
export interface ArrowImportOptions {
  /**
   * Image height and width, for arrays that are not fixed-shape tensors
   * (Pillow's layouts: one row per pixel, as a fixed-size list of bands or
   * a single value): the view is then `[height, width, bands]` ("YXC"), or
   * `[height, width]` ("YX") for a primitive array without `bands`.
   */
  shape?: [number, number];
  /** Bands per pixel of a primitive array (one value per pixel-channel). */
  bands?: number;
}

/**
 * A view imported from Arrow, with the field's band names when it has them.
 *
 * @example
 * ```ts
 * import { type ArrowImport, fromArrowC } from "@tessera/tessera";
 * declare const schema: bigint, array: bigint;
 * const imported: ArrowImport = fromArrowC(schema, array, { shape: [480, 640] });
 * console.log(imported.bands, imported.view.shape); // e.g. ["R", "G", "B", "A"], [480, 640, 4]
 * ```
 */
export interface ArrowImport {
  /** The tensor, over the array's own memory. */
  view: TensorView;
  /** Band names: from `tessera:channels` metadata, or one letter per band of Pillow's list child name ("RGBA"). */
  bands?: string[];
  /** Field name and metadata. */
  field: { name: string; metadata: Record<string, string> };
}

function bandNames(metadata: Record<string, string>): string[] | undefined {
  for (const key of ["tessera:channels"]) {
    const raw = metadata[key];
    if (raw === undefined) continue;
    try {
      const parsed = JSON.parse(raw);
      const list = Array.isArray(parsed) ? parsed : parsed?.bands;
      if (Array.isArray(list) && list.every((b) => typeof b === "string")) return list;
    } catch {
      // not JSON: no names
    }
  }
  return undefined;
}

/**
 * Imports an Arrow array exported through the C Data Interface (the
 * addresses of an `ArrowSchema` and an `ArrowArray`, e.g. from pyarrow's
 * `_export_to_c` or Pillow via pyarrow) as a view of its memory, taking
 * ownership of both structs (the array is released with the last view).
 * A fixed-shape-tensor column becomes `[rows, ...shape]` with its
 * `dim_names` (lower-cased; the row axis "n" is left out for one row) in
 * logical order (its `permutation` applied, zero copy); other arrays need
 * `options.shape`.
 *
 * @example
 * ```ts
 * import { fromArrowC } from "@tessera/tessera";
 * declare const schema: bigint, array: bigint; // an array exported by pyarrow
 * using view = fromArrowC(schema, array).view; // zero copy: the Arrow buffers themselves
 * console.log(view.shape, view.dtype);
 * ```
 */
export function fromArrowC(
  schemaAddress: bigint | number,
  arrayAddress: bigint | number,
  options: ArrowImportOptions = {},
): ArrowImport {
  const schema = Deno.UnsafePointer.create(BigInt(schemaAddress));
  const array = Deno.UnsafePointer.create(BigInt(arrayAddress));
  if (schema === null || array === null) {
    throw new InvalidArgument("fromArrowC: schema and array addresses must not be 0");
  }
  const slot = new BigUint64Array(1);
  const info = new BigInt64Array(4);
  const text = new Uint8Array(1 << 16);
  const err = new Uint8Array(4096);
  const status = native().tessera_arrow_import(
    schema,
    array,
    slot,
    info,
    text,
    BigInt(text.length),
    err,
    BigInt(err.length),
  );
  if (status !== 0) {
    throw errorFromStatus(status, new TextDecoder().decode(err.subarray(0, err.indexOf(0))));
  }
  const buffer = new NativeBuffer(Deno.UnsafePointer.create(slot[0])!);
  const [code, rows, listSize, textLength] = Array.from(info, Number);
  const dtype = dtypeFromCode(code);
  const parts = new TextDecoder().decode(text.subarray(0, Math.min(textLength, text.length)))
    .split("\0");
  const metadata: Record<string, string> = {};
  for (let i = 2; i + 1 < parts.length; i += 2) metadata[parts[i]] = parts[i + 1];
  const field = { name: parts[0], metadata };
  // Pillow names the list child after the image mode ("RGBA", "CMYK"): one letter per band.
  const child = parts[1] ?? "";
  const bands = bandNames(metadata) ??
    (child.length === listSize && listSize > 1 && /^[A-Z]+$/.test(child) ? [...child] : undefined);
  const result = (view: TensorView): ArrowImport => ({ view, field, ...(bands ? { bands } : {}) });
  try {
    if (metadata["ARROW:extension:name"] === "arrow.fixed_shape_tensor") {
      const ext = JSON.parse(metadata["ARROW:extension:metadata"] ?? "{}");
      const shape: number[] = ext.shape ?? [];
      if (shape.reduce((a, b) => a * b, 1) !== listSize) {
        throw new InvalidArgument(
          `fromArrowC: tensor shape [${shape}] does not hold ${listSize} values per row`,
        );
      }
      const names: string[] = (ext.dim_names ?? shape.map((_, i) => `d${i}`)).map((n: string) =>
        n.toLowerCase()
      );
      const one = rows === 1;
      const physical = new TensorView(
        buffer,
        dtype,
        one ? shape : [rows, ...shape],
        one ? names : ["n", ...names],
      );
      const perm: number[] | undefined = ext.permutation;
      if (!perm) return result(physical);
      const logical = perm.map((p) => names[p]);
      const spec = (one ? logical : ["n", ...logical]).join("").toUpperCase();
      const view = physical.withLayout(spec);
      physical[Symbol.dispose]();
      return result(view);
    }
    const [height, width] = options.shape ?? [];
    if (height === undefined || width === undefined) {
      throw new InvalidArgument(
        "fromArrowC: an array that is not a fixed-shape tensor needs options.shape [height, width]",
      );
    }
    const per = listSize > 1 || options.bands === undefined ? listSize : options.bands;
    const pixels = rows * listSize / per;
    if (!Number.isInteger(pixels) || pixels !== height * width) {
      throw new InvalidArgument(
        `fromArrowC: ${rows * listSize} values are not ${height}×${width} pixels of ${per} bands`,
      );
    }
    const bandsAxis = listSize > 1 || options.bands !== undefined;
    return result(
      new TensorView(
        buffer,
        dtype,
        bandsAxis ? [height, width, per] : [height, width],
        bandsAxis ? ["y", "x", "c"] : ["y", "x"],
      ),
    );
  } catch (e) {
    buffer[Symbol.dispose]();
    throw e;
  }
}
