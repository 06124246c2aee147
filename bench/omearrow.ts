/**
 * OME-Arrow benchmark: one seeded uint16 image stored as OME-Arrow Parquet
 * by the `ome-arrow` package (its default numeric-list encoding, and its
 * zstd byte-chunk encoding) and as OME-Zarr (sharded, zstd) by tessera.
 * Times, in one run, ROI reads (64², 256², 1024²) and full-plane reads of
 * all channels at seeded random (z, y, x) positions: tessera on every
 * store, and ome-arrow's `tensor_view(...).to_numpy()` on its files, each
 * on an already opened image; and the time to open a file and read a first
 * ROI (ome-arrow loads the whole record when it opens; tessera loads the
 * pixel column of the row on first read, once).
 *
 *     deno task bench:omearrow [--shape 1,2,4,2048,2048] [--rounds 15]
 *
 * Results go to bench/results/<date>-omearrow.json and .md; the markdown is
 * printed.
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { open, type Selection, writeOmeZarr } from "../mod.ts";
import { ensureNativeLibrary } from "../scripts/build.ts";
import { ensurePythonEnv } from "../scripts/python_env.ts";
import { machineFacts, revision } from "./machine.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS = join(ROOT, "bench", "results");
const PEER = join(ROOT, "bench", "omearrow_peer.py");

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    shape: { type: "string", default: "1,2,4,2048,2048" },
    rounds: { type: "string", default: "15" },
  },
});
const SHAPE = args.shape.split(",").map(Number);
const ROUNDS = Number(args.rounds);
if (SHAPE.length !== 5 || !SHAPE.every((n) => Number.isInteger(n) && n > 0)) {
  throw new Error("--shape needs five positive integers (t,c,z,y,x)");
}

async function python(argv: string[]): Promise<string> {
  const out = await new Deno.Command(await ensurePythonEnv(), {
    args: argv,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

/** Seeded (t, z, y, x) positions for squares of `size` (null: whole planes). */
function positions(size: number | null, n: number, seed: number): number[][] {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const [t, , z, y, x] = SHAPE;
  return Array.from({ length: n }, () => [
    Math.floor(next() * t),
    Math.floor(next() * z),
    size === null ? 0 : Math.floor(next() * (y - size + 1)),
    size === null ? 0 : Math.floor(next() * (x - size + 1)),
  ]);
}

const QUERIES = [64, 256, 1024, null].map((size, i) => ({
  name: size === null ? "full plane" : `ROI ${size}²`,
  size,
  positions: positions(size, 64, 7 + i),
}));

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timeTessera(path: string) {
  const t0 = performance.now();
  {
    using img = await open(path);
    const [t, z, y, x] = QUERIES[1].positions[0];
    using _ = await img.scan().select({ t, z, y: [y, y + 256], x: [x, x + 256] }).collect();
  }
  const firstRead = performance.now() - t0;
  using img = await open(path);
  const queries: Record<string, number> = {};
  for (const q of QUERIES) {
    const read = async (k: number) => {
      const [t, z, y, x] = q.positions[k % q.positions.length];
      const sel: Selection = q.size === null
        ? { t, z }
        : { t, z, y: [y, y + q.size] as [number, number], x: [x, x + q.size] as [number, number] };
      using _ = await img.scan().select(sel).collect();
    };
    await read(0);
    const times: number[] = [];
    for (let k = 0; k < ROUNDS; k++) {
      const start = performance.now();
      await read(k);
      times.push(performance.now() - start);
    }
    queries[q.name] = median(times);
  }
  return { first_read_ms: firstRead, queries };
}

