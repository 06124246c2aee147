/**
 * Parsing Zarr metadata JSON without losing 64-bit integer fill values.
 * @module
 */

import { StorageError } from "../errors.ts";

/**
 * Parses JSON. With `exactFill`, an integer `fill_value` of the top-level
 * object beyond 2^53 (which a float64 parse would round) becomes a bigint
 * read from its source text.
 */
export function parseMetadataJson(text: string, file: string, exactFill = false): unknown {
  function reviver(
    this: unknown,
    key: string,
    value: unknown,
    context?: { source?: string },
  ): unknown {
    if (
      key === "fill_value" && typeof value === "number" && !Number.isSafeInteger(value) &&
      typeof this === "object" && this !== null && "zarr_format" in this &&
      typeof context?.source === "string" && /^-?\d+$/.test(context.source)
    ) {
      return BigInt(context.source);
    }
    return value;
  }
  try {
    return exactFill
      ? JSON.parse(text, reviver as (this: unknown, key: string, value: unknown) => unknown)
      : JSON.parse(text);
  } catch (e) {
    throw new StorageError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * A JSON value for error messages. Unlike `JSON.stringify` it never throws
 * (bigints, cycles) and never returns `undefined`.
 */
export function describeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_, v) => typeof v === "bigint" ? `${v}` : v) ?? String(value);
  } catch {
    return String(value);
  }
}
