/**
 * The `tessera` command line: `info`, `preview`, `convert` and `bench`.
 * Exit codes: 0 success, 1 failure (bad store, bad data, I/O), 2 bad
 * command line. Results go to stdout (JSON with `--json`), messages and
 * progress to stderr. Ctrl-C aborts the running command between steps.
 * @module
 */

import { TesseraError } from "../errors.ts";
import { benchCommand } from "./bench.ts";
import { type Command, type CommandContext, parseCommandArgs, UsageError } from "./command.ts";
import { convertCommand } from "./convert.ts";
import { infoCommand } from "./info.ts";
import { previewCommand } from "./preview.ts";

/** The commands, in help order. */
export const COMMANDS: Command[] = [infoCommand, previewCommand, convertCommand, benchCommand];

/** Top-level help. */
export function mainHelp(): string {
  return `tessera — chunked bioimage stores (OME-Zarr, Zarr v2/v3) into tensors

Usage: tessera <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(9)}${c.summary}`).join("\n")}

Run \`tessera <command> --help\` for a command's options. Every command
accepts --json (machine-readable output) and --quiet (no progress bar).
Exit codes: 0 success, 1 failure, 2 bad command line.`;
}

/** Runs the CLI on `args`; returns the exit code. */
export async function main(
  args: string[],
  ctx: CommandContext = {
    out: (text) => console.log(text),
    err: (text) => console.error(text),
    signal: new AbortController().signal,
  },
): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    (name === undefined ? ctx.err : ctx.out)(mainHelp());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  try {
    if (!command) throw new UsageError(`unknown command "${name}"`);
    const { positionals, values } = parseCommandArgs(command, rest);
    if (values.help) {
      ctx.out(command.help);
      return 0;
    }
    return await command.run(positionals, values, ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      ctx.err(`tessera${e.command ? ` ${e.command.name}` : ""}: ${e.message}\n`);
      ctx.err(e.command ? e.command.help : mainHelp());
      return 2;
    }
    const what = e instanceof TesseraError
      ? `${e.name}: ${e.message}`
      : e instanceof Error
      ? e.message
      : String(e);
    ctx.err(`tessera ${name}: ${what}`);
    return 1;
  }
}

/** Runs the CLI for this process: Ctrl-C aborts the command (exit code 130). */
export async function runProcess(args: string[] = Deno.args): Promise<number> {
  const controller = new AbortController();
  const onInterrupt = () => {
    if (controller.signal.aborted) Deno.exit(130);
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    const code = await main(args, {
      out: (text) => console.log(text),
      err: (text) => console.error(text),
      signal: controller.signal,
    });
    return controller.signal.aborted ? 130 : code;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}