await ensureNativeLibrary();
const dir = await Deno.makeTempDir({ prefix: "tessera-bench-omearrow-" });
try {
  console.error(`writing a ${SHAPE.join("×")} uint16 image with ome-arrow and tessera…`);
  await python([PEER, "make", dir, ...SHAPE.map(String)]);
  const raw = await Deno.readFile(join(dir, "image.bin"));
  const zarr = join(dir, "image.ome.zarr");
  const [, , , ny, nx] = SHAPE;
  await writeOmeZarr(zarr, new Uint16Array(raw.buffer), {
    axes: ["t", "c", "z", "y", "x"],
    shape: SHAPE,
    dtype: "uint16",
    chunks: [1, 1, 1, Math.min(256, ny), Math.min(256, nx)],
    shards: [1, 1, 1, Math.min(2048, ny), Math.min(2048, nx)],
  });
  const queriesFile = join(dir, "queries.json");
  await Deno.writeTextFile(queriesFile, JSON.stringify(QUERIES));
  const stores = [
    {
      name: "OME-Arrow Parquet, ome-arrow default (chunk lists)",
      path: join(dir, "list.ome.parquet"),
    },
    { name: "OME-Arrow Parquet, zstd chunk bytes", path: join(dir, "bytes.ome.parquet") },
  ];
  const results = [];
  for (const s of stores) {
    console.error(`timing ${s.name}…`);
    const tessera = await timeTessera(s.path);
    const peer = JSON.parse(await python([PEER, "time", s.path, queriesFile, String(ROUNDS)]));
    const bytes = (await Deno.stat(s.path)).size;
    results.push({ store: s.name, bytes, tessera, ome_arrow: peer });
  }
  console.error("timing OME-Zarr…");
  const zarrResult = {
    store: "OME-Zarr, sharded zstd (tessera)",
    tessera: await timeTessera(zarr),
  };
  const report = {
    benchmark: "omearrow",
    date: new Date().toISOString(),
    revision: await revision(),
    machine: await machineFacts(),
    shape: SHAPE,
    dtype: "uint16",
    rounds: ROUNDS,
    results,
    zarr: zarrResult,
  };
  const fmt = (ms: number) => ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`;
  const lines = [
    `# OME-Arrow benchmark (${report.date.slice(0, 10)})`,
    "",
    `Image ${SHAPE.join("×")} uint16 (t, c, z, y, x); reads of all ${
      SHAPE[1]
    } channels at one (t, z); ` +
    `medians of ${ROUNDS} reads at seeded random positions, on an opened image. ` +
    `Machine: ${report.machine.cores} cores, ${
      report.machine.cpu ?? "?"
    }; revision ${report.revision}.`,
    "",
    "| store | read | tessera | ome-arrow | ome-arrow ÷ tessera |",
    "| ----- | ---- | ------: | --------: | ------------------: |",
  ];
  for (const r of results) {
    for (const q of QUERIES) {
      const a = r.tessera.queries[q.name];
      const b = r.ome_arrow.queries[q.name];
      lines.push(`| ${r.store} | ${q.name} | ${fmt(a)} | ${fmt(b)} | ${(b / a).toFixed(1)}× |`);
    }
    lines.push(
      `| ${r.store} | open + first ROI 256² | ${fmt(r.tessera.first_read_ms)} | ${
        fmt(r.ome_arrow.open_ms)
      } (open only) | ${(r.ome_arrow.open_ms / r.tessera.first_read_ms).toFixed(1)}× |`,
    );
  }
  for (const q of QUERIES) {
    lines.push(
      `| ${zarrResult.store} | ${q.name} | ${fmt(zarrResult.tessera.queries[q.name])} | | |`,
    );
  }
  lines.push(
    `| ${zarrResult.store} | open + first ROI 256² | ${
      fmt(zarrResult.tessera.first_read_ms)
    } | | |`,
  );
  const md = lines.join("\n") + "\n";
  await Deno.mkdir(RESULTS, { recursive: true });
  const stem = join(RESULTS, `${report.date.slice(0, 10)}-omearrow`);
  await Deno.writeTextFile(`${stem}.json`, JSON.stringify(report, null, 2) + "\n");
  await Deno.writeTextFile(`${stem}.md`, md);
  console.log(md);
} finally {
  await Deno.remove(dir, { recursive: true });
}
