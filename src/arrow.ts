/**
 * Arrow export of tensor views as `arrow.fixed_shape_tensor` extension
 * arrays: an apache-arrow JS table over the view's memory, and the Arrow C
 * Data Interface for consumers in the same process (pyarrow, arrow-rs, …).
 * Neither copies: a view whose strides are a permutation of C order is
 * described by the extension's `permutation`.
 * @module
 */

// A full specifier, so that scripts and notebooks importing tessera by path need no import map.
// deno-lint-ignore no-import-prefix
import * as arrow from "npm:apache-arrow@21.2.0";
import { type DType, dtypeCode, typedArray } from "./dtype.ts";
import { DtypeMismatch, InvalidArgument } from "./errors.ts";
import { native } from "./ffi.ts";
import type { NativeBuffer } from "./native.ts";

/**
 * Options of `toArrow` / `toArrowC`.
 *
 * @example
 * ```ts
 * import { type ArrowOptions, open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * const options: ArrowOptions = { channels: img.channels, rowAxis: "c" };
 * using plane = await img.scan().select({ t: 0, z: 0 }).collect();
 * const table = plane.toArrow(options); // one row per channel
 * ```
 */
export interface ArrowOptions {
  /** An axis whose entries become the array's rows (it must be the outermost in memory); default: one row. */
  rowAxis?: string;
  /** Field name (default "tensor"). */
  name?: string;
  /** Channel names, stored in the field metadata as `tessera:channels`. */
  channels?: readonly string[];
}

/**
 * What a view looks like in Arrow terms.
 *
 * @example
 * ```ts
 * import type { ArrowTensorLayout } from "@tessera/tessera";
 * // How a YXC view of a CYX buffer (3 × 1024 × 1024) is described in its Arrow field:
 * const layout: ArrowTensorLayout = {
 *   rows: 1,
 *   shape: [3, 1024, 1024],
 *   dimNames: ["c", "y", "x"],
 *   permutation: [1, 2, 0],
 *   listSize: 3 * 1024 * 1024,
 *   metadata: new Map([["ARROW:extension:name", "arrow.fixed_shape_tensor"]]),
 * };
 * ```
 */
export interface ArrowTensorLayout {
  /** Number of rows (tensors). */
  rows: number;
  /** Physical (row-major) shape of one tensor. */
  shape: number[];
  /** Axis names in physical order. */
  dimNames: string[];
  /** For each logical axis, its index among the physical ones (omitted when identity). */
  permutation?: number[];
  /** Elements per tensor. */
  listSize: number;
  /** Field metadata, extension name and metadata included. */
  metadata: Map<string, string>;
}

/** The tensor views the exporters need. */
interface ViewParts {
  dtype: DType;
  shape: readonly number[];
  strides: readonly number[];
  axes: readonly string[];
}

/** Describes `view` as fixed-shape tensors, or throws when its memory is not a permuted C-order block. */
export function arrowLayout(view: ViewParts, options: ArrowOptions = {}): ArrowTensorLayout {
  if (view.dtype === "bool" || view.dtype === "bfloat16") {
    throw new DtypeMismatch(
      `${view.dtype} has no zero-copy Arrow type; cast it first (e.g. to uint8 or float32)`,
    );
  }
  const order = view.axes.map((_, i) => i).sort((a, b) => view.strides[b] - view.strides[a]);
  let expected = 1;
  for (const i of [...order].reverse()) {
    if (view.shape[i] === 1) continue;
    if (view.strides[i] !== expected) {
      throw new InvalidArgument(
        `view with strides [${view.strides}] is not a permutation of C order; call contiguous() before toArrow()`,
      );
    }
    expected *= view.shape[i];
  }
  let tensorAxes = order;
  let rows = 1;
  if (options.rowAxis !== undefined) {
    const r = view.axes.indexOf(options.rowAxis.toLowerCase());
    if (r < 0) {
      throw new InvalidArgument(
        `rowAxis "${options.rowAxis}" is not an axis of the view (${view.axes})`,
      );
    }
    if (order[0] !== r && view.shape[order[0]] !== 1) {
      throw new InvalidArgument(`rowAxis "${options.rowAxis}" is not the outermost axis in memory`);
    }
    rows = view.shape[r];
    tensorAxes = order.filter((i) => i !== r);
  }
  const logical = view.axes.map((_, i) => i).filter((i) => tensorAxes.includes(i));
  const permutation = logical.map((i) => tensorAxes.indexOf(i));
  const identity = permutation.every((p, k) => p === k);
  const shape = tensorAxes.map((i) => view.shape[i]);
  const dimNames = tensorAxes.map((i) => view.axes[i]);
  const extension = { shape, dim_names: dimNames, ...(identity ? {} : { permutation }) };
  const metadata = new Map([
    ["ARROW:extension:name", "arrow.fixed_shape_tensor"],
    ["ARROW:extension:metadata", JSON.stringify(extension)],
  ]);
  if (options.channels) metadata.set("tessera:channels", JSON.stringify(options.channels));
  return {
    rows,
    shape,
    dimNames,
    ...(identity ? {} : { permutation }),
    listSize: shape.reduce((a, b) => a * b, 1),
    metadata,
  };
}

