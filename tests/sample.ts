/** The sample store (`deno task sample`), written once when missing or incomplete. */

import { join } from "node:path";
import { ROOT } from "./helpers.ts";

/** Path of data/sample.ome.zarr (2×3×32×1024×1024 uint16). */
export const SAMPLE_PATH: string = join(ROOT, "data", "sample.ome.zarr");

/** The sample's path; writes it first (≈ 1 min on 2 cores) when its last shard is missing. */
export async function ensureSample(): Promise<string> {
  const lastShard = join(SAMPLE_PATH, "2", "c", "1", "2", "0", "0", "0");
  if (await Deno.stat(lastShard).then(() => true, () => false)) return SAMPLE_PATH;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "scripts", "make-sample.ts"),
      "--out",
      SAMPLE_PATH,
      "--force",
      "--quiet",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`writing the sample failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return SAMPLE_PATH;
}
