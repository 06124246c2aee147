/**
 * The test task: builds what is missing, prepares the Python peers (numpy,
 * zarr-python, tensorstore, ome-zarr, libnvrtc in .venv), then runs the
 * Rust unit tests and the Deno tests, which drive those peers.
 *
 *     deno task test [deno test filter args…]
 * @module
 */

import { fileURLToPath } from "node:url";
import { ensureNativeLibrary } from "./build.ts";
import { ensurePythonEnv } from "./python_env.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

async function run(command: string, args: string[], cwd = root): Promise<void> {
  console.log(`\n$ ${command} ${args.join(" ")}`);
  const status = await new Deno.Command(command, {
    args,
    cwd,
    stdout: "inherit",
    stderr: "inherit",
  })
    .spawn().status;
  if (!status.success) {
    console.error(`\n${command} ${args.join(" ")} failed (exit code ${status.code})`);
    Deno.exit(status.code || 1);
  }
}

await ensureNativeLibrary();
// Before the Rust tests: the NVRTC compile test loads libnvrtc from .venv.
await ensurePythonEnv();
await run("cargo", ["test", "--release"], `${root}/rust`);
await run(Deno.execPath(), [
  "test",
  "--allow-read",
  "--allow-write",
  "--allow-ffi",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
  // The remote-store tests talk to servers on 127.0.0.1 (tests/remote/servers.ts).
  "--allow-net",
  ...(Deno.args.length > 0 ? Deno.args : ["tests/"]),
]);