const ARROW_TYPES: Partial<Record<DType, () => arrow.DataType>> = {
  int8: () => new arrow.Int8(),
  int16: () => new arrow.Int16(),
  int32: () => new arrow.Int32(),
  int64: () => new arrow.Int64(),
  uint8: () => new arrow.Uint8(),
  uint16: () => new arrow.Uint16(),
  uint32: () => new arrow.Uint32(),
  uint64: () => new arrow.Uint64(),
  float16: () => new arrow.Float16(),
  float32: () => new arrow.Float32(),
  float64: () => new arrow.Float64(),
};

/**
 * An apache-arrow table with one fixed-shape-tensor column over the view's
 * memory. `buffer` is a reference the table keeps (the memory is freed when
 * the table is garbage collected); `offset` is the view's first element.
 */
export function arrowTable(
  view: ViewParts,
  buffer: NativeBuffer,
  offset: number,
  options: ArrowOptions = {},
): arrow.Table {
  const layout = arrowLayout(view, options);
  const valueType = ARROW_TYPES[view.dtype]!();
  const values = typedArray(
    view.dtype,
    buffer.arrayBuffer,
    offset * valueType.ArrayType.BYTES_PER_ELEMENT,
    layout.rows * layout.listSize,
  );
  // makeData's overloads are per type; the value type is only known at run time.
  const makeChild = arrow.makeData as (
    props: { type: arrow.DataType; data: unknown },
  ) => arrow.Data;
  const child = makeChild({ type: valueType, data: values });
  const type = new arrow.FixedSizeList(layout.listSize, new arrow.Field("item", valueType, false));
  const data = arrow.makeData({ type, length: layout.rows, nullCount: 0, child });
  const field = new arrow.Field(options.name ?? "tensor", type, false, layout.metadata);
  return new arrow.Table(new arrow.Schema([field]), { [field.name]: arrow.makeVector(data) });
}

/**
 * Arrow C Data Interface structs of an export; the consumer moves them out and calls their release callbacks.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * using plane = await img.scan().select({ t: 0, z: 0 }).collect();
 * using exported = plane.toArrowC();
 * console.log(exported.schemaAddress, exported.arrayAddress); // pass to pyarrow's _import_from_c
 * ```
 */
export class ArrowCExport implements Disposable {
  /** `struct ArrowSchema` (72 bytes). */
  readonly schema: Uint8Array<ArrayBuffer> = new Uint8Array(72);
  /** `struct ArrowArray` (80 bytes). */
  readonly array: Uint8Array<ArrayBuffer> = new Uint8Array(80);

  /** Address of the schema struct, for `pyarrow.Array._import_from_c(array, schema)`. */
  get schemaAddress(): bigint {
    return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.schema)));
  }

  /** Address of the array struct. */
  get arrayAddress(): bigint {
    return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.array)));
  }

  /** Releases whatever a consumer did not take (a released struct has a null `release`). */
  [Symbol.dispose](): void {
    for (const [struct, at] of [[this.schema, 56], [this.array, 64]] as const) {
      const release = new DataView(struct.buffer).getBigUint64(at, true);
      if (release === 0n) continue;
      const fn = new Deno.UnsafeFnPointer(
        Deno.UnsafePointer.create(release)!,
        {
          parameters: ["buffer"],
          result: "void",
        } as const,
      );
      fn.call(struct);
    }
  }
}

/** Exports a view through the Arrow C Data Interface (zero copy). */
export function arrowC(
  view: ViewParts,
  buffer: NativeBuffer,
  offset: number,
  options: ArrowOptions = {},
): ArrowCExport {
  const layout = arrowLayout(view, options);
  const out = new ArrowCExport();
  const dims = BigInt64Array.from(
    [dtypeCode(view.dtype), offset, layout.rows, layout.listSize],
    BigInt,
  );
  const text = new TextEncoder().encode(
    [options.name ?? "tensor", ...[...layout.metadata].flat()].join("\0"),
  );
  const err = new Uint8Array(4096);
  const status = native().tessera_arrow_export(
    buffer.handle,
    dims,
    BigInt(dims.length),
    text,
    BigInt(text.length),
    out.schema,
    out.array,
    err,
    BigInt(err.length),
  );
  if (status !== 0) {
    const end = err.indexOf(0);
    throw new InvalidArgument(
      new TextDecoder().decode(err.subarray(0, end < 0 ? err.length : end)),
    );
  }
  return out;
}
