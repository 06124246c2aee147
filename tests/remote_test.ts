/**
 * Remote stores against real servers on loopback (tests/remote/servers.ts):
 * moto's S3 API server and aiohttp's Range-capable HTTP server, each behind
 * a fault-injecting proxy. The image is the OME-NGFF written by ome-zarr-py
 * (tests/interop/peers.py: level 0 sharded, the others plain chunks), whose
 * pixels numpy wrote out: remote reads must equal them and the local read.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  indexCacheStats,
  info,
  InvalidArgument,
  invalidate,
  NotFound,
  open,
  type OpenOptions,
  pipeline,
  StorageError,
  writeOmeZarr,
} from "../mod.ts";
import { copyTree, editJson, peerNgff, tempDir } from "./helpers.ts";
import { type S3Fixture, startHttp, startS3 } from "./remote/servers.ts";

/** Options that point at the fixture's bucket with its (fake) credentials. */
function s3Options(s3: S3Fixture, extra: OpenOptions = {}): OpenOptions {
  return {
    endpoint: s3.endpoint,
    region: s3.env.AWS_REGION,
    credentials: {
      accessKeyId: s3.env.AWS_ACCESS_KEY_ID,
      secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY,
    },
    ...extra,
  };
}

async function bytesOfLevel(
  img: Awaited<ReturnType<typeof open>>,
  level: number,
  select: Record<string, [number, number]> = {},
): Promise<Uint8Array> {
  using view = await img.scan().level(level).select(select).collect();
  const data = view.data();
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
}

/** Unique prefixes: the metadata cache is process-wide. */
let nextPrefix = 0;
const prefix = (what: string) => `${what}-${Deno.pid}-${nextPrefix++}.ome.zarr`;

Deno.test("S3: every level equals ome-zarr-py's pixels and the local read", async () => {
  const ngff = await peerNgff();
  await using s3 = await startS3();
  const key = prefix("levels");
  await s3.upload(ngff.store, key);
  using remote = await open(s3.url(key), s3Options(s3));
  using local = await open(ngff.store);
  assert.deepEqual(remote.axes, ngff.image.axes);
  assert.deepEqual(remote.shape, local.shape);
  assert.deepEqual(remote.levels, local.levels);
  assert.deepEqual(remote.channels, local.channels);
  assert.equal(remote.source, s3.url(key));
  for (let level = 0; level < ngff.levels.length; level++) {
    const got = await bytesOfLevel(remote, level);
    assert.deepEqual(got, ngff.levels[level].expected, `level ${level} vs numpy`);
    assert.deepEqual(got, await bytesOfLevel(local, level), `level ${level} vs local`);
  }
  const crop = { z: [1, 4], y: [5, 50], x: [7, 41] } as Record<string, [number, number]>;
  assert.deepEqual(await bytesOfLevel(remote, 0, crop), await bytesOfLevel(local, 0, crop));
  const plan = await remote.scan().select(crop).explain();
  const localPlan = await local.scan().select(crop).explain();
  assert.equal(plan.chunksTouched, localPlan.chunksTouched);
  assert.equal(plan.chunksStored, localPlan.chunksStored);
});

