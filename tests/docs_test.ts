/**
 * Documentation and packaging: `deno doc --lint mod.ts` passes, every
 * symbol mod.ts exports has a JSDoc example, the examples type-check, and
 * `deno publish --dry-run` accepts the package (it reads npm's registry for
 * the `npm:` dependencies; JSR itself is not contacted by a dry run).
 */

import assert from "node:assert/strict";
import { ROOT } from "./helpers.ts";

async function deno(args: string[]): Promise<{ ok: boolean; out: string; stdout: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const stdout = dec.decode(r.stdout);
  return { ok: r.success, out: stdout + dec.decode(r.stderr), stdout };
}

Deno.test("deno doc --lint mod.ts passes", async () => {
  const r = await deno(["doc", "--lint", "mod.ts"]);
  assert.ok(r.ok, r.out);
});

Deno.test("every symbol exported by mod.ts has a JSDoc example, and the examples type-check", async () => {
  const r = await deno(["doc", "--json", "mod.ts"]);
  assert.ok(r.ok, r.out);
  const json = JSON.parse(r.stdout);
  const symbols = json.nodes[new URL("../mod.ts", import.meta.url).href].symbols as {
    name: string;
    declarations: { jsDoc?: { tags?: { kind: string }[] } }[];
  }[];
  assert.ok(symbols.length > 60, `${symbols.length} symbols`);
  const missing = symbols.filter((s) =>
    !s.declarations.some((d) => d.jsDoc?.tags?.some((t) => t.kind === "example"))
  ).map((s) => s.name);
  assert.deepEqual(missing, []);
  const check = await deno(["check", "--doc-only", "mod.ts", "src/"]);
  assert.ok(check.ok, check.out);
});

Deno.test("deno publish --dry-run accepts the package", async () => {
  const r = await deno(["publish", "--dry-run", "--allow-dirty"]);
  assert.ok(r.ok, r.out);
  assert.match(r.out, /Success Dry run complete/);
  assert.doesNotMatch(r.out, /rust\/target|\/data\/|\/dist\//);
});
