/**
 * Entry point of the `tessera` executable (`deno task compile`), also run
 * directly: `deno run --allow-ffi --allow-read --allow-write --allow-env cli.ts info <store>`.
 * @module
 */

import { runProcess } from "./src/cli/main.ts";

if (import.meta.main) Deno.exit(await runProcess());
