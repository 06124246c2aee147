/**
 * Loopback remote stores for the tests and benchmarks: a real S3 API server
 * (moto) and a real HTTP server with Range support (aiohttp's static file
 * handler), each behind a fault-injecting proxy (tests/interop/fault_proxy.py).
 * The Python side lives in tests/interop/remote_servers.py; its packages come
 * from tests/interop/requirements.txt through `ensurePythonEnv()`. A missing
 * package fails the fixture with a message naming it; nothing is skipped.
 *
 * ```ts
 * await using s3 = await startS3({ faults: { delayMs: 20 } });
 * await s3.upload(localStore, "x.ome.zarr");
 * open(s3.url("x.ome.zarr"), { endpoint: s3.endpoint }); // credentials: s3.env
 * ```
 * @module
 */

import { join } from "node:path";
import { ensurePythonEnv } from "../../scripts/python_env.ts";
import { ROOT } from "../helpers.ts";

/**
 * Faults the proxy injects. Rates are fractions of requests drawn from a
 * generator seeded with `seed` (default 0): `errorRate` answers 500,
 * `resetRate` resets the connection (half before the response, half after the
 * headers and part of the body), `slowRate` stalls `slowMs` between headers
 * and body; `delayMs` is added to every request before it is forwarded.
 */
export interface Faults {
  errorRate?: number;
  resetRate?: number;
  delayMs?: number;
  slowRate?: number;
  slowMs?: number;
  seed?: number;
}

/** Counters of the proxy since start or the last `resetStats()`. */
export interface ProxyStats {
  /** Requests received (faulted ones included). */
  requests: number;
  /** Injected 500 answers. */
  errors: number;
  /** Injected connection resets. */
  resets: number;
  /** Most requests in flight at once (delays included). */
  maxInFlight: number;
  /** Response body bytes sent to clients. */
  bytes: number;
}

/** A loopback S3 bucket behind the fault proxy. */
export interface S3Fixture extends AsyncDisposable {
  /** `http://127.0.0.1:<proxy port>`: the S3 endpoint clients use. */
  endpoint: string;
  /** The bucket created at start. */
  bucket: string;
  /** AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (fake test credentials). */
  env: Record<string, string>;
  /** `s3://<bucket>/<prefix>`. */
  url(prefix: string): string;
  /** Puts every file under `localDir` at `<prefix>/<relative path>` (directly, not through the proxy). */
  upload(localDir: string, prefix: string): Promise<void>;
  /** Replaces the proxy's faults (and reseeds its generator). */
  setFaults(f: Faults): Promise<void>;
  /** The proxy's counters. */
  stats(): Promise<ProxyStats>;
  /** Zeroes the proxy's counters. */
  resetStats(): Promise<void>;
}

/** A loopback HTTP server with Range support behind the fault proxy. */
export interface HttpFixture extends AsyncDisposable {
  /** `http://127.0.0.1:<proxy port>/<relPath>`. */
  url(relPath: string): string;
  /** Replaces the proxy's faults (and reseeds its generator). */
  setFaults(f: Faults): Promise<void>;
  /** The proxy's counters. */
  stats(): Promise<ProxyStats>;
  /** Zeroes the proxy's counters. */
  resetStats(): Promise<void>;
}

const SERVERS = join(ROOT, "tests", "interop", "remote_servers.py");
const PROXY = join(ROOT, "tests", "interop", "fault_proxy.py");
const BUCKET = "tessera-test";
const CREDENTIALS: Record<string, string> = {
  AWS_ACCESS_KEY_ID: "tessera-test-key",
  AWS_SECRET_ACCESS_KEY: "tessera-test-secret",
  AWS_REGION: "us-east-1",
};
const START_TIMEOUT_MS = 60_000;

/** One child python process that printed a JSON line once it listened. */
class Child {
  #stderr = "";
  readonly done: Promise<void>;

  private constructor(readonly proc: Deno.ChildProcess, readonly what: string) {
    this.done = this.#drainStderr();
  }

