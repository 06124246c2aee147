/**
 * What every CLI command shares: its description, argument parsing with
 * usage errors (exit code 2), and the context it runs in.
 * @module
 */

import { parseArgs } from "node:util";

/** A bad command line: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  /** The message and the command it concerns. */
  constructor(message: string, readonly command?: Command) {
    super(message);
    this.name = "UsageError";
  }
}

/** Where a command writes and what stops it. */
export interface CommandContext {
  /** Standard output (results, or JSON with `--json`). */
  out: (text: string) => void;
  /** Standard error (progress and messages). */
  err: (text: string) => void;
  /** Aborted on Ctrl-C; commands stop between steps and pass it to long calls. */
  signal: AbortSignal;
}

/** Option specs in `node:util` `parseArgs` form. */
export type OptionSpecs = Record<
  string,
  { type: "string" | "boolean"; short?: string; multiple?: false }
>;

/** One subcommand of the `tessera` CLI. */
export interface Command {
  /** Name typed after `tessera`. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Full help text (`tessera <name> --help`). */
  help: string;
  /** Options besides `--help`, `--json` and `--quiet`. */
  options: OptionSpecs;
  /** Number of positional arguments expected. */
  positionals: number;
  /** Runs with parsed values; returns the exit code. */
  run(
    positionals: string[],
    values: Record<string, string | boolean | undefined>,
    ctx: CommandContext,
  ): Promise<number>;
}

/** Options every command accepts. */
export const COMMON_OPTIONS: OptionSpecs = {
  help: { type: "boolean", short: "h" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
};

/** Parses a command's arguments; throws {@link UsageError} on unknown options or a wrong count. */
export function parseCommandArgs(
  command: Command,
  args: string[],
): { positionals: string[]; values: Record<string, string | boolean | undefined> } {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { ...COMMON_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify.*$/s, ""), command);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (!values.help && parsed.positionals.length !== command.positionals) {
    throw new UsageError(
      `expected ${command.positionals} argument${
        command.positionals === 1 ? "" : "s"
      }, got ${parsed.positionals.length}`,
      command,
    );
  }
  return { positionals: parsed.positionals, values };
}

/** An integer option, or `undefined` when absent; a usage error when not an integer ≥ `min`. */
export function intOption(
  command: Command,
  values: Record<string, string | boolean | undefined>,
  name: string,
  min = 0,
): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (typeof raw !== "string" || !/^-?\d+$/.test(raw) || v < min) {
    throw new UsageError(
      `--${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`,
      command,
    );
  }
  return v;
}

/** A comma-separated list of integers (e.g. `--c 0,2`). */
export function intListOption(
  command: Command,
  values: Record<string, string | boolean | undefined>,
  name: string,
): number[] | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const parts = String(raw).split(",");
  if (!parts.every((p) => /^\d+$/.test(p.trim()))) {
    throw new UsageError(
      `--${name} must be integers separated by commas, got ${JSON.stringify(raw)}`,
      command,
    );
  }
  return parts.map((p) => Number(p.trim()));
}
