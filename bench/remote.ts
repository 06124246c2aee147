/**
 * Remote read benchmark: random crops of a sharded uint16 OME-Zarr in a
 * loopback S3 bucket (moto, tests/remote/servers.ts) behind the
 * fault-injecting proxy with `delayMs` added to every request (default 20 ms,
 * a same-region object store's latency). tessera (`open("s3://…")`) against
 * tensorstore (s3 kvstore) and zarr-python (s3fs) reading the same crops in
 * the same run (bench/remote_peers.py). Every reader's crops are checked
 * against the others' (sha-256 of each crop) before timing; the proxy counts
 * requests, bytes and the most requests in flight for each reader.
 *
 *     deno task bench:remote [--quick] [--crops N] [--rounds N] [--delay MS] [--seed N]
 *                            [--readers tessera,tensorstore,zarr-python]
 *
 * Volume: `data/bench-remote/volume.ome.zarr`, written once (a marker file
 * holds its layout) and uploaded to a fresh bucket on every run. Results:
 * bench/results/<date>-remote.json and .md (…-remote-quick.* with --quick);
 * the markdown is printed.
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensureNativeLibrary } from "../scripts/build.ts";
import { ensurePythonEnv } from "../scripts/python_env.ts";
import { CHANNEL_STYLES, rng, synthVolume } from "../scripts/synth.ts";
import { type ProxyStats, type S3Fixture, startS3 } from "../tests/remote/servers.ts";
import { cpuTicks, machineFacts, otherShare, revision } from "./machine.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DATA = join(ROOT, "data", "bench-remote");
const VOLUME = join(DATA, "volume.ome.zarr");
const PEERS = join(ROOT, "bench", "remote_peers.py");
const KEY = "bench/volume.ome.zarr";
const REGION = "us-east-1";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    crops: { type: "string" },
    rounds: { type: "string" },
    delay: { type: "string", default: "20" },
    seed: { type: "string", default: "20261201" },
    readers: { type: "string", default: "tessera,tessera-cold,tensorstore,zarr-python" },
  },
});
const QUICK = args.quick;
const CROPS = Number(args.crops ?? (QUICK ? 6 : 24));
const ROUNDS = Number(args.rounds ?? (QUICK ? 1 : 3));
const DELAY_MS = Number(args.delay);
const SEED = Number(args.seed);

/**
 * Layout of the volume (one level, axes z, y, x). Shards are small (1 MiB
 * decoded) because moto copies the whole object for every ranged GET
 * (`FakeKey.value`), under a per-object lock: with large shards the
 * benchmark would time moto, not the readers.
 */
const LAYOUT = {
  version: 2,
  shape: [128, 512, 512] as [number, number, number],
  shards: [32, 128, 128],
  chunks: [16, 64, 64],
  zstdLevel: 3,
  seed: 4242,
};
const CROP = [64, 256, 256];
const ALL_READERS = ["tessera", "tessera-cold", "tensorstore", "zarr-python"] as const;
type Reader = typeof ALL_READERS[number];
const READERS = args.readers.split(",") as Reader[];
for (const r of READERS) {
  if (!ALL_READERS.includes(r)) throw new Error(`--readers: unknown reader "${r}"`);
}

async function ensureVolume(): Promise<void> {
  const marker = join(DATA, "volume.complete");
  const text = JSON.stringify(LAYOUT);
  if (await Deno.readTextFile(marker).then((t) => t === text, () => false)) return;
  const { writeOmeZarr } = await import("../mod.ts");
  await Deno.remove(marker).catch(() => {});
  await Deno.mkdir(DATA, { recursive: true });
  console.error(`writing ${VOLUME} (${LAYOUT.shape.join("×")} uint16) …`);
  const style = {
    ...CHANNEL_STYLES[0],
    count: Math.round(CHANNEL_STYLES[0].count * LAYOUT.shape[0] / 32),
  };
  await writeOmeZarr(VOLUME, synthVolume(LAYOUT.shape, style, LAYOUT.seed), {
    axes: ["z", "y", "x"],
    shape: LAYOUT.shape,
    dtype: "uint16",
    chunks: LAYOUT.chunks,
    shards: LAYOUT.shards,
    zstdLevel: LAYOUT.zstdLevel,
    overwrite: true,
  });
  await Deno.writeTextFile(marker, text);
}

