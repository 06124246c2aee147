/**
 * Typed errors. Every failure of tessera is a {@link TesseraError}
 * subclass whose message names the input at fault.
 * @module
 */

/** Base class of every error tessera throws. */
export class TesseraError extends Error {
  /** Creates an error with a message naming the input and the problem. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An argument, query or descriptor is malformed or out of range. */
export class InvalidArgument extends TesseraError {}
/** A path, store, array or level does not exist. */
export class NotFound extends TesseraError {}
/** A dtype is unknown or cannot be used where it was asked for. */
export class DtypeMismatch extends TesseraError {}
/** Reading or writing a store failed, or its metadata is unusable. */
export class StorageError extends TesseraError {}
/** Stored bytes are corrupt or inconsistent with their metadata. */
export class DecodeError extends TesseraError {}
/** A request needs more memory than it may use. */
export class BudgetExceeded extends TesseraError {}
/** A worker pool cannot make progress with its current settings. */
export class PoolStarved extends TesseraError {}
/** A CUDA call failed or no CUDA device is usable. */
export class CudaError extends TesseraError {}
/** The object was closed or disposed before the call. */
export class Shutdown extends TesseraError {}

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
      return new CudaError(message);
    default:
      return new TesseraError(`internal error (status ${status}): ${message}`);
  }
}
