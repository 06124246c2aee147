/**
 * `tessera bench <store>`: how fast this machine reads a store — a whole
 * level, random crops and single chunks — with medians and throughput.
 * @module
 */

import { formatBytes } from "../display.ts";
import { Aborted } from "../errors.ts";
import { type Image, open } from "../image.ts";
import { arrayInfo } from "../info.ts";
import { mulberry32 } from "../iterate.ts";
import { formatRate, ProgressBar } from "../progress_bar.ts";
import type { Selection } from "../query.ts";
import { type Command, intListOption, intOption } from "./command.ts";

/** One measured case. */
export interface BenchCase {
  /** What was read. */
  name: string;
  /** Output shape of one read. */
  shape: number[];
  /** Bytes of one read's output. */
  bytes: number;
  /** Median, fastest and slowest time of one read in milliseconds. */
  medianMs: number;
  /** Fastest read. */
  minMs: number;
  /** Slowest read. */
  maxMs: number;
  /** Output bytes per second at the median. */
  bytesPerSecond: number;
  /** Reads timed. */
  reads: number;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A seeded generator of floats in [0, 1), so every run reads the same crops. */
function random(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 2 ** 32;
}

/** Plan of the reads: per case, the selections to time. */
export function benchPlan(
  image: Image,
  level: number,
  crop: readonly number[],
  crops: number,
  rounds: number,
  seed = 42,
): { name: string; selections: Selection[] }[] {
  const shape = image.levels[level].shape;
  const axes = image.axes;
  const rng = random(seed);
  const chunk = arrayInfo(image.arrayMetadata(level)).chunks;
  // Crop sizes apply to the last axes; leading axes take one index.
  const box = shape.map((n, d) => {
    const k = d - (shape.length - crop.length);
    return k >= 0 ? Math.min(crop[k], n) : 1;
  });
  const at = (sizes: number[]): Selection =>
    Object.fromEntries(axes.map((a, d) => {
      const start = Math.floor(rng() * (shape[d] - sizes[d] + 1));
      return [a, [start, start + sizes[d]] as [number, number]];
    }));
  const whole: Selection = {};
  return [
    { name: `whole level ${level}`, selections: Array.from({ length: rounds }, () => whole) },
    { name: `crop ${box.join("×")}`, selections: Array.from({ length: crops }, () => at(box)) },
    {
      name: `one chunk ${chunk.join("×")}`,
      selections: Array.from({ length: crops }, () =>
        Object.fromEntries(axes.map((a, d) => {
          const i = Math.floor(rng() * Math.ceil(shape[d] / chunk[d])) * chunk[d];
          return [a, [i, Math.min(i + chunk[d], shape[d])] as [number, number]];
        }))),
    },
  ];
}

/** The `bench` command. */
export const benchCommand: Command = {
  name: "bench",
  summary: "time whole-level reads, random crops and single-chunk reads of a store",
  help: `Usage: tessera bench <store> [--level N] [--rounds N] [--crops N]
                     [--crop Z,Y,X] [--seed N] [--quiet] [--json]

Times reads of the image at <store> on this machine: the whole level
(--rounds times), --crops random crops of --crop size (on the last axes;
other axes one index), and --crops random single chunks. Reports median,
fastest and slowest time and output throughput. The same seed reads the
same places.

Options:
  --level N     level to read (default 0)
  --rounds N    whole-level reads (default 3)
  --crops N     crops and single chunks each (default 50)
  --crop LIST   crop size on the last axes (default 64,256,256)
  --seed N      seed of the random places (default 42)
  -q, --quiet   no progress bar
  --json        print the results as JSON
  -h, --help`,
  options: {
    level: { type: "string" },
    rounds: { type: "string" },
    crops: { type: "string" },
    crop: { type: "string" },
    seed: { type: "string" },
  },
  positionals: 1,
  async run([store], values, ctx) {
    const level = intOption(this, values, "level") ?? 0;
    const rounds = intOption(this, values, "rounds", 1) ?? 3;
    const crops = intOption(this, values, "crops", 1) ?? 50;
    const crop = intListOption(this, values, "crop") ?? [64, 256, 256];
    const seed = intOption(this, values, "seed") ?? 42;
    using image = await open(store);
    image.scan().level(level); // a typed error naming the levels when there is no such level
    const plan = benchPlan(image, level, crop, crops, rounds, seed);
    const results: BenchCase[] = [];
    const total = plan.reduce((a, c) => a + c.selections.length, 0);
    const bar = new ProgressBar("bench", { quiet: Boolean(values.quiet) });
    let done = 0, bytesAll = 0;
    for (const { name, selections } of plan) {
      const times: number[] = [];
      let shape: number[] = [], bytes = 0;
      for (const selection of selections) {
        if (ctx.signal.aborted) {
          throw new Aborted("benchmark cancelled", { cause: ctx.signal.reason });
        }
        const query = image.scan().level(level).select(selection);
        const started = performance.now();
        using view = await query.collect({ signal: ctx.signal });
        times.push(performance.now() - started);
        shape = [...view.shape];
        bytes = view.byteLength;
        bytesAll += bytes;
        bar.update(++done, total, bytesAll);
      }
      const m = median(times);
      results.push({
        name,
        shape,
        bytes,
        medianMs: m,
        minMs: Math.min(...times),
        maxMs: Math.max(...times),
        bytesPerSecond: bytes / (m / 1000),
        reads: times.length,
      });
    }
    bar.done();
    if (values.json) {
      ctx.out(JSON.stringify({ store: image.source, level, results }, null, 2));
      return 0;
    }
    ctx.out(`${image.source}, level ${level}`);
    ctx.out(
      "case                          reads   median      min      max   output     throughput",
    );
    for (const r of results) {
      ctx.out(
        `${r.name.padEnd(28)} ${String(r.reads).padStart(6)} ${
          r.medianMs.toFixed(2).padStart(8)
        } ms ${r.minMs.toFixed(2).padStart(8)} ${r.maxMs.toFixed(2).padStart(8)} ${
          formatBytes(r.bytes).padStart(10)
        } ${formatRate(r.bytesPerSecond).padStart(12)}`,
      );
    }
    return 0;
  },
};
