/**
 * Remote stores: S3-compatible buckets (`s3://bucket/prefix`) and HTTP(S)
 * servers (`https://host/path`), read by the native data plane
 * (rust/src/remote.rs: object_store on a library-owned tokio runtime, with
 * retries, ranged reads and many requests in flight).
 *
 * Metadata (`zarr.json`, `.zarray`, `.zattrs`, `.zgroup`) of a remote store
 * is read through the same native store as the chunks, so the HTTP stack,
 * credentials and retries are shared. Metadata and shard indexes are cached
 * in the process until {@link invalidate} drops them.
 * @module
 */

import { InvalidArgument, NotFound } from "./errors.ts";
import { native } from "./ffi.ts";
import { check, errorBuffer, NativeBuffer, takePointer } from "./native.ts";
import { describeJson } from "./zarr/json.ts";

/**
 * Options of remote stores, given to {@link open} next to the other options.
 * S3 settings not given here come from the standard AWS environment
 * variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
 * `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`,
 * `AWS_ENDPOINT_URL`), then from the instance or container metadata
 * service where there is one.
 *
 * @example
 * ```ts
 * import { open } from "@tessera/tessera";
 * using img = await open("s3://bucket/image.ome.zarr", {
 *   endpoint: "http://127.0.0.1:9000", // MinIO or another S3-compatible server
 *   region: "us-east-1",
 *   concurrency: 64,
 * });
 * ```
 */
export interface RemoteOptions {
  /** S3 endpoint URL (S3-compatible servers); default AWS, or `AWS_ENDPOINT_URL`. */
  endpoint?: string;
  /** S3 region; default `AWS_REGION` / `AWS_DEFAULT_REGION`, else us-east-1. */
  region?: string;
  /** S3 credentials; default the AWS environment variables. Never logged or shown in errors. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** S3: send unsigned requests (public buckets). */
  anonymous?: boolean;
  /** Further S3 settings by object_store's names (e.g. `{ aws_virtual_hosted_style_request: "true" }`). */
  s3?: Record<string, string>;
  /** Requests in flight at most per read (1..1024, default 64). */
  concurrency?: number;
  /** Retries of a failed request (5xx, timeout, dropped connection) before it fails (0..100, default 5). */
  retries?: number;
  /** Time limit of one request in milliseconds (default 30000). */
  timeoutMs?: number;
  /** Time limit of connecting in milliseconds (default 5000). */
  connectTimeoutMs?: number;
  /** First wait between retries in milliseconds, doubling with jitter (default 50). */
  backoffMs?: number;
}

/** Whether `source` names a remote store (`s3://`, `http://`, `https://`). */
export function isRemote(source: string | URL): boolean {
  const text = source instanceof URL ? source.href : source;
  return typeof text === "string" && /^(s3|https?):\/\/./i.test(text);
}

const storeRegistry = new FinalizationRegistry<Deno.PointerObject>((p) =>
  native().tessera_remote_free(p)
);

function integerOption(value: unknown, name: string, min: number, max: number): bigint {
  if (value === undefined) return -1n;
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    throw new InvalidArgument(
      `option ${name} must be an integer in ${min}..${max}, got ${describeJson(value)}`,
    );
  }
  return BigInt(value as number);
}

/** The S3 settings of `options` as object_store name/value pairs. */
function s3Pairs(url: string, options: RemoteOptions): [string, string][] {
  const pairs: [string, string][] = [];
  const text = (value: unknown, name: string) => {
    if (typeof value !== "string" || value === "") {
      throw new InvalidArgument(`option ${name} must be a non-empty string`);
    }
    return value;
  };
  if (options.endpoint !== undefined) {
    pairs.push(["aws_endpoint", text(options.endpoint, "endpoint")]);
  }
  if (options.region !== undefined) pairs.push(["aws_region", text(options.region, "region")]);
  if (options.credentials !== undefined) {
    const c = options.credentials;
    pairs.push(["aws_access_key_id", text(c?.accessKeyId, "credentials.accessKeyId")]);
    pairs.push(["aws_secret_access_key", text(c?.secretAccessKey, "credentials.secretAccessKey")]);
    if (c.sessionToken !== undefined) {
      pairs.push(["aws_session_token", text(c.sessionToken, "credentials.sessionToken")]);
    }
  }
  if (options.anonymous) pairs.push(["aws_skip_signature", "true"]);
  for (const [k, v] of Object.entries(options.s3 ?? {})) pairs.push([k, text(v, `s3.${k}`)]);
  if (pairs.length > 0 && !url.toLowerCase().startsWith("s3://")) {
    throw new InvalidArgument(
      `${url}: S3 options (${pairs.map((p) => p[0]).join(", ")}) apply to s3:// URLs only`,
    );
  }
  return pairs;
}

/**
 * A native remote store handle: the store at one root URL. Reads metadata
 * objects (cached) and opens arrays under it.
 * Internal: for tessera's own modules.
 * @ignore
 */
export class RemoteStore implements Disposable {
  #pointer: Deno.PointerObject | null;
  /** The root URL, without a trailing slash. */
  readonly url: string;