/** Random crop corners (z, y, x), wholly inside the volume. */
function makeCrops(): [number, number, number][] {
  const random = rng(SEED);
  return Array.from(
    { length: CROPS },
    () =>
      LAYOUT.shape.map((n, d) => Math.floor(random() * (n - CROP[d] + 1))) as [
        number,
        number,
        number,
      ],
  );
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes.slice());
  return Array.from(new Uint8Array(digest)).map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A reader: `check` gives each crop's sha-256, `run` each crop's time (ms). */
interface Runner {
  info: Record<string, unknown>;
  check(): Promise<string[]>;
  run(): Promise<number[]>;
  close(): Promise<void>;
}

/**
 * tessera in this process: `open("s3://bucket/key", { endpoint, region })`
 * once (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), then
 * `scan().select(crop).collect()` per crop; the view is disposed after the
 * clock stops. `cold`: the shard-index cache is emptied before every crop,
 * so each crop reads its shards' indexes again, as the peers do.
 */
async function tesseraRunner(
  s3: S3Fixture,
  crops: [number, number, number][],
  cold: boolean,
): Promise<Runner> {
  const { invalidate, open } = await import("../mod.ts");
  const img = await open(s3.url(KEY), { endpoint: s3.endpoint, region: REGION });
  const query = ([z, y, x]: [number, number, number]) =>
    img.scan().select({ z: [z, z + CROP[0]], y: [y, y + CROP[1]], x: [x, x + CROP[2]] });
  return {
    info: { threads: navigator.hardwareConcurrency },
    async check() {
      const out: string[] = [];
      for (const c of crops) {
        using view = await query(c).collect();
        const data = view.data() as Uint16Array;
        out.push(await sha256(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
      }
      return out;
    },
    async run() {
      const ms: number[] = [];
      for (const c of crops) {
        if (cold) invalidate(s3.url(KEY));
        const started = performance.now();
        const view = await query(c).collect();
        ms.push(performance.now() - started);
        view[Symbol.dispose]();
      }
      return ms;
    },
    close() {
      img[Symbol.dispose]();
      return Promise.resolve();
    },
  };
}

/** A Python reader of bench/remote_peers.py, one JSON line per command. */
async function pythonRunner(
  reader: Exclude<Reader, "tessera" | "tessera-cold">,
  s3: S3Fixture,
  crops: [number, number, number][],
): Promise<Runner> {
  const python = await ensurePythonEnv();
  const child = new Deno.Command(python, {
    args: [PEERS, "serve", reader],
    env: s3.env,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  // deno-lint-ignore no-explicit-any
  const send = async (message: string): Promise<any> => {
    await writer.write(new TextEncoder().encode(message + "\n"));
    while (!buffered.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`${PEERS} ${reader} exited early`);
      buffered += value;
    }
    const nl = buffered.indexOf("\n");
    const reply = JSON.parse(buffered.slice(0, nl));
    buffered = buffered.slice(nl + 1);
    if (reply.error) throw new Error(`${reader}: ${reply.error}`);
    return reply;
  };
  const ready = await send(JSON.stringify({
    endpoint: s3.endpoint,
    bucket: s3.bucket,
    key: `${KEY}/0`,
    region: REGION,
    size: CROP,
    crops,
  }));
  return {
    info: ready.ready,
    check: async () => (await send("check")).sha256,
    run: async () => (await send("run")).ms,
    async close() {
      await writer.close();
      await child.status;
    },
  };
}

interface ReaderRound {
  ms: number[];
  totalMs: number;
  stats: ProxyStats;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  await ensureNativeLibrary();
  await ensurePythonEnv();
  await ensureVolume();
  const crops = makeCrops();
  await using s3 = await startS3();
  console.error(`uploading ${VOLUME} to ${s3.url(KEY)} …`);
  await s3.upload(VOLUME, KEY);
  for (const [k, v] of Object.entries(s3.env)) Deno.env.set(k, v);
  await s3.setFaults({ delayMs: DELAY_MS });

  const runners = new Map<Reader, Runner>();
  for (const r of READERS) {
    runners.set(
      r,
      r === "tessera" || r === "tessera-cold"
        ? await tesseraRunner(s3, crops, r === "tessera-cold")
        : await pythonRunner(r, s3, crops),
    );
  }
  try {
    // Untimed check pass: every reader's crops must agree.
    const digests = new Map<Reader, string[]>();
    const checkStats = new Map<Reader, ProxyStats>();
    for (const r of READERS) {
      await s3.resetStats();
      digests.set(r, await runners.get(r)!.check());
      checkStats.set(r, await s3.stats());
    }
    const reference = digests.get(READERS[0])!;
    for (const r of READERS) {
      const bad = digests.get(r)!.flatMap((d, i) => d === reference[i] ? [] : [i]);
      if (bad.length > 0) {
        throw new Error(`${r}'s crops ${bad.join(", ")} differ from ${READERS[0]}'s (sha-256)`);
      }
    }

    const before = await cpuTicks();
    const rounds = new Map<Reader, ReaderRound[]>(READERS.map((r) => [r, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = READERS.map((_, i) => READERS[(i + round) % READERS.length]);
      for (const r of order) {
        await s3.resetStats();
        const ms = await runners.get(r)!.run();
        rounds.get(r)!.push({
          ms,
          totalMs: ms.reduce((a, b) => a + b, 0),
          stats: await s3.stats(),
        });
      }
    }
    const after = await cpuTicks();

    const summary = Object.fromEntries(READERS.map((r) => {
      const rs = rounds.get(r)!;
      const totalMs = median(rs.map((x) => x.totalMs));
      return [r, {
        info: runners.get(r)!.info,
        medianRoundMs: totalMs,
        cropsPerSecond: CROPS / (totalMs / 1000),
        medianCropMs: median(rs.flatMap((x) => x.ms)),
        maxInFlight: Math.max(...rs.map((x) => x.stats.maxInFlight)),
        requestsPerCrop: median(rs.map((x) => x.stats.requests)) / CROPS,
        mbPerCrop: median(rs.map((x) => x.stats.bytes)) / CROPS / 1e6,
        checkPass: checkStats.get(r),
        rounds: rs,
      }];
    }));
    const ratio = (a: Reader, b: Reader) =>
      summary[a] && summary[b] ? summary[a].cropsPerSecond / summary[b].cropsPerSecond : null;
    const report = {
      benchmark: "remote",
      date: new Date().toISOString(),
      revision: await revision(),
      machine: await machineFacts(),
      otherLoad: otherShare(before, after),
      volume: { ...LAYOUT, key: `s3://${s3.bucket}/${KEY}/0` },
      crop: CROP,
      crops,
      rounds: ROUNDS,
      delayMs: DELAY_MS,
      server: "moto (moto[server]) behind tests/interop/fault_proxy.py on 127.0.0.1",
      readers: summary,
      ratios: {
        tesseraOverTensorstore: ratio("tessera", "tensorstore"),
        tesseraColdOverTensorstore: ratio("tessera-cold", "tensorstore"),
        tesseraOverZarrPython: ratio("tessera", "zarr-python"),
      },
      checked: `all ${CROPS} crops identical (sha-256) across ${READERS.join(", ")}`,
    };
    const stamp = report.date.slice(0, 10) + (QUICK ? "-remote-quick" : "-remote");
    const outDir = join(ROOT, "bench", "results");
    await Deno.writeTextFile(join(outDir, `${stamp}.json`), JSON.stringify(report, null, 2) + "\n");
    await Deno.writeTextFile(join(outDir, `${stamp}.md`), markdown(report));
    // Leave the files as `deno fmt` would (deno task check runs `deno fmt --check`).
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--quiet", `${stamp}.json`, `${stamp}.md`],
      cwd: outDir,
    }).output();
    console.log(await Deno.readTextFile(join(outDir, `${stamp}.md`)));
  } finally {
    for (const r of runners.values()) await r.close();
  }
}

// deno-lint-ignore no-explicit-any
function markdown(report: any): string {
  const [nz, ny, nx] = report.volume.shape;
  const how: Record<Reader, string> = {
    "tessera": '`open("s3://…", { endpoint, region })` once, then ' +
      "`scan().select(crop).collect()` per crop",
    "tessera-cold": "as above, with `invalidate(url)` before every crop: shard indexes read " +
      "again each time",
    "tensorstore": "zarr3 driver, s3 kvstore (endpoint, region, environment credentials); " +
      "default context (no cache_pool)",
    "zarr-python": "`zarr.open_array` on an s3fs `FsspecStore`; default `async.concurrency` " +
      `(${report.readers["zarr-python"]?.info.async_concurrency})`,
  };
  const rows = READERS.map((r) => {
    const s = report.readers[r];
    const name = r.startsWith("tessera") ? r : `${r} ${s.info.version}`;
    return `| ${name} | ${s.cropsPerSecond.toFixed(2)} | ${s.medianCropMs.toFixed(0)} ms | ${
      s.requestsPerCrop.toFixed(1)
    } | ${s.maxInFlight} | ${s.mbPerCrop.toFixed(2)} | ${how[r]} |`;
  });
  const load = report.otherLoad === undefined
    ? ""
    : `; processes other than the Deno one (the Python readers, the proxy and moto included) ` +
      `kept ${(report.otherLoad * 100).toFixed(0)} % of the cores busy`;
  return [
    `# Remote read benchmark, ${report.date.slice(0, 10)}`,
    "",
    `A sharded uint16 OME-Zarr of ${nz}×${ny}×${nx} (shards ${report.volume.shards.join("×")}, ` +
    `inner chunks ${
      report.volume.chunks.join("×")
    }, zstd ${report.volume.zstdLevel}) in a moto S3 ` +
    `bucket on 127.0.0.1, read through a proxy that adds **${report.delayMs} ms to every request**. ` +
    `${report.crop.join("×")} crops (${
      (report.crop.reduce((a: number, b: number) => a * b, 1) * 2 / 2 ** 20).toFixed(0)
    } MiB each) at ${report.crops.length} random corners (seed ${SEED}), the same for every ` +
    `reader, read one after another; median of ${report.rounds} rounds (readers interleaved, ` +
    `order rotating). ${report.machine.cores} cores (${report.machine.cpu})${load}. ` +
    `Revision ${report.revision}.`,
    "",
    "| reader | crops/s | median crop | requests/crop | max in flight | MB/crop | how |",
    "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ...rows,
    "",
    `- tessera / tensorstore: **${report.ratios.tesseraOverTensorstore?.toFixed(2) ?? "–"}×**`,
    `- tessera-cold (no index cache) / tensorstore: **${
      report.ratios.tesseraColdOverTensorstore?.toFixed(2) ?? "–"
    }×**`,
    `- tessera / zarr-python: **${report.ratios.tesseraOverZarrPython?.toFixed(2) ?? "–"}×**`,
    `- Checked before timing: ${report.checked}.`,
    "- requests/crop, max in flight and MB/crop are the proxy's counts while each reader ran " +
    "(median round); the proxy, moto and the readers share the machine's cores.",
    "- Shards are small (1 MiB decoded) because moto copies the whole object for every ranged " +
    "GET, under a per-object lock; with large shards the server, not the readers, would be timed.",
    "- tensorstore's default context has no cache_pool, so it reads each shard's index again for " +
    "every crop; tessera keeps shard indexes in its bounded LRU cache (the first, untimed check " +
    "pass fills it). zarr-python reads the index for every crop too. tessera-cold empties the " +
    "cache before every crop, for a like-for-like comparison.",
    "",
  ].join("\n");
}

await main();