  /** Starts `python args`, waits for its first stdout line (JSON) and returns both. */
  static async start(
    what: string,
    args: string[],
  ): Promise<{ child: Child; ready: Record<string, number> }> {
    const python = await ensurePythonEnv();
    const proc = new Deno.Command(python, {
      args,
      cwd: ROOT,
      stdin: "piped", // closing it tells the child to exit, even if we die
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const child = new Child(proc, what);
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let line = "";
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what}: not listening after ${START_TIMEOUT_MS} ms`)),
          START_TIMEOUT_MS,
        );
      });
      while (!line.includes("\n")) {
        const { value, done } = await Promise.race([reader.read(), timeout]);
        if (done) {
          const status = await proc.status;
          await child.done;
          throw new Error(
            `${what} exited with code ${status.code} before listening:\n${child.#stderr}`,
          );
        }
        line += value;
      }
    } catch (e) {
      await child.close();
      throw e;
    } finally {
      clearTimeout(timer);
      reader.releaseLock();
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    proc.stdout.pipeTo(new WritableStream()).catch(() => {});
    try {
      const ready = JSON.parse(line.slice(0, line.indexOf("\n")));
      await waitForPort(ready.port, what);
      return { child, ready };
    } catch (e) {
      await child.close();
      throw e;
    }
  }

  async #drainStderr(): Promise<void> {
    // Keep the last 16 KiB for error messages; never let the pipe fill up.
    for await (const chunk of this.proc.stderr.pipeThrough(new TextDecoderStream())) {
      this.#stderr = (this.#stderr + chunk).slice(-16384);
    }
  }

  /** Closes stdin, sends SIGTERM, escalates to SIGKILL after 5 s; waits for exit. */
  async close(): Promise<void> {
    await this.proc.stdin.close().catch(() => {});
    try {
      this.proc.kill("SIGTERM");
    } catch {
      // already exited
    }
    const timer = setTimeout(() => {
      try {
        this.proc.kill("SIGKILL");
      } catch {
        // already exited
      }
    }, 5000);
    await this.proc.status;
    clearTimeout(timer);
    await this.done.catch(() => {});
  }
}

/** Resolves once 127.0.0.1:`port` accepts a TCP connection. */
async function waitForPort(port: number, what: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (e) {
      // Only "not listening yet" is worth waiting for (not, e.g., a missing permission).
      if (!(e instanceof Deno.errors.ConnectionRefused) || Date.now() > deadline) {
        throw new Error(`${what}: port ${port} does not answer: ${e}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** The proxy in front of `upstream`, with its control API. */
class ProxyControl {
  private constructor(readonly child: Child, readonly port: number, readonly control: number) {}

  static async start(upstream: string, faults: Faults = {}): Promise<ProxyControl> {
    const { child, ready } = await Child.start("fault proxy", [
      PROXY,
      upstream,
      JSON.stringify(faults),
    ]);
    return new ProxyControl(child, ready.port, ready.control);
  }

  async #call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(`http://127.0.0.1:${this.control}${path}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`fault proxy ${path}: ${json.error ?? res.status}`);
    return json;
  }

  async setFaults(f: Faults): Promise<void> {
    await this.#call("PUT", "/faults", f);
  }

  async stats(): Promise<ProxyStats> {
    return await this.#call("GET", "/stats") as ProxyStats;
  }

  async resetStats(): Promise<void> {
    await this.#call("POST", "/reset-stats");
  }
}

/** Starts moto's S3 server with a bucket, behind the fault proxy. */
export async function startS3(options: { faults?: Faults } = {}): Promise<S3Fixture> {
  const { child: server, ready } = await Child.start("moto S3 server", [SERVERS, "s3", BUCKET]);
  const direct = `http://127.0.0.1:${ready.port}`;
  let proxy: ProxyControl;
  try {
    proxy = await ProxyControl.start(direct, options.faults);
  } catch (e) {
    await server.close();
    throw e;
  }
  const endpoint = `http://127.0.0.1:${proxy.port}`;
  return {
    endpoint,
    bucket: BUCKET,
    env: { ...CREDENTIALS },
    url: (prefix) => `s3://${BUCKET}/${prefix.replace(/^\/+/, "")}`,
    async upload(localDir, prefix) {
      const python = await ensurePythonEnv();
      const out = await new Deno.Command(python, {
        args: [SERVERS, "upload", direct, BUCKET, localDir, prefix],
        cwd: ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!out.success) {
        throw new Error(
          `upload of ${localDir} to s3://${BUCKET}/${prefix} failed (exit ${out.code}):\n${
            new TextDecoder().decode(out.stderr)
          }`,
        );
      }
    },
    setFaults: (f) => proxy.setFaults(f),
    stats: () => proxy.stats(),
    resetStats: () => proxy.resetStats(),
    async [Symbol.asyncDispose]() {
      await Promise.all([proxy.child.close(), server.close()]);
    },
  };
}

/** Starts aiohttp's static file server on `root` (Range support), behind the fault proxy. */
export async function startHttp(
  root: string,
  options: { faults?: Faults } = {},
): Promise<HttpFixture> {
  const { child: server, ready } = await Child.start("HTTP server", [SERVERS, "http", root]);
  let proxy: ProxyControl;
  try {
    proxy = await ProxyControl.start(`http://127.0.0.1:${ready.port}`, options.faults);
  } catch (e) {
    await server.close();
    throw e;
  }
  const base = `http://127.0.0.1:${proxy.port}`;
  return {
    url: (relPath) =>
      `${base}/${relPath.replace(/^\/+/, "").split("/").map(encodeURIComponent).join("/")}`,
    setFaults: (f) => proxy.setFaults(f),
    stats: () => proxy.stats(),
    resetStats: () => proxy.resetStats(),
    async [Symbol.asyncDispose]() {
      await Promise.all([proxy.child.close(), server.close()]);
    },
  };
}
