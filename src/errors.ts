/**
 * Typed errors. Every failure of tessera is a {@link TesseraError}
 * subclass whose message names the input at fault.
 * @module
 */

/**
 * Base class of every error tessera throws.
 *
 * @example
 * ```ts
 * import { open, TesseraError } from "@tessera/tessera";
 * try {
 *   await open("no/such/store.zarr");
 * } catch (e) {
 *   if (e instanceof TesseraError) console.log(e.name, e.message); // every error tessera throws
 * }
 * ```
 */
export class TesseraError extends Error {
  /** Creates an error with a message naming the input and the problem. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * An argument, query or descriptor is malformed or out of range.
 *
 * @example
 * ```ts
 * import { InvalidArgument, open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * try {
 *   img.scan().level(9);
 * } catch (e) {
 *   if (e instanceof InvalidArgument) console.log(e.message); // level 9 does not exist: … has levels 0..2
 * }
 * ```
 */
export class InvalidArgument extends TesseraError {}
/**
 * A path, store, array or level does not exist.
 *
 * @example
 * ```ts
 * import { NotFound, open } from "@tessera/tessera";
 * try {
 *   await open("no/such/store.zarr");
 * } catch (e) {
 *   if (e instanceof NotFound) console.log(e.message);
 * }
 * ```
 */
export class NotFound extends TesseraError {}
/**
 * A dtype is unknown or cannot be used where it was asked for.
 *
 * @example
 * ```ts
 * import { DtypeMismatch } from "@tessera/tessera";
 * const check = (e: unknown) => e instanceof DtypeMismatch ? "wrong element type" : "other";
 * ```
 */
export class DtypeMismatch extends TesseraError {}
/**
 * Reading or writing a store failed, or its metadata is unusable.
 *
 * @example
 * ```ts
 * import { StorageError, open } from "@tessera/tessera";
 * try {
 *   await open("uses-an-unsupported-codec.zarr");
 * } catch (e) {
 *   if (e instanceof StorageError) console.log(e.message); // names the store and the codec
 * }
 * ```
 */
export class StorageError extends TesseraError {}
/**
 * Stored bytes are corrupt or inconsistent with their metadata.
 *
 * @example
 * ```ts
 * import { DecodeError, open } from "@tessera/tessera";
 * using img = await open("maybe-corrupt.zarr");
 * try {
 *   await img.scan().collect();
 * } catch (e) {
 *   if (e instanceof DecodeError) console.error("corrupt chunk:", e.message);
 * }
 * ```
 */
export class DecodeError extends TesseraError {}
/**
 * A request needs more memory than it may use.
 *
 * @example
 * ```ts
 * import { BudgetExceeded } from "@tessera/tessera";
 * try {
 *   // a request whose output cannot be allocated
 * } catch (e) {
 *   if (e instanceof BudgetExceeded) console.error("too large:", e.message);
 * }
 * ```
 */
export class BudgetExceeded extends TesseraError {}
/**
 * A worker pool cannot make progress with its current settings.
 *
 * @example
 * ```ts
 * import { PoolStarved } from "@tessera/tessera";
 * const retry = (e: unknown) => e instanceof PoolStarved; // no buffer came free in time
 * ```
 */
export class PoolStarved extends TesseraError {}
/**
 * A CUDA call failed or no CUDA device is usable.
 *
 * @example
 * ```ts
 * import { CudaError, open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * try {
 *   await img.scan().collect({ device: "cuda" });
 * } catch (e) {
 *   if (e instanceof CudaError) console.log("no GPU path here:", e.message);
 * }
 * ```
 */
export class CudaError extends TesseraError {}
/**
 * The object was closed or disposed before the call.
 *
 * @example
 * ```ts
 * import { Shutdown, open } from "@tessera/tessera";
 * const img = await open("data/sample.ome.zarr");
 * img[Symbol.dispose]();
 * try {
 *   await img.scan().collect();
 * } catch (e) {
 *   if (e instanceof Shutdown) console.log("image was closed");
 * }
 * ```
 */
export class Shutdown extends TesseraError {}
/**
 * The call was stopped by its `AbortSignal`. Its `name` is "AbortError" (as
 * for `fetch`), its `cause` the signal's reason; the native work has
 * stopped and its memory is freed by the time it is thrown.
 *
 * @example
 * ```ts
 * import { Aborted, open } from "@tessera/tessera";
 * using img = await open("data/sample.ome.zarr");
 * try {
 *   using view = await img.scan().collect({ signal: AbortSignal.timeout(10) });
 * } catch (e) {
 *   if (e instanceof Aborted) console.log("stopped:", e.cause);
 * }
 * ```
 */
export class Aborted extends TesseraError {
  /** Creates an error naming the call that was aborted. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AbortError";
  }
}

/** Maps a native status code to its error class (see rust/src/error.rs). */
export function errorFromStatus(status: number, message: string): TesseraError {
  switch (status) {
    case 1:
      return new InvalidArgument(message);
    case 2:
      return new NotFound(message);
    case 3:
      return new DtypeMismatch(message);
    case 4:
      return new StorageError(message);
    case 5:
      return new DecodeError(message);
    case 6:
      return new BudgetExceeded(message);
    case 7:
      return new Aborted(message);
    case 8:
      return new CudaError(message);
    default:
      return new TesseraError(`internal error (status ${status}): ${message}`);
  }
}
