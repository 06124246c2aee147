//! Typed errors shared by every layer of the data plane.

use std::fmt;

/// The kind of an error; its numeric value is the status code returned across the C ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ErrorKind {
    /// An argument or a descriptor is malformed or out of range.
    InvalidArgument = 1,
    /// A path or key that must exist does not.
    NotFound = 2,
    /// A dtype cannot be used where it was asked for.
    DtypeMismatch = 3,
    /// Reading or writing the store failed.
    StorageError = 4,
    /// Stored bytes are corrupt or inconsistent with the metadata.
    DecodeError = 5,
    /// A request needs more memory than it may use.
    BudgetExceeded = 6,
    /// The caller cancelled the call (an aborted `AbortSignal`).
    Cancelled = 7,
    /// A CUDA call failed, no CUDA driver or device is usable, or host code met device memory.
    Cuda = 8,
    /// A bug: a panic was caught at the ABI boundary.
    Internal = 99,
}

/// An error with its kind and a message that names the input at fault.
#[derive(Debug, Clone)]
pub struct Error {
    /// What went wrong, as a category.
    pub kind: ErrorKind,
    /// What went wrong, for people: names the file, key or argument.
    pub message: String,
}

impl Error {
    /// Builds an error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// An [`ErrorKind::InvalidArgument`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// A [`ErrorKind::DecodeError`] error.
    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::DecodeError, message)
    }

    /// A [`ErrorKind::StorageError`] error.
    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::StorageError, message)
    }

    /// Prefixes the message with `context` (e.g. the chunk key being read).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

/// Result type of the data plane.
pub type Result<T> = std::result::Result<T, Error>;
