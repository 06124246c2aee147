/**
 * Builds the native library when it is missing or older than its sources
 * (`cargo build --release` in rust/, output shown as it goes).
 *
 *     deno run -A scripts/build.ts [--force]
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { libraryFileName } from "../src/ffi.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const crate = join(root, "rust");

async function newestSource(dir: string): Promise<number> {
  let newest = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory && entry.name !== "target") {
      newest = Math.max(newest, await newestSource(path));
    }
    if (entry.isFile) newest = Math.max(newest, (await Deno.stat(path)).mtime?.getTime() ?? 0);
  }
  return newest;
}

/** Path of the built library; builds it first when missing or stale. */
export async function ensureNativeLibrary(force = false): Promise<string> {
  const library = join(crate, "target", "release", libraryFileName());
  let built = 0;
  try {
    built = (await Deno.stat(library)).mtime?.getTime() ?? 0;
  } catch { /* not built yet */ }
  if (!force && built > 0 && built >= await newestSource(crate)) return library;
  console.error(`building the native library (cargo build --release in ${crate}) …`);
  const status = await new Deno.Command("cargo", {
    args: ["build", "--release"],
    cwd: crate,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) {
    throw new Error(`cargo build --release failed with exit code ${status.code}`);
  }
  return library;
}

if (import.meta.main) {
  console.log(await ensureNativeLibrary(Deno.args.includes("--force")));
}
