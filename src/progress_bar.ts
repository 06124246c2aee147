/**
 * A terminal progress bar with throughput and ETA for long operations
 * (conversions, big reads, benchmarks, sample generation). It draws only on
 * a terminal, redraws at most every `intervalMs`, and is silent when quiet.
 * @module
 */

import type { Counters } from "./native.ts";

/**
 * Where a progress bar draws: stderr by default.
 *
 * @example
 * ```ts
 * import { type ProgressSink, ProgressBar } from "@tessera/tessera";
 * const lines: string[] = [];
 * const sink: ProgressSink = {
 *   isTerminal: () => true,
 *   writeSync: (b) => lines.push(new TextDecoder().decode(b)) && b.length,
 * };
 * new ProgressBar("x", { sink }).update(1, 2, 1e6);
 * ```
 */
export interface ProgressSink {
  /** Whether the sink is an interactive terminal. */
  isTerminal(): boolean;
  /** Writes bytes synchronously. */
  writeSync(data: Uint8Array): number;
}

/**
 * Options of {@link ProgressBar}.
 *
 * @example
 * ```ts
 * import { type ProgressBarOptions, ProgressBar } from "@tessera/tessera";
 * const options: ProgressBarOptions = { quiet: false, intervalMs: 250, width: 40 };
 * const bar = new ProgressBar("work", options);
 * ```
 */
export interface ProgressBarOptions {
  /** Draw nothing at all (the `--quiet` flag). */
  quiet?: boolean;
  /** Where to draw (default `Deno.stderr`). */
  sink?: ProgressSink;
  /** Minimum time between redraws in milliseconds (default 100). */
  intervalMs?: number;
  /** Width of the bar in characters (default 24). */
  width?: number;
  /** The clock in milliseconds (default `performance.now`). */
  now?: () => number;
}

/** Bytes per second as text, e.g. "312.4 MB/s" (decimal units, as disks and networks are quoted). */
export function formatRate(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return "– B/s";
  const units = ["B/s", "kB/s", "MB/s", "GB/s", "TB/s"];
  let v = bytesPerSecond, u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 && u > 0 ? 2 : 1)} ${units[u]}`;
}

/** Seconds as "1h02m", "3m05s" or "42s"; "–" when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  if (s >= 3600) {
    return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  }
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/**
 * A one-line progress bar: `label [#####-----] 42% 312.4 MB/s ETA 3s`.
 * Progress is `done` of `total` units (bytes, chunks, rounds); throughput
 * counts `bytes`, and the ETA extrapolates the fraction done so far.
 *
 * @example
 * ```ts
 * const bar = new ProgressBar("copy", { quiet: Deno.args.includes("--quiet") });
 * for (let i = 1; i <= 10; i++) bar.update(i, 10, i * 1e6);
 * bar.done();
 * ```
 */
export class ProgressBar {
  /** Text before the bar. */
  readonly label: string;
  readonly #sink: ProgressSink | undefined;
  readonly #interval: number;
  readonly #width: number;
  readonly #now: () => number;
  readonly #started: number;
  #lastDraw = -Infinity;
  #lastLine = "";

  /** A bar labelled `label`; it draws only when the sink is a terminal and `quiet` is not set. */
  constructor(label: string, options: ProgressBarOptions = {}) {
    this.label = label;
    const sink = options.sink ?? Deno.stderr;
    this.#sink = !options.quiet && sink.isTerminal() ? sink : undefined;
    this.#interval = options.intervalMs ?? 100;
    this.#width = options.width ?? 24;
    this.#now = options.now ?? (() => performance.now());
    this.#started = this.#now();
  }

  /** Whether the bar draws anything. */
  get visible(): boolean {
    return this.#sink !== undefined;
  }

  /** The line for `done` of `total` after `bytes` bytes, at the current time. */
  line(done: number, total: number, bytes: number): string {
    const elapsed = (this.#now() - this.#started) / 1000;
    const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
    const filled = Math.round(fraction * this.#width);
    const bar = "#".repeat(filled) + "-".repeat(this.#width - filled);
    const rate = elapsed > 0 ? bytes / elapsed : NaN;
    const eta = fraction > 0 && fraction < 1
      ? elapsed * (1 - fraction) / fraction
      : fraction >= 1
      ? 0
      : NaN;
    return `${this.label} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${
      formatRate(rate)
    } ETA ${formatDuration(eta)}`;
  }

  /** Reports progress; redraws when the interval has passed (always at completion). */
  update(done: number, total: number, bytes: number): void {
    if (!this.#sink) return;
    const now = this.#now();
    if (now - this.#lastDraw < this.#interval && done < total) return;
    this.#lastDraw = now;
    this.#draw(this.line(done, total, bytes));
  }

  /** A callback for `onProgress` options: outer chunks done of total, bytes decoded (or written). */
  counters(): (counters: Counters) => void {
    return (c) => this.update(c.outerDone, c.outerTotal, Math.max(c.bytesDecoded, c.bytesWritten));
  }

  /** Ends the line (keeps the last state on screen). */
  done(): void {
    if (!this.#sink || this.#lastLine === "") return;
    this.#write("\n");
    this.#lastLine = "";
  }

  #draw(line: string): void {
    const pad = Math.max(0, this.#lastLine.length - line.length);
    this.#write(`\r${line}${" ".repeat(pad)}`);
    this.#lastLine = line;
  }

  #write(text: string): void {
    const bytes = new TextEncoder().encode(text);
    let off = 0;
    while (off < bytes.length) off += this.#sink!.writeSync(bytes.subarray(off));
  }
}
