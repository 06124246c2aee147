/**
 * Builds the `tessera` executable at `dist/tessera`.
 *
 * - With a `denort` of this Deno version (`DENORT_BIN`, or Deno's cache
 *   `<DENO_DIR>/dl/release/v<version>/denort-<target>.zip`, where
 *   `deno compile` puts the one it downloads): `deno compile` with the
 *   native library embedded by `--include`; at run time the library is
 *   found at its embedded path (src/ffi.ts).
 * - Without one (no download possible): a portable folder — the running
 *   `deno` binary, the program bundled into one file by `deno bundle`, the
 *   native library, and `dist/tessera`, a launcher script.
 *
 *     deno task compile [--portable] [--out dist]
 * @module
 */

import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { libraryFileName } from "../src/ffi.ts";
import { ensureNativeLibrary } from "./build.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Permissions the executable runs with. */
export const PERMISSIONS = ["--allow-ffi", "--allow-read", "--allow-write", "--allow-env"];
/** The library's path relative to the repository root (kept as is inside a compiled executable). */
export const LIBRARY = join("rust", "target", "release", libraryFileName());

/** A denort runtime and where it was found. */
export interface Denort {
  /** File (a binary for DENORT_BIN, a zip in Deno's cache). */
  path: string;
  /** "env" (DENORT_BIN) or "cache". */
  from: "env" | "cache";
}

/** Path of the denort zip that `deno compile` looks for in Deno's cache. */
export function cachedDenortPath(denoDir: string, version: string, target: string): string {
  return join(denoDir, "dl", "release", `v${version}`, `denort-${target}.zip`);
}

/** Finds a denort of this Deno version: `DENORT_BIN`, then Deno's cache; `undefined` when none. */
export async function findDenort(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  denoDir?: string,
  isFile: (path: string) => Promise<boolean> = (p) =>
    Deno.stat(p).then((s) => s.isFile, () => false),
): Promise<Denort | undefined> {
  const fromEnv = env("DENORT_BIN");
  if (fromEnv && await isFile(fromEnv)) return { path: fromEnv, from: "env" };
  const dir = denoDir ?? await denoCacheDir();
  const cached = cachedDenortPath(dir, Deno.version.deno, Deno.build.target);
  return await isFile(cached) ? { path: cached, from: "cache" } : undefined;
}

/** Deno's cache folder, as `deno info --json` reports it. */
async function denoCacheDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

/** Arguments of `deno compile` for the executable `output`. */
export function compileArgs(output: string): string[] {
  return ["compile", ...PERMISSIONS, "--include", LIBRARY, "--output", output, "cli.ts"];
}

/** The launcher of the portable build: runs the bundle with the Deno binary beside it. */
export function launcherScript(runtimeDir: string): string {
  return `#!/bin/sh
# tessera (portable build): runs the bundled program with the Deno binary in
# ${runtimeDir}/, which also holds the native library (found next to that binary).
self=$0
while [ -h "$self" ]; do # follow symlinks (e.g. one in ~/.local/bin) to the real launcher
  link=$(readlink "$self")
  case $link in /*) self=$link ;; *) self=$(dirname -- "$self")/$link ;; esac
done
here=$(CDPATH= cd -- "$(dirname -- "$self")" && pwd -P)
rt="$here/${runtimeDir}"
DENO_NO_UPDATE_CHECK=1 exec "$rt/deno" run --quiet --no-config --no-lock ${
    PERMISSIONS.join(" ")
  } "$rt/tessera.js" "$@"
`;
}

async function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<void> {
  console.error(`$ ${basename(command)} ${args.join(" ")}`);
  const status = await new Deno.Command(command, {
    args,
    cwd: ROOT,
    env,
    stdout: "inherit",
    stderr: "inherit",
  })
    .spawn().status;
  if (!status.success) {
    throw new Error(`${basename(command)} ${args[0]} failed (exit code ${status.code})`);
  }
}

/** Builds `<out>/tessera`; returns how ("compiled" or "portable"). */
export async function buildExecutable(
  out = join(ROOT, "dist"),
  options: { portable?: boolean } = {},
): Promise<"compiled" | "portable"> {
  await ensureNativeLibrary();
  await Deno.mkdir(out, { recursive: true });
  const target = join(out, "tessera");
  const runtimeDir = "tessera-runtime";
  await Deno.remove(target, { recursive: true }).catch(() => {});
  await Deno.remove(join(out, runtimeDir), { recursive: true }).catch(() => {});
  const denort = options.portable ? undefined : await findDenort();
  const fromEnv = Deno.env.get("DENORT_BIN");
  if (!options.portable && fromEnv && denort?.from !== "env") {
    console.error(`DENORT_BIN=${fromEnv} is not a file; ignored`);
  }
  if (denort) {
    console.error(`denort found (${denort.from}): ${denort.path}`);
    await run(
      Deno.execPath(),
      compileArgs(target),
      denort.from === "env" ? { DENORT_BIN: denort.path } : {},
    );
    return "compiled";
  }
  console.error(
    options.portable
      ? "building the portable folder (--portable)"
      : `no denort ${Deno.version.deno} for ${Deno.build.target} (no usable DENORT_BIN, none in Deno's cache, ` +
        "and deno compile cannot download it here): building the portable folder",
  );
  const rt = join(out, runtimeDir);
  await Deno.mkdir(rt);
  await run(Deno.execPath(), [
    "bundle",
    "--quiet",
    "--platform",
    "deno",
    "--output",
    join(rt, "tessera.js"),
    "cli.ts",
  ]);
  await Deno.copyFile(Deno.execPath(), join(rt, "deno"));
  await Deno.chmod(join(rt, "deno"), 0o755);
  await Deno.copyFile(join(ROOT, LIBRARY), join(rt, libraryFileName()));
  await Deno.writeTextFile(target, launcherScript(runtimeDir), { mode: 0o755 });
  await Deno.chmod(target, 0o755);
  return "portable";
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { portable: { type: "boolean" }, out: { type: "string" } },
  });
  const how = await buildExecutable(values.out ?? join(ROOT, "dist"), {
    portable: values.portable,
  });
  console.log(`${join(values.out ?? "dist", "tessera")} (${how})`);
}
