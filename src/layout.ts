/**
 * Layout strings: which axes a tensor has, in which order. A layout names
 * axes by letter ("CZYX", "TZCYX", "CHW"; H and W alias Y and X), or by
 * comma-separated names for stores whose axes are not single letters
 * ("d0,d2,d1").
 * @module
 */

import { InvalidArgument } from "./errors.ts";

const ALIASES: Record<string, string> = { h: "y", w: "x" };

/** Splits a layout string into lower-case axis names (aliases resolved against `axes`). */
export function layoutAxes(spec: string, axes: readonly string[]): string[] {
  if (typeof spec !== "string" || spec.trim() === "") {
    throw new InvalidArgument(
      `layout ${JSON.stringify(spec)} must be a non-empty string such as "CZYX"`,
    );
  }
  const parts = spec.includes(",") ? spec.split(",").map((p) => p.trim()) : [...spec];
  return parts.map((p) => {
    const lower = p.toLowerCase();
    return axes.includes(lower) ? lower : ALIASES[lower] ?? lower;
  });
}

/**
 * Resolves a layout against the axes a tensor has: returns, for each layout
 * position, the index of the axis in `axes`. Every axis in `required` must
 * appear; others (size-1 axes) may be left out.
 */
export function resolveLayout(
  spec: string,
  axes: readonly string[],
  required: readonly string[],
  context: string,
): number[] {
  const names = layoutAxes(spec, axes);
  const seen = new Set<string>();
  const order = names.map((name) => {
    const index = axes.indexOf(name);
    if (index < 0) {
      throw new InvalidArgument(
        `layout "${spec}" names axis "${name}", which ${context} does not have (axes: ${
          axes.join(", ")
        })`,
      );
    }
    if (seen.has(name)) throw new InvalidArgument(`layout "${spec}" names axis "${name}" twice`);
    seen.add(name);
    return index;
  });
  for (const name of required) {
    if (!seen.has(name)) {
      throw new InvalidArgument(
        `layout "${spec}" leaves out axis "${name}" of ${context}; an axis can be left out only when ` +
          `it is a single index (select it with an index first)`,
      );
    }
  }
  return order;
}