Deno.test("S3: credentials from the AWS environment variables", async () => {
  const ngff = await peerNgff();
  await using s3 = await startS3();
  const key = prefix("env");
  await s3.upload(ngff.store, key);
  const saved = Object.keys(s3.env).map((k) => [k, Deno.env.get(k)] as const);
  for (const [k, v] of Object.entries(s3.env)) Deno.env.set(k, v);
  try {
    using remote = await open(s3.url(key), { endpoint: s3.endpoint });
    assert.deepEqual(await bytesOfLevel(remote, 1), ngff.levels[1].expected);
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
});

Deno.test("HTTP: a Range-capable server gives the same pixels", async () => {
  const ngff = await peerNgff();
  await using http = await startHttp(ngff.dir);
  using remote = await open(http.url("ngff.ome.zarr"), { concurrency: 8 });
  for (let level = 0; level < ngff.levels.length; level++) {
    assert.deepEqual(await bytesOfLevel(remote, level), ngff.levels[level].expected);
  }
  const stats = await http.stats();
  assert.ok(stats.maxInFlight > 1 && stats.maxInFlight <= 8, JSON.stringify(stats));
});

Deno.test("a repeated crop reads no shard index again; invalidate() drops the cache", async () => {
  const ngff = await peerNgff();
  await using s3 = await startS3();
  const key = prefix("cache");
  await s3.upload(ngff.store, key);
  using remote = await open(s3.url(key), s3Options(s3));
  // y 0..40 and x 0..40 touch 2 × 2 shards of 32 × 32 in each of the
  // 2 × 3 × 2 (t, c, z) shard planes: 48 shards, an index request each
  // when cold, and one or more range requests each.
  const crop = { y: [0, 40], x: [0, 40] } as Record<string, [number, number]>;
  const shards = 2 * 3 * 2 * 2 * 2;
  await s3.resetStats();
  const first = await bytesOfLevel(remote, 0, crop);
  const cold = await s3.stats();
  assert.ok(
    cold.requests >= 2 * shards,
    `cold: an index and one or more ranges per shard ${JSON.stringify(cold)}`,
  );
  const before = indexCacheStats();
  await s3.resetStats();
  assert.deepEqual(await bytesOfLevel(remote, 0, crop), first);
  const warm = await s3.stats();
  assert.equal(
    warm.requests,
    cold.requests - shards,
    `warm: the same ranges, no index ${JSON.stringify(warm)}`,
  );
  assert.ok(indexCacheStats().hits >= before.hits + shards);
  assert.ok(invalidate(s3.url(key)) >= shards);
  await s3.resetStats();
  assert.deepEqual(await bytesOfLevel(remote, 0, crop), first);
  assert.equal((await s3.stats()).requests, cold.requests, "indexes are read again");
});

Deno.test("local shard indexes are cached and a rewritten shard is not served stale", async () => {
  const ngff = await peerNgff();
  const dir = await tempDir("tessera-index-cache-");
  const store = join(dir, "img.ome.zarr");
  await copyTree(ngff.store, store);
  // Files written in the last two seconds are not cached (file times are
  // coarse): date the shards back as a dataset's would be.
  const shardDir = join(store, "s0", "c", "0", "0", "0", "0");
  const hourAgo = new Date(Date.now() - 3600_000);
  for (const name of ["0", "1"]) await Deno.utime(join(shardDir, name), hourAgo, hourAgo);
  using img = await open(store);
  const crop = { t: [0, 1], c: [0, 1], z: [0, 4], y: [0, 32], x: [0, 32] } as Record<
    string,
    [number, number]
  >;
  const first = await bytesOfLevel(img, 0, crop);
  const hits = indexCacheStats().hits;
  assert.deepEqual(await bytesOfLevel(img, 0, crop), first);
  assert.equal(indexCacheStats().hits, hits + 1, "the one shard's index came from the cache");
  // Rewrite that shard with the next shard's bytes (another valid shard):
  // the cached index must not be used for it, nor for a fresh rewrite of
  // the same length.
  const next = await Deno.readFile(join(shardDir, "1"));
  await Deno.writeFile(join(shardDir, "0"), next);
  const after = await bytesOfLevel(img, 0, crop);
  const expected = await bytesOfLevel(img, 0, { ...crop, x: [32, 48] });
  // The rewritten shard now holds the data of x 32..64 (x is 48 wide: 16 valid columns).
  for (let row = 0; row < 4 * 32; row++) {
    assert.deepEqual(
      after.subarray(row * 64, row * 64 + 32),
      expected.subarray(row * 32, row * 32 + 32),
      `row ${row}`,
    );
  }
});

Deno.test("faults: 500s, resets and stalls are retried; exhausted retries give StorageError", async () => {
  const ngff = await peerNgff();
  await using s3 = await startS3();
  const key = prefix("faults");
  await s3.upload(ngff.store, key);
  invalidate();
  await s3.setFaults({ errorRate: 0.2, resetRate: 0.1, slowRate: 0.1, slowMs: 300, seed: 7 });
  {
    using remote = await open(s3.url(key), s3Options(s3, { retries: 10, backoffMs: 5 }));
    for (let level = 0; level < ngff.levels.length; level++) {
      assert.deepEqual(await bytesOfLevel(remote, level), ngff.levels[level].expected);
    }
    const stats = await s3.stats();
    assert.ok(stats.errors > 0 && stats.resets > 0, JSON.stringify(stats));
  }
  // Every request fails: the error surfaces once the retries are spent.
  invalidate();
  await s3.setFaults({ errorRate: 1 });
  await s3.resetStats();
  await assert.rejects(
    open(s3.url(key), s3Options(s3, { retries: 2, backoffMs: 1 })),
    (e: Error) => {
      assert.ok(e instanceof StorageError, `${e.name}: ${e.message}`);
      assert.match(e.message, new RegExp(`${key}/zarr\\.json`));
      assert.ok(!e.message.includes(s3.env.AWS_SECRET_ACCESS_KEY), e.message);
      return true;
    },
  );
  assert.equal((await s3.stats()).requests, 3, "one request and two retries");
  // Slow responses beyond the time limit are timeouts, retried, then an error.
  await s3.setFaults({ slowRate: 1, slowMs: 2000 });
  await assert.rejects(
    open(s3.url(key), s3Options(s3, { retries: 1, timeoutMs: 300, backoffMs: 1 })),
    StorageError,
  );
  await s3.setFaults({});
});

Deno.test("errors: missing stores are NotFound, 403 is a StorageError naming the URL, secrets never appear", async () => {
  const ngff = await peerNgff();
  await using s3 = await startS3();
  const secret = "wJalrXUtnFEMI-tessera-secret-0123456789";
  await assert.rejects(
    open(s3.url(prefix("missing")), s3Options(s3)),
    (e: Error) => e instanceof NotFound && e.message.includes("missing"),
  );
  // Every error text of a failing read must be free of the secret.
  await s3.setFaults({ errorRate: 1 });
  const options = {
    endpoint: s3.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "AKIATESSERATEST", secretAccessKey: secret, sessionToken: secret },
    retries: 0,
  };
  await assert.rejects(open(s3.url(prefix("secret")), options), (e: Error) => {
    assert.ok(e instanceof StorageError);
    assert.ok(!e.message.includes(secret) && !String(e.stack).includes(secret), e.message);
    return true;
  });
  await s3.setFaults({});
  // Credentials in a URL are refused without echoing them.
  await assert.rejects(open("https://user:hunter2-secret@127.0.0.1:9/x.zarr"), (e: Error) => {
    assert.ok(e instanceof InvalidArgument);
    assert.ok(!e.message.includes("hunter2-secret"), e.message);
    return true;
  });
  // aiohttp answers 403 Forbidden for a folder: a folder named zarr.json.
  const dir = await tempDir("tessera-remote-403-");
  await Deno.mkdir(join(dir, "forbidden.zarr", "zarr.json"), { recursive: true });
  await using http = await startHttp(dir);
  await assert.rejects(open(http.url("forbidden.zarr")), (e: Error) => {
    assert.ok(e instanceof StorageError, `${e.name}: ${e.message}`);
    assert.match(e.message, /forbidden\.zarr\/zarr\.json/);
    assert.match(e.message, /access denied/);
    assert.match(e.message, /credentials/);
    return true;
  });
  void ngff;
});