  /** Opens the store at `url` with `options` (no request is made yet). */
  constructor(url: string, options: RemoteOptions = {}) {
    this.url = url.replace(/\/+$/, "");
    const pairs = s3Pairs(this.url, options);
    if (pairs.some(([k, v]) => k.includes("\0") || v.includes("\0"))) {
      throw new InvalidArgument("remote store options must not contain NUL characters");
    }
    const config = new TextEncoder().encode(pairs.flat().join("\0"));
    const settings = new BigInt64Array([
      integerOption(options.concurrency, "concurrency", 1, 1024),
      integerOption(options.retries, "retries", 0, 100),
      integerOption(options.timeoutMs, "timeoutMs", 1, 3_600_000),
      integerOption(options.connectTimeoutMs, "connectTimeoutMs", 1, 600_000),
      integerOption(options.backoffMs, "backoffMs", 1, 60_000),
    ]);
    const bytes = new TextEncoder().encode(this.url);
    const slot = new BigUint64Array(1);
    const err = errorBuffer();
    check(
      native().tessera_remote_open(
        bytes,
        BigInt(bytes.length),
        config,
        BigInt(config.length),
        settings,
        BigInt(settings.length),
        slot,
        err,
        BigInt(err.length),
      ),
      err,
    );
    this.#pointer = takePointer(slot);
    storeRegistry.register(this, this.#pointer, this);
  }

  /** The native handle (valid until disposed). */
  get pointer(): Deno.PointerObject {
    if (!this.#pointer) throw new InvalidArgument(`remote store ${this.url} was closed`);
    return this.#pointer;
  }

  /** URL of `key` under the root. */
  keyUrl(key: string): string {
    return key === "" ? this.url : `${this.url}/${key}`;
  }

  /** The object under `key` (relative to the root), or `undefined` when it does not exist. */
  async get(key: string): Promise<Uint8Array | undefined> {
    const bytes = new TextEncoder().encode(key);
    const slot = new BigUint64Array(1);
    const err = errorBuffer();
    const status = await native().tessera_remote_get(
      this.pointer,
      bytes,
      BigInt(bytes.length),
      slot,
      err,
      BigInt(err.length),
    );
    try {
      check(status, err);
    } catch (e) {
      if (e instanceof NotFound) return undefined;
      throw e;
    }
    using buffer = new NativeBuffer(takePointer(slot));
    return new Uint8Array(buffer.arrayBuffer).slice();
  }

  /** The object under `key` as text, or `undefined` when it does not exist. */
  async getText(key: string): Promise<string | undefined> {
    const bytes = await this.get(key);
    return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
  }

  /** Frees the handle; arrays opened under it keep working. */
  [Symbol.dispose](): void {
    if (!this.#pointer) return;
    storeRegistry.unregister(this);
    native().tessera_remote_free(this.#pointer);
    this.#pointer = null;
  }
}

/**
 * Drops cached metadata and shard indexes of remote stores, so the next
 * `open()` and reads see objects changed since: those whose URL starts
 * with `url` (all remote objects when omitted). Images opened before keep
 * the metadata they read; open them again to see new metadata. Returns how
 * many cache entries were dropped.
 *
 * @example
 * ```ts
 * import { invalidate } from "@tessera/tessera";
 * invalidate("s3://bucket/image.ome.zarr"); // after the image was rewritten
 * ```
 */
export function invalidate(url?: string | URL): number {
  const text = url === undefined ? "" : url instanceof URL ? url.href : url;
  if (typeof text !== "string") {
    throw new InvalidArgument(`invalidate: url must be a string, got ${describeJson(url)}`);
  }
  const bytes = new TextEncoder().encode(text.replace(/\/+$/, ""));
  return Number(native().tessera_remote_invalidate(bytes, BigInt(bytes.length)));
}

/**
 * Counters of the shard-index cache (see {@link indexCacheStats}).
 *
 * @example
 * ```ts
 * import { type IndexCacheStats, indexCacheStats } from "@tessera/tessera";
 * const stats: IndexCacheStats = indexCacheStats();
 * console.log(stats.hits / Math.max(1, stats.hits + stats.misses));
 * ```
 */
export interface IndexCacheStats {
  /** Lookups answered from the cache since the process started. */
  hits: number;
  /** Lookups that missed. */
  misses: number;
  /** Indexes held now. */
  entries: number;
  /** Bytes held now. */
  bytes: number;
  /** The budget in bytes. */
  capacity: number;
}

/**
 * Counters of the process-wide LRU cache of decoded shard indexes (local
 * and remote stores). Its budget is `TESSERA_INDEX_CACHE_BYTES` (default
 * 64 MiB) or {@link configureIndexCache}.
 *
 * @example
 * ```ts
 * import { indexCacheStats } from "@tessera/tessera";
 * const { hits, misses, entries } = indexCacheStats();
 * ```
 */
export function indexCacheStats(): IndexCacheStats {
  const out = new BigUint64Array(5);
  native().tessera_index_cache_stats(out);
  const [hits, misses, entries, bytes, capacity] = Array.from(out, Number);
  return { hits, misses, entries, bytes, capacity };
}

/**
 * Sets the budget of the shard-index cache in bytes (0 turns it off);
 * least recently used indexes are dropped beyond it.
 *
 * @example
 * ```ts
 * import { configureIndexCache } from "@tessera/tessera";
 * configureIndexCache(256 * 2 ** 20);
 * ```
 */
export function configureIndexCache(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new InvalidArgument(`index cache budget must be a non-negative integer, got ${bytes}`);
  }
  native().tessera_index_cache_configure(BigInt(bytes));
}
