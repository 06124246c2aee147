/** The OME-NGFF 0.4 image, labels and plate that ome-zarr-py writes for the tests. */

import { dirname, join } from "node:path";
import { ROOT, runPython } from "./helpers.ts";

const V2_CASES = join(ROOT, "tests", "interop", "v2_cases.py");
const SHARED = "TESSERA_TEST_PEER_NGFF04";
const PREFIX = "tessera-ngff04-";

/**
 * The output of `v2_cases.py write-ngff04`, written once per test process and
 * shared by tests/ngff04_test.ts and tests/info_test.ts through `$TESSERA_TEST_PEER_NGFF04`
 * (`<pid>:<folder>`, as tests/helpers.ts shares the peers.py output); folders
 * left by finished processes are removed.
 */
export async function ngff04Dir(): Promise<string> {
  const held = Deno.env.get(SHARED);
  if (held?.startsWith(`${Deno.pid}:`)) {
    const dir = held.slice(`${Deno.pid}:`.length);
    if (await Deno.stat(join(dir, "plate.json")).then(() => true, () => false)) return dir;
  }
  const dir = await Deno.makeTempDir({ prefix: `${PREFIX}${Deno.pid}-` });
  for await (const e of Deno.readDir(dirname(dir))) {
    const pid = /^(\d+)-/.exec(e.name.slice(PREFIX.length))?.[1];
    if (!e.name.startsWith(PREFIX) || !pid || Number(pid) === Deno.pid) continue;
    if (Deno.build.os === "linux" && !(await Deno.stat(`/proc/${pid}`).catch(() => null))) {
      await Deno.remove(join(dirname(dir), e.name), { recursive: true }).catch(() => {});
    }
  }
  await runPython([V2_CASES, "write-ngff04", dir]);
  Deno.env.set(SHARED, `${Deno.pid}:${dir}`);
  return dir;
}