Deno.test("a missing chunk object reads as the fill value, as locally", async () => {
  const ngff = await peerNgff();
  const dir = await tempDir("tessera-remote-missing-");
  const store = join(dir, "img.ome.zarr");
  await copyTree(ngff.store, store);
  // Drop one shard of level 0 and one plain chunk of level 1.
  await Deno.remove(join(store, "s0", "c", "1", "2", "1", "1", "0"));
  await Deno.remove(join(store, "s1", "c", "0", "1", "1", "0", "0"));
  await using s3 = await startS3();
  const key = prefix("holes");
  await s3.upload(store, key);
  using remote = await open(s3.url(key), s3Options(s3));
  using local = await open(store);
  for (const level of [0, 1]) {
    const got = await bytesOfLevel(remote, level);
    assert.deepEqual(got, await bytesOfLevel(local, level));
    assert.notDeepEqual(got, ngff.levels[level].expected, "a hole was read");
  }
});

Deno.test("metadata is cached until invalidate(); remote stores are read-only", async () => {
  const ngff = await peerNgff();
  const dir = await tempDir("tessera-remote-meta-");
  const store = join(dir, "img.ome.zarr");
  await copyTree(ngff.store, store);
  await using s3 = await startS3();
  const key = prefix("meta");
  await s3.upload(store, key);
  {
    using img = await open(s3.url(key), s3Options(s3));
    assert.deepEqual(img.channels, ngff.image.channels);
  }
  await editJson(store, (json) => {
    const ome = (json.attributes as { ome: { omero: { channels: { label: string }[] } } }).ome;
    ome.omero.channels[0].label = "renamed";
  });
  await s3.upload(store, key);
  await s3.resetStats();
  {
    using img = await open(s3.url(key), s3Options(s3));
    assert.deepEqual(img.channels, ngff.image.channels, "served from the cache");
    assert.equal((await s3.stats()).requests, 0, "no request for cached metadata");
  }
  assert.ok(invalidate(s3.url(key)) > 0);
  {
    using img = await open(s3.url(key), s3Options(s3));
    assert.equal(img.channels?.[0], "renamed");
  }
  await assert.rejects(
    writeOmeZarr(s3.url(prefix("write")), new Uint8Array(4), {
      axes: ["y", "x"],
      shape: [2, 2],
      dtype: "uint8",
      chunks: [2, 2],
    }),
    InvalidArgument,
  );
  assert.deepEqual(
    (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name),
    ["img.ome.zarr"],
    "nothing written locally either",
  );
});

