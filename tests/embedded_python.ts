/** The embedded CPython of the in-process interop tests. */

import { Python } from "../python.ts";
import { ensurePythonEnv } from "../scripts/python_env.ts";

/** The embedded interpreter, with the test venv's packages on its path. */
export async function embeddedPython(): Promise<Python> {
  const venvPython = await ensurePythonEnv();
  const out = await new Deno.Command(venvPython, {
    args: ["-c", "import site, sys; print(site.getsitepackages()[0]); print(sys.version_info[1])"],
    stdout: "piped",
  }).output();
  const [sitePackages, minor] = new TextDecoder().decode(out.stdout).trim().split("\n");
  const library = [
    `/usr/lib/x86_64-linux-gnu/libpython3.${minor}.so.1.0`,
    `/usr/lib/aarch64-linux-gnu/libpython3.${minor}.so.1.0`,
    `/usr/local/lib/libpython3.${minor}.so.1.0`,
  ].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (!library) {
    throw new Error(
      `no shared libpython3.${minor} to embed; install it (Debian: apt-get install libpython3.${minor})`,
    );
  }
  const py = Python.load({ library, sitePackages: [sitePackages] });
  py.exec("import numpy as np, ctypes");
  return py;
}
