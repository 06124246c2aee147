/**
 * Checks the loopback remote-store fixtures themselves (tests/remote/servers.ts):
 * ranged reads through the proxy return the file's bytes, faults happen at the
 * configured rate with the configured seed, delays add latency, the counters
 * count, and boto3 (an independent S3 client) reads the uploaded bucket.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { ensurePythonEnv } from "../scripts/python_env.ts";
import { tempDir } from "./helpers.ts";
import { type HttpFixture, startHttp, startS3 } from "./remote/servers.ts";

/** A folder with one 256 KiB file of seeded bytes, and those bytes. */
async function makeRoot(): Promise<{ root: string; bytes: Uint8Array }> {
  const root = await tempDir("tessera-remote-fixtures-");
  const bytes = new Uint8Array(256 * 1024);
  let x = 12345;
  for (let i = 0; i < bytes.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  await Deno.mkdir(join(root, "dir"), { recursive: true });
  await Deno.writeFile(join(root, "dir", "blob.bin"), bytes);
  await Deno.writeTextFile(join(root, "zarr.json"), '{"zarr_format":3}');
  return { root, bytes };
}

// A fresh connection per request: on a reused keep-alive connection the
// client itself would retry some resets, hiding them from the counts.
const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });

/** GETs `url` with an optional Range; returns status and body, or "reset" when the connection broke. */
async function get(
  url: string,
  range?: string,
): Promise<{ status: number; body: Uint8Array; headers: Headers } | "reset"> {
  try {
    const res = await fetch(url, { headers: range ? { range } : {}, client });
    const body = new Uint8Array(await res.arrayBuffer());
    return { status: res.status, body, headers: res.headers };
  } catch (e) {
    if (e instanceof TypeError) return "reset";
    throw e;
  }
}

async function portAnswers(url: string): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(url).port) })).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("HTTP fixture: ranges through the proxy return the file's bytes", async () => {
  const { root, bytes } = await makeRoot();
  await using http = await startHttp(root);
  const url = http.url("dir/blob.bin");
  const cases: [string, number, number][] = [
    ["bytes=0-0", 0, 1],
    ["bytes=1000-4999", 1000, 5000],
    ["bytes=262000-", 262000, bytes.length],
    ["bytes=-100", bytes.length - 100, bytes.length],
    ["bytes=262100-999999", 262100, bytes.length],
  ];
  for (const [range, start, end] of cases) {
    const r = await get(url, range);
    assert.notEqual(r, "reset");
    if (r === "reset") return;
    assert.equal(r.status, 206, range);
    assert.equal(r.headers.get("content-range"), `bytes ${start}-${end - 1}/${bytes.length}`);
    assert.deepEqual(r.body, bytes.subarray(start, end), range);
  }
  const full = await get(url);
  assert.ok(full !== "reset" && full.status === 200);
  assert.deepEqual(full.body, bytes);
  const past = await get(url, `bytes=${bytes.length}-`);
  assert.ok(past !== "reset");
  assert.equal(past.status, 416);
  assert.equal(past.headers.get("content-range"), `bytes */${bytes.length}`);
  const missing = await get(http.url("dir/nope.bin"));
  assert.ok(missing !== "reset" && missing.status === 404);

  const stats = await http.stats();
  assert.equal(stats.requests, cases.length + 3);
  assert.equal(stats.errors, 0);
  assert.equal(stats.resets, 0);
  assert.equal(stats.maxInFlight, 1);
  const sent = cases.reduce((n, [, s, e]) => n + e - s, 0) + bytes.length;
  assert.ok(stats.bytes >= sent && stats.bytes < sent + 1000, `bytes ${stats.bytes} vs ${sent}`);
  await http.resetStats();
  assert.deepEqual(await http.stats(), {
    requests: 0,
    errors: 0,
    resets: 0,
    maxInFlight: 0,
    bytes: 0,
  });
});

/** Sequential GETs; the outcome of each: status or "reset". */
async function outcomes(http: HttpFixture, n: number): Promise<(number | "reset")[]> {
  const out: (number | "reset")[] = [];
  for (let i = 0; i < n; i++) {
    const r = await get(http.url("dir/blob.bin"), "bytes=0-65535");
    out.push(r === "reset" ? r : r.status);
    if (r !== "reset" && r.status === 206) assert.equal(r.body.length, 65536);
  }
  return out;
}