Deno.test("remote options are validated", async () => {
  await assert.rejects(open("s3://bucket/x.zarr", { concurrency: 0 }), InvalidArgument);
  await assert.rejects(open("s3://bucket/x.zarr", { retries: -1 }), InvalidArgument);
  await assert.rejects(open("https://example.invalid/x.zarr", { region: "eu" }), InvalidArgument);
  await assert.rejects(open("s3:///x.zarr"), InvalidArgument);
  await assert.rejects(info("s3://bucket/x.zarr"), (e: Error) => {
    assert.ok(e instanceof InvalidArgument);
    assert.match(e.message, /open\(\)/);
    return true;
  });
});

Deno.test("pipeline: batches of samples from an HTTP store equal those from the local copy", async () => {
  const ngff = await peerNgff();
  await using http = await startHttp(ngff.dir);
  const sample = [3, 20, 14];
  const uris = [ngff.store, http.url("ngff.ome.zarr")];
  const pipes = uris.map(() =>
    pipeline({ samplesPerBatch: 4, sampleShape: sample, dtype: "float32" })
  );
  try {
    for (let i = 0; i < 8; i++) {
      const level = i % 2;
      const box = {
        t: i % 2,
        c: i % 3,
        z: [i % 4 - 1, i % 4 - 1 + sample[0]] as [number, number],
        y: [3 * i - 4, 3 * i - 4 + sample[1]] as [number, number],
        x: [5 * i - 6, 5 * i - 6 + sample[2]] as [number, number],
      };
      uris.forEach((uri, p) => pipes[p].push({ uri, level, box }));
    }
    for (let b = 0; b < 2; b++) {
      using local = await pipes[0].pop();
      using remote = await pipes[1].pop();
      assert.deepEqual(remote.data(), local.data(), `batch ${b}`);
    }
  } finally {
    for (const p of pipes) await p[Symbol.asyncDispose]();
  }
  assert.ok((await http.stats()).requests > 0);
});
