/**
 * The fuzz task: runs every cargo-fuzz target (libFuzzer, AddressSanitizer)
 * over its committed corpus and new mutations for a while, then the
 * TypeScript metadata property fuzzer. Installs cargo-fuzz when it is
 * missing. Needs no nightly toolchain: `RUSTC_BOOTSTRAP=1` lets stable
 * rustc take cargo-fuzz's `-Zsanitizer=address` flags.
 *
 *     deno task fuzz                 # smoke pass: 20 s per target, 2 000 metadata mutations per seed
 *     deno task fuzz --seconds 600   # a long run (also: deno task fuzz:long)
 *     deno task fuzz --target shard  # one target (omearrow: only this way)
 *
 * New inputs found go to a scratch folder, not the committed corpus; a
 * crash stops the task with its input under rust/fuzz/artifacts/<target>/
 * (copy it into rust/fuzz/regressions/<target>/, where `cargo test` replays
 * it, and fix the bug).
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const fuzzDir = join(root, "rust", "fuzz");
const TARGETS = ["shard", "blosc_frame", "bytes_codecs", "descriptor"];
/**
 * Run only with `--target`: the OME-Arrow target still reaches a panic
 * inside arrow-ipc (see rust/fuzz/README.md), which libFuzzer reports as a
 * crash, so it stays out of the CI smoke pass until that is fixed upstream.
 */
const ON_REQUEST = ["omearrow"];

function option(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1] : fallback;
}

const seconds = Number(option("--seconds", "20"));
const only = option("--target", "");
const env = { RUSTC_BOOTSTRAP: "1" };

async function run(command: string, args: string[], cwd: string, extraEnv = {}): Promise<string> {
  console.log(`\n$ ${command} ${args.join(" ")}`);
  const child = new Deno.Command(command, {
    args,
    cwd,
    env: { ...env, ...extraEnv },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let log = "";
  const pump = async (stream: ReadableStream<Uint8Array>, out: typeof Deno.stdout) => {
    for await (const chunk of stream) {
      log += decoder.decode(chunk);
      await out.write(chunk);
    }
  };
  const [status] = await Promise.all([
    child.status,
    pump(child.stdout, Deno.stdout),
    pump(child.stderr, Deno.stderr),
  ]);
  if (!status.success) {
    console.error(`\n${command} ${args.join(" ")} failed (exit code ${status.code})`);
    Deno.exit(status.code || 1);
  }
  return log;
}

async function hasCargoFuzz(): Promise<boolean> {
  try {
    return (await new Deno.Command("cargo", {
      args: ["fuzz", "--version"],
      stdout: "null",
      stderr: "null",
    })
      .output()).success;
  } catch {
    return false;
  }
}

if (!(await hasCargoFuzz())) {
  await run("cargo", ["install", "cargo-fuzz", "--locked", "--version", "0.13.2"], root);
}

const summary: string[] = [];
for (const target of only ? [...TARGETS, ...ON_REQUEST].filter((t) => t === only) : TARGETS) {
  const scratch = await Deno.makeTempDir({ prefix: `tessera-fuzz-${target}-` });
  const files = await Deno.makeTempDir({ prefix: `tessera-fuzz-files-` });
  const log = await run(
    "cargo",
    [
      "fuzz",
      "run",
      "-O",
      target,
      scratch,
      join("corpus", target),
      "--",
      `-max_total_time=${seconds}`,
      "-rss_limit_mb=2048",
      "-max_len=65536",
      "-print_final_stats=1",
      "-print_funcs=0",
    ],
    fuzzDir,
    { TESSERA_FUZZ_SCRATCH: files },
  );
  const runs = log.match(/Done (\d+) runs in (\d+) second/);
  summary.push(`${target}: ${runs ? `${runs[1]} runs in ${runs[2]} s` : "done"}, no crash`);
  await Deno.remove(scratch, { recursive: true });
  await Deno.remove(files, { recursive: true });
}

const iterations = String(Math.max(2000, seconds * 100));
const seed = String(Date.now() % 100000);
console.log(
  `\nmetadata fuzzing with TESSERA_FUZZ_SEED=${seed} TESSERA_FUZZ_ITERATIONS=${iterations}`,
);
await run(Deno.execPath(), ["test", "-A", "tests/metadata_fuzz_test.ts"], root, {
  TESSERA_FUZZ_ITERATIONS: iterations,
  TESSERA_FUZZ_SEED: seed,
});
summary.push(`metadata parsers: ${iterations} mutations per seed (seed ${seed}), no failure`);
console.log(`\nfuzz summary:\n  ${summary.join("\n  ")}`);
