/**
 * How the native library is found in each way tessera runs (checkout,
 * `deno compile` executable, portable build, TESSERA_LIB), and the pieces
 * of `deno task compile`: denort discovery, the compile command line and
 * the portable launcher.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { libraryCandidates, libraryFileName } from "../src/ffi.ts";
import {
  cachedDenortPath,
  compileArgs,
  findDenort,
  launcherScript,
  LIBRARY,
} from "../scripts/compile.ts";

const LIB = libraryFileName();
const noEnv = () => undefined;

Deno.test("library lookup: TESSERA_LIB first, then the module's rust/target/release, then beside the executable", () => {
  const env = (name: string) => name === "TESSERA_LIB" ? "/opt/lib/custom.so" : undefined;
  assert.deepEqual(
    libraryCandidates(env, "/usr/bin/deno", "file:///home/u/tessera/src/ffi.ts"),
    ["/opt/lib/custom.so", `/home/u/tessera/rust/target/release/${LIB}`, `/usr/bin/${LIB}`],
  );
});

Deno.test("library lookup inside a deno compile executable: the --include'd path under the virtual root", () => {
  // deno compile keeps paths relative to the common root of the embedded files;
  // `--include rust/target/release/<lib>` lands beside src/ under that root.
  const candidates = libraryCandidates(
    noEnv,
    "/usr/local/bin/tessera",
    "file:///tmp/deno-compile-tessera/src/ffi.ts",
  );
  assert.equal(candidates[0], join("/tmp/deno-compile-tessera", LIBRARY));
  assert.equal(LIBRARY, join("rust", "target", "release", LIB));
  assert.ok(compileArgs("dist/tessera").join(" ").includes(`--include ${LIBRARY}`));
});

Deno.test("library lookup in the portable build: next to its deno binary", () => {
  const candidates = libraryCandidates(
    noEnv,
    "/home/u/dist/tessera-runtime/deno",
    "file:///home/u/dist/tessera-runtime/tessera.js",
  );
  assert.deepEqual(candidates, [
    `/home/u/dist/rust/target/release/${LIB}`,
    `/home/u/dist/tessera-runtime/${LIB}`,
  ]);
  // A bundle loaded from a URL has no module-relative candidate.
  assert.deepEqual(libraryCandidates(noEnv, "/x/deno", "https://example.org/tessera.js"), [
    `/x/${LIB}`,
  ]);
});

Deno.test("denort discovery: DENORT_BIN when it is a file, else Deno's cache, else none", async () => {
  const files = new Set<string>();
  const isFile = (p: string) => Promise.resolve(files.has(p));
  const cached = cachedDenortPath("/cache/deno", Deno.version.deno, Deno.build.target);
  assert.equal(
    cached,
    `/cache/deno/dl/release/v${Deno.version.deno}/denort-${Deno.build.target}.zip`,
  );
  const env = (n: string) => n === "DENORT_BIN" ? "/opt/denort" : undefined;
  assert.equal(await findDenort(env, "/cache/deno", isFile), undefined);
  files.add(cached);
  assert.deepEqual(await findDenort(env, "/cache/deno", isFile), { path: cached, from: "cache" });
  files.add("/opt/denort");
  assert.deepEqual(await findDenort(env, "/cache/deno", isFile), {
    path: "/opt/denort",
    from: "env",
  });
  assert.deepEqual(await findDenort(noEnv, "/cache/deno", isFile), { path: cached, from: "cache" });
});

Deno.test("compile command line and portable launcher", () => {
  assert.deepEqual(compileArgs("/o/tessera"), [
    "compile",
    "--allow-ffi",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--include",
    LIBRARY,
    "--output",
    "/o/tessera",
    "cli.ts",
  ]);
  const script = launcherScript("tessera-runtime");
  assert.match(script, /^#!\/bin\/sh\n/);
  assert.match(
    script,
    /exec "\$rt\/deno" run --quiet --no-config --no-lock --allow-ffi .* "\$rt\/tessera\.js" "\$@"/,
  );
});