Deno.test("HTTP fixture: errors and resets at the seeded rate", async () => {
  const { root } = await makeRoot();
  await using http = await startHttp(root, {
    faults: { errorRate: 0.25, resetRate: 0.15, seed: 7 },
  });
  const n = 300;
  const first = await outcomes(http, n);
  const errors = first.filter((o) => o === 500).length;
  const resets = first.filter((o) => o === "reset").length;
  assert.equal(errors + resets + first.filter((o) => o === 206).length, n);
  const stats = await http.stats();
  assert.equal(stats.requests, n);
  assert.equal(stats.errors, errors);
  assert.equal(stats.resets, resets);
  // Binomial(300, p): 4 standard deviations are about 0.1 (p = 0.25) and 0.08 (p = 0.15).
  assert.ok(Math.abs(errors / n - 0.25) < 0.1, `error rate ${errors / n}`);
  assert.ok(Math.abs(resets / n - 0.15) < 0.08, `reset rate ${resets / n}`);

  // The same seed replays the same faults; another seed gives others.
  await http.setFaults({ errorRate: 0.25, resetRate: 0.15, seed: 7 });
  assert.deepEqual(await outcomes(http, n), first);
  await http.setFaults({ errorRate: 0.25, resetRate: 0.15, seed: 8 });
  assert.notDeepEqual(await outcomes(http, n), first);

  await http.setFaults({});
  assert.ok((await outcomes(http, 20)).every((o) => o === 206));
  await assert.rejects(http.setFaults({ errorRate: 1.5 }), /errorRate/);
  await assert.rejects(http.setFaults({ errorRate: 0.6, resetRate: 0.6 }), /at most 1/);
});

Deno.test("HTTP fixture: delay and slow responses add latency; in-flight count", async () => {
  const { root } = await makeRoot();
  await using http = await startHttp(root, { faults: { delayMs: 150 } });
  const url = http.url("dir/blob.bin");
  let t = performance.now();
  for (let i = 0; i < 4; i++) assert.notEqual(await get(url, "bytes=0-9"), "reset");
  assert.ok(
    performance.now() - t >= 4 * 150,
    `4 delayed requests took ${performance.now() - t} ms`,
  );

  // 8 requests at once overlap during their delay.
  await http.resetStats();
  const all = await Promise.all(Array.from({ length: 8 }, () => get(url, "bytes=0-9")));
  assert.ok(all.every((r) => r !== "reset" && r.status === 206));
  const stats = await http.stats();
  assert.equal(stats.requests, 8);
  assert.equal(stats.maxInFlight, 8);
  assert.equal(stats.bytes, 80);

  await http.setFaults({ slowRate: 1, slowMs: 300 });
  t = performance.now();
  const slow = await get(url, "bytes=0-9");
  assert.ok(slow !== "reset" && slow.status === 206 && slow.body.length === 10);
  assert.ok(performance.now() - t >= 300, `slow response took ${performance.now() - t} ms`);
});

Deno.test("HTTP fixture: dispose stops the server and the proxy", async () => {
  const { root } = await makeRoot();
  let url: string;
  {
    await using http = await startHttp(root);
    url = http.url("zarr.json");
    assert.ok(await portAnswers(url));
  }
  assert.equal(await portAnswers(url), false);
});

const BOTO3_READ = `
import hashlib, json, sys
import boto3
from botocore.config import Config
endpoint, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint,
    config=Config(retries={"max_attempts": 10, "mode": "standard"}))
keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"])
out = {"keys": keys, "sha256": {}}
for k in keys:
    out["sha256"][k] = hashlib.sha256(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest()
part = s3.get_object(Bucket=bucket, Key=prefix + "/dir/blob.bin", Range="bytes=100-199")
out["range"] = list(part["Body"].read())
out["contentRange"] = part["ContentRange"]
print(json.dumps(out))
`;

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("S3 fixture: boto3 reads the uploaded folder through the proxy, also with 500s", async () => {
  const { root, bytes } = await makeRoot();
  await using s3 = await startS3();
  assert.equal(s3.url("data/x.ome.zarr"), `s3://${s3.bucket}/data/x.ome.zarr`);
  await s3.upload(root, "data/x.ome.zarr");
  const env = s3.env;
  const read = async () =>
    JSON.parse(
      await runPythonWithEnv(
        ["-c", BOTO3_READ, s3.endpoint, s3.bucket, "data/x.ome.zarr"],
        env,
      ),
    );
  const want = {
    "data/x.ome.zarr/dir/blob.bin": await sha256(bytes as Uint8Array<ArrayBuffer>),
    "data/x.ome.zarr/zarr.json": await sha256(
      new TextEncoder().encode('{"zarr_format":3}') as Uint8Array<ArrayBuffer>,
    ),
  };
  const clean = await read();
  assert.deepEqual(clean.keys, Object.keys(want).sort());
  assert.deepEqual(clean.sha256, want);
  assert.deepEqual(clean.range, Array.from(bytes.subarray(100, 200)));
  assert.equal(clean.contentRange, `bytes 100-199/${bytes.length}`);
  const stats = await s3.stats();
  assert.equal(stats.requests, 4); // list, two gets, one ranged get: the upload bypasses the proxy
  assert.equal(stats.errors, 0);

  // boto3 retries the injected 500s and still reads the same bytes.
  await s3.setFaults({ errorRate: 0.3, seed: 3 });
  await s3.resetStats();
  const faulty = await read();
  assert.deepEqual(faulty.sha256, want);
  const fs = await s3.stats();
  assert.ok(fs.errors > 0 && fs.requests === 4 + fs.errors, JSON.stringify(fs));
});

/** Runs the venv's python with `args` and extra environment variables; returns stdout. */
async function runPythonWithEnv(args: string[], env: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(await ensurePythonEnv(), {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`python failed (exit ${out.code}):\n${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}
