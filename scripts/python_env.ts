/**
 * Creates (or refreshes) the Python virtual environment used by the interop
 * tests: `.venv` at the repository root with the peers pinned in
 * `tests/interop/requirements.txt` (numpy, zarr-python, tensorstore,
 * ome-zarr-py).
 *
 * The venv is (re)installed when it is missing or when `.venv/.tessera-stamp`
 * does not hold the sha-256 of requirements.txt. Any failure throws.
 *
 * Usage: `deno run -A scripts/python_env.ts` (prints the venv's python path),
 * or `import { ensurePythonEnv } from "../scripts/python_env.ts"`.
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const VENV = join(ROOT, ".venv");
const REQUIREMENTS = join(ROOT, "tests", "interop", "requirements.txt");
const STAMP = join(VENV, ".tessera-stamp");
const VENV_PYTHON = Deno.build.os === "windows"
  ? join(VENV, "Scripts", "python.exe")
  : join(VENV, "bin", "python");

async function sha256Hex(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest))
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Runs a command with inherited stdio; throws if it cannot start or fails. */
async function run(cmd: string, args: string[], what: string): Promise<void> {
  let status: Deno.CommandStatus;
  try {
    status = await new Deno.Command(cmd, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn().status;
  } catch (e) {
    throw new Error(
      `python env: could not run \`${cmd}\` to ${what}: ${
        e instanceof Error ? e.message : String(e)
      }`,
    );
  }
  if (!status.success) {
    throw new Error(
      `python env: failed to ${what}: \`${cmd} ${args.join(" ")}\` exited with code ${status.code}${
        status.signal ? ` (signal ${status.signal})` : ""
      }`,
    );
  }
}

let pending: Promise<string> | null = null;

/**
 * Ensures `.venv` exists with the pinned interop peers installed and returns
 * the path of its python executable.
 */
export function ensurePythonEnv(): Promise<string> {
  // Concurrent callers in one process share a single install.
  if (pending === null) {
    pending = doEnsure().catch((e) => {
      pending = null;
      throw e;
    });
  }
  return pending;
}

async function doEnsure(): Promise<string> {
  let requirements: Uint8Array<ArrayBuffer>;
  try {
    requirements = await Deno.readFile(REQUIREMENTS);
  } catch (e) {
    throw new Error(
      `python env: cannot read ${REQUIREMENTS}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  const hash = await sha256Hex(requirements);

  const havePython = await exists(VENV_PYTHON);
  const stamp = havePython ? (await readText(STAMP))?.trim() : null;
  if (havePython && stamp === hash) return VENV_PYTHON;

  if (!havePython) {
    const python = Deno.env.get("TESSERA_PYTHON") ?? "python3";
    console.error(`python env: creating ${VENV} with ${python}`);
    await run(python, ["-m", "venv", VENV], `create the venv at ${VENV}`);
    if (!(await exists(VENV_PYTHON))) {
      throw new Error(
        `python env: \`${python} -m venv\` did not create ${VENV_PYTHON}`,
      );
    }
  } else {
    console.error(
      `python env: ${REQUIREMENTS} changed (or no stamp), reinstalling`,
    );
  }

  // Drop the stamp first so an interrupted install is retried next time.
  await Deno.remove(STAMP).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  await run(
    VENV_PYTHON,
    [
      "-m",
      "pip",
      "install",
      "--disable-pip-version-check",
      "-r",
      REQUIREMENTS,
    ],
    `install ${REQUIREMENTS} into ${VENV}`,
  );
  await Deno.writeTextFile(STAMP, hash + "\n");
  return VENV_PYTHON;
}

if (import.meta.main) {
  try {
    console.log(await ensurePythonEnv());
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    Deno.exit(1);
  }
}
