/**
 * Writes the seed corpus of the `omearrow` fuzz target: small OME-Arrow
 * files written by the `ome-arrow` package (chunks as value lists and as
 * zstd/lz4/raw bytes, planes, a multi-row file, Arrow IPC copies) and by
 * tessera's own writer (Parquet and IPC, with and without zstd). Each seed
 * is the two configuration bytes `fuzz_entry::omearrow` reads, then the
 * file. Run from the repository root (uses the test venv):
 *
 *     deno run -A rust/fuzz/omearrow_seeds.ts
 * @module
 */

import { join } from "node:path";
import { open, writeOmeArrow } from "../../mod.ts";
import { ROOT, runPython } from "../../tests/helpers.ts";

const OUT = join(ROOT, "rust", "fuzz", "corpus", "omearrow");
/** Seeds above this size are rejected (the fuzz task's `-max_len`). */
const MAX_SEED = 65536;

const PYTHON = `
import sys
from pathlib import Path
sys.path.insert(0, "tests/interop")
from omearrow_peer import record, synth, write_table
from ome_arrow.export import to_ome_parquet

out = Path(sys.argv[1])
shape = (1, 2, 2, 12, 10)
specs = [
    ("list", "uint16", "list", (1, 8, 8), None),
    ("planes", "uint16", "planes", None, None),
    ("bytes", "uint8", "bytes", (2, 8, 4), None),
    ("zstd", "int16", "bytes", (1, 8, 8), "zstd"),
    ("lz4", "float32", "bytes", (1, 6, 10), "lz4"),
]
for i, (name, dtype, enc, chunk, comp) in enumerate(specs):
    scalar = record(synth(shape, dtype, seed=50 + i), encoding=enc, chunk_shape=chunk,
                    compression=comp, name=name)
    to_ome_parquet(scalar, str(out / f"peer-{name}.parquet"), column_name="ome_arrow")
    if enc != "planes":
        write_table([scalar], out / f"peer-{name}.arrow", "ipc")
rows = [record(synth((1, 1, 1, 6, 5), "uint16", seed=70 + r), encoding="bytes",
               chunk_shape=(1, 4, 4), compression="zstd", name=f"row{r}") for r in range(3)]
write_table(rows, out / "peer-multi.parquet", "parquet", row_group_size=1)
write_table(rows, out / "peer-multi.arrow", "ipc")
`;

const work = await Deno.makeTempDir({ prefix: "tessera-omearrow-seeds-" });
try {
  await runPython(["-c", PYTHON, work]);
  // tessera's writer, from pixels ome-arrow wrote
  using source = await open(join(work, "peer-zstd.parquet"));
  using view = await source.scan().collect();
  const writes: [string, "parquet" | "ipc", number | null][] = [
    ["tessera-zstd.parquet", "parquet", 3],
    ["tessera-raw.parquet", "parquet", null],
    ["tessera-raw.arrow", "ipc", null],
    ["tessera-zstd.arrow", "ipc", 1],
  ];
  for (const [name, format, zstdLevel] of writes) {
    await writeOmeArrow(join(work, name), view, {
      format,
      zstdLevel,
      chunks: { z: 1, y: 8, x: 8 },
    });
  }
  await Deno.mkdir(OUT, { recursive: true });
  let n = 0;
  for (const entry of [...Deno.readDirSync(work)].sort((a, b) => a.name.localeCompare(b.name))) {
    const file = await Deno.readFile(join(work, entry.name));
    if (file.length + 2 > MAX_SEED) {
      throw new Error(`${entry.name}: ${file.length} bytes is above the ${MAX_SEED} seed limit`);
    }
    // row 0, own dtype, step 1, region at 0; the multi-row files also row 2
    // with float32 output, step 2, region at 3
    const picks: [number, number][] = entry.name.includes("multi") ? [[0, 0], [2 | 4 | 8, 3]] : [[
      0,
      0,
    ]];
    for (const [pick, at] of picks) {
      const seed = new Uint8Array(file.length + 2);
      seed.set([pick, at]);
      seed.set(file, 2);
      await Deno.writeFile(join(OUT, `${entry.name}-${pick}`), seed);
      n++;
    }
  }
  console.log(`wrote ${n} seeds to ${OUT}`);
} finally {
  await Deno.remove(work, { recursive: true });
}
